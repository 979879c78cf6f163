//! One request's life: body patch, response decoding, usage, and the final record.

use super::reply::{GatewayError, LocalReply};
use super::Operation;
use crate::config::Limits;
use crate::json_scan::{self, Edit};
use crate::llm::openai;
use crate::stream::sse::{encode_event, SseDecoder, SseEvent};
use crate::usage::{estimate_tokens, Usage, UsageSource};

/// What to do with a body the shell handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyAction {
    /// Let the bytes through as they are.
    Unchanged,
    /// Replace them with these.
    Replace(Vec<u8>),
    /// Answer locally instead (request side only).
    Reply(LocalReply),
}

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
}

#[derive(Debug)]
enum ResponseBody {
    /// No response headers yet.
    Pending,
    /// A JSON body, copied (bounded) to read its usage at the end.
    Json { copy: Vec<u8>, overflowed: bool },
    /// A server-sent event stream, decoded as it passes.
    Sse(Box<SseState>),
    /// An error status or an unknown body: passed through, not inspected.
    Opaque,
}

#[derive(Debug)]
struct SseState {
    decoder: SseDecoder,
    /// Re-encode events (dropping what the gateway added) rather than pass bytes through.
    rewrite: bool,
    events: Vec<SseEvent>,
    /// The decoder hit its bound: the rest of the stream is dropped.
    broken: bool,
}

#[derive(Debug)]
pub struct Exchange {
    limits: Limits,
    started_ms: u64,
    pub(super) operation: Option<Operation>,
    pub(super) requested_model: Option<String>,
    model: Option<String>,
    provider: Option<String>,
    target_model: Option<String>,
    stream: bool,
    client_wants_usage: bool,
    /// Estimated prompt tokens, for when the provider reports none.
    input_estimate: u64,
    status: Option<u16>,
    body: ResponseBody,
    meter: Meter,
    finished: bool,
}

/// What the response has shown so far.
#[derive(Debug, Default)]
struct Meter {
    /// The provider's own report, once seen.
    usage: Usage,
    /// Generated text seen (for an estimate when no report comes).
    generated_bytes: usize,
    first_token_ms: Option<u64>,
}

impl Exchange {
    pub(super) fn new(now_ms: u64, limits: Limits) -> Self {
        Exchange {
            limits,
            started_ms: now_ms,
            operation: None,
            requested_model: None,
            model: None,
            provider: None,
            target_model: None,
            stream: false,
            client_wants_usage: false,
            input_estimate: 0,
            status: None,
            body: ResponseBody::Pending,
            meter: Meter::default(),
            finished: false,
        }
    }

    pub(super) fn set_route(&mut self, model: &str, provider: &str, target_model: &str) {
        self.model = Some(model.to_string());
        self.provider = Some(provider.to_string());
        self.target_model = Some(target_model.to_string());
    }

    /// Records a local rejection and builds its reply.
    pub(super) fn reject(&mut self, error: &GatewayError) -> LocalReply {
        let reply = error.to_reply();
        self.status = Some(reply.status);
        self.body = ResponseBody::Opaque;
        reply
    }

    /// The route was chosen (the request goes upstream): the shell buffers the body.
    pub fn is_routed(&self) -> bool {
        self.target_model.is_some() && self.status.is_none()
    }

