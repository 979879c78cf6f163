//! OpenAI Responses API (`/v1/responses`), a client dialect.
//!
//! To OpenAI itself the gateway passes it through and only reads usage, from a response
//! object and from its stream, which reports it on `response.completed`,
//! `response.incomplete` and `response.failed` (this file).
//!
//! To every other provider it is translated through the IR like Chat Completions and
//! Messages: [`decode_request`] (input items, instructions, function tools, reasoning,
//! `text.format`; stateful features refused), [`encode_response`] (the `response` object),
//! [`encode_error`] and [`StreamEncoder`] (the typed SSE events).

mod decode;
mod encode;
mod stream;

pub use decode::decode_request;
pub use encode::{encode_error, encode_response};
pub use stream::StreamEncoder;

use crate::stream::sse::SseEvent;
use crate::usage::{Usage, UsageSource};
use serde::Deserialize;

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    input_tokens_details: Option<InputDetails>,
    #[serde(default)]
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Deserialize)]
struct InputDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct OutputDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireEvent<'a> {
    #[serde(default, borrow, rename = "type")]
    kind: Option<&'a str>,
    #[serde(default)]
    response: Option<WireResponse>,
    #[serde(default, borrow)]
    delta: Option<std::borrow::Cow<'a, str>>,
}

fn to_usage(w: WireUsage) -> Option<Usage> {
    if w.input_tokens.is_none() && w.output_tokens.is_none() {
        return None;
    }
    Some(Usage {
        input: w.input_tokens,
        output: w.output_tokens,
        cached_input: w.input_tokens_details.and_then(|d| d.cached_tokens),
        cache_write: None,
        cache_write_1h: None,
        reasoning: w.output_tokens_details.and_then(|d| d.reasoning_tokens),
        source: UsageSource::Reported,
    })
}

/// Usage of a complete response object.
pub fn response_usage(body: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<WireResponse>(body).ok()?.usage.and_then(to_usage)
}

const FINAL_EVENTS: [&str; 3] = ["response.completed", "response.incomplete", "response.failed"];

/// Usage carried by a final stream event.
pub fn event_usage(event: &SseEvent) -> Option<Usage> {
    if !event.event.as_deref().is_none_or(|e| FINAL_EVENTS.contains(&e)) {
        return None;
    }
    let wire: WireEvent = serde_json::from_str(&event.data).ok()?;
    if !wire.kind.is_some_and(|k| FINAL_EVENTS.contains(&k)) {
        return None;
    }
    wire.response?.usage.and_then(to_usage)
}

/// Bytes of generated text in a delta event (for estimates and time to first token).
pub fn event_text_bytes(event: &SseEvent) -> usize {
    let Some(kind) = event.event.as_deref() else { return 0 };
    if !kind.ends_with(".delta") || kind.starts_with("response.audio") {
        return 0;
    }
    serde_json::from_str::<WireEvent>(&event.data).ok().and_then(|w| w.delta).map_or(0, |d| d.len())
}
