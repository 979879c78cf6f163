//! The per-attempt instance: the module as an Envoy upstream HTTP filter (router
//! `upstream_http_filters`), run once per attempt after Envoy chose the endpoint. For a
//! fallback chain (the downstream instance wrote the attempt plan) it translates the
//! admitted request for the target this attempt reached, marks a failed attempt for
//! Envoy's retry, and translates the answer back; for any other request it does nothing.

use super::host::{self, OrWarn};
use super::{apply, defer_headers, reply_with, SharedStore};
use crate::effects::deferred::{self, DEFERRED_HEADERS};
use crate::effects::header_changes::header_in;
use crate::engine::{
    decode_attempts, decode_outcome, encode_attempts, encode_outcome, Attempt, AttemptPlan, AttemptStart, BodyAction,
    Exchange, Gateway, HeaderOp, HopAnswer, ResponseOrigin, ATTEMPTS_STATE, DOWNSTREAM_CONTEXT_STATE,
    FIRST_EVENT_HOLDER_STATE, FIRST_EVENT_WATCH_STATE, HOLD_REASON, HOP_OUTCOME_STATE, NO_FIRST_EVENT_REASON,
    PLAN_STATE, RETRY_HEADER,
};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, LogLevel, MapType};
use std::rc::Rc;

/// The plugin configuration of the per-attempt instance: `{"role": "attempt", "gateway":
/// <the gateway's configuration>}`. Returns the gateway configuration when `json` is one.
pub fn attempt_config(json: &[u8]) -> Option<Vec<u8>> {
    let value: serde_json::Value = serde_json::from_slice(json).ok()?;
    let object = value.as_object()?;
    if object.get("role").and_then(|r| r.as_str()) != Some("attempt") || object.len() != 2 {
        return None;
    }
    serde_json::to_vec(object.get("gateway")?).ok()
}

/// The largest error body held to read its code (provider errors are a few hundred bytes).
const MAX_HELD_ERROR_BYTES: usize = 64 * 1024;

pub struct AttemptStream {
    pub gateway: Rc<Gateway>,
    /// This stream's context id (restored after acting on the downstream instance's).
    context_id: u32,
    plan: Option<AttemptPlan>,
    exchange: Option<Exchange>,
    /// The admitted body, kept when the chain hops on error codes (`fallback.on_error`).
    request_body: Option<Vec<u8>>,
    /// An error held until its body is read: (status, content type the client gets).
    held: Option<(u16, String)>,
    /// The bytes of the held body Envoy buffers (replaced by the answer).
    held_size: usize,
    /// The target this attempt reached (its provider name).
    provider: String,
    /// The error-code hop in flight: its callout token, the exchange reading its answer, and
    /// its target.
    hop: Option<(u32, Exchange, String)>,
    /// What the client gets if no hop answers: the latest error, in its dialect.
    answer: Option<HopAnswer>,
}

impl AttemptStream {
    pub fn new(gateway: Rc<Gateway>, context_id: u32) -> Self {
        AttemptStream {
            gateway,
            context_id,
            plan: None,
            exchange: None,
            request_body: None,
            held: None,
            held_size: 0,
            provider: String::new(),
            hop: None,
            answer: None,
        }
    }

    /// The complete admitted body: translated for this attempt's target (and signed).
    fn translate(&mut self, body: &[u8]) -> Action {
        if self.plan.as_ref().is_some_and(|plan| self.gateway.hops_on_error(plan)) {
            self.request_body = Some(body.to_vec());
        }
        let Some(exchange) = self.exchange.as_mut() else { return Action::Continue };
        // Admitted downstream (identity, budget, prompts): only the translation is left.
        let action = exchange.on_request_body(body, host::now_ms(), None, None);
        // SigV4: the applier instance after the buffer filter sets these.
        defer_headers(exchange);
        match action {
            BodyAction::Unchanged => Action::Continue,
            BodyAction::Replace(new_body) => {
                host::set_buffer(BufferType::HttpRequestBody, 0, body.len(), &new_body)
                    .or_warn("replacing the request body");
                Action::Continue
            }
            BodyAction::Reply(reply) => reply_with(&reply),
        }
    }
}

