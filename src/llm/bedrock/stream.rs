//! ConverseStream (`application/vnd.amazon.eventstream`) -> IR stream events.
//!
//! Every event-stream message carries `:message-type` (`event`, `exception` or `error`) and,
//! for events, `:event-type`; the payload is the event's JSON (Bedrock pads it with a `p`
//! field, ignored). Order: `messageStart`, per content block `contentBlockStart` (tool use
//! only) / `contentBlockDelta`s / `contentBlockStop`, then `messageStop` (stop reason) and
//! last `metadata` (usage, metrics): the terminal event.
//!
//! - `messageStart` emits nothing: Bedrock sends neither an id nor the model, so client
//!   encoders synthesize their ids as when no `Start` came.
//! - Tool calls are numbered from 0 in order of `contentBlockStart`; deltas find their call by
//!   `contentBlockIndex`.
//! - `messageStop` -> `Stop`; `metadata` -> `Usage` (Bedrock's counts are final totals, see
//!   `TokenUsage::to_ir`) then `Done`.
//! - `exception` messages (`throttlingException`, `validationException`,
//!   `modelStreamErrorException`, `internalServerException`, `serviceUnavailableException`)
//!   and protocol `error` messages -> `Error`, after which the stream is over.
//! - A stream that ends after `messageStop` but without `metadata` still ends with `Done`
//!   (the answer is complete; usage stays unknown). One that ends before, or inside a frame,
//!   ends with `Error(502, "provider stream ended early")`. A framing/CRC error is an `Error`.
//! - `reasoningContent.redactedContent` deltas (base64) are collected per content block and
//!   emitted as one `RedactedThinking` when the block ends (`contentBlockStop`, another block's
//!   event, or `messageStop`): one delta keeps its string unchanged, several are joined as
//!   bytes (decoded, concatenated, re-encoded). A stream that breaks inside such a block ends
//!   with its `Error` and without the partial block.
//! - Not translated: citation and image deltas.

use super::mapping::{exception_kind, stop_reason, stop_sequence};
use super::wire::{ContentBlockDeltaEvent, ContentBlockStartEvent, ErrorBody, MessageStopEvent, MetadataEvent};
use crate::llm::ir::{ErrorKind, ProviderError, StreamEvent};
use crate::stream::eventstream::{EventStreamDecoder, Message};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// Largest event-stream message accepted (Bedrock events are small; AWS's limit is 16 MiB).
const MAX_FRAME: usize = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// `messageStop` seen, `metadata` not yet.
    Stopped,
    /// `Done` or `Error` emitted: nothing more.
    Over,
}

/// Incremental ConverseStream decoder (see the module docs).
#[derive(Debug)]
pub struct StreamDecoder {
    frames: EventStreamDecoder,
    messages: Vec<Message>,
    /// contentBlockIndex -> IR tool-call index.
    tools: HashMap<u64, u32>,
    next_tool: u32,
    state: State,
    /// `redactedContent` pieces of the open reasoning block (contentBlockIndex, base64 strings).
    redacted: Option<(u64, Vec<String>)>,
    /// The framing failed (a message beyond the bound, a bad CRC): the stream ended on the
    /// gateway's error.
    framing_failed: bool,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

fn ended_early(message: String) -> StreamEvent {
    StreamEvent::Error(ProviderError { kind: ErrorKind::Server, status: 502, message })
}

fn payload<T: DeserializeOwned + Default>(msg: &Message) -> T {
    serde_json::from_slice(&msg.payload).unwrap_or_default()
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::with_event_limit(MAX_FRAME)
    }

