//! Provider side: a `chat.completion.chunk` SSE stream -> IR stream events.

use crate::llm::ir::StreamEvent;
use crate::llm::openai_chat::mapping::parse_usage_object;
use crate::llm::openai_chat::mapping::{finish_reason_to_ir, provider_error_from_object};
use crate::llm::openai_chat::response::{arguments_text, content_text, reasoning_text};
use crate::llm::openai_chat::wire::{WireCompletion, WireToolCall};
use crate::llm::sse_stream::{fail, EventDecoder, Flow, SseStream};
use crate::stream::sse::SseEvent;

/// Incremental decoder of an OpenAI Chat Completions stream.
///
/// - `Start` comes from the first chunk's `id`/`model`.
/// - `delta.reasoning_content` (or a string `delta.reasoning`) -> `ThinkingDelta`;
///   `delta.content` and `delta.refusal` -> `TextDelta`.
/// - `delta.tool_calls[]` are tracked by their `index`: the first fragment of an index gives
///   `ToolCallStart` (an id is synthesized if the server sent none), later `arguments`
///   fragments give `ToolCallDelta`. A new `id` at an index already in use (Ollama reuses
///   index 0 for parallel calls) starts a new call. IR indexes count calls in order.
/// - `finish_reason` -> `Stop`; a non-null `usage` (OpenAI's own counts are cumulative: one
///   final chunk with `include_usage`) -> `Usage`; `data: [DONE]` -> `Done`.
/// - `data: {"error": {...}}` (also under `event: error`) -> `Error`, which ends the stream.
/// - Several choices (`n` > 1): a `Choice { index }` before the events of a choice other than
///   the one before; each choice has its own tool calls and `Stop`, and without `[DONE]` the
///   stream is complete when every choice seen has finished.
///
/// `finish()` without `[DONE]`: `Done` if a `finish_reason` was seen (some compatible
/// servers omit `[DONE]`), else an `Error` "provider stream ended early".
pub type StreamDecoder = SseStream<Events>;

/// The per-event state of [`StreamDecoder`].
#[derive(Debug, Default)]
pub struct Events {
    started: bool,
    /// The choices seen (one unless the request asked for `n` > 1), by `index`.
    choices: Vec<ChoiceState>,
    /// The choice the last events were for (a `Choice` event marks a change).
    current: u64,
}

#[derive(Debug, Default)]
struct ChoiceState {
    index: u64,
    finished: bool,
    /// (provider index, provider id) of each tool call, in IR index order.
    calls: Vec<(u64, Option<String>)>,
}

impl EventDecoder for Events {
    const FRAMING_ERROR: &'static str = "provider stream";

    fn event(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> Flow {
        self.decode(ev, out)
    }

    /// Some compatible servers omit `[DONE]`: a seen `finish_reason` is a complete answer.
    fn complete_without_marker(&self) -> bool {
        !self.choices.is_empty() && self.choices.iter().all(|c| c.finished)
    }
}

impl Events {
    fn decode(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> Flow {
        let data = ev.data.trim();
        if data == "[DONE]" {
            out.push(StreamEvent::Done);
            return Flow::End;
        }
        if data.is_empty() {
            return Flow::Continue;
        }
        let chunk: WireCompletion = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(_) => return fail(out, "provider sent a stream event that is not a JSON chunk".to_string()),
        };
        if let Some(err) = chunk.error.as_ref().filter(|e| !e.is_null()) {
            out.push(StreamEvent::Error(provider_error_from_object(err, None)));
            return Flow::End;
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: chunk.id.clone().unwrap_or_default(),
                model: chunk.model.clone().unwrap_or_default(),
            });
        }
        for choice in &chunk.choices {
            let index = choice.index.unwrap_or(0);
            if index != self.current {
                self.current = index;
                out.push(StreamEvent::Choice { index: u32::try_from(index).unwrap_or(u32::MAX) });
            }
            if !self.choices.iter().any(|c| c.index == index) {
                self.choices.push(ChoiceState { index, ..ChoiceState::default() });
            }
            let Some(state) = self.choices.iter_mut().find(|c| c.index == index) else { continue };
            if let Some(d) = choice.delta.as_ref().or(choice.message.as_ref()) {
                if let Some(r) = reasoning_text(d) {
                    out.push(StreamEvent::ThinkingDelta { text: r.to_string() });
                }
                let text = d.content.as_ref().map(content_text).unwrap_or_default();
                if !text.is_empty() {
                    out.push(StreamEvent::TextDelta { text });
                }
                if let Some(r) = d.refusal.as_ref().filter(|r| !r.is_empty()) {
                    out.push(StreamEvent::TextDelta { text: r.clone() });
                }
                for tc in d.tool_calls.iter().flatten() {
                    tool_call(&mut state.calls, tc, out);
                }
            }
            if let Some(reason) = choice.finish_reason.as_deref() {
                state.finished = true;
                out.push(StreamEvent::Stop { reason: finish_reason_to_ir(reason), stop_sequence: None });
            }
        }
        let usage = chunk
            .usage
            .as_ref()
            .filter(|u| !u.is_null())
            .and_then(|u| serde_json::to_vec(u).ok())
            .and_then(|raw| parse_usage_object(&raw));
        if let Some(u) = usage {
            out.push(StreamEvent::Usage(u));
        }
        Flow::Continue
    }
}

fn tool_call(calls: &mut Vec<(u64, Option<String>)>, tc: &WireToolCall, out: &mut Vec<StreamEvent>) {
    let pindex = tc.index.unwrap_or(0);
    let id = tc.id.as_deref().filter(|s| !s.is_empty());
    let current = calls.iter().rposition(|(p, _)| *p == pindex);
    let ir_index = match current {
        Some(i) if id.is_none() || calls.get(i).and_then(|c| c.1.as_deref()) == id => i,
        _ => {
            let i = calls.len();
            calls.push((pindex, id.map(str::to_string)));
            let f = tc.function.as_ref();
            out.push(StreamEvent::ToolCallStart {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                id: id.map_or_else(|| format!("call_gw_{i}"), str::to_string),
                name: f.and_then(|f| f.name.clone()).unwrap_or_default(),
            });
            i
        }
    };
    let args = arguments_text(tc.function.as_ref().and_then(|f| f.arguments.as_ref()));
    if !args.is_empty() {
        out.push(StreamEvent::ToolCallDelta { index: u32::try_from(ir_index).unwrap_or(u32::MAX), arguments: args });
    }
}
