//! Bedrock Converse codec: request encoding, response/error decoding and ConverseStream
//! decoding, against fixtures in tests/fixtures/bedrock (see its README) and golden outputs in
//! tests/fixtures/bedrock/golden (`BLESS=1 cargo test --test bedrock_codec` rewrites them).

use llm_gateway::llm::bedrock::{self, decode_error, decode_response, encode_request, StreamDecoder};
use llm_gateway::llm::ir::*;
use llm_gateway::usage::{Usage, UsageSource};
use serde_json::{json, Value};

mod common;
use common::{pretty_json, same_at_every_split, Fixtures};

const FIXTURES: Fixtures = Fixtures("bedrock");

fn text(s: &str) -> Part {
    Part::Text(s.into())
}

fn user(parts: Vec<Part>) -> Message {
    Message { role: Role::User, content: parts, name: None }
}

fn assistant(parts: Vec<Part>) -> Message {
    Message { role: Role::Assistant, content: parts, name: None }
}

fn top_song_tool() -> Tool {
    Tool {
        name: "top_song".into(),
        description: Some("Get the most popular song played on a radio station.".into()),
        parameters: json!({
            "type": "object",
            "properties": {"sign": {"type": "string", "description": "The call sign for the radio station."}},
            "required": ["sign"]
        }),
        strict: None,
    }
}

const PNG_1PX: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

/// A Claude request using every translatable feature, modelled on the Bedrock user guide's
/// tool-use walk-through (top_song / WZPZ).
fn full_request() -> ChatRequest {
    ChatRequest {
        model: "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0"
            .into(),
        system: vec![text("You are a radio DJ."), text("")],
        messages: vec![
            user(vec![
                text("What is the most popular song on WZPZ?"),
                Part::Image(ImageSource::Base64 { media_type: "image/png".into(), data: PNG_1PX.into() }.into()),
            ]),
            assistant(vec![
                Part::Thinking { text: "I should call top_song.".into(), signature: Some("sig-abc".into()) },
                Part::RedactedThinking { data: "cmVkYWN0ZWQ=".into() },
                text(""),
                Part::ToolCall(ToolCall {
                    id: "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q".into(),
                    name: "top_song".into(),
                    arguments: "{\"sign\": \"WZPZ\"}".into(),
                    signature: None,
                }),
            ]),
            // An OpenAI `tool` message then a `user` message: two IR user turns, merged.
            user(vec![Part::ToolResult(ToolResult {
                call_id: "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q".into(),
                name: Some("top_song".into()),
                content: vec![text("{\"song\": \"Elemental Hotel\", \"artist\": \"8 Storey Hike\"}")],
                is_error: false,
            })]),
            user(vec![text("And who sings it?")]),
        ],
        max_tokens: Some(2048),
        temperature: Some(0.5),
        top_p: Some(0.9),
        top_k: Some(40),
        stop: vec!["\n\nHuman:".into()],
        stream: true,
        stream_usage: true,
        tools: vec![top_song_tool()],
        tool_choice: Some(ToolChoice::Tool("top_song".into())),
        parallel_tool_calls: Some(true),
        response_format: None,
        reasoning: Some(Reasoning::BudgetTokens(1024)),
        seed: None,
        frequency_penalty: None,
        presence_penalty: None,
        n: Some(1),
        user: Some("user-123".into()),
        cache: Default::default(),
        anthropic_only: Default::default(),
    }
}

