//! The engine end to end, natively: request headers -> body patch -> response -> record.

use llm_gateway::engine::{BodyAction, Exchange, Gateway, HeaderOp, Record, RequestAction, RequestHead};
use llm_gateway::metrics;
use llm_gateway::usage::UsageSource;

mod common;
use common::same_at_every_split;

const CONFIG: &str = r#"{
  "providers": {
    "oa": {"kind": "openai", "cluster": "openai_cluster", "authority": "api.openai.com",
           "auth": {"type": "bearer", "env": "KEY"}},
    "local": {"kind": "openai-compatible", "cluster": "vllm", "base_path": "/api/v1/",
              "auth": {"type": "none"}}
  },
  "models": {
    "gpt": {"provider": "oa", "model": "gpt-4o-mini", "aliases": ["gpt-alias"]},
    "split": {"targets": [{"provider": "oa", "model": "a", "weight": 1}, {"provider": "local", "model": "b", "weight": 1}]}
  }
}"#;

const STREAM: &[u8] = include_bytes!("fixtures/openai/chat_stream_include_usage.sse");
const COMPLETION: &[u8] = include_bytes!("fixtures/openai/chat_completion.json");

fn gateway() -> Gateway {
    Gateway::from_json(CONFIG.as_bytes(), &|k| (k == "KEY").then(|| "sk-upstream".to_string())).unwrap()
}

fn head<'a>(path: &'a str, body_model: Option<&'a str>) -> RequestHead<'a> {
    RequestHead { method: "POST", path, body_model, ..RequestHead::default() }
}

fn forward(gw: &Gateway, head: &RequestHead<'_>, roll: u64) -> (Exchange, Vec<HeaderOp>) {
    match gw.on_request_headers(head, roll, 1_000) {
        (exchange, RequestAction::Forward(ops)) => (exchange, ops),
        (_, RequestAction::Reply(reply)) => {
            panic!("unexpected reply {} {}", reply.status, String::from_utf8_lossy(&reply.body))
        }
    }
}

fn set(name: &str, value: &str) -> HeaderOp {
    HeaderOp::Set(name.to_string(), value.to_string())
}

fn body_of(action: BodyAction) -> String {
    match action {
        BodyAction::Replace(bytes) => String::from_utf8(bytes).unwrap(),
        other => panic!("expected a replaced body, got {other:?}"),
    }
}

#[test]
fn routes_by_model_and_swaps_credentials() {
    let gw = gateway();
    let (_, ops) = forward(&gw, &head("/v1/chat/completions?key=secret", Some("gpt-alias")), 0);
    assert!(ops.contains(&set("x-llm-gateway-cluster", "openai_cluster")));
    // The client's query string is not forwarded, nor shown as the original path.
    assert!(ops.contains(&set(":path", "/v1/chat/completions")));
    assert!(ops.contains(&set("x-envoy-original-path", "/v1/chat/completions")));
    assert!(!ops.iter().any(|o| format!("{o:?}").contains("secret")));
    assert!(ops.contains(&set(":authority", "api.openai.com")));
    assert!(ops.contains(&HeaderOp::Remove("x-api-key".to_string())));
    // The client's credential is removed before ours is set.
    let remove = ops.iter().position(|o| *o == HeaderOp::Remove("authorization".to_string())).unwrap();
    let add = ops.iter().position(|o| *o == set("authorization", "Bearer sk-upstream")).unwrap();
    assert!(remove < add);
}

#[test]
fn split_targets_and_base_paths() {
    let gw = gateway();
    let (_, ops) = forward(&gw, &head("/v1/chat/completions", Some("split")), 1);
    assert!(ops.contains(&set("x-llm-gateway-cluster", "vllm")));
    assert!(ops.contains(&set(":path", "/api/v1/chat/completions")));
    assert!(!ops.iter().any(|o| matches!(o, HeaderOp::Set(name, _) if name == "authorization")));
    let (exchange, _) = forward(&gw, &head("/v1/chat/completions", Some("split")), 0);
    assert!(exchange.route_fields().contains(&("llm_target_model", Some("a"))));
}

