//! Fallback chains natively: the downstream instance's routing and single reservation, each
//! attempt's translation, the retry mark, and settlement at the target that answered.

use llm_gateway::engine::{
    decode_attempts, encode_attempts, Attempt, AttemptPlan, BodyAction, Exchange, Gateway, HeaderOp, RequestAction,
    RequestHead, UNTRANSLATED_PATH,
};
use llm_gateway::metrics;
use llm_gateway::quota::MemoryStore;

mod common;

const KEY_HASH: &str = "099295a3784e1bd368dc348843a7398c1931b6b8ec2504c73e91ed2040bdc46c"; // sha256("sk-alice")

fn config(models: &str) -> String {
    format!(
        r#"{{
  "providers": {{
    "an": {{"kind": "anthropic", "cluster": "anthropic", "authority": "api.anthropic.com",
            "auth": {{"type": "api-key", "env": "KEY"}}}},
    "oa": {{"kind": "openai", "cluster": "openai", "auth": {{"type": "bearer", "env": "KEY"}}}},
    "br": {{"kind": "bedrock", "cluster": "bedrock", "region": "us-east-1",
            "auth": {{"type": "aws-sigv4", "access_key_env": "KEY", "secret_key_env": "KEY"}}}}
  }},
  "models": {models},
  "consumers": {{"alice": {{"api_keys": ["{KEY_HASH}"], "plan": "usd"}}}},
  "plans": {{"usd": {{"limits": [{{"name": "monthly", "window": "month", "usd": "5.00"}}]}}}},
  "prices": {{"claude-x": {{"input": "10", "output": "20"}}, "gpt-y": {{"input": "1", "output": "2"}}}}
}}"#
    )
}

const CHAIN: &str = r#"{
  "sonnet": {"targets": [{"provider": "an", "model": "claude-x"}, {"provider": "oa", "model": "gpt-y"}],
             "fallback": {"cluster": "chain_sonnet"}},
  "single": {"provider": "oa", "model": "gpt-y"}
}"#;

fn gateway() -> Gateway {
    Gateway::from_json(config(CHAIN).as_bytes(), &|k| (k == "KEY").then(|| "sk-upstream".to_string())).unwrap()
}

fn config_error(models: &str) -> String {
    Gateway::from_json(config(models).as_bytes(), &|_| Some("k".to_string())).unwrap_err().to_string()
}

fn head(path: &str) -> RequestHead<'_> {
    RequestHead {
        method: "POST",
        path,
        body_model: Some("sonnet"),
        authorization: Some("Bearer sk-alice"),
        ..RequestHead::default()
    }
}

fn downstream(gw: &Gateway, path: &str) -> (Exchange, Vec<HeaderOp>) {
    match gw.on_request_headers(&head(path), 0, 1_000) {
        (exchange, RequestAction::Forward(ops)) => (exchange, ops),
        (_, RequestAction::Reply(reply)) => panic!("reply {}", String::from_utf8_lossy(&reply.body)),
    }
}

fn set(name: &str, value: &str) -> HeaderOp {
    HeaderOp::Set(name.to_string(), value.to_string())
}

fn replaced(action: BodyAction) -> serde_json::Value {
    match action {
        BodyAction::Replace(bytes) => serde_json::from_slice(&bytes).unwrap(),
        other => panic!("expected a replaced body, got {other:?}"),
    }
}

fn attempt(provider: &str, model: &str, status: Option<u16>, reason: &str) -> Attempt {
    Attempt { provider: provider.into(), target_model: model.into(), status, reason: reason.into() }
}

