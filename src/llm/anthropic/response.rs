//! Non-streamed responses and errors, both sides.

use super::wire::{Block, ImageSource as WireImage, InErrorBody, InMessage, InUsage, OutMessageObject};
use super::wire::{OutErrorBody, OutErrorObject};
use super::{
    error_kind_from_type, error_type, stop_reason_from_wire, stop_reason_to_wire, usage_from_wire, usage_to_wire,
};
use crate::llm::ir::{ChatResponse, ErrorKind, ImageSource, Part, ProviderError, ToolCall};
// json! stays for an empty tool `input`: a one-line literal.
use serde_json::{json, Value};

/// Longest provider text quoted in an error message.
const MAX_QUOTED: usize = 200;

/// Decodes a 2xx Messages response body. Unknown content block types (server tools,
/// which the gateway never requests) are skipped.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, ProviderError> {
    let msg: InMessage = serde_json::from_slice(body).map_err(|e| ProviderError {
        kind: ErrorKind::Server,
        status: 502,
        message: format!("provider returned an invalid Messages response: {}", truncate(&e.to_string())),
    })?;
    let usage = msg.usage.as_ref().map(|u| usage_from_wire(u, &InUsage::default()).0).unwrap_or_default();
    Ok(ChatResponse {
        id: msg.id,
        model: msg.model,
        created: 0,
        content: msg.content.into_iter().filter_map(block_to_part).collect(),
        stop_reason: msg.stop_reason.as_deref().map(stop_reason_from_wire),
        stop_sequence: msg.stop_sequence,
        usage,
        more_choices: Vec::new(),
    })
}

fn block_to_part(b: Block) -> Option<Part> {
    Some(match b {
        Block::Text { text } => Part::Text(text),
        Block::ToolUse { id, name, input } => {
            Part::ToolCall(ToolCall { id, name, arguments: input.to_string(), signature: None })
        }
        Block::Thinking { thinking, signature } => {
            Part::Thinking { text: thinking, signature: Some(signature).filter(|s| !s.is_empty()) }
        }
        Block::RedactedThinking { data } => Part::RedactedThinking { data },
        Block::Image { source: WireImage::Base64 { media_type, data } } => {
            Part::Image(ImageSource::Base64 { media_type, data }.into())
        }
        Block::Image { source: WireImage::Url { url } } => Part::Image(ImageSource::Url(url).into()),
        Block::Image { source: WireImage::Unknown }
        | Block::ToolResult { .. }
        | Block::Document { .. }
        | Block::Unknown => return None,
    })
}

/// Decodes any non-2xx answer: Anthropic's `{"type":"error","error":{type,message}}`,
/// other JSON error shapes, or a non-JSON body (HTML from a proxy, empty).
pub fn decode_error(status: u16, body: &[u8]) -> ProviderError {
    let by_status = ErrorKind::from_status(status);
    if let Ok(parsed) = serde_json::from_slice::<InErrorBody>(body) {
        let (kind, message) = match parsed.error {
            Some(e) => (e.kind.as_deref().and_then(error_kind_from_type), e.message),
            None => (None, parsed.message),
        };
        if let Some(message) = message {
            return ProviderError { kind: kind.unwrap_or(by_status), status, message: truncate_long(&message) };
        }
    }
    ProviderError::unreadable_body(by_status, status, body)
}

/// Quoted provider text, capped at [`MAX_QUOTED`] bytes (on a char boundary).
fn truncate(s: &str) -> String {
    if s.len() <= MAX_QUOTED {
        return s.to_string();
    }
    let mut end = MAX_QUOTED;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", s.get(..end).unwrap_or_default())
}

/// Provider error messages are kept whole unless absurdly long.
fn truncate_long(s: &str) -> String {
    if s.len() <= 4 * MAX_QUOTED {
        s.to_string()
    } else {
        truncate(s)
    }
}

/// Encodes an IR response as an Anthropic Message for a client. Tool-call arguments that
/// are not a JSON object are sent as `{}` when empty, else kept as a JSON string (the
/// `input` field must hold the model's output, never lose it). Image and tool-result parts
/// (which Anthropic responses cannot hold) are skipped. A response without an id (Bedrock
/// gives none) gets `msg_gw<created>`, as the stream encoder does.
pub fn encode_response(resp: &ChatResponse) -> Vec<u8> {
    let content = resp.content.iter().filter_map(part_to_block).collect();
    let stop_reason = resp.stop_reason.map(|r| stop_reason_to_wire(r, resp.stop_sequence.as_deref()));
    let id = if resp.id.is_empty() { format!("msg_gw{}", resp.created) } else { resp.id.clone() };
    let msg = OutMessageObject {
        id,
        kind: "message",
        role: "assistant",
        model: resp.model.clone(),
        content,
        stop_reason: Some(stop_reason.unwrap_or("end_turn")),
        stop_sequence: resp.stop_sequence.clone(),
        usage: usage_to_wire(&resp.usage),
    };
    serde_json::to_vec(&msg).unwrap_or_default()
}

pub(crate) fn args_to_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str::<Value>(arguments).unwrap_or_else(|_| Value::String(arguments.to_string()))
}

fn part_to_block(p: &Part) -> Option<Block> {
    Some(match p {
        Part::Text(t) => Block::Text { text: t.clone() },
        Part::ToolCall(c) => {
            Block::ToolUse { id: c.id.clone(), name: c.name.clone(), input: args_to_input(&c.arguments) }
        }
        Part::Thinking { text, signature } => {
            Block::Thinking { thinking: text.clone(), signature: signature.clone().unwrap_or_default() }
        }
        Part::RedactedThinking { data } => Block::RedactedThinking { data: data.clone() },
        Part::Image(_) | Part::ToolResult(_) | Part::Document(_) | Part::AnthropicBlock(_) | Part::CachePoint(_) => {
            return None
        }
    })
}

/// The Anthropic error body for a client (the HTTP status is `err.status`).
pub fn encode_error(err: &ProviderError) -> Vec<u8> {
    serde_json::to_vec(&error_object(err)).unwrap_or_default()
}

fn error_object(err: &ProviderError) -> OutErrorBody<'_> {
    OutErrorBody { kind: "error", error: OutErrorObject { kind: error_type(err.kind), message: &err.message } }
}

/// The error as a stream event's data.
pub(crate) fn error_json(err: &ProviderError) -> Value {
    serde_json::to_value(error_object(err)).unwrap_or_default()
}
