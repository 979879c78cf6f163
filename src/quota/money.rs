//! Money in integer micro-USD, and the price table. No floats take part in arithmetic.
//!
//! Prices are USD per million tokens, held as integer micro-USD per million tokens:
//! `"2.50"` is 2_500_000. The exact cost of `n` tokens is `n * price / 1_000_000`
//! micro-USD; a request's components (input, cached input, 5-minute and 1-hour cache
//! writes, output, reasoning) are summed exactly first and the total is rounded **up** once to whole
//! micro-USD. A request therefore never costs less than its exact price and at most
//! 1 micro-USD more; two requests can differ from one request of the same tokens by at most
//! 1 micro-USD each.

use serde::Deserialize;
use std::collections::HashMap;

pub const MICROS_PER_USD: u64 = 1_000_000;
const TOKENS_PER_PRICE_UNIT: u128 = 1_000_000;

/// A decimal amount as written in JSON: a string (`"2.50"`) or a number (`2.5`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Decimal {
    Text(String),
    Number(serde_json::Number),
}

impl Decimal {
    /// The amount in millionths (micro-units), exactly. Strings are read digit by digit;
    /// numbers through their shortest round-trip decimal form, which is exact for any
    /// literal of up to 15 significant digits. At most 6 decimal places; not negative.
    pub fn to_micros(&self) -> Result<u64, String> {
        match self {
            Decimal::Text(s) => parse_micros(s),
            Decimal::Number(n) => {
                if let Some(whole) = n.as_u64() {
                    return whole.checked_mul(MICROS_PER_USD).ok_or_else(|| format!("{n} is too large"));
                }
                match n.as_f64() {
                    // Rust's `Display` for f64 prints the shortest digits that round-trip,
                    // never in exponent form.
                    Some(f) if f.is_finite() => parse_micros(&format!("{f}")),
                    _ => Err(format!("{n} is not a decimal amount")),
                }
            }
        }
    }
}

/// `"2.50"` -> 2_500_000. Plain decimal digits with an optional fraction of up to 6 digits.
pub fn parse_micros(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && frac.is_empty() || !digits(whole) || !digits(frac) {
        return Err(format!("{text:?} is not a non-negative decimal number like \"2.50\""));
    }
    if frac.len() > 6 {
        return Err(format!("{text:?} has more than 6 decimal places"));
    }
    let too_large = || format!("{text:?} is too large");
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| too_large())? };
    let mut frac_micros: u64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        let exp = u32::try_from(5 - i).unwrap_or(0);
        frac_micros += u64::from(b - b'0') * 10u64.pow(exp);
    }
    whole.checked_mul(MICROS_PER_USD).and_then(|w| w.checked_add(frac_micros)).ok_or_else(too_large)
}

/// `2_500_000` -> `"2.5"`: micro-units as a short decimal string (for messages and headers).
pub fn format_micros(micros: u64) -> String {
    let whole = micros / MICROS_PER_USD;
    let frac = micros % MICROS_PER_USD;
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// Prices of one tier, in micro-USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub input: u64,
    pub output: u64,
    /// Input tokens read from the provider's prompt cache (defaults to `input`).
    pub cached_input: u64,
    /// Input tokens written to the prompt cache (defaults to `input`); for Anthropic, the
    /// 5-minute TTL.
    pub cache_write: u64,
    /// Input tokens written to the prompt cache with a 1-hour TTL (defaults to twice `input`
    /// for Claude models, Anthropic's rule, else to `cache_write`).
    pub cache_write_1h: u64,
    /// Output tokens spent reasoning (defaults to `output`).
    pub reasoning: u64,
}

impl Rates {
    fn max(self, other: Rates) -> Rates {
        Rates {
            input: self.input.max(other.input),
            output: self.output.max(other.output),
            cached_input: self.cached_input.max(other.cached_input),
            cache_write: self.cache_write.max(other.cache_write),
            cache_write_1h: self.cache_write_1h.max(other.cache_write_1h),
            reasoning: self.reasoning.max(other.reasoning),
        }
    }

