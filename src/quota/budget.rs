//! Budgets that hold: reserve before the call, settle after it, over a CAS [`Store`].
//!
//! # Protocol
//! Each (consumer, limit) pair has a counter per window, `{window, used, holds}`, in two
//! alternating slots (`window % 2`) so the store holds a bounded number of keys and a
//! reservation made in window W can still settle against W after the window rolled over.
//! `holds` is what reservations in flight hold, grouped by when each lapses: a reservation
//! made at `t` lapses at `t + reservation_ttl_secs` rounded up to a quarter of the TTL, so
//! at most 6 groups are alive at once and the value has a fixed size (113 bytes). Whoever
//! next writes the counter (a reservation, a settlement) drops the lapsed groups, so a
//! request that never settles (its VM reloaded after a panic, `FAIL_RELOAD`, or crashed)
//! holds its budget for one TTL at most instead of until its window ends (a month for a
//! monthly limit). Every operation is still one `get` and one CAS `set` per counter.
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
//! tokens, and every request settles within `reservation_ttl_secs` (a longer one loses its
//! hold when the TTL passes: concurrent requests may then be admitted on that budget; its
//! usage is still charged). So **with clamping on and an input estimate that is an upper bound (e.g.
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
    /// How long a reservation holds budget unless settled or released first: a request whose
    /// VM is gone (reload, crash) never settles, and its hold lapses after this long.
    pub reservation_ttl_secs: u64,
}

/// Default of [`ReserveOptions::reservation_ttl_secs`] (`quota.reservation_ttl_secs`).
pub const DEFAULT_RESERVATION_TTL_SECS: u64 = 600;

impl Default for ReserveOptions {
    fn default() -> Self {
        ReserveOptions {
            clamp: true,
            default_max_output_tokens: 4096,
            min_output_tokens: 1,
            max_attempts: 64,
            reservation_ttl_secs: DEFAULT_RESERVATION_TTL_SECS,
        }
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
    /// When this charge's hold lapses (the hold's id in the counter).
    expires_at: u64,
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
    /// Settles at another model's price (a fallback chain reserves at its costliest target
    /// and is charged at the one that answered). Without a price, money limits keep what
    /// they reserved.
    pub fn reprice(&mut self, price: Option<Price>) {
        self.price = price;
    }

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

/// Reserved budget that lapses at `expires_at` (seconds since the epoch; 0: an empty slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Hold {
    expires_at: u64,
    amount: u64,
}

/// Holds per counter. Reservations are grouped by expiry, rounded up to a multiple of
/// [`hold_granularity`] (a quarter of the TTL), so the live holds (expiring within TTL plus
/// one granule) never need more than 6 slots: the value has a fixed size and every operation
/// stays one `get` and one `set`.
const HOLDS: usize = 6;

/// The stored counter of one limit in one window: committed usage and the reservations in
/// flight, grouped by when they lapse. A writer drops the holds that have lapsed (their
/// requests outlived the TTL, or their VM is gone), so a lost settlement frees its budget
/// within the TTL instead of at the end of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Counter {
    window_id: u64,
    used: u64,
    holds: [Hold; HOLDS],
}

/// Layout version 1: `{window, used, reserved}` without expiry (read at an upgrade).
const COUNTER_V1: u8 = 1;
/// Layout version 2: version, window, used, then 6 × (expires_at, amount), little endian.
const COUNTER_VERSION: u8 = 2;
const ENCODED_LEN: usize = 1 + 16 + HOLDS * 16;

/// Expiries are rounded up to multiples of this (seconds): a quarter of the TTL.
fn hold_granularity(ttl_secs: u64) -> u64 {
    ttl_secs.div_ceil(4).max(1)
}

/// When a hold made at `now_secs` lapses: at least `ttl_secs` later.
fn expiry(now_secs: u64, ttl_secs: u64) -> u64 {
    let granule = hold_granularity(ttl_secs);
    now_secs.saturating_add(ttl_secs).div_ceil(granule).saturating_mul(granule)
}

impl Counter {
    fn fresh(window_id: u64) -> Counter {
        Counter { window_id, ..Counter::default() }
    }

    fn fresh_with_used(window_id: u64, used: u64) -> Counter {
        Counter { window_id, used, ..Counter::default() }
    }

