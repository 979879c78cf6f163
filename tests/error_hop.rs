//! Fallback on provider error codes (`fallback.on_error`), natively: which errors are held,
//! which code triggers a hop and to which target, the hop's request (translated, credential,
//! signature), its answer in the client's dialect, and settlement at the target that answered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use llm_gateway::engine::{translate_answer, Attempt, AttemptPlan, Gateway, RequestAction, RequestHead};
use llm_gateway::quota::MemoryStore;

const KEY_HASH: &str = "099295a3784e1bd368dc348843a7398c1931b6b8ec2504c73e91ed2040bdc46c"; // sha256("sk-alice")

fn config(fallback: &str) -> String {
    format!(
        r#"{{
  "providers": {{
    "an": {{"kind": "anthropic", "cluster": "anthropic", "authority": "api.anthropic.com",
            "auth": {{"type": "api-key", "env": "KEY"}}}},
    "oa": {{"kind": "openai", "cluster": "openai", "auth": {{"type": "bearer", "env": "KEY"}}}},
    "br": {{"kind": "bedrock", "cluster": "bedrock", "region": "us-east-1",
            "auth": {{"type": "aws-sigv4", "access_key_env": "KEY", "secret_key_env": "KEY"}}}}
  }},
  "models": {{
    "sonnet": {{"targets": [{{"provider": "an", "model": "claude-x"}}, {{"provider": "oa", "model": "gpt-y"}},
                            {{"provider": "br", "model": "anthropic.claude-3-5-sonnet-20240620-v1:0"}}],
               "fallback": {fallback}}}
  }},
  "consumers": {{"alice": {{"api_keys": ["{KEY_HASH}"], "plan": "usd"}}}},
  "plans": {{"usd": {{"limits": [{{"name": "monthly", "window": "month", "usd": "5.00"}}]}}}},
  "prices": {{"claude-x": {{"input": "10", "output": "20"}}, "gpt-y": {{"input": "1", "output": "2"}},
              "anthropic.claude-3-5-sonnet-20240620-v1:0": {{"input": "3", "output": "15"}}}}
}}"#
    )
}

const ON_ERROR: &str = r#"{"cluster": "chain", "on_error": ["context_length_exceeded"], "on_error_timeout_ms": 5000}"#;

fn gateway(fallback: &str) -> Gateway {
    Gateway::from_json(config(fallback).as_bytes(), &|k| (k == "KEY").then(|| "sk-upstream".to_string())).unwrap()
}

fn plan(path: &str, stream: bool) -> AttemptPlan {
    AttemptPlan { route: "sonnet".into(), path: path.into(), stream }
}

fn attempt(provider: &str, model: &str, status: Option<u16>, reason: &str) -> Attempt {
    Attempt { provider: provider.into(), target_model: model.into(), status, reason: reason.into() }
}

const ANTHROPIC_TOO_LONG: &[u8] =
    br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#;
const OPENAI_TOO_LONG: &[u8] = br#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
const ANTHROPIC_BAD_PARAM: &[u8] =
    br#"{"type":"error","error":{"type":"invalid_request_error","message":"temperature: must be at most 1"}}"#;

