//! AWS Signature Version 4 (header form), pure: request parts, credentials and the time in,
//! headers out. No clock, no I/O. HMAC-SHA256 is built on `sha2` here (RFC 2104, 20 lines)
//! rather than pulling in the `hmac` crate.
//!
//! The canonical request is
//!
//! ```text
//! METHOD \n CanonicalURI \n CanonicalQuery \n CanonicalHeaders \n \n SignedHeaders \n PayloadHash
//! ```
//!
//! **Canonical URI for non-S3 services (Bedrock included):** the path *as sent on the wire*
//! (each segment already percent-encoded once, see [`super::upstream_path`]) is percent-
//! encoded *again*, segment by segment. A model ARN `arn:aws:bedrock:...:inference-profile/x`
//! travels as `arn%3Aaws%3A...%2Fx` and is signed as `arn%253Aaws%253A...%252Fx`. This is
//! what botocore does (`quote(path, safe='/~')` on the already-encoded path); signing the
//! once-encoded path is the classic `SignatureDoesNotMatch` bug. S3 is the exception (it signs
//! the path once-encoded) and is not a target of this module.
//!
//! **Payload hash:** the last line is the hex SHA-256 of the body. The gateway decides request
//! headers before it has the body (DESIGN.md §5), so [`sign`] takes the hash as a parameter:
//! the caller passes `sha256_hex(body)` when it has the body, or [`UNSIGNED_PAYLOAD`]. Only
//! services whose operations are modelled as unsigned-payload (S3, Lex `PostContent`, ...)
//! accept the latter; Bedrock Runtime's model (botocore `bedrock-runtime` 2023-09-30) marks
//! none, so other services compute the hash of the body they received and a signature made
//! over `UNSIGNED-PAYLOAD` does not match. See the bedrock module docs for the alternatives.

use crate::llm::percent;
use sha2::{Digest, Sha256};

/// The literal payload hash for unsigned payloads (`x-amz-content-sha256: UNSIGNED-PAYLOAD`).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// SHA-256 of the empty string.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS.get(usize::from(b >> 4)).copied().unwrap_or(b'0')));
        s.push(char::from(DIGITS.get(usize::from(b & 0x0f)).copied().unwrap_or(b'0')));
    }
    s
}

/// Hex SHA-256 of `data` (the payload hash).
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        let digest = Sha256::digest(key);
        for (dst, src) in k.iter_mut().zip(digest.iter()) {
            *dst = *src;
        }
    } else {
        for (dst, src) in k.iter_mut().zip(key.iter()) {
            *dst = *src;
        }
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(data);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

/// The canonical URI of a non-S3 request: every segment of the wire path (already encoded
/// once) is URI-encoded again. An empty path is `/`. No dot-segment normalisation (the
/// gateway builds its own paths).
pub fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    percent::encode_path(path)
}

/// The canonical query string: parameters decoded, re-encoded, sorted by name then value.
/// `query` is the raw query (no `?`); a parameter without `=` has an empty value.
pub fn canonical_query(query: &str) -> String {
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent::encode_segment(&percent::decode(k)), percent::encode_segment(&percent::decode(v)))
        })
        .collect();
    params.sort();
    let parts: Vec<String> = params.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join("&")
}

fn canonical_header_value(v: &str) -> String {
    v.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

/// Canonical headers block (each `name:value\n`) and the signed-headers list. Names are
/// lower-cased and sorted; values trimmed with inner whitespace runs collapsed; repeated
/// names have their values joined with `,` in the order given.
pub fn canonical_headers(headers: &[(&str, &str)]) -> (String, String) {
    let mut merged: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let name = name.trim().to_ascii_lowercase();
        let value = canonical_header_value(value);
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push(',');
                v.push_str(&value);
            }
            None => merged.push((name, value)),
        }
    }
    merged.sort_by(|a, b| a.0.cmp(&b.0));
    let mut block = String::new();
    for (n, v) in &merged {
        block.push_str(n);
        block.push(':');
        block.push_str(v);
        block.push('\n');
    }
    let signed: Vec<&str> = merged.iter().map(|(n, _)| n.as_str()).collect();
    (block, signed.join(";"))
}

/// What gets signed, exactly.
#[derive(Debug, Clone, Copy)]
pub struct CanonicalInput<'a> {
    pub method: &'a str,
    /// The path as sent on the wire (segments already percent-encoded once).
    pub path: &'a str,
    /// The raw query string without `?` (`""` when none).
    pub query: &'a str,
    /// Every header to sign, `host` and `x-amz-date` included.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body, or [`UNSIGNED_PAYLOAD`].
    pub payload_hash: &'a str,
}

