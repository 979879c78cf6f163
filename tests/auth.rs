//! Consumer identity: API keys, JWT (with the attack matrix), trusted identities, 401/403.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use llm_gateway::auth::api_key::{bearer_token, digest, parse_digest, presented, KeyIndex};
use llm_gateway::auth::config::{validate_auth, validate_consumers, RawAuth, RawConsumer};
use llm_gateway::auth::jwt::{JwtError, MAX_TOKEN_BYTES};
use llm_gateway::auth::{AuthError, AuthOutcome, Authenticator, Consumer, Credentials, KeyHeader, Method};
use llm_gateway::quota::config::{validate_plans, RawPlan};
use serde_json::{json, Value};
use std::collections::BTreeMap;

mod common;
use common::Fixtures;

const FIXTURES: Fixtures = Fixtures("jwt");

const NOW: u64 = 1_795_734_600;
const HS_SECRET: &str = "an-hs256-test-secret-of-at-least-32-bytes";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn env(name: &str) -> Option<String> {
    match name {
        "JWT_HS256" => Some(HS_SECRET.to_string()),
        "SHORT" => Some("too-short".to_string()),
        _ => None,
    }
}

const PLANS: &str = r#"{"small": {"models": ["gpt-4o-mini", "gpt-4o"]}, "paid": {}, "tour": {}}"#;

fn build(consumers: Value, auth: Value) -> Result<Authenticator, String> {
    let plans: BTreeMap<String, RawPlan> = serde_json::from_str(PLANS).unwrap();
    let plans = validate_plans("plans", &plans).unwrap();
    let consumers: BTreeMap<String, RawConsumer> = serde_json::from_value(consumers).map_err(|e| e.to_string())?;
    let consumers = validate_consumers("consumers", &consumers, &plans).map_err(|e| e.to_string())?;
    let auth: Option<RawAuth> = serde_json::from_value(auth).map_err(|e| e.to_string())?;
    validate_auth("auth", auth.as_ref(), consumers, &plans, Some("tour"), &env).map_err(|e| e.to_string())
}

fn gateway() -> Authenticator {
    gateway_with(json!({}))
}

/// The test gateway with extra `auth.jwt` fields.
fn gateway_with(jwt_extra: Value) -> Authenticator {
    let mut jwt = jwt_section();
    jwt.as_object_mut().unwrap().extend(jwt_extra.as_object().unwrap().clone());
    build(
        json!({
            "demo": {"api_keys": [hex(&digest("sk-demo"))]},
            "alice": {"api_keys": [hex(&digest("sk-demo-alice"))], "plan": "small", "models": ["gpt-4o-mini"]},
            "bob": {"plan": "paid"},
            "carol": {},
            "dave": {"api_keys": [hex(&digest("sk-dave"))], "jwt_subjects": ["dave@idp"]}
        }),
        json!({ "jwt": jwt }),
    )
    .unwrap()
}

fn jwt_section() -> Value {
    json!({
            "issuers": ["https://idp.example.com"],
            "audiences": ["llm-gateway"],
            "leeway_secs": 30,
            "plan_claim": "plan",
            "keys": [
                {"kid": "rsa-pem", "algorithm": "RS256", "public_key_pem": FIXTURES.text("rsa_public.pem")},
                {"kid": "ps-pem", "algorithm": "PS256", "public_key_pem": FIXTURES.text("rsa_public.pem")},
                {"kid": "es384", "algorithm": "ES384", "public_key_pem": FIXTURES.text("ec384_public.pem")},
                {"kid": "ed", "algorithm": "EdDSA", "public_key_pem": FIXTURES.text("ed25519_public.pem")},
                {"kid": "hs", "algorithm": "HS256", "secret_env": "JWT_HS256"}
            ],
            "jwks": serde_json::from_str::<Value>(&FIXTURES.text("jwks.json")).unwrap()
    })
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iss": "https://idp.example.com", "aud": "llm-gateway", "exp": NOW + 600, "nbf": NOW - 10})
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let key = match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => EncodingKey::from_rsa_pem(FIXTURES.text("rsa_private.pem").as_bytes()).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(FIXTURES.text("ec256_private.pem").as_bytes()).unwrap(),
        Algorithm::ES384 => EncodingKey::from_ec_pem(FIXTURES.text("ec384_private.pem").as_bytes()).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(FIXTURES.text("ed25519_private.pem").as_bytes()).unwrap(),
        _ => EncodingKey::from_secret(HS_SECRET.as_bytes()),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, &key).unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn auth(gw: &Authenticator, authorization: &str) -> AuthOutcome {
    let creds = Credentials { authorization: Some(authorization), ..Credentials::default() };
    gw.authenticate(&creds, KeyHeader::Authorization, NOW)
}

fn jwt_error(gw: &Authenticator, token: &str) -> JwtError {
    match auth(gw, &bearer(token)) {
        AuthOutcome::Invalid(AuthError::Jwt(e)) => {
            let message = AuthError::Jwt(e.clone()).to_string();
            if token.len() > 8 {
                assert!(!message.contains(token), "message leaks the token: {message}");
            }
            e
        }
        other => panic!("expected a JWT error, got {other:?}"),
    }
}

fn consumer(outcome: AuthOutcome) -> Consumer {
    match outcome {
        AuthOutcome::Consumer(c) => c,
        other => panic!("expected a consumer, got {other:?}"),
    }
}

