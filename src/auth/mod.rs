//! Consumer identity: who is calling, and on which plan.
//!
//! Three ways to identify a consumer, tried in this order:
//! 1. a **trusted** value (header or metadata) that an earlier Envoy filter, e.g.
//!    `jwt_authn`, already verified: the shell reads it and passes it in. Only configure it
//!    when that filter always sets or removes the value: a client must not be able to send it;
//! 2. a **JWT** in `Authorization: Bearer` (or `x-api-key`), verified here ([`jwt`]);
//! 3. an **API key** in `Authorization: Bearer` or `x-api-key`, whichever the client's dialect
//!    uses ([`api_key::KeyHeader`]), matched against configured SHA-256 digests.
//!
//! A credential shaped like a JWT (`eyJ...` with a dot) goes to the JWT verifier
//! when one is configured; anything else is an API key. The outcome is data:
//! [`AuthOutcome::Consumer`], [`AuthOutcome::Missing`] (401) or [`AuthOutcome::Invalid`]
//! (401); [`Authenticator::check_model`] then gives [`Forbidden`] (403) for a model the
//! consumer's plan or own list does not allow. No message carries a key or a token.

pub mod api_key;
pub mod config;
pub mod jwt;
pub mod jwt_cache;

pub use api_key::KeyHeader;
pub use config::{ConsumerEntry, Consumers, JwtSubject, TrustedConfig, TrustedSource};

use jwt::{JwtError, JwtVerifier};
use std::collections::HashMap;
use std::fmt;

/// HTTP status of a request whose credentials name no consumer ([`AuthOutcome::status`], and
/// the engine's reply to it).
pub const UNAUTHORIZED: u16 = 401;
/// HTTP status of a model the consumer may not use ([`Forbidden`]).
pub const FORBIDDEN: u16 = 403;
/// `WWW-Authenticate` value sent with every [`UNAUTHORIZED`] reply.
pub const WWW_AUTHENTICATE: &str = "Bearer";

/// How the consumer was identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    ApiKey,
    Jwt,
    Trusted,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::ApiKey => "api_key",
            Method::Jwt => "jwt",
            Method::Trusted => "trusted",
        }
    }
}

/// An identified consumer. `plan` is the effective plan: the consumer's configured plan
/// (a plan asserted by a token claim or a trusted value replaces it only when the config
/// says so: `plan_claim_overrides`, `trusted.plan_overrides`), else the asserted plan, else
/// the default plan; `None` means no plan: no limits apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    pub name: String,
    pub plan: Option<String>,
    pub method: Method,
}

/// Why credentials were refused (HTTP 401). Messages never contain the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    UnknownApiKey,
    Jwt(JwtError),
    /// The identity names a consumer that is not configured (and unlisted ones are refused).
    UnknownConsumer(String),
    /// The token names a plan that is not configured.
    UnknownPlan(String),
    /// The identity is not usable as a consumer name (empty, too long, or special characters).
    InvalidConsumerName,
    /// A JWT was presented but JWT authentication is not configured, or vice versa.
    UnsupportedCredential,
}

impl AuthError {
    /// A short machine-readable code (OpenAI's `invalid_api_key` for keys).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::UnknownApiKey => "invalid_api_key",
            AuthError::Jwt(_) => "invalid_token",
            AuthError::UnknownConsumer(_) | AuthError::UnknownPlan(_) | AuthError::InvalidConsumerName => {
                "invalid_consumer"
            }
            AuthError::UnsupportedCredential => "unsupported_credential",
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::UnknownApiKey => f.write_str("Incorrect API key provided."),
            AuthError::Jwt(e) => write!(f, "Invalid bearer token: {e}."),
            AuthError::UnknownConsumer(name) => write!(f, "Consumer {name:?} is not allowed to use this gateway."),
            AuthError::UnknownPlan(plan) => write!(f, "Plan {plan:?} is not configured."),
            AuthError::InvalidConsumerName => f.write_str("The credential does not name a usable consumer."),
            AuthError::UnsupportedCredential => f.write_str("This kind of credential is not accepted here."),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    Consumer(Consumer),
    /// No credential at all: 401 asking for one.
    Missing,
    Invalid(AuthError),
}

