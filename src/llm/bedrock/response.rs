//! Converse response and error bodies -> IR (stop reasons, exception names and usage are the
//! tables in `mapping.rs`).

use super::mapping::{exception_kind, stop_reason, stop_sequence};
use super::wire::{ConverseResponse, ErrorBody, OutBlock};
use crate::llm::ir::{ChatResponse, ErrorKind, Part, ProviderError, ToolCall};
use serde_json::Value;

fn part(block: OutBlock) -> Option<Part> {
    if let Some(text) = block.text {
        return Some(Part::Text(text));
    }
    if let Some(tu) = block.tool_use {
        let arguments = if tu.input.is_null() { "{}".to_owned() } else { tu.input.to_string() };
        return Some(Part::ToolCall(ToolCall { id: tu.tool_use_id, name: tu.name, arguments, signature: None }));
    }
    if let Some(rc) = block.reasoning_content {
        if let Some(rt) = rc.reasoning_text {
            return Some(Part::Thinking { text: rt.text, signature: rt.signature });
        }
        if let Some(data) = rc.redacted_content {
            return Some(Part::RedactedThinking { data });
        }
    }
    None
}

/// Decodes a 2xx Converse body. Bedrock gives neither a response id nor the model in the
/// body (the id is the `x-amzn-requestid` header): `id` and `model` are left empty and
/// `created` 0 for the engine / client encoder to fill.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, ProviderError> {
    let wire: ConverseResponse = serde_json::from_slice(body).map_err(|e| ProviderError {
        kind: ErrorKind::Server,
        status: 502,
        message: format!("provider returned an unreadable Bedrock Converse response: {e}"),
    })?;
    let Some(message) = wire.output.and_then(|o| o.message) else {
        return Err(ProviderError {
            kind: ErrorKind::Server,
            status: 502,
            message: "provider returned a Bedrock Converse response without output.message".into(),
        });
    };
    Ok(ChatResponse {
        id: String::new(),
        model: String::new(),
        created: 0,
        content: message.content.into_iter().filter_map(part).collect(),
        stop_reason: wire.stop_reason.as_deref().map(stop_reason),
        stop_sequence: stop_sequence(wire.additional_model_response_fields.as_ref()),
        usage: wire.usage.map(|u| u.to_ir()).unwrap_or_default(),
        more_choices: Vec::new(),
    })
}

/// Any non-2xx response. Bedrock answers `{"message": "..."}` with the exception name in the
/// `x-amzn-ErrorType` header, which this function does not see: the kind comes from the
/// status (408 ModelTimeout -> Timeout, 424 ModelError -> Server), or from `__type` when the
/// body has it. The client gets the provider's status.
pub fn decode_error(status: u16, body: &[u8]) -> ProviderError {
    let by_status = match status {
        424 => ErrorKind::Server,
        s => ErrorKind::from_status(s),
    };
    let parsed: Option<ErrorBody> = serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
        .and_then(|v| serde_json::from_value(v).ok());
    let Some(parsed) = parsed else {
        return ProviderError::unreadable_body(by_status, status, body);
    };
    let kind = parsed.kind.as_deref().and_then(exception_kind).map_or(by_status, |(k, _)| k);
    let message = match parsed.text() {
        Some(m) if !m.trim().is_empty() => m.chars().take(2000).collect(),
        _ => format!("provider returned HTTP {status}"),
    };
    ProviderError { kind, status, message }
}
