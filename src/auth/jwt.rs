//! JWT verification with `jsonwebtoken`, hardened:
//!
//! - the algorithm is pinned per key and the token's `alg` must equal it (`none`, in any
//!   casing, is refused before any key is looked at; an HS* token never meets an RSA key);
//! - tokens carrying `jwk`, `jku`, `x5u` or `x5c` (keys or key locations chosen by the
//!   sender) or `crit` (extensions we do not implement) are refused;
//! - `kid` selects the key when present (keys configured without a `kid` are the fallback);
//! - tokens over 8 KiB, or not three base64url segments, are refused before any crypto;
//! - `exp` is required; `exp`, `nbf`, `iss` and `aud` are checked here, against the
//!   `now_secs` argument with an explicit leeway (the library's own time checks, which read
//!   the clock, are switched off);
//! - decoding keys and their `Validation` are built once, at configuration time.
//!
//! Error values never contain the token or any part of it.

use super::jwt_cache::{Accepted, VerifiedCache};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// At most this many keys are tried for one token (keys without `kid`, same algorithm).
const MAX_CANDIDATES: usize = 8;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    TooLarge,
    Malformed(&'static str),
    AlgNone,
    UnsupportedAlgorithm,
    /// A header parameter we refuse (`jwk`, `jku`, `x5u`, `x5c`, `crit`).
    ForbiddenHeader(&'static str),
    UnknownKid,
    /// No configured key uses the token's algorithm.
    AlgorithmNotAllowed,
    BadSignature,
    MissingExp,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    /// A required claim (the consumer claim) is missing or not a string.
    MissingClaim(String),
    /// A claim has the wrong type or an unusable value.
    InvalidClaim(String),
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtError::TooLarge => write!(f, "token exceeds {MAX_TOKEN_BYTES} bytes"),
            JwtError::Malformed(what) => write!(f, "malformed token: {what}"),
            JwtError::AlgNone => f.write_str("unsigned tokens (alg none) are not accepted"),
            JwtError::UnsupportedAlgorithm => f.write_str("unsupported signing algorithm"),
            JwtError::ForbiddenHeader(h) => write!(f, "token header parameter `{h}` is not accepted"),
            JwtError::UnknownKid => f.write_str("no key with the token's key id"),
            JwtError::AlgorithmNotAllowed => f.write_str("signing algorithm not allowed for the configured keys"),
            JwtError::BadSignature => f.write_str("invalid signature"),
            JwtError::MissingExp => f.write_str("token has no expiry (exp)"),
            JwtError::Expired => f.write_str("token has expired"),
            JwtError::NotYetValid => f.write_str("token is not valid yet (nbf)"),
            JwtError::WrongIssuer => f.write_str("token issuer is not accepted"),
            JwtError::WrongAudience => f.write_str("token audience is not accepted"),
            JwtError::MissingClaim(c) => write!(f, "token has no string claim `{c}`"),
            JwtError::InvalidClaim(c) => write!(f, "token claim `{c}` is invalid"),
        }
    }
}

/// One verification key, its algorithm pinned.
pub struct VerifyKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey").field("kid", &self.kid).field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl VerifyKey {
    /// Pins `algorithm` to `key`; fails if they are of different families.
    pub fn new(kid: Option<String>, algorithm: Algorithm, key: DecodingKey) -> Result<VerifyKey, String> {
        if key.family() != algorithm.family() {
            return Err(format!("a {:?} key cannot verify {algorithm:?}", key.family()));
        }
        let mut validation = Validation::new(algorithm);
        // Time, issuer and audience are checked by `JwtVerifier` against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Ok(VerifyKey { kid, algorithm, key, validation })
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// The claims the gateway uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedClaims {
    pub consumer: String,
    pub plan: Option<String>,
}

/// Verifies tokens against keys built once at configuration time.
#[derive(Debug)]
pub struct JwtVerifier {
    pub keys: Vec<VerifyKey>,
    /// Accepted `iss` values; empty only with `allow_any_issuer`: any (or none).
    pub issuers: Vec<String>,
    /// Accepted `aud` values (the token's `aud` must contain one); empty only with
    /// `allow_any_audience`: not checked.
    pub audiences: Vec<String>,
    /// Seconds of clock skew accepted on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// The claim naming the consumer (e.g. `sub`).
    pub consumer_claim: String,
    /// The claim naming the plan, if any.
    pub plan_claim: Option<String>,
    /// Whether the plan claim replaces a listed consumer's configured plan.
    pub plan_claim_overrides: bool,
    /// Tokens accepted before (`auth::jwt_cache`).
    pub cache: VerifiedCache,
}

fn segment(part: &str, what: &'static str) -> Result<Vec<u8>, JwtError> {
    if part.is_empty() {
        return Err(JwtError::Malformed(what));
    }
    URL_SAFE_NO_PAD.decode(part).map_err(|_| JwtError::Malformed(what))
}

/// `exp`/`nbf`: a JSON number of seconds (fractions are cut).
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(v), _) => Ok(Some(v)),
            (None, Some(f)) if f.is_finite() && f >= 0.0 => Ok(Some(f as u64)),
            _ => Err(JwtError::InvalidClaim(name.to_string())),
        },
        Some(_) => Err(JwtError::InvalidClaim(name.to_string())),
    }
}

