//! Metric names and labels (OpenTelemetry GenAI conventions), computed from a finished
//! exchange. The shell only defines and records them.
//!
//! Names carry labels as `name;key=value;key=value`; the bootstrap's `stats_tags` turn
//! them into Prometheus labels. Every label value comes from the configuration or a
//! fixed set, so cardinality is bounded by the config, never by client input.

use crate::engine::Record;
use std::fmt::Write;

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
    let mut out = Vec::with_capacity(12);
    each_point(record, |kind, name, value| out.push(Point { kind, name: name.to_string(), value }));
    out
}

/// The points one finished exchange produces, each handed to `visit` with its name built in
/// one buffer the call reuses: no allocation per name (the registry looks names up by `&str`
/// and copies one only to define it). In V8 the names' allocations and copies were most of
/// the end of an exchange (3.5 us of 4.4 for 7 points; the 5 host calls 0.9).
pub fn each_point(record: &Record, mut visit: impl FnMut(MetricKind, &str, u64)) {
    let status = status_label(record.status);
    let base = [
        ";gen_ai_operation_name=",
        record.operation.map_or(NONE, |o| o.as_str()),
        ";gen_ai_provider_name=",
        record.provider.as_deref().unwrap_or(NONE),
        ";gen_ai_request_model=",
        record.model.as_deref().unwrap_or(NONE),
        ";gen_ai_target_model=",
        record.target_model.as_deref().unwrap_or(NONE),
    ];
    let status = [";http_status_code=", status.as_str()];
    let consumer = [";llm_consumer=", record.consumer_label.as_deref().unwrap_or(NONE)];
    // `name@version` from the config: versions' token use and error rates side by side.
    let template = match &record.template {
        Some((name, version)) => [";llm_prompt_template=", name.as_str(), "@", version.as_str()],
        None => [";llm_prompt_template=", NONE, "", ""],
    };
    let mut name = Name(String::with_capacity(320));
    visit(MetricKind::Counter, name.of(&[&[REQUESTS], &base, &consumer, &template, &status]), 1);
    visit(MetricKind::Histogram, name.of(&[&[REQUEST_DURATION], &base, &status]), record.duration_ms);
    let source = record.usage.source.as_str();
    for (token_type, count) in record.usage.by_type() {
        let labels = [";gen_ai_token_type=", token_type, ";usage_source=", source];
        visit(MetricKind::Histogram, name.of(&[&[TOKEN_USAGE], &base, &labels]), count);
        visit(MetricKind::Counter, name.of(&[&[TOKEN_COUNT], &base, &labels, &consumer, &template]), count);
    }
    if let Some(cost) = record.cost_micros {
        visit(MetricKind::Counter, name.of(&[&[COST], &base, &consumer]), cost);
    }
    if let Some((reason, rule)) = &record.rejection {
        let rule = [";llm_reason=", *reason, ";llm_guard_rule=", rule.as_deref().unwrap_or(NONE)];
        visit(MetricKind::Counter, name.of(&[&[REJECTIONS], &base, &consumer, &rule]), 1);
    }
    for (limit, remaining) in &record.budget_remaining {
        visit(
            MetricKind::Gauge,
            name.of(&[&[BUDGET_REMAINING], &consumer, &[";llm_limit=", limit.as_str()]]),
            *remaining,
        );
    }
    if let Some(ttft) = record.time_to_first_token_ms {
        visit(MetricKind::Histogram, name.of(&[&[TIME_TO_FIRST_TOKEN], &base]), ttft);
    }
    if let Some(tpot) = record.time_per_output_token_ms {
        visit(MetricKind::Histogram, name.of(&[&[TIME_PER_OUTPUT_TOKEN], &base]), tpot);
    }
    for point in attempt_points(record) {
        visit(point.kind, &point.name, point.value);
    }
}

/// The buffer metric names are built in.
struct Name(String);

