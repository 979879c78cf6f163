//! The plugin configuration (`Gateway::from_json`) and the prompt layer (template parsing
//! and rendering, selections, guards, masks, decorators).

use super::{must_parse, split_parts};
use llm_gateway::engine::{BodyAction, Gateway, RequestAction, RequestHead};
use llm_gateway::llm::dialect;
use llm_gateway::llm::ir::{ClientDialect, ProviderDialect};
use llm_gateway::prompt::{take_selection, Context, Prompts};
use llm_gateway::quota::MemoryStore;
use serde_json::json;
use std::sync::OnceLock;

/// Every environment variable a configuration names is set, to a secret long enough for
/// HS256, so validation goes past the environment checks.
fn env(_: &str) -> Option<String> {
    Some("fuzz-secret-value-of-at-least-32-bytes".to_string())
}

/// The data is a plugin configuration. When it loads, the gateway it builds answers a
/// model list and a small request for each of its first models, in both client dialects.
pub fn config(data: &[u8]) {
    let Ok(gateway) = Gateway::from_json(data, &env) else { return };
    let list = RequestHead { method: "GET", path: "/v1/models", ..RequestHead::default() };
    match gateway.on_request_headers(&list, 0, 1_000).1 {
        RequestAction::Reply(reply) => {
            must_parse("the model list", &reply.body);
        }
        RequestAction::Forward(_) => panic!("GET /v1/models was forwarded"),
    }
    let names: Vec<String> = gateway.config().routes.iter().take(4).map(|r| r.name.clone()).collect();
    let store = MemoryStore::new();
    for name in &names {
        for path in ["/v1/chat/completions", "/v1/messages"] {
            small_request(&gateway, &store, path, name);
        }
    }
}

fn small_request(gateway: &Gateway, store: &MemoryStore, path: &str, model: &str) {
    let head = RequestHead { method: "POST", path, body_model: Some(model), ..RequestHead::default() };
    let (mut exchange, action) = gateway.on_request_headers(&head, 7, 1_000);
    if let RequestAction::Reply(reply) = action {
        must_parse("a local reply", &reply.body);
        return;
    }
    let body = json!({"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let quota = gateway.quota(store);
    match exchange.on_request_body(body.to_string().as_bytes(), 1_000, quota, gateway.prompts()) {
        BodyAction::Reply(reply) => {
            must_parse("a local reply", &reply.body);
        }
        BodyAction::Replace(bytes) => {
            must_parse("the upstream body", &bytes);
        }
        BodyAction::Unchanged => panic!("a routed request body passed without admission"),
    }
    let _ = exchange.finish(2_000, gateway.quota(store));
}

/// A prompt configuration around a template text (the system message of version 1 and the
/// only message of version 2), with every variable type; guards, masks and a decorator when
/// `full` (compiling their regexes is slow: that one is built once).
fn prompt_config(template_text: &str, full: bool) -> Vec<u8> {
    let mut config = json!({
        "templates": {"t": {
            "model": "m",
            "variables": {
                "text": {"type": "string"},
                "n": {"type": "number", "default": 1},
                "flag": {"type": "boolean", "required": false},
                "style": {"type": "enum", "values": ["short", "long"], "default": "short"}
            },
            "weights": {"1": 3, "2": 1},
            "versions": {
                "1": {"messages": [{"role": "system", "content": template_text},
                                   {"role": "user", "content": "{{text}} ({{style}}, {{n}}, {{flag}})"}]},
                "2": {"messages": [{"role": "user", "content": template_text}]}
            }
        }},
        "prompt_apis": {"/v1/prompts/t": {"template": "t"}}
    });
    if full {
        config["decorators"] = json!([{"name": "d", "match": {"route_prefix": "/v1/"},
                                        "prepend": [{"role": "system", "content": "house style"}]}]);
        config["guards"] = json!({
            "deny": [{"name": "secrets", "regex": "(?:password|secret)\\s*[:=]", "case_insensitive": true},
                     {"name": "jailbreak", "keywords": ["ignore previous instructions"], "case_insensitive": true}],
            "max_prompt_bytes": 100000,
            "max_messages": 50,
            "mask": [{"name": "email", "builtin": "email"}, {"name": "card", "builtin": "credit_card"},
                     {"name": "keys", "builtin": "api_key"}, {"name": "emp", "pattern": "EMP-[0-9]{6}"}]
        });
    }
    config.to_string().into_bytes()
}

fn is_model(name: &str) -> bool {
    name == "m"
}

/// The full prompt layer around a fixed template, built once.
fn full_prompts() -> &'static Prompts {
    static PROMPTS: OnceLock<Prompts> = OnceLock::new();
    PROMPTS.get_or_init(|| {
        let text = "You write {{style}} summaries. {{text}}";
        match Prompts::parse(&prompt_config(text, true), "prompts", &is_model) {
            Ok(p) => p,
            Err(e) => panic!("the template harness config does not load: {e}"),
        }
    })
}

/// The data is a template text, `SEP`, and an OpenAI request body (with or without an
/// `llm_gateway_template` selection). The text is parsed as a template and rendered with
/// the body's variables; the body also goes through the whole prompt layer (guards, masks,
/// decorators, the template's prompt API) of a fixed configuration.
pub fn template(data: &[u8]) {
    let (text, body) = split_parts(data);
    let text = String::from_utf8_lossy(text);
    let selected = take_selection(body);
    if let Ok(fuzzed) = Prompts::parse(&prompt_config(&text, false), "prompts", &is_model) {
        if let Ok(Some((selection, _))) = &selected {
            for roll in [0, 3] {
                let _ = fuzzed.render(selection, roll);
            }
        }
    }
    let prompts = full_prompts();
    for roll in [0, 3] {
        if let Some(api) = prompts.api("/v1/prompts/t") {
            let _ = prompts.build_request(api, body, Some("alice"), roll);
        }
        let Ok(selected) = &selected else { continue };
        let (selection, rest) = match selected {
            Some((selection, rest)) => (Some(selection), rest.clone()),
            None => (None, body.to_vec()),
        };
        let Ok(mut request) = dialect::decode_request(ClientDialect::OpenAi, &rest) else { continue };
        let ctx = Context { path: "/v1/chat/completions", consumer: None, model: "m" };
        if prompts.prepare(&mut request, selection, &ctx, roll).is_ok() {
            for provider in [ProviderDialect::OpenAi, ProviderDialect::Anthropic] {
                if let Ok(bytes) = dialect::encode_request(provider, &request) {
                    must_parse("a prepared request", &bytes);
                }
            }
        }
    }
}