impl JwtVerifier {
    /// Verifies `token` at `now_secs` and returns the consumer and plan it names. A token
    /// accepted before has only its time claims checked again (`auth::jwt_cache`).
    pub fn verify(&self, token: &str, now_secs: u64) -> Result<VerifiedClaims, JwtError> {
        if let Some(accepted) = self.cache.get(token) {
            self.check_times(accepted.exp, accepted.nbf, now_secs)?;
            return Ok(accepted.claims);
        }
        let accepted = self.verify_uncached(token, now_secs)?;
        self.cache.insert(token, accepted.clone(), now_secs);
        Ok(accepted.claims)
    }

    fn verify_uncached(&self, token: &str, now_secs: u64) -> Result<Accepted, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed("expected three dot-separated segments"));
        };
        let header: Map<String, Value> = serde_json::from_slice(&segment(header_b64, "header is not base64url")?)
            .map_err(|_| JwtError::Malformed("header is not a JSON object"))?;
        let algorithm = match header.get("alg") {
            Some(Value::String(alg)) if alg.trim().eq_ignore_ascii_case("none") => return Err(JwtError::AlgNone),
            Some(Value::String(alg)) => Algorithm::from_str(alg).map_err(|_| JwtError::UnsupportedAlgorithm)?,
            _ => return Err(JwtError::Malformed("header has no alg")),
        };
        for name in ["jwk", "jku", "x5u", "x5c", "crit"] {
            if header.contains_key(name) {
                return Err(JwtError::ForbiddenHeader(name));
            }
        }
        // Both remaining segments must be base64url, the signature non-empty, before any key is tried.
        segment(payload_b64, "payload is not base64url")?;
        segment(signature_b64, "signature is missing or not base64url")?;

        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(JwtError::Malformed("kid is not a string")),
        };
        let mut candidates: Vec<&VerifyKey> = match kid {
            Some(kid) if self.keys.iter().any(|k| k.kid() == Some(kid)) => {
                self.keys.iter().filter(|k| k.kid() == Some(kid)).collect()
            }
            Some(_) if self.keys.iter().all(|k| k.kid().is_some()) => return Err(JwtError::UnknownKid),
            Some(_) => self.keys.iter().filter(|k| k.kid().is_none()).collect(),
            None => self.keys.iter().collect(),
        };
        candidates.retain(|k| k.algorithm == algorithm);
        if candidates.is_empty() {
            return Err(JwtError::AlgorithmNotAllowed);
        }

        let mut claims = None;
        let mut failure = JwtError::BadSignature;
        for key in candidates.into_iter().take(MAX_CANDIDATES) {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &key.validation) {
                Ok(data) => {
                    claims = Some(data.claims);
                    break;
                }
                Err(e) => {
                    failure = match e.kind() {
                        ErrorKind::InvalidSignature => JwtError::BadSignature,
                        ErrorKind::Json(_) | ErrorKind::Utf8(_) => JwtError::Malformed("payload is not a JSON object"),
                        ErrorKind::Base64(_) => JwtError::Malformed("segment is not base64url"),
                        _ => JwtError::BadSignature,
                    }
                }
            }
        }
        let claims = claims.ok_or(failure)?;
        self.check_claims(&claims, now_secs)
    }

    /// RFC 7519: valid while now < exp (plus leeway); from nbf on (minus leeway).
    fn check_times(&self, exp: u64, nbf: Option<u64>, now_secs: u64) -> Result<(), JwtError> {
        if now_secs >= exp.saturating_add(self.leeway_secs) {
            return Err(JwtError::Expired);
        }
        match nbf {
            Some(nbf) if now_secs.saturating_add(self.leeway_secs) < nbf => Err(JwtError::NotYetValid),
            _ => Ok(()),
        }
    }

    fn check_claims(&self, claims: &Map<String, Value>, now_secs: u64) -> Result<Accepted, JwtError> {
        let exp = numeric_date(claims, "exp")?.ok_or(JwtError::MissingExp)?;
        // An expired token is refused as expired before its other claims are read.
        self.check_times(exp, None, now_secs)?;
        let nbf = numeric_date(claims, "nbf")?;
        self.check_times(exp, nbf, now_secs)?;
        if !self.issuers.is_empty() {
            match claims.get("iss") {
                Some(Value::String(iss)) if self.issuers.iter().any(|i| i == iss) => {}
                _ => return Err(JwtError::WrongIssuer),
            }
        }
        if !self.audiences.is_empty() {
            let accepted = |aud: &str| self.audiences.iter().any(|a| a == aud);
            let ok = match claims.get("aud") {
                Some(Value::String(aud)) => accepted(aud),
                Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str().is_some_and(accepted)),
                _ => false,
            };
            if !ok {
                return Err(JwtError::WrongAudience);
            }
        }
        let consumer = match claims.get(&self.consumer_claim) {
            Some(Value::String(name)) if !name.is_empty() => name.clone(),
            _ => return Err(JwtError::MissingClaim(self.consumer_claim.clone())),
        };
        let plan = match &self.plan_claim {
            None => None,
            Some(claim) => match claims.get(claim) {
                None | Some(Value::Null) => None,
                Some(Value::String(plan)) => Some(plan.clone()),
                Some(_) => return Err(JwtError::InvalidClaim(claim.clone())),
            },
        };
        Ok(Accepted { claims: VerifiedClaims { consumer, plan }, exp, nbf })
    }
}
