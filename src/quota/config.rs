//! Configuration owned by the quota module: `plans`, `prices` and `quota` sections, and the
//! `limits` list that plans and consumers share. Raw serde types are strict
//! (`deny_unknown_fields`); `validate_*` functions take the path of the section and return
//! errors naming the offending value, e.g. `plans["free"].limits[1].usd: "1.2.3" is not ...`.
//!
//! ```json
//! {
//!   "plans": {
//!     "free": {
//!       "models": ["gpt-4o-mini"],
//!       "limits": [
//!         {"name": "tpm", "window": "minute", "tokens": 10000},
//!         {"name": "rpm", "window": "minute", "requests": 20},
//!         {"name": "monthly-usd", "window": "month", "usd": "5.00"},
//!         {"name": "big-models", "window": "day", "input_tokens": 100000, "models": ["gpt-4o"]}
//!       ]
//!     }
//!   },
//!   "prices": {
//!     "my-finetune": {"input": "3.00", "output": "12.00", "cached_input": "1.50"},
//!     "gpt-4o": {"input": 2.5, "output": 10}
//!   },
//!   "quota": {
//!     "default_plan": "free",
//!     "clamp_max_tokens": true,
//!     "default_max_output_tokens": 4096,
//!     "min_output_tokens": 16,
//!     "estimator": "fast",
//!     "reservation_ttl_secs": 600,
//!     "max_unlisted_consumers": 10000,
//!     "tokenizers": {"my-azure-gpt4o": "o200k_base"}
//!   }
//! }
//! ```
//!
//! A limit names exactly one of `tokens` (input + output), `input_tokens`, `output_tokens`,
//! `requests` or `usd` (a decimal string or number, at most 6 decimals). `name` defaults to
//! `<metric>-<window>` (e.g. `tokens-minute`) and must be unique among a plan's limits; a
//! consumer's limit with the same name replaces the plan's. `models` restricts a limit (and
//! a plan) to public model names; aliases stand for their model, and a name no model has is
//! a configuration error ([`ModelNames`]). `prices` entries are USD per million tokens and replace the
//! built-in entry of the same model id (see `money::RawPrice` for the fields).
//!
//! `reservation_ttl_secs` (default 600) bounds how long a reservation holds budget when its
//! request never settles (its VM reloaded or crashed): the next writer of the counter drops
//! it after that long. Set it above the longest request your Envoy routes allow (route and
//! stream timeouts): a request that outlives it loses its hold (its usage is still charged).
//!
//! `max_unlisted_consumers` (default 10000, 0 to 1000000) caps the unlisted consumers (JWT
//! or trusted identities admitted by `auth.allow_unlisted_consumers`) that get budget
//! counters of their own; later ones share one pool per plan (`budget::unlisted_owner`).
//!
//! `estimator` sizes a request's input before the call: `fast` (default), `upper-bound`, and,
//! in a module built with the cargo feature `tiktoken`, `exact` and `auto` (see
//! [`Estimator`]); asking for `exact` or `auto` from a build without it fails the
//! configuration at `quota.estimator`. `tokenizers` names the BPE of provider model ids the
//! built-in rules (`estimate::Vocabulary::for_model`) do not recognise.