#[test]
fn config_accepts_chains_and_refuses_what_cannot_work() {
    gateway();
    let weighted =
        r#"{"m": {"targets": [{"provider": "an", "model": "a", "weight": 1}, {"provider": "oa", "model": "b"}]}}"#;
    assert!(config_error(weighted).contains(r#"models["m"].targets[1]: missing field `weight`"#));
    let chain =
        |targets: &str, fallback: &str| format!(r#"{{"m": {{"targets": [{targets}], "fallback": {fallback}}}}}"#);
    let two = r#"{"provider": "an", "model": "a"}, {"provider": "oa", "model": "b"}"#;
    let cases = [
        (
            chain(
                r#"{"provider": "an", "model": "a", "weight": 2}, {"provider": "oa", "model": "b"}"#,
                r#"{"cluster": "c"}"#,
            ),
            "targets[0].weight: a fallback chain is ordered, not weighted",
        ),
        (
            chain(r#"{"provider": "an", "model": "a"}, {"provider": "an", "model": "b"}"#, r#"{"cluster": "c"}"#),
            "appears twice in the chain",
        ),
        (chain(r#"{"provider": "an", "model": "a"}"#, r#"{"cluster": "c"}"#), "needs at least two targets"),
        (chain(two, r#"{"cluster": " "}"#), "fallback.cluster: must name"),
        (chain(two, r#"{"cluster": "c", "on_status": [200]}"#), "200 is not an error status"),
        (chain(two, r#"{"cluster": "c", "retries": 3}"#), "unknown field `retries`"),
        (r#"{"m": {"provider": "an", "model": "a", "fallback": {"cluster": "c"}}}"#.to_string(), "needs `targets`"),
    ];
    for (models, expected) in cases {
        let error = config_error(&models);
        assert!(error.contains(expected), "{models}: {error}");
    }
}

#[test]
fn downstream_routes_to_the_chain_cluster_in_the_clients_dialect() {
    let gw = gateway();
    let (mut exchange, ops) = downstream(&gw, "/v1/chat/completions");
    assert!(ops.contains(&set("x-llm-gateway-cluster", "chain_sonnet")));
    // No provider path or credential until an attempt sets its target's.
    assert!(ops.contains(&set(":path", UNTRANSLATED_PATH)));
    assert!(ops.contains(&HeaderOp::Remove("authorization".to_string())));
    assert!(!ops.iter().any(|o| format!("{o:?}").contains("sk-upstream")));
    let plan = exchange.attempt_plan().unwrap().clone();
    assert_eq!(plan, AttemptPlan { route: "sonnet".into(), path: "/v1/chat/completions".into(), stream: false });
    assert_eq!(AttemptPlan::decode(plan.encode().as_bytes()), Some(plan));
    // The provider is not known before an attempt answers.
    assert!(exchange.route_fields().contains(&("llm_provider", None)));
    let store = MemoryStore::new();
    let body = br#"{"model":"sonnet","messages":[{"role":"user","content":"hi"}],"max_tokens":100}"#;
    let sent = replaced(exchange.on_request_body(body, 1_000, gw.quota(&store), gw.prompts()));
    // Still OpenAI's dialect: each attempt translates.
    assert_eq!(sent["messages"][0]["content"], "hi");
    assert_eq!(sent["max_tokens"], 100);
}

#[test]
fn non_chat_operations_are_refused_for_chains() {
    let gw = gateway();
    let (_, action) = gw.on_request_headers(&head("/v1/embeddings"), 0, 1_000);
    let RequestAction::Reply(reply) = action else { panic!("expected a refusal") };
    assert_eq!(reply.status, 400);
    assert!(String::from_utf8_lossy(&reply.body).contains("fallback chain of sonnet"));
}

#[test]
fn each_attempt_translates_for_the_target_it_reached() {
    let gw = gateway();
    let plan = AttemptPlan { route: "sonnet".into(), path: "/v1/chat/completions".into(), stream: false };
    let start = gw.start_attempt(&plan, Some("an"), 1_000).unwrap();
    assert!(start.ops.contains(&set(":path", "/v1/messages")));
    assert!(start.ops.contains(&set("x-api-key", "sk-upstream")));
    assert!(start.ops.contains(&set(":authority", "api.anthropic.com")));
    assert!(start.ops.contains(&set("anthropic-version", "2023-06-01")));
    assert_eq!(start.attempt, attempt("an", "claude-x", None, "no_response"));
    let mut exchange = start.exchange;
    let body = br#"{"model":"sonnet","messages":[{"role":"user","content":"hi"}],"max_tokens":100}"#;
    let sent = replaced(exchange.on_request_body(body, 1_000, None, None));
    assert_eq!(sent["model"], "claude-x");
    assert_eq!(sent["messages"][0]["content"][0]["text"], "hi");
    // The answer goes back in the client's dialect.
    exchange.on_response_headers(200, Some("application/json"));
    let answer = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"hello"}],"stop_reason":"end_turn","usage":{"input_tokens":11,"output_tokens":48}}"#;
    let client = replaced(exchange.on_response_body(answer, true, 1_100));
    assert_eq!(client["object"], "chat.completion");
    assert_eq!(client["choices"][0]["message"]["content"], "hello");
    assert_eq!(client["usage"]["prompt_tokens"], 11);

    // The next attempt, on the OpenAI target: the same admitted body, patched.
    let start = gw.start_attempt(&plan, Some("oa"), 1_000).unwrap();
    assert!(start.ops.contains(&set(":path", "/v1/chat/completions")));
    assert!(start.ops.contains(&set("authorization", "Bearer sk-upstream")));
    let mut exchange = start.exchange;
    let sent = replaced(exchange.on_request_body(body, 1_000, None, None));
    assert_eq!(sent["model"], "gpt-y");
}

#[test]
fn the_budgets_cap_reaches_a_target_that_reads_only_max_tokens() {
    let models = r#"{"m": {"targets": [{"provider": "an", "model": "a"}, {"provider": "vl", "model": "llama"}],
                          "fallback": {"cluster": "c"}}}"#;
    let json = config(models).replace(
        r#""providers": {"#,
        r#""providers": {"vl": {"kind": "vllm", "cluster": "vllm", "auth": {"type": "none"}},"#,
    );
    let gw = Gateway::from_json(json.as_bytes(), &|_| Some("k".to_string())).unwrap();
    let plan = AttemptPlan { route: "m".into(), path: "/v1/chat/completions".into(), stream: false };
    let mut exchange = gw.start_attempt(&plan, Some("vl"), 0).unwrap().exchange;
    let body = br#"{"model":"m","max_completion_tokens":42,"messages":[{"role":"user","content":"hi"}]}"#;
    let sent = replaced(exchange.on_request_body(body, 0, None, None));
    assert_eq!((sent["max_tokens"].as_u64(), sent["model"].as_str()), (Some(42), Some("llama")));
    // A translated target gets the cap in its own field.
    let mut exchange = gw.start_attempt(&plan, Some("an"), 0).unwrap().exchange;
    let sent = replaced(exchange.on_request_body(body, 0, None, None));
    assert_eq!(sent["max_tokens"], 42, "Anthropic's cap, translated");
}

#[test]
fn a_sigv4_target_is_signed_over_the_body_of_its_attempt() {
    let models = r#"{"m": {"targets": [{"provider": "an", "model": "a"}, {"provider": "br", "model": "anthropic.claude-x"}],
                          "fallback": {"cluster": "c"}}}"#;
    let gw = Gateway::from_json(config(models).as_bytes(), &|_| Some("k".to_string())).unwrap();
    let plan = AttemptPlan { route: "m".into(), path: "/v1/messages".into(), stream: false };
    let start = gw.start_attempt(&plan, Some("br"), 1_700_000_000_000).unwrap();
    assert!(start.ops.contains(&set(":path", "/model/anthropic.claude-x/converse")));
    assert!(start.ops.contains(&set(":authority", "bedrock-runtime.us-east-1.amazonaws.com")));
    let mut exchange = start.exchange;
    let body = br#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
    let sent = replaced(exchange.on_request_body(body, 1_700_000_000_000, None, None));
    assert_eq!(sent["messages"][0]["content"][0]["text"], "hi");
    let signed: Vec<&str> = exchange.deferred_headers().iter().map(|(name, _)| name.as_str()).collect();
    assert!(signed.contains(&"authorization") && signed.contains(&"x-amz-date"), "{signed:?}");
    let authorization = &exchange.deferred_headers().iter().find(|(n, _)| n == "authorization").unwrap().1;
    assert!(authorization.starts_with("AWS4-HMAC-SHA256 Credential=k/20231114/us-east-1/bedrock/aws4_request"));
}

#[test]
fn an_endpoint_outside_the_chain_is_answered_in_the_clients_dialect() {
    let gw = gateway();
    let plan = AttemptPlan { route: "sonnet".into(), path: "/v1/messages".into(), stream: true };
    for provider in [None, Some("br"), Some("nobody")] {
        // `br` exists but is not a target of this chain.
        let reply = gw.start_attempt(&plan, provider, 0).unwrap_err();
        assert_eq!(reply.status, 502);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["type"], "error", "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("names no target of its chain"));
    }
    // A plan naming a model without a chain is not an attempt's to translate.
    let single = AttemptPlan { route: "single".into(), path: "/v1/chat/completions".into(), stream: false };
    assert!(gw.start_attempt(&single, Some("oa"), 0).is_err());
}

#[test]
fn retry_marks_need_a_trigger_status_and_an_untried_target() {
    let gw = gateway();
    let plan = AttemptPlan { route: "sonnet".into(), path: "/v1/chat/completions".into(), stream: false };
    let first = [attempt("an", "claude-x", None, "no_response")];
    for status in [429, 500, 502, 503, 504, 529] {
        assert!(gw.should_fall_back(&plan, status, &first), "{status}");
    }
    for status in [401, 403] {
        assert!(gw.should_fall_back(&plan, status, &first), "{status}: the gateway's own key was refused");
    }
    for status in [200, 400, 404, 413] {
        assert!(!gw.should_fall_back(&plan, status, &first), "{status}");
    }
    // Every target tried: the last error goes to the client, and the log says why.
    let both = [attempt("an", "claude-x", Some(429), "fallback"), attempt("oa", "gpt-y", None, "no_response")];
    let (falls_back, log) = common::logged(|| gw.should_fall_back(&plan, 429, &both));
    assert!(!falls_back);
    assert_eq!(log, ["DEBUG model `sonnet`: HTTP 429 from the last untried target goes to the client"]);
    let (_, log) = common::logged(|| gw.should_fall_back(&plan, 503, &first));
    assert_eq!(log, ["DEBUG model `sonnet`: HTTP 503 moves the request to the next target"]);
    // `on_status` replaces the defaults.
    let models = r#"{"m": {"targets": [{"provider": "an", "model": "a"}, {"provider": "oa", "model": "b"}],
                          "fallback": {"cluster": "c", "on_status": [400]}}}"#;
    let custom = Gateway::from_json(config(models).as_bytes(), &|_| Some("k".to_string())).unwrap();
    let plan = AttemptPlan { route: "m".into(), path: "/v1/messages".into(), stream: false };
    assert!(custom.should_fall_back(&plan, 400, &[attempt("an", "a", None, "no_response")]));
    assert!(!custom.should_fall_back(&plan, 429, &[attempt("an", "a", None, "no_response")]));
}

#[test]
fn attempt_log_round_trips_and_drops_garbage() {
    let attempts = vec![attempt("an", "claude-x", Some(429), "fallback"), attempt("oa", "gpt-y", None, "no_response")];
    assert_eq!(decode_attempts(encode_attempts(&attempts).as_bytes()), attempts);
    let garbage = b"an claude-x 429 fallback\nnot enough\nan m x reason\n\xff\xfe";
    assert_eq!(decode_attempts(garbage), vec![attempt("an", "claude-x", Some(429), "fallback")]);
    assert_eq!(AttemptPlan::decode(b"sonnet\n/v1/messages\n2"), None);
    assert_eq!(AttemptPlan::decode(b"sonnet\n/v1/messages\n1\nextra"), None);
}

/// Runs one chained request downstream: reserved once at the costliest target, the answer
/// (already in the client's dialect) settled at the target that answered.
fn settle_chain(attempts: Vec<Attempt>, status: u16) -> (llm_gateway::engine::Record, MemoryStore) {
    let gw = gateway();
    let store = MemoryStore::new();
    let (mut exchange, _) = downstream(&gw, "/v1/chat/completions");
    let body = br#"{"model":"sonnet","messages":[{"role":"user","content":"hi"}],"max_tokens":100}"#;
    replaced(exchange.on_request_body(body, 1_000, gw.quota(&store), gw.prompts()));
    let answered = gw.answering_attempt("sonnet", &attempts);
    exchange.record_attempts(attempts, answered, gw.quota(&store));
    exchange.on_response_headers(status, Some("application/json"));
    let answer = if status == 200 {
        br#"{"id":"c","object":"chat.completion","created":1,"model":"gpt-y","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":48,"total_tokens":59}}"#.to_vec()
    } else {
        br#"{"error":{"message":"busy","type":"server_error","param":null,"code":null}}"#.to_vec()
    };
    exchange.on_response_body(&answer, true, 1_100);
    (exchange.finish(1_200, gw.quota(&store)).unwrap(), store)
}

#[test]
fn settled_once_at_the_price_of_the_target_that_answered() {
    let attempts = vec![attempt("an", "claude-x", Some(429), "fallback"), attempt("oa", "gpt-y", Some(200), "ok")];
    let (record, _) = settle_chain(attempts.clone(), 200);
    // gpt-y: 11 * 1 + 48 * 2 micro-USD (claude-x would be 11 * 10 + 48 * 20).
    assert_eq!(record.cost_micros, Some(107));
    assert_eq!(record.budget_remaining, vec![("monthly".to_string(), 5_000_000 - 107)]);
    assert_eq!((record.provider.as_deref(), record.target_model.as_deref()), (Some("oa"), Some("gpt-y")));
    assert_eq!(record.attempts, attempts);
    let points = metrics::points(&record);
    let value = |name: &str| points.iter().find(|p| p.name == name).map(|p| p.value);
    assert_eq!(
        value(
            "llm_gateway_attempts;gen_ai_request_model=sonnet;gen_ai_provider_name=an;gen_ai_target_model=claude-x;\
             http_status_code=429;llm_reason=fallback"
        ),
        Some(1)
    );
    assert_eq!(value("llm_gateway_fallbacks;gen_ai_request_model=sonnet"), Some(1));
    let fields = metrics::log_fields(&record);
    assert!(fields.contains(&("llm_attempts", "an/claude-x:429:fallback,oa/gpt-y:200:ok".to_string())));
    assert!(fields.contains(&("llm_fallbacks", "1".to_string())));
    assert!(fields.contains(&("llm_provider", "oa".to_string())));
}

#[test]
fn all_targets_failing_cost_nothing() {
    let attempts = vec![attempt("an", "claude-x", Some(429), "fallback"), attempt("oa", "gpt-y", Some(503), "error")];
    let (record, _) = settle_chain(attempts, 503);
    assert_eq!(record.cost_micros, None);
    assert_eq!(record.status, 503);
    // The reservation was released: nothing settled, nothing spent.
    assert!(record.budget_remaining.is_empty());
}

#[test]
fn an_attempt_log_naming_another_target_is_not_believed() {
    let gw = gateway();
    let forged = [attempt("an", "gpt-y", Some(200), "ok")];
    assert_eq!(gw.answering_attempt("sonnet", &forged), None);
    assert_eq!(gw.answering_attempt("sonnet", &[]), None);
}