    fn encode(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        let words =
            [self.window_id, self.used].into_iter().chain(self.holds.iter().flat_map(|h| [h.expires_at, h.amount]));
        for (chunk, word) in out.get_mut(1..).unwrap_or_default().chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        if let Some(version) = out.first_mut() {
            *version = COUNTER_VERSION;
        }
        out
    }

    /// Reads both layouts. A version-1 counter's reservations cannot be told apart by age:
    /// they are dropped (once, at the upgrade; their requests' usage is still charged when
    /// they settle), rather than held with no end as before.
    fn decode(raw: &[u8]) -> Option<Counter> {
        let (&version, rest) = raw.split_first()?;
        let word = |i: usize| rest.get(i * 8..i * 8 + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes);
        match version {
            COUNTER_V1 if rest.len() == 24 => Some(Counter::fresh_with_used(word(0)?, word(1)?)),
            COUNTER_VERSION if rest.len() == ENCODED_LEN - 1 => {
                let mut holds = [Hold::default(); HOLDS];
                for (i, hold) in holds.iter_mut().enumerate() {
                    *hold = Hold { expires_at: word(2 + 2 * i)?, amount: word(3 + 2 * i)? };
                }
                Some(Counter { window_id: word(0)?, used: word(1)?, holds })
            }
            _ => None,
        }
    }

    /// Budget held at `now_secs` by reservations that have not lapsed.
    fn reserved(&self, now_secs: u64) -> u64 {
        self.holds.iter().filter(|h| h.expires_at > now_secs).fold(0u64, |acc, h| acc.saturating_add(h.amount))
    }

    fn consumed(&self, now_secs: u64) -> u64 {
        self.used.saturating_add(self.reserved(now_secs))
    }

    /// Empties the holds that lapsed by `now_secs`.
    fn prune(&mut self, now_secs: u64) {
        for hold in self.holds.iter_mut().filter(|h| h.expires_at <= now_secs || h.amount == 0) {
            *hold = Hold::default();
        }
    }

    /// Adds `amount` to the hold lapsing at `expires_at` (prune first). `None` when every
    /// slot holds another live expiry (cannot happen with [`expiry`]'s rounding and a shared
    /// clock; refused rather than merged into an earlier expiry).
    fn hold(&mut self, expires_at: u64, amount: u64) -> Option<()> {
        let slot = match self.holds.iter().position(|h| h.expires_at == expires_at) {
            Some(i) => i,
            None => self.holds.iter().position(|h| h.expires_at == 0)?,
        };
        let hold = self.holds.get_mut(slot)?;
        *hold = Hold { expires_at, amount: hold.amount.saturating_add(amount) };
        Some(())
    }

