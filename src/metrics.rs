//! Metric names and labels (OpenTelemetry GenAI conventions), computed from a finished
//! exchange. The shell only defines and records them.
//!
//! Names carry labels as `name;key=value;key=value`; the bootstrap's `stats_tags` turn
//! them into Prometheus labels. Every label value comes from the configuration or a
//! fixed set, so cardinality is bounded by the config, never by client input.

use crate::engine::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Histogram,
    /// Set to the value (the last writer wins).
    Gauge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    pub kind: MetricKind,
    /// Full stat name with its labels.
    pub name: String,
    pub value: u64,
}

pub const REQUESTS: &str = "gen_ai_server_requests";
pub const TOKEN_USAGE: &str = "gen_ai_client_token_usage";
/// Exact token totals: Envoy's histogram sums are approximations (log-linear buckets).
pub const TOKEN_COUNT: &str = "gen_ai_client_token_count";
pub const REQUEST_DURATION: &str = "gen_ai_server_request_duration";
pub const TIME_TO_FIRST_TOKEN: &str = "gen_ai_server_time_to_first_token";
pub const TIME_PER_OUTPUT_TOKEN: &str = "gen_ai_server_time_per_output_token";
/// Spend at the configured prices, in micro-USD (exact integer arithmetic).
pub const COST: &str = "llm_gateway_cost_usd_micros";
/// What remains of a consumer's budget limit in its current window, after the last request
/// settled (tokens, requests or micro-USD, by the limit's metric).
pub const BUDGET_REMAINING: &str = "llm_gateway_budget_remaining";
/// Requests the gateway refused itself, by reason (and guard rule, when a guard refused).
pub const REJECTIONS: &str = "llm_gateway_rejections";

/// A fallback chain's attempts, by target, provider status and outcome (`ok`, `fallback`,
/// `error`, `no_response`).
pub const ATTEMPTS: &str = "llm_gateway_attempts";
/// Attempts after the first of a request (requests answered, or failed, by a fallback).
pub const FALLBACKS: &str = "llm_gateway_fallbacks";

/// Every label key the module emits: the bootstrap needs one `stats_tags` entry for each.
pub const LABEL_KEYS: [&str; 12] = [
    "llm_consumer",
    "llm_limit",
    "llm_prompt_template",
    "llm_reason",
    "llm_guard_rule",
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_target_model",
    "gen_ai_token_type",
    "http_status_code",
    "usage_source",
];

/// Label value for a request that never resolved to a configured name.
const NONE: &str = "none";

/// The points one finished exchange produces.
pub fn points(record: &Record) -> Vec<Point> {
    // Names are joined from their parts (one allocation each): `format!` costs several times
    // more per name, and a request formats 6 to 10 of them.
    let base = concat(&[
        ";gen_ai_operation_name=",
        record.operation.map_or(NONE, |o| o.as_str()),
        ";gen_ai_provider_name=",
        record.provider.as_deref().unwrap_or(NONE),
        ";gen_ai_request_model=",
        record.model.as_deref().unwrap_or(NONE),
        ";gen_ai_target_model=",
        record.target_model.as_deref().unwrap_or(NONE),
    ]);
    let status = concat(&[";http_status_code=", &status_label(record.status)]);
    let consumer = concat(&[";llm_consumer=", record.consumer_label.as_deref().unwrap_or(NONE)]);
    // `name@version` from the config: versions' token use and error rates side by side.
    let template = match &record.template {
        Some((name, version)) => concat(&[";llm_prompt_template=", name, "@", version]),
        None => concat(&[";llm_prompt_template=", NONE]),
    };
    let mut out = Vec::with_capacity(12);
    out.push(Point {
        kind: MetricKind::Counter,
        name: concat(&[REQUESTS, &base, &consumer, &template, &status]),
        value: 1,
    });
    out.push(Point {
        kind: MetricKind::Histogram,
        name: concat(&[REQUEST_DURATION, &base, &status]),
        value: record.duration_ms,
    });
    let source = record.usage.source.as_str();
    for (token_type, count) in record.usage.by_type() {
        let labels = concat(&[&base, ";gen_ai_token_type=", token_type, ";usage_source=", source]);
        out.push(Point { kind: MetricKind::Histogram, name: concat(&[TOKEN_USAGE, &labels]), value: count });
        let name = concat(&[TOKEN_COUNT, &labels, &consumer, &template]);
        out.push(Point { kind: MetricKind::Counter, name, value: count });
    }
    if let Some(cost) = record.cost_micros {
        out.push(Point { kind: MetricKind::Counter, name: concat(&[COST, &base, &consumer]), value: cost });
    }
    if let Some((reason, rule)) = &record.rejection {
        let rule = rule.as_deref().unwrap_or(NONE);
        let name = format!("{REJECTIONS}{base}{consumer};llm_reason={reason};llm_guard_rule={rule}");
        out.push(Point { kind: MetricKind::Counter, name, value: 1 });
    }
    for (limit, remaining) in &record.budget_remaining {
        let name = format!("{BUDGET_REMAINING}{consumer};llm_limit={limit}");
        out.push(Point { kind: MetricKind::Gauge, name, value: *remaining });
    }
    if let Some(ttft) = record.time_to_first_token_ms {
        out.push(Point { kind: MetricKind::Histogram, name: concat(&[TIME_TO_FIRST_TOKEN, &base]), value: ttft });
    }
    if let Some(tpot) = record.time_per_output_token_ms {
        out.push(Point { kind: MetricKind::Histogram, name: concat(&[TIME_PER_OUTPUT_TOKEN, &base]), value: tpot });
    }
    out.extend(attempt_points(record));
    out
}

