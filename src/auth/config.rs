//! Configuration owned by the auth module: the `consumers` and `auth` sections.
//!
//! ```json
//! {
//!   "consumers": {
//!     "demo":  {"api_keys": ["<sha256 hex of sk-demo>"], "plan": "tour"},
//!     "alice": {"api_keys": ["<sha256 hex of sk-demo-alice>"], "plan": "small",
//!               "models": ["gpt-4o-mini"],
//!               "limits": [{"name": "tpm", "window": "minute", "tokens": 2000}]},
//!     "bob":   {"plan": "paid"},
//!     "carol": {"api_keys": ["<sha256 hex>"], "jwt_subjects": ["carol@example.com"]}
//!   },
//!   "auth": {
//!     "jwt": {
//!       "issuers": ["https://idp.example.com"],
//!       "audiences": ["llm-gateway"],
//!       "leeway_secs": 30,
//!       "consumer_claim": "sub",
//!       "plan_claim": "plan",
//!       "keys": [
//!         {"kid": "rsa-1", "algorithm": "RS256", "public_key_pem": "-----BEGIN PUBLIC KEY-----\n..."},
//!         {"kid": "hs-1", "algorithm": "HS256", "secret_env": "JWT_HS256_SECRET"}
//!       ],
//!       "jwks": {"keys": [{"kty": "EC", "kid": "ec-1", "alg": "ES256", "crv": "P-256", "x": "...", "y": "..."}]}
//!     },
//!     "trusted": {"metadata": ["envoy.filters.http.jwt_authn", "payload", "sub"]},
//!     "allow_unlisted_consumers": false
//!   }
//! }
//! ```
//!
//! - `api_keys`: SHA-256 digests of the keys, 64 lowercase hex digits
//!   (`printf %s "$KEY" | sha256sum`). Keys themselves never appear in the config.
//! - `plan`: a plan from `plans`; `models`: public model names the consumer may use;
//!   `limits`: the consumer's own limits (same shape as a plan's; a limit with the name of a
//!   plan limit replaces it).
//! - `jwt_subjects`: JWT subjects (consumer-claim values) that identify this consumer.
//!   Identities from different sources are distinct: a token reaches a consumer that lists
//!   its subject, or one of the same name that has neither `api_keys` nor `jwt_subjects`; a
//!   token naming an API-key consumer that does not list it is refused (401).
//! - `jwt.keys`: each pins its `algorithm` (HS256/384/512, RS256/384/512, PS256/384/512,
//!   ES256/384, EdDSA); asymmetric keys inline as PEM, HMAC secrets only by environment
//!   variable name (at least 32/48/64 bytes for HS256/384/512). `jwt.jwks`: an inline JWKS
//!   document; every key needs `alg`. `leeway_secs` is required (0 to 300). A token's
//!   `iss` must be in `issuers` and its `aud` must contain one of `audiences`: both lists are
//!   required, unless `allow_any_issuer: true` / `allow_any_audience: true` says explicitly
//!   that any value is accepted. The consumer comes from `consumer_claim` (default `sub`),
//!   the plan from `plan_claim` if set: for consumers without a configured plan only, unless
//!   `plan_claim_overrides: true` lets the claim replace the configured plan.
//! - `trusted`: where the shell reads an identity an earlier filter verified: `header` or
//!   `metadata` (a property path under `metadata.filter_metadata`), and optionally
//!   `plan_header` / `plan_metadata` (the plan of consumers without a configured plan;
//!   `plan_overrides: true` lets it replace the configured plan). Trusted headers are removed
//!   before the request goes upstream.
//! - `allow_unlisted_consumers`: accept JWT and trusted identities not listed in
//!   `consumers` (they get the token's or the default plan). Default false.

