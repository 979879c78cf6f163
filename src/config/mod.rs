//! Plugin configuration: JSON (see `raw`) parsed and validated into typed structures.
//! Every error names the path of the offending value, e.g.
//! `models["gpt"].provider: no provider named "opnai"`.

mod provider;
mod raw;

use crate::config_base::{check_name, err, render_path, strip_position};
pub use crate::config_base::{ConfigError, Secret};
pub use provider::{ProviderKind, KINDS};
use raw::{RawAuth, RawConfig, RawModel, RawProvider};
use std::collections::HashMap;

pub const DEFAULT_CLUSTER_HEADER: &str = "x-llm-gateway-cluster";
pub const DEFAULT_MODEL_HEADER: &str = "x-llm-model";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAuth {
    None,
    /// Header name (lowercase) and full header value.
    Header {
        name: String,
        value: Secret,
    },
    /// AWS SigV4 credentials.
    SigV4 {
        access_key: Secret,
        secret_key: Secret,
        session_token: Option<Secret>,
    },
}

#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    pub cluster: String,
    pub authority: Option<String>,
    pub base_path: String,
    pub auth: UpstreamAuth,
    /// Azure `api-version`.
    pub api_version: Option<String>,
    /// AWS region (Bedrock).
    pub region: Option<String>,
    /// Static headers the provider requires (e.g. `anthropic-version`).
    pub static_headers: Vec<(String, String)>,
    /// A key pool: every credential header value (the `env` key first, then `pool`'s), when
    /// there is more than one. Requests are spread across them; a key that got 429 cools
    /// down, one that got 401/403 is taken out (`engine::keys`).
    pub key_pool: Vec<Secret>,
}

#[derive(Debug, Clone)]
pub struct Target {
    /// Index into `Config::providers`.
    pub provider: usize,
    pub model: String,
    pub weight: u32,
}

/// A public model name and where its traffic goes.
#[derive(Debug, Clone)]
pub struct ModelRoute {
    pub name: String,
    pub targets: Vec<Target>,
    pub total_weight: u64,
    /// The targets are an ordered fallback chain, tried attempt by attempt.
    pub fallback: Option<Fallback>,
}

/// A fallback chain: the downstream instance admits the request once and routes it to
/// `cluster` (an Envoy aggregate cluster whose members are the targets' clusters, in
/// order); Envoy's retry policy moves from member to member, and the module's per-attempt
/// instance (an upstream HTTP filter) translates the request for the target each attempt
/// reached. A target is known by its endpoint's metadata `llm.provider`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    pub cluster: String,
    /// Provider statuses that mark an attempt for retry (the response header
    /// `x-llm-gateway-retry`, which the route's `retriable_headers` matches).
    pub on_status: Vec<u16>,
    /// Provider error codes (normalized, e.g. `context_length_exceeded`, or the provider's
    /// own) that send the request to the next target once the error's body is known: the
    /// per-attempt instance dispatches that hop itself (`engine::error_hop`).
    pub on_error: Vec<String>,
    /// How long one such hop may take.
    pub on_error_timeout_ms: u64,
}

/// The default bound of one error-code hop.
pub const DEFAULT_ON_ERROR_TIMEOUT_MS: u64 = 30_000;

/// Statuses that send a request to the next target by default: rate limits, server
/// errors and Anthropic's 529 overloaded.
pub const DEFAULT_FALLBACK_STATUSES: [u16; 6] = [429, 500, 502, 503, 504, 529];

impl ModelRoute {
    /// Picks a target by weight; `roll` is any random number.
    pub fn pick(&self, roll: u64) -> Option<&Target> {
        let mut point = roll % self.total_weight.max(1);
        for target in &self.targets {
            let weight = u64::from(target.weight);
            if point < weight {
                return Some(target);
            }
            point -= weight;
        }
        self.targets.last()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_request_body_bytes: usize,
    pub max_response_body_bytes: usize,
    pub max_sse_event_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_request_body_bytes: 8 << 20, max_response_body_bytes: 8 << 20, max_sse_event_bytes: 1 << 20 }
    }
}