    /// A decoder that holds at most `max_event_bytes` for one event-stream message (the
    /// configured `limits.max_sse_event_bytes`: one message carries one event).
    pub fn with_event_limit(max_event_bytes: usize) -> Self {
        StreamDecoder {
            frames: EventStreamDecoder::new(max_event_bytes),
            messages: Vec::new(),
            tools: HashMap::new(),
            next_tool: 0,
            state: State::Open,
            redacted: None,
            framing_failed: false,
        }
    }

    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<StreamEvent>) {
        if self.state == State::Over {
            return;
        }
        let result = self.frames.feed(chunk, &mut self.messages);
        let messages = std::mem::take(&mut self.messages);
        for msg in &messages {
            if self.state == State::Over {
                break;
            }
            self.on_message(msg, out);
        }
        if let Err(e) = result {
            if self.state != State::Over {
                self.state = State::Over;
                self.framing_failed = true;
                out.push(ended_early(format!("invalid event stream from provider: {e}")));
            }
        }
    }

    /// Whether the stream ended because its framing failed: the gateway's error, which a
    /// passthrough must still tell the client.
    pub fn framing_failed(&self) -> bool {
        self.framing_failed
    }

    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        match self.state {
            State::Over => {}
            State::Stopped if self.frames.finish().is_ok() => out.push(StreamEvent::Done),
            _ => out.push(ended_early("provider stream ended early".into())),
        }
        self.state = State::Over;
    }

    fn on_message(&mut self, msg: &Message, out: &mut Vec<StreamEvent>) {
        match msg.header_str(":message-type").unwrap_or("event") {
            "event" => self.on_event(msg, out),
            "exception" => {
                let name = msg.header_str(":exception-type").unwrap_or("exception");
                let (kind, status) = exception_kind(name).unwrap_or((ErrorKind::Server, 502));
                let body: ErrorBody = payload(msg);
                let text = body.text().filter(|t| !t.trim().is_empty()).unwrap_or("no message");
                out.push(StreamEvent::Error(ProviderError { kind, status, message: format!("{name}: {text}") }));
                self.state = State::Over;
            }
            _ => {
                let code = msg.header_str(":error-code").unwrap_or("error");
                let text = msg.header_str(":error-message").unwrap_or("no message");
                out.push(ended_early(format!("provider stream error {code}: {text}")));
                self.state = State::Over;
            }
        }
    }

    /// Emits the collected redacted reasoning block, if any.
    fn flush_redacted(&mut self, out: &mut Vec<StreamEvent>) {
        let Some((_, pieces)) = self.redacted.take() else { return };
        let data = match pieces.as_slice() {
            [one] => one.clone(),
            _ => join_base64(&pieces),
        };
        out.push(StreamEvent::RedactedThinking { data });
    }

    /// Flushes the redacted block unless the event belongs to it.
    fn flush_other_block(&mut self, block: Option<u64>, out: &mut Vec<StreamEvent>) {
        if self.redacted.as_ref().is_some_and(|(open, _)| Some(*open) != block) {
            self.flush_redacted(out);
        }
    }

    fn on_event(&mut self, msg: &Message, out: &mut Vec<StreamEvent>) {
        match msg.header_str(":event-type").unwrap_or("") {
            "contentBlockStart" => {
                let ev: ContentBlockStartEvent = payload(msg);
                self.flush_other_block(ev.content_block_index, out);
                if let Some(tu) = ev.start.and_then(|s| s.tool_use) {
                    let index = self.next_tool;
                    self.next_tool = self.next_tool.saturating_add(1);
                    self.tools.insert(ev.content_block_index.unwrap_or(u64::MAX), index);
                    out.push(StreamEvent::ToolCallStart { index, id: tu.tool_use_id, name: tu.name });
                }
            }
            "contentBlockDelta" => {
                let ev: ContentBlockDeltaEvent = payload(msg);
                self.flush_other_block(ev.content_block_index, out);
                let Some(delta) = ev.delta else { return };
                if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::TextDelta { text });
                }
                if let Some(tu) = delta.tool_use {
                    let block = ev.content_block_index.unwrap_or(u64::MAX);
                    if let (Some(&index), false) = (self.tools.get(&block), tu.input.is_empty()) {
                        out.push(StreamEvent::ToolCallDelta { index, arguments: tu.input });
                    }
                }
                if let Some(rc) = delta.reasoning_content {
                    if let Some(text) = rc.text.filter(|t| !t.is_empty()) {
                        out.push(StreamEvent::ThinkingDelta { text });
                    }
                    if let Some(signature) = rc.signature.filter(|s| !s.is_empty()) {
                        out.push(StreamEvent::ThinkingSignature { signature });
                    }
                    if let Some(data) = rc.redacted_content.filter(|d| !d.is_empty()) {
                        let block = ev.content_block_index.unwrap_or(u64::MAX);
                        self.redacted.get_or_insert_with(|| (block, Vec::new())).1.push(data);
                    }
                }
            }
            "contentBlockStop" => self.flush_redacted(out),
            "messageStop" => {
                self.flush_redacted(out);
                let ev: MessageStopEvent = payload(msg);
                let reason = ev.stop_reason.as_deref().map_or(crate::llm::ir::StopReason::Other, stop_reason);
                out.push(StreamEvent::Stop {
                    reason,
                    stop_sequence: stop_sequence(ev.additional_model_response_fields.as_ref()),
                });
                self.state = State::Stopped;
            }
            "metadata" => {
                self.flush_redacted(out);
                let ev: MetadataEvent = payload(msg);
                if let Some(u) = ev.usage {
                    out.push(StreamEvent::Usage(u.to_ir()));
                }
                out.push(StreamEvent::Done);
                self.state = State::Over;
            }
            // messageStart and anything new: nothing to translate.
            _ => {}
        }
    }
}

/// Base64 pieces of one blob -> the base64 of their concatenated bytes; pieces that are not
/// valid base64 are joined as text (the data is opaque: better kept than dropped).
fn join_base64(pieces: &[String]) -> String {
    let mut bytes = Vec::new();
    for p in pieces {
        match STANDARD.decode(p) {
            Ok(mut b) => bytes.append(&mut b),
            Err(_) => return pieces.concat(),
        }
    }
    STANDARD.encode(bytes)
}
