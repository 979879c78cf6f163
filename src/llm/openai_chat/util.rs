//! Small helpers shared by the OpenAI Chat codec.

use super::wire::{OutCompletionDetails, OutPromptDetails, OutUsage};
use crate::llm::ir::{ErrorKind, ProviderError, StopReason, TranslateError};
use crate::usage::Usage;
use serde_json::{Map, Value};

pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> TranslateError {
    TranslateError::Invalid { field: field.into(), message: message.into() }
}

pub fn wrong_type(field: &str, expected: &str, got: &Value) -> TranslateError {
    invalid(field, format!("Invalid type for '{field}': expected {expected}, but got {} instead.", type_name(got)))
}

/// The member, with JSON `null` treated as absent (OpenAI accepts `null` for every optional member).
pub fn member<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// An OpenAI request body's top-level object, with OpenAI's own messages for a body that is
/// not JSON or not an object (Chat Completions and Responses alike).
pub fn request_object(body: &[u8]) -> Result<Map<String, Value>, TranslateError> {
    let root: Value = serde_json::from_slice(body)
        .map_err(|e| invalid("body", format!("We could not parse the JSON body of your request. ({e})")))?;
    match root {
        Value::Object(obj) => Ok(obj),
        other => Err(invalid(
            "body",
            format!("Invalid type for request body: expected an object, but got {} instead.", type_name(&other)),
        )),
    }
}

/// The request's `model` (required, a string).
pub fn request_model(obj: &Map<String, Value>) -> Result<String, TranslateError> {
    match obj.get("model") {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(invalid("model", "you must provide a model parameter")),
        Some(v) => Err(wrong_type("model", "a string", v)),
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `<media type>[;param...];base64,<data>` (the part after `data:`) -> (media type, data).
pub fn parse_data_url(rest: &str) -> Option<(String, String)> {
    let (header, data) = rest.split_once(',')?;
    let mut params = header.split(';');
    let media_type = params.next()?.trim();
    if media_type.is_empty() || !params.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
        return None;
    }
    Some((media_type.to_ascii_lowercase(), data.to_string()))
}

pub fn finish_reason_to_ir(reason: &str) -> StopReason {
    match reason {
        "stop" => StopReason::Stop,
        "length" => StopReason::Length,
        "tool_calls" | "function_call" => StopReason::ToolCalls,
        "content_filter" => StopReason::ContentFilter,
        _ => StopReason::Other,
    }
}

/// OpenAI's `finish_reason` values are a closed set; `Other` (e.g. Anthropic `pause_turn`)
/// becomes `stop`.
pub fn finish_reason_from_ir(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Stop | StopReason::Other => "stop",
        StopReason::Length => "length",
        StopReason::ToolCalls => "tool_calls",
        StopReason::ContentFilter => "content_filter",
    }
}

/// The wire usage object, or `None` when neither input nor output is known. The wire
/// requires integers, so an unknown count of a known pair is written as 0; the details
/// objects appear only when their count is known.
pub fn usage_out(u: &Usage) -> Option<OutUsage> {
    if u.input.is_none() && u.output.is_none() {
        return None;
    }
    let input = u.input.unwrap_or(0);
    let output = u.output.unwrap_or(0);
    Some(OutUsage {
        prompt_tokens: input,
        completion_tokens: output,
        total_tokens: input.saturating_add(output),
        prompt_tokens_details: u.cached_input.map(|cached_tokens| OutPromptDetails { cached_tokens }),
        completion_tokens_details: u.reasoning.map(|reasoning_tokens| OutCompletionDetails { reasoning_tokens }),
    })
}

/// OpenAI's error `type` and `code` for a kind (the SDKs dispatch on the HTTP status; the
/// names follow OpenAI's error-code guide).
pub fn error_type_code(kind: ErrorKind) -> (&'static str, Option<&'static str>) {
    match kind {
        ErrorKind::InvalidRequest => ("invalid_request_error", None),
        ErrorKind::Authentication => ("invalid_request_error", Some("invalid_api_key")),
        ErrorKind::PermissionDenied => ("permission_error", None),
        ErrorKind::NotFound => ("invalid_request_error", Some("not_found")),
        ErrorKind::RequestTooLarge => ("invalid_request_error", Some("request_too_large")),
        ErrorKind::RateLimited => ("rate_limit_error", Some("rate_limit_exceeded")),
        ErrorKind::Overloaded => ("service_unavailable_error", Some("server_is_overloaded")),
        ErrorKind::Server => ("server_error", None),
        ErrorKind::Timeout => ("server_error", Some("timeout")),
    }
}

/// An error object (`{"message","type","code",...}`, or a bare string) from a provider.
/// `status` is the HTTP status when known (mid-stream errors arrive on a 200 stream).
pub fn provider_error_from_object(err: &Value, status: Option<u16>) -> ProviderError {
    let message = match err {
        Value::String(s) => s.clone(),
        Value::Object(o) => o.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
        _ => String::new(),
    };
    let field = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("");
    let (etype, code) = (field("type"), field("code"));
    let kind = match status {
        Some(s) => ErrorKind::from_status(s),
        None => kind_from_type(etype, code, err.get("code").and_then(Value::as_u64)),
    };
    let status = status.unwrap_or_else(|| kind.status());
    let message =
        if message.is_empty() { format!("provider returned HTTP {status} with no error message") } else { message };
    ProviderError { kind, status, message: cap(&message, 2000) }
}

fn kind_from_type(etype: &str, code: &str, numeric_code: Option<u64>) -> ErrorKind {
    if let Some(n) = numeric_code.and_then(|n| u16::try_from(n).ok()) {
        return ErrorKind::from_status(n);
    }
    match (etype, code) {
        (_, "rate_limit_exceeded") | ("rate_limit_error" | "requests" | "tokens" | "insufficient_quota", _) => {
            ErrorKind::RateLimited
        }
        (_, "invalid_api_key") | ("authentication_error", _) => ErrorKind::Authentication,
        (_, "context_length_exceeded") | ("invalid_request_error", _) => ErrorKind::InvalidRequest,
        ("service_unavailable_error" | "overloaded_error", _) | (_, "server_is_overloaded") => ErrorKind::Overloaded,
        _ => ErrorKind::Server,
    }
}

/// At most `max` bytes of `s`, cut at a character boundary, with "..." when cut.
pub fn cap(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", s.get(..end).unwrap_or(""))
}

#[derive(serde::Serialize)]
struct ErrorEnvelope<'a> {
    error: ErrorObject<'a>,
}

#[derive(serde::Serialize)]
struct ErrorObject<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<()>,
    code: Option<&'static str>,
}

/// `{"error": {"message", "type", "param": null, "code"}}` in OpenAI's key order.
pub fn error_body(err: &ProviderError) -> Vec<u8> {
    let (kind, code) = error_type_code(err.kind);
    let body = ErrorEnvelope { error: ErrorObject { message: &err.message, kind, param: None, code } };
    serde_json::to_vec(&body).unwrap_or_default()
}
