//! Prompt APIs through the engine: `POST /v1/prompts/<name>` is routed by its template's
//! version, rendered, translated to the provider, and answered as `{"output", "usage"}` (or
//! as prompt SSE events); errors in OpenAI's shape, rejections counted.

use llm_gateway::engine::{BodyAction, Exchange, Gateway, HeaderOp, RequestAction, RequestHead};
use llm_gateway::metrics;
use serde_json::{json, Value};

const CONFIG: &str = r#"{
  "providers": {
    "oa": {"kind": "openai", "cluster": "openai_cluster", "auth": {"type": "bearer", "env": "KEY"}},
    "claude": {"kind": "anthropic", "cluster": "anthropic_cluster", "auth": {"type": "api-key", "env": "KEY"}}
  },
  "models": {
    "gpt": {"provider": "oa", "model": "gpt-4o-mini"},
    "sonnet": {"provider": "claude", "model": "claude-sonnet-4-5"}
  },
  "prompts": {
    "templates": {
      "summarize": {
        "model": "gpt",
        "variables": {"text": {"type": "string"}, "style": {"type": "enum", "values": ["short", "long"], "default": "short"}},
        "versions": {
          "1": {"messages": [{"role": "system", "content": "Write {{style}} summaries."},
                             {"role": "user", "content": "Summarize: {{text}}"}]},
          "2": {"model": "sonnet",
                "messages": [{"role": "system", "content": "You summarize, {{style}}."},
                             {"role": "user", "content": "{{text}}"}]}
        },
        "weights": {"1": 50, "2": 50}
      }
    },
    "guards": {"deny": [{"name": "no-secrets", "keywords": ["password"]}]},
    "prompt_apis": {
      "/v1/prompts/summarize": {"template": "summarize"},
      "/v1/prompts/summarize-v1": {"template": "summarize", "version": "1", "allow_stream": false}
    }
  }
}"#;

const OPENAI_COMPLETION: &[u8] = include_bytes!("fixtures/openai/chat_completion.json");
const OPENAI_STREAM: &[u8] = include_bytes!("fixtures/openai/chat_stream_include_usage.sse");

fn gateway() -> Gateway {
    Gateway::from_json(CONFIG.as_bytes(), &|k| (k == "KEY").then(|| "sk-upstream".to_string())).unwrap()
}

fn head(path: &str) -> RequestHead<'_> {
    RequestHead { method: "POST", path, ..RequestHead::default() }
}

/// The roll (before the engine's rotation) that makes the weighted template choose version 1
/// or 2: the template roll is `roll.rotate_right(32) % 100`.
fn roll_for_version(version: u32) -> u64 {
    let point: u64 = if version == 1 { 10 } else { 60 };
    point.rotate_left(32)
}

fn forward(gw: &Gateway, path: &str, roll: u64) -> (Exchange, Vec<HeaderOp>) {
    match gw.on_request_headers(&head(path), roll, 1_000) {
        (exchange, RequestAction::Forward(ops)) => (exchange, ops),
        (_, RequestAction::Reply(reply)) => {
            panic!("unexpected reply {} {}", reply.status, String::from_utf8_lossy(&reply.body))
        }
    }
}

fn set(name: &str, value: &str) -> HeaderOp {
    HeaderOp::Set(name.to_string(), value.to_string())
}

fn replaced(action: BodyAction) -> Value {
    match action {
        BodyAction::Replace(bytes) => serde_json::from_slice(&bytes).unwrap(),
        other => panic!("expected a replaced body, got {other:?}"),
    }
}