use super::api_key::{parse_digest, KeyIndex};
use super::jwt::{JwtVerifier, VerifyKey};
use super::{valid_consumer_name, Authenticator};
use crate::config_base::{err, header_name, ConfigError};
use crate::quota::config::{check_models, validate_limits_for, ModelNames, RawLimit};
use crate::quota::{Limit, Plans};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConsumer {
    #[serde(default)]
    pub api_keys: Vec<String>,
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub limits: Vec<RawLimit>,
    /// JWT subjects (values of the consumer claim) that identify this consumer.
    #[serde(default)]
    pub jwt_subjects: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(default)]
    pub jwt: Option<RawJwt>,
    #[serde(default)]
    pub trusted: Option<RawTrusted>,
    #[serde(default)]
    pub allow_unlisted_consumers: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwt {
    #[serde(default)]
    pub issuers: Vec<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Accept tokens from any issuer (`issuers` must then be absent).
    #[serde(default)]
    pub allow_any_issuer: bool,
    /// Accept tokens for any audience (`audiences` must then be absent).
    #[serde(default)]
    pub allow_any_audience: bool,
    pub leeway_secs: u64,
    #[serde(default)]
    pub consumer_claim: Option<String>,
    #[serde(default)]
    pub plan_claim: Option<String>,
    /// The plan claim replaces the configured plan of a listed consumer (default: the
    /// configured plan wins; the claim only chooses the plan of consumers without one).
    #[serde(default)]
    pub plan_claim_overrides: bool,
    #[serde(default)]
    pub keys: Vec<RawJwtKey>,
    /// An inline JWKS document (`{"keys": [...]}`).
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwtKey {
    #[serde(default)]
    pub kid: Option<String>,
    pub algorithm: String,
    #[serde(default)]
    pub public_key_pem: Option<String>,
    #[serde(default)]
    pub secret_env: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTrusted {
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub metadata: Option<Vec<String>>,
    #[serde(default)]
    pub plan_header: Option<String>,
    #[serde(default)]
    pub plan_metadata: Option<Vec<String>>,
    /// The trusted plan replaces the configured plan of a listed consumer (default false).
    #[serde(default)]
    pub plan_overrides: bool,
}

/// Where the shell reads a trusted value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedSource {
    /// A request header (lowercase name).
    Header(String),
    /// A property path under `metadata.filter_metadata` (namespace, then keys).
    Metadata(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedConfig {
    pub consumer: TrustedSource,
    pub plan: Option<TrustedSource>,
    /// Whether the trusted plan may replace a listed consumer's configured plan.
    pub plan_overrides: bool,
}

impl TrustedConfig {
    /// The request headers the trusted values are read from: removed before the request goes
    /// upstream (the provider has no business with them).
    pub fn headers(&self) -> impl Iterator<Item = &str> {
        [Some(&self.consumer), self.plan.as_ref()].into_iter().flatten().filter_map(|s| match s {
            TrustedSource::Header(name) => Some(name.as_str()),
            TrustedSource::Metadata(_) => None,
        })
    }
}

/// A configured consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerEntry {
    pub name: String,
    pub plan: Option<String>,
    pub models: Option<Vec<String>>,
    pub limits: Vec<Limit>,
    /// JWT subjects that identify this consumer (see [`Consumers::for_jwt_subject`]).
    pub jwt_subjects: Vec<String>,
    /// Whether the consumer has API keys.
    pub has_api_keys: bool,
}

/// What a JWT subject resolves to ([`Consumers::for_jwt_subject`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtSubject<'a> {
    Consumer(&'a ConsumerEntry),
    /// A consumer has this name but does not accept it as a JWT subject.
    NotAccepted,
    /// No consumer is named so.
    Unlisted,
}

/// The `consumers` section, validated, with the API-key index.
#[derive(Debug, Clone, Default)]
pub struct Consumers {
    entries: Vec<ConsumerEntry>,
    by_name: HashMap<String, usize>,
    by_jwt_subject: HashMap<String, usize>,
    keys: KeyIndex,
}

impl Consumers {
    pub fn get(&self, name: &str) -> Option<&ConsumerEntry> {
        self.by_name.get(name).and_then(|&i| self.entries.get(i))
    }

    /// What a verified JWT subject names. Identities from different sources are distinct: a
    /// subject reaches the consumer that lists it in `jwt_subjects`, or the consumer of that
    /// name if it has neither API keys nor `jwt_subjects` (a consumer made for tokens).
    pub fn for_jwt_subject(&self, subject: &str) -> JwtSubject<'_> {
        if let Some(entry) = self.by_jwt_subject.get(subject).and_then(|&i| self.entries.get(i)) {
            return JwtSubject::Consumer(entry);
        }
        match self.get(subject) {
            Some(entry) if !entry.has_api_keys && entry.jwt_subjects.is_empty() => JwtSubject::Consumer(entry),
            Some(_) => JwtSubject::NotAccepted,
            None => JwtSubject::Unlisted,
        }
    }

    pub fn entry(&self, index: u32) -> Option<&ConsumerEntry> {
        self.entries.get(index as usize)
    }

    pub fn keys(&self) -> &KeyIndex {
        &self.keys
    }

    pub fn iter(&self) -> impl Iterator<Item = &ConsumerEntry> {
        self.entries.iter()
    }

    /// Each consumer's own limits, for `quota::Policy::new`.
    pub fn overrides(&self) -> Vec<(String, Vec<Limit>)> {
        self.entries.iter().filter(|e| !e.limits.is_empty()).map(|e| (e.name.clone(), e.limits.clone())).collect()
    }
}

/// Validates the `consumers` section (at `path`) against the plans, without checking model
/// names (see [`validate_consumers_for`]).
pub fn validate_consumers(
    path: &str,
    raw: &BTreeMap<String, RawConsumer>,
    plans: &Plans,
) -> Result<Consumers, ConfigError> {
    validate_consumers_for(path, raw, plans, &ModelNames::unchecked())
}

/// Validates the `consumers` section against the plans; every `models` list (the consumer's
/// allow-list, its limits') resolved against `names` (aliases to their model, unknown names
/// refused), as `Config::parse` does.
pub fn validate_consumers_for(
    path: &str,
    raw: &BTreeMap<String, RawConsumer>,
    plans: &Plans,
    names: &ModelNames,
) -> Result<Consumers, ConfigError> {
    let mut consumers = Consumers::default();
    for (name, c) in raw {
        let cpath = format!("{path}[{name:?}]");
        if !valid_consumer_name(name) {
            return Err(err(
                cpath,
                format!(
                    "{name:?} is not a valid consumer name (1-128 printable ASCII characters, no ';', '=' or '\"')"
                ),
            ));
        }
        if let Some(plan) = &c.plan {
            if !plans.contains(plan) {
                return Err(err(format!("{cpath}.plan"), format!("no plan named {plan:?}")));
            }
        }
        let models = check_models(&format!("{cpath}.models"), &c.models, names)?;
        let index = u32::try_from(consumers.entries.len()).map_err(|_| err(path, "too many consumers"))?;
        for (i, hex) in c.api_keys.iter().enumerate() {
            let kpath = format!("{cpath}.api_keys[{i}]");
            let digest = parse_digest(hex).map_err(|e| err(&kpath, e))?;
            if consumers.keys.contains(&digest) {
                return Err(err(kpath, "this key digest is already configured (for this or another consumer)"));
            }
            consumers.keys.push(digest, index);
        }
        let limits = validate_limits_for(&format!("{cpath}.limits"), &c.limits, names)?;
        for (i, subject) in c.jwt_subjects.iter().enumerate() {
            let spath = format!("{cpath}.jwt_subjects[{i}]");
            if !valid_consumer_name(subject) {
                return Err(err(
                    spath,
                    format!(
                        "{subject:?} is not a usable identity (1-128 printable ASCII characters, no ';', '=' or '\"')"
                    ),
                ));
            }
            if consumers.by_jwt_subject.contains_key(subject) {
                return Err(err(spath, format!("{subject:?} is already a JWT subject of a consumer")));
            }
            if subject != name && raw.contains_key(subject) {
                return Err(err(spath, format!("{subject:?} is the name of another consumer")));
            }
            consumers.by_jwt_subject.insert(subject.clone(), consumers.entries.len());
        }
        consumers.by_name.insert(name.clone(), consumers.entries.len());
        consumers.entries.push(ConsumerEntry {
            name: name.clone(),
            plan: c.plan.clone(),
            models,
            limits,
            jwt_subjects: c.jwt_subjects.clone(),
            has_api_keys: !c.api_keys.is_empty(),
        });
    }
    Ok(consumers)
}

/// Validates the `auth` section (at `path`) and builds the [`Authenticator`]. JWT decoding
/// keys are parsed here, once. `env` reads the VM's environment (HMAC secrets).
pub fn validate_auth(
    path: &str,
    raw: Option<&RawAuth>,
    consumers: Consumers,
    plans: &Plans,
    default_plan: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Authenticator, ConfigError> {
    let default = RawAuth::default();
    let raw = raw.unwrap_or(&default);
    let jwt = raw.jwt.as_ref().map(|j| validate_jwt(&format!("{path}.jwt"), j, env)).transpose()?;
    let trusted = raw.trusted.as_ref().map(|t| validate_trusted(&format!("{path}.trusted"), t)).transpose()?;
    let plan_models = plans.iter().map(|p| (p.name.clone(), p.models.clone())).collect();
    Ok(Authenticator::new(
        consumers,
        jwt,
        trusted,
        raw.allow_unlisted_consumers,
        default_plan.map(str::to_string),
        plan_models,
    ))
}

fn validate_jwt(path: &str, raw: &RawJwt, env: &dyn Fn(&str) -> Option<String>) -> Result<JwtVerifier, ConfigError> {
    if raw.leeway_secs > 300 {
        return Err(err(format!("{path}.leeway_secs"), "must be at most 300 seconds"));
    }
    let claim = |field: &str, value: &Option<String>, default: Option<&str>| -> Result<Option<String>, ConfigError> {
        match value.as_deref().or(default) {
            Some(c) if c.trim().is_empty() => Err(err(format!("{path}.{field}"), "must not be empty")),
            other => Ok(other.map(str::to_string)),
        }
    };
    let consumer_claim = claim("consumer_claim", &raw.consumer_claim, Some("sub"))?.unwrap_or_default();
    let plan_claim = claim("plan_claim", &raw.plan_claim, None)?;

    let mut keys = Vec::new();
    for (i, k) in raw.keys.iter().enumerate() {
        keys.push(validate_key(&format!("{path}.keys[{i}]"), k, env)?);
    }
    if let Some(jwks) = &raw.jwks {
        keys.extend(validate_jwks(&format!("{path}.jwks"), jwks)?);
    }
    if keys.is_empty() {
        return Err(err(path, "at least one key is required (`keys` or `jwks`)"));
    }
    for (i, key) in keys.iter().enumerate() {
        if let Some(kid) = key.kid() {
            if keys.iter().skip(i + 1).any(|other| other.kid() == Some(kid)) {
                return Err(err(path, format!("two keys have the kid {kid:?}")));
            }
        }
    }
    let issuers = required_list(path, "issuers", &raw.issuers, raw.allow_any_issuer, "iss")?;
    let audiences = required_list(path, "audiences", &raw.audiences, raw.allow_any_audience, "aud")?;
    if raw.plan_claim_overrides && plan_claim.is_none() {
        return Err(err(format!("{path}.plan_claim_overrides"), "needs `plan_claim`"));
    }
    Ok(JwtVerifier {
        keys,
        issuers,
        audiences,
        leeway_secs: raw.leeway_secs,
        consumer_claim,
        plan_claim,
        plan_claim_overrides: raw.plan_claim_overrides,
        cache: Default::default(),
    })
}

/// `issuers` / `audiences`: required (a token minted by any issuer, or for any other service,
/// must not be accepted by accident) unless `allow_any_<what>` says so explicitly.
fn required_list(
    path: &str,
    field: &str,
    values: &[String],
    allow_any: bool,
    claim: &str,
) -> Result<Vec<String>, ConfigError> {
    let switch = format!("allow_any_{}", field.trim_end_matches('s'));
    match (values.is_empty(), allow_any) {
        (true, false) => Err(err(
            format!("{path}.{field}"),
            format!("list the accepted `{claim}` values (or set `{switch}: true` to accept any)"),
        )),
        (false, true) => Err(err(format!("{path}.{switch}"), format!("give either `{field}` or `{switch}`, not both"))),
        _ => match values.iter().position(|v| v.is_empty()) {
            Some(i) => Err(err(format!("{path}.{field}[{i}]"), "must not be empty")),
            None => Ok(values.to_vec()),
        },
    }
}

fn parse_algorithm(path: &str, name: &str) -> Result<Algorithm, ConfigError> {
    if name.eq_ignore_ascii_case("none") {
        return Err(err(path, "\"none\" is not a signing algorithm"));
    }
    Algorithm::from_str(name).map_err(|_| {
        err(path, format!("{name:?} is not one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"))
    })
}

fn validate_key(path: &str, raw: &RawJwtKey, env: &dyn Fn(&str) -> Option<String>) -> Result<VerifyKey, ConfigError> {
    let algorithm = parse_algorithm(&format!("{path}.algorithm"), &raw.algorithm)?;
    if let Some(kid) = &raw.kid {
        if kid.is_empty() {
            return Err(err(format!("{path}.kid"), "must not be empty"));
        }
    }
    let key = match (algorithm.family(), &raw.public_key_pem, &raw.secret_env) {
        (AlgorithmFamily::Hmac, None, Some(var)) => {
            let secret = env(var).ok_or_else(|| {
                err(
                    format!("{path}.secret_env"),
                    format!("environment variable {var:?} is not set in the VM (pass it with vm_config.environment_variables)"),
                )
            })?;
            let min = match algorithm {
                Algorithm::HS384 => 48,
                Algorithm::HS512 => 64,
                _ => 32,
            };
            if secret.len() < min {
                return Err(err(
                    format!("{path}.secret_env"),
                    format!("the secret in {var:?} is shorter than {min} bytes, the minimum for {algorithm:?}"),
                ));
            }
            DecodingKey::from_secret(secret.as_bytes())
        }
        (AlgorithmFamily::Hmac, _, _) => {
            return Err(err(
                path,
                "HMAC keys are read from the environment: give `secret_env` (and no `public_key_pem`)",
            ))
        }
        (family, Some(pem), None) => {
            let parsed = match family {
                AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem.as_bytes()),
                AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem.as_bytes()),
                _ => DecodingKey::from_ed_pem(pem.as_bytes()),
            };
            parsed.map_err(|e| {
                err(format!("{path}.public_key_pem"), format!("not a {family:?} public key in PEM: {e}"))
            })?
        }
        (_, _, _) => return Err(err(path, "asymmetric keys need `public_key_pem` (and no `secret_env`)")),
    };
    VerifyKey::new(raw.kid.clone(), algorithm, key).map_err(|e| err(path, e))
}