impl AuthOutcome {
    /// The HTTP status to answer with, if the request must be refused.
    pub fn status(&self) -> Option<u16> {
        match self {
            AuthOutcome::Consumer(_) => None,
            AuthOutcome::Missing | AuthOutcome::Invalid(_) => Some(UNAUTHORIZED),
        }
    }

    pub fn message(&self) -> Option<String> {
        match self {
            AuthOutcome::Consumer(_) => None,
            AuthOutcome::Missing => Some(
                "You didn't provide an API key. Send it as `Authorization: Bearer <key>` or `x-api-key: <key>`."
                    .to_string(),
            ),
            AuthOutcome::Invalid(e) => Some(e.to_string()),
        }
    }
}

/// A model the consumer may not use (HTTP 403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    pub consumer: String,
    pub model: String,
}

impl Forbidden {
    /// The error code the client sees.
    pub const CODE: &'static str = "model_not_allowed";

    pub fn status(&self) -> u16 {
        FORBIDDEN
    }
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Consumer {:?} is not allowed to use model `{}`.", self.consumer, self.model)
    }
}

/// What the shell read from the request headers (and metadata) for identification.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// The `authorization` header.
    pub authorization: Option<&'a str>,
    /// The `x-api-key` header.
    pub x_api_key: Option<&'a str>,
    /// The trusted consumer value (see [`Authenticator::trusted`]), when configured and present.
    pub trusted_consumer: Option<&'a str>,
    /// The trusted plan value, when configured and present.
    pub trusted_plan: Option<&'a str>,
}

/// Names become metric labels, log fields and store keys: printable ASCII without the
/// characters the stats tag convention uses.
pub fn valid_consumer_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b';' && b != b'=' && b != b'"')
}

/// A JWT starts with a base64url JSON object (`eyJ` is `{"`) followed by a dot; API keys
/// are not shaped like that. Malformed JWTs are thus refused as JWTs, with the JWT's reason.
fn looks_like_jwt(credential: &str) -> bool {
    credential.starts_with("eyJ") && credential.contains('.')
}

/// Per-plugin identity state, built once from the configuration.
#[derive(Debug)]
pub struct Authenticator {
    consumers: Consumers,
    jwt: Option<JwtVerifier>,
    trusted: Option<TrustedConfig>,
    allow_unlisted: bool,
    default_plan: Option<String>,
    /// Plan name -> the public models it allows (`None`: all).
    plan_models: HashMap<String, Option<Vec<String>>>,
}

impl Authenticator {
    pub fn new(
        consumers: Consumers,
        jwt: Option<JwtVerifier>,
        trusted: Option<TrustedConfig>,
        allow_unlisted: bool,
        default_plan: Option<String>,
        plan_models: HashMap<String, Option<Vec<String>>>,
    ) -> Self {
        Authenticator { consumers, jwt, trusted, allow_unlisted, default_plan, plan_models }
    }

    /// Where the shell reads the trusted identity from, if configured.
    pub fn trusted(&self) -> Option<&TrustedConfig> {
        self.trusted.as_ref()
    }

    pub fn consumers(&self) -> &Consumers {
        &self.consumers
    }

