//! Budgets: plans of limits over windows, per-consumer overrides, prices in integer
//! micro-USD, and the reserve -> settle -> release protocol over a CAS [`Store`].
//!
//! - [`window`]: minute / hour / day / calendar-month windows from `now_secs`.
//! - [`money`]: decimal parsing into micro-units, [`Price`], the built-in [`PriceTable`].
//! - [`budget`]: [`reserve`], [`settle`], [`release`] and the overspend bound.
//! - [`store`]: the [`Store`] trait (proxy-wasm shared data), [`MemoryStore`], [`Interleaver`].
//! - [`headers`]: `x-ratelimit-*` and `Retry-After`.
//! - [`estimate`]: token estimates before the call; [`bpe`]: exact counts (feature `tiktoken`).
//! - [`fleet`]: budgets shared by every Envoy on a rate-limit service (check / report).
//! - [`config`]: the `plans`, `prices` and `quota` sections.

pub mod bpe;
pub mod budget;
pub mod config;
pub mod estimate;
pub mod fleet;
pub mod headers;
pub mod money;
pub mod store;
pub mod window;

pub use budget::{
    release, reserve, settle, Estimate, Limit, LimitStatus, Metric, RejectReason, Rejection, Reservation,
    ReserveOptions, ReserveRequest, Settlement,
};
pub use config::{Estimator, Plan, Plans, QuotaSettings};
pub use estimate::Vocabulary;
pub use money::{Price, PriceTable, Rates, TokenCounts};
pub use store::{CasMismatch, Interleaver, MemoryStore, Store};
pub use window::Window;

use std::collections::HashMap;

/// Everything quota decides with, built once from the configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    settings: QuotaSettings,
    plans: Plans,
    prices: PriceTable,
    overrides: HashMap<String, Vec<Limit>>,
    /// Configured consumer names, when known ([`Policy::with_listed_consumers`]): the others
    /// are unlisted and their counters are capped ([`budget::unlisted_owner`]).
    listed: Option<std::collections::HashSet<String>>,
}

impl Policy {
    /// `overrides`: each consumer's own limits (replacing the plan's limits of the same name).
    pub fn new(
        settings: QuotaSettings,
        plans: Plans,
        prices: PriceTable,
        overrides: impl IntoIterator<Item = (String, Vec<Limit>)>,
    ) -> Self {
        let overrides = overrides.into_iter().filter(|(_, limits)| !limits.is_empty()).collect();
        Policy { settings, plans, prices, overrides, listed: None }
    }

    /// Names the configured consumers: any other name is unlisted and its counters are
    /// capped by `quota.max_unlisted_consumers` (`Config::parse` always does this).
    pub fn with_listed_consumers(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.listed = Some(names.into_iter().collect());
        self
    }

    /// Whose counters `consumer` spends: its own, or for an unlisted consumer past the cap a
    /// pool shared per plan ([`budget::unlisted_owner`]).
    fn counter_owner(&self, store: &dyn Store, consumer: &str, plan: Option<&str>) -> String {
        match &self.listed {
            Some(listed) if !listed.contains(consumer) => {
                budget::unlisted_owner(store, consumer, plan, self.settings.max_unlisted_consumers)
            }
            _ => consumer.to_string(),
        }
    }

    pub fn settings(&self) -> &QuotaSettings {
        &self.settings
    }

    pub fn plans(&self) -> &Plans {
        &self.plans
    }

    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    /// The consumer's plan, or the default plan when it names none.
    pub fn plan(&self, plan: Option<&str>) -> Option<&Plan> {
        plan.or(self.settings.default_plan.as_deref()).and_then(|name| self.plans.get(name))
    }

    /// The limits that apply to `consumer` on `plan` calling public model `model`.
    pub fn limits_for(&self, consumer: &str, plan: Option<&str>, model: &str) -> Vec<&Limit> {
        let own = self.overrides.get(consumer).map(Vec::as_slice).unwrap_or_default();
        let from_plan = self.plan(plan).map(|p| p.limits.as_slice()).unwrap_or_default();
        from_plan
            .iter()
            .filter(|l| !own.iter().any(|o| o.name == l.name))
            .chain(own.iter())
            .filter(|l| l.applies_to(model))
            .collect()
    }

