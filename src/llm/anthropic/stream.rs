//! Streams: [`StreamDecoder`] (Anthropic SSE from the provider -> IR events) and
//! [`StreamEncoder`] (IR events -> Anthropic SSE for a client).

use super::response::error_json;
use super::wire::{Block, InDelta, InStreamEvent, InUsage};
use super::{error_kind_from_type, stop_reason_from_wire, stop_reason_to_wire, usage_from_wire, usage_to_wire};
use crate::llm::ir::{ErrorKind, FirstChoice, ProviderError, StopReason, StreamEvent};
use crate::llm::sse_stream::{fail, EventDecoder, Flow, SseStream};
use crate::stream::sse::SseEvent;
use crate::usage::Usage;
// json! stays for the SSE event payloads: one-line tagged objects written as events, where a
// struct per event type would add a type each for no check the tests do not already make.
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
enum BlockKind {
    Text,
    Thinking,
    /// A tool_use block and its IR tool-call index.
    Tool(u32),
    /// A block without deltas the IR carries (`redacted_thinking`, whose data comes whole in
    /// `content_block_start`) or that the IR does not carry (server tools).
    Other,
}

/// Decodes Anthropic's `text/event-stream` into IR events.
///
/// Events are dispatched on the data's `type` (which always equals the SSE `event:`
/// name). `ping` and unknown event types are ignored. `message_start` gives `Start` and the
/// first `Usage`; `message_delta` gives `Usage` (counts are cumulative on the wire; counts
/// it omits keep their `message_start` values) then `Stop`; `message_stop` gives `Done`; an
/// `error` event gives `Error` and ends the stream. A `redacted_thinking` block gives one
/// `RedactedThinking` (its `data` is complete in `content_block_start`).
pub type StreamDecoder = SseStream<Events>;

/// The per-event state of [`StreamDecoder`].
#[derive(Debug, Default)]
pub struct Events {
    /// Anthropic block index -> kind, for the blocks of this message.
    blocks: Vec<(u64, BlockKind)>,
    next_tool: u32,
    usage: InUsage,
}

impl EventDecoder for Events {
    const FRAMING_ERROR: &'static str = "provider stream is malformed";

    fn event(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> Flow {
        self.decode(ev, out)
    }

    /// Anthropic always ends with `message_stop`: without it the answer is cut short.
    fn complete_without_marker(&self) -> bool {
        false
    }
}

impl Events {
    fn kind_of(&self, index: u64) -> BlockKind {
        self.blocks.iter().rev().find(|(i, _)| *i == index).map_or(BlockKind::Other, |(_, k)| *k)
    }

