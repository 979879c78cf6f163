//! `streamGenerateContent?alt=sse` -> IR stream events.
//!
//! Every `data:` event is a whole `GenerateContentResponse` chunk: parts are incremental,
//! `usageMetadata` is cumulative (latest wins), and the chunk with `finishReason` is the last
//! one; there is no `[DONE]`, the stream just ends. So:
//! - `Start` is emitted with the first chunk (`responseId`, `modelVersion`).
//! - Text -> `TextDelta`; `thought: true` text -> `ThinkingDelta`; a `thoughtSignature` on a
//!   thought or text part -> `ThinkingSignature` after its delta.
//! - A `functionCall` arrives whole in one part: `ToolCallStart` + one `ToolCallDelta` with
//!   the full arguments JSON. `ToolCallStart` has no room for a signature, so a signature on
//!   a function-call part is emitted as `ThinkingSignature` just before `ToolCallStart`; the
//!   request encoder lends such a signature-only thinking part back to the call after it.
//! - `Usage` whenever the known counts change; `Stop` when `finishReason` arrives (ToolCalls
//!   when the response had function calls and the reason is STOP); `promptFeedback.blockReason`
//!   without candidates -> `Stop{ContentFilter}`.
//! - `finish()`: `Done` if a finish reason was seen, else the "ended early" error. An
//!   `{"error": ..}` event, a malformed event or an SSE framing error becomes an `Error`
//!   event that ends the stream (nothing follows it, not even in `finish`).

use super::response::{args_text, call_id, candidate_parts, convert_usage, error_from_body, finish_reason, truncate};
use super::wire::Response;
use crate::llm::ir::{ErrorKind, ProviderError, StopReason, StreamEvent};
use crate::stream::sse::{SseDecoder, SseEvent};
use crate::usage::Usage;

/// Largest single SSE event held while decoding.
const MAX_EVENT_BYTES: usize = 1 << 20;

#[derive(Debug)]
pub struct StreamDecoder {
    sse: SseDecoder,
    events: Vec<SseEvent>,
    started: bool,
    tool_calls: u32,
    last_usage: Option<Usage>,
    /// A finish reason (or a prompt block) was seen: the stream ended normally.
    finished: bool,
    /// An `Error` was emitted, or `finish` ran: emit nothing more.
    closed: bool,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamDecoder {
    pub fn new() -> Self {
        StreamDecoder {
            sse: SseDecoder::new(MAX_EVENT_BYTES),
            events: Vec::new(),
            started: false,
            tool_calls: 0,
            last_usage: None,
            finished: false,
            closed: false,
        }
    }

    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<StreamEvent>) {
        if self.closed {
            return;
        }
        let result = self.sse.feed(chunk, &mut self.events);
        self.drain(out);
        if let Err(e) = result {
            self.fail(out, format!("provider stream framing error: {e}"));
        }
    }

    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.closed {
            return;
        }
        let result = self.sse.finish(&mut self.events);
        self.drain(out);
        if let Err(e) = result {
            self.fail(out, format!("provider stream framing error: {e}"));
        }
        if self.closed {
            return;
        }
        self.closed = true;
        if self.finished {
            out.push(StreamEvent::Done);
        } else {
            out.push(StreamEvent::Error(ProviderError {
                kind: ErrorKind::Server,
                status: 502,
                message: "provider stream ended early".to_string(),
            }));
        }
    }

    fn fail(&mut self, out: &mut Vec<StreamEvent>, message: String) {
        if !self.closed {
            self.closed = true;
            out.push(StreamEvent::Error(ProviderError { kind: ErrorKind::Server, status: 502, message }));
        }
    }

    fn drain(&mut self, out: &mut Vec<StreamEvent>) {
        let events = std::mem::take(&mut self.events);
        for event in &events {
            if self.closed {
                break;
            }
            self.on_event(event, out);
        }
        // Keep the allocation for the next feed.
        self.events = events;
        self.events.clear();
    }

    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) {
        let data = event.data.trim();
        if data.is_empty() {
            return;
        }
        let parsed = if data.starts_with('{') {
            serde_json::from_str(data).map_err(|e| e.to_string())
        } else {
            Err("not a JSON object".to_string())
        };
        let chunk: Response = match parsed {
            Ok(chunk) => chunk,
            Err(e) => {
                return self.fail(out, format!("provider sent an invalid stream event: {}", truncate(&e)));
            }
        };
        if let Some(err) = chunk.error {
            self.closed = true;
            out.push(StreamEvent::Error(error_from_body(err, 500)));
            return;
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: chunk.response_id.clone().unwrap_or_default(),
                model: chunk.model_version.clone().unwrap_or_default(),
            });
        }
        let candidate = chunk.candidates.first();
        if let Some(candidate) = candidate {
            self.on_parts(candidate_parts(candidate), out);
        }
        if let Some(usage) = chunk.usage_metadata.as_ref().map(convert_usage) {
            if (usage.input.is_some() || usage.output.is_some()) && self.last_usage != Some(usage) {
                self.last_usage = Some(usage);
                out.push(StreamEvent::Usage(usage));
            }
        }
        let reason = match candidate.and_then(|c| c.finish_reason.as_deref()) {
            Some(r) if !r.is_empty() => Some(finish_reason(r, self.tool_calls > 0)),
            _ if chunk.candidates.is_empty() && chunk.prompt_feedback.and_then(|f| f.block_reason).is_some() => {
                Some(StopReason::ContentFilter)
            }
            _ => None,
        };
        if let Some(reason) = reason {
            if !self.finished {
                self.finished = true;
                out.push(StreamEvent::Stop { reason, stop_sequence: None });
            }
        }
    }

    fn on_parts(&mut self, parts: &[super::wire::InPart], out: &mut Vec<StreamEvent>) {
        for part in parts {
            if let Some(call) = &part.function_call {
                if let Some(sig) = &part.thought_signature {
                    out.push(StreamEvent::ThinkingSignature { signature: sig.clone() });
                }
                let index = self.tool_calls;
                self.tool_calls = self.tool_calls.saturating_add(1);
                out.push(StreamEvent::ToolCallStart {
                    index,
                    id: call_id(call.id.as_deref(), usize::try_from(index).unwrap_or(usize::MAX)),
                    name: call.name.clone(),
                });
                out.push(StreamEvent::ToolCallDelta { index, arguments: args_text(call.args.as_ref()) });
                continue;
            }
            if let Some(text) = &part.text {
                if !text.is_empty() {
                    if part.thought == Some(true) {
                        out.push(StreamEvent::ThinkingDelta { text: text.clone() });
                    } else {
                        out.push(StreamEvent::TextDelta { text: text.clone() });
                    }
                }
            }
            if let Some(sig) = &part.thought_signature {
                out.push(StreamEvent::ThinkingSignature { signature: sig.clone() });
            }
        }
    }
}