    /// Whether any limit counts money (then every routed model needs a price).
    pub fn counts_money(&self) -> bool {
        self.plans
            .iter()
            .flat_map(|p| p.limits.iter())
            .chain(self.overrides.values().flatten())
            .any(|l| l.metric == Metric::MicroUsd)
    }

    /// The price of a provider model id.
    pub fn price(&self, upstream_model: &str) -> Option<&Price> {
        self.prices.get(upstream_model)
    }

    /// Estimated input tokens of a prompt without knowing the model: `exact` and `auto` give
    /// the fast estimate here. Admission uses [`Policy::prompt`] with [`Policy::reserve`].
    pub fn estimate_input(&self, prompt: &[u8]) -> u64 {
        match self.settings.estimator {
            Estimator::UpperBound => estimate::upper_bound_tokens(prompt.len()),
            Estimator::Fast | Estimator::Exact | Estimator::Auto => estimate::char_class_tokens(prompt),
        }
    }

    /// The BPE vocabulary of a provider model id: `quota.tokenizers` first, then the built-in
    /// rules; `None` for models without a public BPE.
    pub fn vocabulary(&self, upstream_model: &str) -> Option<Vocabulary> {
        self.settings.tokenizers.get(upstream_model).copied().or_else(|| Vocabulary::for_model(upstream_model))
    }

    /// The exact prompt tokens of `prompt` (a request body, or its `messages`/`input` value) for
    /// `upstream_model`, when this build counts exactly and the model has a public BPE.
    pub fn exact_input(&self, prompt: &[u8], upstream_model: &str) -> Option<u64> {
        self.exact_input_with_media(prompt, upstream_model, estimate::MEDIA_TOKENS)
    }

    /// [`Policy::exact_input`] with `media_each` tokens per image, audio clip or file.
    fn exact_input_with_media(&self, prompt: &[u8], upstream_model: &str, media_each: u64) -> Option<u64> {
        let vocabulary = self.vocabulary(upstream_model)?;
        let mut failed = false;
        let tokens = estimate::prompt_tokens_with_media(prompt, media_each, &mut |text| {
            bpe::count(vocabulary, text).unwrap_or_else(|| {
                failed = true;
                0
            })
        });
        (!failed).then_some(tokens)
    }

    /// The estimator's input estimate for `upstream_model`, without looking at budgets (`auto`
    /// gives the fast estimate; models without a public BPE fall back to it too).
    pub fn estimate_prompt(&self, prompt: &[u8], upstream_model: &str) -> u64 {
        match self.settings.estimator {
            Estimator::Fast | Estimator::Auto => estimate::char_class_tokens(prompt),
            Estimator::UpperBound => estimate::upper_bound_tokens(prompt.len()),
            Estimator::Exact => {
                self.exact_input(prompt, upstream_model).unwrap_or_else(|| estimate::char_class_tokens(prompt))
            }
        }
    }