    /// Names for the access log, known from the request headers on.
    pub fn route_fields(&self) -> [(&'static str, Option<&str>); 3] {
        [
            ("llm_model", self.requested_model.as_deref()),
            ("llm_provider", self.provider.as_deref()),
            ("llm_target_model", self.target_model.as_deref()),
        ]
    }

    /// The request body has grown to `size` bytes: refuse it past the limit.
    pub fn reject_oversized_body(&mut self, size: usize) -> Option<LocalReply> {
        let limit = self.limits.max_request_body_bytes;
        (size > limit).then(|| self.reject(&GatewayError::BodyTooLarge { limit }))
    }

    /// The whole request body (the shell buffers it): patch `model` and, for streams,
    /// `stream_options.include_usage`; nothing else is touched.
    pub fn on_request_body(&mut self, body: &[u8]) -> BodyAction {
        if let Some(reply) = self.reject_oversized_body(body.len()) {
            return BodyAction::Reply(reply);
        }
        let Some(target_model) = self.target_model.clone() else {
            return BodyAction::Unchanged;
        };
        let members = match json_scan::top_level_members(body) {
            Ok(members) => members,
            Err(e) => {
                return BodyAction::Reply(self.reject(&GatewayError::InvalidJson { detail: e.to_string() }));
            }
        };
        let value = |key: &str| json_scan::find(&members, key).and_then(|m| body.get(m.value.clone()));
        let prompt_field = if self.operation == Some(Operation::Embeddings) { "input" } else { "messages" };
        self.input_estimate = estimate_tokens(value(prompt_field).map_or(0, <[u8]>::len));
        self.stream = value("stream") == Some(b"true");

        let mut edits = vec![json_scan::set_member(body, &members, "model", &json_scan::json_string(&target_model))];
        if self.stream {
            let (wants, edit) = stream_options_edit(body, &members, value("stream_options"));
            self.client_wants_usage = wants;
            edits.extend(edit);
        }
        BodyAction::Replace(json_scan::apply_edits(body, &edits))
    }

    /// Response headers: choose how to read the body. Returns whether `content-length`
    /// must be removed (the body will change size).
    pub fn on_response_headers(&mut self, status: u16, content_type: Option<&str>) -> bool {
        self.status = Some(status);
        let is_sse = content_type.is_some_and(|c| c.trim_start().starts_with("text/event-stream"));
        self.body = if !(200..300).contains(&status) {
            ResponseBody::Opaque
        } else if is_sse && self.operation == Some(Operation::Chat) {
            let rewrite = self.stream && !self.client_wants_usage;
            ResponseBody::Sse(Box::new(SseState {
                decoder: SseDecoder::new(self.limits.max_sse_event_bytes),
                rewrite,
                events: Vec::new(),
                broken: false,
            }))
        } else {
            ResponseBody::Json { copy: Vec::new(), overflowed: false }
        };
        matches!(&self.body, ResponseBody::Sse(s) if s.rewrite)
    }

    /// One response body chunk, as it arrives.
    pub fn on_response_body(&mut self, chunk: &[u8], end_of_stream: bool, now_ms: u64) -> BodyAction {
        let max_response = self.limits.max_response_body_bytes;
        match &mut self.body {
            ResponseBody::Pending | ResponseBody::Opaque => BodyAction::Unchanged,
            ResponseBody::Json { copy, overflowed } => {
                if !*overflowed {
                    if copy.len() + chunk.len() > max_response {
                        *overflowed = true;
                        *copy = Vec::new();
                    } else {
                        copy.extend_from_slice(chunk);
                    }
                }
                if end_of_stream && !*overflowed {
                    if let Some(usage) = openai::response_usage(copy) {
                        self.meter.usage = usage;
                    }
                }
                BodyAction::Unchanged
            }
            ResponseBody::Sse(state) => match sse_chunk(state, &mut self.meter, chunk, end_of_stream, now_ms) {
                Some(bytes) => BodyAction::Replace(bytes),
                None => BodyAction::Unchanged,
            },
        }
    }

    /// Ends the exchange (response complete, or the client went away). Returns the record
    /// once; later calls return `None`.
    pub fn finish(&mut self, now_ms: u64) -> Option<Record> {
        if self.finished {
            return None;
        }
        self.finished = true;
        if let ResponseBody::Sse(state) = &mut self.body {
            // A stream cut short: events already complete still count.
            let mut events = std::mem::take(&mut state.events);
            let _ = state.decoder.finish(&mut events);
            for event in &events {
                observe_event(event, &mut self.meter, now_ms, false);
            }
        }
        let meter = &self.meter;
        let mut usage = meter.usage;
        let answered = self.status.is_some_and(|s| (200..300).contains(&s));
        if answered && usage.source != UsageSource::Reported {
            // The provider's count is missing (stream cut, or none sent): estimate.
            usage = Usage {
                input: Some(self.input_estimate),
                output: Some(estimate_tokens(meter.generated_bytes)),
                cached_input: None,
                cache_write: None,
                reasoning: None,
                source: UsageSource::Estimated,
            };
        }
        let duration_ms = now_ms.saturating_sub(self.started_ms);
        let time_to_first_token_ms = meter.first_token_ms.map(|t| t.saturating_sub(self.started_ms));
        let time_per_output_token_ms = match (meter.first_token_ms, usage.output) {
            (Some(first), Some(out)) if self.stream && out > 1 => Some(now_ms.saturating_sub(first) / (out - 1)),
            _ => None,
        };
        Some(Record {
            operation: self.operation,
            model: self.model.clone(),
            requested_model: self.requested_model.clone(),
            provider: self.provider.clone(),
            target_model: self.target_model.clone(),
            // No response at all: the client went away (Envoy logs 0 too).
            status: self.status.unwrap_or(0),
            stream: self.stream,
            usage,
            duration_ms,
            time_to_first_token_ms: if self.stream { time_to_first_token_ms } else { None },
            time_per_output_token_ms,
        })
    }
}

/// For a streaming request: whether the client itself asked for usage, and the edit that
/// makes the provider report it.
fn stream_options_edit(body: &[u8], members: &[json_scan::Member], current: Option<&[u8]>) -> (bool, Option<Edit>) {
    let parsed = current.map(serde_json::from_slice::<serde_json::Value>);
    let mut options = match parsed {
        Some(Ok(serde_json::Value::Object(map))) => map,
        // Absent or null: add ours. Anything else is the provider's to reject.
        None | Some(Ok(serde_json::Value::Null)) => serde_json::Map::new(),
        Some(_) => return (true, None),
    };
    if options.get("include_usage") == Some(&serde_json::Value::Bool(true)) {
        return (true, None);
    }
    options.insert("include_usage".to_string(), serde_json::Value::Bool(true));
    let raw = serde_json::Value::Object(options).to_string();
    (false, Some(json_scan::set_member(body, members, "stream_options", raw.as_bytes())))
}

fn sse_chunk(
    state: &mut SseState,
    meter: &mut Meter,
    chunk: &[u8],
    end_of_stream: bool,
    now_ms: u64,
) -> Option<Vec<u8>> {
    if state.broken {
        return Some(Vec::new());
    }
    let mut failed = state.decoder.feed(chunk, &mut state.events).err();
    if end_of_stream && failed.is_none() {
        failed = state.decoder.finish(&mut state.events).err();
    }
    let mut out = state.rewrite.then(Vec::new);
    for event in state.events.drain(..) {
        let keep = observe_event(&event, meter, now_ms, state.rewrite);
        if let Some(out) = out.as_mut() {
            match keep {
                Keep::Drop => {}
                Keep::As(patched) => encode_event(&patched, out),
                Keep::Same => encode_event(&event, out),
            }
        }
    }
    if let Some(error) = failed {
        // An event beyond the bound cannot be forwarded intact: end the stream cleanly.
        state.broken = true;
        let out = out.get_or_insert_with(Vec::new);
        let message = format!("llm-gateway: {error}; stream ended");
        let data = String::from_utf8_lossy(&openai::error_body(&message, "server_error", None, None)).into_owned();
        encode_event(&SseEvent { data, ..SseEvent::default() }, out);
    }
    out
}

enum Keep {
    Same,
    As(SseEvent),
    Drop,
}

/// Reads usage and timing off one event. When `rewrite`, also says what to forward: the
/// usage-only chunk the gateway asked for is dropped, and `"usage":null` removed.
fn observe_event(event: &SseEvent, meter: &mut Meter, now_ms: u64, rewrite: bool) -> Keep {
    let data = event.data.as_bytes();
    let Ok(members) = json_scan::top_level_members(data) else {
        return Keep::Same; // `[DONE]`, or something we leave alone.
    };
    let info = openai::inspect_chunk(data, &members);
    if let Some(reported) = info.usage {
        meter.usage = reported;
    }
    if info.generated_bytes > 0 {
        meter.generated_bytes += info.generated_bytes;
        meter.first_token_ms.get_or_insert(now_ms);
    }
    if !rewrite {
        return Keep::Same;
    }
    if info.usage_only {
        return Keep::Drop;
    }
    match json_scan::find(&members, "usage") {
        Some(m) if data.get(m.value.clone()) == Some(b"null") => {
            let patched = json_scan::apply_edits(data, &[json_scan::remove_member(data, &members, m)]);
            Keep::As(SseEvent { data: String::from_utf8_lossy(&patched).into_owned(), ..event.clone() })
        }
        _ => Keep::Same,
    }
}
