//! Client side: IR stream events -> the Responses API's typed SSE events.
//!
//! Every event is `event: <type>` + `data: {"type": <type>, ..., "sequence_number": n}`,
//! numbered from 0:
//!
//! 1. `response.created` and `response.in_progress` (status `in_progress`, no output);
//! 2. per output item, in the provider's order:
//!    - text: `response.output_item.added` (message), `response.content_part.added`,
//!      `response.output_text.delta`..., `response.output_text.done`,
//!      `response.content_part.done`, `response.output_item.done`;
//!    - reasoning: `response.output_item.added` (reasoning),
//!      `response.reasoning_summary_part.added`, `response.reasoning_summary_text.delta`...,
//!      `response.reasoning_summary_text.done`, `response.reasoning_summary_part.done`,
//!      `response.output_item.done` (with the signature as `encrypted_content`);
//!    - tool call: `response.output_item.added` (function_call),
//!      `response.function_call_arguments.delta`..., `response.function_call_arguments.done`,
//!      `response.output_item.done`;
//! 3. `response.completed` (or `response.incomplete` when the output cap or a content
//!    filter ended it) with every output item and the usage.
//!
//! A provider error mid-stream: the open item is closed, then `error` (`code`, `message`,
//! `param`) and `response.failed` (status `failed`, `error`, the output so far and the usage
//! seen) end the stream. `finish()` ends a stream that had no end as if it had completed;
//! events after the end are ignored.

use super::mapping::{failure_code, status_of, usage_json};
use super::response::{
    function_call_item, item_id, message_item, output_text_part, reasoning_item, redacted, response_id,
    response_object, Envelope,
};
use super::wire::ResponseObject;
use crate::llm::ir::{FirstChoice, ProviderError, StopReason, StreamEvent};
use crate::llm::openai_chat::mapping::error_type_code;
use crate::usage::Usage;
use serde::Serialize;
// json! stays for event payloads: each wraps output items that are `Value`s (response.rs).
use serde_json::{json, Value};

/// The output item being streamed.
#[derive(Debug)]
enum Open {
    Message {
        text: String,
    },
    /// `summary_open`: a summary part was announced (reasoning text came).
    Reasoning {
        text: String,
        signature: Option<String>,
        summary_open: bool,
    },
    Call {
        ir_index: u32,
        call_id: String,
        name: String,
        arguments: String,
    },
}

#[derive(Debug)]
pub struct StreamEncoder {
    created: u64,
    /// Set by `Start` (or from the clock at the first event without one).
    id: Option<String>,
    model: String,
    sequence: u64,
    started: bool,
    open: Option<(usize, String, Open)>,
    /// Completed output items, for the final `response` object.
    output: Vec<Value>,
    usage: Usage,
    stop: Option<StopReason>,
    saw_tool: bool,
    ended: bool,
    /// Writes only the first choice (`StreamEvent::Choice`).
    choice: FirstChoice,
}

