//! Client side: IR stream events -> a `chat.completion.chunk` SSE stream.

use crate::llm::ir::StreamEvent;
use crate::llm::openai_chat::mapping::{error_body, finish_reason_from_ir, usage_out};
use crate::llm::openai_chat::response::synthetic_id;
use crate::llm::openai_chat::wire::OutUsage;
use crate::usage::Usage;
use serde::Serialize;

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<ChunkChoice<'a>>,
    /// Present only with `include_usage`: `null` on every chunk but the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<OutUsage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

/// A `delta` with OpenAI's key order; absent members are not written.
#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[DeltaToolCall<'a>; 1]>,
}

#[derive(Serialize)]
struct DeltaToolCall<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: DeltaFunction<'a>,
}

#[derive(Serialize)]
struct DeltaFunction<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// Encodes IR stream events as OpenAI streams them:
///
/// 1. a first chunk with `delta: {"role": "assistant", "content": ""}` (at `Start`, or
///    before the first content event when no `Start` came; the id is then
///    `chatcmpl-gw-<created>`);
/// 2. `delta.content` per `TextDelta`; `delta.reasoning_content` per `ThinkingDelta` (the
///    DeepSeek/vLLM/OpenRouter field); tool calls as
///    `{"index", "id", "type": "function", "function": {"name", "arguments": ""}}` on their
///    first chunk and `{"index", "function": {"arguments"}}` after;
/// 3. at `Stop`, `delta: {}` with the `finish_reason`; after `Choice { index }`, chunks carry
///    that choice `index` (several choices, `n` > 1), each choice starting with its own role
///    delta as OpenAI sends them;
/// 4. with `include_usage`, every chunk carries `"usage": null` and, at the end, one chunk
///    with `"choices": []` carries the last usage (when any count is known);
/// 5. `data: [DONE]`.
///
/// `ThinkingSignature` and `RedactedThinking` (opaque data, no OpenAI field; the JSON
/// encoder drops `Part::RedactedThinking` likewise) are not sent. An `Error` event is written as
/// `data: {"error": {message, type, param, code}}` — the form the official SDKs detect (they
/// raise `APIError` on it) — followed by `data: [DONE]` so that plain SSE readers see the end
/// of the stream too. Events after the end are ignored; `finish()` ends an unterminated
/// stream with the usage chunk and `[DONE]`.
#[derive(Debug)]
pub struct StreamEncoder {
    include_usage: bool,
    created: u64,
    id: String,
    model: String,
    started: bool,
    ended: bool,
    usage: Usage,
    /// The `index` of the choice the events belong to (`StreamEvent::Choice`).
    choice: u32,
    /// Choices whose first (role) chunk was sent.
    begun: Vec<u32>,
}

impl StreamEncoder {
    pub fn new(include_usage: bool, created_unix: u64) -> Self {
        StreamEncoder {
            include_usage,
            created: created_unix,
            id: synthetic_id(created_unix),
            model: String::new(),
            started: false,
            ended: false,
            usage: Usage::default(),
            choice: 0,
            begun: Vec::new(),
        }
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        match ev {
            StreamEvent::Choice { index } => self.choice = *index,
            StreamEvent::Start { id, model } => {
                if !self.started {
                    if !id.is_empty() {
                        self.id.clone_from(id);
                    }
                    self.model.clone_from(model);
                    self.start(out);
                }
            }
            StreamEvent::TextDelta { text } => self.delta(Delta { content: Some(text), ..Delta::default() }, None, out),
            StreamEvent::ThinkingDelta { text } => {
                self.delta(Delta { reasoning_content: Some(text), ..Delta::default() }, None, out)
            }
            StreamEvent::ThinkingSignature { .. } | StreamEvent::RedactedThinking { .. } => {}
            StreamEvent::ToolCallStart { index, id, name } => {
                let call = DeltaToolCall {
                    index: *index,
                    id: Some(id),
                    kind: Some("function"),
                    function: DeltaFunction { name: Some(name), arguments: "" },
                };
                self.delta(Delta { tool_calls: Some([call]), ..Delta::default() }, None, out)
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                let function = DeltaFunction { name: None, arguments };
                let call = DeltaToolCall { index: *index, id: None, kind: None, function };
                self.delta(Delta { tool_calls: Some([call]), ..Delta::default() }, None, out)
            }
            StreamEvent::Usage(u) => self.usage.update(u),
            StreamEvent::Stop { reason, .. } => self.delta(Delta::default(), Some(finish_reason_from_ir(*reason)), out),
            StreamEvent::Error(err) => {
                write_data(out, &error_body(err));
                write_data(out, b"[DONE]");
                self.ended = true;
            }
            StreamEvent::Done => self.end(out),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.ended {
            self.end(out);
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        self.started = true;
        self.begun.push(self.choice);
        let delta = Delta { role: Some("assistant"), content: Some(""), ..Delta::default() };
        self.chunk(vec![choice(self.choice, delta, None)], None, out);
    }

    fn delta(&mut self, delta: Delta<'_>, finish: Option<&'static str>, out: &mut Vec<u8>) {
        if !self.begun.contains(&self.choice) {
            self.start(out);
        }
        self.chunk(vec![choice(self.choice, delta, finish)], None, out);
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if self.include_usage {
            if let Some(u) = usage_out(&self.usage) {
                if !self.started {
                    self.start(out);
                }
                self.chunk(Vec::new(), Some(u), out);
            }
        }
        write_data(out, b"[DONE]");
        self.ended = true;
    }

    fn chunk(&self, choices: Vec<ChunkChoice<'_>>, usage: Option<OutUsage>, out: &mut Vec<u8>) {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage: self.include_usage.then_some(usage),
        };
        if let Ok(data) = serde_json::to_vec(&chunk) {
            write_data(out, &data);
        }
    }
}

fn choice<'a>(index: u32, delta: Delta<'a>, finish_reason: Option<&'static str>) -> ChunkChoice<'a> {
    ChunkChoice { index, delta, logprobs: None, finish_reason }
}

fn write_data(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}
