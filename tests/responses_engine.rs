//! `POST /v1/responses` through the engine: passed through to OpenAI itself, translated for
//! every other provider (routing, request, answer, stream, errors, budgets, usage records).

use llm_gateway::auth::api_key::digest;
use llm_gateway::engine::{BodyAction, Exchange, Gateway, HeaderOp, LocalReply, Operation, RequestAction, RequestHead};
use llm_gateway::quota::MemoryStore;
use llm_gateway::stream::sse::SseDecoder;
use llm_gateway::usage::UsageSource;
use serde_json::{json, Value};

mod common;
use common::Fixtures;

const ANTHROPIC: Fixtures = Fixtures("anthropic");

const NOW_MS: u64 = 1_795_734_600_000;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One model per provider kind; consumer alice on a plan of `tokens` a minute.
fn gateway(tokens: u64) -> Gateway {
    let key = json!({"type": "bearer", "env": "KEY"});
    let api_key = json!({"type": "api-key", "env": "KEY"});
    let config = json!({
        "providers": {
            "oa": {"kind": "openai", "cluster": "oa", "auth": key},
            "az": {"kind": "azure-openai", "cluster": "az", "api_version": "2024-10-21", "auth": api_key},
            "claude": {"kind": "anthropic", "cluster": "claude", "auth": api_key},
            "gem": {"kind": "gemini", "cluster": "gem", "auth": api_key},
            "br": {"kind": "bedrock", "cluster": "br", "region": "us-east-1", "auth": key},
            "mis": {"kind": "mistral", "cluster": "mis", "auth": key},
        },
        "models": {
            "gpt": {"provider": "oa", "model": "gpt-4o"},
            "azure": {"provider": "az", "model": "dep"},
            "claude": {"provider": "claude", "model": "claude-sonnet-4-5"},
            "gemini": {"provider": "gem", "model": "gemini-2.5-flash"},
            "bedrock": {"provider": "br", "model": "anthropic.claude-3-5-sonnet-20240620-v1:0"},
            "mistral": {"provider": "mis", "model": "mistral-small-latest"},
        },
        "consumers": {"alice": {"api_keys": [hex(&digest("sk-alice"))], "plan": "small"}},
        "plans": {"small": {"limits": [{"name": "tpm", "window": "minute", "tokens": tokens}]}},
        "quota": {"clamp_max_tokens": true, "estimator": "upper-bound", "min_output_tokens": 1,
                  "default_max_output_tokens": 64},
    });
    Gateway::from_json(config.to_string().as_bytes(), &|k| (k == "KEY").then(|| "sk-upstream".to_string())).unwrap()
}

fn start(gw: &Gateway, model: &str, stream: bool) -> (Exchange, Vec<HeaderOp>) {
    let head = RequestHead {
        method: "POST",
        path: "/v1/responses",
        body_model: Some(model),
        body_stream: stream,
        authorization: Some("Bearer sk-alice"),
        ..RequestHead::default()
    };
    match gw.on_request_headers(&head, 0, NOW_MS) {
        (exchange, RequestAction::Forward(ops)) => (exchange, ops),
        (_, RequestAction::Reply(reply)) => panic!("refused: {}", String::from_utf8_lossy(&reply.body)),
    }
}

fn path_of(ops: &[HeaderOp]) -> String {
    ops.iter()
        .find_map(|op| match op {
            HeaderOp::Set(name, value) if name == ":path" => Some(value.clone()),
            _ => None,
        })
        .unwrap()
}

fn admit(gw: &Gateway, store: &MemoryStore, body: &Value) -> (Exchange, Vec<HeaderOp>, BodyAction) {
    let stream = body["stream"] == true;
    let (mut exchange, ops) = start(gw, body["model"].as_str().unwrap(), stream);
    let action = exchange.on_request_body(body.to_string().as_bytes(), NOW_MS, gw.quota(store), gw.prompts());
    (exchange, ops, action)
}

fn sent(action: BodyAction) -> Value {
    match action {
        BodyAction::Replace(bytes) => serde_json::from_slice(&bytes).unwrap(),
        other => panic!("expected a forwarded body, got {other:?}"),
    }
}

fn refused(action: BodyAction) -> (u16, Value) {
    match action {
        BodyAction::Reply(LocalReply { status, body, .. }) => (status, serde_json::from_slice(&body).unwrap()),
        other => panic!("admitted: {other:?}"),
    }
}

/// Feeds a provider answer to the exchange; returns what the client got.
fn answer(exchange: &mut Exchange, status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    exchange.on_response_headers(status, Some(content_type));
    match exchange.on_response_body(body, true, NOW_MS + 50) {
        BodyAction::Unchanged => body.to_vec(),
        BodyAction::Replace(bytes) => bytes,
        BodyAction::Reply(_) => panic!("no replies on responses"),
    }
}

