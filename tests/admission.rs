//! What the gateway admits from a request body (issue 10, items 2, 3, 16, 17, 18, 19):
//! duplicate keys, several choices, the whole body estimated, Responses clamped, every
//! output cap validated and clamped in the field the provider reads, images at their cost.

use llm_gateway::auth::api_key::digest;
use llm_gateway::engine::{BodyAction, Exchange, Gateway, HeaderOp, LocalReply, RequestAction, RequestHead};
use llm_gateway::quota::MemoryStore;
use serde_json::{json, Value};

const NOW_MS: u64 = 1_795_734_600_000;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Providers of three kinds, one consumer on a plan of `tokens` per minute.
fn gateway(tokens: u64, min_output_tokens: u64, estimator: &str) -> Gateway {
    let config = json!({
        "providers": {
            "oa": {"kind": "openai", "cluster": "oa", "auth": {"type": "bearer", "env": "KEY"}},
            "mis": {"kind": "mistral", "cluster": "mis", "auth": {"type": "bearer", "env": "KEY"}},
            "claude": {"kind": "anthropic", "cluster": "claude", "auth": {"type": "api-key", "env": "KEY"}},
        },
        "models": {
            "gpt": {"provider": "oa", "model": "gpt-4o"},
            "mistral": {"provider": "mis", "model": "mistral-small-latest"},
            "claude": {"provider": "claude", "model": "claude-sonnet-4-5"},
        },
        "consumers": {"alice": {"api_keys": [hex(&digest("sk-alice"))], "plan": "small"}},
        "plans": {"small": {"limits": [{"name": "tpm", "window": "minute", "tokens": tokens}]}},
        "quota": {"clamp_max_tokens": true, "estimator": estimator, "min_output_tokens": min_output_tokens,
                  "default_max_output_tokens": 64},
    });
    Gateway::from_json(config.to_string().as_bytes(), &|k| (k == "KEY").then(|| "sk-upstream".to_string())).unwrap()
}

fn roomy() -> Gateway {
    gateway(1_000_000, 1, "upper-bound")
}

fn exchange(gw: &Gateway, path: &str, model: &str) -> Exchange {
    let head = RequestHead {
        method: "POST",
        path,
        body_model: Some(model),
        authorization: Some("Bearer sk-alice"),
        x_api_key: Some("sk-alice"),
        ..RequestHead::default()
    };
    match gw.on_request_headers(&head, 0, NOW_MS) {
        (exchange, RequestAction::Forward(_)) => exchange,
        (_, RequestAction::Reply(reply)) => panic!("refused at headers: {}", String::from_utf8_lossy(&reply.body)),
    }
}

/// Runs the body step; returns the exchange (for its budget headers) and the action.
fn admit(gw: &Gateway, store: &MemoryStore, path: &str, body: &Value) -> (Exchange, BodyAction) {
    admit_raw(gw, store, path, body["model"].as_str().unwrap(), body.to_string().as_bytes())
}

fn admit_raw(gw: &Gateway, store: &MemoryStore, path: &str, model: &str, body: &[u8]) -> (Exchange, BodyAction) {
    let mut ex = exchange(gw, path, model);
    let action = ex.on_request_body(body, NOW_MS, gw.quota(store), gw.prompts());
    (ex, action)
}

fn forwarded(action: BodyAction) -> Value {
    match action {
        BodyAction::Replace(bytes) => serde_json::from_slice(&bytes).unwrap(),
        BodyAction::Unchanged => panic!("the body must be rewritten (model patch)"),
        BodyAction::Reply(r) => panic!("refused: {} {}", r.status, String::from_utf8_lossy(&r.body)),
    }
}

fn refused(action: BodyAction) -> (u16, Value) {
    match action {
        BodyAction::Reply(LocalReply { status, body, .. }) => (status, serde_json::from_slice(&body).unwrap()),
        other => panic!("admitted: {other:?}"),
    }
}

fn remaining(ex: &Exchange) -> u64 {
    ex.budget_headers(NOW_MS)
        .into_iter()
        .find_map(|op| match op {
            HeaderOp::Set(name, value) if name == "x-ratelimit-remaining-tokens" => Some(value.parse().unwrap()),
            _ => None,
        })
        .expect("a reservation was made")
}

