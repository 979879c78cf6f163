//! Anthropic Messages codec: golden tests over `tests/fixtures/anthropic/` (BLESS=1
//! rewrites `golden/`), stream re-feeding at every split point, validation and mapping.

use llm_gateway::llm::anthropic::{
    decode_error, decode_request, decode_response, encode_error, encode_request, encode_response, StreamDecoder,
    StreamEncoder, DEFAULT_MAX_TOKENS,
};
use llm_gateway::llm::ir::*;
use llm_gateway::usage::{Usage, UsageSource};
use serde_json::{json, Value};

mod common;
use common::{pretty_json, same_at_every_split, stem, Fixtures};

const FIXTURES: Fixtures = Fixtures("anthropic");

// ============================================================================= requests

#[test]
fn request_fixtures_decode_and_reencode() {
    for name in FIXTURES.names("request_", ".json") {
        let ir = decode_request(&FIXTURES.read(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        FIXTURES.golden(&format!("{}.ir.txt", stem(&name)), &format!("{ir:#?}\n"));
        let body = encode_request(&ir).unwrap_or_else(|e| panic!("{name}: {e}"));
        FIXTURES.golden(&format!("{}.upstream.json", stem(&name)), &pretty_json(&body));
        // What we send upstream decodes back to the same IR (it is a valid client request too).
        let again = decode_request(&body).unwrap();
        assert_eq!(again, ir, "{name}: re-decoded upstream body differs");
    }
}

#[test]
fn claude_code_request() {
    let ir = decode_request(&FIXTURES.read("request_claude_code.json")).unwrap();
    let five_minutes = CacheControl::default();
    assert_eq!(ir.system.len(), 4, "both system blocks kept, each with its cache breakpoint after it");
    assert_eq!(ir.system[0], Part::Text("You are Claude Code, Anthropic's official CLI for Claude.".into()));
    assert_eq!(ir.system[1], Part::CachePoint(five_minutes.clone()));
    assert_eq!(ir.system[3], Part::CachePoint(five_minutes.clone()));
    assert_eq!(ir.cache.tools, [(1, five_minutes.clone())], "the Read tool's cache_control");
    assert_eq!(ir.cache.automatic, None);
    assert_eq!(ir.reasoning, Some(Reasoning::BudgetTokens(31999)));
    assert_eq!(ir.max_tokens, Some(32000));
    assert_eq!(ir.temperature, Some(1.0));
    assert!(ir.stream && ir.stream_usage);
    assert!(ir.user.as_deref().unwrap().starts_with("user_"));
    assert_eq!(ir.tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["Bash", "Read"]);
    assert_eq!(ir.tools[1].parameters["additionalProperties"], json!(false));
    assert_eq!(ir.messages.len(), 5);
    let Part::Thinking { signature, .. } = &ir.messages[1].content[0] else { panic!() };
    assert!(signature.as_deref().unwrap().starts_with("ErUB"));
    let Part::ToolCall(call) = &ir.messages[1].content[2] else { panic!() };
    assert_eq!(call.name, "Bash");
    assert_eq!(serde_json::from_str::<Value>(&call.arguments).unwrap()["command"], "cargo build 2>&1 | tail -20");
    let Part::ToolResult(r) = &ir.messages[2].content[0] else { panic!() };
    assert_eq!(r.name.as_deref(), Some("Bash"), "name filled from the matching tool_use");
    assert!(!r.is_error);
    let Part::ToolResult(r) = &ir.messages[4].content[0] else { panic!() };
    assert_eq!(r.name.as_deref(), Some("Read"));
    assert!(matches!(&r.content[..], [Part::Text(t)] if t.contains("cfg.run()")));
    assert!(matches!(&ir.messages[4].content[1], Part::Text(t) if t.contains("TodoWrite")));
    assert_eq!(ir.messages[4].content[2], Part::CachePoint(five_minutes));
    assert_eq!(ir.messages[4].content.len(), 3);
}

#[test]
fn request_features_mapping() {
    let ir = decode_request(&FIXTURES.read("request_features.json")).unwrap();
    assert_eq!(ir.tool_choice, Some(ToolChoice::Tool("get_weather".into())));
    assert_eq!(ir.parallel_tool_calls, Some(false));
    assert_eq!(ir.stop, ["\n\nHuman:", "END"]);
    assert_eq!((ir.temperature, ir.top_p, ir.top_k), (Some(0.5), Some(0.9), Some(40)));
    assert!(
        matches!(&ir.messages[0].content[0], Part::Image(Image { source: ImageSource::Base64 { media_type, .. }, .. }) if media_type == "image/jpeg")
    );
    assert!(
        matches!(&ir.messages[0].content[1], Part::Image(Image { source: ImageSource::Url(u), .. }) if u.starts_with("https://"))
    );
    let Part::ToolResult(r) = &ir.messages[2].content[0] else { panic!() };
    assert_eq!(r.name.as_deref(), Some("get_weather"));
}

fn err(body: Value) -> TranslateError {
    decode_request(body.to_string().as_bytes()).unwrap_err()
}

fn invalid_field(body: Value) -> String {
    match err(body) {
        TranslateError::Invalid { field, .. } => field,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn base() -> Value {
    json!({"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]})
}

fn with(mut v: Value, key: &str, val: Value) -> Value {
    v[key] = val;
    v
}

#[test]
fn request_validation() {
    assert_eq!(invalid_field(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})), "max_tokens");
    assert_eq!(invalid_field(json!({"max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]})), "model");
    assert_eq!(invalid_field(with(base(), "max_tokens", json!(0))), "max_tokens");
    // An empty list decodes (a template may fill it); the engine refuses it after the prompt
    // layer with `dialect::require_messages`.
    let empty = decode_request(with(base(), "messages", json!([])).to_string().as_bytes()).unwrap();
    let refused = llm_gateway::llm::dialect::require_messages(ClientDialect::Anthropic, &empty).unwrap_err();
    assert!(matches!(refused, TranslateError::Invalid { field, .. } if field == "messages"));
    assert_eq!(invalid_field(with(base(), "messages", json!([{"role": "system", "content": "x"}]))), "messages.0.role");
    assert_eq!(invalid_field(with(base(), "messages", json!([{"role": "user", "content": ""}]))), "messages.0");
    assert_eq!(invalid_field(with(base(), "messages", json!([{"role": "user", "content": 3}]))), "messages.0.content");
    assert_eq!(invalid_field(with(base(), "frequency_penalty", json!(1))), "frequency_penalty");
    assert_eq!(invalid_field(with(base(), "temperature", json!(1.5))), "temperature");
    assert_eq!(invalid_field(with(base(), "system", json!([{"type": "image"}]))), "system.0.type");
    assert_eq!(invalid_field(with(base(), "tool_choice", json!({"type": "required"}))), "tool_choice.type");
    assert_eq!(invalid_field(with(base(), "tools", json!([{"name": "x"}]))), "tools.0.input_schema");
    assert_eq!(
        invalid_field(with(base(), "thinking", json!({"type": "enabled", "budget_tokens": 512}))),
        "thinking.budget_tokens"
    );
    assert_eq!(
        invalid_field(with(base(), "thinking", json!({"type": "enabled", "budget_tokens": 2048}))),
        "max_tokens"
    );
    let img = json!([{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "x"}}]}]);
    assert_eq!(invalid_field(with(base(), "messages", img)), "messages.0.content.0.source.media_type");
    let tool_use_in_user =
        json!([{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "n", "input": {}}]}]);
    assert_eq!(invalid_field(with(base(), "messages", tool_use_in_user)), "messages.0.content.0.type");
    assert!(matches!(decode_request(b"not json"), Err(TranslateError::Invalid { .. })));
    assert!(matches!(decode_request(b"[1]"), Err(TranslateError::Invalid { .. })));
}

#[test]
fn request_tool_pairing_rules() {
    let orphan_result = json!([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "r"}]}
    ]);
    match err(with(base(), "messages", orphan_result)) {
        TranslateError::Invalid { field, message } => {
            assert_eq!(field, "messages.2.content.0");
            assert!(message.contains("unexpected `tool_use_id`"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let unanswered = json!([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}}]},
        {"role": "user", "content": "what?"}
    ]);
    match err(with(base(), "messages", unanswered)) {
        TranslateError::Invalid { field, message } => {
            assert_eq!(field, "messages.1");
            assert!(message.contains("toolu_a"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // A trailing tool_use (last turn), assistant-first history, consecutive same-role
    // messages (merged into one turn by the API) and an empty final assistant are valid.
    let ok = json!([
        {"role": "assistant", "content": "Earlier I said hi."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t2", "name": "g", "input": {"a": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2"}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": true, "content": "boom"}]},
        {"role": "assistant", "content": ""}
    ]);
    let ir = decode_request(with(base(), "messages", ok).to_string().as_bytes()).unwrap();
    let Part::ToolResult(r) = &ir.messages[5].content[0] else { panic!() };
    assert!(r.is_error && r.name.as_deref() == Some("f"));
    assert!(ir.messages[6].content.is_empty());
}

#[test]
fn request_unsupported_features_name_the_field() {
    let cases = [
        (
            with(base(), "messages", json!([{"role": "user", "content": [{"type": "hologram", "source": "s"}]}])),
            "messages.0.content.0.type",
        ),
        (
            with(
                base(),
                "messages",
                json!([{"role": "user", "content": [{"type": "document", "source": {"type": "file", "file_id": "f"}}]}]),
            ),
            "messages.0.content.0.source.type",
        ),
        (
            with(
                base(),
                "messages",
                json!([{"role": "user", "content": [{"type": "document", "citations": {"enabled": true},
                    "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]}]),
            ),
            "messages.0.content.0.citations",
        ),
        (
            with(
                base(),
                "messages",
                json!([{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]),
            ),
            "messages.0.content.0.source.type",
        ),
    ];
    for (body, want) in cases {
        match err(body) {
            TranslateError::Unsupported { field, .. } => assert_eq!(field, want),
            other => panic!("{want}: {other:?}"),
        }
    }
}

#[test]
fn request_thinking_and_output_config() {
    let r = |v: Value| decode_request(v.to_string().as_bytes()).unwrap();
    assert_eq!(r(with(base(), "thinking", json!({"type": "disabled"}))).reasoning, Some(Reasoning::Disabled));
    assert_eq!(
        r(with(base(), "thinking", json!({"type": "adaptive"}))).reasoning,
        Some(Reasoning::Effort("high".into()))
    );
    let adaptive_low =
        with(with(base(), "thinking", json!({"type": "adaptive"})), "output_config", json!({"effort": "low"}));
    assert_eq!(r(adaptive_low).reasoning, Some(Reasoning::Effort("low".into())));
    assert_eq!(
        r(with(base(), "output_config", json!({"effort": "max"}))).reasoning,
        Some(Reasoning::Effort("max".into()))
    );
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let fmt = r(with(base(), "output_config", json!({"format": {"type": "json_schema", "schema": schema}})));
    assert_eq!(fmt.response_format, Some(ResponseFormat::JsonSchema { name: "output".into(), schema, strict: None }));
    assert_eq!(fmt.reasoning, None);
}

// ----------------------------------------------------------------------------- encode (provider)

fn user(text: &str) -> Message {
    Message { role: Role::User, content: vec![Part::Text(text.into())], name: None }
}

fn ir_req() -> ChatRequest {
    ChatRequest { model: "claude-x".into(), messages: vec![user("hi")], ..ChatRequest::default() }
}

fn encoded(req: &ChatRequest) -> Value {
    serde_json::from_slice(&encode_request(req).unwrap()).unwrap()
}

fn unsupported_field(req: &ChatRequest) -> String {
    match encode_request(req) {
        Err(TranslateError::Unsupported { field, provider, .. }) => {
            assert_eq!(provider, "anthropic");
            field
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn encode_request_defaults_and_unsupported() {
    let v = encoded(&ir_req());
    assert_eq!(
        v,
        json!({"model": "claude-x", "max_tokens": DEFAULT_MAX_TOKENS, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
    );
    assert_eq!(unsupported_field(&ChatRequest { seed: Some(1), ..ir_req() }), "seed");
    assert_eq!(unsupported_field(&ChatRequest { frequency_penalty: Some(0.1), ..ir_req() }), "frequency_penalty");
    assert_eq!(unsupported_field(&ChatRequest { presence_penalty: Some(0.1), ..ir_req() }), "presence_penalty");
    assert_eq!(unsupported_field(&ChatRequest { n: Some(2), ..ir_req() }), "n");
    assert_eq!(
        unsupported_field(&ChatRequest { response_format: Some(ResponseFormat::JsonObject), ..ir_req() }),
        "response_format"
    );
    assert_eq!(
        unsupported_field(&ChatRequest { reasoning: Some(Reasoning::Effort("extreme".into())), ..ir_req() }),
        "reasoning_effort"
    );
    assert!(encode_request(&ChatRequest { n: Some(1), ..ir_req() }).is_ok());
    let schema = json!({"type": "object"});
    let v = encoded(&ChatRequest {
        response_format: Some(ResponseFormat::JsonSchema {
            name: "x".into(),
            schema: schema.clone(),
            strict: Some(true),
        }),
        user: Some("u-1".into()),
        ..ir_req()
    });
    assert_eq!(v["output_config"], json!({"format": {"type": "json_schema", "schema": schema}}));
    assert_eq!(v["metadata"], json!({"user_id": "u-1"}));
}

#[test]
fn encode_request_reasoning_table() {
    let think = |r: Reasoning, max: Option<u64>| {
        let v = encoded(&ChatRequest { reasoning: Some(r), max_tokens: max, ..ir_req() });
        (v["thinking"].clone(), v["max_tokens"].as_u64().unwrap())
    };
    let enabled = |b: u64| json!({"type": "enabled", "budget_tokens": b});
    assert_eq!(think(Reasoning::Effort("low".into()), None), (enabled(1024), 1024 + 4096));
    assert_eq!(think(Reasoning::Effort("minimal".into()), None), (enabled(1024), 1024 + 4096));
    assert_eq!(think(Reasoning::Effort("medium".into()), None), (enabled(4096), 4096 + 4096));
    assert_eq!(think(Reasoning::Effort("high".into()), Some(20000)), (enabled(16384), 20000));
    assert_eq!(think(Reasoning::Effort("none".into()), None), (json!({"type": "disabled"}), 4096));
    assert_eq!(think(Reasoning::BudgetTokens(2000), Some(3000)), (enabled(2000), 3000));
    assert_eq!(think(Reasoning::Disabled, None), (json!({"type": "disabled"}), 4096));
    // An effort's budget fits under the client's cap (Anthropic: max_tokens > budget_tokens,
    // budget >= 1024); a cap too small for any budget leaves thinking off.
    assert_eq!(think(Reasoning::Effort("medium".into()), Some(2048)), (enabled(2047), 2048));
    assert_eq!(think(Reasoning::Effort("medium".into()), Some(4096)), (enabled(4095), 4096));
    assert_eq!(think(Reasoning::Effort("medium".into()), Some(4097)), (enabled(4096), 4097));
    assert_eq!(think(Reasoning::Effort("low".into()), Some(1025)), (enabled(1024), 1025));
    assert_eq!(think(Reasoning::Effort("low".into()), Some(1024)), (Value::Null, 1024));
    assert_eq!(think(Reasoning::Effort("high".into()), Some(500)), (Value::Null, 500));
    // An explicit budget is the client's own: sent as given.
    assert_eq!(think(Reasoning::BudgetTokens(4096), Some(2048)), (enabled(4096), 2048));
}

#[test]
fn encode_request_tool_choice_and_parallel() {
    let tool = Tool { name: "f".into(), description: None, parameters: json!({"type": "object"}), strict: None };
    let tc = |choice: Option<ToolChoice>, parallel: Option<bool>, tools: bool| {
        let req = ChatRequest {
            tool_choice: choice,
            parallel_tool_calls: parallel,
            tools: if tools { vec![tool.clone()] } else { vec![] },
            ..ir_req()
        };
        encoded(&req).get("tool_choice").cloned()
    };
    assert_eq!(tc(None, None, true), None);
    assert_eq!(tc(None, Some(false), true), Some(json!({"type": "auto", "disable_parallel_tool_use": true})));
    assert_eq!(tc(Some(ToolChoice::Required), None, true), Some(json!({"type": "any"})));
    assert_eq!(
        tc(Some(ToolChoice::Tool("f".into())), Some(false), true),
        Some(json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true}))
    );
    assert_eq!(tc(Some(ToolChoice::None), Some(false), true), Some(json!({"type": "none"})));
    assert_eq!(tc(Some(ToolChoice::Auto), None, false), None, "no tool_choice without tools");
    assert_eq!(tc(Some(ToolChoice::Auto), Some(true), true), Some(json!({"type": "auto"})));
}

#[test]
fn encode_request_history_from_other_dialects() {
    // As the OpenAI decoder produces it: system text, a data: URL image, an assistant turn
    // with unsigned reasoning and two calls, results as separate user messages followed by
    // a user text message.
    let req = ChatRequest {
        system: vec![Part::Text("sys one".into()), Part::Text("sys two".into())],
        messages: vec![
            Message {
                role: Role::User,
                content: vec![
                    Part::Text("look".into()),
                    Part::Image(ImageSource::Url("data:image/png;base64,iVBORw0K".into()).into()),
                ],
                name: None,
            },
            Message {
                role: Role::Assistant,
                content: vec![
                    Part::Thinking { text: "unsigned".into(), signature: None },
                    Part::ToolCall(ToolCall {
                        id: "c1".into(),
                        name: "f".into(),
                        arguments: "{\"a\":1}".into(),
                        signature: None,
                    }),
                    Part::ToolCall(ToolCall {
                        id: "c2".into(),
                        name: "g".into(),
                        arguments: String::new(),
                        signature: None,
                    }),
                ],
                name: None,
            },
            Message {
                role: Role::User,
                content: vec![Part::ToolResult(ToolResult {
                    call_id: "c1".into(),
                    name: Some("f".into()),
                    content: vec![Part::Text("one".into())],
                    is_error: false,
                })],
                name: None,
            },
            Message {
                role: Role::User,
                content: vec![
                    Part::Text("and also".into()),
                    Part::ToolResult(ToolResult {
                        call_id: "c2".into(),
                        name: None,
                        content: vec![
                            Part::Text("a".into()),
                            Part::Image(ImageSource::Url("https://x/y.png".into()).into()),
                        ],
                        is_error: true,
                    }),
                ],
                name: None,
            },
        ],
        ..ir_req()
    };
    FIXTURES.golden("encode_from_openai_history.upstream.json", &pretty_json(&encode_request(&req).unwrap()));
    let v = encoded(&req);
    assert_eq!(v["messages"].as_array().unwrap().len(), 3, "consecutive user messages merged");
    assert_eq!(v["messages"][2]["content"][0]["type"], "tool_result", "tool results first");
    assert_eq!(v["messages"][2]["content"][2]["type"], "text");
    assert_eq!(
        v["messages"][0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0K"})
    );
    assert_eq!(v["messages"][1]["content"][0]["type"], "tool_use", "unsigned thinking dropped");
    assert_eq!(v["messages"][1]["content"][1]["input"], json!({}));
    let bad = ChatRequest {
        messages: vec![Message {
            role: Role::Assistant,
            content: vec![Part::ToolCall(ToolCall {
                id: "c".into(),
                name: "f".into(),
                arguments: "[1]".into(),
                signature: None,
            })],
            name: None,
        }],
        ..ir_req()
    };
    assert!(
        matches!(encode_request(&bad), Err(TranslateError::Invalid { field, .. }) if field == "messages.0.content.0.arguments")
    );
    let img_system = ChatRequest { system: vec![Part::Image(ImageSource::Url("https://x".into()).into())], ..ir_req() };
    assert_eq!(unsupported_field(&img_system), "system");
}

// ============================================================================= responses

#[test]
fn response_fixtures_decode_and_reencode() {
    for name in FIXTURES.names("response_", ".json") {
        let ir = decode_response(&FIXTURES.read(&name)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        FIXTURES.golden(&format!("{}.ir.txt", stem(&name)), &format!("{ir:#?}\n"));
        let body = encode_response(&ir);
        FIXTURES.golden(&format!("{}.client.json", stem(&name)), &pretty_json(&body));
        assert_eq!(decode_response(&body).unwrap(), ir, "{name}: round trip");
    }
}

#[test]
fn response_usage_and_stop_mapping() {
    let ir = decode_response(&FIXTURES.read("response_text.json")).unwrap();
    assert_eq!(
        ir.usage,
        Usage {
            input: Some(2095 + 2051 + 2051),
            output: Some(503),
            cached_input: Some(2051),
            cache_write: Some(2051),
            cache_write_1h: Some(0),
            reasoning: None,
            source: UsageSource::Reported
        }
    );
    let ir = decode_response(&FIXTURES.read("response_stop_sequence.json")).unwrap();
    assert_eq!((ir.stop_reason, ir.stop_sequence.as_deref()), (Some(StopReason::Stop), Some("5")));
    let ir = decode_response(&FIXTURES.read("response_thinking_tool_use.json")).unwrap();
    assert_eq!(ir.stop_reason, Some(StopReason::ToolCalls));
    assert_eq!(ir.usage.reasoning, Some(120));
    for (wire, want) in [
        ("end_turn", StopReason::Stop),
        ("max_tokens", StopReason::Length),
        ("model_context_window_exceeded", StopReason::Length),
        ("tool_use", StopReason::ToolCalls),
        ("refusal", StopReason::ContentFilter),
        ("pause_turn", StopReason::Other),
        ("something_new", StopReason::Other),
    ] {
        let body = json!({"id": "m", "model": "x", "content": [], "stop_reason": wire, "usage": {"input_tokens": 1, "output_tokens": 1}});
        assert_eq!(decode_response(body.to_string().as_bytes()).unwrap().stop_reason, Some(want), "{wire}");
    }
    assert!(decode_response(b"<html>").is_err());
}

/// The usage shape of a mixed-TTL cache write (the prompt-caching guide's `cache_creation`).
fn one_hour_cache_usage(output: u64) -> Usage {
    Usage {
        input: Some(20 + 1000),
        output: Some(output),
        cached_input: Some(0),
        cache_write: Some(1000),
        cache_write_1h: Some(750),
        reasoning: None,
        source: UsageSource::Reported,
    }
}

#[test]
fn one_hour_cache_writes_are_read_and_written_back() {
    let ir = decode_response(&FIXTURES.read("response_cache_1h.json")).unwrap();
    assert_eq!(ir.usage, one_hour_cache_usage(12));
    let back: Value = serde_json::from_slice(&encode_response(&ir)).unwrap();
    assert_eq!(
        back["usage"]["cache_creation"],
        json!({"ephemeral_5m_input_tokens": 250, "ephemeral_1h_input_tokens": 750})
    );
    // Streams: message_start has the split, message_delta leaves it out; it survives.
    let events = decode_every_split(&FIXTURES.read("stream_cache_1h.sse"));
    assert_eq!(essence(&events).1.unwrap(), one_hour_cache_usage(4));
    let sse = encode_str(&events);
    let delta = data_of(&sse).into_iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(delta["usage"]["cache_creation"]["ephemeral_1h_input_tokens"], 750);
    // A split larger than all writes is held to the writes.
    let body = json!({"id": "m", "model": "x", "content": [], "stop_reason": "end_turn", "usage": {
        "input_tokens": 1, "output_tokens": 1, "cache_creation_input_tokens": 10,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 99}}});
    assert_eq!(decode_response(body.to_string().as_bytes()).unwrap().usage.cache_write_1h, Some(10));
}

#[test]
fn encode_response_edge_cases() {
    let resp = ChatResponse {
        id: "msg_1".into(),
        model: "gpt-x".into(),
        content: vec![
            Part::Thinking { text: "hm".into(), signature: None },
            Part::ToolCall(ToolCall {
                id: "call_1".into(),
                name: "f".into(),
                arguments: "not json".into(),
                signature: None,
            }),
            Part::ToolCall(ToolCall { id: "call_2".into(), name: "g".into(), arguments: "".into(), signature: None }),
        ],
        stop_reason: Some(StopReason::ContentFilter),
        usage: Usage { input: Some(10), output: Some(3), cached_input: Some(4), ..Usage::default() },
        ..ChatResponse::default()
    };
    let v: Value = serde_json::from_slice(&encode_response(&resp)).unwrap();
    assert_eq!(v["content"][0], json!({"type": "thinking", "thinking": "hm", "signature": ""}));
    assert_eq!(v["content"][1]["input"], json!("not json"));
    assert_eq!(v["content"][2]["input"], json!({}));
    assert_eq!(v["stop_reason"], "refusal");
    assert_eq!(v["usage"], json!({"input_tokens": 6, "cache_read_input_tokens": 4, "output_tokens": 3}));
}

// ============================================================================= errors

#[test]
fn provider_errors() {
    let e = decode_error(529, &FIXTURES.read("error_overloaded.json"));
    assert_eq!(e, ProviderError { kind: ErrorKind::Overloaded, status: 529, message: "Overloaded".into() });
    let e = decode_error(400, &FIXTURES.read("error_invalid_request.json"));
    assert_eq!((e.kind, e.status, e.message.as_str()), (ErrorKind::InvalidRequest, 400, "max_tokens: Field required"));
    let e = decode_error(502, &FIXTURES.read("error_502.html"));
    assert_eq!(
        e,
        ProviderError {
            kind: ErrorKind::Server,
            status: 502,
            message: "provider returned HTTP 502 with a text/html body".into()
        }
    );
    let e = decode_error(503, b"");
    assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Overloaded, "provider returned HTTP 503 with an empty body"));
    let long = "x".repeat(5000);
    let e = decode_error(500, long.as_bytes());
    assert!(e.message.len() < 260, "{}", e.message.len());
    let e = decode_error(402, br#"{"type":"error","error":{"type":"billing_error","message":"low balance"}}"#);
    assert_eq!((e.kind, e.status), (ErrorKind::PermissionDenied, 402));
    let e = decode_error(404, br#"{"error":{"message":"model not found"}}"#);
    assert_eq!((e.kind, e.message.as_str()), (ErrorKind::NotFound, "model not found"));
    // UTF-8 boundary safety when truncating.
    let e = decode_error(500, "é".repeat(300).as_bytes());
    assert!(e.message.ends_with("..."));
}

#[test]
fn client_error_bodies() {
    let kinds = [
        (ErrorKind::InvalidRequest, "invalid_request_error"),
        (ErrorKind::Authentication, "authentication_error"),
        (ErrorKind::PermissionDenied, "permission_error"),
        (ErrorKind::NotFound, "not_found_error"),
        (ErrorKind::RequestTooLarge, "request_too_large"),
        (ErrorKind::RateLimited, "rate_limit_error"),
        (ErrorKind::Overloaded, "overloaded_error"),
        (ErrorKind::Server, "api_error"),
        (ErrorKind::Timeout, "timeout_error"),
    ];
    for (kind, wire) in kinds {
        let body = encode_error(&ProviderError { kind, status: kind.status(), message: "m".into() });
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, json!({"type": "error", "error": {"type": wire, "message": "m"}}));
        // and back
        assert_eq!(decode_error(kind.status(), &body).kind, kind);
    }
}

// ============================================================================= streams

fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<StreamEvent> {
    let mut d = StreamDecoder::new();
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c, &mut out);
    }
    d.finish(&mut out);
    let mut again = Vec::new();
    d.finish(&mut again);
    assert!(again.is_empty(), "finish twice emits nothing");
    out
}

/// Whole, at every split point into two chunks, and in 1-byte chunks: identical events.
fn decode_every_split(input: &[u8]) -> Vec<StreamEvent> {
    same_at_every_split(input, |chunks| decode_chunks(chunks.iter().copied()))
}

fn encode_events(events: &[StreamEvent]) -> Vec<u8> {
    let mut enc = StreamEncoder::new(true, 1_700_000_000);
    let mut out = Vec::new();
    for ev in events {
        enc.encode(ev, &mut out);
    }
    enc.finish(&mut out);
    let n = out.len();
    enc.finish(&mut out);
    enc.encode(&StreamEvent::TextDelta { text: "late".into() }, &mut out);
    assert_eq!(out.len(), n, "nothing after the end");
    out
}

/// The events that must survive a decode -> encode -> decode round trip (usage compared
/// as the final cumulative value; error status ignored).
fn essence(events: &[StreamEvent]) -> (Vec<StreamEvent>, Option<Usage>) {
    let mut last_usage = None;
    let mut rest = Vec::new();
    for ev in events {
        match ev {
            StreamEvent::Usage(u) => last_usage = Some(*u),
            // Anthropic error events carry no HTTP status: compare kind and message.
            StreamEvent::Error(e) => rest.push(StreamEvent::Error(ProviderError { status: 0, ..e.clone() })),
            other => rest.push(other.clone()),
        }
    }
    (rest, last_usage)
}

#[test]
fn stream_fixtures() {
    for name in FIXTURES.names("stream_", ".sse") {
        let input = FIXTURES.read(&name);
        let events = decode_every_split(&input);
        FIXTURES.golden(&format!("{}.ir.txt", stem(&name)), &format!("{events:#?}\n"));
        let sse = encode_events(&events);
        let text = String::from_utf8(sse.clone()).unwrap();
        FIXTURES.golden(&format!("{}.client.sse", stem(&name)), &text);
        // Every event has both lines, like Anthropic's.
        for block in text.split("\n\n").filter(|b| !b.is_empty()) {
            let lines: Vec<&str> = block.lines().collect();
            assert_eq!(lines.len(), 2, "{name}: {block}");
            let ev = lines[0].strip_prefix("event: ").unwrap();
            let data: Value = serde_json::from_str(lines[1].strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], ev);
        }
        // Our own output decodes to the same content, stop, usage and end.
        let re = decode_every_split(&sse);
        assert_eq!(essence(&re), essence(&events), "{name}: re-decoded events differ");
    }
}

#[test]
fn stream_decode_specifics() {
    let events = decode_every_split(&FIXTURES.read("stream_thinking.sse"));
    let last_usage = essence(&events).1.unwrap();
    assert_eq!(
        last_usage,
        Usage {
            input: Some(24 + 1800 + 12000),
            output: Some(142),
            cached_input: Some(12000),
            cache_write: Some(1800),
            cache_write_1h: None,
            reasoning: Some(97),
            source: UsageSource::Reported
        }
    );
    // The redacted_thinking block comes whole in content_block_start: one event, between the
    // thinking block's signature and the text.
    let redacted = StreamEvent::RedactedThinking {
        data: "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP...".into(),
    };
    let at = events.iter().position(|e| *e == redacted).unwrap();
    assert!(matches!(events[at - 1], StreamEvent::ThinkingSignature { .. }));
    assert!(matches!(events[at + 1], StreamEvent::TextDelta { .. }));
    let sse = encode_str(&events);
    let blocks: Vec<Value> = data_of(&sse).into_iter().filter(|d| d["type"] == "content_block_start").collect();
    assert_eq!(blocks[1]["content_block"], json!({"type": "redacted_thinking", "data": redacted_data(&redacted)}));
    assert_eq!(blocks[2]["index"], 2, "the text block after it gets the next index");
    let events = decode_every_split(&FIXTURES.read("stream_basic.sse"));
    assert_eq!(essence(&events).1.unwrap().input, Some(11), "message_start input survives message_delta");
    assert_eq!(essence(&events).1.unwrap().output, Some(6));
    assert_eq!(events.iter().filter(|e| **e == StreamEvent::Done).count(), 1);
    let events = decode_every_split(&FIXTURES.read("stream_error_overloaded.sse"));
    assert_eq!(
        events.last().unwrap(),
        &StreamEvent::Error(ProviderError { kind: ErrorKind::Overloaded, status: 529, message: "Overloaded".into() })
    );
    let events = decode_every_split(&FIXTURES.read("stream_truncated.sse"));
    assert_eq!(
        events.last().unwrap(),
        &StreamEvent::Error(ProviderError {
            kind: ErrorKind::Server,
            status: 502,
            message: "provider stream ended early".into()
        })
    );
    assert!(!events.contains(&StreamEvent::Done));
    // Garbage data is an error, not a panic; an unknown event type is ignored.
    let events = decode_chunks([&b"event: foo\ndata: {\"type\":\"foo\"}\n\nevent: message_start\ndata: {oops\n\n"[..]]);
    assert!(matches!(&events[..], [StreamEvent::Error(e)] if e.status == 502));
    // An oversized event is an error.
    let mut big = b"data: ".to_vec();
    big.extend(vec![b'a'; (1 << 20) + 10]);
    let events = decode_chunks([&big[..]]);
    assert!(matches!(&events[..], [StreamEvent::Error(_)]));
}

fn redacted_data(ev: &StreamEvent) -> &str {
    match ev {
        StreamEvent::RedactedThinking { data } => data,
        _ => "",
    }
}

fn encode_str(events: &[StreamEvent]) -> String {
    String::from_utf8(encode_events(events)).unwrap()
}

fn data_of(sse: &str) -> Vec<Value> {
    sse.split("\n\n")
        .filter(|b| !b.is_empty())
        .map(|b| serde_json::from_str(b.lines().nth(1).unwrap().strip_prefix("data: ").unwrap()).unwrap())
        .collect()
}

#[test]
fn stream_encoder_from_openai_style_events() {
    // OpenAI order: Start, role-only "" text, text, parallel tool calls, stop, usage at the end.
    let usage = Usage { input: Some(30), output: Some(12), cached_input: Some(10), ..Usage::default() };
    let events = vec![
        StreamEvent::Start { id: "chatcmpl-1".into(), model: "gpt-4o".into() },
        StreamEvent::TextDelta { text: String::new() },
        StreamEvent::ThinkingDelta { text: "plan".into() },
        StreamEvent::TextDelta { text: "Hi".into() },
        StreamEvent::ToolCallStart { index: 0, id: "call_a".into(), name: "f".into() },
        StreamEvent::ToolCallDelta { index: 0, arguments: "{\"q\":".into() },
        StreamEvent::ToolCallDelta { index: 0, arguments: "1}".into() },
        StreamEvent::ToolCallStart { index: 1, id: "call_b".into(), name: "g".into() },
        StreamEvent::ToolCallDelta { index: 1, arguments: "{}".into() },
        StreamEvent::ToolCallDelta { index: 0, arguments: "late".into() },
        StreamEvent::Stop { reason: StopReason::ToolCalls, stop_sequence: None },
        StreamEvent::Usage(usage),
        StreamEvent::Done,
    ];
    let sse = encode_str(&events);
    FIXTURES.golden("encode_openai_style_stream.client.sse", &sse);
    let data = data_of(&sse);
    let types: Vec<&str> = data.iter().map(|d| d["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(data[0]["message"]["id"], "chatcmpl-1");
    assert_eq!(data[0]["message"]["usage"], json!({"input_tokens": 0, "output_tokens": 0}));
    assert_eq!(data[1]["content_block"]["type"], "thinking");
    assert_eq!(data[11]["index"], 3);
    assert_eq!(data[14]["delta"]["stop_reason"], "tool_use");
    assert_eq!(data[14]["usage"], json!({"input_tokens": 20, "cache_read_input_tokens": 10, "output_tokens": 12}));
}

#[test]
fn stream_encoder_edges() {
    // No Start, nothing at all: still a complete message with a synthesized id.
    let data = data_of(&encode_str(&[]));
    assert_eq!(data[0]["message"]["id"], "msg_gw1700000000");
    assert_eq!(
        data.iter().map(|d| d["type"].as_str().unwrap()).collect::<Vec<_>>(),
        ["message_start", "message_delta", "message_stop"]
    );
    assert_eq!(data[1]["delta"]["stop_reason"], "end_turn");
    // Usage before content lands in message_start.
    let data = data_of(&encode_str(&[
        StreamEvent::Start { id: "m".into(), model: "x".into() },
        StreamEvent::Usage(Usage { input: Some(7), output: Some(1), ..Usage::default() }),
        StreamEvent::TextDelta { text: "a".into() },
        StreamEvent::Stop { reason: StopReason::Stop, stop_sequence: Some("END".into()) },
        StreamEvent::Done,
    ]));
    assert_eq!(data[0]["message"]["usage"], json!({"input_tokens": 7, "output_tokens": 1}));
    assert_eq!(data[4]["delta"], json!({"stop_reason": "stop_sequence", "stop_sequence": "END"}));
    // Mid-stream error: the error event ends the stream (no message_stop after it).
    let sse = encode_str(&[
        StreamEvent::TextDelta { text: "a".into() },
        StreamEvent::Error(ProviderError { kind: ErrorKind::RateLimited, status: 429, message: "slow down".into() }),
        StreamEvent::Done,
    ]);
    assert!(sse.ends_with(
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}\n\n"
    ), "{sse}");
    // finish() without Done closes the open block and ends the message.
    let data = data_of(&encode_str(&[StreamEvent::ToolCallStart { index: 0, id: "t".into(), name: "f".into() }]));
    let types: Vec<&str> = data.iter().map(|d| d["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["message_start", "content_block_start", "content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(data[3]["delta"]["stop_reason"], "tool_use");
    // A signature without thinking text still gets a thinking block; the next thinking
    // delta starts a new block.
    let data = data_of(&encode_str(&[
        StreamEvent::ThinkingSignature { signature: "s1".into() },
        StreamEvent::ThinkingDelta { text: "t2".into() },
        StreamEvent::ThinkingSignature { signature: "s2".into() },
    ]));
    let idx: Vec<i64> = data.iter().filter_map(|d| d["index"].as_i64()).collect();
    assert_eq!(idx, [0, 0, 0, 1, 1, 1, 1]);
}

fn named(role: Role, name: Option<&str>, text: &str) -> Message {
    Message { role, content: vec![Part::Text(text.into())], name: name.map(Into::into) }
}

#[test]
fn names_strict_and_detail_for_anthropic() {
    // One participant per role: names dropped (the role says who spoke).
    let req = ChatRequest {
        messages: vec![
            named(Role::User, Some("alice"), "a"),
            named(Role::Assistant, Some("bot"), "b"),
            named(Role::User, Some("alice"), "c"),
            named(Role::User, None, "d"),
        ],
        ..ir_req()
    };
    let v = encoded(&req);
    assert!(v["messages"].as_array().unwrap().iter().all(|m| m.get("name").is_none()));
    // Two speakers in one role cannot be told apart on Anthropic: refused.
    let req = ChatRequest {
        messages: vec![named(Role::User, Some("alice"), "a"), named(Role::User, Some("bob"), "b")],
        ..ir_req()
    };
    assert_eq!(unsupported_field(&req), "messages.1.name");
    // strict is Anthropic's strict tool use, both ways.
    let body = json!({"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}, "strict": true},
                  {"name": "g", "input_schema": {"type": "object"}}]});
    let req = decode_request(body.to_string().as_bytes()).unwrap();
    assert_eq!(req.tools.iter().map(|t| t.strict).collect::<Vec<_>>(), [Some(true), None]);
    let v = encoded(&req);
    assert_eq!(v["tools"][0]["strict"], true);
    assert!(v["tools"][1].get("strict").is_none());
    let bad = json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}, "strict": "yes"}]});
    assert_eq!(invalid_field(bad), "tools.0.strict");
    // detail: auto/high dropped (Claude reads images at full resolution), low refused.
    let image = |detail: &str| {
        let img = Image { source: ImageSource::Url("https://x/y.png".into()), detail: Some(detail.into()) };
        ChatRequest {
            messages: vec![Message { role: Role::User, content: vec![Part::Image(img)], name: None }],
            ..ir_req()
        }
    };
    for ok in ["auto", "high"] {
        assert_eq!(
            encoded(&image(ok))["messages"][0]["content"][0]["source"],
            json!({"type": "url", "url": "https://x/y.png"})
        );
    }
    assert_eq!(unsupported_field(&image("low")), "messages.0.content.0.detail");
}

#[test]
fn cache_control_is_validated_like_the_api() {
    let with = |cc: Value| {
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "hi", "cache_control": cc}]}]})
    };
    assert_eq!(
        invalid_field(with(json!({"type": "ephemeral", "ttl": "2h"}))),
        "messages.0.content.0.cache_control.ttl"
    );
    assert_eq!(invalid_field(with(json!({"type": "persistent"}))), "messages.0.content.0.cache_control.type");
    assert_eq!(invalid_field(with(json!("ephemeral"))), "messages.0.content.0.cache_control");
    let thinking = json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s",
            "cache_control": {"type": "ephemeral"}}]}]});
    assert_eq!(invalid_field(thinking), "messages.1.content.0.cache_control");
    assert_eq!(
        invalid_field(json!({"model": "m", "max_tokens": 5, "cache_control": {"type": "ephemeral", "ttl": 5},
        "messages": [{"role": "user", "content": "hi"}]})),
        "cache_control.ttl"
    );
}

