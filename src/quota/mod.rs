//! Budgets: plans of limits over windows, per-consumer overrides, prices in integer
//! micro-USD, and the reserve -> settle -> release protocol over a CAS [`Store`].
//!
//! - [`window`]: minute / hour / day / calendar-month windows from `now_secs`.
//! - [`money`]: decimal parsing into micro-units, [`Price`], the built-in [`PriceTable`].
//! - [`budget`]: [`reserve`], [`settle`], [`release`] and the overspend bound.
//! - [`store`]: the [`Store`] trait (proxy-wasm shared data), [`MemoryStore`], [`Interleaver`].
//! - [`headers`]: `x-ratelimit-*` and `Retry-After`.
//! - [`estimate`]: token estimates before the call.
//! - [`config`]: the `plans`, `prices` and `quota` sections.

pub mod budget;
pub mod config;
pub mod estimate;
pub mod headers;
pub mod money;
pub mod store;
pub mod window;

pub use budget::{
    release, reserve, settle, Estimate, Limit, LimitStatus, Metric, RejectReason, Rejection, Reservation,
    ReserveOptions, ReserveRequest, Settlement,
};
pub use config::{Estimator, Plan, Plans, QuotaSettings};
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
        Policy { settings, plans, prices, overrides }
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

    /// Estimated input tokens of a prompt, by the configured estimator.
    pub fn estimate_input(&self, prompt: &[u8]) -> u64 {
        match self.settings.estimator {
            Estimator::Fast => estimate::estimate_tokens(prompt),
            Estimator::UpperBound => estimate::upper_bound_tokens(prompt.len()),
        }
    }

    /// Reserves budget for one request. `model` is the public name (for limits' model groups),
    /// `upstream_model` the provider's id (for the price).
    #[allow(clippy::too_many_arguments)]
    pub fn reserve(
        &self,
        store: &dyn Store,
        consumer: &str,
        plan: Option<&str>,
        model: &str,
        upstream_model: &str,
        estimate: Estimate,
        now_secs: u64,
    ) -> Result<Reservation, Rejection> {
        let limits = self.limits_for(consumer, plan, model);
        let request = ReserveRequest { consumer, limits: &limits, price: self.price(upstream_model), estimate };
        reserve(store, &request, &self.settings.reserve, now_secs)
    }
}
