//! Tokens this VM verified before, by their exact bytes. A client sends the same JWT on
//! every request until it expires; verifying it again (base64, two JSON parses, the
//! signature) is the largest part of a JWT request's cost in the module (about 17 us of
//! HS256 in V8, measured with an in-module profiler). A token seen again skips that work;
//! only its time claims, the one part of the verdict that changes, are checked again.
//!
//! Safe because the verdict on a token is a function of its bytes and of the verifier's
//! configuration: the cache lives in the verifier, which a new configuration replaces.
//! Only accepted tokens are kept (a refused one is verified again each time: no client can
//! fill the cache with garbage), matched on their whole bytes (no hash collision can pass
//! one token for another), and the cache is bounded in entries and bytes.

use super::jwt::VerifiedClaims;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// At most this many tokens per VM.
pub const MAX_ENTRIES: usize = 1024;
/// At most this many bytes of tokens per VM (the tokens themselves are the keys).
pub const MAX_BYTES: usize = 512 * 1024;

/// An accepted token's verdict and the time claims to check again on each use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub claims: VerifiedClaims,
    pub exp: u64,
    pub nbf: Option<u64>,
}

/// See the module doc. (A `Mutex` only so the gateway stays `Sync` for native tests and
/// fuzzing; a VM is single-threaded and never waits on it.)
#[derive(Debug, Default)]
pub struct VerifiedCache {
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    by_token: HashMap<String, Accepted>,
    bytes: usize,
}

impl VerifiedCache {
    fn entries(&self) -> MutexGuard<'_, Entries> {
        // Nothing under the lock can panic; if something did, the entries are still whole.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The verdict kept for exactly this token, if any.
    pub fn get(&self, token: &str) -> Option<Accepted> {
        self.entries().by_token.get(token).cloned()
    }

    /// Keeps an accepted token. When full, the tokens expired by `now_secs` go first; if
    /// that is not enough, all of them (the next uses verify again and refill it).
    pub fn insert(&self, token: &str, accepted: Accepted, now_secs: u64) {
        let mut entries = self.entries();
        if entries.by_token.contains_key(token) {
            return;
        }
        if entries.by_token.len() >= MAX_ENTRIES || entries.bytes + token.len() > MAX_BYTES {
            entries.by_token.retain(|_, a| a.exp > now_secs);
            entries.bytes = entries.by_token.keys().map(String::len).sum();
        }
        if entries.by_token.len() >= MAX_ENTRIES || entries.bytes + token.len() > MAX_BYTES {
            entries.by_token.clear();
            entries.bytes = 0;
        }
        if token.len() > MAX_BYTES {
            return;
        }
        entries.bytes += token.len();
        entries.by_token.insert(token.to_string(), accepted);
    }

    /// Tokens kept.
    pub fn len(&self) -> usize {
        self.entries().by_token.len()
    }

    /// Whether no token is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(exp: u64) -> Accepted {
        Accepted { claims: VerifiedClaims { consumer: "c".into(), plan: None }, exp, nbf: None }
    }

    #[test]
    fn a_token_is_found_by_its_exact_bytes_only() {
        let cache = VerifiedCache::default();
        cache.insert("a.b.c", accepted(10), 0);
        assert_eq!(cache.get("a.b.c"), Some(accepted(10)));
        assert_eq!(cache.get("a.b.d"), None);
        assert_eq!(cache.get("a.b.c "), None);
    }

    #[test]
    fn a_full_cache_drops_expired_tokens_first_then_everything() {
        let cache = VerifiedCache::default();
        for i in 0..MAX_ENTRIES {
            // Half of them expired at time 100.
            cache.insert(&format!("t{i}"), accepted(if i % 2 == 0 { 50 } else { 500 }), 100);
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        cache.insert("new", accepted(500), 100);
        assert_eq!(cache.len(), MAX_ENTRIES / 2 + 1);
        assert!(cache.get("t1").is_some() && cache.get("t0").is_none() && cache.get("new").is_some());
        for i in 0..MAX_ENTRIES {
            cache.insert(&format!("u{i}"), accepted(500), 100);
        }
        assert!(cache.len() <= MAX_ENTRIES);
    }

    #[test]
    fn the_cache_is_bounded_in_bytes() {
        let cache = VerifiedCache::default();
        let big = "x".repeat(100 * 1024);
        for i in 0..20 {
            cache.insert(&format!("{i}{big}"), accepted(500), 100);
            assert!(cache.entries().bytes <= MAX_BYTES);
        }
        assert!(cache.len() <= MAX_BYTES / big.len());
    }
}