    /// The input of [`Policy::reserve`] for a prompt: the configured estimator sizes it there,
    /// with the upstream model (for the BPE) and, in `auto`, the remaining budget. `prompt` is
    /// the request body or its `messages`/`input` value.
    pub fn prompt<'a>(&self, prompt: &'a [u8], max_output_tokens: Option<u64>) -> ReserveInput<'a> {
        ReserveInput::Prompt { prompt, max_output_tokens, media: Media::default() }
    }

    /// [`Policy::prompt`] for a prompt holding `media.count` images (audio clips, files), each
    /// costing at least `media.tokens_each` ([`estimate::media_tokens`]).
    pub fn prompt_with_media<'a>(
        &self,
        prompt: &'a [u8],
        max_output_tokens: Option<u64>,
        media: Media,
    ) -> ReserveInput<'a> {
        ReserveInput::Prompt { prompt, max_output_tokens, media }
    }

    /// The input estimate of a prompt with media: the configured estimator over its bytes plus
    /// the per-image minimum (exact counts put the minimum in place of each media part).
    fn estimate_with_media(&self, prompt: &[u8], upstream_model: &str, media: Media) -> u64 {
        let exact = (self.settings.estimator == Estimator::Exact)
            .then(|| self.exact_input_with_media(prompt, upstream_model, media.tokens_each))
            .flatten();
        exact.unwrap_or_else(|| {
            let bytes = match self.settings.estimator {
                Estimator::UpperBound => estimate::upper_bound_tokens(prompt.len()),
                _ => estimate::char_class_tokens(prompt),
            };
            bytes.saturating_add(media.tokens())
        })
    }

    /// Reserves budget for one request. `model` is the public name (for limits' model groups),
    /// `upstream_model` the provider's id (for the price).
    ///
    /// `estimate` is an [`Estimate`] (used as given) or [`Policy::prompt`] (sized here by
    /// `quota.estimator`; `auto` counts exactly only when the fast estimate with a margin would
    /// be refused or clamped, so the common case costs what `fast` costs).
    #[allow(clippy::too_many_arguments)]
    pub fn reserve<'p>(
        &self,
        store: &dyn Store,
        consumer: &str,
        plan: Option<&str>,
        model: &str,
        upstream_model: &str,
        estimate: impl Into<ReserveInput<'p>>,
        now_secs: u64,
    ) -> Result<Reservation, Rejection> {
        let limits = self.limits_for(consumer, plan, model);
        let price = self.price(upstream_model);
        let owner = if limits.is_empty() { consumer.to_string() } else { self.counter_owner(store, consumer, plan) };
        let run = |estimate: Estimate| {
            let request = ReserveRequest { consumer: &owner, limits: &limits, price, estimate };
            reserve(store, &request, &self.settings.reserve, now_secs)
        };
        let (prompt, max_output_tokens, media) = match estimate.into() {
            ReserveInput::Estimated(estimate) => return run(estimate),
            ReserveInput::Prompt { prompt, max_output_tokens, media } => (prompt, max_output_tokens, media),
        };
        let with_input = |input_tokens| Estimate { input_tokens, max_output_tokens };
        if self.settings.estimator != Estimator::Auto {
            return run(with_input(self.estimate_with_media(prompt, upstream_model, media)));
        }
        // auto: the fast estimate with a margin, unless that is refused or clamped (the input
        // estimate then decides the outcome) and the model has a public BPE: then exactly.
        let fast = estimate::char_class_tokens(prompt).saturating_add(media.tokens());
        let input_matters =
            limits.iter().any(|l| matches!(l.metric, Metric::InputTokens | Metric::TotalTokens | Metric::MicroUsd));
        if !input_matters || !bpe::AVAILABLE || self.vocabulary(upstream_model).is_none() {
            return run(with_input(fast));
        }
        let trial = run(with_input(estimate::auto_trial_tokens(fast, prompt.len())));
        let asked = max_output_tokens.unwrap_or(self.settings.reserve.default_max_output_tokens);
        let near = match &trial {
            Ok(reservation) => reservation.output_tokens() < asked,
            Err(rejection) => matches!(rejection.reason, RejectReason::Exhausted | RejectReason::TooLarge),
        };
        if !near {
            return trial;
        }
        match trial {
            Ok(reservation) => release(store, reservation),
            // Refused: count only if a fraction of the estimate would fit, so that a consumer
            // whose budget is spent cannot make every refusal pay for an exact count.
            Err(_) => match run(with_input(fast / estimate::AUTO_FLOOR_DIVISOR)) {
                Ok(reservation) => release(store, reservation),
                Err(rejection) => return Err(rejection),
            },
        }
        let exact = self.exact_input_with_media(prompt, upstream_model, media.tokens_each).unwrap_or(fast);
        run(with_input(exact))
    }
}

/// What [`Policy::reserve`] sizes a request from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReserveInput<'a> {
    /// An estimate made by the caller.
    Estimated(Estimate),
    /// The prompt: the configured estimator sizes it ([`Policy::prompt`]).
    Prompt { prompt: &'a [u8], max_output_tokens: Option<u64>, media: Media },
}

/// The images (audio clips, files) of a prompt and the least each costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Media {
    pub count: u64,
    pub tokens_each: u64,
}

impl Media {
    pub fn tokens(self) -> u64 {
        self.count.saturating_mul(self.tokens_each)
    }
}

impl From<Estimate> for ReserveInput<'_> {
    fn from(estimate: Estimate) -> Self {
        ReserveInput::Estimated(estimate)
    }
}