/// Downstream, at response headers the attempt holds (`HOLD_REASON`): the headers the
/// downstream instance decides (budget), then they wait for the attempt to resume them.
pub(super) fn hold_downstream(exchange: &Exchange) {
    let mut ops = exchange.budget_headers(host::now_ms());
    ops.push(HeaderOp::Remove(RETRY_HEADER.to_string()));
    ops.into_iter().for_each(|op| apply(MapType::HttpResponseHeaders, op));
}

/// Downstream, resumed after a held error: the attempts (the last one answered) and what
/// the client gets (the attempt set it in the headers before resuming), read as for any
/// chain at its response headers.
pub(super) fn resume_held(gateway: &Gateway, exchange: &mut Exchange) {
    let Some(route) = exchange.attempt_plan().map(|plan| plan.route.clone()) else { return };
    let attempts = decode_attempts(&host::property(&[ATTEMPTS_STATE]).ok().flatten().unwrap_or_default());
    let answered = gateway.answering_attempt(&route, &attempts);
    exchange.record_attempts(attempts, answered, gateway.quota(&SharedStore));
    let outcome = host::property(&[HOP_OUTCOME_STATE]).ok().flatten().unwrap_or_default();
    let (status, content_type) = decode_outcome(&outcome).unwrap_or((502, String::new()));
    // The headers went on with the attempt's changes: these ops are already applied.
    let _ = exchange.on_response(status, Some(&content_type), &ResponseOrigin::Upstream, false);
    if let Some(line) = exchange.take_log_line() {
        host::log(LogLevel::Warn, &line);
    }
}

/// Updates this attempt's line (the last: attempts run one after the other) in the attempt
/// log the downstream instance reads.
pub(super) fn report(update: impl FnOnce(&mut Attempt)) {
    let raw = host::property(&[ATTEMPTS_STATE]).ok().flatten().unwrap_or_default();
    let mut attempts = decode_attempts(&raw);
    if let Some(last) = attempts.last_mut() {
        update(last);
    }
    host::set_property(&[ATTEMPTS_STATE], encode_attempts(&attempts).as_bytes()).or_warn("setting the attempt log");
}

impl AttemptStream {
    /// The held error's body is complete (`raw`, in its provider's dialect): hop on when it
    /// names a trigger, else give it to the client.
    fn on_held_error(&mut self, raw: &[u8]) -> Action {
        let (Some((status, content_type)), Some(exchange)) = (self.held.clone(), self.exchange.as_mut()) else {
            return Action::Continue;
        };
        let provider = self.provider.clone();
        let body = match exchange.on_response_body(raw, true, host::now_ms()) {
            BodyAction::Replace(bytes) => bytes,
            BodyAction::Unchanged | BodyAction::Reply(_) => raw.to_vec(),
        };
        if let Some(line) = exchange.take_log_line() {
            host::log(LogLevel::Warn, &line);
        }
        self.answer = Some(HopAnswer { status, content_type, body });
        if self.hop_on(status, raw, &provider) {
            return Action::Pause;
        }
        self.deliver(false);
        Action::Continue
    }