use super::budget::{Limit, Metric, ReserveOptions};
use super::estimate::Vocabulary;
use super::money::{Decimal, PriceTable, RawPrice};
use super::window::Window;
use crate::config_base::{err, ConfigError};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimit {
    #[serde(default)]
    pub name: Option<String>,
    pub window: Window,
    #[serde(default)]
    pub tokens: Option<u64>,
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub requests: Option<u64>,
    #[serde(default)]
    pub usd: Option<Decimal>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    #[serde(default)]
    pub limits: Vec<RawLimit>,
    /// Public model names the plan may use; absent: all.
    #[serde(default)]
    pub models: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Estimator {
    /// Character-class estimate (`estimate::char_class_tokens`).
    #[default]
    Fast,
    /// One token per byte of prompt (`estimate::upper_bound_tokens`): budgets then hold
    /// exactly, at the price of admitting fewer requests near the limit.
    UpperBound,
    /// Every prompt counted with the upstream model's BPE (`bpe::count`); models without a
    /// public BPE get the fast estimate. Needs the cargo feature `tiktoken`.
    Exact,
    /// The fast estimate plus [`crate::quota::estimate::AUTO_MARGIN_PERCENT`] while that fits
    /// the budgets with the full output; the exact count when it does not (the request would be
    /// refused or clamped, so the difference matters), unless even a third of the fast
    /// estimate is refused. Models without a public BPE, and budgets that do not count input
    /// (requests, output tokens), get the fast estimate. Needs the cargo feature `tiktoken`.
    Auto,
}

impl Estimator {
    pub fn as_str(self) -> &'static str {
        match self {
            Estimator::Fast => "fast",
            Estimator::UpperBound => "upper-bound",
            Estimator::Exact => "exact",
            Estimator::Auto => "auto",
        }
    }

    /// Whether this estimator counts with a BPE table.
    pub fn counts_exactly(self) -> bool {
        matches!(self, Estimator::Exact | Estimator::Auto)
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawQuota {
    /// Plan of consumers that name none.
    #[serde(default)]
    pub default_plan: Option<String>,
    /// Lower a request's max tokens to what its budgets can pay for (default true).
    #[serde(default)]
    pub clamp_max_tokens: Option<bool>,
    /// Output reserved for requests without max tokens (default 4096).
    #[serde(default)]
    pub default_max_output_tokens: Option<u64>,
    /// Refuse rather than clamp below this many output tokens (default 16).
    #[serde(default)]
    pub min_output_tokens: Option<u64>,
    #[serde(default)]
    pub estimator: Option<Estimator>,
    /// BPE of provider model ids the built-in rules do not know (Azure deployment names,
    /// proxies' aliases): `{"my-gpt4o-deployment": "o200k_base"}`.
    #[serde(default)]
    pub tokenizers: Option<BTreeMap<String, Vocabulary>>,
    /// How long a reservation holds budget when its request never settles (default 600).
    #[serde(default)]
    pub reservation_ttl_secs: Option<u64>,
    /// Unlisted consumers with counters of their own (default 10000); later ones share a
    /// pool per plan (`budget::unlisted_owner`).
    #[serde(default)]
    pub max_unlisted_consumers: Option<u64>,
    /// Fleet-wide token budgets on a rate-limit service (`quota::fleet`).
    #[serde(default)]
    pub fleet: Option<super::fleet::RawFleet>,
}

/// Longest `quota.reservation_ttl_secs`: past a day a lost reservation is as bad as none
/// expiring.
const MAX_RESERVATION_TTL_SECS: u64 = 86_400;

/// A validated plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub name: String,
    pub limits: Vec<Limit>,
    pub models: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct Plans {
    plans: BTreeMap<String, Plan>,
}

impl Plans {
    pub fn get(&self, name: &str) -> Option<&Plan> {
        self.plans.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.plans.contains_key(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Plan> {
        self.plans.values()
    }

    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaSettings {
    pub default_plan: Option<String>,
    pub reserve: ReserveOptions,
    pub estimator: Estimator,
    /// `quota.tokenizers`: provider model id -> vocabulary, before the built-in rules.
    pub tokenizers: BTreeMap<String, Vocabulary>,
    /// `quota.max_unlisted_consumers`.
    pub max_unlisted_consumers: u64,
    /// `quota.fleet`: budgets shared by every Envoy, on a rate-limit service.
    pub fleet: Option<super::fleet::Fleet>,
}

/// Default of `quota.max_unlisted_consumers`.
pub const DEFAULT_MAX_UNLISTED_CONSUMERS: u64 = 10_000;
const MAX_UNLISTED_CONSUMERS: u64 = 1_000_000;

impl Default for QuotaSettings {
    fn default() -> Self {
        QuotaSettings {
            default_plan: None,
            reserve: ReserveOptions { min_output_tokens: 16, ..ReserveOptions::default() },
            estimator: Estimator::Fast,
            tokenizers: BTreeMap::new(),
            max_unlisted_consumers: DEFAULT_MAX_UNLISTED_CONSUMERS,
            fleet: None,
        }
    }
}

/// Names of plans, limits and consumers become store keys and metric labels.
pub fn check_limit_name(path: &str, name: &str) -> Result<(), ConfigError> {
    let ok =
        !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(err(path, format!("{name:?} is not a valid limit name (1-64 characters: letters, digits, '-', '_', '.')")))
    }
}

/// The public model names a `models` list may use: every route's name and alias, each
/// mapped to its route's name (limits and allow-lists compare with the route name, so an
/// alias left as written would never match). Built from the `models` section.
#[derive(Debug, Clone, Default)]
pub struct ModelNames {
    /// name or alias -> route name; `None`: names are not checked (tools and tests that
    /// validate a section alone; `Config::parse` always checks).
    names: Option<HashMap<String, String>>,
}

impl ModelNames {
    /// `(route name, its aliases)` for every configured model.
    pub fn new<'a>(models: impl IntoIterator<Item = (&'a str, &'a [String])>) -> Self {
        let mut names = HashMap::new();
        for (name, aliases) in models {
            names.insert(name.to_string(), name.to_string());
            for alias in aliases {
                names.entry(alias.clone()).or_insert_with(|| name.to_string());
            }
        }
        ModelNames { names: Some(names) }
    }

    /// Accepts any name as written (see the field's doc).
    pub fn unchecked() -> Self {
        ModelNames { names: None }
    }

    /// The route name `name` stands for; an error at `path` when no model has that name.
    pub fn resolve(&self, path: &str, name: &str) -> Result<String, ConfigError> {
        let Some(names) = &self.names else { return Ok(name.to_string()) };
        names.get(name).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = names.keys().map(String::as_str).collect();
            known.sort_unstable();
            err(path, format!("no model named {name:?} (models and aliases: {})", known.join(", ")))
        })
    }
}

/// A `models` list: not empty, each name resolved to its route name (aliases included),
/// unknown names refused: a typo must not silently switch a limit or an allow-list off.
pub fn check_models(
    path: &str,
    models: &Option<Vec<String>>,
    names: &ModelNames,
) -> Result<Option<Vec<String>>, ConfigError> {
    match models {
        None => Ok(None),
        Some(list) if list.is_empty() => Err(err(path, "must name at least one model (omit it to allow every model)")),
        Some(list) => {
            let mut resolved: Vec<String> = Vec::with_capacity(list.len());
            for (i, m) in list.iter().enumerate() {
                let item = format!("{path}[{i}]");
                if m.trim().is_empty() {
                    return Err(err(item, "must not be empty"));
                }
                let name = names.resolve(&item, m)?;
                if !resolved.contains(&name) {
                    resolved.push(name);
                }
            }
            Ok(Some(resolved))
        }
    }
}

fn validate_limit(path: &str, raw: &RawLimit, names: &ModelNames) -> Result<Limit, ConfigError> {
    let mut chosen: Vec<(Metric, u64)> = Vec::new();
    for (metric, value) in [
        (Metric::TotalTokens, raw.tokens),
        (Metric::InputTokens, raw.input_tokens),
        (Metric::OutputTokens, raw.output_tokens),
        (Metric::Requests, raw.requests),
    ] {
        if let Some(v) = value {
            chosen.push((metric, v));
        }
    }
    if let Some(usd) = &raw.usd {
        let micros = usd.to_micros().map_err(|e| err(format!("{path}.usd"), e))?;
        chosen.push((Metric::MicroUsd, micros));
    }
    let (metric, amount) = match chosen.as_slice() {
        [one] => *one,
        [] => {
            return Err(err(
                path,
                "a limit needs one of `tokens`, `input_tokens`, `output_tokens`, `requests` or `usd`",
            ))
        }
        _ => return Err(err(
            path,
            "a limit counts one thing: give only one of `tokens`, `input_tokens`, `output_tokens`, `requests`, `usd`",
        )),
    };
    let name = match &raw.name {
        Some(name) => {
            check_limit_name(&format!("{path}.name"), name)?;
            name.clone()
        }
        None => format!("{}-{}", metric.as_str().replace('_', "-"), raw.window.as_str()),
    };
    let models = check_models(&format!("{path}.models"), &raw.models, names)?;
    Ok(Limit { name, metric, amount, window: raw.window, models })
}

/// Validates a list of limits at `path` (e.g. `plans["free"].limits`): names unique. Model
/// names are not checked: [`validate_limits_for`] does, as `Config::parse` does.
pub fn validate_limits(path: &str, raw: &[RawLimit]) -> Result<Vec<Limit>, ConfigError> {
    validate_limits_for(path, raw, &ModelNames::unchecked())
}

/// [`validate_limits`], each limit's `models` resolved against `names`.
pub fn validate_limits_for(path: &str, raw: &[RawLimit], names: &ModelNames) -> Result<Vec<Limit>, ConfigError> {
    let mut limits: Vec<Limit> = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let item = format!("{path}[{i}]");
        let limit = validate_limit(&item, r, names)?;
        if limits.iter().any(|l| l.name == limit.name) {
            let field = if r.name.is_some() { format!("{item}.name") } else { item };
            return Err(err(field, format!("another limit is already named {:?}; give this one a `name`", limit.name)));
        }
        limits.push(limit);
    }
    Ok(limits)
}

