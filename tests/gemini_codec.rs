//! Golden tests for the Gemini provider codec (`llm_gateway::llm::gemini`), from the
//! fixtures in `tests/fixtures/gemini/` (sources in its README). `BLESS=1` rewrites the
//! golden files in `tests/fixtures/gemini/golden/`.

use llm_gateway::llm::gemini::{self, decode_error, decode_response, encode_request, upstream_path, StreamDecoder};
use llm_gateway::llm::ir::{
    ChatRequest, ErrorKind, Image, ImageSource, Message, Part, Reasoning, ResponseFormat, Role, StopReason,
    StreamEvent, Tool, ToolCall, ToolChoice, ToolResult, TranslateError,
};
use serde_json::{json, Value};

mod common;
use common::{same_at_every_split, Fixtures};

const FIXTURES: Fixtures = Fixtures("gemini");

// -------------------------------------------------------------------------- responses

#[test]
fn response_fixtures_match_golden() {
    for name in [
        "generate_content_text",
        "generate_content_thinking",
        "generate_content_function_call",
        "generate_content_prompt_blocked",
        "generate_content_max_tokens",
    ] {
        let resp = decode_response(&FIXTURES.read(&format!("{name}.json"))).unwrap();
        FIXTURES.golden(&format!("{name}.ir.txt"), &format!("{resp:#?}\n"));
    }
}

#[test]
fn text_response_fields() {
    let resp = decode_response(&FIXTURES.read("generate_content_text.json")).unwrap();
    assert_eq!(resp.id, "tTCwacuEBMvnitYP06qsgQY");
    assert_eq!(resp.model, "gemini-2.0-flash");
    assert_eq!(resp.created, 1_773_154_485);
    assert_eq!(resp.stop_reason, Some(StopReason::Stop));
    assert_eq!(resp.usage.input, Some(8));
    assert_eq!(resp.usage.output, Some(19));
    assert_eq!(resp.usage.reasoning, None);
}

#[test]
fn function_call_response_ids_signature_and_usage() {
    let resp = decode_response(&FIXTURES.read("generate_content_function_call.json")).unwrap();
    assert_eq!(resp.stop_reason, Some(StopReason::ToolCalls));
    let calls: Vec<&ToolCall> =
        resp.content.iter().filter_map(|p| if let Part::ToolCall(c) = p { Some(c) } else { None }).collect();
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0].id.as_str(), calls[1].id.as_str()), ("call_0", "call_1"));
    assert_eq!(calls[0].signature.as_deref(), Some("<Signature_A>"));
    assert_eq!(calls[1].signature, None);
    assert_eq!(calls[0].arguments, r#"{"location":"Paris"}"#);
    // input = prompt (cached included) + tool-use prompt; output = candidates + thoughts.
    assert_eq!(resp.usage.input, Some(71 + 12));
    assert_eq!(resp.usage.cached_input, Some(32));
    assert_eq!(resp.usage.output, Some(30 + 140));
    assert_eq!(resp.usage.reasoning, Some(140));
}

#[test]
fn blocked_prompt_is_an_empty_content_filter_response() {
    let resp = decode_response(&FIXTURES.read("generate_content_prompt_blocked.json")).unwrap();
    assert!(resp.content.is_empty());
    assert_eq!(resp.stop_reason, Some(StopReason::ContentFilter));
    assert_eq!(resp.usage.input, Some(9));
    assert_eq!(resp.usage.output, None);
}

#[test]
fn function_call_id_from_the_wire_wins_and_missing_args_are_empty_object() {
    let body =
        br#"{"candidates":[{"content":{"parts":[{"functionCall":{"id":"abc","name":"f"}}]},"finishReason":"STOP"}]}"#;
    let resp = decode_response(body).unwrap();
    assert_eq!(
        resp.content,
        vec![Part::ToolCall(ToolCall { id: "abc".into(), name: "f".into(), arguments: "{}".into(), signature: None })]
    );
}

