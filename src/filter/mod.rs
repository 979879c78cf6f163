//! The proxy-wasm shell: moves headers and bytes between Envoy and the engine, applies
//! what the engine decides, and records metrics and access-log fields. No decisions here:
//! what it applies is decided in the core (`crate::engine`, `crate::effects`).

mod attempt;
mod first_event;
mod fleet;
mod host;
mod logger;
mod profile;

use crate::effects::deferred::{self, APPLIER_CONFIG, DEFERRED_HEADERS};
use crate::effects::header_changes::{changes, header_in, remove_untrusted};
use crate::effects::metric_registry::MetricRegistry;
use crate::effects::roll::Roll;
use crate::effects::trusted::read_trusted;
use crate::engine::{
    BodyAction, Exchange, Gateway, HeaderOp, LocalReply, Record, RequestAction, RequestHead, ResponseOrigin,
};
use crate::metrics;
use crate::quota::fleet::{ReportQueue, REPORT_METHOD};
use crate::quota::{CasMismatch, Store};
use host::{HostMetrics, OrWarn};
use profile::Phase;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

proxy_wasm::main! {{
    logger::init(log::LevelFilter::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// The VM environment variable that turns on the host-call count (measurement only).
const COUNT_HOST_CALLS: &str = "LLM_GATEWAY_COUNT_HOST_CALLS";

/// How often the root context sends the fleet reports the VM's streams queued, and hands the
/// metrics they gathered to the host (`MetricRegistry::flush`): counters and gauges reach
/// Prometheus at most this much (plus the worker's own delay) after a request ends.
const FLEET_REPORT_TICK: std::time::Duration = std::time::Duration::from_millis(20);

#[derive(Default)]
struct Root {
    /// This instance only applies deferred headers.
    applier: bool,
    /// This instance runs per attempt, as an upstream HTTP filter (fallback chains).
    per_attempt: bool,
    /// This instance watches attempts' streams for their first event (`filter::first_event`).
    first_event: bool,
    /// `LLM_GATEWAY_COUNT_HOST_CALLS` is set in the VM's environment: log the host calls of
    /// each exchange (`host::take_calls`).
    count_host_calls: bool,
    gateway: Option<Rc<Gateway>>,
    metrics: Rc<RefCell<MetricRegistry>>,
    roll: Rc<Cell<Roll>>,
    /// Fleet-budget reports queued by the streams, sent on the tick (`filter::fleet`).
    reports: Rc<RefCell<ReportQueue>>,
    /// Reports given up so far (logged when it grows).
    dropped_reports: u64,
}

impl Root {
    /// Takes the instance's role from its configuration: `None` for the roles that run no
    /// gateway (applier, first-event watcher), else the gateway's configuration.
    fn take_role(&mut self, json: Vec<u8>) -> Option<Vec<u8>> {
        if deferred::is_role_config(&json, APPLIER_CONFIG) {
            self.applier = true;
            return None;
        }
        if deferred::is_role_config(&json, crate::engine::FIRST_EVENT_CONFIG) {
            self.first_event = true;
            return None;
        }
        match attempt::attempt_config(&json) {
            Some(gateway) => {
                self.per_attempt = true;
                Some(gateway)
            }
            None => Some(json),
        }
    }

    /// A valid configuration: the gateway runs (the tick only downstream: only the
    /// downstream instance queues fleet reports and records metrics).
    fn start(&mut self, gateway: Gateway) {
        if !self.per_attempt {
            self.set_tick_period(FLEET_REPORT_TICK);
        }
        self.gateway = Some(Rc::new(gateway));
        self.roll.set(Roll::seeded(host::now_nanos()));
    }

    /// Sends the queued fleet reports that are due, and logs the ones given up since the
    /// last tick.
    fn send_fleet_reports(&mut self) {
        let Some(fleet) = self.gateway.as_ref().and_then(|g| g.fleet()) else { return };
        let mut reports = self.reports.borrow_mut();
        if let Some(error) = reports.send_waiting(host::now_ms(), |message| fleet::call(fleet, REPORT_METHOD, message))
        {
            host::log(LogLevel::Warn, &format!("llm-gateway: fleet report not sent, will retry: {error}"));
        }
        if reports.dropped > self.dropped_reports {
            let lost = reports.dropped - self.dropped_reports;
            self.dropped_reports = reports.dropped;
            host::log(
                LogLevel::Error,
                &format!("llm-gateway: {lost} fleet report(s) given up: their usage is not charged fleet-wide"),
            );
        }
    }

    fn new_stream(&self, gateway: Rc<Gateway>, context_id: u32) -> Stream {
        Stream {
            gateway,
            metrics: self.metrics.clone(),
            roll: self.roll.clone(),
            reports: self.reports.clone(),
            exchange: None,
            fleet_check: None,
            count_host_calls: self.count_host_calls,
            context_id,
            held: false,
            finished: false,
        }
    }
}

impl Context for Root {
    fn on_done(&mut self) -> bool {
        // The VM goes away (a new configuration, Envoy stopping): what was gathered counts.
        self.metrics.borrow_mut().flush(&mut HostMetrics);
        true
    }

    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize, _trailers: usize) {
        let taken = fleet::report_taken(num_headers, body_size);
        self.reports.borrow_mut().answered(token, taken, host::now_ms());
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let json = host::buffer(BufferType::PluginConfiguration, 0, size).unwrap_or_default();
        let Some(json) = self.take_role(json) else { return true };
        self.count_host_calls = std::env::var_os(COUNT_HOST_CALLS).is_some();
        match Gateway::from_json(&json, &|name| std::env::var(name).ok()) {
            Ok(gateway) => {
                self.start(gateway);
                true
            }
            Err(error) => {
                host::log(LogLevel::Critical, &format!("llm-gateway: invalid plugin configuration: {error}"));
                false
            }
        }
    }

    fn on_tick(&mut self) {
        // Shared by every request of the tick, so not counted as any one request's calls.
        host::uncounted(|| self.metrics.borrow_mut().flush(&mut HostMetrics));
        self.send_fleet_reports();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        if self.applier {
            return Some(Box::new(Applier));
        }
        if self.first_event {
            return Some(Box::new(first_event::Watcher::new(context_id)));
        }
        let gateway = self.gateway.clone()?;
        if self.per_attempt {
            return Some(Box::new(attempt::AttemptStream::new(gateway, context_id)));
        }
        Some(Box::new(self.new_stream(gateway, context_id)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    gateway: Rc<Gateway>,
    metrics: Rc<RefCell<MetricRegistry>>,
    roll: Rc<Cell<Roll>>,
    reports: Rc<RefCell<ReportQueue>>,
    exchange: Option<Exchange>,
    /// The callout token of the fleet-budget check the request waits for.
    fleet_check: Option<u32>,
    count_host_calls: bool,
    context_id: u32,
    /// The response headers wait for an error-code hop (`filter::attempt`), which resumes them.
    held: bool,
    /// `finish` ran.
    finished: bool,
}

/// The response headers as the downstream instance reads them.
struct ResponseHead {
    headers: Vec<(String, String)>,
    status: u16,
    content_type: Option<String>,
    origin: ResponseOrigin,
}

impl ResponseHead {
    /// One host call for every header instead of one per header read, and the response's
    /// origin: `via_upstream` for the provider's own response; anything else is Envoy's
    /// local reply (`upstream_reset_before_response_started{...}`, `response_timeout`...).
    fn read() -> Self {
        let headers = host::headers(MapType::HttpResponseHeaders).unwrap_or_default();
        let status = header_in(&headers, ":status").and_then(|s| s.parse().ok()).unwrap_or(0);
        let content_type = header_in(&headers, "content-type").map(str::to_string);
        let details = ResponseOrigin::needs_code_details(status)
            .then(|| host::property(&["response", "code_details"]).ok().flatten())
            .flatten();
        let origin = ResponseOrigin::from_code_details(details.as_deref().map(String::from_utf8_lossy).as_deref());
        ResponseHead { headers, status, content_type, origin }
    }

    fn header(&self, name: &str) -> Option<String> {
        header_in(&self.headers, name).map(str::to_string)
    }
}

impl Stream {
    /// The VM's next random roll.
    fn roll(&self) -> u64 {
        let mut roll = self.roll.get();
        let value = roll.next_value();
        self.roll.set(roll);
        value
    }

    fn reply(&self, reply: &LocalReply) -> Action {
        reply_with(reply)
    }

    /// The values Envoy's `json_to_metadata` wrote in the `llm` namespace (the body's `model`,
    /// `stream`, `body_error`): the namespace in one host call, not one per key. Envoy returns
    /// a metadata map in the ABI's header-map encoding (measured with Envoy 1.40).
    fn body_metadata(&self) -> Vec<(String, String)> {
        let bytes = host::property(&["metadata", "filter_metadata", "llm"]).ok().flatten();
        bytes.map(|b| crate::header_map::decode(&b)).unwrap_or_default()
    }

    /// The request's headers (untrusted ones already taken out) and its body metadata
    /// through the gateway: the exchange and what to do with the request.
    fn decide_request(&self, headers: &[(String, String)], end_of_stream: bool) -> (Exchange, RequestAction) {
        let request_header = |name: &str| header_in(headers, name);
        let metadata = self.body_metadata();
        let metadata_string = |key: &str| metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let trusted = self.gateway.trusted_sources();
        let metadata_property = |path: &[&str]| host::property(path).ok().flatten();
        let trusted_consumer = trusted.and_then(|t| read_trusted(&t.consumer, headers, metadata_property));
        let trusted_plan =
            trusted.and_then(|t| t.plan.as_ref()).and_then(|p| read_trusted(p, headers, metadata_property));
        let head = RequestHead {
            method: request_header(":method").unwrap_or_default(),
            path: request_header(":path").unwrap_or_default(),
            body_model: metadata_string("model"),
            body_stream: metadata_string("stream") == Some("1"),
            body_invalid: metadata_string("body_error").is_some(),
            header_model: request_header(&self.gateway.config().model_header),
            authorization: request_header("authorization"),
            x_api_key: request_header("x-api-key"),
            trusted_consumer: trusted_consumer.as_deref(),
            trusted_plan: trusted_plan.as_deref(),
            anthropic_version: request_header("anthropic-version").is_some(),
            no_body: end_of_stream,
        };
        self.gateway.on_request_headers(&head, self.roll(), host::now_ms())
    }

    /// Filter state for other filters at request time. Only the consumer is filter state of
    /// its own (RBAC, rate limits); the access log reads the whole record
    /// (`metrics::LOG_RECORD`). A fallback chain's plan, for each attempt to read.
    fn publish_route(&self, exchange: &Exchange) {
        for (key, value) in exchange.route_fields() {
            if let Some(value) = value.filter(|_| key == "llm_consumer") {
                host::set_property(&[key], value.as_bytes()).or_warn("setting llm_consumer");
            }
        }
        if let Some(plan) = exchange.attempt_plan() {
            host::set_property(&[crate::engine::PLAN_STATE], plan.encode().as_bytes()).or_warn("setting the plan");
            let context = self.context_id.to_string();
            host::set_property(&[crate::engine::DOWNSTREAM_CONTEXT_STATE], context.as_bytes())
                .or_warn("setting the downstream context");
        }
    }

    /// A forwarded request: the exchange's header changes and the chosen key's, where they
    /// change something.
    fn forward(&mut self, headers: &mut Vec<(String, String)>, mut ops: Vec<HeaderOp>) -> Action {
        let (roll, now) = (self.roll(), host::now_ms());
        if let Some(exchange) = self.exchange.as_mut() {
            ops.extend(self.gateway.choose_key(exchange, roll, now, &SharedStore));
        }
        apply_changes(MapType::HttpRequestHeaders, headers, ops);
        Action::Continue
    }

    /// The complete request body, as buffered in the host: admission, then the body the
    /// provider gets, or a local reply.
    fn admit_body(&mut self, body: &[u8]) -> Action {
        let Some(exchange) = self.exchange.as_mut() else {
            return Action::Continue;
        };
        let action =
            exchange.on_request_body(body, host::now_ms(), self.gateway.quota(&SharedStore), self.gateway.prompts());
        defer_headers(exchange);
        match action {
            BodyAction::Unchanged => self.check_fleet(),
            BodyAction::Replace(new_body) => {
                // The same bytes (nothing to patch): no replace, no host call.
                if new_body != body {
                    host::set_buffer(BufferType::HttpRequestBody, 0, body.len(), &new_body)
                        .or_warn("replacing the request body");
                }
                self.check_fleet()
            }
            BodyAction::Reply(reply) => self.reply(&reply),
        }
    }

    /// The last step of admission when fleet-wide budgets are configured: ask the
    /// rate-limit service and hold the request until it answers.
    fn check_fleet(&mut self) -> Action {
        let (Some(fleet), Some(exchange)) = (self.gateway.fleet(), self.exchange.as_ref()) else {
            return Action::Continue;
        };
        let Some(who) = exchange.fleet_descriptor().filter(|_| exchange.needs_fleet_check()) else {
            return Action::Continue;
        };
        let verdict = match fleet::call(fleet, crate::quota::fleet::CHECK_METHOD, &fleet.check(&who)) {
            Ok(token) => {
                self.fleet_check = Some(token);
                return Action::Pause;
            }
            Err(reason) => {
                host::log(LogLevel::Warn, &format!("llm-gateway: fleet check not sent: {reason}"));
                fleet.verdict(14, &[])
            }
        };
        self.apply_fleet_verdict(&verdict)
    }

    fn apply_fleet_verdict(&mut self, verdict: &crate::quota::fleet::Verdict) -> Action {
        let Some(exchange) = self.exchange.as_mut() else { return Action::Continue };
        let reply = exchange.on_fleet_verdict(verdict);
        if let Some(line) = exchange.take_log_line() {
            host::log(LogLevel::Warn, &line);
        }
        match reply {
            Some(reply) => self.reply(&reply),
            None => Action::Continue,
        }
    }

    /// At the response headers of a fallback chain: what each attempt reported, and the
    /// target that answered; true when the headers wait for the attempt's error-code hop
    /// (the attempt reads the error's body, may hop, and resumes them).
    fn note_attempts(&mut self, origin: &ResponseOrigin) -> bool {
        let Some(exchange) = self.exchange.as_mut() else { return false };
        let Some(route) = exchange.attempt_plan().map(|plan| plan.route.clone()) else { return false };
        let raw = host::property(&[crate::engine::ATTEMPTS_STATE]).ok().flatten().unwrap_or_default();
        let attempts = crate::engine::decode_attempts(&raw);
        if attempts.last().is_some_and(|a| a.reason == crate::engine::HOLD_REASON) {
            attempt::hold_downstream(exchange);
            self.held = true;
            return true;
        }
        let answered = match origin {
            ResponseOrigin::Upstream => self.gateway.answering_attempt(&route, &attempts),
            ResponseOrigin::Envoy(_) => None,
        };
        exchange.record_attempts(attempts, answered, self.gateway.quota(&SharedStore));
        apply(MapType::HttpResponseHeaders, HeaderOp::Remove(crate::engine::RETRY_HEADER.to_string()));
        false
    }

    /// The response headers through the exchange: its header changes applied, or a local
    /// reply in the response's place. `None` when the response goes on.
    fn decide_response(&mut self, mut head: ResponseHead, end_of_stream: bool) -> Option<Action> {
        let exchange = self.exchange.as_mut()?;
        if exchange.reads_input_token_header() {
            let tokens = head.header(crate::llm::embeddings::BEDROCK_INPUT_TOKENS_HEADER);
            exchange.note_input_token_header(tokens.as_deref());
        }
        let mut ops = exchange.on_response(head.status, head.content_type.as_deref(), &head.origin, end_of_stream);
        if let Some(line) = exchange.take_log_line() {
            host::log(LogLevel::Warn, &line);
        }
        if let Some(reply) = exchange.take_reply() {
            return Some(self.reply_in_place(reply, head.headers));
        }
        ops.extend(exchange.budget_headers(host::now_ms()));
        apply_changes(MapType::HttpResponseHeaders, &mut head.headers, ops);
        None
    }

    /// A response without a body to replace: the gateway answers in its place, with the
    /// response's own headers (`x-envoy-ratelimited`, `retry-after`...). (Read before the
    /// chain's retry mark was removed: it is dropped here too.)
    fn reply_in_place(&self, mut reply: LocalReply, response_headers: Vec<(String, String)>) -> Action {
        reply.headers.extend(response_headers.into_iter().filter(|(name, _)| {
            !name.starts_with(':')
                && !matches!(name.as_str(), "content-type" | "content-length")
                && !name.eq_ignore_ascii_case(crate::engine::RETRY_HEADER)
        }));
        self.reply(&reply)
    }

    /// Ends the exchange once: metrics, and access-log fields while the host still takes them.
    fn finish(&mut self) {
        // Once: `on_log` follows a response that already ended (no clock read for nothing).
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let quota = self.gateway.quota(&SharedStore);
        let Some(record) = self.exchange.as_mut().and_then(|e| e.finish(host::now_ms(), quota)) else {
            return;
        };
        self.queue_fleet_report(&record);
        {
            let _profile = profile::scope(Phase::LogRecord);
            write_log_fields(&record);
        }
        let _profile = profile::scope(Phase::MetricPoints);
        let mut registry = self.metrics.borrow_mut();
        metrics::each_point(&record, |kind, name, value| registry.record_named(kind, name, value, &mut HostMetrics));
        if self.count_host_calls {
            log_host_calls(&record);
        }
    }

    /// The exchange's tokens, for the fleet-wide budget (sent on the tick).
    fn queue_fleet_report(&self, record: &Record) {
        let (Some(fleet), Some(tokens)) = (self.gateway.fleet(), record.usage.total()) else { return };
        let report =
            self.exchange.as_ref().and_then(|e| e.fleet_descriptor()).and_then(|who| fleet.report(&who, tokens));
        if let Some(report) = report {
            self.reports.borrow_mut().push(report, host::now_ms());
        }
    }
}

/// The access log's one value; `llm_tokens` is also read by other filters (a rate limit's
/// `hits_addend`), so it keeps its own.
fn write_log_fields(record: &Record) {
    host::set_property(&[metrics::LOG_RECORD], metrics::log_record(record).as_bytes())
        .or_warn("setting the access-log record");
    if let Some(tokens) = metrics::consumer_tokens(record) {
        host::set_property(&["llm_tokens"], tokens.to_string().as_bytes()).or_warn("setting llm_tokens");
    }
}

/// The measurement (`LLM_GATEWAY_COUNT_HOST_CALLS`): the exchange's host calls, logged.
fn log_host_calls(record: &Record) {
    let (calls, kinds) = host::take_calls();
    let stream = if record.stream { "stream" } else { "json" };
    let what = format!(
        "{} {} {stream} {}",
        record.operation.map_or("-", |o| o.as_str()),
        record.provider.as_deref().unwrap_or("-"),
        record.status
    );
    host::log(LogLevel::Info, &format!("llm-gateway host calls: {calls} ({what}) [{kinds}]"));
    // The log line is the measurement's own call.
    host::take_calls();
}

/// Hands the headers the exchange decided in the body callback (a SigV4 signature) to the
/// applier instance (`effects::deferred`); nothing deferred is no host call.
fn defer_headers(exchange: &Exchange) {
    if let Some(state) = deferred::encode(exchange.deferred_headers()) {
        host::set_property(&[DEFERRED_HEADERS], &state).or_warn("deferring headers");
    }
}

impl Context for Stream {
    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize, _trailers: usize) {
        let _clock = host::ClockScope::enter();
        let Some(fleet) = self.gateway.fleet().filter(|_| self.fleet_check == Some(token)) else { return };
        self.fleet_check = None;
        let verdict = fleet::verdict(fleet, num_headers, body_size);
        if let Action::Continue = self.apply_fleet_verdict(&verdict) {
            host::resume_request().or_warn("resuming the request");
        }
    }
}

/// Budget counters (and key pools' state) in host shared data, so every worker sees them.
struct SharedStore;

impl Store for SharedStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        host::shared_data(key).ok().flatten()
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), CasMismatch> {
        // Any refusal (a stale token, or a host error) makes the caller re-read and retry.
        host::set_shared_data(key, value, cas.unwrap_or(0)).map_err(|_| CasMismatch)
    }
}

/// The header-applying instance: sets what the gateway instance decided after the body.
struct Applier;

impl Context for Applier {}

impl HttpContext for Applier {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if let Ok(Some(state)) = host::property(&[DEFERRED_HEADERS]) {
            deferred::applier_ops(&state).into_iter().for_each(|op| apply(MapType::HttpRequestHeaders, op));
        }
        Action::Continue
    }
}

/// Answers locally; the stream goes no further.
fn reply_with(reply: &LocalReply) -> Action {
    if let Err(e) = host::send_response(reply.status, &reply.headers, &reply.body) {
        host::log(LogLevel::Error, &format!("llm-gateway: local reply failed: {e:?}"));
    }
    Action::Pause
}

/// One response body callback, as both instances (downstream and attempt) take it: the
/// chunk through the exchange. While the body is held back the callback pauses, so Envoy's
/// (emptied) buffer stays open for an answer that ends with trailers ([`complete_held_body`]).
fn response_body(exchange: &mut Exchange, size: usize, end_of_stream: bool) -> Action {
    pass_response_body(exchange, size, end_of_stream);
    if !end_of_stream && exchange.response_held_back() {
        Action::Pause
    } else {
        Action::Continue
    }
}

/// Response trailers: the body ended without an end of stream in a body callback (an
/// HTTP/2 answer, or HTTP/1.1 chunked with trailers). A held-back body is completed here:
/// its callbacks paused, so Envoy's buffer is open (and empty: the module holds the body),
/// and the answer is written there. Otherwise the held answer would be lost.
fn complete_held_body(exchange: &mut Exchange) {
    if !exchange.response_held_back() {
        return;
    }
    let buffered = host::buffer(BufferType::HttpResponseBody, 0, usize::MAX).unwrap_or_default();
    let now = if exchange.response_needs_clock() { host::now_ms() } else { 0 };
    if let BodyAction::Replace(bytes) = exchange.on_response_body(&buffered, true, now) {
        host::set_buffer(BufferType::HttpResponseBody, 0, buffered.len(), &bytes)
            .or_warn("writing the answer before the trailers");
    }
    if let Some(line) = exchange.take_log_line() {
        host::log(LogLevel::Warn, &line);
    }
}

/// One chunk of the response body through the exchange: read, replaced when the exchange
/// rewrites it (translation, usage injection), its log line written.
fn pass_response_body(exchange: &mut Exchange, size: usize, end_of_stream: bool) {
    let chunk =
        if size > 0 { host::buffer(BufferType::HttpResponseBody, 0, size).unwrap_or_default() } else { Vec::new() };
    // Past the first token the chunks need no time (a clock read saved per streamed chunk).
    let now = if exchange.response_needs_clock() { host::now_ms() } else { 0 };
    match exchange.on_response_body(&chunk, end_of_stream, now) {
        // The same bytes as the host holds (a held answer let out in the callback that
        // brought all of it); only when the read got the whole chunk, so an unreadable one is
        // still replaced, never let through.
        BodyAction::Replace(bytes) if bytes == chunk && chunk.len() == size => {}
        BodyAction::Replace(bytes) => {
            host::set_buffer(BufferType::HttpResponseBody, 0, size, &bytes).or_warn("replacing the response body");
        }
        BodyAction::Unchanged | BodyAction::Reply(_) => {}
    }
    if let Some(line) = exchange.take_log_line() {
        host::log(LogLevel::Warn, &line);
    }
}

/// Applies the header changes that change something (`effects::header_changes`): a removal
/// of an absent header or a set to the value a header already has is no host call.
fn apply_changes(map: MapType, headers: &mut Vec<(String, String)>, ops: Vec<HeaderOp>) {
    changes(headers, ops).into_iter().for_each(|op| apply(map, op));
}

fn apply(map: MapType, op: HeaderOp) {
    match op {
        HeaderOp::Set(name, value) => host::set_header(map, &name, &value).or_warn("setting a header"),
        HeaderOp::Remove(name) => host::remove_header(map, &name).or_warn("removing a header"),
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let _profile = profile::scope(Phase::RequestHeaders);
        let _clock = host::ClockScope::enter();
        // One host call for every header instead of one per header read or removal checked.
        let mut headers = host::headers(MapType::HttpRequestHeaders).unwrap_or_default();
        remove_untrusted(&mut headers).into_iter().for_each(|op| apply(MapType::HttpRequestHeaders, op));
        let (exchange, action) = self.decide_request(&headers, end_of_stream);
        self.publish_route(&exchange);
        self.exchange = Some(exchange);
        match action {
            RequestAction::Reply(reply) => self.reply(&reply),
            RequestAction::Forward(ops) => self.forward(&mut headers, ops),
        }
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        let _profile = profile::scope(Phase::RequestBody);
        let _clock = host::ClockScope::enter();
        let Some(exchange) = self.exchange.as_mut().filter(|e| e.awaits_body()) else {
            return Action::Continue;
        };
        if !end_of_stream {
            // Buffer the whole body in the host; it arrives bounded.
            if let Some(reply) = exchange.reject_oversized_body(size) {
                return self.reply(&reply);
            }
            return Action::Pause;
        }
        let body = host::buffer(BufferType::HttpRequestBody, 0, size).unwrap_or_default();
        self.admit_body(&body)
    }

    /// An HTTP/2 request may end with a trailers frame: the body callback then never sees
    /// the end of the stream, and returning `Continue` here would forward the buffered body
    /// unread. Admission runs on the complete body here instead (fail closed).
    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        let _clock = host::ClockScope::enter();
        let Some(exchange) = self.exchange.as_ref().filter(|e| e.awaits_body()) else {
            return Action::Continue;
        };
        // The buffered size is not passed here: reading one byte past the limit shows an
        // oversized body. An unreadable buffer reads as empty and is refused, never forwarded.
        let max = exchange.body_limit().saturating_add(1);
        let body = host::buffer(BufferType::HttpRequestBody, 0, max).unwrap_or_default();
        self.admit_body(&body)
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let _profile = profile::scope(Phase::ResponseHeaders);
        let _clock = host::ClockScope::enter();
        let Some(exchange) = self.exchange.as_mut() else {
            return Action::Continue;
        };
        let head = ResponseHead::read();
        let retry_after = head.header("retry-after");
        let now = host::now_ms();
        if let Some(line) = self.gateway.key_outcome(exchange, head.status, retry_after.as_deref(), now, &SharedStore) {
            host::log(LogLevel::Warn, &line);
        }
        if self.note_attempts(&head.origin) {
            return Action::Pause;
        }
        if let Some(reply) = self.decide_response(head, end_of_stream) {
            return reply;
        }
        if end_of_stream {
            self.finish();
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        let _profile = profile::scope(Phase::ResponseBody);
        let _clock = host::ClockScope::enter();
        let Some(exchange) = self.exchange.as_mut() else {
            return Action::Continue;
        };
        if std::mem::take(&mut self.held) {
            attempt::resume_held(&self.gateway, exchange);
        }
        let action = response_body(exchange, size, end_of_stream);
        if end_of_stream {
            self.finish();
        }
        action
    }

    fn on_http_response_trailers(&mut self, _trailers: usize) -> Action {
        let _clock = host::ClockScope::enter();
        if let Some(exchange) = self.exchange.as_mut() {
            complete_held_body(exchange);
            self.finish();
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let _profile = profile::scope(Phase::Log);
        let _clock = host::ClockScope::enter();
        // The client may have gone away mid-stream: what was seen still counts.
        self.finish();
    }
}
