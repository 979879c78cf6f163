//! Converse response and error bodies -> IR.

use super::wire::{ConverseResponse, ErrorBody, OutBlock};
use crate::llm::ir::{ChatResponse, ErrorKind, Part, ProviderError, StopReason, ToolCall};
use serde_json::Value;

/// Converse `stopReason` -> IR.
pub(crate) fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "end_turn" | "stop_sequence" => StopReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => StopReason::Length,
        "tool_use" => StopReason::ToolCalls,
        "guardrail_intervened" | "content_filtered" => StopReason::ContentFilter,
        _ => StopReason::Other,
    }
}

/// The matched stop sequence, when `additionalModelResponseFieldPaths: ["/stop_sequence"]`
/// made Bedrock return it (Claude models).
pub(crate) fn stop_sequence(fields: Option<&Value>) -> Option<String> {
    fields?.get("stop_sequence")?.as_str().map(str::to_owned)
}

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

/// Error kind and client status of a modelled Bedrock exception name (`ThrottlingException`,
/// `throttlingException`, `com.amazon...#ThrottlingException`, ...).
pub(crate) fn exception_kind(name: &str) -> Option<(ErrorKind, u16)> {
    let short = name.rsplit(['#', ':', '.']).next().unwrap_or(name);
    let mut lower = short.to_ascii_lowercase();
    if let Some(stripped) = lower.strip_suffix("exception") {
        lower = stripped.to_owned();
    }
    Some(match lower.as_str() {
        "validation" | "servicequotaexceeded" | "serialization" => (ErrorKind::InvalidRequest, 400),
        "accessdenied" | "unrecognizedclient" | "invalidsignature" | "missingauthenticationtoken" => {
            (ErrorKind::PermissionDenied, 403)
        }
        "expiredtoken" => (ErrorKind::Authentication, 401),
        "resourcenotfound" => (ErrorKind::NotFound, 404),
        "throttling" | "modelnotready" => (ErrorKind::RateLimited, 429),
        "modeltimeout" => (ErrorKind::Timeout, 504),
        "serviceunavailable" => (ErrorKind::Overloaded, 503),
        "internalserver" => (ErrorKind::Server, 500),
        "modelstreamerror" | "modelerror" => (ErrorKind::Server, 502),
        _ => return None,
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
