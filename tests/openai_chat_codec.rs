//! Golden and behaviour tests of the OpenAI Chat Completions codec (`llm::openai_chat`).
//! `BLESS=1 cargo test --test openai_chat_codec` rewrites `tests/fixtures/openai/golden/`.

use llm_gateway::llm::ir::{
    ChatRequest, ChatResponse, ErrorKind, Image, ImageSource, Message, Part, ProviderError, Reasoning, Role,
    StopReason, StreamEvent, ToolCall, ToolResult, TranslateError,
};
use llm_gateway::llm::openai_chat::{self as oc, StreamDecoder, StreamEncoder};
use llm_gateway::usage::{Usage, UsageSource};

mod common;
use common::{pretty_json, same_at_every_split, Fixtures};

const FIXTURES: Fixtures = Fixtures("openai");

const CREATED: u64 = 1_700_000_000;

// ---------------------------------------------------------------- requests

const REQUESTS: &[&str] = &[
    "request_developer",
    "request_image_input",
    "request_functions",
    "request_tool_roundtrip",
    "request_names_strict",
    "request_image_detail_low",
    "request_prompt_cache_key",
    "request_file_input",
];

#[test]
fn request_goldens_decode_and_reencode() {
    for stem in REQUESTS {
        let req = oc::decode_request(&FIXTURES.read(&format!("{stem}.json"))).unwrap_or_else(|e| panic!("{stem}: {e}"));
        FIXTURES.golden(&format!("{stem}.ir.txt"), &format!("{req:#?}\n"));
        let body = oc::encode_request(&req).unwrap();
        FIXTURES.golden(&format!("{stem}.upstream.json"), &pretty_json(&body));
        // What we send decodes back to the same IR (modulo what OpenAI requests do not carry back).
        let again = oc::decode_request(&body).unwrap();
        let mut expected = req.clone();
        expected.stream_usage = expected.stream; // encode_request always asks for usage
        if let Some(Reasoning::Disabled) = expected.reasoning {
            expected.reasoning = None;
        }
        for m in &mut expected.messages {
            m.content.retain(|p| !matches!(p, Part::Thinking { .. } | Part::RedactedThinking { .. }));
        }
        assert_eq!(again, expected, "{stem}");
    }
}