#[derive(Debug)]
pub struct Config {
    pub providers: Vec<Provider>,
    /// Public routes in name order; `lookup` resolves names and aliases.
    pub routes: Vec<ModelRoute>,
    names: HashMap<String, usize>,
    pub cluster_header: String,
    pub model_header: String,
    pub limits: Limits,
    /// Consumers and budgets; `None` is an open gateway (no `auth` and no `consumers`).
    pub access: Option<Access>,
    /// Templates, decorators and guards; `None` when the config has none.
    pub prompts: Option<crate::prompt::Prompts>,
}

/// Identity and budgets, built once per VM.
#[derive(Debug)]
pub struct Access {
    pub auth: crate::auth::Authenticator,
    pub policy: crate::quota::Policy,
}

impl Config {
    /// Parses and validates the plugin configuration. `env` reads the VM's environment
    /// variables (injected so native tests need no real environment).
    pub fn parse(json: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let raw = parse_raw(json)?;
        validate(raw, env)
    }

    /// Resolves a public model name or alias.
    pub fn lookup(&self, model: &str) -> Option<&ModelRoute> {
        self.names.get(model).and_then(|&i| self.routes.get(i))
    }

    /// Alternative names of the routes.
    pub fn aliases(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .filter(|(name, &i)| self.routes.get(i).is_some_and(|r| &r.name != *name))
            .map(|(n, _)| n.as_str())
    }

    pub fn provider(&self, index: usize) -> Option<&Provider> {
        self.providers.get(index)
    }
}