    /// Dispatches the request to the chain's next untried target when the answer of
    /// `provider` (`status`, `raw` body) is a trigger; true when a hop is in flight.
    fn hop_on(&mut self, status: u16, raw: &[u8], provider: &str) -> bool {
        let (Some(plan), Some(body)) = (self.plan.as_ref(), self.request_body.as_ref()) else { return false };
        let tried = decode_attempts(&host::property(&[ATTEMPTS_STATE]).ok().flatten().unwrap_or_default());
        let final_reason = if (200..300).contains(&status) { "ok" } else { "error" };
        let Some((next, trigger)) = self.gateway.error_hop_target(plan, &tried, status, provider, raw) else {
            report(|a| a.reason = final_reason.to_string());
            return false;
        };
        let now = host::now_ms();
        let hop = match self.gateway.start_hop(plan, &next, body, host::now_nanos(), now, &SharedStore) {
            Ok(hop) => hop,
            Err(why) => {
                host::log(LogLevel::Warn, &format!("llm-gateway: no fallback to `{next}` on {trigger}: {why}"));
                report(|a| a.reason = final_reason.to_string());
                return false;
            }
        };
        let headers: Vec<(&str, &str)> = hop.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        host::tally(host::Call::Callout);
        let timeout = std::time::Duration::from_millis(hop.timeout_ms);
        let token =
            match proxy_wasm::hostcalls::dispatch_http_call(&hop.cluster, headers, Some(&hop.body), vec![], timeout) {
                Ok(token) => token,
                Err(status) => {
                    let line = format!(
                        "llm-gateway: fallback to `{next}` on {trigger} not sent (cluster {:?}: {status:?})",
                        hop.cluster
                    );
                    host::log(LogLevel::Warn, &line);
                    report(|a| a.reason = final_reason.to_string());
                    return false;
                }
            };
        report(|a| a.reason = "fallback".to_string());
        let raw_log = host::property(&[ATTEMPTS_STATE]).ok().flatten().unwrap_or_default();
        let mut attempts = decode_attempts(&raw_log);
        attempts.push(hop.attempt);
        host::set_property(&[ATTEMPTS_STATE], encode_attempts(&attempts).as_bytes()).or_warn("setting the attempt log");
        self.hop = Some((token, hop.exchange, next));
        true
    }

    /// The client gets `self.answer`: it replaces the held body, and the downstream
    /// instance's paused headers get its status and type before both streams go on.
    /// `resume_self`: the attempt's own response was paused past its callback (a hop).
    fn deliver(&mut self, resume_self: bool) {
        let Some(answer) = self.answer.take() else { return };
        self.held = None;
        host::set_buffer(BufferType::HttpResponseBody, 0, self.held_size, &answer.body)
            .or_warn("replacing the held body");
        if resume_self {
            host::resume_response().or_warn("resuming the response");
        }
        self.resume_downstream(answer.status, &answer.content_type);
    }

    /// Resumes the downstream instance's paused response headers with this status and type
    /// (the downstream reads them from filter state when its body callback runs).
    fn resume_downstream(&self, status: u16, content_type: &str) {
        host::set_property(&[HOP_OUTCOME_STATE], encode_outcome(status, content_type).as_bytes())
            .or_warn("setting the hop outcome");
        let downstream = host::property(&[DOWNSTREAM_CONTEXT_STATE])
            .ok()
            .flatten()
            .and_then(|raw| std::str::from_utf8(&raw).ok().and_then(|s| s.parse::<u32>().ok()));
        // The downstream stream may be gone (the client left): nothing to resume then.
        if downstream.is_some_and(|id| host::set_effective_context(id).is_ok()) {
            apply(MapType::HttpResponseHeaders, HeaderOp::Set(":status".to_string(), status.to_string()));
            apply(MapType::HttpResponseHeaders, HeaderOp::Set("content-type".to_string(), content_type.to_string()));
            apply(MapType::HttpResponseHeaders, HeaderOp::Remove("content-length".to_string()));
            host::resume_response().or_warn("resuming the response");
        }
        host::set_effective_context(self.context_id).or_warn("restoring the effective context");
    }

    /// A held error body past `MAX_HELD_ERROR_BYTES` names no code worth a hop: it goes on
    /// as it comes (translated chunk by chunk, as any error), the downstream headers unchanged.
    fn release_held(&mut self, size: usize) -> Action {
        let Some((status, content_type)) = self.held.take() else { return Action::Continue };
        report(|a| a.reason = "error".to_string());
        self.resume_downstream(status, &content_type);
        if let Some(exchange) = self.exchange.as_mut() {
            super::pass_response_body(exchange, size, false);
        }
        Action::Continue
    }
}