fn chat(extra: Value) -> Value {
    let mut body = json!({"model": "gpt", "messages": [{"role": "user", "content": "hello"}]});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

// ---------------------------------------------------------------- item 2: duplicate keys

#[test]
fn duplicate_keys_are_refused_on_every_path_in_the_clients_dialect() {
    let gw = roomy();
    let store = MemoryStore::new();
    // Passthrough (OpenAI -> OpenAI): a small cap first, a huge one last.
    let body = br#"{"model":"gpt","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"max_tokens":100000}"#;
    let (status, error) = refused(admit_raw(&gw, &store, "/v1/chat/completions", "gpt", body).1);
    assert_eq!(status, 400);
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["param"], "max_tokens");
    assert_eq!(error["error"]["code"], "duplicate_key");
    assert!(error["error"]["message"].as_str().unwrap().contains("'max_tokens' at the top level"));
    // Nested: the stream options the gateway patches, a message the estimate reads.
    let nested =
        br#"{"model":"gpt","stream":true,"stream_options":{"include_usage":true,"include_usage":false},"messages":[]}"#;
    let (_, error) = refused(admit_raw(&gw, &store, "/v1/chat/completions", "gpt", nested).1);
    assert_eq!(error["error"]["param"], "stream_options.include_usage");
    let message = br#"{"model":"gpt","messages":[{"role":"user","content":"a","content":"b"}]}"#;
    let (_, error) = refused(admit_raw(&gw, &store, "/v1/chat/completions", "gpt", message).1);
    assert_eq!(error["error"]["param"], "messages[0].content");
    // Translated (OpenAI client -> Anthropic provider): the IR decoders never see it.
    let translated = br#"{"model":"claude","model":"gpt","messages":[{"role":"user","content":"hi"}]}"#;
    let (status, _) = refused(admit_raw(&gw, &store, "/v1/chat/completions", "claude", translated).1);
    assert_eq!(status, 400);
    // Anthropic client: Anthropic's envelope.
    let anthropic =
        br#"{"model":"claude","max_tokens":5,"max_tokens":9000,"messages":[{"role":"user","content":"hi"}]}"#;
    let (status, error) = refused(admit_raw(&gw, &store, "/v1/messages", "claude", anthropic).1);
    assert_eq!(status, 400);
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(error["error"]["message"].as_str().unwrap().contains("'max_tokens'"));
    // Escaped spellings of one key are the same key.
    let escaped = br#"{"model":"gpt","messages":[],"mod\u0065l":"other"}"#;
    assert_eq!(refused(admit_raw(&gw, &store, "/v1/chat/completions", "gpt", escaped).1).0, 400);
    // Embeddings and Responses too.
    let embeddings = br#"{"model":"gpt","input":"a","input":"b"}"#;
    assert_eq!(refused(admit_raw(&gw, &store, "/v1/embeddings", "gpt", embeddings).1).0, 400);
}

