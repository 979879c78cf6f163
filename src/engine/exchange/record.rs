//! Step 5 of a request: the record metrics and the access log report, once the exchange
//! ends. [`Exchange::finish`] settles the budget and returns it; [`Exchange::record`] only
//! reads the exchange.

use super::Exchange;
use crate::engine::{Attempt, Operation, Quota};
use crate::quota::TokenCounts;
use crate::usage::{Usage, UsageSource};

/// The finished exchange: what metrics and the access log report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub operation: Option<Operation>,
    /// Public model name as routed (a configured name, never the alias or raw input).
    pub model: Option<String>,
    /// The name the client asked for (may be unknown or an alias). Logs only, not metrics.
    pub requested_model: Option<String>,
    pub provider: Option<String>,
    pub target_model: Option<String>,
    pub status: u16,
    pub stream: bool,
    pub usage: Usage,
    pub duration_ms: u64,
    pub time_to_first_token_ms: Option<u64>,
    pub time_per_output_token_ms: Option<u64>,
    /// The identified consumer (logs), and its metric label: configured consumers by name,
    /// any other identity (an unlisted JWT subject) as `unlisted`, so labels stay bounded.
    pub consumer: Option<String>,
    pub consumer_label: Option<String>,
    /// Cost of the usage at the configured price, in micro-USD.
    pub cost_micros: Option<u64>,
    /// Prompt template and version used.
    pub template: Option<(String, String)>,
    /// Why the gateway refused the request itself (`GatewayError::reason`), and the guard
    /// rule when a guard did.
    pub rejection: Option<(&'static str, Option<String>)>,
    /// What remains of each budget limit the request was settled against (configured
    /// consumers only, so the gauges stay bounded): (limit name, remaining).
    pub budget_remaining: Vec<(String, u64)>,
    /// A fallback chain's attempts, oldest first (empty for a single target).
    pub attempts: Vec<Attempt>,
}

impl Exchange {
    /// Ends the exchange (response complete, or the client went away). Returns the record
    /// once; later calls return `None`.
    pub fn finish(&mut self, now_ms: u64, quota: Option<Quota<'_>>) -> Option<Record> {
        if self.outcome.finished {
            return None;
        }
        self.outcome.finished = true;
        self.response.body.abandon(&mut self.response.meter, now_ms);
        let answered = self.response.status.is_some_and(|s| (200..300).contains(&s)) && self.route.is_some();
        // An answer is charged what the provider reported, completed by the estimate where
        // the report is missing, partial or cut short.
        let meter = &self.response.meter;
        let usage = if answered { meter.settled_usage(self.admission.input_estimate) } else { meter.usage };
        self.settle(quota, &usage, now_ms);
        Some(self.record(usage, now_ms))
    }

    /// Settles the reservation to what was used (or releases it when the provider failed).
    fn settle(&mut self, quota: Option<Quota<'_>>, usage: &Usage, now_ms: u64) {
        let (Some(quota), Some(reservation)) = (quota, self.admission.reservation.take()) else { return };
        let answered = self.response.status.is_some_and(|s| (200..300).contains(&s));
        if answered || usage.source != UsageSource::None {
            let counts = TokenCounts::from_usage(usage, reservation.reserved_counts());
            self.outcome.settled = Some(crate::quota::settle(quota.store, reservation, &counts, now_ms / 1000));
        } else {
            crate::quota::release(quota.store, reservation);
        }
    }

    /// The record of the exchange as it stands, charged `usage`, ended at `now_ms`.
    fn record(&self, usage: Usage, now_ms: u64) -> Record {
        let meter = &self.response.meter;
        let stream = self.admission.stream;
        let duration_ms = now_ms.saturating_sub(self.started_ms);
        let time_to_first_token_ms = meter.first_token_ms.filter(|_| stream).map(|t| t.saturating_sub(self.started_ms));
        let time_per_output_token_ms = match (meter.first_token_ms, usage.output) {
            (Some(first), Some(out)) if stream && out > 1 => Some(now_ms.saturating_sub(first) / (out - 1)),
            _ => None,
        };
        let route = self.route.as_ref();
        let consumer = self.request.consumer.as_ref();
        let listed = self.request.consumer_listed;
        Record {
            operation: self.request.operation,
            model: route.map(|r| r.model.clone()),
            requested_model: self.request.requested_model.clone(),
            // A fallback chain that no target answered names no provider.
            provider: route.map(|r| r.provider.clone()).filter(|p| !p.is_empty()),
            target_model: route.filter(|r| !r.provider.is_empty()).map(|r| r.target_model.clone()),
            // No response at all: the client went away (Envoy logs 0 too).
            status: self.response.status.unwrap_or(0),
            stream,
            usage,
            duration_ms,
            time_to_first_token_ms,
            time_per_output_token_ms,
            consumer: consumer.map(|c| c.name.clone()),
            consumer_label: consumer.map(|c| if listed { c.name.clone() } else { "unlisted".to_string() }),
            cost_micros: self.outcome.settled.as_ref().and_then(|s| s.cost_micros),
            template: self.admission.template.clone(),
            rejection: self.outcome.rejection.clone(),
            budget_remaining: match &self.outcome.settled {
                Some(settled) if listed => settled.remaining.clone(),
                _ => Vec::new(),
            },
            attempts: self.outcome.attempts.clone(),
        }
    }
}
