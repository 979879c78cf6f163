//! Client side: an IR response -> the Responses API's `response` object, and errors.
//!
//! The object carries what the provider answered: `id` (`resp_` + the provider's id),
//! `status` (`completed`, or `incomplete` with `incomplete_details.reason`
//! `max_output_tokens` / `content_filter`), `output` items in the provider's order
//! (reasoning, message with `output_text`, `function_call`) and `usage`. Request
//! parameters are not echoed (`instructions`, `tools`... are `null`/empty), and `store` is
//! `false`: nothing is kept.

use super::mapping::{status_of, usage_json};
use super::request::REDACTED_PREFIX;
use super::wire::{Empty, FormatType, NoReasoning, ResponseObject, TextFormat};
use crate::llm::ir::{ChatResponse, Part, ProviderError};
use crate::llm::openai_chat::mapping::error_body;
// json! stays for output items: they are `Value`s shared by the response object and the
// stream's `added`/`done` events (stream.rs); typing them is its own change.
use serde_json::{json, Value};

/// `{"error": {"message", "type", "param", "code"}}`: the Responses API's HTTP errors have
/// OpenAI's common shape.
pub fn encode_error(error: &ProviderError) -> Vec<u8> {
    error_body(error)
}

/// The response id for a provider's message id (`resp_<id>`), or one from the clock.
pub(super) fn response_id(provider_id: &str, created: u64) -> String {
    let safe: String =
        provider_id.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')).take(96).collect();
    if safe.is_empty() {
        format!("resp_gw{created}")
    } else {
        format!("resp_{safe}")
    }
}

/// An output item's id: its kind, its position and the response's id.
pub(super) fn item_id(kind: &str, output_index: usize, response_id: &str) -> String {
    format!("{kind}_{output_index}_{}", response_id.trim_start_matches("resp_"))
}

/// What a `response` object says besides its output and usage.
pub(super) struct Envelope<'a> {
    pub id: &'a str,
    pub created: u64,
    pub model: &'a str,
    pub status: &'static str,
    pub incomplete_details: Value,
    pub error: Value,
}

pub(super) fn response_object<'a>(
    envelope: &'a Envelope<'a>,
    output: &'a [Value],
    usage: &'a Value,
) -> ResponseObject<'a> {
    ResponseObject {
        id: envelope.id,
        object: "response",
        created_at: envelope.created,
        status: envelope.status,
        background: false,
        error: &envelope.error,
        incomplete_details: &envelope.incomplete_details,
        instructions: None,
        max_output_tokens: None,
        model: envelope.model,
        output,
        parallel_tool_calls: true,
        previous_response_id: None,
        reasoning: NoReasoning { effort: None, summary: None },
        store: false,
        temperature: None,
        text: TextFormat { format: FormatType { kind: "text" } },
        tool_choice: "auto",
        tools: [],
        top_p: None,
        truncation: "disabled",
        usage,
        metadata: Empty {},
    }
}

pub(super) fn output_text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

pub(super) fn message_item(id: &str, status: &str, texts: &[&str]) -> Value {
    let content: Vec<Value> = texts.iter().map(|t| output_text_part(t)).collect();
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

/// A reasoning item: the provider's reasoning text as its summary, its signature (or the
/// redacted block, prefixed) as `encrypted_content`, which the client sends back as is.
pub(super) fn reasoning_item(id: &str, text: &str, encrypted: Option<&str>) -> Value {
    let summary: Vec<Value> =
        if text.is_empty() { Vec::new() } else { vec![json!({"type": "summary_text", "text": text})] };
    let mut item = json!({"id": id, "type": "reasoning", "summary": summary});
    if let (Some(e), Some(o)) = (encrypted, item.as_object_mut()) {
        o.insert("encrypted_content".to_string(), json!(e));
    }
    item
}

pub(super) fn function_call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"id": id, "type": "function_call", "status": status, "arguments": arguments, "call_id": call_id, "name": name})
}

pub(super) fn redacted(data: &str) -> String {
    format!("{REDACTED_PREFIX}{data}")
}

/// The output items of a complete answer: consecutive text parts form one message.
fn output_items(response: &ChatResponse, id: &str) -> Vec<Value> {
    let mut items: Vec<Value> = Vec::new();
    let mut texts: Vec<&str> = Vec::new();
    let flush = |items: &mut Vec<Value>, texts: &mut Vec<&str>| {
        if !texts.is_empty() {
            items.push(message_item(&item_id("msg", items.len(), id), "completed", texts));
            texts.clear();
        }
    };
    for part in &response.content {
        match part {
            Part::Text(t) => texts.push(t),
            Part::Thinking { text, signature } => {
                flush(&mut items, &mut texts);
                items.push(reasoning_item(&item_id("rs", items.len(), id), text, signature.as_deref()));
            }
            Part::RedactedThinking { data } => {
                flush(&mut items, &mut texts);
                items.push(reasoning_item(&item_id("rs", items.len(), id), "", Some(&redacted(data))));
            }
            Part::ToolCall(call) => {
                flush(&mut items, &mut texts);
                // A function call item has no signature field: Gemini's goes on a reasoning
                // item right before it, which the Gemini encoder lends back to the call.
                if let Some(signature) = &call.signature {
                    items.push(reasoning_item(&item_id("rs", items.len(), id), "", Some(signature)));
                }
                let fid = item_id("fc", items.len(), id);
                items.push(function_call_item(&fid, &call.id, &call.name, &call.arguments, "completed"));
            }
            // Inputs only (tool results, images...): provider decoders do not produce them.
            _ => {}
        }
    }
    flush(&mut items, &mut texts);
    items
}

/// Encodes a complete answer as a `response` object.
pub fn encode_response(response: &ChatResponse) -> Vec<u8> {
    let id = response_id(&response.id, response.created);
    let (status, incomplete_details) = status_of(response.stop_reason);
    let envelope = Envelope {
        id: &id,
        created: response.created,
        model: &response.model,
        status,
        incomplete_details,
        error: Value::Null,
    };
    let output = output_items(response, &id);
    let usage = usage_json(&response.usage);
    serde_json::to_vec(&response_object(&envelope, &output, &usage)).unwrap_or_default()
}
