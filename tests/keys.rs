//! Key pools: spread across requests, 429 cools a key down for its Retry-After, 401/403
//! takes it out; the state is in the (shared) store, so every worker sees it.

use llm_gateway::engine::{Exchange, Gateway, HeaderOp, RequestAction, RequestHead};
use llm_gateway::quota::MemoryStore;
use std::collections::BTreeSet;

mod common;

const CONFIG: &str = r#"{
  "providers": {
    "oa": {"kind": "openai", "cluster": "openai", "auth": {"type": "bearer", "env": "KEY_A", "pool": ["KEY_B", "KEY_C"]}},
    "one": {"kind": "openai", "cluster": "openai", "auth": {"type": "bearer", "env": "KEY_A"}}
  },
  "models": {"gpt": {"provider": "oa", "model": "gpt-4o"}, "solo": {"provider": "one", "model": "gpt-4o"}}
}"#;

fn env(name: &str) -> Option<String> {
    name.strip_prefix("KEY_").map(|k| format!("sk-{}", k.to_lowercase()))
}

fn gateway() -> Gateway {
    Gateway::from_json(CONFIG.as_bytes(), &env).unwrap()
}

fn exchange(gw: &Gateway, model: &str) -> Exchange {
    let head =
        RequestHead { method: "POST", path: "/v1/chat/completions", body_model: Some(model), ..RequestHead::default() };
    match gw.on_request_headers(&head, 0, 0) {
        (exchange, RequestAction::Forward(_)) => exchange,
        (_, RequestAction::Reply(reply)) => panic!("{}", String::from_utf8_lossy(&reply.body)),
    }
}

/// The key one request would use (the bearer value), and its exchange.
fn key_for(gw: &Gateway, roll: u64, now_ms: u64, store: &MemoryStore) -> (String, Exchange) {
    let mut ex = exchange(gw, "gpt");
    match gw.choose_key(&mut ex, roll, now_ms, store) {
        Some(HeaderOp::Set(name, value)) if name == "authorization" => (value, ex),
        other => panic!("expected the authorization header, got {other:?}"),
    }
}

fn keys_over_rolls(gw: &Gateway, now_ms: u64, store: &MemoryStore) -> BTreeSet<String> {
    (0..30).map(|roll| key_for(gw, roll, now_ms, store).0).collect()
}

#[test]
fn requests_are_spread_across_the_pool() {
    let gw = gateway();
    let store = MemoryStore::new();
    let used = keys_over_rolls(&gw, 0, &store);
    assert_eq!(used, ["Bearer sk-a", "Bearer sk-b", "Bearer sk-c"].map(String::from).into());
    // One key is no pool: the configured header stays as the route set it.
    let mut solo = exchange(&gw, "solo");
    assert_eq!(gw.choose_key(&mut solo, 1, 0, &store), None);
}

#[test]
fn a_key_that_got_429_cools_down_for_its_retry_after() {
    let gw = gateway();
    let store = MemoryStore::new();
    let (key, ex) = (0..).map(|roll| key_for(&gw, roll, 1_000, &store)).find(|(k, _)| k == "Bearer sk-b").unwrap();
    let (line, log) = common::logged(|| gw.key_outcome(&ex, 429, Some("30"), 1_000, &store));
    assert_eq!(line, None, "a cool-down is no news for the host log...");
    assert_eq!(log, ["DEBUG provider `oa`: key #2 got 429; it cools down for 30 s"], "...but the core says why");
    // Skipped by every request (every worker shares the store) for 30 s...
    assert!(!keys_over_rolls(&gw, 30_999, &store).contains(&key));
    // ...and back after.
    assert!(keys_over_rolls(&gw, 31_000, &store).contains(&key));
    // Without a usable Retry-After (an HTTP date): 5 s.
    let (_, ex) = (0..).map(|roll| key_for(&gw, roll, 40_000, &store)).find(|(k, _)| k == "Bearer sk-c").unwrap();
    gw.key_outcome(&ex, 429, Some("Wed, 21 Oct 2026 07:28:00 GMT"), 40_000, &store);
    assert!(!keys_over_rolls(&gw, 44_999, &store).contains("Bearer sk-c"));
    assert!(keys_over_rolls(&gw, 45_000, &store).contains("Bearer sk-c"));
}