#[test]
fn finish_reasons() {
    for (wire, want) in [
        ("STOP", StopReason::Stop),
        ("MAX_TOKENS", StopReason::Length),
        ("SAFETY", StopReason::ContentFilter),
        ("RECITATION", StopReason::ContentFilter),
        ("BLOCKLIST", StopReason::ContentFilter),
        ("PROHIBITED_CONTENT", StopReason::ContentFilter),
        ("SPII", StopReason::ContentFilter),
        ("MALFORMED_FUNCTION_CALL", StopReason::Other),
        ("OTHER", StopReason::Other),
    ] {
        let body = format!(r#"{{"candidates":[{{"content":{{"parts":[{{"text":"x"}}]}},"finishReason":"{wire}"}}]}}"#);
        assert_eq!(decode_response(body.as_bytes()).unwrap().stop_reason, Some(want), "{wire}");
    }
}

#[test]
fn invalid_success_body_is_a_502() {
    let err = decode_response(b"<html>oops</html>").unwrap_err();
    assert_eq!((err.kind, err.status), (ErrorKind::Server, 502));
}

// ----------------------------------------------------------------------------- errors

#[test]
fn error_fixtures_match_golden() {
    let mut out = String::new();
    for (name, status) in [
        ("error_invalid_argument.json", 400),
        ("error_api_key_invalid.json", 400),
        ("error_resource_exhausted.json", 429),
        ("error_unavailable.json", 503),
        ("error_502.html", 502),
    ] {
        let err = decode_error(status, &FIXTURES.read(name));
        out.push_str(&format!("{name} (HTTP {status}):\n{err:#?}\n\n"));
    }
    FIXTURES.golden("errors.ir.txt", &out);
}

#[test]
fn error_kinds_by_status_string() {
    for (status, want) in [
        ("INVALID_ARGUMENT", ErrorKind::InvalidRequest),
        ("FAILED_PRECONDITION", ErrorKind::InvalidRequest),
        ("PERMISSION_DENIED", ErrorKind::PermissionDenied),
        ("NOT_FOUND", ErrorKind::NotFound),
        ("RESOURCE_EXHAUSTED", ErrorKind::RateLimited),
        ("INTERNAL", ErrorKind::Server),
        ("UNAVAILABLE", ErrorKind::Overloaded),
        ("DEADLINE_EXCEEDED", ErrorKind::Timeout),
        ("UNAUTHENTICATED", ErrorKind::Authentication),
    ] {
        let body = format!(r#"{{"error":{{"code":418,"message":"m","status":"{status}"}}}}"#);
        let err = decode_error(418, body.as_bytes());
        assert_eq!(err.kind, want, "{status}");
        assert_eq!((err.status, err.message.as_str()), (418, "m"));
    }
}

#[test]
fn non_json_errors_are_described_and_capped() {
    let err = decode_error(502, b"");
    assert_eq!(err.message, "provider returned HTTP 502 with an empty body");
    let long = "x".repeat(10_000);
    let err = decode_error(500, long.as_bytes());
    assert!(err.message.len() < 260, "{}", err.message);
    assert_eq!(err.kind, ErrorKind::Server);
    // The JSON-array form real Gemini uses for non-SSE streams.
    let err = decode_error(429, br#"[{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}]"#);
    assert_eq!((err.kind, err.message.as_str()), (ErrorKind::RateLimited, "quota"));
}

// ----------------------------------------------------------------------------- streams

fn decode_stream<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<StreamEvent> {
    let mut dec = StreamDecoder::new();
    let mut out = Vec::new();
    for chunk in chunks {
        dec.feed(chunk, &mut out);
    }
    dec.finish(&mut out);
    dec.finish(&mut out); // idempotent
    out
}

/// Whole, at every split point into two chunks, and in 1-byte chunks: all identical.
fn decode_every_split(input: &[u8]) -> Vec<StreamEvent> {
    same_at_every_split(input, |chunks| decode_stream(chunks.iter().copied()))
}

#[test]
fn stream_fixtures_match_golden_at_every_split() {
    for name in ["stream_text", "stream_function_call", "stream_truncated", "stream_error"] {
        let events = decode_every_split(&FIXTURES.read(&format!("{name}.sse")));
        FIXTURES.golden(&format!("{name}.ir.txt"), &format!("{events:#?}\n"));
    }
}

#[test]
fn stream_text_events() {
    let events = decode_every_split(&FIXTURES.read("stream_text.sse"));
    assert_eq!(
        events.first(),
        Some(&StreamEvent::Start {
            id: "tTCwacuEBMvnitYP06qsgQY".into(),
            model: "gemini-3.1-flash-lite-preview".into()
        })
    );
    let text: String = events
        .iter()
        .filter_map(|e| if let StreamEvent::TextDelta { text } = e { Some(text.as_str()) } else { None })
        .collect();
    assert_eq!(text, "Hello! How can I help you today?");
    assert!(events.contains(&StreamEvent::Stop { reason: StopReason::Stop, stop_sequence: None }));
    assert_eq!(events.last(), Some(&StreamEvent::Done));
    assert_eq!(events.iter().filter(|e| **e == StreamEvent::Done).count(), 1);
}

#[test]
fn stream_function_call_events() {
    let events = decode_every_split(&FIXTURES.read("stream_function_call.sse"));
    let starts: Vec<_> = events.iter().filter(|e| matches!(e, StreamEvent::ToolCallStart { .. })).collect();
    assert_eq!(starts.len(), 2);
    assert!(events.contains(&StreamEvent::ToolCallDelta { index: 1, arguments: r#"{"location":"London"}"#.into() }));
    assert!(events.contains(&StreamEvent::Stop { reason: StopReason::ToolCalls, stop_sequence: None }));
    let usage = events.iter().rev().find_map(|e| if let StreamEvent::Usage(u) = e { Some(*u) } else { None }).unwrap();
    assert_eq!((usage.input, usage.output, usage.reasoning), (Some(71), Some(170), Some(140)));
}

#[test]
fn stream_without_finish_reason_ends_early() {
    let events = decode_every_split(&FIXTURES.read("stream_truncated.sse"));
    match events.last() {
        Some(StreamEvent::Error(e)) => {
            assert_eq!((e.kind, e.status, e.message.as_str()), (ErrorKind::Server, 502, "provider stream ended early"));
        }
        other => panic!("expected early-end error, got {other:?}"),
    }
    assert!(!events.contains(&StreamEvent::Done));
}

#[test]
fn stream_error_event_is_terminal() {
    let events = decode_every_split(&FIXTURES.read("stream_error.sse"));
    match events.last() {
        Some(StreamEvent::Error(e)) => assert_eq!((e.kind, e.status), (ErrorKind::Overloaded, 503)),
        other => panic!("expected error, got {other:?}"),
    }
    assert_eq!(events.iter().filter(|e| matches!(e, StreamEvent::Error(_))).count(), 1);
}

#[test]
fn stream_garbage_event_is_an_error() {
    let events = decode_stream([&b"data: {not json\n\ndata: {\"candidates\":[]}\n\n"[..]]);
    assert_eq!(events.len(), 1);
    assert!(matches!(&events[0], StreamEvent::Error(e) if e.status == 502));
}

#[test]
fn stream_blocked_prompt_is_content_filter_then_done() {
    let events = decode_stream([
        &br#"data: {"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":9}}"#[..],
    ]);
    assert!(events.contains(&StreamEvent::Stop { reason: StopReason::ContentFilter, stop_sequence: None }));
    assert_eq!(events.last(), Some(&StreamEvent::Done));
}

// ----------------------------------------------------------------------------- requests

fn user(text: &str) -> Message {
    Message { role: Role::User, content: vec![Part::Text(text.into())], name: None }
}

fn base_request() -> ChatRequest {
    ChatRequest { model: "gemini-2.5-flash".into(), messages: vec![user("hello")], ..ChatRequest::default() }
}

fn encode_json(req: &ChatRequest) -> Value {
    serde_json::from_slice(&encode_request(req).unwrap()).unwrap()
}

fn golden_request(name: &str, req: &ChatRequest) {
    let pretty = serde_json::to_string_pretty(&encode_json(req)).unwrap();
    FIXTURES.golden(&format!("{name}.upstream.json"), &format!("{pretty}\n"));
}

fn weather_tool() -> Tool {
    Tool {
        name: "get_current_temperature".into(),
        description: Some("Gets the current temperature for a given location.".into()),
        parameters: json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"location": {"type": "string", "description": "The city name, e.g. San Francisco"}},
            "required": ["location"],
            "additionalProperties": false
        }),
        strict: None,
    }
}

fn call(id: &str, city: &str, sig: Option<&str>) -> Part {
    Part::ToolCall(ToolCall {
        id: id.into(),
        name: "get_current_temperature".into(),
        arguments: format!(r#"{{"location":"{city}"}}"#),
        signature: sig.map(str::to_string),
    })
}

fn result(id: &str, text: &str, is_error: bool) -> Message {
    Message {
        role: Role::User,
        content: vec![Part::ToolResult(ToolResult {
            call_id: id.into(),
            name: Some("get_current_temperature".into()),
            content: vec![Part::Text(text.into())],
            is_error,
        })],
        name: None,
    }
}

#[test]
fn request_text_with_parameters() {
    let req = ChatRequest {
        system: vec![Part::Text("You are a cat. Your name is Neko.".into())],
        messages: vec![
            user("Hello there"),
            Message { role: Role::Assistant, content: vec![Part::Text("Meow.".into())], name: None },
            user("How are you?"),
        ],
        max_tokens: Some(800),
        temperature: Some(1.0),
        top_p: Some(0.8),
        top_k: Some(10),
        stop: vec!["Title".into()],
        seed: Some(42),
        presence_penalty: Some(0.5),
        frequency_penalty: Some(0.25),
        n: Some(1),
        user: Some("end-user-1".into()),
        stream: true,
        stream_usage: true,
        ..base_request()
    };
    golden_request("request_text", &req);
}

#[test]
fn request_tool_loop_with_signatures_and_parallel_results() {
    let req = ChatRequest {
        model: "gemini-3-pro-preview".into(),
        messages: vec![
            user("What's the temperature in Paris and London?"),
            Message {
                role: Role::Assistant,
                content: vec![call("call_0", "Paris", Some("<Signature_A>")), call("call_1", "London", None)],
                name: None,
            },
            // OpenAI clients send one `tool` message per result: merged into one content.
            result("call_0", r#"{"temperature": 15, "unit": "C"}"#, false),
            result("call_1", "timeout contacting the weather service", true),
        ],
        tools: vec![weather_tool()],
        tool_choice: Some(ToolChoice::Auto),
        parallel_tool_calls: Some(true),
        ..base_request()
    };
    let body = encode_json(&req);
    assert_eq!(body["contents"].as_array().unwrap().len(), 3);
    assert_eq!(body["contents"][1]["parts"][0]["thoughtSignature"], "<Signature_A>");
    assert!(body["contents"][1]["parts"][1].get("thoughtSignature").is_none());
    assert_eq!(
        body["contents"][2]["parts"][0]["functionResponse"]["response"],
        json!({"temperature": 15, "unit": "C"})
    );
    assert_eq!(
        body["contents"][2]["parts"][1]["functionResponse"]["response"],
        json!({"error": "timeout contacting the weather service"})
    );
    assert!(body["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"].get("$schema").is_none());
    golden_request("request_tools", &req);
}

#[test]
fn request_plain_text_tool_result_is_wrapped_as_output() {
    let req = ChatRequest {
        messages: vec![
            user("weather?"),
            Message { role: Role::Assistant, content: vec![call("c", "Paris", Some("s"))], name: None },
            result("c", "15 degrees", false),
        ],
        ..base_request()
    };
    assert_eq!(
        encode_json(&req)["contents"][2]["parts"][0]["functionResponse"]["response"],
        json!({"output": "15 degrees"})
    );
}

#[test]
fn request_current_turn_calls_without_signature_get_the_placeholder() {
    let req = ChatRequest {
        model: "gemini-3-pro-preview".into(),
        messages: vec![
            user("first question"),
            Message { role: Role::Assistant, content: vec![call("a", "Rome", None)], name: None },
            result("a", "20", false),
            Message { role: Role::Assistant, content: vec![Part::Text("It is 20.".into())], name: None },
            user("and Paris and London?"),
            Message {
                role: Role::Assistant,
                content: vec![call("b", "Paris", None), call("c", "London", None)],
                name: None,
            },
            result("b", "15", false),
            result("c", "12", false),
        ],
        ..base_request()
    };
    let body = encode_json(&req);
    // Earlier turn: untouched. Current turn: the first call gets the placeholder.
    assert!(body["contents"][1]["parts"][0].get("thoughtSignature").is_none());
    assert_eq!(body["contents"][5]["parts"][0]["thoughtSignature"], "skip_thought_signature_validator");
    assert!(body["contents"][5]["parts"][1].get("thoughtSignature").is_none());
}

#[test]
fn request_signature_only_thinking_is_lent_to_the_following_call() {
    // What an Anthropic client sends back after a streamed Gemini tool call.
    let req = ChatRequest {
        messages: vec![
            user("weather in Paris?"),
            Message {
                role: Role::Assistant,
                content: vec![
                    Part::Thinking { text: String::new(), signature: Some("<Signature_A>".into()) },
                    call("call_0", "Paris", None),
                ],
                name: None,
            },
            result("call_0", "15", false),
        ],
        ..base_request()
    };
    let body = encode_json(&req);
    assert_eq!(
        body["contents"][1]["parts"],
        json!([{
            "functionCall": {"name": "get_current_temperature", "args": {"location": "Paris"}},
            "thoughtSignature": "<Signature_A>"
        }])
    );
}

#[test]
fn request_thinking_images_and_json_schema() {
    let req = ChatRequest {
        messages: vec![
            Message {
                role: Role::User,
                content: vec![
                    Part::Text("What is in these images?".into()),
                    Part::Image(
                        ImageSource::Base64 { media_type: "image/png".into(), data: "iVBORw0KGgo=".into() }.into(),
                    ),
                    Part::Image(ImageSource::Url("data:image/jpeg;base64,/9j/4AAQ".into()).into()),
                    Part::Image(ImageSource::Url("https://example.com/cat.JPG?size=large".into()).into()),
                    Part::Image(ImageSource::Url("https://example.com/render".into()).into()),
                ],
                name: None,
            },
            Message {
                role: Role::Assistant,
                content: vec![
                    Part::Thinking { text: "Two cats.".into(), signature: Some("c2ln".into()) },
                    Part::Text("Cats.".into()),
                    Part::Thinking { text: String::new(), signature: Some("dGFpbA==".into()) },
                ],
                name: None,
            },
            user("Describe them as JSON."),
        ],
        response_format: Some(ResponseFormat::JsonSchema {
            name: "cats".into(),
            schema: json!({"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}),
            strict: Some(true),
        }),
        reasoning: Some(Reasoning::BudgetTokens(1024)),
        ..base_request()
    };
    golden_request("request_thinking_images_json", &req);
}

#[test]
fn request_tool_choice_modes() {
    let mode = |choice: ToolChoice| {
        let req = ChatRequest { tools: vec![weather_tool()], tool_choice: Some(choice), ..base_request() };
        encode_json(&req)["toolConfig"]["functionCallingConfig"].clone()
    };
    assert_eq!(mode(ToolChoice::Auto), json!({"mode": "AUTO"}));
    assert_eq!(mode(ToolChoice::None), json!({"mode": "NONE"}));
    assert_eq!(mode(ToolChoice::Required), json!({"mode": "ANY"}));
    assert_eq!(
        mode(ToolChoice::Tool("get_current_temperature".into())),
        json!({"mode": "ANY", "allowedFunctionNames": ["get_current_temperature"]})
    );
}

#[test]
fn request_reasoning_variants() {
    let thinking = |model: &str, r: Reasoning| {
        let req = ChatRequest { model: model.into(), reasoning: Some(r), ..base_request() };
        encode_json(&req)["generationConfig"]["thinkingConfig"].clone()
    };
    assert_eq!(thinking("gemini-2.5-flash", Reasoning::Disabled), json!({"thinkingBudget": 0}));
    assert_eq!(
        thinking("gemini-2.5-pro", Reasoning::Effort("medium".into())),
        json!({"includeThoughts": true, "thinkingBudget": 8192})
    );
    assert_eq!(
        thinking("gemini-3-pro-preview", Reasoning::Effort("high".into())),
        json!({"includeThoughts": true, "thinkingLevel": "high"})
    );
    let req = ChatRequest { reasoning: Some(Reasoning::Effort("xhigh".into())), ..base_request() };
    assert!(
        matches!(encode_request(&req), Err(TranslateError::Unsupported { field, .. }) if field == "reasoning_effort")
    );
}

#[test]
fn request_json_object_mode() {
    let req = ChatRequest { response_format: Some(ResponseFormat::JsonObject), ..base_request() };
    assert_eq!(encode_json(&req)["generationConfig"], json!({"responseMimeType": "application/json"}));
    let req = ChatRequest { response_format: Some(ResponseFormat::Text), ..base_request() };
    assert!(encode_json(&req).get("generationConfig").is_none());
}

fn err(req: &ChatRequest) -> TranslateError {
    encode_request(req).unwrap_err()
}

#[test]
fn request_refusals_name_the_field() {
    let unsupported = |req: ChatRequest, want: &str| match err(&req) {
        TranslateError::Unsupported { field, provider, .. } => {
            assert_eq!((field.as_str(), provider), (want, gemini::PROVIDER));
        }
        other => panic!("expected Unsupported {want}, got {other:?}"),
    };
    unsupported(ChatRequest { stop: (0..6).map(|i| i.to_string()).collect(), ..base_request() }, "stop");
    unsupported(
        ChatRequest { tools: vec![weather_tool()], parallel_tool_calls: Some(false), ..base_request() },
        "parallel_tool_calls",
    );
    unsupported(
        ChatRequest {
            messages: vec![Message {
                role: Role::User,
                content: vec![
                    Part::Text("x".into()),
                    Part::Image(ImageSource::Url("ftp://example.com/a.png".into()).into()),
                ],
                name: None,
            }],
            ..base_request()
        },
        "messages[0].content[1].image_url",
    );
    unsupported(
        ChatRequest {
            messages: vec![
                user("x"),
                Message {
                    role: Role::Assistant,
                    content: vec![Part::RedactedThinking { data: "opaque".into() }],
                    name: None,
                },
            ],
            ..base_request()
        },
        "messages[1].content[0]",
    );
    unsupported(
        ChatRequest {
            system: vec![Part::Image(ImageSource::Url("https://example.com/a.png".into()).into())],
            ..base_request()
        },
        "system[0]",
    );
    let mut with_image_result = result("c", "x", false);
    if let Part::ToolResult(r) = &mut with_image_result.content[0] {
        r.content.push(Part::Image(ImageSource::Base64 { media_type: "image/png".into(), data: "AA==".into() }.into()));
    }
    unsupported(
        ChatRequest {
            messages: vec![
                user("x"),
                Message { role: Role::Assistant, content: vec![call("c", "Paris", None)], name: None },
                with_image_result,
            ],
            ..base_request()
        },
        "messages[2].content[0].content[1]",
    );
}

#[test]
fn request_invalid_inputs_name_the_field() {
    let invalid = |req: ChatRequest, want: &str| match err(&req) {
        TranslateError::Invalid { field, .. } => assert_eq!(field, want),
        other => panic!("expected Invalid {want}, got {other:?}"),
    };
    let mut nameless = result("c", "x", false);
    if let Part::ToolResult(r) = &mut nameless.content[0] {
        r.name = None;
    }
    invalid(
        ChatRequest {
            messages: vec![
                user("x"),
                Message { role: Role::Assistant, content: vec![call("c", "Paris", None)], name: None },
                nameless,
            ],
            ..base_request()
        },
        "messages[2].content[0].name",
    );
    let bad_args =
        Part::ToolCall(ToolCall { id: "c".into(), name: "f".into(), arguments: "[1,2]".into(), signature: None });
    invalid(
        ChatRequest {
            messages: vec![user("x"), Message { role: Role::Assistant, content: vec![bad_args], name: None }],
            ..base_request()
        },
        "messages[1].content[0].arguments",
    );
    invalid(ChatRequest { messages: vec![], ..base_request() }, "messages");
}

#[test]
fn request_round_trips_a_decoded_function_call_response() {
    let resp = decode_response(&FIXTURES.read("generate_content_function_call.json")).unwrap();
    let req = ChatRequest {
        model: "gemini-3-pro-preview".into(),
        messages: vec![
            user("What's the temperature in Paris and London?"),
            Message { role: Role::Assistant, content: resp.content.clone(), name: None },
            result("call_0", "15", false),
            result("call_1", "12", false),
        ],
        ..base_request()
    };
    let body = encode_json(&req);
    let parts = &body["contents"][1]["parts"];
    assert_eq!(parts[0]["thoughtSignature"], "<Signature_A>");
    assert_eq!(parts[0]["functionCall"]["args"], json!({"location": "Paris"}));
    assert!(parts[1].get("thoughtSignature").is_none());
}

// ------------------------------------------------------------------------------- paths

#[test]
fn upstream_paths() {
    assert_eq!(upstream_path("", "gemini-2.5-flash", false), "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(
        upstream_path("/v1beta/", "gemini-2.5-flash", true),
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(upstream_path("/gemini/v1", "models/gemini-pro", false), "/gemini/v1/models/gemini-pro:generateContent");
    assert_eq!(upstream_path("/v1beta", "a/b?c#d:e f", false), "/v1beta/models/a%2Fb%3Fc%23d%3Ae%20f:generateContent");
    assert_eq!(upstream_path("/v1beta", "é", false), "/v1beta/models/%C3%A9:generateContent");
}

#[test]
fn names_strict_and_detail_for_gemini() {
    let unsupported_field = |req: &ChatRequest| match err(req) {
        TranslateError::Unsupported { field, provider, .. } => {
            assert_eq!(provider, gemini::PROVIDER);
            field
        }
        other => panic!("expected Unsupported, got {other:?}"),
    };
    let image = |detail: Option<&str>| {
        let source = ImageSource::Base64 { media_type: "image/png".into(), data: "AA==".into() };
        Part::Image(Image { source, detail: detail.map(Into::into) })
    };
    let with_images = |images: Vec<Part>| ChatRequest {
        messages: vec![Message { role: Role::User, content: images, name: None }],
        ..base_request()
    };
    // One level for the request: explicit levels set it, auto and none follow.
    let req = with_images(vec![image(Some("low")), image(None), image(Some("auto")), image(Some("low"))]);
    assert_eq!(encode_json(&req)["generationConfig"], json!({"mediaResolution": "MEDIA_RESOLUTION_LOW"}));
    let req = with_images(vec![image(Some("high"))]);
    assert_eq!(encode_json(&req)["generationConfig"]["mediaResolution"], "MEDIA_RESOLUTION_HIGH");
    assert!(encode_json(&with_images(vec![image(Some("auto"))])).get("generationConfig").is_none());
    assert_eq!(
        unsupported_field(&with_images(vec![image(Some("low")), image(Some("high"))])),
        "messages[0].content[1].detail"
    );
    assert_eq!(unsupported_field(&with_images(vec![image(Some("original"))])), "messages[0].content[0].detail");
    // strict: false is the default and accepted; true is refused.
    let tool = |strict| ChatRequest { tools: vec![Tool { strict, ..weather_tool() }], ..base_request() };
    assert!(encode_request(&tool(Some(false))).is_ok());
    assert_eq!(unsupported_field(&tool(Some(true))), "tools[0].strict");
    // Names: dropped with one participant per role, refused with two.
    let named = |role, name: &str| Message { role, content: vec![Part::Text("x".into())], name: Some(name.into()) };
    let req = ChatRequest { messages: vec![named(Role::User, "a"), named(Role::Assistant, "m")], ..base_request() };
    assert!(encode_json(&req)["contents"].as_array().unwrap().iter().all(|c| c.get("name").is_none()));
    let req = ChatRequest { messages: vec![named(Role::User, "a"), named(Role::User, "b")], ..base_request() };
    assert_eq!(unsupported_field(&req), "messages[1].name");
}

/// OpenAI `n` -> `candidateCount` (GenerationConfig); the candidates come back as choices.
#[test]
fn request_n_is_candidate_count() {
    let req = ChatRequest { n: Some(3), ..base_request() };
    assert_eq!(encode_json(&req)["generationConfig"]["candidateCount"], json!(3));
}
