//! API-key and JWT parsing through `Authenticator::authenticate`, with an identity config
//! built once. The fuzzer cannot forge signatures, so two modes sign what it writes with
//! the configured HS256 secret: that reaches the claim checks, whose oracle is that a
//! validly signed token is accepted only with the configured issuer and audience, an
//! unexpired `exp`, and names exactly the consumer in its `sub`.

use super::{selector, split_parts};
use jsonwebtoken::crypto::sign;
use jsonwebtoken::{Algorithm, EncodingKey};
use llm_gateway::auth::api_key::{bearer_token, digest, parse_digest, presented};
use llm_gateway::auth::{AuthOutcome, Credentials, KeyHeader, Method};
use llm_gateway::engine::Gateway;
use serde_json::{json, Value};
use std::sync::OnceLock;

const NOW: u64 = 1_795_734_600;
const LEEWAY: u64 = 30;
const SECRET: &str = "a-fuzzing-hs256-secret-of-at-least-32-bytes";
const KEYS: [(&str, &str); 2] = [("alice", "sk-fuzz-alice"), ("carol", "sk-fuzz-carol")];
const ISSUER: &str = "https://idp.fuzz.invalid";
const AUDIENCE: &str = "llm-gateway";
const EC256_PUBLIC: &str = include_str!("../../tests/fixtures/jwt/ec256_public.pem");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn gateway() -> &'static Gateway {
    static GATEWAY: OnceLock<Gateway> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let config = json!({
            "providers": {"p": {"kind": "openai", "cluster": "c", "auth": {"type": "none"}}},
            "models": {"m": {"provider": "p", "model": "x"}},
            "consumers": {
                "alice": {"api_keys": [hex(&digest(KEYS[0].1))], "plan": "small"},
                "carol": {"api_keys": [hex(&digest(KEYS[1].1))]},
                "bob": {"plan": "paid"}
            },
            "plans": {
                "small": {"limits": [{"name": "tpm", "window": "minute", "tokens": 1000}]},
                "paid": {"limits": [{"name": "rpm", "window": "minute", "requests": 100}]}
            },
            "auth": {"jwt": {
                "issuers": [ISSUER], "audiences": [AUDIENCE], "leeway_secs": LEEWAY, "plan_claim": "plan",
                "keys": [
                    {"kid": "hs", "algorithm": "HS256", "secret_env": "JWT_SECRET"},
                    {"kid": "es", "algorithm": "ES256", "public_key_pem": EC256_PUBLIC}
                ]
            }}
        });
        let env = |name: &str| (name == "JWT_SECRET").then(|| SECRET.to_string());
        match Gateway::from_json(config.to_string().as_bytes(), &env) {
            Ok(g) => g,
            Err(e) => panic!("the auth harness config does not load: {e}"),
        }
    })
}

/// base64url without padding (RFC 4648 §5), as JWT segments are written.
fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 3);
    for chunk in bytes.chunks(3) {
        let b = [chunk.first().copied(), chunk.get(1).copied(), chunk.get(2).copied()];
        let n =
            (u32::from(b[0].unwrap_or(0)) << 16) | (u32::from(b[1].unwrap_or(0)) << 8) | u32::from(b[2].unwrap_or(0));
        let digits = 1 + chunk.len();
        for i in 0..digits {
            let index = (n >> (18 - 6 * i)) & 63;
            out.push(char::from(ALPHABET.get(index as usize).copied().unwrap_or(b'A')));
        }
    }
    out
}

/// A token whose signature is valid for the header and payload bytes given.
fn signed(header: &[u8], payload: &[u8]) -> String {
    let message = format!("{}.{}", b64(header), b64(payload));
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    match sign(message.as_bytes(), &key, Algorithm::HS256) {
        Ok(signature) => format!("{message}.{signature}"),
        Err(e) => panic!("signing failed: {e}"),
    }
}

/// Selector: bits 0-1 the mode (0 raw headers, 1 signed claims, 2 signed header and claims,
/// 3 trusted-free raw `x-api-key`), bit 2 which header the dialect prefers. The rest: the
/// parts, separated by `SEP`.
pub fn auth(data: &[u8]) {
    let (sel, rest) = selector(data);
    let (first, second) = split_parts(rest);
    let prefer = if sel & 4 == 0 { KeyHeader::Authorization } else { KeyHeader::XApiKey };
    let first_text = String::from_utf8_lossy(first);
    let second_text = String::from_utf8_lossy(second);
    parsers(&first_text);
    let (authorization, x_api_key, claims) = match sel & 3 {
        0 => (Some(first_text.to_string()), Some(second_text.to_string()).filter(|s| !s.is_empty()), None),
        1 => {
            let header = br#"{"alg":"HS256","typ":"JWT","kid":"hs"}"#;
            (Some(format!("Bearer {}", signed(header, first))), None, Some(first))
        }
        2 => (Some(format!("Bearer {}", signed(first, second))), None, Some(second)),
        _ => (None, Some(first_text.to_string()), None),
    };
    let credentials = Credentials {
        authorization: authorization.as_deref(),
        x_api_key: x_api_key.as_deref(),
        ..Credentials::default()
    };
    let Some(access) = &gateway().config().access else { panic!("the auth harness has no access config") };
    let outcome = access.auth.authenticate(&credentials, prefer, NOW);
    let AuthOutcome::Consumer(consumer) = outcome else { return };
    match consumer.method {
        Method::ApiKey => {
            let key = presented(credentials.authorization, credentials.x_api_key, prefer);
            let owner = KEYS.iter().find(|(_, k)| Some(*k) == key).map(|(name, _)| *name);
            assert_eq!(owner, Some(consumer.name.as_str()), "an API key names a consumer it does not belong to");
        }
        Method::Jwt => {
            let claims: Value = claims.and_then(|c| serde_json::from_slice(c).ok()).unwrap_or(Value::Null);
            accepted_claims_are_valid(&claims, &consumer.name);
        }
        other => panic!("no trusted identity is configured, yet {other:?}"),
    }
}

/// A token the verifier accepted: every rule the configuration states holds for it.
fn accepted_claims_are_valid(claims: &Value, consumer: &str) {
    assert_eq!(claims.get("sub").and_then(Value::as_str), Some(consumer), "consumer is not the token's sub: {claims}");
    assert_eq!(claims.get("iss").and_then(Value::as_str), Some(ISSUER), "issuer not checked: {claims}");
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == AUDIENCE,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(AUDIENCE)),
        _ => false,
    };
    assert!(audience_ok, "audience not checked: {claims}");
    let exp = claims.get("exp").and_then(Value::as_f64);
    assert!(exp.is_some_and(|e| e + LEEWAY as f64 > NOW as f64), "expired token accepted: {claims}");
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_f64) {
        assert!(nbf <= (NOW + LEEWAY) as f64, "token used before nbf: {claims}");
    }
}

/// The string parsers on their own.
fn parsers(text: &str) {
    if let Some(token) = bearer_token(text) {
        assert!(!token.is_empty() && text.contains(token), "bearer_token invented {token:?}");
    }
    if let Ok(bytes) = parse_digest(text) {
        assert_eq!(hex(&bytes), text, "parse_digest is not the inverse of hex");
    }
}
