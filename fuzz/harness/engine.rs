//! The engine's whole request path with the demo configuration (envoy/demo.yaml): request
//! headers, request body, response headers, response chunks, finish. Nothing may panic;
//! every local reply is JSON; a routed request's body always goes through admission.

use super::{must_parse, selector, split_parts};
use llm_gateway::engine::{BodyAction, Gateway, RequestAction, RequestHead};
use llm_gateway::quota::MemoryStore;
use serde_json::Value;
use std::sync::OnceLock;

const DEMO_YAML: &str = include_str!("../../envoy/demo.yaml");
const NOW_MS: u64 = 1_795_734_600_000;

const PATHS: [(&str, &str); 8] = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/responses"),
    ("POST", "/v1/prompts/summarize"),
    ("GET", "/v1/models"),
    ("POST", "/v1/chat/completions?key=client-secret"),
    ("POST", "/v2/unknown"),
];
const MODELS: [&str; 8] =
    ["demo-gpt", "demo-canary", "demo-azure", "demo-claude", "demo-gemini", "demo-bedrock", "demo-mistral", "nope"];
const STATUSES: [u16; 8] = [200, 200, 400, 401, 429, 500, 502, 529];
const CONTENT_TYPES: [Option<&str>; 5] = [
    Some("application/json"),
    Some("text/event-stream"),
    Some("application/vnd.amazon.eventstream"),
    Some("text/html"),
    None,
];
/// The demo's API keys (their digests are in envoy/demo.yaml).
const CREDENTIALS: [(Option<&str>, Option<&str>); 4] =
    [(None, None), (Some("Bearer sk-demo"), None), (None, Some("sk-demo-alice")), (Some("Bearer sk-wrong"), None)];

/// The plugin configuration embedded in envoy/demo.yaml (the JSON block after `value: |`).
fn demo_config() -> Value {
    let Some(start) = DEMO_YAML.find("{\"providers\"") else { panic!("no plugin config in envoy/demo.yaml") };
    let indent = DEMO_YAML.get(..start).and_then(|s| s.rsplit('\n').next()).map_or(0, str::len);
    let block: Vec<&str> = DEMO_YAML
        .get(start - indent..)
        .unwrap_or_default()
        .lines()
        .take_while(|l| l.len() > indent && l.chars().take(indent).all(|c| c == ' '))
        .collect();
    match serde_json::from_str(&block.join("\n")) {
        Ok(v) => v,
        Err(e) => panic!("the plugin config in envoy/demo.yaml is not JSON: {e}"),
    }
}

fn env(name: &str) -> Option<String> {
    match name {
        "DEMO_AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".to_string()),
        "DEMO_AWS_SECRET_ACCESS_KEY" => Some("fake-secret".to_string()),
        _ => Some("sk-upstream-demo-key".to_string()),
    }
}

/// 0: the demo; 1: without `prompts` (the passthrough path); 2: an open gateway (no
/// identity, budgets or prompts).
fn gateway(variant: u8) -> &'static Gateway {
    static GATEWAYS: OnceLock<[Gateway; 3]> = OnceLock::new();
    let all = GATEWAYS.get_or_init(|| {
        let full = demo_config();
        let build = |drop: &[&str]| {
            let mut config = full.clone();
            if let Some(map) = config.as_object_mut() {
                for key in drop {
                    map.shift_remove(*key);
                }
            }
            match Gateway::from_json(config.to_string().as_bytes(), &env) {
                Ok(g) => g,
                Err(e) => panic!("the demo config does not load without {drop:?}: {e}"),
            }
        };
        [build(&[]), build(&["prompts"]), build(&["prompts", "auth", "consumers", "plans", "quota"])]
    });
    let index = usize::from(variant % 3);
    all.get(index).unwrap_or_else(|| panic!("no gateway variant {index}"))
}