/// A breakpoint inside a tool result's content closes the whole tool result (the nearest
/// point Converse can express too), and a lone system text with a breakpoint stays a block.
#[test]
fn cache_breakpoints_reencode_where_they_were() {
    let body = json!({"model": "m", "max_tokens": 5, "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                "content": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "b"}]}]}]});
    let ir = decode_request(body.to_string().as_bytes()).unwrap();
    let Part::ToolResult(r) = &ir.messages[2].content[0] else { panic!() };
    assert_eq!(r.content, [Part::Text("a".into()), Part::Text("b".into())]);
    assert_eq!(ir.messages[2].content[1], Part::CachePoint(CacheControl::default()));
    let out: Value = serde_json::from_slice(&encode_request(&ir).unwrap()).unwrap();
    assert_eq!(
        out["system"],
        json!([{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral", "ttl": "1h"}}])
    );
    assert_eq!(out["messages"][2]["content"][0]["cache_control"], json!({"type": "ephemeral"}));
    assert!(out["messages"][2]["content"][0]["content"][0].get("cache_control").is_none());
}

/// Server tools, MCP servers, containers and server-tool blocks are Anthropic's own: carried
/// as the client sent them, back to Anthropic in place (server tools keep their place among
/// the custom tools, and the cache breakpoints theirs); every other provider refuses them,
/// naming the field as the Anthropic client wrote it.
#[test]
fn anthropic_only_features_pass_to_anthropic_and_are_refused_elsewhere() {
    let body = FIXTURES.read("request_server_tools.json");
    let ir = decode_request(&body).unwrap();
    assert_eq!(ir.tools.len(), 2, "the custom tools");
    assert_eq!(ir.anthropic_only.tools.len(), 1);
    assert_eq!(ir.anthropic_only.tools[0].0, 1);
    assert_eq!(ir.cache.tools, [(1, CacheControl::default())], "get_time is the second custom tool");
    let sent: Value = serde_json::from_slice(&encode_request(&ir).unwrap()).unwrap();
    let mut original: Value = serde_json::from_slice(&body).unwrap();
    // The upstream body is the client's, but for string contents becoming blocks.
    original["messages"][0]["content"] = json!([{"type": "text", "text": "When was Claude Shannon born?"}]);
    original["messages"][2]["content"] = json!([{"type": "text", "text": "And where did he study?"}]);
    for key in ["tools", "messages", "mcp_servers", "container"] {
        assert_eq!(sent[key], original[key], "{key}");
    }
    for (provider, result) in [
        ("openai", llm_gateway::llm::openai_chat::encode_request(&ir)),
        ("gemini", llm_gateway::llm::gemini::encode_request(&ir)),
        ("bedrock", llm_gateway::llm::bedrock::encode_request(&ir)),
    ] {
        match result {
            Err(TranslateError::Unsupported { field, .. }) => assert_eq!(field, "container", "{provider}"),
            other => panic!("{provider}: {other:?}"),
        }
    }
    let mut ir = ir;
    ir.anthropic_only.members.retain(|(k, _)| k != "mcp_servers" && k != "container");
    let refused = |ir: &ChatRequest| match llm_gateway::llm::bedrock::encode_request(ir) {
        Err(TranslateError::Unsupported { field, detail, .. }) => (field, detail),
        other => panic!("{other:?}"),
    };
    assert_eq!(refused(&ir).0, "tools.1.type");
    assert!(refused(&ir).1.contains("web_search_20250305"));
    ir.anthropic_only.tools.clear();
    assert_eq!(refused(&ir).0, "messages.1.content.1.type");
}

/// Tool results holding a PDF (what Claude Code's Read tool returns for a PDF file) or search
/// results: back to Anthropic as sent; the document to Converse inside the toolResult and to
/// OpenAI as a file part after the tool message; refused where a tool result cannot hold it.
#[test]
fn tool_results_with_documents_and_search_results() {
    let pdf =
        json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}});
    let search = json!({"type": "search_result", "source": "https://docs.example.com/a", "title": "A",
        "content": [{"type": "text", "text": "the answer"}]});
    let body = |inner: Value| {
        json!({"model": "m", "max_tokens": 100, "messages": [
            {"role": "user", "content": "read it"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {"file_path": "/a.pdf"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": inner}]}]})
    };
    let with_pdf = body(json!([pdf, {"type": "text", "text": "page 1"}]));
    let ir = decode_request(with_pdf.to_string().as_bytes()).unwrap();
    let sent: Value = serde_json::from_slice(&encode_request(&ir).unwrap()).unwrap();
    assert_eq!(sent["messages"][2]["content"][0]["content"], with_pdf["messages"][2]["content"][0]["content"]);
    let bedrock: Value = serde_json::from_slice(&llm_gateway::llm::bedrock::encode_request(&ir).unwrap()).unwrap();
    let result = &bedrock["messages"][2]["content"][0]["toolResult"]["content"];
    assert_eq!(result[0]["document"]["format"], "pdf");
    assert_eq!(result[1], json!({"text": "page 1"}));
    let openai: Value = serde_json::from_slice(&llm_gateway::llm::openai_chat::encode_request(&ir).unwrap()).unwrap();
    assert_eq!(openai["messages"][2]["role"], "tool");
    assert_eq!(openai["messages"][2]["content"], "page 1");
    assert_eq!(openai["messages"][3]["content"][0]["type"], "file", "the document follows the tool message");
    assert!(matches!(
        llm_gateway::llm::gemini::encode_request(&ir),
        Err(TranslateError::Unsupported { field, .. }) if field == "messages[2].content[0].content[0]"
    ));

    let with_search = body(json!([search]));
    let ir = decode_request(with_search.to_string().as_bytes()).unwrap();
    let sent: Value = serde_json::from_slice(&encode_request(&ir).unwrap()).unwrap();
    assert_eq!(sent["messages"][2]["content"][0]["content"], json!([search]));
    assert!(matches!(
        llm_gateway::llm::bedrock::encode_request(&ir),
        Err(TranslateError::Unsupported { field, .. }) if field == "messages.2.content.0.content.0.type"
    ));
    let bad = body(json!([{"type": "tool_use", "id": "x", "name": "n", "input": {}}]));
    assert_eq!(invalid_field(bad), "messages.2.content.0.content.0.type");
}
