//! Budgets that hold: reserve before the call, settle after it, over a CAS [`Store`].
//!
//! # Protocol
//! Each (consumer, limit) pair has a counter per window, `{window, used, reserved}`, in two
//! alternating slots (`window % 2`) so the store holds a bounded number of keys and a
//! reservation made in window W can still settle against W after the window rolled over.
//!
//! - [`reserve`] adds the request's worst case (estimated input + the output it may produce)
//!   to `reserved` of every applicable limit, each with a CAS loop that re-checks
//!   `used + reserved + need <= amount` on the value it replaces. If any limit refuses,
//!   the ones already taken are given back: the request is admitted on all limits or none.
//!   A concurrent request may see another's reservation that is about to be rolled back and
//!   be refused; that errs on the safe side.
//! - With clamping, a limit that cannot pay for the requested output lowers the output
//!   (never below `min_output_tokens`); limits taken before are trimmed to the final size,
//!   and the caller must put [`Reservation::max_tokens`] into the request body.
//! - [`settle`] moves the reservation from `reserved` to `used` at the actual counts, in the
//!   window it was made in (a window already reused two windows later is left alone: its
//!   budget no longer matters). [`release`] gives the reservation back (request failed).
//!
//! # Overspend bound
//! For every limit and window, at every successful CAS, `used + reserved <= amount` holds
//! for admissions. Settlement replaces each request's reservation `R_i` by its actual
//! charge `U_i` (what was consumed is always charged, even beyond the budget). Hence
//!
//! `spend(window) <= amount + Σ_i max(0, U_i - R_i)` over requests admitted in the window.
//!
//! `U_i <= R_i` when the provider produces at most the reserved output (it honours
//! `max_tokens`: with clamping on the gateway always sets it, so this holds; without
//! clamping only when the client set it) and the prompt has at most the estimated input
//! tokens. So **with clamping on and an input estimate that is an upper bound (e.g.
//! [`super::estimate::upper_bound_tokens`]), concurrent requests can never spend more than
//! the budget.** With the fast estimator the overspend is at most the input under-estimate
//! of the requests in flight, priced at the worst-case input rate. Money limits reserve at
//! the worst-case rates of the price (cache writes, reasoning, long-context tier), so any mix
//! of token kinds stays within the reservation.

use super::money::{Price, TokenCounts};
use super::store::{Store, CREATE_CAS};
use super::window::Window;

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    InputTokens,
    OutputTokens,
    TotalTokens,
    Requests,
    /// Money in micro-USD, priced with the model's [`Price`].
    MicroUsd,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::InputTokens => "input_tokens",
            Metric::OutputTokens => "output_tokens",
            Metric::TotalTokens => "tokens",
            Metric::Requests => "requests",
            Metric::MicroUsd => "usd",
        }
    }

    pub fn is_tokens(self) -> bool {
        matches!(self, Metric::InputTokens | Metric::OutputTokens | Metric::TotalTokens)
    }

    fn depends_on_output(self) -> bool {
        matches!(self, Metric::OutputTokens | Metric::TotalTokens | Metric::MicroUsd)
    }
}

/// One budget: `amount` of `metric` per `window`, optionally only for some models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// Unique among a consumer's limits; part of the store key and of metrics.
    pub name: String,
    pub metric: Metric,
    pub amount: u64,
    pub window: Window,
    /// Public model names this limit applies to; `None`: every model.
    pub models: Option<Vec<String>>,
}

impl Limit {
    pub fn applies_to(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|models| models.iter().any(|m| m == model))
    }
}

/// A limit as seen by one request, with how much of it is left (for headers and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitStatus {
    pub name: String,
    pub metric: Metric,
    pub window: Window,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the window resets.
    pub reset_secs: u64,
}

/// How [`reserve`] sizes a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReserveOptions {
    /// Lower the request's output to what the budgets can pay for.
    pub clamp: bool,
    /// Output reserved when the request sets no maximum (and the cap when clamping).
    pub default_max_output_tokens: u64,
    /// With clamping, refuse rather than allow fewer output tokens than this.
    pub min_output_tokens: u64,
    /// CAS attempts per counter before giving up.
    pub max_attempts: u32,
}