/// What an attempt does with its response (`on_http_response_headers`).
struct Disposition {
    /// Envoy retries the attempt on the chain's next target.
    fall_back: bool,
    /// An error held until its body is read (it may name a trigger code).
    hold: bool,
    /// A stream held until its first event (the watcher instance resumes it).
    first_event: bool,
}

impl Disposition {
    /// The attempt's reason in the attempt log.
    fn reason(&self, status: u16) -> &'static str {
        match (self.fall_back, self.hold, self.first_event, (200..300).contains(&status)) {
            (true, ..) => "fallback",
            (false, true, ..) => HOLD_REASON,
            (false, false, true, _) => NO_FIRST_EVENT_REASON,
            (false, false, false, true) => "ok",
            (false, false, false, false) => "error",
        }
    }
}

/// A response header of this attempt, read alone.
fn response_header(name: &str) -> Option<String> {
    host::header(MapType::HttpResponseHeaders, name).ok().flatten()
}

/// Whether a content type is JSON (`application/json`, `application/problem+json`...).
fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| ct.split(';').next().unwrap_or_default().trim().ends_with("json"))
}

/// The endpoint Envoy chose for this attempt: its provider name in the host metadata.
fn upstream_provider() -> Option<String> {
    host::property(&["xds", "upstream_host_metadata", "filter_metadata", "llm", "provider"])
        .ok()
        .flatten()
        .map(|raw| String::from_utf8_lossy(&raw).into_owned())
}

/// The content type the client gets for a held error: the exchange's own, else the
/// provider's.
fn held_content_type(ops: &[HeaderOp], content_type: Option<String>) -> String {
    let set_type = ops.iter().find_map(|op| match op {
        HeaderOp::Set(name, value) if name == "content-type" => Some(value.clone()),
        _ => None,
    });
    set_type.or(content_type).unwrap_or_default()
}

impl AttemptStream {
    /// The attempt started: its header changes (and the chosen key's) applied, its line
    /// added to the attempt log.
    fn begin(&mut self, plan: AttemptPlan, start: AttemptStart) {
        let mut exchange = start.exchange;
        let mut ops = start.ops;
        ops.extend(self.gateway.choose_key(&mut exchange, host::now_nanos(), host::now_ms(), &SharedStore));
        for op in ops {
            apply(MapType::HttpRequestHeaders, op);
        }
        let raw = host::property(&[ATTEMPTS_STATE]).ok().flatten().unwrap_or_default();
        let mut attempts = decode_attempts(&raw);
        self.provider = start.attempt.provider.clone();
        attempts.push(start.attempt);
        host::set_property(&[ATTEMPTS_STATE], encode_attempts(&attempts).as_bytes()).or_warn("setting the attempt log");
        self.plan = Some(plan);
        self.exchange = Some(exchange);
    }

    /// A hop's answer with a status: the key's outcome noted, the body read and translated
    /// into what the client would get (`self.answer`). Returns the raw body.
    fn take_hop_answer(
        &mut self,
        exchange: &mut Exchange,
        status: u16,
        headers: &[(String, String)],
        body_size: usize,
    ) -> Vec<u8> {
        let now = host::now_ms();
        let retry_after = header_in(headers, "retry-after");
        if let Some(line) = self.gateway.key_outcome(exchange, status, retry_after, now, &SharedStore) {
            host::log(LogLevel::Warn, &line);
        }
        let raw = match body_size {
            0 => Vec::new(),
            _ => host::buffer(BufferType::HttpCallResponseBody, 0, body_size).unwrap_or_default(),
        };
        let answer = crate::engine::translate_answer(exchange, status, header_in(headers, "content-type"), &raw, now);
        if let Some(line) = exchange.take_log_line() {
            host::log(LogLevel::Warn, &line);
        }
        self.answer = Some(answer);
        raw
    }