fn validate_jwks(path: &str, raw: &serde_json::Value) -> Result<Vec<VerifyKey>, ConfigError> {
    let set: JwkSet = serde_json::from_value(raw.clone())
        .map_err(|e| err(path, format!("not a JWKS document ({{\"keys\": [...]}}): {e}")))?;
    if set.keys.is_empty() {
        return Err(err(format!("{path}.keys"), "must hold at least one key"));
    }
    let mut keys = Vec::with_capacity(set.keys.len());
    for (i, jwk) in set.keys.iter().enumerate() {
        let kpath = format!("{path}.keys[{i}]");
        let alg =
            jwk.common.key_algorithm.ok_or_else(|| err(&kpath, "needs `alg`: the algorithm is pinned per key"))?;
        let algorithm = Algorithm::try_from(alg)
            .map_err(|_| err(format!("{kpath}.alg"), format!("{alg} is not a signing algorithm")))?;
        if algorithm.family() == AlgorithmFamily::Hmac {
            return Err(err(&kpath, "symmetric (oct) keys are not accepted inline; use `keys` with `secret_env`"));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| err(&kpath, format!("unusable key: {e}")))?;
        keys.push(VerifyKey::new(jwk.common.key_id.clone(), algorithm, key).map_err(|e| err(&kpath, e))?);
    }
    Ok(keys)
}