#[test]
fn the_same_key_in_sibling_objects_is_fine() {
    let gw = roomy();
    let store = MemoryStore::new();
    let body = json!({"model": "gpt", "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]});
    forwarded(admit(&gw, &store, "/v1/chat/completions", &body).1);
}

// ---------------------------------------------------------------- item 3: several choices

#[test]
fn several_choices_are_reserved_and_clamped_per_choice() {
    let gw = gateway(2_000, 1, "upper-bound");
    let store = MemoryStore::new();
    let body = chat(json!({"n": 16, "max_tokens": 1000}));
    let (ex, action) = admit(&gw, &store, "/v1/chat/completions", &body);
    let sent = forwarded(action);
    let per_choice = sent["max_tokens"].as_u64().unwrap();
    assert_eq!(sent["n"], 16);
    assert!((1..1000).contains(&per_choice), "{sent}");
    // The reservation covers every choice at the per-choice cap, within the budget.
    let reserved = 2_000 - remaining(&ex);
    assert!(reserved >= 16 * per_choice, "reserved {reserved} for 16 x {per_choice}");
    assert!(reserved <= 2_000);
    // OpenAI honours `max_tokens` and refuses it together with `max_completion_tokens`:
    // nothing is inserted.
    assert!(sent.get("max_completion_tokens").is_none(), "{sent}");
}

#[test]
fn choices_without_a_cap_reserve_the_default_output_each() {
    // default_max_output_tokens is 64: 4 choices reserve 256 output tokens and get 64 each.
    let gw = gateway(100_000, 1, "upper-bound");
    let store = MemoryStore::new();
    let (ex, action) = admit(&gw, &store, "/v1/chat/completions", &chat(json!({"n": 4})));
    let sent = forwarded(action);
    assert_eq!(sent["max_completion_tokens"], 64, "{sent}");
    assert!(100_000 - remaining(&ex) >= 4 * 64);
    // Under a small budget the total is clamped and shared between the choices.
    let gw = gateway(400, 1, "upper-bound");
    let (ex, action) = admit(&gw, &MemoryStore::new(), "/v1/chat/completions", &chat(json!({"n": 8})));
    let per_choice = forwarded(action)["max_completion_tokens"].as_u64().unwrap();
    assert!(per_choice < 64 && 400 - remaining(&ex) >= 8 * per_choice);
}

#[test]
fn choices_the_budget_cannot_pay_for_are_refused() {
    // 16 choices of at least 16 tokens need 256 output tokens; the budget has less.
    let gw = gateway(300, 16, "upper-bound");
    let store = MemoryStore::new();
    let (status, error) = refused(admit(&gw, &store, "/v1/chat/completions", &chat(json!({"n": 16}))).1);
    assert_eq!(status, 429);
    assert!(error["error"]["message"].as_str().unwrap().contains("16 choices"), "{error}");
    // The refused reservation was given back: a single choice still fits.
    forwarded(admit(&gw, &store, "/v1/chat/completions", &chat(json!({"n": 1}))).1);
}

#[test]
fn choice_counts_of_the_wrong_type_or_range_are_refused() {
    let gw = roomy();
    let store = MemoryStore::new();
    for (n, message) in [
        (json!("16"), "expected an integer, but got a string"),
        (json!(0), "Expected a value >= 1, but got 0"),
        (json!(-3), "Expected a value >= 1, but got -3"),
        (json!(1.5), "expected an integer, but got a decimal"),
        (json!(129), "Expected a value <= 128, but got 129"),
        (json!(1e30), "expected an integer, but got a decimal"),
        (json!(u64::MAX), "Expected a value <= 128"),
    ] {
        let (status, error) = refused(admit(&gw, &store, "/v1/chat/completions", &chat(json!({"n": n}))).1);
        assert_eq!(status, 400, "{n}");
        assert_eq!(error["error"]["param"], "n");
        assert!(error["error"]["message"].as_str().unwrap().contains(message), "{n}: {error}");
    }
    let (_, error) = refused(admit(&gw, &store, "/v1/chat/completions", &chat(json!({"best_of": "2"}))).1);
    assert_eq!(error["error"]["param"], "best_of");
    // `best_of` multiplies like `n`.
    let gw = gateway(2_000, 1, "upper-bound");
    let sent =
        forwarded(admit(&gw, &store, "/v1/chat/completions", &chat(json!({"best_of": 10, "max_tokens": 1000}))).1);
    assert!(sent["max_tokens"].as_u64().unwrap() <= 200, "{sent}");
}

// ---------------------------------------------------------------- item 16: the whole body

#[test]
fn passthrough_estimates_every_member_not_only_messages() {
    // Anthropic passthrough: a 200 KB system prompt under a 2,000-token limit.
    let gw = gateway(2_000, 1, "fast");
    let store = MemoryStore::new();
    let body = json!({"model": "claude", "max_tokens": 10, "system": "lorem ipsum ".repeat(17_000),
                      "messages": [{"role": "user", "content": "hi"}]});
    let (status, _) = refused(admit(&gw, &store, "/v1/messages", &body).1);
    assert_eq!(status, 429);
    // Tools and response_format count on the OpenAI passthrough too.
    let tools = json!([{"type": "function", "function": {"name": "f", "description": "word ".repeat(20_000)}}]);
    let (status, _) = refused(admit(&gw, &store, "/v1/chat/completions", &chat(json!({"tools": tools}))).1);
    assert_eq!(status, 429);
    let format =
        json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"description": "word ".repeat(20_000)}}});
    let body = chat(json!({"response_format": format}));
    assert_eq!(refused(admit(&gw, &store, "/v1/chat/completions", &body).1).0, 429);
}