    /// The most any one input token can cost, and any one output token.
    fn worst_input(&self) -> u64 {
        self.input.max(self.cached_input).max(self.cache_write).max(self.cache_write_1h)
    }

    fn worst_output(&self) -> u64 {
        self.output.max(self.reasoning)
    }
}

/// Prompts longer than a threshold priced differently (e.g. Gemini Pro above 200k tokens):
/// every token of such a request is priced at `rates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongContext {
    pub above_input_tokens: u64,
    pub rates: Rates,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub rates: Rates,
    pub long_context: Option<LongContext>,
}

/// Token counts of one exchange for pricing. `cached_input` and `cache_write` are parts of
/// `input`, `cache_write_1h` is part of `cache_write`; `reasoning` is part of `output` (as in
/// OpenAI's usage object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenCounts {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    pub cache_write: u64,
    pub cache_write_1h: u64,
    pub reasoning: u64,
}

impl TokenCounts {
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }

    /// From the gateway's usage record; unknown counts are `fallback`'s.
    pub fn from_usage(usage: &crate::usage::Usage, fallback: TokenCounts) -> TokenCounts {
        TokenCounts {
            input: usage.input.unwrap_or(fallback.input),
            output: usage.output.unwrap_or(fallback.output),
            cached_input: usage.cached_input.unwrap_or(0),
            cache_write: usage.cache_write.unwrap_or(0),
            cache_write_1h: usage.cache_write_1h.unwrap_or(0),
            reasoning: usage.reasoning.unwrap_or(0),
        }
    }
}

/// Exact cost of `tokens` at `micros_per_million`, rounded up to whole micro-USD.
pub fn cost_of(tokens: u64, micros_per_million: u64) -> u64 {
    ceil_div_million(u128::from(tokens) * u128::from(micros_per_million))
}

fn ceil_div_million(exact: u128) -> u64 {
    u64::try_from(exact.div_ceil(TOKENS_PER_PRICE_UNIT)).unwrap_or(u64::MAX)
}

impl Price {
    /// The tier that applies to a request with `input_tokens` of prompt.
    pub fn rates_for(&self, input_tokens: u64) -> &Rates {
        match &self.long_context {
            Some(long) if input_tokens > long.above_input_tokens => &long.rates,
            _ => &self.rates,
        }
    }

    /// What the counts cost, in micro-USD (rounded up once; see the module doc).
    pub fn cost(&self, c: &TokenCounts) -> u64 {
        let r = self.rates_for(c.input);
        let cached = c.cached_input.min(c.input);
        let written = c.cache_write.min(c.input - cached);
        let written_1h = c.cache_write_1h.min(written);
        let written_5m = written - written_1h;
        let fresh = c.input - cached - written;
        let reasoning = c.reasoning.min(c.output);
        let visible = c.output - reasoning;
        let exact = u128::from(fresh) * u128::from(r.input)
            + u128::from(cached) * u128::from(r.cached_input)
            + u128::from(written_5m) * u128::from(r.cache_write)
            + u128::from(written_1h) * u128::from(r.cache_write_1h)
            + u128::from(visible) * u128::from(r.output)
            + u128::from(reasoning) * u128::from(r.reasoning);
        ceil_div_million(exact)
    }

    /// The highest rates of any tier: what a reservation assumes, so that no mix of cached,
    /// cache-write, reasoning or long-context tokens can cost more than was reserved.
    pub fn worst_case(&self) -> Rates {
        match &self.long_context {
            Some(long) => self.rates.max(long.rates),
            None => self.rates,
        }
    }

    /// Upper bound of what `input` + `output` tokens can cost, in micro-USD.
    pub fn max_cost(&self, input: u64, output: u64) -> u64 {
        let w = self.worst_case();
        ceil_div_million(
            u128::from(input) * u128::from(w.worst_input()) + u128::from(output) * u128::from(w.worst_output()),
        )
    }