fn parse_raw(json: &[u8]) -> Result<RawConfig, ConfigError> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Err(err("", "plugin configuration is empty; expected a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let raw: RawConfig = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| err(render_path("", e.path(), &NAMED_MAPS), strip_position(&e.inner().to_string())))?;
    de.end().map_err(|e| err("", strip_position(&e.to_string())))?;
    Ok(raw)
}

/// The maps whose keys the operator chose: their keys are quoted and bracketed (the last
/// five are the prompt section's, `prompt::config`).
const NAMED_MAPS: [&str; 10] = [
    "providers",
    "models",
    "consumers",
    "plans",
    "prices",
    "templates",
    "versions",
    "variables",
    "weights",
    "prompt_apis",
];

fn validate(raw: RawConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let access = validate_access(&raw, env)?;
    if raw.providers.is_empty() {
        return Err(err("providers", "at least one provider is required"));
    }
    let mut providers = Vec::with_capacity(raw.providers.len());
    let mut provider_index = HashMap::new();
    for (name, p) in raw.providers {
        let path = format!("providers[{name:?}]");
        let provider = validate_provider(&path, name.clone(), p, env)?;
        provider_index.insert(name, providers.len());
        providers.push(provider);
    }

    if raw.models.is_empty() {
        return Err(err("models", "at least one model is required"));
    }
    let mut routes = Vec::with_capacity(raw.models.len());
    let mut names = HashMap::new();
    for (name, m) in &raw.models {
        check_name(&format!("models[{name:?}]"), name)?;
        names.insert(name.clone(), routes.len());
        routes.push(validate_model(name, m, &provider_index, &providers)?);
    }
    // Aliases after all public names, so an alias can never shadow one.
    for (name, m) in &raw.models {
        for (i, alias) in m.aliases.iter().enumerate() {
            let path = format!("models[{name:?}].aliases[{i}]");
            check_name(&path, alias)?;
            if let Some(&owner) = names.get(alias) {
                let owner_name = routes.get(owner).map(|r: &ModelRoute| r.name.as_str()).unwrap_or("");
                return Err(err(path, format!("{alias:?} is already a name of model {owner_name:?}")));
            }
            let index = names.get(name).copied().unwrap_or(0);
            names.insert(alias.clone(), index);
        }
    }

    let cluster_header = header_name("cluster_header", raw.cluster_header, DEFAULT_CLUSTER_HEADER)?;
    let model_header = header_name("model_header", raw.model_header, DEFAULT_MODEL_HEADER)?;
    let limits = validate_limits(raw.limits.unwrap_or_default())?;
    let is_model = |name: &str| names.contains_key(name);
    let prompts = match raw.prompts {
        Some(prompts) => Some(crate::prompt::config::validate(prompts, "prompts", &is_model)?),
        None => None,
    }
    .filter(|p| !p.is_empty());
    Ok(Config { providers, routes, names, cluster_header, model_header, limits, access, prompts })
}

fn validate_access(raw: &RawConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Access>, ConfigError> {
    use crate::{auth, quota};
    // Limits and allow-lists name public models: resolved (aliases) and checked here.
    let names = quota::config::ModelNames::new(raw.models.iter().map(|(n, m)| (n.as_str(), m.aliases.as_slice())));
    let plans = quota::config::validate_plans_for("plans", &raw.plans, &names)?;
    let settings = quota::config::validate_quota("quota", raw.quota.as_ref(), &plans)?;
    let prices = quota::config::validate_prices("prices", raw.prices.as_ref())?;
    if raw.auth.is_none() && raw.consumers.is_empty() {
        if !plans.is_empty() || raw.quota.is_some() {
            return Err(err("plans", "budgets need consumers: add `consumers` or an `auth` section"));
        }
        return Ok(None);
    }
    let consumers = auth::config::validate_consumers_for("consumers", &raw.consumers, &plans, &names)?;
    let overrides = consumers.overrides();
    let listed: Vec<String> = consumers.iter().map(|c| c.name.clone()).collect();
    let default_plan = settings.default_plan.clone();
    let auth = auth::config::validate_auth("auth", raw.auth.as_ref(), consumers, &plans, default_plan.as_deref(), env)?;
    let policy = quota::Policy::new(settings, plans, prices, overrides).with_listed_consumers(listed);
    Ok(Some(Access { auth, policy }))
}

fn validate_provider(
    path: &str,
    name: String,
    p: RawProvider,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Provider, ConfigError> {
    check_name(path, &name)?;
    let kind = ProviderKind::parse(&p.kind).ok_or_else(|| {
        let names: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
        err(
            format!("{path}.kind"),
            format!("unknown provider kind {:?}; expected one of: {}", p.kind, names.join(", ")),
        )
    })?;
    if p.cluster.trim().is_empty() {
        return Err(err(format!("{path}.cluster"), "must name an Envoy cluster"));
    }
    let base_path = p.base_path.unwrap_or_else(|| kind.default_base_path().to_string());
    if !(base_path.is_empty() || base_path.starts_with('/')) || base_path.contains(['?', '#', ' ']) {
        return Err(err(
            format!("{path}.base_path"),
            format!("{base_path:?} must be a path starting with '/', without query or spaces"),
        ));
    }
    let base_path = base_path.trim_end_matches('/').to_string();
    let env_path = format!("{path}.auth.env");
    // Every key of the pool, as the header value it is sent as.
    let pooled = |prefix: &str, var: &str, pool: &[String]| -> Result<Vec<Secret>, ConfigError> {
        let mut keys = vec![Secret::new(format!("{prefix}{}", read_secret(&env_path, var, env)?))];
        for (i, var) in pool.iter().enumerate() {
            keys.push(Secret::new(format!("{prefix}{}", read_secret(&format!("{path}.auth.pool[{i}]"), var, env)?)));
        }
        Ok(keys)
    };
    let mut key_pool = Vec::new();
    let auth = match p.auth {
        RawAuth::None => UpstreamAuth::None,
        RawAuth::Bearer { env: var, pool } => {
            key_pool = pooled("Bearer ", &var, &pool)?;
            UpstreamAuth::Header { name: "authorization".to_string(), value: first_key(&key_pool) }
        }
        RawAuth::Header { name: header, env: var, pool } => {
            let header = header_name(&format!("{path}.auth.name"), Some(header), "")?;
            key_pool = pooled("", &var, &pool)?;
            UpstreamAuth::Header { name: header, value: first_key(&key_pool) }
        }
        RawAuth::ApiKey { env: var, pool } => {
            let (header, prefix) = kind.api_key_header().ok_or_else(|| {
                err(
                    format!("{path}.auth.type"),
                    format!("provider kind {:?} has no API keys; use \"aws-sigv4\"", p.kind),
                )
            })?;
            key_pool = pooled(prefix, &var, &pool)?;
            UpstreamAuth::Header { name: header.to_string(), value: first_key(&key_pool) }
        }
        RawAuth::AwsSigv4 { access_key_env, secret_key_env, session_token_env } => UpstreamAuth::SigV4 {
            access_key: Secret::new(read_secret(&format!("{path}.auth.access_key_env"), &access_key_env, env)?),
            secret_key: Secret::new(read_secret(&format!("{path}.auth.secret_key_env"), &secret_key_env, env)?),
            session_token: match session_token_env {
                Some(var) => Some(Secret::new(read_secret(&format!("{path}.auth.session_token_env"), &var, env)?)),
                None => None,
            },
        },
    };
    let required = |field: &str, value: &Option<String>, wanted: bool| match (value, wanted) {
        (None, true) => Err(err(format!("{path}.{field}"), format!("is required for provider kind {:?}", p.kind))),
        (Some(_), false) => {
            Err(err(format!("{path}.{field}"), format!("does not apply to provider kind {:?}", p.kind)))
        }
        _ => Ok(()),
    };
    required("api_version", &p.api_version, kind == ProviderKind::AzureOpenAi)?;
    required("region", &p.region, kind == ProviderKind::Bedrock)?;
    if kind != ProviderKind::Anthropic {
        required("anthropic_version", &p.anthropic_version, false)?;
    }
    if matches!(auth, UpstreamAuth::SigV4 { .. }) && kind != ProviderKind::Bedrock {
        return Err(err(format!("{path}.auth.type"), "\"aws-sigv4\" only applies to provider kind \"bedrock\""));
    }
    let static_headers = match kind {
        ProviderKind::Anthropic => {
            vec![(
                "anthropic-version".to_string(),
                p.anthropic_version.unwrap_or_else(|| crate::llm::anthropic::API_VERSION.to_string()),
            )]
        }
        _ => Vec::new(),
    };
    Ok(Provider {
        name,
        kind,
        cluster: p.cluster,
        authority: p.authority,
        base_path,
        auth,
        api_version: p.api_version,
        region: p.region,
        static_headers,
        // One key is no pool: nothing to spread or cool down.
        key_pool: if key_pool.len() > 1 { key_pool } else { Vec::new() },
    })
}

fn first_key(keys: &[Secret]) -> Secret {
    keys.first().cloned().unwrap_or_else(|| Secret::new(String::new()))
}

fn read_secret(path: &str, var: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    match env(var) {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        Some(_) => Err(err(path, format!("environment variable {var:?} is empty"))),
        None => Err(err(
            path,
            format!(
                "environment variable {var:?} is not set in the VM \
                 (pass it with vm_config.environment_variables)"
            ),
        )),
    }
}

fn validate_model(
    name: &str,
    m: &RawModel,
    provider_index: &HashMap<String, usize>,
    providers: &[Provider],
) -> Result<ModelRoute, ConfigError> {
    let path = format!("models[{name:?}]");
    let resolve = |field_path: String, provider: &str| {
        provider_index.get(provider).copied().ok_or_else(|| err(field_path, format!("no provider named {provider:?}")))
    };
    if m.fallback.is_some() && m.targets.is_none() {
        return Err(err(format!("{path}.fallback"), "a fallback chain needs `targets`"));
    }
    let targets = match (&m.provider, &m.model, &m.targets) {
        (Some(provider), Some(model), None) => {
            check_upstream_model(&format!("{path}.model"), model)?;
            vec![Target { provider: resolve(format!("{path}.provider"), provider)?, model: model.clone(), weight: 1 }]
        }
        (None, None, Some(targets)) => {
            if targets.is_empty() {
                return Err(err(format!("{path}.targets"), "at least one target is required"));
            }
            let mut out = Vec::with_capacity(targets.len());
            for (i, t) in targets.iter().enumerate() {
                let tpath = format!("{path}.targets[{i}]");
                let weight = match (t.weight, &m.fallback) {
                    (Some(0), _) => return Err(err(format!("{tpath}.weight"), "must be at least 1")),
                    (Some(_), Some(_)) => {
                        return Err(err(format!("{tpath}.weight"), "a fallback chain is ordered, not weighted"))
                    }
                    (Some(weight), None) => weight,
                    (None, Some(_)) => 1,
                    (None, None) => return Err(err(tpath, "missing field `weight`")),
                };
                check_upstream_model(&format!("{tpath}.model"), &t.model)?;
                out.push(Target {
                    provider: resolve(format!("{tpath}.provider"), &t.provider)?,
                    model: t.model.clone(),
                    weight,
                });
            }
            out
        }
        (_, _, Some(_)) => {
            return Err(err(path, "use either \"provider\" and \"model\" or \"targets\", not both"));
        }
        (None, _, None) => return Err(err(path, "missing field `provider` (or `targets`)")),
        (Some(_), None, None) => return Err(err(path, "missing field `model`")),
    };
    let total_weight = targets.iter().map(|t| u64::from(t.weight)).sum();
    let fallback = match &m.fallback {
        Some(raw) => Some(validate_fallback(&path, raw, &targets, providers)?),
        None => None,
    };
    Ok(ModelRoute { name: name.to_string(), targets, total_weight, fallback })
}

/// A chain's targets are told apart by their endpoint's `llm.provider` metadata, so each
/// provider appears once.
fn validate_fallback(
    path: &str,
    raw: &raw::RawFallback,
    targets: &[Target],
    providers: &[Provider],
) -> Result<Fallback, ConfigError> {
    if raw.cluster.trim().is_empty() {
        return Err(err(format!("{path}.fallback.cluster"), "must name an Envoy (aggregate) cluster"));
    }
    if targets.len() < 2 {
        return Err(err(format!("{path}.targets"), "a fallback chain needs at least two targets"));
    }
    for (i, target) in targets.iter().enumerate() {
        let tpath = format!("{path}.targets[{i}].provider");
        let provider = providers.get(target.provider).ok_or_else(|| err(tpath.clone(), "unknown provider"))?;
        if targets.iter().take(i).any(|t| t.provider == target.provider) {
            return Err(err(
                tpath,
                format!("provider {:?} appears twice in the chain; give each target its own provider", provider.name),
            ));
        }
    }
    let on_status = raw.on_status.clone().unwrap_or_else(|| DEFAULT_FALLBACK_STATUSES.to_vec());
    if let Some(bad) = on_status.iter().find(|s| !(400..=599).contains(*s)) {
        return Err(err(format!("{path}.fallback.on_status"), format!("{bad} is not an error status (400-599)")));
    }
    let on_error = raw.on_error.clone().unwrap_or_default();
    if let Some(bad) = on_error.iter().find(|c| c.is_empty() || !c.bytes().all(|b| b.is_ascii_graphic())) {
        return Err(err(format!("{path}.fallback.on_error"), format!("{bad:?} is not an error code")));
    }
    let on_error_timeout_ms = raw.on_error_timeout_ms.unwrap_or(DEFAULT_ON_ERROR_TIMEOUT_MS);
    if !(1..=600_000).contains(&on_error_timeout_ms) {
        return Err(err(format!("{path}.fallback.on_error_timeout_ms"), "must be 1 to 600000"));
    }
    Ok(Fallback { cluster: raw.cluster.clone(), on_status, on_error, on_error_timeout_ms })
}

fn check_upstream_model(path: &str, model: &str) -> Result<(), ConfigError> {
    if model.trim().is_empty() {
        return Err(err(path, "must not be empty"));
    }
    check_name(path, model)
}

fn header_name(path: &str, value: Option<String>, default: &str) -> Result<String, ConfigError> {
    crate::config_base::header_name(path, value.as_deref().unwrap_or(default))
}

fn validate_limits(l: raw::RawLimits) -> Result<Limits, ConfigError> {
    let d = Limits::default();
    let pick = |field: &str, v: Option<usize>, default: usize| match v {
        Some(0) => Err(err(format!("limits.{field}"), "must be greater than 0")),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    Ok(Limits {
        max_request_body_bytes: pick("max_request_body_bytes", l.max_request_body_bytes, d.max_request_body_bytes)?,
        max_response_body_bytes: pick("max_response_body_bytes", l.max_response_body_bytes, d.max_response_body_bytes)?,
        max_sse_event_bytes: pick("max_sse_event_bytes", l.max_sse_event_bytes, d.max_sse_event_bytes)?,
    })
}
