//! Non-streamed responses and errors, both sides.

use super::mapping::parse_usage_object;
use super::mapping::{
    cap, error_body, finish_reason_from_ir, finish_reason_to_ir, provider_error_from_object, usage_out,
};
use super::wire::{
    OutChoice, OutCompletion, OutFunction, OutMessage, OutToolCall, WireChoice, WireCompletion, WireErrorBody,
    WireMessage,
};
use crate::llm::ir::{ChatResponse, Choice, ErrorKind, Part, ProviderError, StopReason, ToolCall};
use serde_json::Value;

/// Text of a `content` value: a string, or the `text` of an array of parts.
pub(super) fn content_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect(),
        _ => String::new(),
    }
}

/// Reasoning text of a message or delta (`reasoning_content`, else a string `reasoning`).
pub(super) fn reasoning_text(m: &WireMessage) -> Option<&str> {
    m.reasoning_content.as_deref().or_else(|| m.reasoning.as_ref().and_then(Value::as_str)).filter(|s| !s.is_empty())
}

/// Tool-call arguments as JSON text (an object from a lenient server is serialized).
pub(super) fn arguments_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Decodes a 2xx `chat.completion` body: the first choice into the response, the others (a
/// request with `n` > 1) into `more_choices`. Per choice, reasoning comes first, then text,
/// then the refusal (as text: the IR has no refusal part; `finish_reason` stays what OpenAI
/// said, usually `stop`), then tool calls.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, ProviderError> {
    let wire: WireCompletion = serde_json::from_slice(body).map_err(|_| ProviderError {
        kind: ErrorKind::Server,
        status: 502,
        message: format!("provider returned a 2xx response that is not a chat completion ({})", body_kind(body)),
    })?;
    if let Some(err) = wire.error.as_ref().filter(|e| !e.is_null()) {
        let mut e = provider_error_from_object(err, None);
        if e.status < 400 {
            e.status = 502;
        }
        return Err(e);
    }
    let mut choices = wire.choices;
    // In `index` order (as OpenAI sends them); a server that omits it gets the wire order.
    choices.sort_by_key(|c| c.index.unwrap_or(0));
    let mut choices = choices.iter().map(choice_from_wire);
    let first = choices.next().ok_or_else(|| ProviderError {
        kind: ErrorKind::Server,
        status: 502,
        message: "provider returned a chat completion without choices".to_string(),
    })?;
    let more_choices = choices.collect();
    let usage = wire
        .usage
        .as_ref()
        .filter(|u| !u.is_null())
        .and_then(|u| serde_json::to_vec(u).ok())
        .and_then(|raw| parse_usage_object(&raw))
        .unwrap_or_default();
    Ok(ChatResponse {
        id: wire.id.unwrap_or_default(),
        model: wire.model.unwrap_or_default(),
        created: wire.created.unwrap_or(0),
        content: first.content,
        stop_reason: first.stop_reason,
        stop_sequence: None,
        usage,
        more_choices,
    })
}

/// One choice's message: reasoning first, then text, then the refusal (as text), then tool
/// calls.
fn choice_from_wire(choice: &WireChoice) -> Choice {
    let mut content = Vec::new();
    if let Some(m) = choice.message.as_ref() {
        if let Some(r) = reasoning_text(m) {
            content.push(Part::Thinking { text: r.to_string(), signature: None });
        }
        let text = m.content.as_ref().map(content_text).unwrap_or_default();
        if !text.is_empty() {
            content.push(Part::Text(text));
        }
        if let Some(r) = m.refusal.as_ref().filter(|r| !r.is_empty()) {
            content.push(Part::Text(r.clone()));
        }
        for (i, c) in m.tool_calls.iter().flatten().enumerate() {
            let f = c.function.as_ref();
            content.push(Part::ToolCall(ToolCall {
                id: c.id.clone().unwrap_or_else(|| format!("call_{i}")),
                name: f.and_then(|f| f.name.clone()).unwrap_or_default(),
                arguments: arguments_text(f.and_then(|f| f.arguments.as_ref())),
                signature: None,
            }));
        }
    }
    Choice { content, stop_reason: choice.finish_reason.as_deref().map(finish_reason_to_ir), stop_sequence: None }
}