    /// The key's outcome for this attempt's response status.
    fn note_key_outcome(&self, status: u16, now: u64) {
        let Some(exchange) = self.exchange.as_ref() else { return };
        let retry_after = response_header("retry-after");
        if let Some(line) = self.gateway.key_outcome(exchange, status, retry_after.as_deref(), now, &SharedStore) {
            host::log(LogLevel::Warn, &line);
        }
    }

    /// Whether the attempt falls back, holds its error, or holds its stream until the first
    /// event; with the response's content type.
    fn dispose(&self, plan: &AttemptPlan, status: u16, end_of_stream: bool) -> (Disposition, Option<String>) {
        let tried = decode_attempts(&host::property(&[ATTEMPTS_STATE]).ok().flatten().unwrap_or_default());
        let fall_back = self.gateway.should_fall_back(plan, status, &tried);
        let content_type = response_header("content-type");
        // An error whose body may name a trigger code (`fallback.on_error`) is held until read.
        let json = is_json(content_type.as_deref());
        let hold = !fall_back
            && self.request_body.is_some()
            && self.gateway.holds_error(plan, status, json, !end_of_stream, &tried);
        // A stream is held until its first event when the watcher instance will resume it.
        let watched = host::property(&[FIRST_EVENT_WATCH_STATE]).ok().flatten().is_some_and(|v| v == b"1");
        let first_event = !fall_back
            && !hold
            && watched
            && self.gateway.waits_for_first_event(plan, status, content_type.as_deref(), !end_of_stream, &tried);
        (Disposition { fall_back, hold, first_event }, content_type)
    }

    /// The response headers through the exchange, then on to the router (or held).
    fn respond(&mut self, status: u16, content_type: Option<String>, d: &Disposition, end_of_stream: bool) -> Action {
        let Some(exchange) = self.exchange.as_mut() else { return Action::Continue };
        let mut ops = exchange.on_response(status, content_type.as_deref(), &ResponseOrigin::Upstream, end_of_stream);
        if d.hold {
            self.held = Some((status, held_content_type(&ops, content_type)));
        }
        if let Some(line) = exchange.take_log_line() {
            host::log(LogLevel::Warn, &line);
        }
        if let Some(reply) = exchange.take_reply() {
            return reply_with(&reply);
        }
        ops.extend(self.retry_ops(status, d.fall_back));
        for op in ops {
            apply(MapType::HttpResponseHeaders, op);
        }
        if d.first_event {
            // The router sees no response until the watcher resumes this one; a reset before
            // then is retried by Envoy like any reset before the response.
            host::set_property(&[FIRST_EVENT_HOLDER_STATE], self.context_id.to_string().as_bytes())
                .or_warn("setting the first-event holder");
            return Action::Pause;
        }
        Action::Continue
    }

    /// Envoy's retry policy matches the retry header (`retriable_headers`); set after the
    /// exchange's own changes so that none removes it.
    fn retry_ops(&self, status: u16, fall_back: bool) -> Vec<HeaderOp> {
        let mut ops = vec![match fall_back {
            true => HeaderOp::Set(RETRY_HEADER.to_string(), status.to_string()),
            false => HeaderOp::Remove(RETRY_HEADER.to_string()),
        }];
        let no_key_left = |e: &Exchange| self.gateway.no_key_left(e, host::now_ms(), &SharedStore);
        if fall_back && status == 429 && self.exchange.as_ref().is_some_and(no_key_left) {
            // Outlier detection counts 5xx, not 429: a target with no key left is then
            // ejected (where configured) and skipped by first attempts; the client never
            // sees this status (the attempt is retried).
            ops.push(HeaderOp::Set(":status".to_string(), "503".to_string()));
        }
        ops
    }
}