    /// Takes `amount` off the hold lapsing at `expires_at`, if it is still there (a lapsed,
    /// pruned hold has nothing left to give back).
    fn unhold(&mut self, expires_at: u64, amount: u64) {
        if let Some(hold) = self.holds.iter_mut().find(|h| h.expires_at == expires_at) {
            hold.amount = hold.amount.saturating_sub(amount);
            if hold.amount == 0 {
                *hold = Hold::default();
            }
        }
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
        None => (Counter::fresh(window_id), CREATE_CAS),
        Some((raw, cas)) => match Counter::decode(&raw) {
            Some(c) if c.window_id == window_id => (c, cas),
            _ => (Counter::fresh(window_id), cas),
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
        let expires_at = expiry(now_secs, options.reservation_ttl_secs);
        let mut attempts = 0;
        let charge = loop {
            attempts += 1;
            let (mut counter, cas) = load(store, &key, window_id);
            // The next writer of a counter releases the holds that lapsed.
            counter.prune(now_secs);
            let consumed = counter.consumed(now_secs);
            let remaining = limit.amount.saturating_sub(consumed);
            let refuse = |reason| {
                let limit_status = status(limit, consumed, now_secs);
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
            let mut updated = counter;
            if updated.hold(expires_at, need).is_none() {
                break Err(refuse(RejectReason::Contention));
            }
            if store.set(&key, &updated.encode(), Some(cas)).is_ok() {
                break Ok(Charge {
                    limit: limit.clone(),
                    key: key.clone(),
                    window_id,
                    expires_at,
                    reserved: need,
                    consumed_after: updated.consumed(now_secs),
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
                    give_back(store, charge, charge.reserved, None, Some(now_secs), options.max_attempts);
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
            if give_back(store, charge, excess, None, Some(now_secs), options.max_attempts).is_some() {
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

/// Takes `amount` off the charge's hold in its window and adds `used` (if any) to `used`;
/// with `now_secs`, also drops the holds that lapsed by then. Returns the counter as written,
/// or `None` when the slot expired or stayed contended.
fn give_back(
    store: &dyn Store,
    charge: &Charge,
    amount: u64,
    used: Option<u64>,
    now_secs: Option<u64>,
    max_attempts: u32,
) -> Option<Counter> {
    for _ in 0..max_attempts.max(1) {
        let (mut counter, cas) = load_existing(store, &charge.key, charge.window_id)?;
        counter.unhold(charge.expires_at, amount);
        if let Some(now) = now_secs {
            counter.prune(now);
        }
        counter.used = counter.used.saturating_add(used.unwrap_or(0));
        if store.set(&charge.key, &counter.encode(), Some(cas)).is_ok() {
            return Some(counter);
        }
    }
    None
}

/// Settles a reservation to what was actually consumed (also after a client disconnect:
/// pass what was consumed up to then). Charges the window the reservation was made in; a
/// hold that lapsed meanwhile (the request outlived `reservation_ttl_secs`) has nothing to
/// give back, and the usage is still charged.
pub fn settle(store: &dyn Store, reservation: Reservation, actual: &TokenCounts, now_secs: u64) -> Settlement {
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
        if let Some(counter) = give_back(store, charge, charge.reserved, Some(amount), Some(now_secs), attempts) {
            out.charged.push((charge.limit.name.clone(), charge.limit.metric, amount));
            out.remaining
                .push((charge.limit.name.clone(), charge.limit.amount.saturating_sub(counter.consumed(now_secs))));
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
        give_back(store, charge, charge.reserved, None, None, attempts);
    }
}

/// Current state of `limit` for `consumer` (for metrics gauges and successful-response headers
/// without a reservation).
pub fn peek(store: &dyn Store, consumer: &str, limit: &Limit, now_secs: u64) -> LimitStatus {
    let window_id = limit.window.id(now_secs);
    let (counter, _) = load(store, &counter_key(consumer, limit, window_id), window_id);
    status(limit, counter.consumed(now_secs), now_secs)
}

/// Committed usage (`used`) and live reservations of `limit` in the window containing
/// `at_secs`, as seen at `at_secs` (tests, metrics).
pub fn used(store: &dyn Store, consumer: &str, limit: &Limit, at_secs: u64) -> (u64, u64) {
    let window_id = limit.window.id(at_secs);
    let (counter, _) = load(store, &counter_key(consumer, limit, window_id), window_id);
    (counter.used, counter.reserved(at_secs))
}

/// Store key counting the unlisted consumers that have counters of their own.
const UNLISTED_COUNT_KEY: &str = "llmgw:u#count";

/// Whose counters an unlisted consumer (a JWT subject or trusted identity not in
/// `consumers`, admitted by `allow_unlisted_consumers`) spends. Shared data never forgets a
/// key, so each new name would add counters for good: the first `cap` names
/// (`quota.max_unlisted_consumers`) get their own, recorded in a registry
/// (`llmgw:u:<name>`, one `get` per request); later ones share one pool per plan
/// (`;unlisted;<plan>`, which no consumer name can spell), as does everyone while the count
/// stays contended. The trade-off: the store is bounded, and past the cap new unlisted
/// consumers spend a common budget (never an unlimited one).
pub fn unlisted_owner(store: &dyn Store, consumer: &str, plan: Option<&str>, cap: u64) -> String {
    let registered = format!("llmgw:u:{consumer}");
    if store.get(&registered).is_some() {
        return consumer.to_string();
    }
    let pool = format!(";unlisted;{}", plan.unwrap_or("-"));
    for _ in 0..ReserveOptions::default().max_attempts {
        let (count, cas) = match store.get(UNLISTED_COUNT_KEY) {
            None => (0, CREATE_CAS),
            // Unreadable: treated as full (bounded, fail closed).
            Some((raw, cas)) => (raw.as_slice().try_into().map_or(u64::MAX, u64::from_le_bytes), cas),
        };
        if count >= cap {
            return pool;
        }
        if store.set(UNLISTED_COUNT_KEY, &count.saturating_add(1).to_le_bytes(), Some(cas)).is_ok() {
            // Two workers registering the same name both count it: the cap errs low.
            return match store.set(&registered, b"1", None) {
                Ok(()) => consumer.to_string(),
                Err(_) => pool,
            };
        }
    }
    pool
}
