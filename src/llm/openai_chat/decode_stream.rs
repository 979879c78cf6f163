//! Provider side: a `chat.completion.chunk` SSE stream -> IR stream events.

use super::response::{arguments_text, content_text, reasoning_text};
use super::util::{finish_reason_to_ir, provider_error_from_object};
use super::wire::{WireCompletion, WireToolCall};
use crate::llm::ir::{ErrorKind, ProviderError, StreamEvent};
use crate::llm::openai;
use crate::stream::sse::{SseDecoder, SseEvent};

/// Most bytes held for one SSE event.
const MAX_EVENT_BYTES: usize = 1 << 20;

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
/// - Only choice 0 is read.
///
/// `finish()` without `[DONE]`: `Done` if a `finish_reason` was seen (some compatible
/// servers omit `[DONE]`), else an `Error` "provider stream ended early".
#[derive(Debug)]
pub struct StreamDecoder {
    sse: SseDecoder,
    events: Vec<SseEvent>,
    started: bool,
    finished_reason: bool,
    ended: bool,
    /// (provider index, provider id) of each tool call, in IR index order.
    calls: Vec<(u64, Option<String>)>,
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
            finished_reason: false,
            ended: false,
            calls: Vec::new(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        let result = self.sse.feed(chunk, &mut self.events);
        self.drain(out);
        if let Err(e) = result {
            self.fail(out, format!("provider stream: {e}"));
        }
    }

    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.ended {
            let result = self.sse.finish(&mut self.events);
            self.drain(out);
            if let Err(e) = result {
                self.fail(out, format!("provider stream: {e}"));
            }
        }
        if !self.ended {
            self.ended = true;
            if self.finished_reason {
                out.push(StreamEvent::Done);
            } else {
                out.push(StreamEvent::Error(ProviderError {
                    kind: ErrorKind::Server,
                    status: 502,
                    message: "provider stream ended early".to_string(),
                }));
            }
        }
    }

    fn fail(&mut self, out: &mut Vec<StreamEvent>, message: String) {
        if !self.ended {
            self.ended = true;
            out.push(StreamEvent::Error(ProviderError { kind: ErrorKind::Server, status: 502, message }));
        }
    }

    fn drain(&mut self, out: &mut Vec<StreamEvent>) {
        let events = std::mem::take(&mut self.events);
        for ev in &events {
            if self.ended {
                break;
            }
            self.event(ev, out);
        }
        self.events = events;
        self.events.clear();
    }

    fn event(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) {
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.ended = true;
            out.push(StreamEvent::Done);
            return;
        }
        if data.is_empty() {
            return;
        }
        let chunk: WireCompletion = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(_) => return self.fail(out, "provider sent a stream event that is not a JSON chunk".to_string()),
        };
        if let Some(err) = chunk.error.as_ref().filter(|e| !e.is_null()) {
            self.ended = true;
            out.push(StreamEvent::Error(provider_error_from_object(err, None)));
            return;
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: chunk.id.clone().unwrap_or_default(),
                model: chunk.model.clone().unwrap_or_default(),
            });
        }
        for choice in chunk.choices.iter().filter(|c| c.index.unwrap_or(0) == 0) {
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
                    self.tool_call(tc, out);
                }
            }
            if let Some(reason) = choice.finish_reason.as_deref() {
                self.finished_reason = true;
                out.push(StreamEvent::Stop { reason: finish_reason_to_ir(reason), stop_sequence: None });
            }
        }
        let usage = chunk
            .usage
            .as_ref()
            .filter(|u| !u.is_null())
            .and_then(|u| serde_json::to_vec(u).ok())
            .and_then(|raw| openai::parse_usage_object(&raw));
        if let Some(u) = usage {
            out.push(StreamEvent::Usage(u));
        }
    }

    fn tool_call(&mut self, tc: &WireToolCall, out: &mut Vec<StreamEvent>) {
        let pindex = tc.index.unwrap_or(0);
        let id = tc.id.as_deref().filter(|s| !s.is_empty());
        let current = self.calls.iter().rposition(|(p, _)| *p == pindex);
        let ir_index = match current {
            Some(i) if id.is_none() || self.calls.get(i).and_then(|c| c.1.as_deref()) == id => i,
            _ => {
                let i = self.calls.len();
                self.calls.push((pindex, id.map(str::to_string)));
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
            out.push(StreamEvent::ToolCallDelta {
                index: u32::try_from(ir_index).unwrap_or(u32::MAX),
                arguments: args,
            });
        }
    }
}