/// Selector bytes, then the request body, `SEP`, the response body.
/// Byte 0: bits 0-1 config variant, 2-3 credential, 4 `stream`, 5 model in the header,
/// 6 no body, 7 the body's own `model` (as Envoy's json_to_metadata reads it) instead of
/// the chosen one. Byte 1: path (bits 0-2). Byte 2: model (bits 0-2), roll (the rest).
/// Byte 3: status (bits 0-2), content type (the rest). Byte 4: response chunk size (bits
/// 0-6), the response ends (bit 7) or the client goes away.
pub fn engine(data: &[u8]) {
    let (flags, rest) = selector(data);
    let (path_sel, rest) = selector(rest);
    let (model_sel, rest) = selector(rest);
    let (status_sel, rest) = selector(rest);
    let (chunk_sel, rest) = selector(rest);
    let (request_body, response_body) = split_parts(rest);

    let gateway = gateway(flags & 3);
    let (method, path) = PATHS.get(usize::from(path_sel & 7)).copied().unwrap_or(("POST", "/"));
    let chosen = MODELS.get(usize::from(model_sel & 7)).copied().unwrap_or("nope");
    let (authorization, x_api_key) = CREDENTIALS.get(usize::from((flags >> 2) & 3)).copied().unwrap_or((None, None));
    // What Envoy's json_to_metadata would extract: the last `model`, `stream` as "1".
    let parsed: Option<Value> = serde_json::from_slice(request_body).ok();
    let body_object = parsed.as_ref().and_then(Value::as_object);
    let envoy_model = body_object.and_then(|o| o.get("model")).and_then(Value::as_str);
    let body_stream = flags & 16 != 0 || body_object.and_then(|o| o.get("stream")) == Some(&Value::Bool(true));
    let header_mode = flags & 32 != 0;
    let body_model = if flags & 128 != 0 { envoy_model } else { Some(chosen) };
    let head = RequestHead {
        method,
        path,
        body_model: body_model.filter(|_| !header_mode),
        body_stream,
        body_invalid: body_object.is_none(),
        header_model: Some(chosen).filter(|_| header_mode),
        authorization,
        x_api_key,
        trusted_consumer: None,
        trusted_plan: None,
        anthropic_version: path_sel & 8 != 0,
        no_body: flags & 64 != 0,
    };
    let store = MemoryStore::new();
    let roll = u64::from(model_sel >> 3);
    let (mut exchange, action) = gateway.on_request_headers(&head, roll, NOW_MS);
    if let RequestAction::Reply(reply) = action {
        must_parse("a local reply to the request headers", &reply.body);
        let _ = exchange.finish(NOW_MS, gateway.quota(&store));
        return;
    }
    if !head.no_body {
        match exchange.on_request_body(request_body, NOW_MS + 1, gateway.quota(&store), gateway.prompts()) {
            BodyAction::Reply(reply) => {
                must_parse("a local reply to the request body", &reply.body);
                let _ = exchange.finish(NOW_MS + 2, gateway.quota(&store));
                return;
            }
            // What goes upstream is JSON (every provider API here takes JSON).
            BodyAction::Replace(body) => {
                must_parse("the upstream request body", &body);
            }
            BodyAction::Unchanged => panic!("a routed request body went upstream without admission"),
        }
    }
    let status = STATUSES.get(usize::from(status_sel & 7)).copied().unwrap_or(200);
    let content_type = CONTENT_TYPES.get(usize::from(status_sel >> 3) % CONTENT_TYPES.len()).copied().flatten();
    let _ = exchange.on_response_headers(status, content_type);
    let chunk = usize::from(chunk_sel & 127) + 1;
    let mut now = NOW_MS + 10;
    for piece in response_body.chunks(chunk) {
        now += 1;
        let _ = exchange.on_response_body(piece, false, now);
    }
    if chunk_sel & 128 != 0 {
        let _ = exchange.on_response_body(&[], true, now);
    }
    assert!(exchange.finish(now + 1, gateway.quota(&store)).is_some(), "no record");
    assert!(exchange.finish(now + 2, gateway.quota(&store)).is_none(), "a second record");
}