// ---------------------------------------------------------------- items 17, 18: output caps

#[test]
fn responses_max_output_tokens_is_read_and_clamped() {
    let gw = gateway(500, 1, "upper-bound");
    // A fresh store per request: each reservation takes the whole small budget.
    let body = json!({"model": "gpt", "input": "hello", "max_output_tokens": 100_000});
    let (ex, action) = admit(&gw, &MemoryStore::new(), "/v1/responses", &body);
    let sent = forwarded(action);
    let cap = sent["max_output_tokens"].as_u64().unwrap();
    assert!(cap < 500, "{sent}");
    assert!(500 - remaining(&ex) >= cap);
    // None sent: the default is reserved and inserted.
    let (_, action) = admit(&gw, &MemoryStore::new(), "/v1/responses", &json!({"model": "gpt", "input": "hello"}));
    assert!(forwarded(action)["max_output_tokens"].as_u64().unwrap() <= 64);
    let zero = json!({"model": "gpt", "input": "hello", "max_output_tokens": 0});
    assert_eq!(refused(admit(&gw, &MemoryStore::new(), "/v1/responses", &zero).1).0, 400);
}

#[test]
fn output_caps_must_be_positive_integers() {
    let gw = roomy();
    let store = MemoryStore::new();
    for field in ["max_tokens", "max_completion_tokens"] {
        for bad in [json!(0), json!(-1), json!("100"), json!(2.5), json!(true)] {
            let (status, error) = refused(admit(&gw, &store, "/v1/chat/completions", &chat(json!({field: bad}))).1);
            assert_eq!((status, error["error"]["param"].as_str()), (400, Some(field)), "{field}: {bad}");
        }
    }
    let anthropic = json!({"model": "claude", "max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]});
    let (status, error) = refused(admit(&gw, &store, "/v1/messages", &anthropic).1);
    assert_eq!((status, error["type"].as_str()), (400, Some("error")));
    // `null` is the same as absent (OpenAI accepts it).
    forwarded(admit(&gw, &store, "/v1/chat/completions", &chat(json!({"max_tokens": null}))).1);
}

#[test]
fn every_cap_sent_is_clamped() {
    let gw = gateway(500, 1, "upper-bound");
    // A fresh store per request: each reservation takes the whole small budget.
    let body = chat(json!({"max_tokens": 100_000, "max_completion_tokens": 90_000}));
    let (ex, action) = admit(&gw, &MemoryStore::new(), "/v1/chat/completions", &body);
    let sent = forwarded(action);
    let reserved = 500 - remaining(&ex);
    let (a, b) = (sent["max_tokens"].as_u64().unwrap(), sent["max_completion_tokens"].as_u64().unwrap());
    assert_eq!(a, b);
    assert!(a < 500 && reserved >= a, "{sent}");
    // A cap already below the clamp is kept.
    let body = chat(json!({"max_tokens": 100_000, "max_completion_tokens": 3}));
    let sent = forwarded(admit(&gw, &MemoryStore::new(), "/v1/chat/completions", &body).1);
    assert_eq!(sent["max_completion_tokens"], 3);
    assert!(sent["max_tokens"].as_u64().unwrap() < 500);
}

#[test]
fn the_clamp_goes_in_the_field_the_provider_reads() {
    let gw = gateway(500, 1, "upper-bound");
    // A fresh store per request: each reservation takes the whole small budget.
    // Mistral reads only `max_tokens`.
    let body = json!({"model": "mistral", "messages": [{"role": "user", "content": "hi"}]});
    let sent = forwarded(admit(&gw, &MemoryStore::new(), "/v1/chat/completions", &body).1);
    assert!(sent["max_tokens"].as_u64().is_some(), "{sent}");
    assert!(sent.get("max_completion_tokens").is_none());
    // The client sent only the new name: the provider's name gets the cap as well.
    let body =
        json!({"model": "mistral", "max_completion_tokens": 100_000, "messages": [{"role": "user", "content": "hi"}]});
    let sent = forwarded(admit(&gw, &MemoryStore::new(), "/v1/chat/completions", &body).1);
    assert!(sent["max_tokens"].as_u64().unwrap() < 500, "{sent}");
    // OpenAI reads `max_completion_tokens`.
    let sent = forwarded(admit(&gw, &MemoryStore::new(), "/v1/chat/completions", &chat(json!({}))).1);
    assert!(sent["max_completion_tokens"].as_u64().is_some(), "{sent}");
    assert!(sent.get("max_tokens").is_none());
    // Translated (Anthropic client -> Mistral): the encoder writes `max_tokens`.
    let body = json!({"model": "mistral", "max_tokens": 100_000, "messages": [{"role": "user", "content": "hi"}]});
    let sent = forwarded(admit(&gw, &MemoryStore::new(), "/v1/messages", &body).1);
    assert!(sent["max_tokens"].as_u64().unwrap() < 500, "{sent}");
    assert!(sent.get("max_completion_tokens").is_none());
}

// ---------------------------------------------------------------- item 19: images

fn images(count: usize, url: &str) -> Value {
    let parts: Vec<Value> =
        (0..count).map(|_| json!({"type": "image_url", "image_url": {"url": url, "detail": "high"}})).collect();
    chat(json!({"messages": [{"role": "user", "content": parts}], "max_tokens": 10}))
}

#[test]
fn each_image_costs_at_least_the_providers_worst_case_in_every_estimator() {
    // `exact` and `auto` need the BPE tables (feature `tiktoken`).
    let exact: &[&str] = if cfg!(feature = "tiktoken") { &["exact", "auto"] } else { &[] };
    for &estimator in ["fast", "upper-bound"].iter().chain(exact) {
        let gw = gateway(10_000_000, 1, estimator);
        let store = MemoryStore::new();
        let (ex, action) = admit(&gw, &store, "/v1/chat/completions", &images(200, "https://example.com/a.png"));
        forwarded(action);
        let reserved = 10_000_000 - remaining(&ex);
        // OpenAI's worst case per image (see `quota::estimate::media_tokens`).
        assert!(reserved >= 200 * 3_779, "{estimator}: reserved {reserved}");
    }
    // Under a budget that one image's worth of URL bytes would fit, 200 images do not.
    let gw = gateway(100_000, 1, "upper-bound");
    let store = MemoryStore::new();
    assert_eq!(refused(admit(&gw, &store, "/v1/chat/completions", &images(200, "https://x/a.png")).1).0, 429);
    // Anthropic passthrough: image blocks at Claude's figure.
    let gw = gateway(10_000_000, 1, "fast");
    let blocks: Vec<Value> =
        (0..10).map(|_| json!({"type": "image", "source": {"type": "url", "url": "https://x/a.png"}})).collect();
    let body = json!({"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": blocks}]});
    let (ex, action) = admit(&gw, &store, "/v1/messages", &body);
    forwarded(action);
    assert!(10_000_000 - remaining(&ex) >= 10 * 1_600);
    // Responses `input_image`.
    let input = json!([{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/a.png"}]}]);
    let (ex, action) = admit(&gw, &store, "/v1/responses", &json!({"model": "gpt", "input": input}));
    forwarded(action);
    assert!(10_000_000 - remaining(&ex) >= 3_779);
}

// ---------------------------------------------------------------- item 17: the prompt layer

/// Guards and masks, a decorator for one consumer, a forced template for one model.
fn prompt_gateway(extra: Value) -> Gateway {
    let mut prompts = json!({
        "templates": {"fixed": {"versions": {"1": {"messages": [{"role": "system", "content": "Be brief."}]}}}},
        "guards": {
            "deny": [{"name": "secrets", "regex": "password\\s*[:=]"}],
            "mask": [{"name": "email", "builtin": "email"}]
        }
    });
    prompts.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let config = json!({
        "providers": {"oa": {"kind": "openai", "cluster": "oa", "auth": {"type": "bearer", "env": "KEY"}}},
        "models": {"gpt": {"provider": "oa", "model": "gpt-4o"}, "emb": {"provider": "oa", "model": "text-embedding-3-small"}},
        "prompts": prompts,
    });
    Gateway::from_json(config.to_string().as_bytes(), &|k| (k == "KEY").then(|| "sk-upstream".to_string())).unwrap()
}

#[test]
fn responses_and_embeddings_are_guarded_and_masked() {
    let gw = prompt_gateway(json!({}));
    let store = MemoryStore::new();
    let blocked = [
        ("/v1/responses", json!({"model": "gpt", "input": "my password: hunter2"})),
        ("/v1/responses", json!({"model": "gpt", "input": "hi", "instructions": "password = x"})),
        (
            "/v1/responses",
            json!({"model": "gpt", "input": [{"role": "user", "content": [{"type": "input_text", "text": "password: x"}]}]}),
        ),
        ("/v1/embeddings", json!({"model": "emb", "input": "password: hunter2"})),
        ("/v1/embeddings", json!({"model": "emb", "input": ["fine", "password: hunter2"]})),
    ];
    for (path, body) in blocked {
        let (status, error) = refused(admit(&gw, &store, path, &body).1);
        assert_eq!((status, error["error"]["code"].as_str()), (400, Some("prompt_blocked")), "{path} {body}");
    }
    let body = json!({"model": "gpt", "instructions": "reply to ada@example.com",
                      "input": [{"role": "user", "content": [{"type": "input_text", "text": "mail bob@example.com"},
                                                             {"type": "input_image", "image_url": "https://x/a.png"}]}]});
    let sent = forwarded(admit(&gw, &store, "/v1/responses", &body).1);
    assert_eq!(sent["instructions"], "reply to [EMAIL]");
    assert_eq!(sent["input"][0]["content"][0]["text"], "mail [EMAIL]");
    assert_eq!(sent["input"][0]["content"][1]["image_url"], "https://x/a.png", "structure is left alone");
    let sent =
        forwarded(admit(&gw, &store, "/v1/embeddings", &json!({"model": "emb", "input": ["a@example.com", "b"]})).1);
    assert_eq!(sent["input"], json!(["[EMAIL]", "b"]));
    assert_eq!(sent["model"], "text-embedding-3-small");
    // Token ids cannot be screened.
    let tokens = json!({"model": "emb", "input": [[1, 2, 3]]});
    let (status, error) = refused(admit(&gw, &store, "/v1/embeddings", &tokens).1);
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("prompt_layer_not_applicable")));
}

#[test]
fn forced_templates_and_decorators_refuse_what_they_cannot_carry() {
    let decorated = prompt_gateway(json!({
        "decorators": [{"name": "house-style", "match": {"route_prefix": "/v1/responses"},
                        "prepend": [{"role": "system", "content": "House style."}]}]
    }));
    let store = MemoryStore::new();
    let (status, error) =
        refused(admit(&decorated, &store, "/v1/responses", &json!({"model": "gpt", "input": "hi"})).1);
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("prompt_layer_not_applicable")));
    assert!(error["error"]["message"].as_str().unwrap().contains("\"house-style\""), "{error}");
    // The decorator does not match embeddings: they pass.
    forwarded(admit(&decorated, &store, "/v1/embeddings", &json!({"model": "emb", "input": "hi"})).1);
    let forced = prompt_gateway(json!({"forced_templates": [{"match": {"model": "emb"}, "template": "fixed"}]}));
    let (status, error) = refused(admit(&forced, &store, "/v1/embeddings", &json!({"model": "emb", "input": "hi"})).1);
    assert_eq!(status, 400);
    assert!(error["error"]["message"].as_str().unwrap().contains("forced prompt template \"fixed\""), "{error}");
    forwarded(admit(&forced, &store, "/v1/responses", &json!({"model": "gpt", "input": "hi"})).1);
}