    fn decode(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> Flow {
        let parsed: InStreamEvent = match serde_json::from_str(&ev.data) {
            Ok(p) => p,
            Err(e) => {
                let name = ev.event.as_deref().unwrap_or("message");
                return fail(out, format!("provider sent an invalid `{name}` event: {e}"));
            }
        };
        match parsed {
            InStreamEvent::MessageStart { message } => {
                out.push(StreamEvent::Start { id: message.id, model: message.model });
                if let Some(u) = message.usage {
                    self.push_usage(&u, out);
                }
            }
            InStreamEvent::ContentBlockStart { index, content_block } => {
                let kind = match content_block {
                    Block::Text { text } => {
                        push_text(out, text);
                        BlockKind::Text
                    }
                    Block::Thinking { thinking, signature } => {
                        if !thinking.is_empty() {
                            out.push(StreamEvent::ThinkingDelta { text: thinking });
                        }
                        if !signature.is_empty() {
                            out.push(StreamEvent::ThinkingSignature { signature });
                        }
                        BlockKind::Thinking
                    }
                    Block::RedactedThinking { data } => {
                        out.push(StreamEvent::RedactedThinking { data });
                        BlockKind::Other
                    }
                    Block::ToolUse { id, name, input } => {
                        let index = self.next_tool;
                        self.next_tool = self.next_tool.saturating_add(1);
                        out.push(StreamEvent::ToolCallStart { index, id, name });
                        if input.as_object().is_some_and(|o| !o.is_empty()) {
                            out.push(StreamEvent::ToolCallDelta { index, arguments: input.to_string() });
                        }
                        BlockKind::Tool(index)
                    }
                    _ => BlockKind::Other,
                };
                self.blocks.push((index, kind));
            }
            InStreamEvent::ContentBlockDelta { index, delta } => match (self.kind_of(index), delta) {
                (BlockKind::Text, InDelta::TextDelta { text }) => push_text(out, text),
                (BlockKind::Tool(index), InDelta::InputJsonDelta { partial_json }) if !partial_json.is_empty() => {
                    out.push(StreamEvent::ToolCallDelta { index, arguments: partial_json });
                }
                (BlockKind::Thinking, InDelta::ThinkingDelta { thinking }) if !thinking.is_empty() => {
                    out.push(StreamEvent::ThinkingDelta { text: thinking });
                }
                (BlockKind::Thinking, InDelta::SignatureDelta { signature }) if !signature.is_empty() => {
                    out.push(StreamEvent::ThinkingSignature { signature });
                }
                _ => {}
            },
            InStreamEvent::ContentBlockStop { .. } | InStreamEvent::Ping | InStreamEvent::Unknown => {}
            InStreamEvent::MessageDelta { delta, usage } => {
                if let Some(u) = usage {
                    self.push_usage(&u, out);
                }
                if let Some(reason) = delta.stop_reason {
                    out.push(StreamEvent::Stop {
                        reason: stop_reason_from_wire(&reason),
                        stop_sequence: delta.stop_sequence,
                    });
                }
            }
            InStreamEvent::MessageStop => {
                out.push(StreamEvent::Done);
                return Flow::End;
            }
            InStreamEvent::Error { error } => {
                let kind = error.kind.as_deref().and_then(error_kind_from_type).unwrap_or(ErrorKind::Server);
                let message = error.message.unwrap_or_else(|| "provider stream error".to_string());
                out.push(StreamEvent::Error(ProviderError { kind, status: kind.status(), message }));
                return Flow::End;
            }
        }
        Flow::Continue
    }

    fn push_usage(&mut self, u: &InUsage, out: &mut Vec<StreamEvent>) {
        let (usage, merged) = usage_from_wire(u, &self.usage);
        self.usage = merged;
        out.push(StreamEvent::Usage(usage));
    }
}

fn push_text(out: &mut Vec<StreamEvent>, text: String) {
    if !text.is_empty() {
        out.push(StreamEvent::TextDelta { text });
    }
}

// ============================================================================= encoder

#[derive(Debug, Clone, Copy, PartialEq)]
enum Open {
    Text(u32),
    Thinking { index: u32, signed: bool },
    Tool { index: u32, call: u32 },
    Redacted(u32),
}

impl Open {
    fn index(self) -> u32 {
        match self {
            Open::Text(i) | Open::Thinking { index: i, .. } | Open::Tool { index: i, .. } | Open::Redacted(i) => i,
        }
    }
}

/// Encodes IR events as Anthropic's SSE stream (`event:` and `data:` lines):
/// `message_start`, then per block `content_block_start` / `content_block_delta`s /
/// `content_block_stop` (text, thinking, redacted_thinking and tool_use blocks, indexes from
/// 0 in order; a block closes when the event kind changes, a thinking block also after its
/// signature, a redacted_thinking block at once: its `data` is whole in the start event),
/// then `message_delta` (stop reason, cumulative usage) and `message_stop`.
///
/// `message_start` is written just before the first block (or the end), so usage that
/// arrives before any content (Anthropic, Bedrock) is in it; otherwise it carries 0 and
/// the final `message_delta` carries the totals (the SDKs overwrite their counts with
/// `message_delta`'s). An `Error` becomes `event: error` and ends the stream. A tool-call
/// delta for a call whose block was already closed cannot be expressed and is dropped.
#[derive(Debug)]
pub struct StreamEncoder {
    created: u64,
    id: Option<String>,
    model: Option<String>,
    started: bool,
    open: Option<Open>,
    next_index: u32,
    saw_tool: bool,
    usage: Usage,
    stop: Option<(StopReason, Option<String>)>,
    ended: bool,
    /// Writes only the first choice (`StreamEvent::Choice`).
    choice: FirstChoice,
}

impl StreamEncoder {
    /// `include_usage` is ignored: Anthropic streams always carry usage.
    pub fn new(_include_usage: bool, created_unix: u64) -> Self {
        StreamEncoder {
            created: created_unix,
            id: None,
            model: None,
            started: false,
            open: None,
            next_index: 0,
            saw_tool: false,
            usage: Usage::default(),
            stop: None,
            ended: false,
            choice: FirstChoice::default(),
        }
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        if !self.choice.admits(ev) {
            return;
        }
        match ev {
            StreamEvent::Choice { .. } => {}
            StreamEvent::Start { id, model } => {
                if !self.started {
                    self.id = Some(id.clone()).filter(|s| !s.is_empty());
                    self.model = Some(model.clone());
                }
            }
            StreamEvent::TextDelta { text } if !text.is_empty() => {
                let index = match self.open {
                    Some(Open::Text(i)) => i,
                    _ => self.open_block(Open::Text(0), json!({"type": "text", "text": ""}), out),
                };
                delta(out, index, json!({"type": "text_delta", "text": text}));
            }
            StreamEvent::ThinkingDelta { text } if !text.is_empty() => {
                let index = self.thinking_block(out);
                delta(out, index, json!({"type": "thinking_delta", "thinking": text}));
            }
            StreamEvent::ThinkingSignature { signature } => {
                let index = self.thinking_block(out);
                self.open = Some(Open::Thinking { index, signed: true });
                delta(out, index, json!({"type": "signature_delta", "signature": signature}));
            }
            StreamEvent::RedactedThinking { data } => {
                let block = json!({"type": "redacted_thinking", "data": data});
                self.open_block(Open::Redacted(0), block, out);
                self.close(out);
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.saw_tool = true;
                let block = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
                self.open_block(Open::Tool { index: 0, call: *index }, block, out);
            }
            StreamEvent::ToolCallDelta { index, arguments } if !arguments.is_empty() => {
                if let Some(Open::Tool { index: block, call }) = self.open {
                    if call == *index {
                        delta(out, block, json!({"type": "input_json_delta", "partial_json": arguments}));
                    }
                }
            }
            StreamEvent::Usage(u) => self.usage.update(u),
            StreamEvent::Stop { reason, stop_sequence } => self.stop = Some((*reason, stop_sequence.clone())),
            StreamEvent::Error(err) => {
                write_event(out, "error", &error_json(err));
                self.ended = true;
            }
            StreamEvent::Done => self.end(out),
            StreamEvent::TextDelta { .. } | StreamEvent::ThinkingDelta { .. } | StreamEvent::ToolCallDelta { .. } => {}
        }
    }