impl StreamEncoder {
    /// `include_usage` is ignored: Responses streams always end with usage.
    pub fn new(_include_usage: bool, created_unix: u64) -> Self {
        StreamEncoder {
            created: created_unix,
            id: None,
            model: String::new(),
            sequence: 0,
            started: false,
            open: None,
            output: Vec::new(),
            usage: Usage::default(),
            stop: None,
            saw_tool: false,
            ended: false,
            choice: FirstChoice::default(),
        }
    }

    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        if !self.choice.admits(event) {
            return;
        }
        match event {
            StreamEvent::Choice { .. } => {}
            StreamEvent::Start { id, model } => {
                if !self.started {
                    self.id = Some(response_id(id, self.created));
                    self.model = model.clone();
                }
            }
            StreamEvent::TextDelta { text } if !text.is_empty() => self.text_delta(text, out),
            StreamEvent::ThinkingDelta { text } if !text.is_empty() => self.thinking_delta(text, out),
            StreamEvent::ThinkingSignature { signature } => self.thinking_signature(signature, out),
            StreamEvent::RedactedThinking { data } => {
                let open =
                    Open::Reasoning { text: String::new(), signature: Some(redacted(data)), summary_open: false };
                self.open_item("rs", open, out);
                self.close(out);
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.saw_tool = true;
                let open =
                    Open::Call { ir_index: *index, call_id: id.clone(), name: name.clone(), arguments: String::new() };
                self.open_item("fc", open, out);
            }
            StreamEvent::ToolCallDelta { index, arguments } if !arguments.is_empty() => {
                self.arguments_delta(*index, arguments, out)
            }
            StreamEvent::Usage(u) => self.usage.update(u),
            StreamEvent::Stop { reason, .. } => self.stop = Some(*reason),
            StreamEvent::Error(error) => self.fail(error, out),
            StreamEvent::Done => self.complete(out),
            StreamEvent::TextDelta { .. } | StreamEvent::ThinkingDelta { .. } | StreamEvent::ToolCallDelta { .. } => {}
        }
    }

    /// Leaves a well-formed stream: ends it as completed unless it already ended.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.ended {
            self.complete(out);
        }
    }

    fn text_delta(&mut self, text: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Some((_, _, Open::Message { .. }))) {
            self.open_item("msg", Open::Message { text: String::new() }, out);
        }
        let sequence_number = self.next_sequence();
        let Some((index, item, Open::Message { text: all })) = &mut self.open else { return };
        all.push_str(text);
        let event = DeltaEvent {
            kind: "response.output_text.delta",
            item_id: item,
            output_index: *index,
            content_index: Some(0),
            summary_index: None,
            delta: text,
            logprobs: Some([]),
            sequence_number,
        };
        write_delta(&event, out);
    }

    fn thinking_delta(&mut self, text: &str, out: &mut Vec<u8>) {
        let continues = matches!(self.open, Some((_, _, Open::Reasoning { signature: None, .. })));
        if !continues {
            let open = Open::Reasoning { text: String::new(), signature: None, summary_open: false };
            self.open_item("rs", open, out);
        }
        let Some((index, item, Open::Reasoning { text: all, summary_open, .. })) = &mut self.open else { return };
        let (index, item) = (*index, item.clone());
        let announce = !*summary_open;
        *summary_open = true;
        all.push_str(text);
        if announce {
            let part = json!({"type": "summary_text", "text": ""});
            let data = json!({"item_id": item, "output_index": index, "summary_index": 0, "part": part});
            self.emit("response.reasoning_summary_part.added", data, out);
        }
        let sequence_number = self.next_sequence();
        let event = DeltaEvent {
            kind: "response.reasoning_summary_text.delta",
            item_id: &item,
            output_index: index,
            content_index: None,
            summary_index: Some(0),
            delta: text,
            logprobs: None,
            sequence_number,
        };
        write_delta(&event, out);
    }

    /// The signature closes the reasoning it signs (one that came alone gets an item too).
    fn thinking_signature(&mut self, signature: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Some((_, _, Open::Reasoning { signature: None, .. }))) {
            let open = Open::Reasoning { text: String::new(), signature: None, summary_open: false };
            self.open_item("rs", open, out);
        }
        if let Some((_, _, Open::Reasoning { signature: slot, .. })) = &mut self.open {
            *slot = Some(signature.to_string());
        }
    }

    fn arguments_delta(&mut self, call: u32, delta: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Some((_, _, Open::Call { ir_index, .. })) if ir_index == call) {
            return;
        }
        let sequence_number = self.next_sequence();
        let Some((index, item, Open::Call { arguments, .. })) = &mut self.open else { return };
        arguments.push_str(delta);
        let event = DeltaEvent {
            kind: "response.function_call_arguments.delta",
            item_id: item,
            output_index: *index,
            content_index: None,
            summary_index: None,
            delta,
            logprobs: None,
            sequence_number,
        };
        write_delta(&event, out);
    }

    fn next_sequence(&mut self) -> u64 {
        let n = self.sequence;
        self.sequence = self.sequence.saturating_add(1);
        n
    }

    fn id(&mut self) -> String {
        let created = self.created;
        self.id.get_or_insert_with(|| response_id("", created)).clone()
    }

    /// `response.created` and `response.in_progress`, once.
    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        self.lifecycle("response.created", "in_progress", Value::Null, Value::Null, Value::Null, out);
        self.lifecycle("response.in_progress", "in_progress", Value::Null, Value::Null, Value::Null, out);
    }

    fn open_item(&mut self, kind: &str, open: Open, out: &mut Vec<u8>) {
        self.start(out);
        self.close(out);
        let index = self.output.len();
        let id = item_id(kind, index, &self.id());
        let item = match &open {
            Open::Message { .. } => message_item(&id, "in_progress", &[]),
            Open::Reasoning { .. } => reasoning_item(&id, "", None),
            Open::Call { call_id, name, .. } => function_call_item(&id, call_id, name, "", "in_progress"),
        };
        self.emit("response.output_item.added", json!({"output_index": index, "item": item}), out);
        if matches!(open, Open::Message { .. }) {
            let data = json!({"item_id": id, "output_index": index, "content_index": 0, "part": output_text_part("")});
            self.emit("response.content_part.added", data, out);
        }
        self.open = Some((index, id, open));
    }

    /// Ends the open item with its `.done` events.
    fn close(&mut self, out: &mut Vec<u8>) {
        let Some((index, id, open)) = self.open.take() else { return };
        let item = match open {
            Open::Message { text } => {
                let at = json!({"item_id": id, "output_index": index, "content_index": 0});
                self.emit("response.output_text.done", with(&at, json!({"text": text, "logprobs": []})), out);
                self.emit("response.content_part.done", with(&at, json!({"part": output_text_part(&text)})), out);
                message_item(&id, "completed", &[&text])
            }
            Open::Reasoning { text, signature, summary_open } => {
                if summary_open {
                    let at = json!({"item_id": id, "output_index": index, "summary_index": 0});
                    self.emit("response.reasoning_summary_text.done", with(&at, json!({"text": text})), out);
                    let part = json!({"type": "summary_text", "text": text});
                    self.emit("response.reasoning_summary_part.done", with(&at, json!({"part": part})), out);
                }
                reasoning_item(&id, &text, signature.as_deref())
            }
            Open::Call { call_id, name, arguments, .. } => {
                let data = json!({"item_id": id, "output_index": index, "name": name, "arguments": arguments});
                self.emit("response.function_call_arguments.done", data, out);
                function_call_item(&id, &call_id, &name, &arguments, "completed")
            }
        };
        self.emit("response.output_item.done", json!({"output_index": index, "item": item}), out);
        self.output.push(item);
    }

    fn complete(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        self.close(out);
        let stop = self.stop.or(self.saw_tool.then_some(StopReason::ToolCalls));
        let (status, details) = status_of(stop);
        let kind = if status == "completed" { "response.completed" } else { "response.incomplete" };
        let usage = usage_json(&self.usage);
        self.lifecycle(kind, status, details, Value::Null, usage, out);
        self.ended = true;
    }

    fn fail(&mut self, error: &ProviderError, out: &mut Vec<u8>) {
        self.start(out);
        self.close(out);
        let code = failure_code(error.kind);
        let (_, param_code) = error_type_code(error.kind);
        let data = json!({"code": param_code.unwrap_or(code), "message": error.message, "param": null});
        self.emit("error", data, out);
        let failure = json!({"code": code, "message": error.message});
        let usage = usage_json(&self.usage);
        self.lifecycle("response.failed", "failed", Value::Null, failure, usage, out);
        self.ended = true;
    }

    /// A lifecycle event (`response.created`, `.completed`...): the whole `response` object.
    fn lifecycle(
        &mut self,
        kind: &'static str,
        status: &'static str,
        incomplete_details: Value,
        error: Value,
        usage: Value,
        out: &mut Vec<u8>,
    ) {
        let id = self.id();
        let sequence_number = self.next_sequence();
        let envelope =
            Envelope { id: &id, created: self.created, model: &self.model, status, incomplete_details, error };
        let event = Lifecycle { kind, response: response_object(&envelope, &self.output, &usage), sequence_number };
        write_event(kind, &event, out);
    }

    /// `event: <kind>` and its data with `type` first and the next `sequence_number` last.
    fn emit(&mut self, kind: &str, fields: Value, out: &mut Vec<u8>) {
        let mut data = serde_json::Map::new();
        data.insert("type".to_string(), json!(kind));
        if let Value::Object(fields) = fields {
            data.extend(fields);
        }
        data.insert("sequence_number".to_string(), json!(self.next_sequence()));
        write_event(kind, &Value::Object(data), out);
    }
}

#[derive(Serialize)]
struct Lifecycle<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    response: ResponseObject<'a>,
    sequence_number: u64,
}

/// A delta event, written without building a JSON tree: deltas are most of a stream.
#[derive(Serialize)]
struct DeltaEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    item_id: &'a str,
    output_index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary_index: Option<u32>,
    delta: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<[(); 0]>,
    sequence_number: u64,
}

fn write_delta(event: &DeltaEvent<'_>, out: &mut Vec<u8>) {
    write_event(event.kind, event, out);
}

/// `event: <kind>` and `data: <compact JSON>` (which never holds a raw newline).
fn write_event(kind: &str, data: &impl Serialize, out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Serializing into a Vec fails only for maps with non-string keys, which these have not.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

/// `base` with `extra`'s members added.
fn with(base: &Value, extra: Value) -> Value {
    let mut merged = base.clone();
    if let (Some(m), Value::Object(extra)) = (merged.as_object_mut(), extra) {
        m.extend(extra);
    }
    merged
}