fn segment(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

// ---------------------------------------------------------------- API keys

#[test]
fn api_keys_are_matched_by_digest_from_either_header() {
    let gw = gateway();
    let c = consumer(auth(&gw, "Bearer sk-demo-alice"));
    assert_eq!((c.name.as_str(), c.plan.as_deref(), c.method), ("alice", Some("small"), Method::ApiKey));
    let c = consumer(auth(&gw, "bearer   sk-demo "));
    assert_eq!((c.name.as_str(), c.plan.as_deref()), ("demo", Some("tour")), "default plan");

    // Anthropic clients send x-api-key; OpenAI clients Authorization. The dialect's header wins.
    let both =
        Credentials { authorization: Some("Bearer sk-demo"), x_api_key: Some("sk-demo-alice"), ..Default::default() };
    assert_eq!(consumer(gw.authenticate(&both, KeyHeader::XApiKey, NOW)).name, "alice");
    assert_eq!(consumer(gw.authenticate(&both, KeyHeader::Authorization, NOW)).name, "demo");
    let only_x = Credentials { x_api_key: Some("sk-demo"), ..Default::default() };
    assert_eq!(consumer(gw.authenticate(&only_x, KeyHeader::Authorization, NOW)).name, "demo");
}

#[test]
fn missing_and_unknown_keys_are_401_without_the_key_in_the_message() {
    let gw = gateway();
    let none = gw.authenticate(&Credentials::default(), KeyHeader::Authorization, NOW);
    assert_eq!(none, AuthOutcome::Missing);
    assert_eq!(none.status(), Some(401));
    assert_eq!(auth(&gw, "Basic c2stZGVtbw=="), AuthOutcome::Missing, "only bearer credentials count");
    let wrong = auth(&gw, "Bearer sk-not-a-key-1234");
    assert_eq!(wrong, AuthOutcome::Invalid(AuthError::UnknownApiKey));
    assert_eq!(wrong.status(), Some(401));
    let message = wrong.message().unwrap();
    assert_eq!(message, "Incorrect API key provided.");
    assert!(!message.contains("sk-not"));
    assert_eq!(auth(&gw, &format!("Bearer {}", "k".repeat(5000))), AuthOutcome::Invalid(AuthError::UnknownApiKey));
}

#[test]
fn key_helpers() {
    assert_eq!(bearer_token("Bearer abc"), Some("abc"));
    assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
    assert_eq!(bearer_token("Bearer "), None);
    assert_eq!(bearer_token("Token abc"), None);
    assert_eq!(presented(None, Some("  "), KeyHeader::XApiKey), None);
    let d = digest("sk-demo");
    assert_eq!(parse_digest(&hex(&d)), Ok(d));
    assert!(parse_digest(&hex(&d).to_uppercase()).is_err());
    assert!(parse_digest("abc").is_err());
    let mut index = KeyIndex::default();
    index.push(digest("a"), 7);
    index.push(digest("b"), 9);
    assert_eq!(index.find("b"), Some(9));
    assert_eq!(index.find("a"), Some(7));
    assert_eq!(index.find("c"), None);
}

#[test]
fn consumer_config_errors_name_their_path() {
    let cases = [
        (json!({"x": {"api_keys": ["abc"]}}), json!(null),
         "consumers[\"x\"].api_keys[0]: must be the SHA-256 of the key as 64 lowercase hex digits (e.g. `printf %s \"$KEY\" | sha256sum`), got 3 characters"),
        (json!({"x": {"api_keys": [hex(&digest("k"))]}, "y": {"api_keys": [hex(&digest("k"))]}}), json!(null),
         "consumers[\"y\"].api_keys[0]: this key digest is already configured (for this or another consumer)"),
        (json!({"x": {"plan": "gold"}}), json!(null), "consumers[\"x\"].plan: no plan named \"gold\""),
        (json!({"a;b": {}}), json!(null),
         "consumers[\"a;b\"]: \"a;b\" is not a valid consumer name (1-128 printable ASCII characters, no ';', '=' or '\"')"),
        (json!({}), json!({"jwt": {"leeway_secs": 0, "keys": [{"algorithm": "HS256", "public_key_pem": "x"}]}}),
         "auth.jwt.keys[0]: HMAC keys are read from the environment: give `secret_env` (and no `public_key_pem`)"),
        (json!({}), json!({"jwt": {"leeway_secs": 0, "keys": [{"algorithm": "HS256", "secret_env": "SHORT"}]}}),
         "auth.jwt.keys[0].secret_env: the secret in \"SHORT\" is shorter than 32 bytes, the minimum for HS256"),
        (json!({}), json!({"jwt": {"leeway_secs": 0, "keys": [{"algorithm": "HS256", "secret_env": "NOPE"}]}}),
         "auth.jwt.keys[0].secret_env: environment variable \"NOPE\" is not set in the VM (pass it with vm_config.environment_variables)"),
        (json!({}), json!({"jwt": {"leeway_secs": 0, "keys": [{"algorithm": "none", "secret_env": "JWT_HS256"}]}}),
         "auth.jwt.keys[0].algorithm: \"none\" is not a signing algorithm"),
        (json!({}), json!({"jwt": {"leeway_secs": 0, "keys": [{"algorithm": "RS256", "public_key_pem": "garbage"}]}}),
         "auth.jwt.keys[0].public_key_pem: not a Rsa public key in PEM: InvalidKeyFormat"),
        (json!({}), json!({"jwt": {"leeway_secs": 0}}), "auth.jwt: at least one key is required (`keys` or `jwks`)"),
        (json!({}), json!({"jwt": {"leeway_secs": 900, "keys": []}}), "auth.jwt.leeway_secs: must be at most 300 seconds"),
        (json!({}), json!({"jwt": {"leeway_secs": 0, "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}}}),
         "auth.jwt.jwks.keys[0]: needs `alg`: the algorithm is pinned per key"),
        (json!({}), json!({"trusted": {"header": "x-consumer", "metadata": ["a", "b"]}}),
         "auth.trusted: use either `header` or `metadata`, not both"),
    ];
    for (consumers, auth_section, expected) in cases {
        let auth_section = if auth_section.is_null() { json!(null) } else { auth_section };
        match build(consumers.clone(), auth_section) {
            Ok(_) => panic!("accepted: {consumers}"),
            Err(e) => assert_eq!(e, expected),
        }
    }
    let e = build(json!({}), json!({"jwt": {"keys": []}})).err().unwrap();
    assert!(e.starts_with("missing field `leeway_secs`"), "the leeway is explicit: {e}");
    let e = build(json!({"x": {"apikeys": []}}), json!(null)).err().unwrap();
    assert!(e.starts_with("unknown field `apikeys`"), "{e}");
}

// ---------------------------------------------------------------- JWT: accepted tokens

#[test]
fn tokens_of_every_supported_algorithm_verify() {
    let gw = gateway();
    for (alg, kid) in [
        (Algorithm::RS256, "rsa-pem"),
        (Algorithm::PS256, "ps-pem"),
        (Algorithm::ES384, "es384"),
        (Algorithm::EdDSA, "ed"),
        (Algorithm::HS256, "hs"),
        (Algorithm::RS256, "rsa-1"), // from the JWKS
        (Algorithm::ES256, "ec-1"),  // from the JWKS
    ] {
        let c = consumer(auth(&gw, &bearer(&sign(alg, Some(kid), &claims("bob")))));
        assert_eq!((c.name.as_str(), c.plan.as_deref(), c.method), ("bob", Some("paid"), Method::Jwt), "{alg:?}");
    }
    // Without kid, every key of the token's algorithm is tried.
    assert_eq!(consumer(auth(&gw, &bearer(&sign(Algorithm::EdDSA, None, &claims("bob"))))).name, "bob");
    // JWTs also arrive in x-api-key from Anthropic-dialect clients.
    let token = sign(Algorithm::ES256, Some("ec-1"), &claims("carol"));
    let creds = Credentials { x_api_key: Some(&token), ..Default::default() };
    assert_eq!(consumer(gw.authenticate(&creds, KeyHeader::XApiKey, NOW)).name, "carol");
}

#[test]
fn the_plan_claim_chooses_the_plan_and_must_exist() {
    let gw = gateway();
    let mut c = claims("carol");
    c["plan"] = json!("small");
    assert_eq!(consumer(auth(&gw, &bearer(&sign(Algorithm::RS256, Some("rsa-1"), &c)))).plan.as_deref(), Some("small"));
    c["plan"] = json!("platinum");
    assert_eq!(
        auth(&gw, &bearer(&sign(Algorithm::RS256, Some("rsa-1"), &c))),
        AuthOutcome::Invalid(AuthError::UnknownPlan("platinum".into()))
    );
    c["plan"] = json!(3);
    assert_eq!(jwt_error(&gw, &sign(Algorithm::RS256, Some("rsa-1"), &c)), JwtError::InvalidClaim("plan".into()));
}

#[test]
fn leeway_is_applied_to_exp_and_nbf() {
    let gw = gateway();
    let mut c = claims("bob");
    c["exp"] = json!(NOW - 29);
    assert!(matches!(auth(&gw, &bearer(&sign(Algorithm::HS256, Some("hs"), &c))), AuthOutcome::Consumer(_)));
    c["exp"] = json!(NOW - 30);
    assert_eq!(jwt_error(&gw, &sign(Algorithm::HS256, Some("hs"), &c)), JwtError::Expired);
    let mut c = claims("bob");
    c["nbf"] = json!(NOW + 30);
    assert!(matches!(auth(&gw, &bearer(&sign(Algorithm::HS256, Some("hs"), &c))), AuthOutcome::Consumer(_)));
    c["nbf"] = json!(NOW + 31);
    assert_eq!(jwt_error(&gw, &sign(Algorithm::HS256, Some("hs"), &c)), JwtError::NotYetValid);
}

/// The VM keeps accepted tokens (`auth::jwt_cache`): a token seen again is accepted
/// without its signature being checked again, but its time claims still are.
fn auth_at(gw: &Authenticator, token: &str, now: u64) -> AuthOutcome {
    let authorization = bearer(token);
    let creds = Credentials { authorization: Some(&authorization), ..Credentials::default() };
    gw.authenticate(&creds, KeyHeader::Authorization, now)
}

#[test]
fn an_accepted_token_seen_again_still_expires_and_waits_for_nbf() {
    let gw = gateway();
    let mut c = claims("bob");
    c["exp"] = json!(NOW + 100);
    c["nbf"] = json!(NOW - 10);
    let token = sign(Algorithm::HS256, Some("hs"), &c);
    // Accepted (and kept), accepted again from the cache, then refused when it expires
    // (leeway 30 s) and before nbf, exactly as a first verification would.
    assert!(matches!(auth_at(&gw, &token, NOW), AuthOutcome::Consumer(_)));
    assert!(matches!(auth_at(&gw, &token, NOW + 129), AuthOutcome::Consumer(_)));
    assert_eq!(auth_at(&gw, &token, NOW + 130), AuthOutcome::Invalid(AuthError::Jwt(JwtError::Expired)));
    assert_eq!(auth_at(&gw, &token, NOW - 41), AuthOutcome::Invalid(AuthError::Jwt(JwtError::NotYetValid)));
    // Same answers from a fresh verifier: the cache changes no verdict.
    let fresh = gateway();
    assert_eq!(auth_at(&fresh, &token, NOW + 130), AuthOutcome::Invalid(AuthError::Jwt(JwtError::Expired)));
    assert_eq!(auth_at(&fresh, &token, NOW - 41), AuthOutcome::Invalid(AuthError::Jwt(JwtError::NotYetValid)));
}

#[test]
fn a_kept_token_lends_nothing_to_a_forged_one() {
    let gw = gateway();
    let token = sign(Algorithm::HS256, Some("hs"), &claims("bob"));
    assert!(matches!(auth_at(&gw, &token, NOW), AuthOutcome::Consumer(_)));
    // The same header and payload with another signature, a cut or padded token: each is
    // verified on its own bytes.
    let (signed, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(b"not the signature"));
    assert_eq!(jwt_error(&gw, &forged), JwtError::BadSignature);
    assert!(matches!(jwt_error(&gw, &token[..token.len() - 2]), JwtError::BadSignature | JwtError::Malformed(_)));
    // Another payload with the kept token's signature.
    let mut c = claims("bob");
    c["sub"] = json!("alice");
    let other = sign(Algorithm::HS256, Some("hs"), &c);
    let (other_signed, _) = other.rsplit_once('.').unwrap();
    let (_, kept_signature) = token.rsplit_once('.').unwrap();
    assert_eq!(jwt_error(&gw, &format!("{other_signed}.{kept_signature}")), JwtError::BadSignature);
    // A refused token is never kept: refused again.
    assert_eq!(jwt_error(&gw, &forged), JwtError::BadSignature);
}

// ---------------------------------------------------------------- JWT: the attack matrix

#[test]
fn attack_alg_none_in_any_casing() {
    let gw = gateway();
    for alg in ["none", "None", "NONE", "nOnE", " none"] {
        let token = format!("{}.{}.", segment(&json!({"alg": alg, "typ": "JWT"})), segment(&claims("bob")));
        assert_eq!(jwt_error(&gw, &token), JwtError::AlgNone, "{alg}");
        // Even with a signature segment attached.
        assert_eq!(jwt_error(&gw, &format!("{token}c2ln")), JwtError::AlgNone, "{alg}");
    }
}

#[test]
fn attack_hs256_signed_with_the_rsa_public_key() {
    let gw = gateway();
    let mut header = Header::new(Algorithm::HS256);
    for kid in [Some("rsa-pem"), Some("rsa-1"), None] {
        header.kid = kid.map(str::to_string);
        let forged =
            encode(&header, &claims("bob"), &EncodingKey::from_secret(FIXTURES.text("rsa_public.pem").as_bytes()))
                .unwrap();
        let e = jwt_error(&gw, &forged);
        // With the RSA key's kid: its pinned algorithm is RS256. Without kid: the HS256 key's
        // secret is not the PEM, so the signature fails.
        let expected = if kid.is_some() { JwtError::AlgorithmNotAllowed } else { JwtError::BadSignature };
        assert_eq!(e, expected, "{kid:?}");
    }
    // A gateway with only RSA keys never uses an HMAC verifier at all.
    let rsa_only = build(
        json!({"bob": {}}),
        json!({"jwt": {"leeway_secs": 0, "allow_any_issuer": true, "allow_any_audience": true,
                       "keys": [{"algorithm": "RS256", "public_key_pem": FIXTURES.text("rsa_public.pem")}]}}),
    )
    .unwrap();
    header.kid = None;
    let forged =
        encode(&header, &claims("bob"), &EncodingKey::from_secret(FIXTURES.text("rsa_public.pem").as_bytes())).unwrap();
    assert_eq!(jwt_error(&rsa_only, &forged), JwtError::AlgorithmNotAllowed);
}

#[test]
fn attack_expired_token() {
    let gw = gateway();
    let mut c = claims("bob");
    c["exp"] = json!(NOW - 3600);
    assert_eq!(jwt_error(&gw, &sign(Algorithm::RS256, Some("rsa-1"), &c)), JwtError::Expired);
}

#[test]
fn attack_token_without_exp() {
    let gw = gateway();
    let mut c = claims("bob");
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(jwt_error(&gw, &sign(Algorithm::RS256, Some("rsa-1"), &c)), JwtError::MissingExp);
    c["exp"] = json!("tomorrow");
    assert_eq!(jwt_error(&gw, &sign(Algorithm::RS256, Some("rsa-1"), &c)), JwtError::InvalidClaim("exp".into()));
}

#[test]
fn attack_not_yet_valid_token() {
    let gw = gateway();
    let mut c = claims("bob");
    c["nbf"] = json!(NOW + 3600);
    assert_eq!(jwt_error(&gw, &sign(Algorithm::ES256, Some("ec-1"), &c)), JwtError::NotYetValid);
}

#[test]
fn attack_wrong_issuer() {
    let gw = gateway();
    let mut c = claims("bob");
    c["iss"] = json!("https://evil.example.com");
    assert_eq!(jwt_error(&gw, &sign(Algorithm::RS256, Some("rsa-1"), &c)), JwtError::WrongIssuer);
    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(jwt_error(&gw, &sign(Algorithm::RS256, Some("rsa-1"), &c)), JwtError::WrongIssuer);
}

#[test]
fn attack_wrong_audience() {
    let gw = gateway();
    let mut c = claims("bob");
    c["aud"] = json!("another-service");
    assert_eq!(jwt_error(&gw, &sign(Algorithm::RS256, Some("rsa-1"), &c)), JwtError::WrongAudience);
    c["aud"] = json!(["another-service", "yet-another"]);
    assert_eq!(jwt_error(&gw, &sign(Algorithm::RS256, Some("rsa-1"), &c)), JwtError::WrongAudience);
    c["aud"] = json!(["another-service", "llm-gateway"]);
    assert!(matches!(auth(&gw, &bearer(&sign(Algorithm::RS256, Some("rsa-1"), &c))), AuthOutcome::Consumer(_)));
}

#[test]
fn attack_unknown_kid() {
    let gw = gateway();
    assert_eq!(jwt_error(&gw, &sign(Algorithm::RS256, Some("rsa-2"), &claims("bob"))), JwtError::UnknownKid);
}

#[test]
fn attack_embedded_or_remote_keys_in_the_header() {
    let gw = gateway();
    let payload = segment(&claims("bob"));
    for (name, value) in [
        ("jwk", json!({"kty": "oct", "k": "c2VjcmV0"})),
        ("jku", json!("https://evil.example.com/jwks.json")),
        ("x5u", json!("https://evil.example.com/cert.pem")),
        ("x5c", json!(["MIIB"])),
        ("crit", json!(["exp"])),
    ] {
        let mut header = json!({"alg": "RS256", "kid": "rsa-1"});
        header[name] = value;
        let token = format!("{}.{payload}.c2ln", segment(&header));
        assert!(matches!(jwt_error(&gw, &token), JwtError::ForbiddenHeader(n) if n == name), "{name}");
    }
    // Also when the token is otherwise validly signed (jsonwebtoken's own Header fields).
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hs".into());
    header.jku = Some("https://evil.example.com/jwks.json".into());
    let token = encode(&header, &claims("bob"), &EncodingKey::from_secret(HS_SECRET.as_bytes())).unwrap();
    assert_eq!(jwt_error(&gw, &token), JwtError::ForbiddenHeader("jku"));
}

#[test]
fn attack_oversized_token() {
    let gw = gateway();
    let mut c = claims("bob");
    c["padding"] = json!("x".repeat(MAX_TOKEN_BYTES));
    let token = sign(Algorithm::HS256, Some("hs"), &c);
    assert!(token.len() > MAX_TOKEN_BYTES);
    assert_eq!(jwt_error(&gw, &token), JwtError::TooLarge);
}

#[test]
fn attack_malformed_tokens() {
    let gw = gateway();
    let good = sign(Algorithm::RS256, Some("rsa-1"), &claims("bob"));
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        (format!("{}.{}", parts[0], parts[1]), "two segments"),
        (format!("{good}.extra"), "four segments"),
        (format!("{}.{}.", parts[0], parts[1]), "empty signature"),
        (format!("eyJ!!!.{}.{}", parts[1], parts[2]), "header not base64url"),
        (format!("{}.{}.{}", URL_SAFE_NO_PAD.encode("{\"alg\": \"RS256\""), parts[1], parts[2]), "header not JSON"),
        (format!("{}.{}.{}", segment(&json!({"typ": "JWT"})), parts[1], parts[2]), "no alg"),
        (format!("{}.{}.{}", segment(&json!({"alg": "RS256", "kid": 5})), parts[1], parts[2]), "kid not a string"),
        (format!("{}.e30=.{}", parts[0], parts[2]), "padded payload"),
    ];
    for (token, what) in cases {
        assert!(matches!(jwt_error(&gw, &token), JwtError::Malformed(_)), "{what}");
    }
    // Not even shaped like a JWT (header is a JSON array): treated as an unknown API key, 401.
    let array_header = format!("{}.{}.{}", segment(&json!(["RS256"])), parts[1], parts[2]);
    assert_eq!(auth(&gw, &bearer(&array_header)).status(), Some(401));
    let unknown_alg = format!("{}.{}.{}", segment(&json!({"alg": "HS1024"})), parts[1], parts[2]);
    assert_eq!(jwt_error(&gw, &unknown_alg), JwtError::UnsupportedAlgorithm);
    // A JWT-shaped garbage payload with a valid header: the signature check fails first.
    let garbage = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode("not json"), parts[2]);
    assert_eq!(jwt_error(&gw, &garbage), JwtError::BadSignature);
}

#[test]
fn attack_tampered_payload() {
    let gw = gateway();
    for (alg, kid) in
        [(Algorithm::RS256, "rsa-1"), (Algorithm::ES256, "ec-1"), (Algorithm::HS256, "hs"), (Algorithm::EdDSA, "ed")]
    {
        let good = sign(alg, Some(kid), &claims("carol"));
        let parts: Vec<&str> = good.split('.').collect();
        let mut forged_claims = claims("bob");
        forged_claims["plan"] = json!("paid");
        let forged = format!("{}.{}.{}", parts[0], segment(&forged_claims), parts[2]);
        assert_eq!(jwt_error(&gw, &forged), JwtError::BadSignature, "{alg:?}");
    }
}

#[test]
fn verified_tokens_must_name_a_known_consumer() {
    let gw = gateway();
    let mut c = claims("mallory");
    assert_eq!(
        auth(&gw, &bearer(&sign(Algorithm::RS256, Some("rsa-1"), &c))),
        AuthOutcome::Invalid(AuthError::UnknownConsumer("mallory".into()))
    );
    c["sub"] = json!("a;b");
    assert_eq!(
        auth(&gw, &bearer(&sign(Algorithm::RS256, Some("rsa-1"), &c))),
        AuthOutcome::Invalid(AuthError::InvalidConsumerName)
    );
    c.as_object_mut().unwrap().remove("sub");
    assert_eq!(jwt_error(&gw, &sign(Algorithm::RS256, Some("rsa-1"), &c)), JwtError::MissingClaim("sub".into()));

    let open = build(
        json!({}),
        json!({"allow_unlisted_consumers": true, "jwt": {"leeway_secs": 5, "consumer_claim": "email",
            "allow_any_issuer": true, "allow_any_audience": true,
            "keys": [{"algorithm": "ES256", "public_key_pem": FIXTURES.text("ec256_public.pem")}]}}),
    )
    .unwrap();
    let token = sign(Algorithm::ES256, None, &json!({"email": "dave@example.com", "exp": NOW + 60}));
    let c = consumer(auth(&open, &bearer(&token)));
    assert_eq!((c.name.as_str(), c.plan.as_deref()), ("dave@example.com", Some("tour")));
    // No JWT verifier and no keys: nothing to authenticate against.
    let closed = build(json!({}), json!(null)).unwrap();
    assert_eq!(auth(&closed, &bearer(&token)), AuthOutcome::Invalid(AuthError::UnsupportedCredential));
}

// ---------------------------------------------------------------- trusted identity, 403

#[test]
fn trusted_identities_from_an_earlier_filter() {
    let gw = build(
        json!({"bob": {"plan": "paid"}, "alice": {"api_keys": [hex(&digest("sk-demo-alice"))]}}),
        json!({"trusted": {"metadata": ["envoy.filters.http.jwt_authn", "payload", "sub"], "plan_header": "x-plan"}}),
    )
    .unwrap();
    let trusted = gw.trusted().unwrap();
    assert_eq!(
        trusted.consumer,
        llm_gateway::auth::TrustedSource::Metadata(vec![
            "envoy.filters.http.jwt_authn".into(),
            "payload".into(),
            "sub".into()
        ])
    );
    assert_eq!(trusted.plan, Some(llm_gateway::auth::TrustedSource::Header("x-plan".into())));
    let creds = Credentials { trusted_consumer: Some("bob"), ..Default::default() };
    let c = consumer(gw.authenticate(&creds, KeyHeader::Authorization, NOW));
    assert_eq!((c.name.as_str(), c.plan.as_deref(), c.method), ("bob", Some("paid"), Method::Trusted));
    // Item 22: the configured plan of a listed consumer wins over a trusted plan value...
    let creds = Credentials { trusted_consumer: Some("bob"), trusted_plan: Some("small"), ..Default::default() };
    assert_eq!(consumer(gw.authenticate(&creds, KeyHeader::Authorization, NOW)).plan.as_deref(), Some("paid"));
    // ...which only chooses the plan of a consumer without one.
    let creds = Credentials { trusted_consumer: Some("alice"), trusted_plan: Some("small"), ..Default::default() };
    assert_eq!(consumer(gw.authenticate(&creds, KeyHeader::Authorization, NOW)).plan.as_deref(), Some("small"));
    // Absent trusted value: API keys still work.
    let creds = Credentials { authorization: Some("Bearer sk-demo-alice"), ..Default::default() };
    assert_eq!(consumer(gw.authenticate(&creds, KeyHeader::Authorization, NOW)).name, "alice");
    // Trusted values are ignored unless configured.
    let plain = gateway();
    let creds = Credentials { trusted_consumer: Some("bob"), ..Default::default() };
    assert_eq!(plain.authenticate(&creds, KeyHeader::Authorization, NOW), AuthOutcome::Missing);
}

#[test]
fn models_outside_the_consumer_or_plan_list_are_403() {
    let gw = gateway();
    let alice = consumer(auth(&gw, "Bearer sk-demo-alice"));
    assert!(gw.check_model(&alice, "gpt-4o-mini").is_ok());
    let denied = gw.check_model(&alice, "gpt-4o").unwrap_err();
    assert_eq!(denied.status(), 403);
    assert_eq!(denied.to_string(), "Consumer \"alice\" is not allowed to use model `gpt-4o`.");
    // carol on plan "small" (from a token; she has no configured plan): the plan's list applies.
    let mut c = claims("carol");
    c["plan"] = json!("small");
    let bob = consumer(auth(&gw, &bearer(&sign(Algorithm::RS256, Some("rsa-1"), &c))));
    assert!(gw.check_model(&bob, "gpt-4o").is_ok());
    assert!(gw.check_model(&bob, "claude-sonnet-4-5").is_err());
    let demo = consumer(auth(&gw, "Bearer sk-demo"));
    assert!(gw.check_model(&demo, "anything").is_ok());
}

// ---------------------------------------------------------------- item 23: JWT sources and plans

#[test]
fn jwt_issuers_and_audiences_are_required_unless_explicitly_open() {
    let key = json!([{"algorithm": "RS256", "public_key_pem": FIXTURES.text("rsa_public.pem")}]);
    let cases = [
        (
            json!({"leeway_secs": 0, "audiences": ["a"], "keys": key}),
            "auth.jwt.issuers: list the accepted `iss` values (or set `allow_any_issuer: true` to accept any)",
        ),
        (
            json!({"leeway_secs": 0, "issuers": ["i"], "keys": key}),
            "auth.jwt.audiences: list the accepted `aud` values (or set `allow_any_audience: true` to accept any)",
        ),
        (
            json!({"leeway_secs": 0, "issuers": ["i"], "audiences": ["a"], "allow_any_audience": true, "keys": key}),
            "auth.jwt.allow_any_audience: give either `audiences` or `allow_any_audience`, not both",
        ),
        (
            json!({"leeway_secs": 0, "issuers": [""], "audiences": ["a"], "keys": key}),
            "auth.jwt.issuers[0]: must not be empty",
        ),
        (
            json!({"leeway_secs": 0, "issuers": ["i"], "audiences": ["a"], "plan_claim_overrides": true, "keys": key}),
            "auth.jwt.plan_claim_overrides: needs `plan_claim`",
        ),
    ];
    for (jwt, expected) in cases {
        assert_eq!(build(json!({}), json!({"jwt": jwt})).err().unwrap(), expected);
    }
    // Explicitly open: a token without iss and aud verifies.
    let open = build(
        json!({"bob": {}}),
        json!({"jwt": {"leeway_secs": 0, "allow_any_issuer": true, "allow_any_audience": true, "keys": key}}),
    )
    .unwrap();
    let token = sign(Algorithm::RS256, None, &json!({"sub": "bob", "exp": NOW + 60}));
    assert_eq!(consumer(auth(&open, &bearer(&token))).name, "bob");
    // Required: the same token is refused by the default gateway for its missing iss.
    assert_eq!(jwt_error(&gateway(), &token), JwtError::WrongIssuer);
}

#[test]
fn a_jwt_subject_never_inherits_an_api_key_consumer() {
    for allow_unlisted in [false, true] {
        let gw = build(
            json!({
                "alice": {"api_keys": [hex(&digest("sk-alice"))], "plan": "small"},
                "dave": {"api_keys": [hex(&digest("sk-dave"))], "plan": "paid", "jwt_subjects": ["dave@idp"]},
                "bob": {"plan": "paid"}
            }),
            json!({"allow_unlisted_consumers": allow_unlisted, "jwt": jwt_section()}),
        )
        .unwrap();
        // The token's `sub` is alice's name, but alice is an API-key consumer: refused, so the
        // token cannot spend (or read) alice's budgets, whether unlisted identities are allowed.
        assert_eq!(
            auth(&gw, &bearer(&sign(Algorithm::RS256, Some("rsa-1"), &claims("alice")))),
            AuthOutcome::Invalid(AuthError::UnknownConsumer("alice".into()))
        );
        // dave accepts the subject "dave@idp" (and only that one).
        let c = consumer(auth(&gw, &bearer(&sign(Algorithm::RS256, Some("rsa-1"), &claims("dave@idp")))));
        assert_eq!((c.name.as_str(), c.plan.as_deref(), c.method), ("dave", Some("paid"), Method::Jwt));
        assert_eq!(
            auth(&gw, &bearer(&sign(Algorithm::RS256, Some("rsa-1"), &claims("dave")))),
            AuthOutcome::Invalid(AuthError::UnknownConsumer("dave".into()))
        );
        // A consumer without API keys is a token consumer: its name is its subject.
        assert_eq!(consumer(auth(&gw, &bearer(&sign(Algorithm::RS256, Some("rsa-1"), &claims("bob"))))).name, "bob");
        // The API keys still identify alice.
        assert_eq!(consumer(auth(&gw, "Bearer sk-alice")).method, Method::ApiKey);
    }
    let errors = [
        (json!({"x": {"jwt_subjects": ["a;b"]}}),
         "consumers[\"x\"].jwt_subjects[0]: \"a;b\" is not a usable identity (1-128 printable ASCII characters, no ';', '=' or '\"')"),
        (json!({"x": {"jwt_subjects": ["s"]}, "y": {"jwt_subjects": ["s"]}}),
         "consumers[\"y\"].jwt_subjects[0]: \"s\" is already a JWT subject of a consumer"),
        (json!({"x": {"jwt_subjects": ["y"]}, "y": {}}), "consumers[\"x\"].jwt_subjects[0]: \"y\" is the name of another consumer"),
    ];
    for (consumers, expected) in errors {
        assert_eq!(build(consumers, json!(null)).err().unwrap(), expected);
    }
}

#[test]
fn the_plan_claim_overrides_a_configured_plan_only_when_allowed() {
    let mut c = claims("bob");
    c["plan"] = json!("small");
    let token = bearer(&sign(Algorithm::RS256, Some("rsa-1"), &c));
    // Default: bob's configured plan wins, whatever the token says (even an unknown plan).
    assert_eq!(consumer(auth(&gateway(), &token)).plan.as_deref(), Some("paid"));
    c["plan"] = json!("platinum");
    let unknown = bearer(&sign(Algorithm::RS256, Some("rsa-1"), &c));
    assert_eq!(consumer(auth(&gateway(), &unknown)).plan.as_deref(), Some("paid"));
    // Opted in: the claim replaces it, and must name a plan.
    let open = gateway_with(json!({"plan_claim_overrides": true}));
    assert_eq!(consumer(auth(&open, &token)).plan.as_deref(), Some("small"));
    assert_eq!(auth(&open, &unknown), AuthOutcome::Invalid(AuthError::UnknownPlan("platinum".into())));
}

// ---------------------------------------------------------------- item 22: trusted plans and headers

#[test]
fn a_trusted_plan_overrides_a_configured_plan_only_when_allowed() {
    let consumers = json!({"bob": {"plan": "paid"}});
    let gw = build(
        consumers.clone(),
        json!({"trusted": {"metadata": ["envoy.filters.http.jwt_authn", "payload", "sub"], "plan_header": "x-plan",
                           "plan_overrides": true}}),
    )
    .unwrap();
    let creds = Credentials { trusted_consumer: Some("bob"), trusted_plan: Some("small"), ..Default::default() };
    assert_eq!(consumer(gw.authenticate(&creds, KeyHeader::Authorization, NOW)).plan.as_deref(), Some("small"));
    assert_eq!(
        build(consumers, json!({"trusted": {"header": "x-consumer", "plan_overrides": true}})).err().unwrap(),
        "auth.trusted.plan_overrides: needs `plan_header` or `plan_metadata`"
    );
}

#[test]
fn trusted_headers_never_reach_the_provider() {
    use llm_gateway::engine::{Gateway, HeaderOp, RequestAction, RequestHead};
    let config = r#"{
      "providers": {"oa": {"kind": "openai", "cluster": "c", "auth": {"type": "bearer", "env": "KEY"}}},
      "models": {"gpt": {"provider": "oa", "model": "gpt-4o-mini"}},
      "consumers": {"bob": {"plan": "paid"}},
      "plans": {"paid": {}, "small": {}},
      "auth": {"trusted": {"header": "X-Consumer", "plan_header": "x-plan"}}
    }"#;
    let gw = Gateway::from_json(config.as_bytes(), &|_| Some("sk-up".to_string())).unwrap();
    let head = RequestHead {
        method: "POST",
        path: "/v1/chat/completions",
        body_model: Some("gpt"),
        trusted_consumer: Some("bob"),
        trusted_plan: Some("small"),
        ..RequestHead::default()
    };
    let (exchange, action) = gw.on_request_headers(&head, 0, 1_000);
    let RequestAction::Forward(ops) = action else { panic!("refused: {action:?}") };
    for header in ["x-consumer", "x-plan"] {
        assert!(ops.contains(&HeaderOp::Remove(header.to_string())), "{header} is removed: {ops:?}");
    }
    assert_eq!(exchange.route_fields()[0], ("llm_consumer", Some("bob")));
}

// ---------------------------------------------------------------- item 8: GET /v1/models

fn models_gateway(access: bool) -> llm_gateway::engine::Gateway {
    let access = if access {
        format!(
            r#", "consumers": {{"alice": {{"api_keys": ["{}"], "models": ["gpt-latest"]}},
                               "demo": {{"api_keys": ["{}"], "plan": "small"}}}},
               "plans": {{"small": {{"models": ["gpt", "claude"]}}}}"#,
            hex(&digest("sk-alice")),
            hex(&digest("sk-demo"))
        )
    } else {
        String::new()
    };
    let config = format!(
        r#"{{"providers": {{"oa": {{"kind": "openai", "cluster": "c", "auth": {{"type": "bearer", "env": "KEY"}}}}}},
            "models": {{"gpt": {{"provider": "oa", "model": "gpt-4o", "aliases": ["gpt-latest"]}},
                       "claude": {{"provider": "oa", "model": "c"}},
                       "mini": {{"provider": "oa", "model": "gpt-4o-mini"}}}}{access}}}"#
    );
    llm_gateway::engine::Gateway::from_json(config.as_bytes(), &|_| Some("sk-up".to_string())).unwrap()
}

