//! The per-attempt instance: the module as an Envoy upstream HTTP filter (router
//! `upstream_http_filters`), run once per attempt after Envoy chose the endpoint. For a
//! fallback chain (the downstream instance wrote the attempt plan) it translates the
//! admitted request for the target this attempt reached, marks a failed attempt for
//! Envoy's retry, and translates the answer back; for any other request it does nothing.

use super::{apply, host, reply_with, SharedStore, DEFERRED_HEADERS};
use crate::engine::{
    decode_attempts, encode_attempts, Attempt, AttemptPlan, BodyAction, Exchange, Gateway, HeaderOp, ResponseOrigin,
    ATTEMPTS_STATE, PLAN_STATE, RETRY_HEADER,
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

pub struct AttemptStream {
    pub gateway: Rc<Gateway>,
    plan: Option<AttemptPlan>,
    exchange: Option<Exchange>,
}

impl AttemptStream {
    pub fn new(gateway: Rc<Gateway>) -> Self {
        AttemptStream { gateway, plan: None, exchange: None }
    }

    /// The complete admitted body: translated for this attempt's target (and signed).
    fn translate(&mut self, body: &[u8]) -> Action {
        let Some(exchange) = self.exchange.as_mut() else { return Action::Continue };
        // Admitted downstream (identity, budget, prompts): only the translation is left.
        let action = exchange.on_request_body(body, host::now_ms(), None, None);
        let deferred = exchange.deferred_headers();
        if !deferred.is_empty() {
            // SigV4: the applier instance after the buffer filter sets these.
            let _ = host::set_property(&[DEFERRED_HEADERS], &crate::header_map::encode(deferred));
        }
        match action {
            BodyAction::Unchanged => Action::Continue,
            BodyAction::Replace(new_body) => {
                let _ = host::set_buffer(BufferType::HttpRequestBody, 0, body.len(), &new_body);
                Action::Continue
            }
            BodyAction::Reply(reply) => reply_with(&reply),
        }
    }
}

/// Updates this attempt's line (the last: attempts run one after the other) in the attempt
/// log the downstream instance reads.
fn report(update: impl FnOnce(&mut Attempt)) {
    let raw = host::property(&[ATTEMPTS_STATE]).ok().flatten().unwrap_or_default();
    let mut attempts = decode_attempts(&raw);
    if let Some(last) = attempts.last_mut() {
        update(last);
    }
    let _ = host::set_property(&[ATTEMPTS_STATE], encode_attempts(&attempts).as_bytes());
}

impl Context for AttemptStream {}

impl HttpContext for AttemptStream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let _clock = host::ClockScope::enter();
        let Some(plan) = host::property(&[PLAN_STATE]).ok().flatten().and_then(|raw| AttemptPlan::decode(&raw)) else {
            // Not a fallback chain: the downstream instance did everything.
            return Action::Continue;
        };
        let provider = host::property(&["xds", "upstream_host_metadata", "filter_metadata", "llm", "provider"])
            .ok()
            .flatten()
            .map(|raw| String::from_utf8_lossy(&raw).into_owned());
        let start = match self.gateway.start_attempt(&plan, provider.as_deref(), host::now_ms()) {
            Ok(start) => start,
            Err(reply) => {
                host::log(LogLevel::Error, &String::from_utf8_lossy(&reply.body));
                return reply_with(&reply);
            }
        };
        // An earlier attempt's signature must not reach this attempt's target.
        let _ = host::set_property(&[DEFERRED_HEADERS], b"");
        let mut exchange = start.exchange;
        let mut ops = start.ops;
        ops.extend(self.gateway.choose_key(&mut exchange, host::now_nanos(), host::now_ms(), &SharedStore));
        for op in ops {
            apply(MapType::HttpRequestHeaders, op);
        }
        let raw = host::property(&[ATTEMPTS_STATE]).ok().flatten().unwrap_or_default();
        let mut attempts = decode_attempts(&raw);
        attempts.push(start.attempt);
        let _ = host::set_property(&[ATTEMPTS_STATE], encode_attempts(&attempts).as_bytes());
        self.plan = Some(plan);
        self.exchange = Some(exchange);
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
        let (Some(plan), Some(exchange)) = (self.plan.as_ref(), self.exchange.as_mut()) else {
            return Action::Continue;
        };
        let status = host::header(MapType::HttpResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0);
        let retry_after = host::header(MapType::HttpResponseHeaders, "retry-after").ok().flatten();
        let now = host::now_ms();
        if let Some(line) = self.gateway.key_outcome(exchange, status, retry_after.as_deref(), now, &SharedStore) {
            host::log(LogLevel::Warn, &line);
        }
        let tried = decode_attempts(&host::property(&[ATTEMPTS_STATE]).ok().flatten().unwrap_or_default());
        let fall_back = self.gateway.should_fall_back(plan, status, &tried);
        let reason = match (fall_back, (200..300).contains(&status)) {
            (true, _) => "fallback",
            (false, true) => "ok",
            (false, false) => "error",
        };
        report(|attempt| {
            attempt.status = Some(status);
            attempt.reason = reason.to_string();
        });
        let content_type = host::header(MapType::HttpResponseHeaders, "content-type").ok().flatten();
        let mut ops = exchange.on_response(status, content_type.as_deref(), &ResponseOrigin::Upstream, end_of_stream);
        if let Some(line) = exchange.take_log_line() {
            host::log(LogLevel::Warn, &line);
        }
        if let Some(reply) = exchange.take_reply() {
            return reply_with(&reply);
        }
        // Envoy's retry policy matches this header (`retriable_headers`); set after the
        // exchange's own changes so that none removes it.
        ops.push(match fall_back {
            true => HeaderOp::Set(RETRY_HEADER.to_string(), status.to_string()),
            false => HeaderOp::Remove(RETRY_HEADER.to_string()),
        });
        for op in ops {
            apply(MapType::HttpResponseHeaders, op);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        let _clock = host::ClockScope::enter();
        let Some(exchange) = self.exchange.as_mut() else {
            return Action::Continue;
        };
        super::pass_response_body(exchange, size, end_of_stream);
        Action::Continue
    }
}