/// The parts joined, in one allocation of the exact size.
fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        out.push_str(part);
    }
    out
}

/// One counter per attempt of a fallback chain, and the request's fallbacks.
fn attempt_points(record: &Record) -> Vec<Point> {
    let Some(model) = record.model.as_deref().filter(|_| !record.attempts.is_empty()) else { return Vec::new() };
    let mut out: Vec<Point> = record
        .attempts
        .iter()
        .map(|a| {
            let name = format!(
                "{ATTEMPTS};gen_ai_request_model={model};gen_ai_provider_name={};gen_ai_target_model={};\
                 http_status_code={};llm_reason={}",
                a.provider,
                a.target_model,
                a.status.map_or_else(|| "0".to_string(), status_label),
                a.reason
            );
            Point { kind: MetricKind::Counter, name, value: 1 }
        })
        .collect();
    let fallbacks = u64::try_from(record.attempts.len().saturating_sub(1)).unwrap_or(u64::MAX);
    out.push(Point {
        kind: MetricKind::Counter,
        name: format!("{FALLBACKS};gen_ai_request_model={model}"),
        value: fallbacks,
    });
    out
}

/// HTTP status codes are a bounded set; 0 means the client left before any response.
fn status_label(status: u16) -> String {
    if (100..600).contains(&status) {
        status.to_string()
    } else {
        "0".to_string()
    }
}

/// The filter state (`wasm.llm_log`) holding the exchange's whole access-log record, written
/// once at its end: one host call instead of one per field (each costs several microseconds in
/// V8). The access log prints it with `%FILTER_STATE(wasm.llm_log:PLAIN)%`.
pub const LOG_RECORD: &str = "llm_log";

/// The record's fields in the order they are printed, with the name each has in the line.
const LOG_RECORD_FIELDS: [(&str, &str); 16] = [
    ("model", "llm_model"),
    ("provider", "llm_provider"),
    ("target", "llm_target_model"),
    ("input_tokens", "llm_input_tokens"),
    ("output_tokens", "llm_output_tokens"),
    ("total_tokens", "llm_total_tokens"),
    ("usage", "llm_usage_source"),
    ("llm_ms", "llm_duration_ms"),
    ("ttft_ms", "llm_ttft_ms"),
    ("consumer", "llm_consumer"),
    ("cost_usd_micros", "llm_cost_usd_micros"),
    ("template", "llm_template"),
    ("cached_tokens", "llm_cached_tokens"),
    ("reasoning_tokens", "llm_reasoning_tokens"),
    ("attempts", "llm_attempts"),
    ("fallbacks", "llm_fallbacks"),
];

/// The access-log record: `model=gpt-4o provider=openai ... fallbacks=-`, every field always
/// present (`-` when it has no value, as Envoy prints missing filter state), so a line keeps
/// one shape. Values come from the configuration and the module's own numbers; whitespace in
/// one (a model name from the client) becomes `_` so the line stays one record of `key=value`.
pub fn log_record(record: &Record) -> String {
    let mut fields = log_fields(record);
    let named = [
        ("llm_model", record.requested_model.clone()),
        ("llm_provider", record.provider.clone()),
        ("llm_target_model", record.target_model.clone()),
        ("llm_consumer", record.consumer.clone()),
    ];
    for (key, value) in named {
        if let Some(value) = value.filter(|_| !fields.iter().any(|(k, _)| *k == key)) {
            fields.push((key, value));
        }
    }
    let mut line = String::with_capacity(320);
    for (name, key) in LOG_RECORD_FIELDS {
        let value = fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(name);
        line.push('=');
        match value {
            // Printable ASCII (nearly every value) is copied as it is.
            Some(value) if value.bytes().all(|b| b.is_ascii_graphic()) => line.push_str(value),
            Some(value) => {
                line.extend(value.chars().map(|c| if c.is_whitespace() || c.is_control() { '_' } else { c }))
            }
            None => line.push('-'),
        }
    }
    line
}