    /// Leaves a well-formed stream: closes what is open and writes the final events,
    /// unless the stream already ended (normally or with an error event).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.ended {
            self.end(out);
        }
    }

    /// The open thinking block's index, opening a new block unless an unsigned thinking
    /// block is open (a signature alone also gets a block: display "omitted").
    fn thinking_block(&mut self, out: &mut Vec<u8>) -> u32 {
        match self.open {
            Some(Open::Thinking { index, signed: false }) => index,
            _ => self.open_block(
                Open::Thinking { index: 0, signed: false },
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                out,
            ),
        }
    }

    fn open_block(&mut self, kind: Open, block: Value, out: &mut Vec<u8>) -> u32 {
        self.start(out);
        self.close(out);
        let index = self.next_index;
        self.next_index = self.next_index.saturating_add(1);
        self.open = Some(match kind {
            Open::Text(_) => Open::Text(index),
            Open::Thinking { signed, .. } => Open::Thinking { index, signed },
            Open::Tool { call, .. } => Open::Tool { index, call },
            Open::Redacted(_) => Open::Redacted(index),
        });
        write_event(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
        index
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some(open) = self.open.take() {
            write_event(out, "content_block_stop", &json!({"type": "content_block_stop", "index": open.index()}));
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let id = self.id.clone().unwrap_or_else(|| format!("msg_gw{}", self.created));
        let wire = usage_to_wire(&self.usage);
        let mut usage = json!({"input_tokens": wire.input_tokens, "output_tokens": wire.output_tokens});
        add_cache_counts(&mut usage, &self.usage);
        let message = json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": self.model.clone().unwrap_or_default(),
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": usage,
        });
        write_event(out, "message_start", &json!({"type": "message_start", "message": message}));
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        self.close(out);
        let (reason, seq) = match &self.stop {
            Some((r, s)) => (*r, s.clone()),
            None if self.saw_tool => (StopReason::ToolCalls, None),
            None => (StopReason::Stop, None),
        };
        let wire = usage_to_wire(&self.usage);
        let mut usage = json!({"output_tokens": wire.output_tokens});
        if self.usage.input.is_some() {
            if let Some(o) = usage.as_object_mut() {
                o.insert("input_tokens".into(), json!(wire.input_tokens));
            }
        }
        add_cache_counts(&mut usage, &self.usage);
        let body = json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason_to_wire(reason, seq.as_deref()), "stop_sequence": seq},
            "usage": usage,
        });
        write_event(out, "message_delta", &body);
        write_event(out, "message_stop", &json!({"type": "message_stop"}));
        self.ended = true;
    }
}

fn add_cache_counts(usage: &mut Value, u: &Usage) {
    if let Some(o) = usage.as_object_mut() {
        if let Some(w) = u.cache_write {
            o.insert("cache_creation_input_tokens".into(), json!(w));
        }
        if let Some(r) = u.cached_input {
            o.insert("cache_read_input_tokens".into(), json!(r));
        }
        if let Some(split) = super::cache_creation_to_wire(u) {
            o.insert("cache_creation".into(), json!(split));
        }
        if let Some(t) = u.reasoning {
            o.insert("output_tokens_details".into(), json!({"thinking_tokens": t}));
        }
    }
}

fn delta(out: &mut Vec<u8>, index: u32, delta: Value) {
    write_event(out, "content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": delta}));
}

/// `event: <name>\ndata: <json>\n\n` (compact JSON never holds a raw newline).
fn write_event(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}
