//! API keys: the configuration holds only lowercase hex SHA-256 digests; a presented key is
//! hashed and compared against every digest in constant time.
//!
//! Where the key comes from depends on the client's dialect: OpenAI clients send
//! `Authorization: Bearer <key>`, Anthropic clients `x-api-key: <key>`. The preferred header
//! for the dialect is read first; the other one is the fallback (some SDKs configured for a
//! compatible endpoint send the other form).

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// Longest key accepted (bytes); longer values are refused before hashing.
pub const MAX_KEY_BYTES: usize = 1024;

/// Which header the client's dialect puts its credential in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyHeader {
    /// `Authorization: Bearer <key>` (OpenAI, and most OpenAI-compatible SDKs).
    Authorization,
    /// `x-api-key: <key>` (Anthropic).
    XApiKey,
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let value = authorization.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The credential the client presented: the preferred header's, else the other's.
pub fn presented<'a>(authorization: Option<&'a str>, x_api_key: Option<&'a str>, prefer: KeyHeader) -> Option<&'a str> {
    let from_authorization = authorization.and_then(bearer_token);
    let from_x_api_key = x_api_key.map(str::trim).filter(|k| !k.is_empty());
    match prefer {
        KeyHeader::Authorization => from_authorization.or(from_x_api_key),
        KeyHeader::XApiKey => from_x_api_key.or(from_authorization),
    }
}

/// SHA-256 of a key.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Parses a configured digest: exactly 64 lowercase hex digits.
pub fn parse_digest(hex: &str) -> Result<[u8; 32], String> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 || !bytes.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)) {
        return Err(format!(
            "must be the SHA-256 of the key as 64 lowercase hex digits (e.g. `printf %s \"$KEY\" | sha256sum`), got {} characters",
            bytes.len()
        ));
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let nibble = |b: u8| if b.is_ascii_digit() { b - b'0' } else { b - b'a' + 10 };
        if let [hi, lo] = pair {
            *slot = nibble(*hi) << 4 | nibble(*lo);
        }
    }
    Ok(out)
}

/// Digests of every configured key with the index of the consumer that owns it.
#[derive(Debug, Clone, Default)]
pub struct KeyIndex {
    entries: Vec<([u8; 32], u32)>,
}

impl KeyIndex {
    pub fn push(&mut self, digest: [u8; 32], consumer: u32) {
        self.entries.push((digest, consumer));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a digest is already configured (config validation only; not constant-time).
    pub fn contains(&self, digest: &[u8; 32]) -> bool {
        self.entries.iter().any(|(d, _)| d == digest)
    }

    /// The consumer owning `key`. Every digest is compared, in constant time, whatever
    /// matches: the time taken depends only on the number of keys configured.
    pub fn find(&self, key: &str) -> Option<u32> {
        if key.len() > MAX_KEY_BYTES {
            return None;
        }
        let presented = digest(key);
        let mut found = subtle::Choice::from(0u8);
        let mut owner = 0u32;
        for (candidate, consumer) in &self.entries {
            let hit = candidate.ct_eq(&presented);
            owner.conditional_assign(consumer, hit);
            found |= hit;
        }
        bool::from(found).then_some(owner)
    }
}