impl Default for ReserveOptions {
    fn default() -> Self {
        ReserveOptions { clamp: true, default_max_output_tokens: 4096, min_output_tokens: 1, max_attempts: 64 }
    }
}

/// What a request is about to consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub input_tokens: u64,
    /// The request's own `max_tokens` (or `max_completion_tokens`, `max_output_tokens`).
    pub max_output_tokens: Option<u64>,
}

/// The admission request.
#[derive(Debug, Clone, Copy)]
pub struct ReserveRequest<'a> {
    pub consumer: &'a str,
    /// The limits that apply (see `Policy::limits_for`).
    pub limits: &'a [&'a Limit],
    /// Needed when a limit counts money.
    pub price: Option<&'a Price>,
    pub estimate: Estimate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The window's budget is used up: retry after `reset_secs`.
    Exhausted,
    /// The request is larger than the whole limit: it never fits, whatever the wait.
    TooLarge,
    /// A money limit applies and the model has no price.
    NoPrice,
    /// The counter stayed contended for `max_attempts` CAS attempts.
    Contention,
}

/// A refused request: which limit, how much is left, when it resets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub limit: LimitStatus,
    /// Every limit looked at, the refusing one included (for the 429's headers).
    pub statuses: Vec<LimitStatus>,
}

impl Rejection {
    pub fn reset_secs(&self) -> u64 {
        self.limit.reset_secs
    }