/// Validates the `plans` section without checking model names (see [`validate_plans_for`]).
pub fn validate_plans(path: &str, raw: &BTreeMap<String, RawPlan>) -> Result<Plans, ConfigError> {
    validate_plans_for(path, raw, &ModelNames::unchecked())
}

/// Validates the `plans` section; every `models` list (the plan's, its limits') resolved
/// against `names`.
pub fn validate_plans_for(
    path: &str,
    raw: &BTreeMap<String, RawPlan>,
    names: &ModelNames,
) -> Result<Plans, ConfigError> {
    let mut plans = BTreeMap::new();
    for (name, p) in raw {
        let plan_path = format!("{path}[{name:?}]");
        check_limit_name(&plan_path, name)?;
        let limits = validate_limits_for(&format!("{plan_path}.limits"), &p.limits, names)?;
        let models = check_models(&format!("{plan_path}.models"), &p.models, names)?;
        plans.insert(name.clone(), Plan { name: name.clone(), limits, models });
    }
    Ok(Plans { plans })
}

/// The built-in price table with the `prices` section on top.
pub fn validate_prices(path: &str, raw: Option<&BTreeMap<String, RawPrice>>) -> Result<PriceTable, ConfigError> {
    let mut table = PriceTable::builtin().map_err(|e| err(path, e))?;
    for (model, entry) in raw.into_iter().flatten() {
        let entry_path = format!("{path}[{model:?}]");
        if model.trim().is_empty() {
            return Err(err(entry_path, "model name must not be empty"));
        }
        let price = entry.validate(model).map_err(|(field, e)| err(format!("{entry_path}.{field}"), e))?;
        table.insert(model.clone(), price);
    }
    Ok(table)
}

