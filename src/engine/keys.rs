//! Key pools: several credentials for one provider, spread across requests. A key that got
//! 429 cools down for the provider's `Retry-After`; one that got 401/403 is taken out. The
//! state lives in host shared data, so every worker skips the same keys.
//!
//! A key's state is stored under a hash of its value: a key rotated in the environment
//! starts afresh, providers configured with the same key share its state, and the shared
//! store never holds a credential.

use super::exchange::Exchange;
use super::{Gateway, HeaderOp};
use crate::config::{Provider, Secret, UpstreamAuth};
use crate::quota::Store;

/// Cool-down when a 429 carries no `Retry-After` in seconds (an HTTP date, or none).
const DEFAULT_COOLDOWN_SECS: u64 = 5;
/// A provider's `Retry-After` is trusted up to this.
const MAX_COOLDOWN_SECS: u64 = 3600;
/// The stored state of a key taken out (401/403).
const OUT: &[u8] = b"out";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyState {
    Available,
    CoolingUntil(u64),
    Out,
}

/// FNV-1a: a stable name for a key's state, not a secret's protection (the store is the
/// host's own memory).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// By the key alone: providers configured with the same key share its rate limit.
fn state_key(key: &Secret) -> String {
    format!("llm_key;{:016x}", fnv1a(key.expose()))
}

fn read_state(store: &dyn Store, name: &str, now_ms: u64) -> KeyState {
    let Some((value, _)) = store.get(name) else { return KeyState::Available };
    if value == OUT {
        return KeyState::Out;
    }
    match std::str::from_utf8(&value).ok().and_then(|v| v.parse::<u64>().ok()) {
        Some(until) if until > now_ms => KeyState::CoolingUntil(until),
        _ => KeyState::Available,
    }
}

/// The key a request uses: from a random start, the first available one; when every key
/// cools down, the one that is free soonest; when all are out, the first one tried (the
/// provider's refusal then reaches the client as the gateway's 502).
pub fn choose(provider: &Provider, roll: u64, now_ms: u64, store: &dyn Store) -> Option<usize> {
    let count = provider.key_pool.len();
    if count == 0 {
        return None;
    }
    let start = usize::try_from(roll % count as u64).unwrap_or(0);
    let order = (0..count).map(|i| (start + i) % count);
    let mut soonest: Option<(u64, usize)> = None;
    for index in order {
        let key = provider.key_pool.get(index)?;
        match read_state(store, &state_key(key), now_ms) {
            KeyState::Available => return Some(index),
            KeyState::CoolingUntil(until) if soonest.is_none_or(|(s, _)| until < s) => soonest = Some((until, index)),
            _ => {}
        }
    }
    let chosen = soonest.map_or(start, |(_, index)| index);
    match soonest {
        Some((until, _)) => log::debug!(
            "provider `{}`: every key of the pool cools down; key #{} is free soonest (in {} ms)",
            provider.name,
            chosen + 1,
            until.saturating_sub(now_ms)
        ),
        None => log::debug!("provider `{}`: every key of the pool is out; trying key #{}", provider.name, chosen + 1),
    }
    Some(chosen)
}

/// Seconds from a `Retry-After` value in seconds (an HTTP date gets the default).
fn cooldown_secs(retry_after: Option<&str>) -> u64 {
    retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_COOLDOWN_SECS, |secs| secs.clamp(1, MAX_COOLDOWN_SECS))
}

/// Records what the provider said to key `index`; returns a line for the host log when the
/// key was taken out.
pub fn report(
    provider: &Provider,
    index: usize,
    status: u16,
    retry_after: Option<&str>,
    now_ms: u64,
    store: &dyn Store,
) -> Option<String> {
    let key = provider.key_pool.get(index)?;
    let name = state_key(key);
    match status {
        429 => {
            let secs = cooldown_secs(retry_after);
            let until = now_ms.saturating_add(secs.saturating_mul(1000));
            // The latest cool-down wins; a lost race only shortens or lengthens one wait.
            let _ = store.set(&name, until.to_string().as_bytes(), None);
            log::debug!("provider `{}`: key #{} got 429; it cools down for {secs} s", provider.name, index + 1);
            None
        }
        401 | 403 => {
            let _ = store.set(&name, OUT, None);
            Some(format!(
                "llm-gateway: provider `{}` refused key #{} of its pool (HTTP {status}); it is taken out until Envoy \
                 restarts or the key changes",
                provider.name,
                index + 1
            ))
        }
        _ => None,
    }
}

impl Gateway {
    fn pooled_provider(&self, exchange: &Exchange) -> Option<&Provider> {
        let name = exchange.provider_name()?;
        self.config.providers.iter().find(|p| p.name == name && !p.key_pool.is_empty())
    }

    /// For a provider with a key pool: the credential header of the key this request (or
    /// attempt) uses, applied after the exchange's own header changes.
    pub fn choose_key(&self, exchange: &mut Exchange, roll: u64, now_ms: u64, store: &dyn Store) -> Option<HeaderOp> {
        let provider = self.pooled_provider(exchange)?;
        let UpstreamAuth::Header { name, .. } = &provider.auth else { return None };
        let index = choose(provider, roll, now_ms, store)?;
        let value = provider.key_pool.get(index)?.expose().to_string();
        exchange.use_key(index);
        Some(HeaderOp::Set(name.clone(), value))
    }

    /// After a 429: whether this exchange's target has no key to send to now (its only key
    /// got it, or every key of its pool cools down or is out). An attempt then shows Envoy
    /// a 503 in its place, which outlier detection counts (it counts no 429): a target
    /// configured with `outlier_detection` is ejected, and first attempts skip it.
    pub fn no_key_left(&self, exchange: &Exchange, now_ms: u64, store: &dyn Store) -> bool {
        let Some(provider) = self.pooled_provider(exchange) else { return true };
        provider.key_pool.iter().all(|key| read_state(store, &state_key(key), now_ms) != KeyState::Available)
    }

    /// The provider's status for the key this exchange used (see [`report`]).
    pub fn key_outcome(
        &self,
        exchange: &Exchange,
        status: u16,
        retry_after: Option<&str>,
        now_ms: u64,
        store: &dyn Store,
    ) -> Option<String> {
        let provider = self.pooled_provider(exchange)?;
        report(provider, exchange.key_index()?, status, retry_after, now_ms, store)
    }
}
