//! Plugin configuration: parsing, validation, and the exact error messages operators see.

use llm_gateway::config::{Config, ProviderKind, UpstreamAuth};

fn env(name: &str) -> Option<String> {
    match name {
        "OPENAI_KEY" => Some("sk-real".to_string()),
        "EMPTY" => Some("  ".to_string()),
        _ => None,
    }
}

fn parse(json: &str) -> Result<Config, String> {
    Config::parse(json.as_bytes(), &env).map_err(|e| e.to_string())
}

fn error(json: &str) -> String {
    match parse(json) {
        Ok(_) => panic!("config unexpectedly accepted: {json}"),
        Err(e) => e,
    }
}

const PROVIDER: &str =
    r#""openai": {"kind": "openai", "cluster": "openai", "auth": {"type": "bearer", "env": "OPENAI_KEY"}}"#;

fn with_models(models: &str) -> String {
    format!(r#"{{"providers": {{{PROVIDER}}}, "models": {{{models}}}}}"#)
}

#[test]
fn a_valid_config_is_typed() {
    let config = parse(&with_models(
        r#""gpt": {"provider": "openai", "model": "gpt-4o", "aliases": ["gpt-latest"]},
           "canary": {"targets": [{"provider": "openai", "model": "a", "weight": 3}, {"provider": "openai", "model": "b", "weight": 1}]}"#,
    ))
    .unwrap();
    let provider = &config.providers[0];
    assert_eq!(provider.kind, ProviderKind::OpenAi);
    assert_eq!(provider.base_path, "/v1");
    match &provider.auth {
        UpstreamAuth::Header { name, value } => {
            assert_eq!(name, "authorization");
            assert_eq!(value.expose(), "Bearer sk-real");
        }
        other => panic!("unexpected auth {other:?}"),
    }
    assert_eq!(config.lookup("gpt-latest").unwrap().name, "gpt");
    assert_eq!(config.lookup("canary").unwrap().total_weight, 4);
    assert!(config.lookup("nope").is_none());
    assert_eq!(config.cluster_header, "x-llm-gateway-cluster");
    assert_eq!(config.model_header, "x-llm-model");
}

#[test]
fn secrets_never_print() {
    let config = parse(&with_models(r#""gpt": {"provider": "openai", "model": "gpt-4o"}"#)).unwrap();
    assert!(!format!("{config:?}").contains("sk-real"));
}

#[test]
fn weighted_pick_follows_weights() {
    let config = parse(&with_models(
        r#""canary": {"targets": [{"provider": "openai", "model": "a", "weight": 3}, {"provider": "openai", "model": "b", "weight": 1}]}"#,
    ))
    .unwrap();
    let route = config.lookup("canary").unwrap();
    let picks: Vec<&str> = (0..8).map(|roll| route.pick(roll).unwrap().model.as_str()).collect();
    assert_eq!(picks, ["a", "a", "a", "b", "a", "a", "a", "b"]);
}

#[test]
fn native_api_key_headers_per_kind() {
    let cases = [
        ("openai", "authorization", "Bearer sk-real"),
        ("groq", "authorization", "Bearer sk-real"),
        ("bedrock", "authorization", "Bearer sk-real"),
        ("anthropic", "x-api-key", "sk-real"),
        ("gemini", "x-goog-api-key", "sk-real"),
    ];
    for (kind, header, value) in cases {
        let region = if kind == "bedrock" { r#""region": "us-east-1","# } else { "" };
        let json = format!(
            r#"{{"providers": {{"p": {{"kind": "{kind}", "cluster": "c", {region} "auth": {{"type": "api-key", "env": "OPENAI_KEY"}}}}}},
                "models": {{"m": {{"provider": "p", "model": "x"}}}}}}"#
        );
        let config = parse(&json).unwrap();
        match &config.providers[0].auth {
            UpstreamAuth::Header { name, value: v } => {
                assert_eq!((name.as_str(), v.expose()), (header, value), "{kind}")
            }
            other => panic!("unexpected auth {other:?}"),
        }
    }
    let json = r#"{"providers": {"p": {"kind": "anthropic", "cluster": "c", "auth": {"type": "api-key", "env": "OPENAI_KEY"}}},
                   "models": {"m": {"provider": "p", "model": "x"}}}"#;
    let config = parse(json).unwrap();
    assert_eq!(config.providers[0].static_headers, [("anthropic-version".to_string(), "2023-06-01".to_string())]);
    assert_eq!(config.providers[0].base_path, "/v1");
}

#[test]
fn errors_name_their_path() {
    let cases: &[(&str, &str)] = &[
        (r#""gpt": {"provider": "opnai", "model": "gpt-4o"}"#, r#"models["gpt"].provider: no provider named "opnai""#),
        (
            r#""gpt": {"provider": "openai", "model": "gpt-4o", "temperature": 1}"#,
            r#"models["gpt"].temperature: unknown field `temperature`, expected one of `provider`, `model`, `targets`, `aliases`, `fallback`"#,
        ),
        (
            r#""gpt": {"targets": [{"provider": "openai", "model": "a", "weight": 0}]}"#,
            r#"models["gpt"].targets[0].weight: must be at least 1"#,
        ),
        (
            r#""gpt": {"targets": [{"provider": "x", "model": "a", "weight": 1}]}"#,
            r#"models["gpt"].targets[0].provider: no provider named "x""#,
        ),
        (r#""gpt": {"targets": []}"#, r#"models["gpt"].targets: at least one target is required"#),
        (r#""gpt": {"provider": "openai"}"#, r#"models["gpt"]: missing field `model`"#),
        (
            r#""gpt": {"provider": "openai", "model": "a", "targets": []}"#,
            r#"models["gpt"]: use either "provider" and "model" or "targets", not both"#,
        ),
        (
            r#""gpt": {"provider": "openai", "model": "a"}, "other": {"provider": "openai", "model": "b", "aliases": ["gpt"]}"#,
            r#"models["other"].aliases[0]: "gpt" is already a name of model "gpt""#,
        ),
        (
            r#""a;b": {"provider": "openai", "model": "a"}"#,
            r#"models["a;b"]: "a;b" is not a valid name (1-128 printable ASCII characters, no ';', '=' or '"')"#,
        ),
        (r#""#, "models: at least one model is required"),
    ];
    for (models, expected) in cases {
        assert_eq!(&error(&with_models(models)), expected, "for models {models}");
    }
}

#[test]
fn provider_errors_name_their_path() {
    let model = r#""models": {"m": {"provider": "p", "model": "x"}}"#;
    let cases: &[(&str, &str)] = &[
        (
            r#""p": {"kind": "opneai", "cluster": "c", "auth": {"type": "none"}}"#,
            r#"providers["p"].kind: unknown provider kind "opneai"; expected one of: openai, openai-compatible, azure-openai, anthropic, gemini, bedrock, mistral, groq, deepseek, together, fireworks, openrouter, xai, ollama, vllm"#,
        ),
        (
            r#""p": {"kind": "openai", "cluster": "c", "auth": {"type": "bearer", "env": "MISSING"}}"#,
            r#"providers["p"].auth.env: environment variable "MISSING" is not set in the VM (pass it with vm_config.environment_variables)"#,
        ),
        (
            r#""p": {"kind": "openai", "cluster": "c", "auth": {"type": "bearer", "env": "EMPTY"}}"#,
            r#"providers["p"].auth.env: environment variable "EMPTY" is empty"#,
        ),
        (
            r#""p": {"kind": "openai", "cluster": "c", "auth": {"type": "bearer", "key": "sk-inline"}}"#,
            r#"providers["p"].auth: unknown field `key`, expected `env` or `pool`"#,
        ),
        (
            r#""p": {"kind": "openai", "cluster": "", "auth": {"type": "none"}}"#,
            r#"providers["p"].cluster: must name an Envoy cluster"#,
        ),
        (
            r#""p": {"kind": "openai", "cluster": "c", "base_path": "v1", "auth": {"type": "none"}}"#,
            r#"providers["p"].base_path: "v1" must be a path starting with '/', without query or spaces"#,
        ),
        (
            r#""p": {"kind": "openai", "cluster": "c", "auth": {"type": "header", "name": "bad header", "env": "OPENAI_KEY"}}"#,
            r#"providers["p"].auth.name: "bad header" is not a valid HTTP header name"#,
        ),
        (r#""p": {"kind": "openai", "auth": {"type": "none"}}"#, r#"providers["p"]: missing field `cluster`"#),
        (
            r#""p": {"kind": "azure-openai", "cluster": "c", "auth": {"type": "api-key", "env": "OPENAI_KEY"}}"#,
            r#"providers["p"].api_version: is required for provider kind "azure-openai""#,
        ),
        (
            r#""p": {"kind": "openai", "cluster": "c", "region": "us-east-1", "auth": {"type": "none"}}"#,
            r#"providers["p"].region: does not apply to provider kind "openai""#,
        ),
        (
            r#""p": {"kind": "anthropic", "cluster": "c", "auth": {"type": "aws-sigv4", "access_key_env": "OPENAI_KEY", "secret_key_env": "OPENAI_KEY"}}"#,
            r#"providers["p"].auth.type: "aws-sigv4" only applies to provider kind "bedrock""#,
        ),
    ];
    for (provider, expected) in cases {
        let json = format!(r#"{{"providers": {{{provider}}}, {model}}}"#);
        assert_eq!(&error(&json), expected, "for provider {provider}");
    }
}

#[test]
fn top_level_errors() {
    assert_eq!(error(""), "plugin configuration is empty; expected a JSON object");
    assert_eq!(error("{"), "EOF while parsing an object");
    assert_eq!(error(r#"{"providers": {}, "models": {}}"#), "providers: at least one provider is required");
    assert_eq!(
        error(&format!(r#"{{"providers": {{{PROVIDER}}}, "models": {{}}, "extra": 1}}"#)),
        "extra: unknown field `extra`, expected one of `providers`, `models`, `cluster_header`, `model_header`, `limits`, `consumers`, `auth`, `plans`, `quota`, `prices`, `prompts`"
    );
    assert_eq!(
        error(&format!(
            r#"{{"providers": {{{PROVIDER}}}, "models": {{"m": {{"provider": "openai", "model": "x"}}}}, "limits": {{"max_sse_event_bytes": 0}}}}"#
        )),
        "limits.max_sse_event_bytes: must be greater than 0"
    );
    assert_eq!(
        error(&format!(
            r#"{{"providers": {{{PROVIDER}}}, "models": {{"m": {{"provider": "openai", "model": "x"}}}}}} trailing"#
        )),
        "trailing characters"
    );
}

/// Item 20: a `models` list in a plan, a limit or a consumer names public models; an alias
/// stands for its model and a name no model has is refused at its path (a typo used to switch
/// the limit off silently).
fn with_access(access: &str) -> String {
    format!(
        r#"{{"providers": {{{PROVIDER}}},
            "models": {{"gpt": {{"provider": "openai", "model": "gpt-4o", "aliases": ["gpt-latest"]}},
                        "mini": {{"provider": "openai", "model": "gpt-4o-mini"}}}},
            {access}}}"#
    )
}

#[test]
fn limit_and_allow_list_models_resolve_aliases() {
    let config = parse(&with_access(
        r#""consumers": {"c": {"api_keys": [], "plan": "p", "models": ["gpt-latest", "gpt"],
                              "limits": [{"name": "own", "window": "day", "requests": 5, "models": ["gpt-latest"]}]}},
           "plans": {"p": {"models": ["gpt-latest", "mini"],
                           "limits": [{"name": "big", "window": "minute", "tokens": 10, "models": ["gpt-latest"]}]}}"#,
    ))
    .unwrap();
    let access = config.access.as_ref().unwrap();
    // Calls are checked against the route name, whatever name the client used.
    let limits: Vec<&str> = access.policy.limits_for("c", Some("p"), "gpt").iter().map(|l| l.name.as_str()).collect();
    assert_eq!(limits, ["big", "own"]);
    assert!(access.policy.limits_for("c", Some("p"), "mini").is_empty());
    assert_eq!(access.auth.consumers().get("c").unwrap().models.as_deref(), Some(&["gpt".to_string()][..]));
    assert_eq!(
        access.policy.plans().get("p").unwrap().models.as_deref(),
        Some(&["gpt".to_string(), "mini".to_string()][..])
    );
}

#[test]
fn unknown_model_names_in_limits_and_allow_lists_are_refused_at_their_path() {
    let known = "(models and aliases: gpt, gpt-latest, mini)";
    let cases = [
        (
            r#""consumers": {"c": {"plan": "p"}},
               "plans": {"p": {"limits": [{"window": "minute", "tokens": 10}, {"window": "day", "tokens": 10, "models": ["gpt", "gpt4o"]}]}}"#,
            format!(r#"plans["p"].limits[1].models[1]: no model named "gpt4o" {known}"#),
        ),
        (
            r#""consumers": {"c": {"plan": "p"}}, "plans": {"p": {"models": ["mini", "GPT"]}}"#,
            format!(r#"plans["p"].models[1]: no model named "GPT" {known}"#),
        ),
        (
            r#""consumers": {"c": {"models": ["gpt-4o"]}}"#,
            format!(r#"consumers["c"].models[0]: no model named "gpt-4o" {known}"#),
        ),
        (
            r#""consumers": {"c": {"limits": [{"window": "day", "requests": 1, "models": ["min"]}]}}"#,
            format!(r#"consumers["c"].limits[0].models[0]: no model named "min" {known}"#),
        ),
    ];
    for (access, expected) in cases {
        assert_eq!(error(&with_access(access)), expected, "for {access}");
    }
}

/// The prompt section is typed in the raw config: its shape errors surface while the plugin
/// config is read, and name the same paths (quoted template, version, variable keys) as the
/// section parsed alone (`Prompts::parse`).
#[test]
fn prompt_section_errors_name_the_same_paths_inside_the_plugin_config() {
    let message = r#"{"role": "user", "content": "Hi {{name}}"}"#;
    let cases = [
        (
            format!(r#"{{"templates": {{"t": {{"versions": {{"1": {{"messages": [{message}]}}}}}}}}}}"#),
            r#"prompts.templates["t"].versions["1"].messages[0].content: uses undeclared variable "name""#,
        ),
        (
            r#"{"templates": {"t": {"versions": {"1": {"messages": [{"role": "robot", "content": "x"}]}}}}}"#
                .to_string(),
            r#"prompts.templates["t"].versions["1"].messages[0].role: unknown variant `robot`"#,
        ),
        (
            r#"{"templates": {"t": {"versions": {}, "colour": 1}}}"#.to_string(),
            r#"prompts.templates["t"].colour: unknown field `colour`"#,
        ),
        (r#"{"guards": 7}"#.to_string(), "prompts.guards: invalid type: integer `7`"),
    ];
    for (prompts, expected) in cases {
        let full = error(&format!(
            r#"{{"providers": {{{PROVIDER}}}, "models": {{"gpt": {{"provider": "openai", "model": "m"}}}}, "prompts": {prompts}}}"#
        ));
        let alone = llm_gateway::prompt::Prompts::parse(prompts.as_bytes(), "prompts", &|m: &str| m == "gpt")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(full.starts_with(expected), "{full}");
        assert_eq!(full, alone, "the plugin config and the section alone disagree");
    }
    let models = r#""gpt": {"provider": "openai", "model": "m"}"#;
    let empty = parse(&format!(r#"{{"providers": {{{PROVIDER}}}, "models": {{{models}}}, "prompts": {{}}}}"#)).unwrap();
    assert!(empty.prompts.is_none(), "an empty section is no prompts");
}