fn request(model: &str) -> Value {
    json!({"model": model, "instructions": "Be brief.", "store": false, "max_output_tokens": 50,
           "input": [{"role": "user", "content": [{"type": "input_text", "text": "hello"}]}],
           "tools": [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}]})
}

#[test]
fn openai_gets_the_bytes_every_other_provider_its_own_chat_api() {
    let gw = gateway(1_000_000);
    let store = MemoryStore::new();
    let cases = [
        ("gpt", "/v1/responses"),
        ("azure", "/openai/deployments/dep/chat/completions?api-version=2024-10-21"),
        ("claude", "/v1/messages"),
        ("gemini", "/v1beta/models/gemini-2.5-flash:generateContent"),
        ("bedrock", "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"),
        ("mistral", "/v1/chat/completions"),
    ];
    for (model, path) in cases {
        let (_, ops, action) = admit(&gw, &store, &request(model));
        assert_eq!(path_of(&ops), path, "{model}");
        let body = sent(action);
        let text = body.to_string();
        match model {
            // Patched in place: the Responses body with the provider's model name.
            "gpt" => {
                assert_eq!(body["model"], "gpt-4o");
                assert_eq!(body["input"][0]["content"][0]["text"], "hello");
                assert_eq!(body["max_output_tokens"], 50);
            }
            "claude" => {
                assert_eq!(body["system"], "Be brief.");
                assert_eq!(body["messages"][0]["content"][0]["text"], "hello");
                assert_eq!(body["max_tokens"], 50);
                assert_eq!(body["tools"][0]["name"], "f");
            }
            "gemini" => {
                assert_eq!(body["systemInstruction"]["parts"][0]["text"], "Be brief.");
                assert_eq!(body["generationConfig"]["maxOutputTokens"], 50);
            }
            "bedrock" => {
                assert_eq!(body["system"][0]["text"], "Be brief.");
                assert_eq!(body["inferenceConfig"]["maxTokens"], 50);
            }
            _ => {
                assert_eq!(body["messages"][0], json!({"role": "system", "content": "Be brief."}), "{model}");
                assert_eq!(body["tools"][0]["function"]["name"], "f", "{model}");
            }
        }
        if model != "gpt" {
            assert!(!text.contains("input_text") && !text.contains("\"store\""), "{model}: {text}");
        }
    }
}

#[test]
fn a_translated_answer_is_a_response_object_and_its_usage_is_recorded() {
    let gw = gateway(1_000_000);
    let store = MemoryStore::new();
    let (mut exchange, _, action) = admit(&gw, &store, &request("claude"));
    sent(action);
    let client = answer(&mut exchange, 200, "application/json", &ANTHROPIC.read("response_text.json"));
    let v: Value = serde_json::from_slice(&client).unwrap();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["content"][0]["text"], "Hi! My name is Claude.");
    // Anthropic's answer has no creation time: the gateway's clock at the request.
    assert_eq!(v["created_at"], NOW_MS / 1000);
    // Anthropic's input + cache read + cache write, and the cached part.
    assert_eq!(v["usage"]["input_tokens"], 2095 + 2051 + 2051);
    assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 2051);
    assert_eq!(v["usage"]["output_tokens"], 503);
    let record = exchange.finish(NOW_MS + 60, gw.quota(&store)).unwrap();
    assert_eq!(record.operation, Some(Operation::Responses));
    assert_eq!((record.usage.input, record.usage.output), (Some(6197), Some(503)));
    assert_eq!(record.usage.source, UsageSource::Reported);
    assert_eq!(record.consumer.as_deref(), Some("alice"));
}

#[test]
fn a_translated_stream_is_the_typed_event_stream() {
    let gw = gateway(1_000_000);
    let store = MemoryStore::new();
    let mut body = request("claude");
    body["stream"] = json!(true);
    let (mut exchange, _, action) = admit(&gw, &store, &body);
    assert_eq!(sent(action)["stream"], true);
    let client = answer(&mut exchange, 200, "text/event-stream", &ANTHROPIC.read("stream_basic.sse"));
    let mut decoder = SseDecoder::new(1 << 20);
    let mut events = Vec::new();
    decoder.feed(&client, &mut events).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"response.created"));
    assert_eq!(kinds.last(), Some(&"response.completed"));
    assert!(kinds.contains(&"response.output_text.delta"));
    let last: Value = serde_json::from_str(&events.last().unwrap().data).unwrap();
    let record = exchange.finish(NOW_MS + 60, gw.quota(&store)).unwrap();
    assert_eq!(last["response"]["usage"]["output_tokens"], record.usage.output.unwrap());
    assert_eq!(record.usage.source, UsageSource::Reported);
    assert!(record.stream);
    assert_eq!(record.time_to_first_token_ms, Some(50));
}