#[test]
fn upstream_path_encodes_the_model_id_as_one_segment() {
    assert_eq!(
        bedrock::upstream_path("anthropic.claude-3-haiku-20240307-v1:0", false),
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
    // The exact path botocore 1.44 sends for this ARN (captured with a before-send hook).
    assert_eq!(
        bedrock::upstream_path(
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            true
        ),
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
    );
    assert_eq!(bedrock::upstream_path("a b?c#d%e", false), "/model/a%20b%3Fc%23d%25e/converse");
    assert_eq!(bedrock::host("eu-west-3"), "bedrock-runtime.eu-west-3.amazonaws.com");
}

#[test]
fn encode_full_request() {
    let body = encode_request(&full_request()).unwrap();
    FIXTURES.golden("request_full.upstream.json", &pretty_json(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    // Alternation restored by merging; the model id is not in the body.
    let roles: Vec<&str> = v["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert!(v.get("modelId").is_none() && v.get("model").is_none());
    assert_eq!(v["additionalModelRequestFields"]["thinking"], json!({"type": "enabled", "budget_tokens": 1024}));
}

#[test]
fn encode_nova_request_with_json_schema_and_effort() {
    let req = ChatRequest {
        model: "us.amazon.nova-pro-v1:0".into(),
        messages: vec![user(vec![text("Give me a JSON city.")])],
        top_k: Some(5),
        response_format: Some(ResponseFormat::JsonSchema {
            name: "city".into(),
            schema: json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
            strict: Some(true),
        }),
        reasoning: Some(Reasoning::Effort("minimal".into())),
        tools: vec![top_song_tool()],
        tool_choice: Some(ToolChoice::Required),
        stop: vec!["END".into()],
        ..Default::default()
    };
    let body = encode_request(&req).unwrap();
    FIXTURES.golden("request_nova.upstream.json", &pretty_json(&body));
}

#[test]
fn encode_tool_choice_none_withholds_tools() {
    let req = ChatRequest {
        model: "anthropic.claude-3-haiku-20240307-v1:0".into(),
        messages: vec![user(vec![text("hi")])],
        tools: vec![top_song_tool()],
        tool_choice: Some(ToolChoice::None),
        ..Default::default()
    };
    let v: Value = serde_json::from_slice(&encode_request(&req).unwrap()).unwrap();
    assert_eq!(v, json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}));
}

fn unsupported_field(req: ChatRequest) -> String {
    match encode_request(&req) {
        Err(TranslateError::Unsupported { field, provider, .. }) => {
            assert_eq!(provider, "bedrock");
            field
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn refuses_what_converse_cannot_express() {
    let base = || ChatRequest {
        model: "mistral.mistral-large-2407-v1:0".into(),
        messages: vec![user(vec![text("hi")])],
        ..Default::default()
    };
    let url_image = ChatRequest {
        messages: vec![user(vec![
            text("what is this"),
            Part::Image(ImageSource::Url("https://x/y.png".into()).into()),
        ])],
        ..base()
    };
    assert_eq!(unsupported_field(url_image), "messages[0].content[1]");
    let bmp = ChatRequest {
        messages: vec![user(vec![Part::Image(
            ImageSource::Base64 { media_type: "image/bmp".into(), data: "AA==".into() }.into(),
        )])],
        ..base()
    };
    assert_eq!(unsupported_field(bmp), "messages[0].content[0]");
    assert_eq!(unsupported_field(ChatRequest { n: Some(2), ..base() }), "n");
    assert_eq!(unsupported_field(ChatRequest { seed: Some(7), ..base() }), "seed");
    assert_eq!(unsupported_field(ChatRequest { frequency_penalty: Some(0.1), ..base() }), "frequency_penalty");
    assert_eq!(unsupported_field(ChatRequest { presence_penalty: Some(0.1), ..base() }), "presence_penalty");
    assert_eq!(unsupported_field(ChatRequest { parallel_tool_calls: Some(false), ..base() }), "parallel_tool_calls");
    assert_eq!(
        unsupported_field(ChatRequest { response_format: Some(ResponseFormat::JsonObject), ..base() }),
        "response_format"
    );
    assert_eq!(
        unsupported_field(ChatRequest { reasoning: Some(Reasoning::BudgetTokens(2048)), ..base() }),
        "reasoning"
    );
    assert_eq!(
        unsupported_field(ChatRequest {
            system: vec![Part::Image(
                ImageSource::Base64 { media_type: "image/png".into(), data: PNG_1PX.into() }.into()
            )],
            ..base()
        }),
        "system[0]"
    );
    let mut with_history = full_request();
    with_history.tool_choice = Some(ToolChoice::None);
    assert_eq!(unsupported_field(with_history), "tool_choice");
}

#[test]
fn invalid_tool_arguments_are_reported() {
    let req = ChatRequest {
        model: "anthropic.claude-3-haiku-20240307-v1:0".into(),
        messages: vec![
            user(vec![text("hi")]),
            assistant(vec![Part::ToolCall(ToolCall {
                id: "t1".into(),
                name: "top_song".into(),
                arguments: "{not json".into(),
                signature: None,
            })]),
        ],
        tools: vec![top_song_tool()],
        ..Default::default()
    };
    assert!(
        matches!(encode_request(&req), Err(TranslateError::Invalid { field, .. }) if field == "messages[1].content[0].arguments")
    );
}

#[test]
fn decode_responses() {
    for name in ["converse_text", "converse_tool_use", "converse_reasoning_cache"] {
        let resp = decode_response(&FIXTURES.read(&format!("{name}.json"))).unwrap();
        FIXTURES.golden(&format!("{name}.ir.txt"), &format!("{resp:#?}\n"));
    }
    let resp = decode_response(&FIXTURES.read("converse_reasoning_cache.json")).unwrap();
    // inputTokens excludes cache reads and writes: 12 + 1024 + 1024.
    assert_eq!(
        resp.usage,
        Usage {
            input: Some(2060),
            output: Some(48),
            cached_input: Some(1024),
            cache_write: Some(1024),
            cache_write_1h: None,
            reasoning: None,
            source: UsageSource::Reported
        }
    );
    assert_eq!(resp.stop_sequence.as_deref(), Some("\n\nHuman:"));
    let tool = decode_response(&FIXTURES.read("converse_tool_use.json")).unwrap();
    assert_eq!(tool.stop_reason, Some(StopReason::ToolCalls));
    assert!(matches!(&tool.content[0], Part::ToolCall(c) if c.arguments == r#"{"sign":"WZPZ"}"#));
}

/// `cacheDetails` (API reference `CacheDetail`): 1200 of the 1500 written tokens have a 1-hour TTL.
fn one_hour_cache_usage(output: u64) -> Usage {
    Usage {
        input: Some(20 + 1500),
        output: Some(output),
        cached_input: Some(0),
        cache_write: Some(1500),
        cache_write_1h: Some(1200),
        reasoning: None,
        source: UsageSource::Reported,
    }
}

#[test]
fn one_hour_cache_writes_are_read() {
    let resp = decode_response(&FIXTURES.read("converse_cache_1h.json")).unwrap();
    FIXTURES.golden("converse_cache_1h.ir.txt", &format!("{resp:#?}\n"));
    assert_eq!(resp.usage, one_hour_cache_usage(12));
    let ev = stream_case("stream_cache_1h");
    assert!(ev.contains(&StreamEvent::Usage(one_hour_cache_usage(4))), "{ev:?}");
    // Details without a 1-hour entry: no 1-hour writes; more than all writes: held to them.
    let usage = |details: &str| {
        let body = format!(
            r#"{{"output": {{"message": {{"role": "assistant", "content": []}}}}, "stopReason": "end_turn",
                "usage": {{"inputTokens": 1, "outputTokens": 1, "cacheWriteInputTokens": 10, "cacheDetails": {details}}}}}"#
        );
        decode_response(body.as_bytes()).unwrap().usage.cache_write_1h
    };
    assert_eq!(usage(r#"[{"inputTokens": 10, "ttl": "5m"}]"#), Some(0));
    assert_eq!(usage(r#"[{"inputTokens": 99, "ttl": "1h"}]"#), Some(10));
}

#[test]
fn decode_response_rejects_garbage() {
    let err = decode_response(b"<html>oops</html>").unwrap_err();
    assert_eq!((err.kind, err.status), (ErrorKind::Server, 502));
    let err = decode_response(b"{\"stopReason\":\"end_turn\"}").unwrap_err();
    assert!(err.message.contains("output.message"), "{}", err.message);
}

#[test]
fn decode_errors() {
    let e = decode_error(400, &FIXTURES.read("error_validation.json"));
    assert_eq!((e.kind, e.status), (ErrorKind::InvalidRequest, 400));
    assert!(e.message.starts_with("A conversation must alternate"));
    let e = decode_error(429, &FIXTURES.read("error_throttling.json"));
    assert_eq!((e.kind, e.status), (ErrorKind::RateLimited, 429));
    let e = decode_error(502, &FIXTURES.read("error_502.html"));
    assert_eq!((e.kind, e.status), (ErrorKind::Server, 502));
    assert_eq!(e.message, "provider returned HTTP 502 with a text/html body");
    let e = decode_error(503, b"");
    assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Overloaded, "provider returned HTTP 503 with an empty body"));
    let e = decode_error(403, br#"{"Message":"User is not authorized","__type":"AccessDeniedException"}"#);
    assert_eq!((e.kind, e.message.as_str()), (ErrorKind::PermissionDenied, "User is not authorized"));
    let e = decode_error(424, br#"{"message":"Received error from the model"}"#);
    assert_eq!(e.kind, ErrorKind::Server);
    let e = decode_error(408, br#"{"message":"Model has timed out"}"#);
    assert_eq!(e.kind, ErrorKind::Timeout);
    let long = "x".repeat(5000);
    let e = decode_error(500, long.as_bytes());
    assert!(e.message.len() < 300, "{}", e.message.len());
}

// ----------------------------------------------------------------------------- streams

fn decode_stream(chunks: &[&[u8]]) -> Vec<StreamEvent> {
    let mut dec = StreamDecoder::new();
    let mut out = Vec::new();
    for c in chunks {
        dec.feed(c, &mut out);
    }
    dec.finish(&mut out);
    out
}

fn render(events: &[StreamEvent]) -> String {
    events.iter().map(|e| format!("{e:?}\n")).collect()
}

/// Whole, at every 2-chunk split point and byte by byte: identical events.
fn stream_case(name: &str) -> Vec<StreamEvent> {
    let bytes = FIXTURES.read(&format!("{name}.eventstream"));
    let whole = same_at_every_split(&bytes, decode_stream);
    FIXTURES.golden(&format!("{name}.ir.txt"), &render(&whole));
    whole
}

#[test]
fn stream_text() {
    let ev = stream_case("stream_text");
    assert_eq!(ev.last(), Some(&StreamEvent::Done));
    let text: String = ev
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "Title: A Song of Ice and Fire \u{2014} caf\u{e9} \u{1f3b5}");
}

#[test]
fn stream_tool_use() {
    let ev = stream_case("stream_tool_use");
    assert!(ev.contains(&StreamEvent::ToolCallStart {
        index: 1,
        id: "tooluse_2nd_call".into(),
        name: "top_song".into()
    }));
    assert!(ev.contains(&StreamEvent::Usage(Usage {
        input: Some(666),
        output: Some(88),
        cached_input: Some(256),
        cache_write: Some(0),
        cache_write_1h: None,
        reasoning: None,
        source: UsageSource::Reported,
    })));
}

#[test]
fn stream_reasoning() {
    let ev = stream_case("stream_reasoning");
    assert!(ev.contains(&StreamEvent::Stop { reason: StopReason::Length, stop_sequence: None }));
}

#[test]
fn stream_redacted_reasoning() {
    // One redactedContent delta keeps its string; two deltas of one block are joined as bytes.
    let ev = stream_case("stream_redacted_reasoning");
    let redacted: Vec<&str> = ev
        .iter()
        .filter_map(|e| match e {
            StreamEvent::RedactedThinking { data } => Some(data.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(redacted, ["AQJlbmNyeXB0ZWQtYmxvY2stb25l/w==", "RXhhbXBsZSByZWRhY3RlZCByZWFzb25pbmc="]);
    // Each block is emitted where it ends: after block 0's signature, before block 3's text.
    let pos = |want: &dyn Fn(&StreamEvent) -> bool| ev.iter().position(want).unwrap();
    assert!(
        pos(&|e| matches!(e, StreamEvent::ThinkingSignature { .. }))
            < pos(&|e| matches!(e, StreamEvent::RedactedThinking { .. }))
    );
    assert!(
        pos(&|e| matches!(e, StreamEvent::RedactedThinking { data } if data.starts_with("RXhh")))
            < pos(&|e| matches!(e, StreamEvent::TextDelta { .. }))
    );
    assert_eq!(ev.last(), Some(&StreamEvent::Done));
}

#[test]
fn stream_exception_ends_with_an_error() {
    let ev = stream_case("stream_exception");
    match ev.last() {
        Some(StreamEvent::Error(e)) => {
            assert_eq!((e.kind, e.status), (ErrorKind::RateLimited, 429));
            assert!(e.message.contains("Too many requests"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!ev.contains(&StreamEvent::Done));
}

#[test]
fn stream_without_metadata_still_completes() {
    let ev = stream_case("stream_no_metadata");
    assert_eq!(
        &ev[ev.len() - 2..],
        &[StreamEvent::Stop { reason: StopReason::Stop, stop_sequence: Some("END".into()) }, StreamEvent::Done]
    );
}

#[test]
fn stream_truncated_inside_a_frame() {
    let ev = stream_case("stream_truncated");
    match ev.last() {
        Some(StreamEvent::Error(e)) => assert_eq!((e.status, e.message.as_str()), (502, "provider stream ended early")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn stream_corruption_is_an_error_and_stops_decoding() {
    let mut bytes = FIXTURES.read("stream_text.eventstream");
    let n = bytes.len();
    bytes[n / 2] ^= 0x40;
    let ev = decode_stream(&[&bytes]);
    let errors: Vec<_> = ev.iter().filter(|e| matches!(e, StreamEvent::Error(_))).collect();
    assert_eq!(errors.len(), 1, "{ev:?}");
    assert!(matches!(ev.last(), Some(StreamEvent::Error(e)) if e.message.contains("CRC")), "{ev:?}");
}

#[test]
fn stream_done_exactly_once_and_nothing_after() {
    let bytes = FIXTURES.read("stream_text.eventstream");
    let mut dec = StreamDecoder::new();
    let mut out = Vec::new();
    dec.feed(&bytes, &mut out);
    dec.feed(&bytes, &mut out);
    dec.finish(&mut out);
    dec.finish(&mut out);
    assert_eq!(out.iter().filter(|e| **e == StreamEvent::Done).count(), 1);
    assert_eq!(out.last(), Some(&StreamEvent::Done));
}

#[test]
fn empty_stream_ended_early() {
    assert_eq!(
        decode_stream(&[]),
        vec![StreamEvent::Error(ProviderError {
            kind: ErrorKind::Server,
            status: 502,
            message: "provider stream ended early".into()
        })]
    );
}

#[test]
fn names_strict_and_detail_for_bedrock() {
    let named = |role, name: &str| Message { role, content: vec![text("x")], name: Some(name.into()) };
    let base = ChatRequest { model: "anthropic.claude-sonnet-4-5".into(), ..ChatRequest::default() };
    // One participant per role: dropped. Two in one role: refused.
    let req = ChatRequest {
        messages: vec![named(Role::User, "alice"), named(Role::Assistant, "bot"), named(Role::User, "alice")],
        ..base.clone()
    };
    let v: Value = serde_json::from_slice(&encode_request(&req).unwrap()).unwrap();
    assert!(v["messages"].as_array().unwrap().iter().all(|m| m.get("name").is_none()));
    let req = ChatRequest {
        messages: vec![named(Role::Assistant, "a"), named(Role::User, "u"), named(Role::Assistant, "b")],
        ..base.clone()
    };
    assert_eq!(unsupported_field(req), "messages[2].name");
    // strict -> toolSpec.strict (ToolSpecification.strict in the Converse API reference).
    let req = ChatRequest {
        messages: vec![user(vec![text("x")])],
        tools: vec![Tool { strict: Some(true), ..top_song_tool() }],
        ..base.clone()
    };
    let v: Value = serde_json::from_slice(&encode_request(&req).unwrap()).unwrap();
    assert_eq!(v["toolConfig"]["tools"][0]["toolSpec"]["strict"], true);
    // detail low refused, high dropped.
    let png = |detail: &str| {
        let source = ImageSource::Base64 { media_type: "image/png".into(), data: PNG_1PX.into() };
        Part::Image(Image { source, detail: Some(detail.into()) })
    };
    let req = ChatRequest { messages: vec![user(vec![png("high")])], ..base.clone() };
    let v: Value = serde_json::from_slice(&encode_request(&req).unwrap()).unwrap();
    assert!(v["messages"][0]["content"][0]["image"].get("detail").is_none());
    let req = ChatRequest { messages: vec![user(vec![text("x"), png("low")])], ..base };
    assert_eq!(unsupported_field(req), "messages[0].content[1].detail");
}

/// Cache breakpoints become `cachePoint` blocks (CachePointBlock: `type: default`, `ttl` 5m or
/// 1h) after what they close, in system, messages and tools, as the Bedrock prompt-caching
/// guide places them (https://docs.aws.amazon.com/bedrock/latest/userguide/prompt-caching.html).
#[test]
fn cache_points_follow_what_they_close() {
    let hour = CacheControl { ttl: Some("1h".into()) };
    let five = CacheControl::default();
    let req = ChatRequest {
        model: "anthropic.claude-sonnet-4-5-20250929-v1:0".into(),
        system: vec![Part::CachePoint(five.clone()), text("rules"), Part::CachePoint(hour.clone())],
        messages: vec![
            user(vec![text("q1"), Part::CachePoint(five.clone()), Part::CachePoint(five.clone())]),
            // A breakpoint opening a turn (its block was dropped upstream) closes the turn before.
            assistant(vec![Part::CachePoint(five.clone()), text("a1")]),
            user(vec![
                Part::ToolResult(ToolResult {
                    call_id: "t1".into(),
                    name: None,
                    content: vec![text("out"), Part::CachePoint(five.clone())],
                    is_error: false,
                }),
                text("q2"),
            ]),
        ],
        tools: vec![top_song_tool()],
        cache: CacheHints { automatic: Some(five.clone()), tools: vec![(0, hour.clone())], ..CacheHints::default() },
        ..ChatRequest::default()
    };
    let body: Value = serde_json::from_slice(&encode_request(&req).unwrap()).unwrap();
    let point = |ttl: Option<&str>| match ttl {
        Some(t) => json!({"cachePoint": {"type": "default", "ttl": t}}),
        None => json!({"cachePoint": {"type": "default"}}),
    };
    assert_eq!(body["system"], json!([{"text": "rules"}, point(Some("1h"))]), "nothing to close before the text");
    assert_eq!(body["toolConfig"]["tools"][1], point(Some("1h")));
    assert_eq!(body["messages"][0]["content"], json!([{"text": "q1"}, point(None)]), "one point, not two");
    assert_eq!(body["messages"][1]["content"], json!([{"text": "a1"}]));
    let last = body["messages"][2]["content"].as_array().unwrap();
    assert_eq!(last[0]["toolResult"]["content"], json!([{"text": "out"}]), "no cache point inside a tool result");
    assert_eq!(last[1], point(None), "the tool result's breakpoint follows it");
    assert_eq!(last[2], json!({"text": "q2"}));
    assert_eq!(last[3], point(None), "automatic caching: the end of the last message");
    assert_eq!(last.len(), 4);
}

/// Documents: `format` from the media type, a `name` Converse accepts (required), text as a
/// text source; URLs, unknown media types and `context` refused naming the part.
#[test]
fn documents_become_document_blocks() {
    let doc = |source, name: Option<&str>, context: Option<&str>| {
        Part::Document(Document { source, name: name.map(str::to_string), context: context.map(str::to_string) })
    };
    let req = |parts| ChatRequest {
        model: "anthropic.claude-sonnet-4-5".into(),
        messages: vec![user(parts)],
        ..ChatRequest::default()
    };
    let pdf = DocumentSource::Base64 { media_type: "application/pdf".into(), data: "JVBERi0=".into() };
    let body: Value = serde_json::from_slice(
        &encode_request(&req(vec![
            doc(pdf.clone(), Some("Q3 report: final.pdf"), None),
            doc(DocumentSource::Text("plain".into()), None, None),
            doc(
                DocumentSource::Base64 { media_type: "text/csv; charset=utf-8".into(), data: "YSxi".into() },
                Some("***"),
                None,
            ),
            text("summarize"),
        ]))
        .unwrap(),
    )
    .unwrap();
    let content = &body["messages"][0]["content"];
    assert_eq!(
        content[0],
        json!({"document": {"format": "pdf", "name": "Q3 report final pdf", "source": {"bytes": "JVBERi0="}}})
    );
    assert_eq!(content[1], json!({"document": {"format": "txt", "name": "document 0-1", "source": {"text": "plain"}}}));
    assert_eq!(content[2]["document"]["format"], "csv");
    assert_eq!(content[2]["document"]["name"], "document 0-2");
    let refused = |part| match encode_request(&req(vec![part])).unwrap_err() {
        TranslateError::Unsupported { field, .. } => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(refused(doc(DocumentSource::Url("https://x/a.pdf".into()), None, None)), "messages[0].content[0]");
    assert_eq!(
        refused(doc(DocumentSource::Base64 { media_type: "application/zip".into(), data: "UEs=".into() }, None, None)),
        "messages[0].content[0]"
    );
    assert_eq!(refused(doc(pdf.clone(), None, Some("trust it"))), "messages[0].content[0].context");
    // Converse refuses two documents of one name.
    let body: Value = serde_json::from_slice(
        &encode_request(&req(vec![doc(pdf.clone(), Some("a.pdf"), None), doc(pdf, Some("a pdf"), None)])).unwrap(),
    )
    .unwrap();
    let names: Vec<&str> =
        (0..2).map(|j| body["messages"][0]["content"][j]["document"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a pdf", "a pdf (2)"]);
}
