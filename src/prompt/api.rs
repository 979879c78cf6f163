//! Prompt APIs: a template published as its own endpoint.
//!
//! Request: `POST <path>` with a JSON object of the template's variables, plus an optional
//! `"stream": true` (so a template served as an API cannot declare a variable named `stream`).
//! An empty body counts as `{}`.
//!
//! Response (JSON):
//! `{"output": "...", "usage": {"input_tokens": 12, "output_tokens": 34, "total_tokens": 46},
//!   "template": "summarize", "version": "2", "stop_reason": "stop"}`
//! where `output` is the response's text parts joined, unknown token counts are `null` (unknown
//! is not zero) and `stop_reason` is `stop`, `length`, `tool_calls`, `content_filter`, `other`
//! or `null`.
//!
//! Streaming (`text/event-stream`), one JSON object per `data:` line:
//! - `data: {"delta": "..."}` for each piece of text, in order;
//! - then exactly one closing event: `data: {"output_done": true, "usage": {...},
//!   "template": "...", "version": "...", "stop_reason": "..."}` when the provider finished, or
//!   `data: {"error": {"message": "...", "status": 502}}` when it failed or the stream broke off.

use super::template::TemplateUse;
use crate::llm::ir::{ChatResponse, Part, StopReason, StreamEvent};
use crate::usage::Usage;
use serde::Serialize;

/// A published prompt endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptApi {
    /// The request path, e.g. `/v1/prompts/summarize`.
    pub path: String,
    pub template: String,
    /// A pinned version; otherwise the template's weights or default version decide.
    pub version: Option<String>,
    pub allow_stream: bool,
}

fn stop_name(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Stop => "stop",
        StopReason::Length => "length",
        StopReason::ToolCalls => "tool_calls",
        StopReason::ContentFilter => "content_filter",
        StopReason::Other => "other",
    }
}

// Wire shapes; field order is the output order.

#[derive(Serialize)]
struct UsageOut {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    total_tokens: Option<u64>,
}

impl From<&Usage> for UsageOut {
    fn from(u: &Usage) -> Self {
        UsageOut { input_tokens: u.input, output_tokens: u.output, total_tokens: u.total() }
    }
}

#[derive(Serialize)]
struct ResponseOut<'a> {
    output: &'a str,
    usage: UsageOut,
    template: &'a str,
    version: &'a str,
    stop_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct DeltaOut<'a> {
    delta: &'a str,
}

#[derive(Serialize)]
struct DoneOut<'a> {
    output_done: bool,
    usage: UsageOut,
    template: &'a str,
    version: &'a str,
    stop_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    error: ErrorInner<'a>,
}

#[derive(Serialize)]
struct ErrorInner<'a> {
    message: &'a str,
    status: u16,
}

/// The JSON body answering a non-streamed prompt API call.
pub fn prompt_response(resp: &ChatResponse, used: &TemplateUse) -> Vec<u8> {
    let output: String = resp
        .content
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let body = ResponseOut {
        output: &output,
        usage: UsageOut::from(&resp.usage),
        template: &used.template,
        version: &used.version,
        stop_reason: resp.stop_reason.map(stop_name),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Turns the IR events of a streamed response into the prompt API's SSE events.
#[derive(Debug, Clone)]
pub struct PromptStreamEncoder {
    used: TemplateUse,
    usage: Usage,
    stop: Option<StopReason>,
    ended: bool,
}

impl PromptStreamEncoder {
    pub fn new(used: TemplateUse) -> Self {
        PromptStreamEncoder { used, usage: Usage::default(), stop: None, ended: false }
    }

    /// Usage seen so far (counts present in later reports replace earlier ones).
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Whether the closing event was written.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Appends the SSE bytes for one event to `out` (nothing after the closing event).
    pub fn push(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        match event {
            StreamEvent::TextDelta { text } if !text.is_empty() => write_event(out, &DeltaOut { delta: text }),
            StreamEvent::Usage(u) => merge_usage(&mut self.usage, u),
            StreamEvent::Stop { reason, .. } => self.stop = Some(*reason),
            StreamEvent::Error(e) => self.error(&e.message, e.status, out),
            StreamEvent::Done => self.done(out),
            _ => {}
        }
    }

    /// The provider's stream ended: writes the closing event if none was written yet — the
    /// normal one when the model had stopped, otherwise an error (the stream broke off).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        if self.stop.is_some() {
            self.done(out);
        } else {
            self.error("the provider's stream ended before the response was complete", 502, out);
        }
    }

    fn done(&mut self, out: &mut Vec<u8>) {
        let event = DoneOut {
            output_done: true,
            usage: UsageOut::from(&self.usage),
            template: &self.used.template,
            version: &self.used.version,
            stop_reason: self.stop.map(stop_name),
        };
        write_event(out, &event);
        self.ended = true;
    }

    fn error(&mut self, message: &str, status: u16, out: &mut Vec<u8>) {
        write_event(out, &ErrorOut { error: ErrorInner { message, status } });
        self.ended = true;
    }
}

/// [`Usage::update`], keeping the source known so far when the new report has none.
fn merge_usage(into: &mut Usage, new: &Usage) {
    let source = into.source;
    into.update(new);
    if new.source == crate::usage::UsageSource::None {
        into.source = source;
    }
}

/// `data: <json>\n\n` (serde_json escapes newlines, so one line always suffices).
fn write_event(out: &mut Vec<u8>, value: &impl Serialize) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&serde_json::to_vec(value).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
}