/// (status, body) of `GET /v1/models` with these credential headers.
fn list_models(
    gw: &llm_gateway::engine::Gateway,
    authorization: Option<&str>,
    x_api_key: Option<&str>,
) -> (u16, Value) {
    use llm_gateway::engine::{RequestAction, RequestHead};
    let head = RequestHead { method: "GET", path: "/v1/models", authorization, x_api_key, ..RequestHead::default() };
    match gw.on_request_headers(&head, 0, NOW * 1000) {
        (_, RequestAction::Reply(reply)) => (reply.status, serde_json::from_slice(&reply.body).unwrap()),
        (_, RequestAction::Forward(ops)) => panic!("GET /v1/models must be answered locally, got {ops:?}"),
    }
}

fn ids(list: &Value) -> Vec<&str> {
    list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect()
}

#[test]
fn the_model_list_needs_a_credential_and_shows_only_allowed_models() {
    let gw = models_gateway(true);
    // No credential, or a wrong one: 401 in OpenAI's shape (bearer) or Anthropic's (x-api-key).
    let (status, body) = list_models(&gw, None, None);
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_api_key")));
    let (status, body) = list_models(&gw, Some("Bearer sk-wrong"), None);
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_api_key")));
    let (status, body) = list_models(&gw, None, Some("sk-wrong"));
    assert_eq!(status, 401);
    assert_eq!((body["type"].as_str(), body["error"]["type"].as_str()), (Some("error"), Some("authentication_error")));
    // alice may use "gpt" only (named by its alias): the model and its alias.
    let (status, body) = list_models(&gw, Some("Bearer sk-alice"), None);
    assert_eq!((status, ids(&body)), (200, vec!["gpt", "gpt-latest"]));
    assert_eq!(body["object"], "list");
    // demo's plan allows gpt and claude; as an Anthropic client, in Anthropic's list shape.
    let (status, body) = list_models(&gw, None, Some("sk-demo"));
    assert_eq!((status, ids(&body)), (200, vec!["claude", "gpt", "gpt-latest"]));
    assert_eq!((body["has_more"].as_bool(), body["first_id"].as_str()), (Some(false), Some("claude")));
    assert_eq!(body["data"][0]["type"], "model");
    assert!(body["data"][0]["created_at"].as_str().unwrap().ends_with('Z'));
    // An open gateway lists everything.
    let (status, body) = list_models(&models_gateway(false), None, None);
    assert_eq!((status, ids(&body)), (200, vec!["claude", "gpt", "gpt-latest", "mini"]));
}