    /// The most output tokens `budget` micro-USD pays for after `input` tokens, at the
    /// worst-case rates (`max_cost(input, n) <= budget` for every `n` up to the answer).
    /// `u64::MAX` when output is free.
    pub fn max_output_for(&self, input: u64, budget: u64) -> u64 {
        let w = self.worst_case();
        let room = u128::from(budget) * TOKENS_PER_PRICE_UNIT;
        let used = u128::from(input) * u128::from(w.worst_input());
        if used > room {
            return 0;
        }
        match w.worst_output() {
            0 => u64::MAX,
            per => u64::try_from((room - used) / u128::from(per)).unwrap_or(u64::MAX),
        }
    }
}

/// One model's entry as written in JSON (the built-in table and `prices` in the config).
/// Amounts are USD per million tokens, as strings (`"2.50"`) or numbers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input: Decimal,
    pub output: Decimal,
    #[serde(default)]
    pub cached_input: Option<Decimal>,
    #[serde(default)]
    pub cache_write: Option<Decimal>,
    /// 1-hour cache writes; absent: twice `input` for a Claude model id, else `cache_write`.
    #[serde(default)]
    pub cache_write_1h: Option<Decimal>,
    #[serde(default)]
    pub reasoning: Option<Decimal>,
    #[serde(default)]
    pub long_context: Option<RawLongContext>,
    /// Free text (where a price came from, what it leaves out). Ignored.
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLongContext {
    pub above_input_tokens: u64,
    pub input: Decimal,
    pub output: Decimal,
    #[serde(default)]
    pub cached_input: Option<Decimal>,
    #[serde(default)]
    pub cache_write: Option<Decimal>,
    /// 1-hour cache writes; absent: twice `input` for a Claude model id, else `cache_write`.
    #[serde(default)]
    pub cache_write_1h: Option<Decimal>,
    #[serde(default)]
    pub reasoning: Option<Decimal>,
}

/// A validation failure: the field (relative to the entry) and what is wrong.
pub type FieldError = (&'static str, String);

/// One tier's amounts as written (absent ones `None`).
struct RawRates<'a> {
    input: &'a Decimal,
    output: &'a Decimal,
    cached: Option<&'a Decimal>,
    write: Option<&'a Decimal>,
    write_1h: Option<&'a Decimal>,
    reasoning: Option<&'a Decimal>,
}

/// Whether a model id names an Anthropic Claude model (`claude-...`, Bedrock's
/// `anthropic.claude-...` and its cross-region `us.anthropic.claude-...`, Vertex's
/// `claude-...@date`): the models whose 1-hour cache writes cost twice the input price.
pub fn is_claude_model(model: &str) -> bool {
    model.to_ascii_lowercase().contains("claude")
}

