//! Rate-limit headers in OpenAI's style, from limit statuses.
//!
//! - `x-ratelimit-limit-tokens`, `x-ratelimit-remaining-tokens`, `x-ratelimit-reset-tokens`
//!   from the token limit (input, output or total) with the least remaining;
//! - `x-ratelimit-{limit,remaining,reset}-requests` likewise from request-count limits;
//! - resets as Go durations (`6m0s`, `1s`, `26h0m0s`), as OpenAI sends them.
//!
//! Money limits have no OpenAI header; a 429 for one carries `Retry-After` and its message.

use super::budget::{LimitStatus, Metric};

pub fn rate_limit_headers(statuses: &[LimitStatus]) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    let tightest = |pick: fn(Metric) -> bool| {
        statuses.iter().filter(|s| pick(s.metric)).min_by_key(|s| (s.remaining, std::cmp::Reverse(s.reset_secs)))
    };
    for (suffix, status) in [("tokens", tightest(Metric::is_tokens)), ("requests", tightest(|m| m == Metric::Requests))]
    {
        if let Some(s) = status {
            headers.push((format!("x-ratelimit-limit-{suffix}"), s.limit.to_string()));
            headers.push((format!("x-ratelimit-remaining-{suffix}"), s.remaining.to_string()));
            headers.push((format!("x-ratelimit-reset-{suffix}"), go_duration(s.reset_secs)));
        }
    }
    headers
}

/// Seconds as a Go duration string: `0s`, `59s`, `1m0s`, `1h0m0s`, `744h0m0s`.
pub fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}