/// Access-log fields for the end of the exchange, by their filter-state names (the record's
/// parts; `llm_tokens` is also its own filter state, for other filters).
pub fn log_fields(record: &Record) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let u = &record.usage;
    let counts = [
        ("llm_input_tokens", u.input),
        ("llm_output_tokens", u.output),
        ("llm_total_tokens", u.total()),
        ("llm_cached_tokens", u.cached_input),
        ("llm_reasoning_tokens", u.reasoning),
        ("llm_ttft_ms", record.time_to_first_token_ms),
        ("llm_duration_ms", Some(record.duration_ms)),
    ];
    for (key, value) in counts {
        if let Some(v) = value {
            out.push((key, v.to_string()));
        }
    }
    out.push(("llm_usage_source", u.source.as_str().to_string()));
    if let Some(cost) = record.cost_micros {
        out.push(("llm_cost_usd_micros", cost.to_string()));
    }
    if let Some((template, version)) = &record.template {
        out.push(("llm_template", format!("{template}@{version}")));
    }
    if !record.attempts.is_empty() {
        // provider/model:status:reason for each attempt, oldest first.
        let attempts: Vec<String> = record
            .attempts
            .iter()
            .map(|a| {
                let status = a.status.map_or_else(|| "-".to_string(), |s| s.to_string());
                format!("{}/{}:{status}:{}", a.provider, a.target_model, a.reason)
            })
            .collect();
        out.push(("llm_attempts", attempts.join(",")));
        out.push(("llm_fallbacks", record.attempts.len().saturating_sub(1).to_string()));
        out.extend(record.provider.clone().map(|p| ("llm_provider", p)));
        out.extend(record.target_model.clone().map(|m| ("llm_target_model", m)));
    }
    out.extend(consumer_tokens(record).map(|total| ("llm_tokens", total.to_string())));
    out
}

/// The tokens an identified consumer's request consumed, for the access log and for other
/// filters (`%FILTER_STATE(wasm.llm_tokens:PLAIN)%`); fleet budgets use `quota.fleet`.
pub fn consumer_tokens(record: &Record) -> Option<u64> {
    record.consumer.as_ref().and(record.usage.total())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{Usage, UsageSource};

    fn record() -> Record {
        Record {
            operation: None,
            model: Some("gpt".to_string()),
            requested_model: Some("my model".to_string()),
            provider: Some("oa".to_string()),
            target_model: Some("gpt-4o".to_string()),
            status: 200,
            stream: false,
            usage: Usage { input: Some(4), output: Some(3), source: UsageSource::Reported, ..Usage::default() },
            duration_ms: 12,
            time_to_first_token_ms: None,
            time_per_output_token_ms: None,
            consumer: Some("alice".to_string()),
            consumer_label: Some("alice".to_string()),
            cost_micros: Some(9),
            template: None,
            rejection: None,
            budget_remaining: Vec::new(),
            attempts: Vec::new(),
        }
    }

    #[test]
    fn the_log_record_holds_every_field_in_order_with_dashes_for_none() {
        assert_eq!(
            log_record(&record()),
            "model=my_model provider=oa target=gpt-4o input_tokens=4 output_tokens=3 total_tokens=7 \
             usage=reported llm_ms=12 ttft_ms=- consumer=alice cost_usd_micros=9 template=- cached_tokens=- \
             reasoning_tokens=- attempts=- fallbacks=-"
        );
    }

    #[test]
    fn a_record_of_nothing_routed_is_all_dashes_but_duration_and_source() {
        let empty = Record {
            requested_model: None,
            provider: None,
            target_model: None,
            consumer: None,
            cost_micros: None,
            usage: Usage::default(),
            ..record()
        };
        let line = log_record(&empty);
        assert!(line.starts_with("model=- provider=- target=- input_tokens=- "), "{line}");
        assert!(line.contains(" llm_ms=12 "), "{line}");
    }
}