#[test]
fn the_gateway_answers_refusals_with_the_auth_modules_status_code_and_header() {
    use llm_gateway::auth::{Forbidden, FORBIDDEN, UNAUTHORIZED, WWW_AUTHENTICATE};
    use llm_gateway::engine::{RequestAction, RequestHead};
    let gw = models_gateway(true);
    let reply = |authorization, model| {
        let head = RequestHead {
            method: "POST",
            path: "/v1/chat/completions",
            body_model: Some(model),
            authorization,
            ..RequestHead::default()
        };
        match gw.on_request_headers(&head, 0, NOW * 1000) {
            (_, RequestAction::Reply(reply)) => reply,
            (_, RequestAction::Forward(ops)) => panic!("must be refused, got {ops:?}"),
        }
    };
    let (missing, log) = common::logged(|| reply(None, "gpt"));
    assert_eq!(
        log,
        ["DEBUG refused with 401 (unauthorized): You didn't provide an API key. Send it as \
                      `Authorization: Bearer <key>` or `x-api-key: <key>`."]
    );
    assert_eq!(Some(missing.status), AuthOutcome::Missing.status());
    assert_eq!(missing.status, UNAUTHORIZED);
    let header = missing.headers.iter().find(|(name, _)| name == "www-authenticate").map(|(_, v)| v.as_str());
    assert_eq!(header, Some(WWW_AUTHENTICATE));
    let wrong = reply(Some("Bearer sk-wrong"), "gpt");
    assert_eq!(Some(wrong.status), AuthOutcome::Invalid(AuthError::UnknownApiKey).status());
    // alice may use "gpt" only.
    let denied = reply(Some("Bearer sk-alice"), "claude");
    assert_eq!(denied.status, FORBIDDEN);
    let body: Value = serde_json::from_slice(&denied.body).unwrap();
    assert_eq!(body["error"]["code"], Forbidden::CODE);
}