impl Name {
    /// The groups' parts joined, in the buffer (valid until the next call).
    fn of(&mut self, groups: &[&[&str]]) -> &str {
        self.0.clear();
        groups.iter().flat_map(|group| group.iter()).for_each(|part| self.0.push_str(part));
        &self.0
    }
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

/// The access-log record: `model=gpt-4o provider=openai ... fallbacks=-`, every field always
/// present (`-` when it has no value, as Envoy prints missing filter state), so a line keeps
/// one shape. Values come from the configuration and the module's own numbers; whitespace in
/// one (a model name from the client) becomes `_` so the line stays one record of `key=value`.
/// Written straight into the line (no value formatted apart first: allocations cost in V8).
pub fn log_record(record: &Record) -> String {
    let u = &record.usage;
    let mut line = LogLine(String::with_capacity(320));
    line.text("model", &[record.requested_model.as_deref().unwrap_or_default()]);
    line.text("provider", &[record.provider.as_deref().unwrap_or_default()]);
    line.text("target", &[record.target_model.as_deref().unwrap_or_default()]);
    line.number("input_tokens", u.input);
    line.number("output_tokens", u.output);
    line.number("total_tokens", u.total());
    line.text("usage", &[u.source.as_str()]);
    line.number("llm_ms", Some(record.duration_ms));
    line.number("ttft_ms", record.time_to_first_token_ms);
    line.text("consumer", &[record.consumer.as_deref().unwrap_or_default()]);
    line.number("cost_usd_micros", record.cost_micros);
    match &record.template {
        Some((template, version)) => line.text("template", &[template, "@", version]),
        None => line.text("template", &[]),
    }
    line.number("cached_tokens", u.cached_input);
    line.number("reasoning_tokens", u.reasoning);
    if record.attempts.is_empty() {
        line.text("attempts", &[]);
        line.text("fallbacks", &[]);
    } else {
        line.text("attempts", &[&attempts_value(record)]);
        line.number("fallbacks", u64::try_from(record.attempts.len().saturating_sub(1)).ok());
    }
    line.0
}

/// The access-log line being written.
struct LogLine(String);

impl LogLine {
    fn key(&mut self, key: &str) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        self.0.push_str(key);
        self.0.push('=');
    }

    /// A text value from its parts; `-` when it is empty.
    fn text(&mut self, key: &str, parts: &[&str]) {
        self.key(key);
        if parts.iter().all(|p| p.is_empty()) {
            self.0.push('-');
        }
        for part in parts {
            if part.bytes().all(|b| b.is_ascii_graphic()) {
                // Printable ASCII (nearly every value) is copied as it is.
                self.0.push_str(part);
            } else {
                self.0.extend(part.chars().map(|c| if c.is_whitespace() || c.is_control() { '_' } else { c }));
            }
        }
    }

    fn number(&mut self, key: &str, value: Option<u64>) {
        self.key(key);
        match value {
            Some(n) => {
                let _ = write!(self.0, "{n}");
            }
            None => self.0.push('-'),
        }
    }
}

/// `provider/model:status:reason` for each attempt of a fallback chain, oldest first.
fn attempts_value(record: &Record) -> String {
    let attempts: Vec<String> = record
        .attempts
        .iter()
        .map(|a| {
            let status = a.status.map_or_else(|| "-".to_string(), |s| s.to_string());
            format!("{}/{}:{status}:{}", a.provider, a.target_model, a.reason)
        })
        .collect();
    attempts.join(",")
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
        out.push(("llm_attempts", attempts_value(record)));
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
    fn templates_attempts_and_unprintable_values_in_the_log_record() {
        use crate::engine::Attempt;
        let attempt = |provider: &str, status: Option<u16>, reason: &str| Attempt {
            provider: provider.to_string(),
            target_model: "m".to_string(),
            status,
            reason: reason.to_string(),
        };
        let chained = Record {
            requested_model: Some("tab\tand\u{7f}del".to_string()),
            template: Some(("sum mary".to_string(), "2".to_string())),
            time_to_first_token_ms: Some(0),
            attempts: vec![
                attempt("a", Some(429), "fallback"),
                attempt("b", None, "no_response"),
                attempt("c", Some(200), "ok"),
            ],
            ..record()
        };
        assert_eq!(
            log_record(&chained),
            "model=tab_and_del provider=oa target=gpt-4o input_tokens=4 output_tokens=3 total_tokens=7 \
             usage=reported llm_ms=12 ttft_ms=0 consumer=alice cost_usd_micros=9 template=sum_mary@2 cached_tokens=- \
             reasoning_tokens=- attempts=a/m:429:fallback,b/m:-:no_response,c/m:200:ok fallbacks=2"
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