fn source(
    path: &str,
    header: &Option<String>,
    metadata: &Option<Vec<String>>,
    fields: (&str, &str),
) -> Result<Option<TrustedSource>, ConfigError> {
    match (header, metadata) {
        (Some(h), None) => Ok(Some(TrustedSource::Header(header_name(&format!("{path}.{}", fields.0), h)?))),
        (None, Some(m)) if m.len() < 2 || m.iter().any(|s| s.is_empty()) => Err(err(
            format!("{path}.{}", fields.1),
            "must be a filter metadata namespace followed by at least one key, none empty",
        )),
        (None, Some(m)) => Ok(Some(TrustedSource::Metadata(m.clone()))),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(err(path, format!("use either `{}` or `{}`, not both", fields.0, fields.1))),
    }
}

fn validate_trusted(path: &str, raw: &RawTrusted) -> Result<TrustedConfig, ConfigError> {
    let consumer = source(path, &raw.header, &raw.metadata, ("header", "metadata"))?
        .ok_or_else(|| err(path, "name where the consumer is read: `header` or `metadata`"))?;
    let plan = source(path, &raw.plan_header, &raw.plan_metadata, ("plan_header", "plan_metadata"))?;
    if raw.plan_overrides && plan.is_none() {
        return Err(err(format!("{path}.plan_overrides"), "needs `plan_header` or `plan_metadata`"));
    }
    Ok(TrustedConfig { consumer, plan, plan_overrides: raw.plan_overrides })
}