/// Every intermediate of a signature, for tests and debugging (never log `signature`
/// together with the request it authorises in production: it is a bearer credential for
/// about 5 minutes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signed_headers: String,
    pub signature: String,
    pub authorization: String,
}

/// The scope date `YYYYMMDD` of an `x-amz-date` value `YYYYMMDDTHHMMSSZ`.
fn scope_date(amz_date: &str) -> &str {
    amz_date.get(..8).unwrap_or(amz_date)
}

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret_key: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret_key}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// Signs exactly the given input (the test-suite entry point; [`sign`] adds the `x-amz-*`
/// headers itself).
pub fn sign_canonical(
    input: &CanonicalInput<'_>,
    access_key: &str,
    secret_key: &str,
    region: &str,
    service: &str,
    amz_date: &str,
) -> Signature {
    let (headers_block, signed_headers) = canonical_headers(input.headers);
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        input.method.to_ascii_uppercase(),
        canonical_uri(input.path),
        canonical_query(input.query),
        headers_block,
        signed_headers,
        input.payload_hash
    );
    let date = scope_date(amz_date);
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()));
    let key = signing_key(secret_key, date, region, service);
    let signature = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));
    let authorization =
        format!("{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={signed_headers}, Signature={signature}");
    Signature { canonical_request, string_to_sign, signed_headers, signature, authorization }
}

/// AWS credentials. `Debug` hides the secret and the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// One request to sign with [`sign`].
#[derive(Debug, Clone, Copy)]
pub struct SignRequest<'a> {
    pub method: &'a str,
    /// The `host` (`:authority`) the request goes to, e.g. `bedrock-runtime.us-east-1.amazonaws.com`.
    pub host: &'a str,
    /// The path as sent on the wire (from [`super::upstream_path`]).
    pub path: &'a str,
    /// Raw query string without `?`.
    pub query: &'a str,
    /// Further headers to sign, e.g. `("content-type", "application/json")`. Do not list
    /// `host`, `x-amz-date`, `x-amz-content-sha256` or `x-amz-security-token`: [`sign`] adds them.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body (see [`sha256_hex`]) or [`UNSIGNED_PAYLOAD`].
    pub payload_hash: &'a str,
    pub region: &'a str,
    /// The signing name: `bedrock` for Bedrock Runtime.
    pub service: &'a str,
    /// `YYYYMMDDTHHMMSSZ` (see [`amz_date`]).
    pub amz_date: &'a str,
}

/// Signs a request and returns the headers to set on it: `authorization`, `x-amz-date`,
/// `x-amz-content-sha256` and, with a session token, `x-amz-security-token` (all signed,
/// together with `host` and `req.headers`).
pub fn sign(req: &SignRequest<'_>, creds: &Credentials) -> Vec<(String, String)> {
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(req.headers.len() + 4);
    headers.push(("host", req.host));
    headers.push(("x-amz-date", req.amz_date));
    headers.push(("x-amz-content-sha256", req.payload_hash));
    if let Some(token) = &creds.session_token {
        headers.push(("x-amz-security-token", token));
    }
    for (name, value) in req.headers {
        let lower = name.to_ascii_lowercase();
        if !matches!(lower.as_str(), "host" | "x-amz-date" | "x-amz-content-sha256" | "x-amz-security-token") {
            headers.push((name, value));
        }
    }
    let input = CanonicalInput {
        method: req.method,
        path: req.path,
        query: req.query,
        headers: &headers,
        payload_hash: req.payload_hash,
    };
    let sig = sign_canonical(&input, &creds.access_key, &creds.secret_key, req.region, req.service, req.amz_date);
    let mut out = vec![
        ("authorization".to_owned(), sig.authorization),
        ("x-amz-date".to_owned(), req.amz_date.to_owned()),
        ("x-amz-content-sha256".to_owned(), req.payload_hash.to_owned()),
    ];
    if let Some(token) = &creds.session_token {
        out.push(("x-amz-security-token".to_owned(), token.clone()));
    }
    out
}

/// `x-amz-date` (`YYYYMMDDTHHMMSSZ`, UTC) of a Unix time in seconds.
pub fn amz_date(unix_secs: u64) -> String {
    let t = crate::calendar::UtcTime::from_unix(unix_secs);
    format!("{:04}{:02}{:02}T{:02}{:02}{:02}Z", t.year, t.month, t.day, t.hour, t.minute, t.second)
}