#[test]
fn roundtrip_request_details() {
    let req = oc::decode_request(&FIXTURES.read("request_tool_roundtrip.json")).unwrap();
    // Developer message after the tool turn is hoisted to the system prompt, in order.
    assert_eq!(
        req.system,
        vec![Part::Text("You are a helpful assistant.".into()), Part::Text("Answer in one sentence.".into())]
    );
    assert_eq!(req.messages.len(), 3);
    // Data URL -> base64 image with its media type.
    assert!(matches!(&req.messages[0].content[1],
        Part::Image(Image { source: ImageSource::Base64 { media_type, .. }, .. }) if media_type == "image/png"));
    // reasoning_content -> leading Thinking part.
    assert!(matches!(&req.messages[1].content[0], Part::Thinking { text, signature: None } if text.starts_with("Two")));
    // Two tool messages merged into one user message, names filled from the calls.
    let names: Vec<_> = req.messages[2]
        .content
        .iter()
        .map(|p| match p {
            Part::ToolResult(r) => r.name.clone().unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(names, ["GetWeatherArgs", "get_stock_price"]);
    assert!(req.stream && req.stream_usage);
    assert_eq!(req.max_tokens, Some(1024));
}

fn invalid_field(body: &str) -> String {
    match oc::decode_request(body.as_bytes()) {
        Err(TranslateError::Invalid { field, .. }) => field,
        other => panic!("expected Invalid for {body}: {other:?}"),
    }
}

#[test]
fn empty_messages_are_refused_after_the_prompt_layer() {
    // A template may supply every message, so the decoder accepts `[]` and the engine calls
    // `require_messages` once templates and decorators ran.
    let req = oc::decode_request(br#"{"model":"m","messages":[]}"#).unwrap();
    match llm_gateway::llm::dialect::require_messages(llm_gateway::llm::ir::ClientDialect::OpenAi, &req) {
        Err(TranslateError::Invalid { field, message }) => {
            assert_eq!(field, "messages");
            assert!(message.starts_with("Invalid 'messages': empty array."), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rejects_what_openai_rejects() {
    let cases = [
        (r#"[]"#, "body"),
        (r#"{"messages":[{"role":"user","content":"hi"}]}"#, "model"),
        (r#"{"model":"m"}"#, "messages"),
        (r#"{"model":"m","messages":[{"role":"robot","content":"hi"}]}"#, "messages[0].role"),
        (r#"{"model":"m","messages":[{"content":"hi"}]}"#, "messages[0].role"),
        (r#"{"model":"m","messages":[{"role":"user"}]}"#, "messages[0].content"),
        (r#"{"model":"m","messages":[{"role":"user","content":[]}]}"#, "messages[0].content"),
        (
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"video","x":1}]}]}"#,
            "messages[0].content[0].type",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}"#,
            "messages[0].content[0].image_url.url",
        ),
        (
            r#"{"model":"m","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#,
            "messages[0].content[0].type",
        ),
        (r#"{"model":"m","messages":[{"role":"assistant"}]}"#, "messages[0].content"),
        (r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#, "messages[0].tool_call_id"),
        (r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":3}"#, "temperature"),
        (r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":"hot"}"#, "temperature"),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}"#,
            "stream_options",
        ),
        (r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":["a","b","c","d","e"]}"#, "stop"),
        (r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"sometimes"}"#, "tool_choice"),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{}}]}"#,
            "tools[0].function.name",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"xml"}}"#,
            "response_format.type",
        ),
        (r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"reasoning_effort":"max"}"#, "reasoning_effort"),
        (r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":0}"#, "n"),
        (r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"bogus":1}"#, "bogus"),
        (r#"{"model":"m","messages":[{"role":"user","content":"hi","name":7}]}"#, "messages[0].name"),
        (r#"{"model":"m","messages":[{"role":"assistant","content":"hi","name":["a"]}]}"#, "messages[0].name"),
        (
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png","detail":1}}]}]}"#,
            "messages[0].content[0].image_url.detail",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","strict":"yes"}}]}"#,
            "tools[0].function.strict",
        ),
    ];
    for (body, field) in cases {
        assert_eq!(invalid_field(body), field, "{body}");
    }
}

#[test]
fn fields_the_ir_cannot_carry_are_named() {
    let base = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"#;
    for (extra, field) in [
        (r#""logprobs":true"#, "logprobs"),
        (r#""top_logprobs":2"#, "top_logprobs"),
        (r#""logit_bias":{"50256":-100}"#, "logit_bias"),
        (r#""audio":{"voice":"alloy","format":"wav"}"#, "audio"),
        (r#""modalities":["text","audio"]"#, "modalities"),
        (r#""prediction":{"type":"content","content":"x"}"#, "prediction"),
        (r#""web_search_options":{}"#, "web_search_options"),
        (r#""functions":[{"name":"f"}]"#, "functions"),
        (r#""function_call":"auto""#, "function_call"),
    ] {
        let body = format!("{base}{extra}}}");
        match oc::decode_request(body.as_bytes()) {
            Err(TranslateError::Invalid { field: f, message }) => {
                assert_eq!(f, field);
                assert!(message.contains("non-OpenAI provider"), "{message}");
            }
            other => panic!("{body}: {other:?}"),
        }
    }
    // Harmless values and metadata are accepted.
    let ok = format!(
        r#"{base}"logprobs":false,"logit_bias":{{}},"modalities":["text"],"store":true,"metadata":{{"a":"b"}},"service_tier":"auto","temperature":null}}"#
    );
    oc::decode_request(ok.as_bytes()).unwrap();
    let legacy = r#"{"model":"m","messages":[{"role":"function","name":"f","content":"x"}]}"#;
    assert_eq!(invalid_field(legacy), "messages[0].role");
}

#[test]
fn names_strict_and_detail_are_carried() {
    let req = oc::decode_request(&FIXTURES.read("request_names_strict.json")).unwrap();
    let names: Vec<_> = req.messages.iter().map(|m| m.name.as_deref()).collect();
    assert_eq!(names, [Some("alice"), Some("alice"), Some("scheduler")]);
    assert_eq!(req.tools[0].strict, Some(true));
    assert!(matches!(&req.messages[1].content[1], Part::Image(Image { detail: Some(d), .. }) if d == "high"));
    // Tool messages have no name; null members are absent; a system name is not carried.
    let body = r#"{"model":"m","messages":[{"role":"system","name":"ops","content":"s"},
        {"role":"user","name":null,"content":[{"type":"image_url","image_url":{"url":"https://x/y.png","detail":null}}]}],
        "tools":[{"type":"function","function":{"name":"f","strict":null}}]}"#;
    let req = oc::decode_request(body.as_bytes()).unwrap();
    assert_eq!(req.messages[0].name, None);
    assert!(matches!(&req.messages[0].content[0], Part::Image(Image { detail: None, .. })));
    assert_eq!(req.tools[0].strict, None);
    // Encoded for OpenAI in OpenAI's places; an IR from another dialect (no names) adds none.
    let v: serde_json::Value = serde_json::from_slice(
        &oc::encode_request(&oc::decode_request(&FIXTURES.read("request_names_strict.json")).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(v["messages"][1]["name"], "alice");
    assert_eq!(v["messages"][3]["name"], "scheduler");
    assert_eq!(v["messages"][2]["content"][1]["image_url"]["detail"], "high");
    assert_eq!(v["tools"][0]["function"]["strict"], true);
    let v: serde_json::Value = serde_json::from_slice(&oc::encode_request(&anthropic_like_request()).unwrap()).unwrap();
    assert!(v["messages"].as_array().unwrap().iter().all(|m| m.get("name").is_none()));
}

#[test]
fn request_mapping_details() {
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":10,"stop":"END",
        "reasoning_effort":"none","tool_choice":"required","top_k":5}"#;
    let req = oc::decode_request(body.as_bytes()).unwrap();
    assert_eq!(req.max_tokens, Some(10));
    assert_eq!(req.stop, ["END"]);
    assert_eq!(req.reasoning, Some(Reasoning::Disabled));
    assert_eq!(req.top_k, Some(5));
    assert!(!req.stream_usage);
}

// ---------------------------------------------------------------- provider-side request encoding

fn anthropic_like_request() -> ChatRequest {
    ChatRequest {
        model: "gpt-4o".into(),
        system: vec![Part::Text("Be brief.".into()), Part::Text("Use tools.".into())],
        messages: vec![
            Message { role: Role::User, content: vec![Part::Text("Show me the chart".into())], name: None },
            Message {
                role: Role::Assistant,
                content: vec![
                    Part::Thinking { text: "I should read the file.".into(), signature: Some("sig".into()) },
                    Part::RedactedThinking { data: "opaque".into() },
                    Part::Text("Reading it.".into()),
                    Part::ToolCall(ToolCall {
                        id: "toolu_01".into(),
                        name: "read".into(),
                        arguments: r#"{"path":"chart.png"}"#.into(),
                        signature: None,
                    }),
                ],
                name: None,
            },
            Message {
                role: Role::User,
                content: vec![
                    Part::ToolResult(ToolResult {
                        call_id: "toolu_01".into(),
                        name: Some("read".into()),
                        content: vec![
                            Part::Text("chart.png (1x1)".into()),
                            Part::Image(
                                ImageSource::Base64 { media_type: "image/png".into(), data: "AAAA".into() }.into(),
                            ),
                        ],
                        is_error: true,
                    }),
                    Part::Text("What does it show?".into()),
                ],
                name: None,
            },
        ],
        max_tokens: Some(2000),
        stream: true,
        stream_usage: true,
        reasoning: Some(Reasoning::BudgetTokens(4096)),
        ..ChatRequest::default()
    }
}

#[test]
fn encode_request_from_anthropic_shaped_ir() {
    let body = oc::encode_request(&anthropic_like_request()).unwrap();
    FIXTURES.golden("ir_anthropic_like.upstream.json", &pretty_json(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["stream_options"]["include_usage"], true);
    assert_eq!(v["max_completion_tokens"], 2000);
    assert_eq!(v["reasoning_effort"], "medium");
    let roles: Vec<_> = v["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "user"]);
    // The image of the tool result follows in the user message, before the user's text.
    assert_eq!(v["messages"][4]["content"][0]["type"], "image_url");
    assert_eq!(v["messages"][4]["content"][0]["image_url"]["url"], "data:image/png;base64,AAAA");
    assert!(v["messages"][2].get("reasoning_content").is_none());

    let legacy = oc::encode_request_with(&anthropic_like_request(), oc::EncodeOptions { legacy_max_tokens: true });
    let v: serde_json::Value = serde_json::from_slice(&legacy.unwrap()).unwrap();
    assert_eq!(v["max_tokens"], 2000);
}

#[test]
fn encode_request_unsupported() {
    let base = || ChatRequest {
        model: "m".into(),
        messages: vec![Message { role: Role::User, content: vec![Part::Text("hi".into())], name: None }],
        ..ChatRequest::default()
    };
    for (req, field) in [
        (ChatRequest { top_k: Some(3), ..base() }, "top_k"),
        (ChatRequest { stop: vec!["a".into(); 5], ..base() }, "stop"),
        (ChatRequest { system: vec![Part::Image(ImageSource::Url("u".into()).into())], ..base() }, "system[0]"),
    ] {
        match oc::encode_request(&req) {
            Err(TranslateError::Unsupported { field: f, provider, .. }) => {
                assert_eq!((f.as_str(), provider), (field, "openai"));
            }
            other => panic!("{field}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------- responses

const RESPONSES: &[&str] = &["chat_completion", "chat_completion_tool_calls", "deepseek_reasoner_completion"];

#[test]
fn response_goldens_decode_and_reencode() {
    for stem in RESPONSES {
        let resp = oc::decode_response(&FIXTURES.read(&format!("{stem}.json"))).unwrap();
        FIXTURES.golden(&format!("{stem}.ir.txt"), &format!("{resp:#?}\n"));
        let body = oc::encode_response(&resp);
        FIXTURES.golden_json(&format!("{stem}.client.json"), &body);
        assert_eq!(oc::decode_response(&body).unwrap(), resp, "{stem}: encode/decode round trip");
    }
}

#[test]
fn response_details() {
    let resp = oc::decode_response(&FIXTURES.read("deepseek_reasoner_completion.json")).unwrap();
    assert!(matches!(&resp.content[0], Part::Thinking { .. }));
    assert_eq!(resp.usage.reasoning, Some(81));
    assert_eq!(resp.usage.source, UsageSource::Reported);
    let tools = oc::decode_response(&FIXTURES.read("chat_completion_tool_calls.json")).unwrap();
    assert_eq!(tools.stop_reason, Some(StopReason::ToolCalls));
    assert_eq!(tools.usage.cached_input, None, "absent details stay unknown");

    // Encoding an IR response without a stop reason or usage.
    let resp = ChatResponse {
        id: String::new(),
        model: "claude".into(),
        created: CREATED,
        content: vec![Part::ToolCall(ToolCall {
            id: "t".into(),
            name: "f".into(),
            arguments: "{}".into(),
            signature: None,
        })],
        ..ChatResponse::default()
    };
    let v: serde_json::Value = serde_json::from_slice(&oc::encode_response(&resp)).unwrap();
    assert_eq!(v["id"], "chatcmpl-gw-1700000000");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["choices"][0]["message"]["content"], serde_json::Value::Null);
    assert!(v.get("usage").is_none());
}

#[test]
fn decode_response_failures() {
    let e = oc::decode_response(b"<html>oops</html>").unwrap_err();
    assert_eq!((e.kind, e.status), (ErrorKind::Server, 502));
    assert!(e.message.contains("text/html"), "{}", e.message);
    let e = oc::decode_response(br#"{"id":"x","choices":[]}"#).unwrap_err();
    assert_eq!(e.status, 502);
    let e = oc::decode_response(br#"{"error":{"message":"bad","type":"invalid_request_error"}}"#).unwrap_err();
    assert_eq!((e.kind, e.message.as_str()), (ErrorKind::InvalidRequest, "bad"));
}

// ---------------------------------------------------------------- errors

#[test]
fn decode_error_shapes() {
    let e = oc::decode_error(401, &FIXTURES.read("error_invalid_api_key.json"));
    assert_eq!((e.kind, e.status), (ErrorKind::Authentication, 401));
    assert!(e.message.starts_with("Incorrect API key provided"));

    let e = oc::decode_error(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>");
    assert_eq!(
        e,
        ProviderError {
            kind: ErrorKind::Server,
            status: 502,
            message: "provider returned HTTP 502 with a text/html body".into()
        }
    );
    let e = oc::decode_error(503, b"");
    assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Overloaded, "provider returned HTTP 503 with an empty body"));
    let long = "x".repeat(5000);
    let e = oc::decode_error(500, long.as_bytes());
    assert!(e.message.len() < 300, "capped: {}", e.message.len());
    let e = oc::decode_error(429, br#"{"error":"slow down"}"#);
    assert_eq!((e.kind, e.message.as_str()), (ErrorKind::RateLimited, "slow down"));
    let e = oc::decode_error(422, br#"{"detail":"model field required"}"#);
    assert_eq!((e.kind, e.message.as_str()), (ErrorKind::InvalidRequest, "model field required"));
}

#[test]
fn encode_error_shapes() {
    let cases = [
        (
            ErrorKind::InvalidRequest,
            r#"{"error":{"message":"m","type":"invalid_request_error","param":null,"code":null}}"#,
        ),
        (
            ErrorKind::RateLimited,
            r#"{"error":{"message":"m","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}"#,
        ),
        (
            ErrorKind::Overloaded,
            r#"{"error":{"message":"m","type":"service_unavailable_error","param":null,"code":"server_is_overloaded"}}"#,
        ),
        (ErrorKind::Server, r#"{"error":{"message":"m","type":"server_error","param":null,"code":null}}"#),
    ];
    for (kind, expected) in cases {
        let body = oc::encode_error(&ProviderError { kind, status: kind.status(), message: "m".into() });
        assert_eq!(String::from_utf8(body).unwrap(), expected);
    }
}

// ---------------------------------------------------------------- streams

const STREAMS: &[&str] = &[
    "chat_stream_include_usage",
    "chat_stream_parallel_tool_calls",
    "chat_stream_refusal",
    "deepseek_reasoner_stream",
    "chat_stream_error",
];

fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<StreamEvent> {
    let mut dec = StreamDecoder::new();
    let mut out = Vec::new();
    for c in chunks {
        dec.feed(c, &mut out);
    }
    dec.finish(&mut out);
    let mut after = Vec::new();
    dec.finish(&mut after);
    dec.feed(b"data: [DONE]\n\n", &mut after);
    assert!(after.is_empty(), "nothing after the end: {after:?}");
    out
}

fn encode_events(events: &[StreamEvent], include_usage: bool) -> Vec<u8> {
    let mut enc = StreamEncoder::new(include_usage, CREATED);
    let mut out = Vec::new();
    for ev in events {
        enc.encode(ev, &mut out);
    }
    enc.finish(&mut out);
    let len = out.len();
    enc.encode(&StreamEvent::TextDelta { text: "late".into() }, &mut out);
    enc.finish(&mut out);
    assert_eq!(out.len(), len, "nothing after the end");
    out
}

#[test]
fn stream_goldens_every_split() {
    for stem in STREAMS {
        let input = FIXTURES.read(&format!("{stem}.sse"));
        let events = same_at_every_split(&input, |chunks| decode_chunks(chunks.iter().copied()));
        FIXTURES.golden(&format!("{stem}.ir.txt"), &format!("{events:#?}\n"));
        let terminal = events.iter().filter(|e| matches!(e, StreamEvent::Done | StreamEvent::Error(_))).count();
        assert_eq!(terminal, 1, "{stem}: exactly one terminal event");

        let encoded = encode_events(&events, true);
        FIXTURES.golden(&format!("{stem}.client.sse"), &String::from_utf8(encoded.clone()).unwrap());
        // The client-side encoding decodes back to the same events.
        assert_eq!(decode_chunks([encoded.as_slice()]), events, "{stem}: encode/decode round trip");
        let plain = String::from_utf8(encode_events(&events, false)).unwrap();
        assert!(!plain.contains("\"usage\""), "{stem}: no usage without include_usage");
        assert!(plain.ends_with("data: [DONE]\n\n"), "{stem}");
    }
}

#[test]
fn stream_decoder_details() {
    let events = decode_chunks([FIXTURES.read("chat_stream_parallel_tool_calls.sse").as_slice()]);
    let starts: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallStart { index, id, name } => Some((*index, id.as_str(), name.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        starts,
        [
            (0, "call_lQnnsesjFMWMQ5IeWPHzR4th", "GetWeatherArgs"),
            (1, "call_2xjOUgaCdiwAcl9ZBL9LyMUU", "get_stock_price")
        ]
    );
    let args: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallDelta { index: 1, arguments } => Some(arguments.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(args, r#"{"ticker": "AAPL", "exchange": "NASDAQ"}"#);

    let events = decode_chunks([FIXTURES.read("chat_stream_error.sse").as_slice()]);
    assert!(
        matches!(events.last(), Some(StreamEvent::Error(e)) if e.kind == ErrorKind::Server && e.message.starts_with("The server had an error"))
    );
}

#[test]
fn stream_decoder_endings() {
    let chunk = |delta: &str, finish: &str| {
        format!(r#"data: {{"id":"c","model":"m","choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}]}}"#)
            + "\n\n"
    };
    // Cut off mid-answer: an error.
    let events = decode_chunks([chunk(r#"{"content":"Hel"}"#, "null").as_bytes()]);
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Error(ProviderError {
            kind: ErrorKind::Server,
            status: 502,
            message: "provider stream ended early".into()
        }))
    );
    // Finished but no [DONE] (some compatible servers): Done.
    let events = decode_chunks([chunk(r#"{"content":"Hi"}"#, r#""stop""#).as_bytes()]);
    assert_eq!(events.last(), Some(&StreamEvent::Done));
    // Garbage: an error, and nothing after it.
    let events = decode_chunks([b"data: {not json\n\ndata: [DONE]\n\n".as_slice()]);
    assert!(matches!(events.as_slice(), [StreamEvent::Error(_)]), "{events:?}");
    // Ollama-style parallel calls reusing index 0 with new ids.
    let events = decode_chunks([format!(
        "{}{}data: [DONE]\n\n",
        chunk(r#"{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{}"}}]}"#, "null"),
        chunk(r#"{"tool_calls":[{"index":0,"id":"b","function":{"name":"g","arguments":"{}"}}]}"#, r#""tool_calls""#),
    )
    .as_bytes()]);
    let starts: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallStart { index, id, .. } => Some((*index, id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(starts, [(0, "a".to_string()), (1, "b".to_string())]);
}

#[test]
fn stream_encoder_without_start_and_with_error() {
    let events = [
        StreamEvent::ThinkingDelta { text: "hmm".into() },
        StreamEvent::ThinkingSignature { signature: "sig".into() },
        StreamEvent::TextDelta { text: "Hi".into() },
        StreamEvent::Usage(Usage {
            input: Some(3),
            output: Some(1),
            source: UsageSource::Reported,
            ..Usage::default()
        }),
        StreamEvent::Error(ProviderError { kind: ErrorKind::Overloaded, status: 529, message: "Overloaded".into() }),
    ];
    let out = String::from_utf8(encode_events(&events, true)).unwrap();
    FIXTURES.golden("ir_error_midstream.client.sse", &out);
    assert!(out.starts_with(r#"data: {"id":"chatcmpl-gw-1700000000","object":"chat.completion.chunk","created":1700000000,"model":"","choices":[{"index":0,"delta":{"role":"assistant","content":""}"#));
    assert!(out.ends_with("data: [DONE]\n\n"));
    assert!(out.contains(r#"data: {"error":{"message":"Overloaded","type":"service_unavailable_error","param":null,"code":"server_is_overloaded"}}"#));

    // finish() alone still yields a well-formed stream.
    let mut enc = StreamEncoder::new(true, CREATED);
    let mut out = Vec::new();
    enc.finish(&mut out);
    assert_eq!(out, b"data: [DONE]\n\n");
}