#[test]
fn model_from_header_is_inserted_into_the_body() {
    let gw = gateway();
    let mut h = head("/v1/chat/completions", None);
    h.header_model = Some("gpt");
    let (mut exchange, ops) = forward(&gw, &h, 0);
    assert!(ops.contains(&HeaderOp::Remove("x-llm-model".to_string())));
    let body = body_of(exchange.on_request_body(br#"{"messages":[{"role":"user","content":"hi"}]}"#, 0, None, None));
    assert_eq!(body, r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#);
}

#[test]
fn local_replies_in_openai_shape() {
    let gw = gateway();
    let mut no_body = head("/v1/chat/completions", None);
    no_body.header_model = Some("gpt");
    no_body.no_body = true;
    let cases = [(head("/v1/files", Some("gpt")), 404, "unknown_url"), (no_body, 400, "missing_body")];
    for (h, status, needle) in cases {
        let (mut exchange, action) = gw.on_request_headers(&h, 0, 0);
        let RequestAction::Reply(reply) = action else { panic!("expected a reply") };
        assert_eq!(reply.status, status);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert!(body["error"]["message"].is_string());
        assert!(String::from_utf8_lossy(&reply.body).contains(needle), "{needle}");
        let record = exchange.finish(5, None).unwrap();
        assert_eq!(record.status, status);
        assert_eq!(record.usage.source, UsageSource::None);
        assert!(exchange.finish(6, None).is_none(), "a record is produced once");
    }
    let mut invalid = head("/v1/chat/completions", None);
    invalid.body_invalid = true;
    let (_, RequestAction::Reply(reply)) = gw.on_request_headers(&invalid, 0, 0) else { panic!() };
    assert_eq!(reply.status, 400);
}

/// An unknown or missing model is answered once the body is read: json_to_metadata turns
/// `"model": 123` into "123" and `null` into nothing, and only the body tells a wrong type
/// from an unknown name. Nothing is routed meanwhile.
#[test]
fn model_errors_are_stated_from_the_body() {
    let gw = gateway();
    let cases: [(Option<&str>, &str, u16, serde_json::Value); 5] = [
        (
            Some("nope"),
            r#"{"model":"nope","messages":[]}"#,
            404,
            serde_json::json!({"error": {
            "message": "The model `nope` does not exist or you do not have access to it.",
            "type": "invalid_request_error", "param": null, "code": "model_not_found"}}),
        ),
        (
            None,
            r#"{"messages":[]}"#,
            400,
            serde_json::json!({"error": {
            "message": "you must provide a model parameter",
            "type": "invalid_request_error", "param": null, "code": null}}),
        ),
        (Some("123"), r#"{"model":123,"messages":[]}"#, 400, serde_json::json!("model: must be a string")),
        (None, r#"{"model":null,"messages":[]}"#, 400, serde_json::json!("model: must be a string")),
        // Routed by one model, the body names another (a parser disagreement): refused.
        (
            Some("gpt"),
            r#"{"model":"split","messages":[]}"#,
            400,
            serde_json::json!("model: the body names a different model than the one it was routed by"),
        ),
    ];
    for (model, body, status, expected) in cases {
        let (mut exchange, ops) = forward(&gw, &head("/v1/chat/completions", model), 0);
        let routed = ops.iter().any(|o| matches!(o, HeaderOp::Set(name, _) if name == "x-llm-gateway-cluster"));
        assert_eq!(routed, model == Some("gpt"), "only a known model chooses a cluster");
        assert!(exchange.awaits_body());
        let BodyAction::Reply(reply) = exchange.on_request_body(body.as_bytes(), 0, None, None) else {
            panic!("{body}: expected a reply")
        };
        assert_eq!(reply.status, status, "{body}");
        let got: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        match expected {
            serde_json::Value::String(message) => assert_eq!(got["error"]["message"], message.as_str(), "{body}"),
            whole => assert_eq!(got, whole, "{body}"),
        }
        assert!(!exchange.awaits_body());
    }
}

#[test]
fn body_is_patched_not_reserialized() {
    let gw = gateway();
    let (mut exchange, _) = forward(&gw, &head("/v1/chat/completions", Some("gpt")), 0);
    let original = "{ \"model\" : \"gpt\",\n  \"messages\": [{\"role\":\"user\",\"content\":\"h\\u00e9\"}], \"temperature\": 1.50 }";
    let body = body_of(exchange.on_request_body(original.as_bytes(), 0, None, None));
    assert_eq!(body, original.replace("\"gpt\"", "\"gpt-4o-mini\""));
}

#[test]
fn invalid_and_oversized_bodies_are_refused() {
    let gw = gateway();
    let (mut exchange, _) = forward(&gw, &head("/v1/chat/completions", Some("gpt")), 0);
    let BodyAction::Reply(reply) = exchange.on_request_body(br#"{"model":"gpt","messages":[}"#, 0, None, None) else {
        panic!()
    };
    assert_eq!(reply.status, 400);
    assert!(String::from_utf8_lossy(&reply.body).contains("invalid JSON at byte 27"));
    let (mut exchange, _) = forward(&gw, &head("/v1/chat/completions", Some("gpt")), 0);
    let reply = exchange.reject_oversized_body((8 << 20) + 1).unwrap();
    assert_eq!(reply.status, 413);
}

/// Streams the fixture through an exchange in the given chunks; returns what the client got.
fn run_stream(request_body: &str, chunks: &[&[u8]]) -> (Vec<u8>, Record) {
    let gw = gateway();
    let (mut exchange, _) = forward(&gw, &head("/v1/chat/completions", Some("gpt")), 0);
    let patched = body_of(exchange.on_request_body(request_body.as_bytes(), 0, None, None));
    let patched: serde_json::Value = serde_json::from_str(&patched).unwrap();
    assert_eq!(patched["stream_options"]["include_usage"], true);
    exchange.on_response_headers(200, Some("text/event-stream; charset=utf-8"));
    let mut client = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let end = i + 1 == chunks.len();
        match exchange.on_response_body(chunk, end, 1_010 + i as u64) {
            BodyAction::Unchanged => client.extend_from_slice(chunk),
            BodyAction::Replace(bytes) => client.extend_from_slice(&bytes),
            BodyAction::Reply(_) => panic!("no replies on responses"),
        }
    }
    (client, exchange.finish(2_000, None).unwrap())
}

#[test]
fn stream_usage_is_hidden_from_clients_that_did_not_ask() {
    let request = r#"{"model":"gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let (client, record) = run_stream(request, &[STREAM]);
    let text = String::from_utf8(client).unwrap();
    assert!(!text.contains("usage"), "{text}");
    assert_eq!(text.matches("data: ").count(), 5, "4 chunks and [DONE]: {text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
    // Each forwarded chunk is the provider's chunk minus `"usage":null`, byte for byte.
    let expected_first = r#"data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#;
    assert!(text.starts_with(expected_first), "{text}");
    let u = record.usage;
    assert_eq!((u.input, u.output, u.cached_input, u.reasoning), (Some(9), Some(12), Some(4), Some(2)));
    assert_eq!(u.source, UsageSource::Reported);
    assert!(record.stream);
    assert_eq!(record.time_to_first_token_ms, Some(1_010 - 1_000));
}

#[test]
fn stream_passes_through_untouched_when_the_client_asked_for_usage() {
    let request = r#"{"model":"gpt","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#;
    let (client, record) = run_stream(request, &[STREAM]);
    assert_eq!(client, STREAM);
    assert_eq!(record.usage.total(), Some(21));
}

#[test]
fn existing_stream_options_are_kept() {
    let gw = gateway();
    let (mut exchange, _) = forward(&gw, &head("/v1/chat/completions", Some("gpt")), 0);
    let body = body_of(exchange.on_request_body(
        br#"{"model":"gpt","stream":true,"stream_options":{"include_usage":false,"x":1},"messages":[]}"#,
        0,
        None,
        None,
    ));
    assert_eq!(
        body,
        r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true,"x":1},"messages":[]}"#
    );
}

#[test]
fn every_split_point_gives_the_same_stream_and_usage() {
    let request = r#"{"model":"gpt","stream":true,"messages":[]}"#;
    same_at_every_split(STREAM, |chunks| {
        let (client, record) = run_stream(request, chunks);
        (client, record.usage)
    });
}

#[test]
fn an_abandoned_stream_is_estimated_from_what_was_seen() {
    let gw = gateway();
    let (mut exchange, _) = forward(&gw, &head("/v1/chat/completions", Some("gpt")), 0);
    let body = br#"{"model":"gpt","stream":true,"messages":[{"role":"user","content":"0123456789abcdef"}]}"#;
    exchange.on_request_body(body, 0, None, None);
    exchange.on_response_headers(200, Some("text/event-stream"));
    // Only the first three chunks arrive (the third one cut mid-line), then the client leaves.
    let cut = STREAM.windows(6).position(|w| w == b" w\xc3\xb6rl").unwrap();
    exchange.on_response_body(&STREAM[..cut], false, 1_050);
    let record = exchange.finish(1_100, None).unwrap();
    assert_eq!(record.usage.source, UsageSource::Estimated);
    // "Hello" = 5 bytes -> 2 tokens; the input is the whole body (every member is prompt),
    // at 4 bytes a token.
    assert_eq!(record.usage.output, Some(2));
    assert_eq!(record.usage.input, Some((body.len() as u64).div_ceil(4)));
    assert_eq!(record.duration_ms, 100);
}

#[test]
fn json_response_usage_and_metrics() {
    let gw = gateway();
    let (mut exchange, _) = forward(&gw, &head("/v1/chat/completions", Some("gpt")), 0);
    exchange.on_request_body(br#"{"model":"gpt","messages":[]}"#, 0, None, None);
    assert_eq!(
        exchange.on_response_headers(200, Some("application/json")),
        [HeaderOp::Remove("content-length".to_string())]
    );
    let (a, b) = COMPLETION.split_at(100);
    // Held until known to be complete JSON, then sent byte for byte.
    assert_eq!(exchange.on_response_body(a, false, 1_001), BodyAction::Replace(Vec::new()));
    assert_eq!(exchange.on_response_body(b, true, 1_002), BodyAction::Replace(COMPLETION.to_vec()));
    let record = exchange.finish(1_250, None).unwrap();
    assert_eq!((record.usage.input, record.usage.output), (Some(1117), Some(46)));
    let points = metrics::points(&record);
    let names: Vec<&str> = points.iter().map(|p| p.name.as_str()).collect();
    let labels =
        "gen_ai_operation_name=chat;gen_ai_provider_name=oa;gen_ai_request_model=gpt;gen_ai_target_model=gpt-4o-mini";
    assert!(
        names.contains(
            &format!("gen_ai_server_requests;{labels};llm_consumer=none;llm_prompt_template=none;http_status_code=200")
                .as_str()
        ),
        "{names:?}"
    );
    let input = points
        .iter()
        .find(|p| {
            p.name
                == format!(
                    "gen_ai_client_token_count;{labels};gen_ai_token_type=input;usage_source=reported;\
                     llm_consumer=none;llm_prompt_template=none"
                )
        })
        .unwrap();
    assert_eq!(input.value, 1117);
    let duration = points.iter().find(|p| p.name.starts_with("gen_ai_server_request_duration;")).unwrap();
    assert_eq!(duration.value, 250);
    let fields = metrics::log_fields(&record);
    assert!(fields.contains(&("llm_total_tokens", "1163".to_string())));
}

#[test]
fn provider_errors_pass_through_uncounted() {
    let gw = gateway();
    let (mut exchange, _) = forward(&gw, &head("/v1/chat/completions", Some("gpt")), 0);
    exchange.on_request_body(br#"{"model":"gpt","messages":[]}"#, 0, None, None);
    exchange.on_response_headers(503, Some("application/json"));
    let error = br#"{"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}"#;
    assert_eq!(exchange.on_response_body(error, true, 1_001), BodyAction::Unchanged);
    let record = exchange.finish(1_002, None).unwrap();
    assert_eq!(record.status, 503);
    assert_eq!(record.usage.source, UsageSource::None);
}