fn rates(raw: &RawRates<'_>, claude: bool, prefix: &'static [&'static str; 6]) -> Result<Rates, FieldError> {
    let read = |field: &'static str, d: &Decimal| d.to_micros().map_err(|e| (field, e));
    let [p_in, p_out, p_cached, p_write, p_write_1h, p_reason] = *prefix;
    let input = read(p_in, raw.input)?;
    let output = read(p_out, raw.output)?;
    let cache_write = raw.write.map(|d| read(p_write, d)).transpose()?.unwrap_or(input);
    // Anthropic: "1-hour cache write tokens are 2 times the base input tokens price".
    let default_1h = if claude { input.saturating_mul(2) } else { cache_write };
    Ok(Rates {
        input,
        output,
        cached_input: raw.cached.map(|d| read(p_cached, d)).transpose()?.unwrap_or(input),
        cache_write,
        cache_write_1h: raw.write_1h.map(|d| read(p_write_1h, d)).transpose()?.unwrap_or(default_1h),
        reasoning: raw.reasoning.map(|d| read(p_reason, d)).transpose()?.unwrap_or(output),
    })
}

impl RawPrice {
    /// The price of `model` (its id decides the default of `cache_write_1h`).
    pub fn validate(&self, model: &str) -> Result<Price, FieldError> {
        const BASE: [&str; 6] = ["input", "output", "cached_input", "cache_write", "cache_write_1h", "reasoning"];
        const LONG: [&str; 6] = [
            "long_context.input",
            "long_context.output",
            "long_context.cached_input",
            "long_context.cache_write",
            "long_context.cache_write_1h",
            "long_context.reasoning",
        ];
        let claude = is_claude_model(model);
        let base = RawRates {
            input: &self.input,
            output: &self.output,
            cached: self.cached_input.as_ref(),
            write: self.cache_write.as_ref(),
            write_1h: self.cache_write_1h.as_ref(),
            reasoning: self.reasoning.as_ref(),
        };
        let long_context = match &self.long_context {
            None => None,
            Some(l) => {
                let long = RawRates {
                    input: &l.input,
                    output: &l.output,
                    cached: l.cached_input.as_ref(),
                    write: l.cache_write.as_ref(),
                    write_1h: l.cache_write_1h.as_ref(),
                    reasoning: l.reasoning.as_ref(),
                };
                Some(LongContext { above_input_tokens: l.above_input_tokens, rates: rates(&long, claude, &LONG)? })
            }
        };
        Ok(Price { rates: rates(&base, claude, &BASE)?, long_context })
    }
}

/// The shipped price list (`prices.json`): per provider, its sources and models.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    as_of: String,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
    providers: std::collections::BTreeMap<String, RawProviderPrices>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProviderPrices {
    #[allow(dead_code)]
    source: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
    models: std::collections::BTreeMap<String, RawPrice>,
}

pub const BUILTIN_PRICES_JSON: &str = include_str!("prices.json");

/// Prices by model name: the built-in table, then the config's entries on top.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    prices: HashMap<String, Price>,
    as_of: Option<String>,
}

impl PriceTable {
    /// The shipped table. Fails only if `prices.json` itself is broken (a test guards it).
    pub fn builtin() -> Result<PriceTable, String> {
        let raw: RawTable = serde_json::from_str(BUILTIN_PRICES_JSON).map_err(|e| format!("prices.json: {e}"))?;
        let mut prices = HashMap::new();
        for (provider, p) in raw.providers {
            for (model, entry) in p.models {
                let price = entry
                    .validate(&model)
                    .map_err(|(field, e)| format!("prices.json: {provider}.{model}.{field}: {e}"))?;
                if prices.insert(model.clone(), price).is_some() {
                    return Err(format!("prices.json: model {model:?} is listed twice"));
                }
            }
        }
        Ok(PriceTable { prices, as_of: Some(raw.as_of) })
    }

    pub fn empty() -> PriceTable {
        PriceTable::default()
    }

    /// Date the built-in table was checked against the providers' pages.
    pub fn as_of(&self) -> Option<&str> {
        self.as_of.as_deref()
    }

    pub fn insert(&mut self, model: impl Into<String>, price: Price) {
        self.prices.insert(model.into(), price);
    }

    pub fn len(&self) -> usize {
        self.prices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prices.is_empty()
    }

    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.prices.keys().map(String::as_str)
    }

    /// The price of `model` (the provider's model id). A dated snapshot falls back to its
    /// undated name: `gpt-4o-2024-08-06` and `claude-sonnet-4-5-20250929` are priced as
    /// `gpt-4o` and `claude-sonnet-4-5` unless listed themselves.
    pub fn get(&self, model: &str) -> Option<&Price> {
        self.prices.get(model).or_else(|| strip_date_suffix(model).and_then(|base| self.prices.get(base)))
    }
}

/// `name-2024-08-06` or `name-20250929` -> `name`.
fn strip_date_suffix(model: &str) -> Option<&str> {
    let is_digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let (head, last) = model.rsplit_once('-')?;
    if is_digits(last, 8) {
        return Some(head);
    }
    let (head2, month) = head.rsplit_once('-')?;
    let (head3, year) = head2.rsplit_once('-')?;
    (is_digits(last, 2) && is_digits(month, 2) && is_digits(year, 4)).then_some(head3)
}