#[test]
fn config_takes_error_codes_and_a_bounded_timeout() {
    gateway(ON_ERROR);
    let error = |fallback: &str| {
        Gateway::from_json(config(fallback).as_bytes(), &|_| Some("k".to_string())).unwrap_err().to_string()
    };
    assert!(error(r#"{"cluster": "c", "on_error": ["two words"]}"#).contains("fallback.on_error"));
    assert!(error(r#"{"cluster": "c", "on_error": [""]}"#).contains("is not an error code"));
    assert!(error(r#"{"cluster": "c", "on_error": ["x"], "on_error_timeout_ms": 0}"#).contains("1 to 600000"));
    assert!(error(r#"{"cluster": "c", "on_error": "x"}"#).contains("fallback"));
}

#[test]
fn only_errors_that_may_name_a_trigger_are_held() {
    let gw = gateway(ON_ERROR);
    let p = plan("/v1/messages", false);
    let first = [attempt("an", "claude-x", None, "no_response")];
    assert!(gw.holds_error(&p, 400, true, true, &first));
    assert!(gw.holds_error(&p, 413, true, true, &first));
    assert!(!gw.holds_error(&p, 200, true, true, &first), "an answer");
    assert!(!gw.holds_error(&p, 401, true, true, &first), "the gateway's key refused: Envoy's retry");
    assert!(!gw.holds_error(&p, 400, false, true, &first), "not JSON: no code to read");
    assert!(!gw.holds_error(&p, 400, true, false, &first), "no body follows");
    let all = [
        attempt("an", "claude-x", Some(400), "fallback"),
        attempt("oa", "gpt-y", Some(400), "fallback"),
        attempt("br", "anthropic.claude-3-5-sonnet-20240620-v1:0", None, "no_response"),
    ];
    assert!(!gw.holds_error(&p, 400, true, true, &all), "no target left");
    // A chain without `on_error` holds nothing.
    assert!(!gateway(r#"{"cluster": "chain"}"#).holds_error(&p, 400, true, true, &first));
    assert!(gw.hops_on_error(&p) && !gateway(r#"{"cluster": "chain"}"#).hops_on_error(&p));
}

#[test]
fn a_trigger_code_hops_to_the_next_untried_target_in_chain_order() {
    let gw = gateway(ON_ERROR);
    let p = plan("/v1/messages", false);
    let first = [attempt("an", "claude-x", Some(400), "held")];
    let hop = gw.error_hop_target(&p, &first, 400, "an", ANTHROPIC_TOO_LONG);
    assert_eq!(hop, Some(("oa".to_string(), "context_length_exceeded".to_string())));
    // The error is read in the dialect of the target that sent it.
    let two = [attempt("an", "claude-x", Some(400), "fallback"), attempt("oa", "gpt-y", Some(400), "no_response")];
    let hop = gw.error_hop_target(&p, &two, 400, "oa", OPENAI_TOO_LONG);
    assert_eq!(hop, Some(("br".to_string(), "context_length_exceeded".to_string())));
    // A hop that met a status the chain moves on (429) goes on too.
    assert_eq!(gw.error_hop_target(&p, &two, 429, "oa", b"{}"), Some(("br".to_string(), "status 429".to_string())));
    // No trigger, an answer, or no target left: no hop.
    assert_eq!(gw.error_hop_target(&p, &first, 400, "an", ANTHROPIC_BAD_PARAM), None);
    assert_eq!(gw.error_hop_target(&p, &first, 200, "an", ANTHROPIC_TOO_LONG), None);
    let three = [two[0].clone(), two[1].clone(), attempt("br", "anthropic.claude-3-5-sonnet-20240620-v1:0", None, "x")];
    assert_eq!(gw.error_hop_target(&p, &three, 400, "br", OPENAI_TOO_LONG), None);
    // A trigger the chain does not list.
    let other = gateway(r#"{"cluster": "chain", "on_error": ["content_filter"]}"#);
    assert_eq!(other.error_hop_target(&p, &first, 400, "an", ANTHROPIC_TOO_LONG), None);
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[test]
fn the_hop_is_translated_for_its_target_with_its_credential() {
    let gw = gateway(ON_ERROR);
    let store = MemoryStore::new();
    // An Anthropic client's admitted body, hopping to OpenAI.
    let body = br#"{"model":"sonnet","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#;
    let hop = gw.start_hop(&plan("/v1/messages", false), "oa", body, 0, 1_000, &store).unwrap();
    assert_eq!(hop.cluster, "openai");
    assert_eq!(hop.timeout_ms, 5000);
    assert_eq!(header(&hop.headers, ":method"), Some("POST"));
    assert_eq!(header(&hop.headers, ":path"), Some("/v1/chat/completions"));
    assert_eq!(header(&hop.headers, ":authority"), Some("openai"));
    assert_eq!(header(&hop.headers, "authorization"), Some("Bearer sk-upstream"));
    assert_eq!(header(&hop.headers, "anthropic-version"), None);
    let sent: serde_json::Value = serde_json::from_slice(&hop.body).unwrap();
    assert_eq!(sent["model"], "gpt-y");
    assert_eq!(sent["messages"][0]["content"], "hi");
    assert_eq!(hop.attempt, attempt("oa", "gpt-y", None, "no_response"));
    // An OpenAI client hopping to Anthropic: its path, authority, key and version.
    let body = br#"{"model":"sonnet","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#;
    let hop = gw.start_hop(&plan("/v1/chat/completions", false), "an", body, 0, 1_000, &store).unwrap();
    assert_eq!(header(&hop.headers, ":path"), Some("/v1/messages"));
    assert_eq!(header(&hop.headers, ":authority"), Some("api.anthropic.com"));
    assert_eq!(header(&hop.headers, "x-api-key"), Some("sk-upstream"));
    assert_eq!(header(&hop.headers, "anthropic-version"), Some("2023-06-01"));
    assert!(!hop.headers.iter().any(|(n, _)| n == "content-length"));
    // A body the target cannot take is no hop.
    assert!(gw.start_hop(&plan("/v1/messages", false), "oa", b"not json", 0, 1_000, &store).is_err());
    assert!(gw.start_hop(&plan("/v1/messages", false), "nobody", body, 0, 1_000, &store).is_err());
}

#[test]
fn a_hop_to_bedrock_is_signed_over_its_translated_body() {
    let gw = gateway(ON_ERROR);
    let body = br#"{"model":"sonnet","max_tokens":100,"messages":[{"role":"user","content":"hi"}],"stream":true}"#;
    let hop = gw.start_hop(&plan("/v1/messages", true), "br", body, 0, 1_700_000_000_000, &MemoryStore::new()).unwrap();
    let path = header(&hop.headers, ":path").unwrap();
    assert!(path.ends_with("/converse-stream"), "{path}");
    assert_eq!(header(&hop.headers, ":authority"), Some("bedrock-runtime.us-east-1.amazonaws.com"));
    let authorization = header(&hop.headers, "authorization").unwrap();
    assert!(authorization.starts_with("AWS4-HMAC-SHA256 Credential=sk-upstream/"), "{authorization}");
    assert_eq!(header(&hop.headers, "x-amz-date"), Some("20231114T221320Z"));
    let digest = llm_gateway::llm::bedrock::sigv4::sha256_hex(&hop.body);
    assert_eq!(header(&hop.headers, "x-amz-content-sha256"), Some(digest.as_str()));
}

#[test]
fn the_hops_answer_reaches_the_client_in_its_dialect() {
    let gw = gateway(ON_ERROR);
    let store = MemoryStore::new();
    let body = br#"{"model":"sonnet","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut hop = gw.start_hop(&plan("/v1/messages", false), "oa", body, 0, 1_000, &store).unwrap();
    let answer = br#"{"id":"c","object":"chat.completion","created":1,"model":"gpt-y","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":48,"total_tokens":59}}"#;
    let got = translate_answer(&mut hop.exchange, 200, Some("application/json"), answer, 1_100);
    assert_eq!((got.status, got.content_type.as_str()), (200, "application/json"));
    let message: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["content"][0]["text"], "hello");
    assert_eq!(
        (message["usage"]["input_tokens"].as_u64(), message["usage"]["output_tokens"].as_u64()),
        (Some(11), Some(48))
    );
    // Its error too (the last one the client gets when no target is left).
    let mut hop = gw.start_hop(&plan("/v1/messages", false), "oa", body, 0, 1_000, &store).unwrap();
    let got = translate_answer(&mut hop.exchange, 400, Some("application/json"), OPENAI_TOO_LONG, 1_100);
    assert_eq!(got.status, 400);
    let error: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(error["type"], "error");
    assert!(error["error"]["message"].as_str().unwrap().starts_with("This model's maximum context length"));
    // An HTML page or an empty answer is still an error in the client's dialect.
    let mut hop = gw.start_hop(&plan("/v1/messages", false), "oa", body, 0, 1_000, &store).unwrap();
    let got = translate_answer(&mut hop.exchange, 502, Some("text/html"), b"<html>bad gateway</html>", 1_100);
    assert_eq!((got.status, got.content_type.as_str()), (502, "application/json"));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&got.body).unwrap()["type"], "error");
    let mut hop = gw.start_hop(&plan("/v1/messages", false), "oa", body, 0, 1_000, &store).unwrap();
    let got = translate_answer(&mut hop.exchange, 503, None, b"", 1_100);
    assert_eq!(got.status, 503);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&got.body).unwrap()["type"], "error");
    // Whatever the callout brings: an impossible status, garbage, a huge answer.
    for (status, content_type, raw) in [
        (999u16, Some("application/json"), b"{}".to_vec()),
        (0, None, b"\xff\xfe".to_vec()),
        (200, Some("application/json"), b"{\"choices\": 7}".to_vec()),
        (200, Some("text/event-stream"), b"data: {\"x\"\n\ndata: [DONE]".to_vec()),
        (200, Some("application/json"), vec![b'['; 5_000_000]),
    ] {
        let mut hop = gw.start_hop(&plan("/v1/messages", false), "oa", body, 0, 1_000, &store).unwrap();
        let got = translate_answer(&mut hop.exchange, status, content_type, &raw, 1_100);
        assert!((100..=599).contains(&got.status), "{status}: {}", got.status);
        assert!(!got.body.is_empty() || got.status == 200, "{status}");
    }
}

#[test]
fn a_streaming_clients_hop_answer_is_its_whole_stream() {
    let gw = gateway(ON_ERROR);
    let body = br#"{"model":"sonnet","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut hop = gw.start_hop(&plan("/v1/messages", true), "oa", body, 0, 1_000, &MemoryStore::new()).unwrap();
    let sent: serde_json::Value = serde_json::from_slice(&hop.body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true, "exact usage is asked for");
    let sse = concat!(
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-y\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hel\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-y\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-y\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":48,\"total_tokens\":59}}\n\n",
        "data: [DONE]\n\n"
    );
    let got = translate_answer(&mut hop.exchange, 200, Some("text/event-stream"), sse.as_bytes(), 1_100);
    assert_eq!((got.status, got.content_type.as_str()), (200, "text/event-stream"));
    let text = String::from_utf8(got.body).unwrap();
    assert!(text.starts_with("event: message_start"), "{text}");
    assert!(text.contains("\"text\":\"hel\"") && text.contains("\"text\":\"lo\""), "{text}");
    assert!(
        text.contains("\"output_tokens\":48") && text.trim_end().ends_with("data: {\"type\":\"message_stop\"}"),
        "{text}"
    );
}

#[test]
fn the_downstream_settles_once_at_the_hop_targets_price() {
    // The downstream instance after a hop: the attempt log ends with the hop's target.
    let gw = gateway(ON_ERROR);
    let store = MemoryStore::new();
    let head = RequestHead {
        method: "POST",
        path: "/v1/chat/completions",
        body_model: Some("sonnet"),
        authorization: Some("Bearer sk-alice"),
        ..RequestHead::default()
    };
    let (mut exchange, action) = gw.on_request_headers(&head, 0, 1_000);
    assert!(matches!(action, RequestAction::Forward(_)));
    let body = br#"{"model":"sonnet","messages":[{"role":"user","content":"hi"}],"max_tokens":100}"#;
    exchange.on_request_body(body, 1_000, gw.quota(&store), gw.prompts());
    let attempts = vec![attempt("an", "claude-x", Some(400), "fallback"), attempt("oa", "gpt-y", Some(200), "ok")];
    let answered = gw.answering_attempt("sonnet", &attempts);
    exchange.record_attempts(attempts, answered, gw.quota(&store));
    exchange.on_response_headers(200, Some("application/json"));
    let answer = br#"{"id":"c","object":"chat.completion","created":1,"model":"gpt-y","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":48,"total_tokens":59}}"#;
    exchange.on_response_body(answer, true, 1_100);
    let record = exchange.finish(1_200, gw.quota(&store)).unwrap();
    // gpt-y: 11 * 1 + 48 * 2 micro-USD, once (claude-x, reserved at, would be 11 * 10 + 48 * 20).
    assert_eq!(record.cost_micros, Some(107));
    assert_eq!(record.budget_remaining, vec![("monthly".to_string(), 5_000_000 - 107)]);
    assert_eq!(record.provider.as_deref(), Some("oa"));
    assert!(exchange.finish(1_300, gw.quota(&store)).is_none(), "settled once");
}