fn body_kind(body: &[u8]) -> &'static str {
    let trimmed = body.trim_ascii_start();
    if trimmed.is_empty() {
        "an empty body"
    } else if trimmed.first() == Some(&b'<') {
        "a text/html body"
    } else {
        "a non-JSON body"
    }
}

/// Decodes any non-2xx answer. OpenAI's shape is `{"error": {message, type, param, code}}`;
/// compatible servers also send `{"error": "text"}`, `{"message": ...}` or `{"detail": ...}`.
/// The kind comes from the HTTP status. Non-JSON bodies (an HTML 502 from a proxy) give a
/// short description; plain text is quoted up to 200 bytes, HTML never.
pub fn decode_error(status: u16, body: &[u8]) -> ProviderError {
    let kind = ErrorKind::from_status(status);
    if let Ok(wire) = serde_json::from_slice::<WireErrorBody>(body) {
        let err = wire.error.as_ref().filter(|e| !e.is_null());
        if let Some(err) = err {
            return provider_error_from_object(err, Some(status));
        }
        let msg = wire.message.or(wire.detail).map(|m| match m {
            Value::String(s) => s,
            other => other.to_string(),
        });
        if let Some(msg) = msg.filter(|m| !m.is_empty()) {
            return ProviderError { kind, status, message: cap(&msg, 2000) };
        }
    }
    ProviderError::unreadable_body(kind, status, body)
}

/// The synthetic id for a response or stream that came without one.
pub(super) fn synthetic_id(created: u64) -> String {
    format!("chatcmpl-gw-{created}")
}

/// Encodes an IR response as a `chat.completion` body for an OpenAI client.
///
/// All text parts are joined into `content` (null when there is none); thinking parts are
/// joined into `reasoning_content` (the de-facto field name of DeepSeek / vLLM /
/// OpenRouter-style APIs; OpenAI's own SDKs keep unknown fields). Thinking signatures and
/// redacted thinking have no OpenAI field and are not sent. A missing stop reason becomes
/// `tool_calls` when there are tool calls, else `stop`. `usage` is omitted when nothing is
/// known.
pub fn encode_response(resp: &ChatResponse) -> Vec<u8> {
    let id = if resp.id.is_empty() { synthetic_id(resp.created) } else { resp.id.clone() };
    let first = out_choice(0, &resp.content, resp.stop_reason);
    let more = resp.more_choices.iter().zip(1u32..).map(|(c, i)| out_choice(i, &c.content, c.stop_reason));
    let out = OutCompletion {
        id: &id,
        object: "chat.completion",
        created: resp.created,
        model: &resp.model,
        choices: std::iter::once(first).chain(more).collect(),
        usage: usage_out(&resp.usage),
    };
    serde_json::to_vec(&out).unwrap_or_default()
}

fn out_choice(index: u32, content: &[Part], stop_reason: Option<StopReason>) -> OutChoice<'_> {
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut calls = Vec::new();
    for p in content {
        match p {
            Part::Text(t) => text.get_or_insert_with(String::new).push_str(t),
            Part::Thinking { text: t, .. } => reasoning.get_or_insert_with(String::new).push_str(t),
            Part::ToolCall(c) => calls.push(OutToolCall {
                id: &c.id,
                kind: "function",
                function: OutFunction { name: &c.name, arguments: &c.arguments },
            }),
            Part::RedactedThinking { .. }
            | Part::Image(_)
            | Part::ToolResult(_)
            | Part::Document(_)
            | Part::AnthropicBlock(_)
            | Part::CachePoint(_) => {}
        }
    }
    let stop = stop_reason.unwrap_or(if calls.is_empty() { StopReason::Stop } else { StopReason::ToolCalls });
    OutChoice {
        index,
        message: OutMessage {
            role: "assistant",
            content: text,
            reasoning_content: reasoning,
            tool_calls: calls,
            refusal: None,
        },
        logprobs: None,
        finish_reason: finish_reason_from_ir(stop),
    }
}

/// `{"error": {"message", "type", "param": null, "code"}}` for an OpenAI client; the HTTP
/// status is `err.status`. Types and codes follow OpenAI's error-code guide (`invalid_request_error`, `rate_limit_error`, `service_unavailable_error`, `server_error`, ...).
pub fn encode_error(err: &ProviderError) -> Vec<u8> {
    error_body(err)
}