    /// `Retry-After` and the rate-limit headers for the 429.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![("retry-after".to_string(), self.limit.reset_secs.max(1).to_string())];
        headers.extend(super::headers::rate_limit_headers(&self.statuses));
        headers
    }

    /// A message for the client (no credentials in it).
    pub fn message(&self) -> String {
        let what = match self.limit.metric {
            Metric::MicroUsd => format!("{} USD", super::money::format_micros(self.limit.limit)),
            metric => format!("{} {}", self.limit.limit, metric.as_str().replace('_', " ")),
        };
        match self.reason {
            RejectReason::Exhausted => format!(
                "Rate limit reached for limit '{}' ({what} per {}): retry in {}.",
                self.limit.name,
                self.limit.window.as_str(),
                super::headers::go_duration(self.limit.reset_secs)
            ),
            RejectReason::TooLarge => {
                format!(
                    "Request too large for limit '{}' ({what} per {}).",
                    self.limit.name,
                    self.limit.window.as_str()
                )
            }
            RejectReason::NoPrice => {
                format!("Limit '{}' counts cost, but the model has no price configured.", self.limit.name)
            }
            RejectReason::Contention => format!("Limit '{}' is busy; retry shortly.", self.limit.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Charge {
    limit: Limit,
    key: String,
    window_id: u64,
    reserved: u64,
    /// `used + reserved` right after this reservation.
    consumed_after: u64,
}

/// Budget held for one request until it is settled or released.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a reservation must be settled or released"]
pub struct Reservation {
    consumer: String,
    input_tokens: u64,
    output_tokens: u64,
    set_max_tokens: Option<u64>,
    price: Option<Price>,
    charges: Vec<Charge>,
}

impl Reservation {
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Input tokens reserved (the estimate).
    pub fn input_tokens(&self) -> u64 {
        self.input_tokens
    }

    /// Output tokens reserved.
    pub fn output_tokens(&self) -> u64 {
        self.output_tokens
    }

    /// `Some(n)` when the request body's max-tokens field must be set to `n` (clamping only):
    /// clamping lowered it, or the client sent none and a limit depends on output. Without it
    /// the overspend bound does not hold.
    pub fn max_tokens(&self) -> Option<u64> {
        self.set_max_tokens
    }

    /// The limits held, with what remains after this reservation.
    pub fn statuses(&self, now_secs: u64) -> Vec<LimitStatus> {
        self.charges.iter().map(|c| status(&c.limit, c.consumed_after, now_secs)).collect()
    }

    /// `x-ratelimit-*` headers for the response.
    pub fn headers(&self, now_secs: u64) -> Vec<(String, String)> {
        super::headers::rate_limit_headers(&self.statuses(now_secs))
    }

    /// The counts this reservation assumed (fallback for unknown usage at settlement).
    pub fn reserved_counts(&self) -> TokenCounts {
        TokenCounts { input: self.input_tokens, output: self.output_tokens, ..TokenCounts::default() }
    }

    /// Limit names held (for tests and logs).
    pub fn limit_names(&self) -> Vec<&str> {
        self.charges.iter().map(|c| c.limit.name.as_str()).collect()
    }
}

/// What settlement charged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settlement {
    /// (limit name, metric, amount charged) per limit settled.
    pub charged: Vec<(String, Metric, u64)>,
    /// Cost of the actual counts in micro-USD, when the model has a price.
    pub cost_micros: Option<u64>,
    /// Limits whose window slot was already reused (nothing to settle there).
    pub expired: usize,
    /// Limits that stayed contended (their reservation stays held until the window ends).
    pub failed: usize,
    /// (limit name, what remains of it in this window) for each limit settled, in the
    /// limit's unit (tokens, requests or micro-USD): the budget gauges.
    pub remaining: Vec<(String, u64)>,
}

/// The stored counter of one limit in one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Counter {
    window_id: u64,
    used: u64,
    reserved: u64,
}

const COUNTER_VERSION: u8 = 1;

impl Counter {
    fn encode(&self) -> [u8; 25] {
        let mut out = [0u8; 25];
        let (version, rest) = out.split_at_mut(1);
        version.fill(COUNTER_VERSION);
        let (a, rest) = rest.split_at_mut(8);
        let (b, c) = rest.split_at_mut(8);
        a.copy_from_slice(&self.window_id.to_le_bytes());
        b.copy_from_slice(&self.used.to_le_bytes());
        c.copy_from_slice(&self.reserved.to_le_bytes());
        out
    }

    fn decode(raw: &[u8]) -> Option<Counter> {
        let (&version, rest) = raw.split_first()?;
        if version != COUNTER_VERSION || rest.len() != 24 {
            return None;
        }
        let word = |i: usize| rest.get(i * 8..i * 8 + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes);
        Some(Counter { window_id: word(0)?, used: word(1)?, reserved: word(2)? })
    }

    fn consumed(&self) -> u64 {
        self.used.saturating_add(self.reserved)
    }
}

/// Store key of a limit's counter slot: `llmgw:q:<limit>:<window>:<slot>:<consumer>`.
/// Limit names cannot contain ':', so the consumer name (last) cannot make keys collide.
pub fn counter_key(consumer: &str, limit: &Limit, window_id: u64) -> String {
    format!("llmgw:q:{}:{}:{}:{}", limit.name, limit.window.as_str(), window_id % 2, consumer)
}

/// The counter for `window_id` and the CAS token to replace it with. A missing key, an
/// older window in the slot, or an unreadable value all read as a fresh counter.
fn load(store: &dyn Store, key: &str, window_id: u64) -> (Counter, u32) {
    match store.get(key) {
        None => (Counter { window_id, ..Counter::default() }, CREATE_CAS),
        Some((raw, cas)) => match Counter::decode(&raw) {
            Some(c) if c.window_id == window_id => (c, cas),
            _ => (Counter { window_id, ..Counter::default() }, cas),
        },
    }
}

/// Reads the counter of window `window_id` only if the slot still holds that window.
fn load_existing(store: &dyn Store, key: &str, window_id: u64) -> Option<(Counter, u32)> {
    let (raw, cas) = store.get(key)?;
    Counter::decode(&raw).filter(|c| c.window_id == window_id).map(|c| (c, cas))
}

fn status(limit: &Limit, consumed: u64, now_secs: u64) -> LimitStatus {
    LimitStatus {
        name: limit.name.clone(),
        metric: limit.metric,
        window: limit.window,
        limit: limit.amount,
        remaining: limit.amount.saturating_sub(consumed),
        reset_secs: limit.window.reset_secs(now_secs),
    }
}

/// What a limit reserves for `input` + `output` tokens (`None`: money without a price).
fn reserve_amount(limit: &Limit, input: u64, output: u64, price: Option<&Price>) -> Option<u64> {
    Some(match limit.metric {
        Metric::InputTokens => input,
        Metric::OutputTokens => output,
        Metric::TotalTokens => input.saturating_add(output),
        Metric::Requests => 1,
        Metric::MicroUsd => price?.max_cost(input, output),
    })
}

/// The most output tokens `remaining` of this limit pays for after `input`.
fn affordable_output(limit: &Limit, input: u64, remaining: u64, price: Option<&Price>) -> u64 {
    match limit.metric {
        Metric::OutputTokens => remaining,
        Metric::TotalTokens => remaining.saturating_sub(input),
        Metric::MicroUsd => price.map_or(0, |p| p.max_output_for(input, remaining)),
        Metric::InputTokens | Metric::Requests => u64::MAX,
    }
}

/// What actual usage charges a limit.
fn actual_amount(limit: &Limit, actual: &TokenCounts, price: Option<&Price>, reserved: u64) -> u64 {
    match limit.metric {
        Metric::InputTokens => actual.input,
        Metric::OutputTokens => actual.output,
        Metric::TotalTokens => actual.total(),
        Metric::Requests => 1,
        // Reserved money limits always had a price; keep the reservation otherwise.
        Metric::MicroUsd => price.map_or(reserved, |p| p.cost(actual)),
    }
}

/// Admits a request on every limit in `request.limits`, or on none. See the module doc.
pub fn reserve(
    store: &dyn Store,
    request: &ReserveRequest<'_>,
    options: &ReserveOptions,
    now_secs: u64,
) -> Result<Reservation, Rejection> {
    let input = request.estimate.input_tokens;
    let requested = request.estimate.max_output_tokens;
    let mut output = requested.unwrap_or(options.default_max_output_tokens);
    // The least output a limit may clamp the request to (no clamping: exactly what was asked).
    let min_output = if options.clamp { options.min_output_tokens.min(output) } else { output };
    let mut charges: Vec<Charge> = Vec::with_capacity(request.limits.len());
    let mut statuses = Vec::with_capacity(request.limits.len());

    for &limit in request.limits {
        if charges.iter().any(|c| c.limit.name == limit.name) {
            continue; // the same limit listed twice counts once
        }
        let window_id = limit.window.id(now_secs);
        let key = counter_key(request.consumer, limit, window_id);
        let mut attempts = 0;
        let charge = loop {
            attempts += 1;
            let (counter, cas) = load(store, &key, window_id);
            let remaining = limit.amount.saturating_sub(counter.consumed());
            let refuse = |reason| {
                let limit_status = status(limit, counter.consumed(), now_secs);
                (reason, limit_status)
            };
            if attempts > options.max_attempts {
                break Err(refuse(RejectReason::Contention));
            }
            let Some(mut need) = reserve_amount(limit, input, output, request.price) else {
                break Err(refuse(RejectReason::NoPrice));
            };
            if need > remaining && options.clamp && limit.metric.depends_on_output() {
                let fit = affordable_output(limit, input, remaining, request.price);
                if fit >= min_output && fit < output {
                    output = fit;
                    need = reserve_amount(limit, input, output, request.price).unwrap_or(u64::MAX);
                }
            }
            if need > remaining {
                let smallest = reserve_amount(limit, input, min_output, request.price).unwrap_or(u64::MAX);
                let reason = if smallest > limit.amount { RejectReason::TooLarge } else { RejectReason::Exhausted };
                break Err(refuse(reason));
            }
            let updated = Counter { reserved: counter.reserved.saturating_add(need), ..counter };
            if store.set(&key, &updated.encode(), Some(cas)).is_ok() {
                break Ok(Charge {
                    limit: limit.clone(),
                    key: key.clone(),
                    window_id,
                    reserved: need,
                    consumed_after: updated.consumed(),
                });
            }
        };
        match charge {
            Ok(charge) => {
                statuses.push(status(limit, charge.consumed_after, now_secs));
                charges.push(charge);
            }
            Err((reason, limit_status)) => {
                for charge in &charges {
                    give_back(store, charge, charge.reserved, None, options.max_attempts);
                }
                statuses.push(limit_status.clone());
                return Err(Rejection { reason, limit: limit_status, statuses });
            }
        }
    }

    // Limits taken before clamping lowered the output hold more than needed: trim them.
    for charge in &mut charges {
        let final_need = reserve_amount(&charge.limit, input, output, request.price).unwrap_or(charge.reserved);
        if final_need < charge.reserved {
            let excess = charge.reserved - final_need;
            if give_back(store, charge, excess, None, options.max_attempts).is_some() {
                charge.reserved = final_need;
                charge.consumed_after = charge.consumed_after.saturating_sub(excess);
            }
        }
    }

    let depends_on_output = charges.iter().any(|c| c.limit.metric.depends_on_output());
    let set_max_tokens = match requested {
        Some(asked) if output < asked => Some(output),
        None if options.clamp && depends_on_output => Some(output),
        _ => None,
    };
    Ok(Reservation {
        consumer: request.consumer.to_string(),
        input_tokens: input,
        output_tokens: output,
        set_max_tokens,
        price: request.price.copied(),
        charges,
    })
}

/// Takes `amount` off `reserved` in the charge's window and adds `used` (if any) to `used`.
/// Returns false if the window is gone or the counter stayed contended.
/// Returns the counter as written, or `None` when the slot expired or stayed contended.
fn give_back(store: &dyn Store, charge: &Charge, amount: u64, used: Option<u64>, max_attempts: u32) -> Option<Counter> {
    for _ in 0..max_attempts.max(1) {
        let (counter, cas) = load_existing(store, &charge.key, charge.window_id)?;
        let updated = Counter {
            reserved: counter.reserved.saturating_sub(amount),
            used: counter.used.saturating_add(used.unwrap_or(0)),
            ..counter
        };
        if store.set(&charge.key, &updated.encode(), Some(cas)).is_ok() {
            return Some(updated);
        }
    }
    None
}

/// Settles a reservation to what was actually consumed (also after a client disconnect:
/// pass what was consumed up to then). Charges the window the reservation was made in,
/// whatever `_now_secs` is (kept in the signature so callers pass the time like everywhere).
pub fn settle(store: &dyn Store, reservation: Reservation, actual: &TokenCounts, _now_secs: u64) -> Settlement {
    let price = reservation.price.as_ref();
    let mut out = Settlement { cost_micros: price.map(|p| p.cost(actual)), ..Settlement::default() };
    // Settling can take longer than admitting: a lost settlement leaves budget held.
    let attempts = ReserveOptions::default().max_attempts * 4;
    for charge in &reservation.charges {
        let amount = actual_amount(&charge.limit, actual, price, charge.reserved);
        if load_existing(store, &charge.key, charge.window_id).is_none() {
            out.expired += 1;
            continue;
        }
        if let Some(counter) = give_back(store, charge, charge.reserved, Some(amount), attempts) {
            out.charged.push((charge.limit.name.clone(), charge.limit.metric, amount));
            out.remaining.push((charge.limit.name.clone(), charge.limit.amount.saturating_sub(counter.consumed())));
        } else if load_existing(store, &charge.key, charge.window_id).is_none() {
            out.expired += 1;
        } else {
            out.failed += 1;
        }
    }
    out
}

/// Gives a reservation back unused (the request failed before consuming anything).
pub fn release(store: &dyn Store, reservation: Reservation) {
    let attempts = ReserveOptions::default().max_attempts * 4;
    for charge in &reservation.charges {
        give_back(store, charge, charge.reserved, None, attempts);
    }
}

/// Current state of `limit` for `consumer` (for metrics gauges and successful-response headers
/// without a reservation).
pub fn peek(store: &dyn Store, consumer: &str, limit: &Limit, now_secs: u64) -> LimitStatus {
    let window_id = limit.window.id(now_secs);
    let (counter, _) = load(store, &counter_key(consumer, limit, window_id), window_id);
    status(limit, counter.consumed(), now_secs)
}

/// Committed usage (`used`) of `limit` in the window containing `at_secs` (tests, metrics).
pub fn used(store: &dyn Store, consumer: &str, limit: &Limit, at_secs: u64) -> (u64, u64) {
    let window_id = limit.window.id(at_secs);
    let (counter, _) = load(store, &counter_key(consumer, limit, window_id), window_id);
    (counter.used, counter.reserved)
}
