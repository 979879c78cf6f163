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
use crate::llm::ir::{StopReason, StreamEvent};
use crate::llm::sse_stream::{fail, EventDecoder, Flow, SseStream};
use crate::stream::sse::SseEvent;
use crate::usage::Usage;

pub type StreamDecoder = SseStream<Events>;

/// The per-event state of [`StreamDecoder`].
#[derive(Debug, Default)]
pub struct Events {
    started: bool,
    tool_calls: u32,
    last_usage: Option<Usage>,
    /// A finish reason (or a prompt block) was seen: the stream ended normally.
    finished: bool,
}

impl EventDecoder for Events {
    const FRAMING_ERROR: &'static str = "provider stream framing error";

    fn event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Flow {
        self.on_event(event, out)
    }

    /// Gemini has no end marker: the chunk with a finish reason is the last.
    fn complete_without_marker(&self) -> bool {
        self.finished
    }
}

impl Events {
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Flow {
        let data = event.data.trim();
        if data.is_empty() {
            return Flow::Continue;
        }
        let parsed = if data.starts_with('{') {
            serde_json::from_str(data).map_err(|e| e.to_string())
        } else {
            Err("not a JSON object".to_string())
        };
        let chunk: Response = match parsed {
            Ok(chunk) => chunk,
            Err(e) => {
                return fail(out, format!("provider sent an invalid stream event: {}", truncate(&e)));
            }
        };
        if let Some(err) = chunk.error {
            out.push(StreamEvent::Error(error_from_body(err, 500)));
            return Flow::End;
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
        Flow::Continue
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