#[test]
fn a_key_that_got_401_is_taken_out_and_logged() {
    let gw = gateway();
    let store = MemoryStore::new();
    let (_, ex) = (0..).map(|roll| key_for(&gw, roll, 0, &store)).find(|(k, _)| k == "Bearer sk-c").unwrap();
    let line = gw.key_outcome(&ex, 401, None, 0, &store).unwrap();
    assert!(line.contains("provider `oa` refused key #3 of its pool (HTTP 401)"), "{line}");
    assert!(!line.contains("sk-c"));
    assert!(!keys_over_rolls(&gw, 10_000_000, &store).contains("Bearer sk-c"));
    // Other statuses change nothing.
    let (_, ex) = (0..).map(|roll| key_for(&gw, roll, 0, &store)).find(|(k, _)| k == "Bearer sk-a").unwrap();
    assert_eq!(gw.key_outcome(&ex, 500, None, 0, &store), None);
    assert!(keys_over_rolls(&gw, 0, &store).contains("Bearer sk-a"));
    // A rotated key (a new value under the same variable) starts afresh.
    let rotated = |name: &str| if name == "KEY_C" { Some("sk-c2".to_string()) } else { env(name) };
    let gw2 = Gateway::from_json(CONFIG.as_bytes(), &rotated).unwrap();
    assert!(keys_over_rolls(&gw2, 0, &store).contains("Bearer sk-c2"));
}

#[test]
fn when_every_key_cools_down_the_soonest_free_is_used() {
    let gw = gateway();
    let store = MemoryStore::new();
    for (key, secs) in [("Bearer sk-a", "60"), ("Bearer sk-b", "10"), ("Bearer sk-c", "30")] {
        let (_, ex) = (0..).map(|roll| key_for(&gw, roll, 0, &store)).find(|(k, _)| k == key).unwrap();
        gw.key_outcome(&ex, 429, Some(secs), 0, &store);
    }
    assert_eq!(keys_over_rolls(&gw, 1_000, &store), ["Bearer sk-b".to_string()].into());
    let ((key, _), log) = common::logged(|| key_for(&gw, 0, 1_000, &store));
    assert_eq!(key, "Bearer sk-b");
    assert_eq!(log, ["DEBUG provider `oa`: every key of the pool cools down; key #2 is free soonest (in 9000 ms)"]);
}

#[test]
fn a_missing_pool_variable_names_its_path() {
    let error = Gateway::from_json(CONFIG.as_bytes(), &|n| (n != "KEY_C").then(|| "k".to_string())).unwrap_err();
    assert!(error.to_string().starts_with(r#"providers["oa"].auth.pool[1]: environment variable "KEY_C""#), "{error}");
}

#[test]
fn no_key_is_left_when_the_only_key_or_every_pooled_key_is_limited() {
    let gw = gateway();
    let store = MemoryStore::new();
    // A single key that got 429: nothing else to send with.
    assert!(gw.no_key_left(&exchange(&gw, "solo"), 0, &store));
    // A pool: left while any key is available, not once all cool down or are out.
    let (_, a) = key_for(&gw, 0, 0, &store);
    assert!(!gw.no_key_left(&a, 0, &store));
    gw.key_outcome(&a, 429, Some("30"), 0, &store);
    let (_, b) = key_for(&gw, 0, 0, &store);
    gw.key_outcome(&b, 401, None, 0, &store);
    assert!(!gw.no_key_left(&b, 0, &store), "one key is still available");
    let (_, c) = key_for(&gw, 0, 0, &store);
    gw.key_outcome(&c, 429, Some("5"), 0, &store);
    assert!(gw.no_key_left(&c, 1_000, &store));
    // Once a cool-down ends the target has a key again.
    assert!(!gw.no_key_left(&c, 6_000, &store));
}