fn reply_json(action: BodyAction) -> (u16, Value) {
    match action {
        BodyAction::Reply(reply) => (reply.status, serde_json::from_slice(&reply.body).unwrap()),
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[test]
fn routes_to_the_chosen_versions_model_and_renders_it() {
    let gw = gateway();
    let (mut exchange, ops) = forward(&gw, "/v1/prompts/summarize", roll_for_version(1));
    assert!(ops.contains(&set("x-llm-gateway-cluster", "openai_cluster")));
    assert!(ops.contains(&set(":path", "/v1/chat/completions")));
    assert!(ops.contains(&set("content-type", "application/json")));
    // Access logs reading X-ENVOY-ORIGINAL-PATH show what the client called.
    assert!(ops.contains(&set("x-envoy-original-path", "/v1/prompts/summarize")));
    let sent = replaced(exchange.on_request_body(br#"{"text": "Envoy is a proxy."}"#, 1_000, None, gw.prompts()));
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["messages"][0], json!({"role": "system", "content": "Write short summaries."}));
    assert_eq!(sent["messages"][1], json!({"role": "user", "content": "Summarize: Envoy is a proxy."}));

    // Version 2 names another model: the route follows the version, before the body is read.
    let (mut exchange, ops) = forward(&gw, "/v1/prompts/summarize", roll_for_version(2));
    assert!(ops.contains(&set("x-llm-gateway-cluster", "anthropic_cluster")));
    assert!(ops.contains(&set(":path", "/v1/messages")));
    let sent = replaced(exchange.on_request_body(br#"{"text": "Hi", "style": "long"}"#, 1_000, None, gw.prompts()));
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert_eq!(sent["system"], "You summarize, long.");
    assert_eq!(sent["messages"][0]["content"], json!([{"type": "text", "text": "Hi"}]));
}

#[test]
fn answers_output_and_usage_and_records_the_version() {
    let gw = gateway();
    let (mut exchange, _) = forward(&gw, "/v1/prompts/summarize-v1", 7);
    exchange.on_request_body(br#"{"text": "x"}"#, 1_000, None, gw.prompts());
    let ops = exchange.on_response_headers(200, Some("application/json"));
    assert!(ops.contains(&set("content-type", "application/json")));
    assert_eq!(exchange.on_response_body(OPENAI_COMPLETION, false, 1_010), BodyAction::Replace(Vec::new()));
    let answer = replaced(exchange.on_response_body(b"", true, 1_020));
    let completion: Value = serde_json::from_slice(OPENAI_COMPLETION).unwrap();
    assert_eq!(answer["output"], completion["choices"][0]["message"]["content"]);
    assert_eq!(answer["usage"]["input_tokens"], completion["usage"]["prompt_tokens"]);
    assert_eq!(answer["usage"]["output_tokens"], completion["usage"]["completion_tokens"]);
    assert_eq!((answer["template"].as_str(), answer["version"].as_str()), (Some("summarize"), Some("1")));
    let record = exchange.finish(1_030, None).unwrap();
    assert_eq!(record.template, Some(("summarize".to_string(), "1".to_string())));
    let names: Vec<String> = metrics::points(&record).into_iter().map(|p| p.name).collect();
    assert!(names
        .iter()
        .any(|n| n.starts_with("gen_ai_server_requests;") && n.contains(";llm_prompt_template=summarize@1;")));
    assert!(metrics::log_fields(&record).contains(&("llm_template", "summarize@1".to_string())));
}

#[test]
fn streams_deltas_then_one_closing_event_at_every_split() {
    let gw = gateway();
    let mut outputs = Vec::new();
    for split in [1, OPENAI_STREAM.len() / 3, OPENAI_STREAM.len() - 1] {
        let mut h = head("/v1/prompts/summarize");
        h.body_stream = true;
        let (mut exchange, action) = gw.on_request_headers(&h, roll_for_version(1), 1_000);
        assert!(matches!(action, RequestAction::Forward(_)));
        let sent = replaced(exchange.on_request_body(br#"{"text": "x", "stream": true}"#, 1_000, None, gw.prompts()));
        assert_eq!(
            (sent["stream"].clone(), sent["stream_options"]["include_usage"].clone()),
            (json!(true), json!(true))
        );
        exchange.on_response_headers(200, Some("text/event-stream"));
        let (a, b) = OPENAI_STREAM.split_at(split);
        let mut out = Vec::new();
        for (chunk, end) in [(a, false), (b, true)] {
            if let BodyAction::Replace(bytes) = exchange.on_response_body(chunk, end, 1_010) {
                out.extend(bytes);
            }
        }
        outputs.push(String::from_utf8(out).unwrap());
    }
    assert!(outputs.windows(2).all(|w| w[0] == w[1]), "{outputs:?}");
    let events: Vec<Value> = outputs[0]
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let (last, deltas) = events.split_last().unwrap();
    assert!(!deltas.is_empty() && deltas.iter().all(|d| d["delta"].is_string()));
    assert_eq!(last["output_done"], true);
    assert!(last["usage"]["output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(last["version"], "1");
}

#[test]
fn bad_input_is_a_400_naming_the_variable() {
    let gw = gateway();
    let (mut exchange, _) = forward(&gw, "/v1/prompts/summarize-v1", 0);
    let (status, body) = reply_json(exchange.on_request_body(br#"{"style": "short"}"#, 1_000, None, gw.prompts()));
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "text");
    assert_eq!(body["error"]["code"], "missing_variable");
    let record = exchange.finish(1_001, None).unwrap();
    assert_eq!(record.rejection, Some(("missing_variable", None)));

    let (mut exchange, _) = forward(&gw, "/v1/prompts/summarize-v1", 0);
    let (status, body) =
        reply_json(exchange.on_request_body(br#"{"text": "x", "style": "medium"}"#, 1_000, None, gw.prompts()));
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("style")));
    assert!(body["error"]["message"].as_str().unwrap().contains(r#"one of "short", "long""#), "{body}");

    let (mut exchange, _) = forward(&gw, "/v1/prompts/summarize-v1", 0);
    let (status, body) = reply_json(exchange.on_request_body(b"[1]", 1_000, None, gw.prompts()));
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_body")));

    let (mut exchange, _) = forward(&gw, "/v1/prompts/summarize-v1", 0);
    let (status, body) =
        reply_json(exchange.on_request_body(br#"{"text": "x", "stream": true}"#, 1_000, None, gw.prompts()));
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("stream")));

    // No body at all: refused at once (Envoy would not call the body callback).
    let mut h = head("/v1/prompts/summarize-v1");
    h.no_body = true;
    let (_, action) = gw.on_request_headers(&h, 0, 1_000);
    let RequestAction::Reply(reply) = action else { panic!("expected a reply") };
    assert_eq!(reply.status, 400);
}

#[test]
fn guard_rejections_are_counted_by_rule_without_the_text() {
    let gw = gateway();
    let (mut exchange, _) = forward(&gw, "/v1/prompts/summarize-v1", 0);
    let (status, body) =
        reply_json(exchange.on_request_body(br#"{"text": "my password is hunter2"}"#, 1_000, None, gw.prompts()));
    assert_eq!(status, 400);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("no-secrets") && !message.contains("hunter2"), "{message}");
    let record = exchange.finish(1_001, None).unwrap();
    let rejection = metrics::points(&record).into_iter().find(|p| p.name.starts_with("llm_gateway_rejections;"));
    let name = rejection.unwrap().name;
    assert!(name.ends_with(";llm_reason=prompt_blocked;llm_guard_rule=no-secrets"), "{name}");
}

#[test]
fn other_methods_and_unknown_prompt_paths_are_not_prompt_apis() {
    let gw = gateway();
    let h = RequestHead { method: "GET", path: "/v1/prompts/summarize", ..RequestHead::default() };
    let (_, action) = gw.on_request_headers(&h, 0, 1_000);
    let RequestAction::Reply(reply) = action else { panic!("expected a reply") };
    assert_eq!(reply.status, 404);
    let (_, action) = gw.on_request_headers(&head("/v1/prompts/nope"), 0, 1_000);
    let RequestAction::Reply(reply) = action else { panic!("expected a reply") };
    assert_eq!(reply.status, 404);
}