/// Validates the `quota` section against the plans.
pub fn validate_quota(path: &str, raw: Option<&RawQuota>, plans: &Plans) -> Result<QuotaSettings, ConfigError> {
    let defaults = QuotaSettings::default();
    let Some(raw) = raw else {
        return Ok(defaults);
    };
    if let Some(plan) = &raw.default_plan {
        if !plans.contains(plan) {
            return Err(err(format!("{path}.default_plan"), format!("no plan named {plan:?}")));
        }
    }
    let positive = |field: &str, v: Option<u64>, default: u64| match v {
        Some(0) => Err(err(format!("{path}.{field}"), "must be greater than 0")),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    let default_max_output_tokens = positive(
        "default_max_output_tokens",
        raw.default_max_output_tokens,
        defaults.reserve.default_max_output_tokens,
    )?;
    let min_output_tokens = positive("min_output_tokens", raw.min_output_tokens, defaults.reserve.min_output_tokens)?;
    if min_output_tokens > default_max_output_tokens {
        return Err(err(
            format!("{path}.min_output_tokens"),
            format!("{min_output_tokens} is more than default_max_output_tokens ({default_max_output_tokens})"),
        ));
    }
    let reservation_ttl_secs =
        positive("reservation_ttl_secs", raw.reservation_ttl_secs, defaults.reserve.reservation_ttl_secs)?;
    if reservation_ttl_secs > MAX_RESERVATION_TTL_SECS {
        return Err(err(
            format!("{path}.reservation_ttl_secs"),
            format!("must be at most {MAX_RESERVATION_TTL_SECS} (a day)"),
        ));
    }
    let max_unlisted_consumers = raw.max_unlisted_consumers.unwrap_or(defaults.max_unlisted_consumers);
    if max_unlisted_consumers > MAX_UNLISTED_CONSUMERS {
        return Err(err(
            format!("{path}.max_unlisted_consumers"),
            format!("must be at most {MAX_UNLISTED_CONSUMERS} (every one keeps store keys for good)"),
        ));
    }
    let estimator = raw.estimator.unwrap_or_default();
    if estimator.counts_exactly() && !super::bpe::AVAILABLE {
        return Err(err(
            format!("{path}.estimator"),
            format!(
                "{:?} needs exact token counting, which this build of the module does not have: \
                 build it with the cargo feature `tiktoken`, or use \"fast\" or \"upper-bound\"",
                estimator.as_str()
            ),
        ));
    }
    let mut tokenizers = BTreeMap::new();
    for (model, vocabulary) in raw.tokenizers.iter().flatten() {
        if model.trim().is_empty() {
            return Err(err(format!("{path}.tokenizers[{model:?}]"), "model name must not be empty"));
        }
        tokenizers.insert(model.clone(), *vocabulary);
    }
    let fleet = match &raw.fleet {
        Some(fleet) => Some(super::fleet::Fleet::validate(&format!("{path}.fleet"), fleet)?),
        None => None,
    };
    Ok(QuotaSettings {
        default_plan: raw.default_plan.clone(),
        reserve: ReserveOptions {
            clamp: raw.clamp_max_tokens.unwrap_or(defaults.reserve.clamp),
            default_max_output_tokens,
            min_output_tokens,
            max_attempts: defaults.reserve.max_attempts,
            reservation_ttl_secs,
        },
        estimator,
        tokenizers,
        max_unlisted_consumers,
        fleet,
    })
}
