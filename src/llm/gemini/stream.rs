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
//! - Several candidates (`candidateCount` > 1): a `Choice { index }` before the events of a
//!   candidate other than the one before; each candidate has its own tool-call count and
//!   `Stop`, and the stream is complete when every candidate seen has finished.
//! - `finish()`: `Done` if a finish reason was seen, else the "ended early" error. An
//!   `{"error": ..}` event, a malformed event or an SSE framing error becomes an `Error`
//!   event that ends the stream (nothing follows it, not even in `finish`).

use super::mapping::{convert_usage, finish_reason};
use super::response::{args_text, call_id, candidate_parts, error_from_body, truncate};
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
    last_usage: Option<Usage>,
    /// A prompt block ended the stream normally.
    blocked: bool,
    /// The candidates seen (`candidateCount` > 1 gives several), by `index`.
    candidates: Vec<CandidateState>,
    /// The candidate the last events were for (a `Choice` event marks a change).
    current: u32,
}

#[derive(Debug)]
struct CandidateState {
    index: u32,
    tool_calls: u32,
    /// Its finish reason was seen.
    finished: bool,
}

impl EventDecoder for Events {
    const FRAMING_ERROR: &'static str = "provider stream framing error";

    fn event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Flow {
        self.on_event(event, out)
    }

    /// Gemini has no end marker: the chunk with a finish reason is the last (of each
    /// candidate).
    fn complete_without_marker(&self) -> bool {
        self.blocked || (!self.candidates.is_empty() && self.candidates.iter().all(|c| c.finished))
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
        // A chunk's usage goes before its stops (the order a single candidate always had).
        let mut stops = Vec::new();
        for candidate in &chunk.candidates {
            let index = candidate.index.and_then(|i| u32::try_from(i).ok()).unwrap_or(0);
            // Before another candidate's events, the stops of those before (each Stop must
            // follow its own candidate's events, before the next `Choice`).
            out.append(&mut stops);
            if index != self.current {
                self.current = index;
                out.push(StreamEvent::Choice { index });
            }
            let Some(state) = self.candidate(index) else { continue };
            Self::on_parts(state, candidate_parts(candidate), out);
            if let Some(r) = candidate.finish_reason.as_deref().filter(|r| !r.is_empty() && !state.finished) {
                state.finished = true;
                stops.push(StreamEvent::Stop { reason: finish_reason(r, state.tool_calls > 0), stop_sequence: None });
            }
        }
        if let Some(usage) = chunk.usage_metadata.as_ref().map(convert_usage) {
            if (usage.input.is_some() || usage.output.is_some()) && self.last_usage != Some(usage) {
                self.last_usage = Some(usage);
                out.push(StreamEvent::Usage(usage));
            }
        }
        out.append(&mut stops);
        if chunk.candidates.is_empty()
            && chunk.prompt_feedback.and_then(|f| f.block_reason).is_some()
            && !self.blocked
            && self.candidates.is_empty()
        {
            self.blocked = true;
            out.push(StreamEvent::Stop { reason: StopReason::ContentFilter, stop_sequence: None });
        }
        Flow::Continue
    }

    fn candidate(&mut self, index: u32) -> Option<&mut CandidateState> {
        if !self.candidates.iter().any(|c| c.index == index) {
            self.candidates.push(CandidateState { index, tool_calls: 0, finished: false });
        }
        self.candidates.iter_mut().find(|c| c.index == index)
    }

    fn on_parts(state: &mut CandidateState, parts: &[super::wire::InPart], out: &mut Vec<StreamEvent>) {
        for part in parts {
            if let Some(call) = &part.function_call {
                if let Some(sig) = &part.thought_signature {
                    out.push(StreamEvent::ThinkingSignature { signature: sig.clone() });
                }
                let index = state.tool_calls;
                state.tool_calls = state.tool_calls.saturating_add(1);
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