#[test]
fn a_provider_error_mid_stream_fails_the_response() {
    let gw = gateway(1_000_000);
    let store = MemoryStore::new();
    let mut body = request("claude");
    body["stream"] = json!(true);
    let (mut exchange, _, action) = admit(&gw, &store, &body);
    sent(action);
    let client = answer(&mut exchange, 200, "text/event-stream", &ANTHROPIC.read("stream_error_overloaded.sse"));
    let text = String::from_utf8(client).unwrap();
    assert!(text.contains("event: error\n"), "{text}");
    assert!(text.ends_with("\n\n") && text.contains("event: response.failed\n"), "{text}");
    assert!(!text.contains("response.completed"), "{text}");
    // What was generated is still counted.
    let record = exchange.finish(NOW_MS + 60, gw.quota(&store)).unwrap();
    assert!(record.usage.output.unwrap() >= 1);
}

#[test]
fn provider_errors_reach_the_client_in_openais_error_shape() {
    let gw = gateway(1_000_000);
    let store = MemoryStore::new();
    let (mut exchange, _, action) = admit(&gw, &store, &request("claude"));
    sent(action);
    let client = answer(&mut exchange, 529, "application/json", &ANTHROPIC.read("error_overloaded.json"));
    let v: Value = serde_json::from_slice(&client).unwrap();
    assert_eq!(v["error"]["message"], "Overloaded");
    assert!(v["error"]["type"].is_string());
}

#[test]
fn stateful_requests_are_refused_unless_openai_holds_the_state() {
    let gw = gateway(1_000_000);
    let store = MemoryStore::new();
    for model in ["azure", "claude", "gemini", "bedrock", "mistral"] {
        let mut body = request(model);
        body["previous_response_id"] = json!("resp_123");
        let (mut exchange, _, action) = admit(&gw, &store, &body);
        let (status, v) = refused(action);
        assert_eq!(status, 400, "{model}");
        assert_eq!(v["error"]["param"], "previous_response_id", "{model}");
        assert!(v["error"]["message"].as_str().unwrap().contains("no stored state"), "{model}");
        let record = exchange.finish(NOW_MS, gw.quota(&store)).unwrap();
        assert_eq!(record.rejection.map(|r| r.0), Some("invalid_request"));
    }
    let mut body = request("gpt");
    body["previous_response_id"] = json!("resp_123");
    body["store"] = json!(true);
    assert_eq!(sent(admit(&gw, &store, &body).2)["previous_response_id"], "resp_123");
}

#[test]
fn budgets_clamp_and_refuse_translated_responses() {
    // The budget pays for the prompt and a few output tokens: the cap is lowered.
    let gw = gateway(1_000);
    let store = MemoryStore::new();
    let mut body = request("claude");
    body["max_output_tokens"] = json!(100_000);
    let (mut exchange, _, action) = admit(&gw, &store, &body);
    let max_tokens = sent(action)["max_tokens"].as_u64().unwrap();
    assert!(max_tokens < 1_000, "clamped to what the budget pays for: {max_tokens}");
    exchange.finish(NOW_MS, gw.quota(&store));
    // Spent: the next one is a 429 in OpenAI's shape, before any provider.
    let spent = gateway(1);
    let (_, _, action) = admit(&spent, &store, &request("gemini"));
    let (status, v) = refused(action);
    assert_eq!(status, 429);
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
}

#[test]
fn guards_and_masks_apply_before_translation() {
    let config = json!({
        "providers": {"claude": {"kind": "anthropic", "cluster": "claude", "auth": {"type": "api-key", "env": "KEY"}}},
        "models": {"claude": {"provider": "claude", "model": "claude-sonnet-4-5"}},
        "prompts": {"guards": {"deny": [{"name": "secrets", "regex": "password\\s*[:=]"}],
                               "mask": [{"name": "email", "builtin": "email"}]}},
    });
    let gw = Gateway::from_json(config.to_string().as_bytes(), &|k| (k == "KEY").then(|| "k".to_string())).unwrap();
    let store = MemoryStore::new();
    let run = |body: Value| {
        let head =
            RequestHead { method: "POST", path: "/v1/responses", body_model: Some("claude"), ..Default::default() };
        let (mut exchange, RequestAction::Forward(_)) = gw.on_request_headers(&head, 0, NOW_MS) else { panic!() };
        exchange.on_request_body(body.to_string().as_bytes(), NOW_MS, gw.quota(&store), gw.prompts())
    };
    let (status, v) = refused(run(json!({"model": "claude", "input": "my password: hunter2"})));
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("prompt_blocked")));
    let sent = sent(run(json!({"model": "claude", "instructions": "reply to ada@example.com",
                               "input": [{"role": "user", "content": [{"type": "input_text", "text": "mail bob@example.com"}]}]})));
    assert_eq!(sent["system"], "reply to [EMAIL]");
    assert_eq!(sent["messages"][0]["content"][0]["text"], "mail [EMAIL]");
}