    /// Identifies the caller. `prefer` is the header the client's dialect uses for keys.
    pub fn authenticate(&self, credentials: &Credentials<'_>, prefer: KeyHeader, now_secs: u64) -> AuthOutcome {
        if self.trusted.is_some() {
            if let Some(name) = credentials.trusted_consumer.map(str::trim).filter(|n| !n.is_empty()) {
                let overrides = self.trusted.as_ref().is_some_and(|t| t.plan_overrides);
                let entry = self.consumers.get(name);
                return self.resolve(name, entry, credentials.trusted_plan.map(str::trim), overrides, Method::Trusted);
            }
        }
        let Some(credential) = api_key::presented(credentials.authorization, credentials.x_api_key, prefer) else {
            return AuthOutcome::Missing;
        };
        if looks_like_jwt(credential) {
            if let Some(verifier) = &self.jwt {
                return match verifier.verify(credential, now_secs) {
                    Ok(claims) => self.resolve_jwt(&claims, verifier.plan_claim_overrides),
                    Err(e) => AuthOutcome::Invalid(AuthError::Jwt(e)),
                };
            }
        }
        if self.consumers.keys().is_empty() {
            return AuthOutcome::Invalid(if self.jwt.is_some() {
                AuthError::Jwt(JwtError::Malformed("expected a JWT"))
            } else {
                AuthError::UnsupportedCredential
            });
        }
        match self.consumers.keys().find(credential).and_then(|i| self.consumers.entry(i)) {
            Some(entry) => AuthOutcome::Consumer(Consumer {
                name: entry.name.clone(),
                plan: entry.plan.clone().or_else(|| self.default_plan.clone()),
                method: Method::ApiKey,
            }),
            None => AuthOutcome::Invalid(AuthError::UnknownApiKey),
        }
    }

    /// A verified token's subject: the consumer that accepts it (see
    /// [`Consumers::for_jwt_subject`]); a subject that is an API-key consumer's name only is
    /// refused, whatever `allow_unlisted_consumers` says, so that it cannot take over that
    /// consumer's plan, limits or counters.
    fn resolve_jwt(&self, claims: &jwt::VerifiedClaims, plan_overrides: bool) -> AuthOutcome {
        let subject = claims.consumer.as_str();
        let entry = match self.consumers.for_jwt_subject(subject) {
            JwtSubject::Consumer(entry) => Some(entry),
            JwtSubject::NotAccepted => {
                let shown: String = subject.chars().take(64).collect();
                return AuthOutcome::Invalid(AuthError::UnknownConsumer(shown));
            }
            JwtSubject::Unlisted => None,
        };
        let name = entry.map_or(subject, |e| e.name.as_str());
        self.resolve(name, entry, claims.plan.as_deref(), plan_overrides, Method::Jwt)
    }

    /// A name (and maybe an asserted plan) from a verified token or a trusted value; `entry`
    /// is the configured consumer it names, if any.
    fn resolve(
        &self,
        name: &str,
        entry: Option<&ConsumerEntry>,
        asserted_plan: Option<&str>,
        plan_overrides: bool,
        method: Method,
    ) -> AuthOutcome {
        if !valid_consumer_name(name) {
            return AuthOutcome::Invalid(AuthError::InvalidConsumerName);
        }
        if entry.is_none() && !self.allow_unlisted {
            let shown: String = name.chars().take(64).collect();
            return AuthOutcome::Invalid(AuthError::UnknownConsumer(shown));
        }
        let configured = entry.and_then(|e| e.plan.clone());
        let asserted = asserted_plan.filter(|p| !p.is_empty()).filter(|_| configured.is_none() || plan_overrides);
        let plan = match asserted {
            Some(plan) if self.plan_models.contains_key(plan) => Some(plan.to_string()),
            Some(plan) => {
                let shown: String = plan.chars().take(64).collect();
                return AuthOutcome::Invalid(AuthError::UnknownPlan(shown));
            }
            None => configured.or_else(|| self.default_plan.clone()),
        };
        AuthOutcome::Consumer(Consumer { name: name.to_string(), plan, method })
    }

    /// Whether `consumer` may call public model `model`: the consumer's own list if it has
    /// one, and its plan's list if the plan has one.
    pub fn check_model(&self, consumer: &Consumer, model: &str) -> Result<(), Forbidden> {
        let allows = |list: Option<&Vec<String>>| list.is_none_or(|models| models.iter().any(|m| m == model));
        let own = self.consumers.get(&consumer.name).and_then(|e| e.models.as_ref());
        let plan = consumer.plan.as_ref().and_then(|p| self.plan_models.get(p)).and_then(Option::as_ref);
        if allows(own) && allows(plan) {
            Ok(())
        } else {
            Err(Forbidden { consumer: consumer.name.clone(), model: model.to_string() })
        }
    }
}