impl Context for AttemptStream {
    /// A hop's answer (no headers: the callout failed or timed out; the latest error stands).
    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize, _trailers: usize) {
        let Some((_, mut exchange, provider)) = self.hop.take_if(|(t, ..)| *t == token) else { return };
        let headers = match num_headers {
            0 => Vec::new(),
            _ => host::headers(MapType::HttpCallResponseHeaders).unwrap_or_default(),
        };
        let Some(status) = header_in(&headers, ":status").and_then(|s| s.parse::<u16>().ok()) else {
            host::log(LogLevel::Warn, "llm-gateway: the fallback on an error code got no answer");
            self.deliver(true);
            return;
        };
        let raw = self.take_hop_answer(&mut exchange, status, &headers, body_size);
        report(|a| a.status = Some(status));
        if !self.hop_on(status, &raw, &provider) {
            self.deliver(true);
        }
    }
}

impl HttpContext for AttemptStream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let _clock = host::ClockScope::enter();
        let Some(plan) = host::property(&[PLAN_STATE]).ok().flatten().and_then(|raw| AttemptPlan::decode(&raw)) else {
            // Not a fallback chain: the downstream instance did everything.
            return Action::Continue;
        };
        let provider = upstream_provider();
        let start = match self.gateway.start_attempt(&plan, provider.as_deref(), host::now_ms()) {
            Ok(start) => start,
            Err(reply) => {
                host::log(LogLevel::Error, &String::from_utf8_lossy(&reply.body));
                return reply_with(&reply);
            }
        };
        // An earlier attempt's signature must not reach this attempt's target.
        host::set_property(&[DEFERRED_HEADERS], deferred::CLEARED).or_warn("clearing deferred headers");
        self.begin(plan, start);
        Action::Continue
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        let _clock = host::ClockScope::enter();
        if !self.exchange.as_ref().is_some_and(Exchange::awaits_body) {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = host::buffer(BufferType::HttpRequestBody, 0, size).unwrap_or_default();
        self.translate(&body)
    }

    /// The body may end with a trailers frame (HTTP/2): translated here then, as downstream,
    /// never forwarded as it is.
    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        let _clock = host::ClockScope::enter();
        let Some(max) = self.exchange.as_ref().filter(|e| e.awaits_body()).map(|e| e.body_limit().saturating_add(1))
        else {
            return Action::Continue;
        };
        let body = host::buffer(BufferType::HttpRequestBody, 0, max).unwrap_or_default();
        self.translate(&body)
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let _clock = host::ClockScope::enter();
        let Some(plan) = self.plan.clone().filter(|_| self.exchange.is_some()) else {
            return Action::Continue;
        };
        let status = response_header(":status").and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
        self.note_key_outcome(status, host::now_ms());
        let (disposition, content_type) = self.dispose(&plan, status, end_of_stream);
        let reason = disposition.reason(status);
        report(|attempt| {
            attempt.status = Some(status);
            attempt.reason = reason.to_string();
        });
        self.respond(status, content_type, &disposition, end_of_stream)
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        let _clock = host::ClockScope::enter();
        if self.held.is_some() {
            // Buffered by Envoy until complete (an error body: small).
            self.held_size = size;
            if !end_of_stream && size > MAX_HELD_ERROR_BYTES {
                return self.release_held(size);
            }
            if !end_of_stream {
                return Action::Pause;
            }
            let raw = host::buffer(BufferType::HttpResponseBody, 0, size).unwrap_or_default();
            return self.on_held_error(&raw);
        }
        let Some(exchange) = self.exchange.as_mut() else {
            return Action::Continue;
        };
        super::response_body(exchange, size, end_of_stream)
    }

    fn on_http_response_trailers(&mut self, _trailers: usize) -> Action {
        let _clock = host::ClockScope::enter();
        if let Some(exchange) = self.exchange.as_mut().filter(|_| self.held.is_none()) {
            super::complete_held_body(exchange);
        }
        Action::Continue
    }
}
