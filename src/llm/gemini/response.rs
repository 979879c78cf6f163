//! Gemini `GenerateContentResponse` and error bodies -> IR.
//!
//! - Only `candidates[0]` is read (requests never ask for more than one candidate).
//! - Parts: `thought: true` text -> `Thinking{text, signature}`; other text -> `Text`, and a
//!   `thoughtSignature` on it (Gemini puts one on the last part, often an empty text part)
//!   -> a following `Thinking{text: "", signature}` so it survives a round trip;
//!   `functionCall` -> `ToolCall{id: functionCall.id or "call_<n>", arguments: args as JSON
//!   text ("{}" when absent), signature: thoughtSignature}`. Other part kinds (inline images
//!   from image models, code execution) are not carried by the IR and are skipped.
//! - `finishReason`: STOP -> Stop (ToolCalls when the candidate has function calls),
//!   MAX_TOKENS -> Length, SAFETY / RECITATION / BLOCKLIST / PROHIBITED_CONTENT / SPII /
//!   IMAGE_SAFETY / IMAGE_PROHIBITED_CONTENT -> ContentFilter, anything else (e.g.
//!   MALFORMED_FUNCTION_CALL, LANGUAGE, OTHER) -> Other (the table: `mapping.rs`).
//! - No candidates but `promptFeedback.blockReason` -> an empty ContentFilter response.
//! - Usage: input = promptTokenCount (cached content included) + toolUsePromptTokenCount;
//!   cached_input = cachedContentTokenCount; output = candidatesTokenCount +
//!   thoughtsTokenCount; reasoning = thoughtsTokenCount (`mapping.rs`, with the error kinds).
//! - `responseId` -> id, `modelVersion` -> model, `createTime` (RFC 3339) -> created.

use super::mapping::{convert_usage, error_kind, finish_reason};
use super::wire::{Candidate, ErrorBody, ErrorEnvelope, InPart, Response};
use crate::llm::ir::{describe_error_body, ChatResponse, Choice, ErrorKind, Part, ProviderError, StopReason, ToolCall};

/// Longest provider text quoted in an error message.
const MAX_QUOTED: usize = 200;

pub fn decode_response(body: &[u8]) -> Result<ChatResponse, ProviderError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ProviderError {
            kind: ErrorKind::Server,
            status: 502,
            message: "provider returned a generateContent response that is not a JSON object".to_string(),
        });
    }
    let wire: Response = serde_json::from_slice(body).map_err(|e| ProviderError {
        kind: ErrorKind::Server,
        status: 502,
        message: format!("provider returned an invalid generateContent response: {}", truncate(&e.to_string())),
    })?;
    if let Some(err) = wire.error {
        return Err(error_from_body(err, 502));
    }
    let mut response = ChatResponse {
        id: wire.response_id.unwrap_or_default(),
        model: wire.model_version.unwrap_or_default(),
        created: wire.create_time.as_deref().and_then(parse_rfc3339).unwrap_or(0),
        usage: wire.usage_metadata.map(|u| convert_usage(&u)).unwrap_or_default(),
        ..ChatResponse::default()
    };
    let mut candidates = wire.candidates;
    candidates.sort_by_key(|c| c.index.unwrap_or(0));
    let mut choices = candidates.iter().map(|candidate| {
        let mut content = Vec::new();
        let has_calls = decode_candidate_parts(candidate_parts(candidate), &mut content);
        let stop_reason = candidate.finish_reason.as_deref().map(|r| finish_reason(r, has_calls));
        Choice { content, stop_reason, stop_sequence: None }
    });
    match choices.next() {
        Some(first) => {
            response.content = first.content;
            response.stop_reason = first.stop_reason;
            response.more_choices = choices.collect();
        }
        None => {
            if wire.prompt_feedback.and_then(|f| f.block_reason).is_some() {
                response.stop_reason = Some(StopReason::ContentFilter);
            }
        }
    }
    Ok(response)
}

pub(super) fn candidate_parts(candidate: &Candidate) -> &[InPart] {
    candidate.content.as_ref().map_or(&[], |c| c.parts.as_slice())
}

/// Appends the IR parts of one candidate; returns whether it held function calls.
fn decode_candidate_parts(parts: &[InPart], out: &mut Vec<Part>) -> bool {
    let mut calls = 0usize;
    for part in parts {
        if let Some(call) = &part.function_call {
            out.push(Part::ToolCall(ToolCall {
                id: call_id(call.id.as_deref(), calls),
                name: call.name.clone(),
                arguments: args_text(call.args.as_ref()),
                signature: part.thought_signature.clone(),
            }));
            calls += 1;
            continue;
        }
        let Some(text) = &part.text else { continue };
        if part.thought == Some(true) {
            out.push(Part::Thinking { text: text.clone(), signature: part.thought_signature.clone() });
            continue;
        }
        if !text.is_empty() {
            out.push(Part::Text(text.clone()));
        }
        if let Some(sig) = &part.thought_signature {
            out.push(Part::Thinking { text: String::new(), signature: Some(sig.clone()) });
        }
    }
    calls > 0
}

pub(super) fn call_id(wire_id: Option<&str>, index: usize) -> String {
    match wire_id {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => format!("call_{index}"),
    }
}

pub(super) fn args_text(args: Option<&serde_json::Value>) -> String {
    match args {
        None | Some(serde_json::Value::Null) => "{}".to_string(),
        Some(v) => v.to_string(),
    }
}

// ------------------------------------------------------------------------------- errors

/// Any non-2xx answer. Google's shape is `{"error":{"code","message","status"}}` (a JSON
/// array of one such object is also accepted); anything else is described without echoing
/// more than 200 characters of it.
pub fn decode_error(status: u16, body: &[u8]) -> ProviderError {
    let http_status = if (400..=599).contains(&status) { status } else { 502 };
    if let Some(err) = parse_error_body(body) {
        return error_from_body(err, http_status);
    }
    let mut error = ProviderError::unreadable_body(ErrorKind::from_status(http_status), http_status, body);
    // The message names the status the provider sent, the client gets a 4xx/5xx one.
    error.message = describe_error_body(status, body);
    error
}

fn parse_error_body(body: &[u8]) -> Option<ErrorBody> {
    let value = match serde_json::from_slice::<serde_json::Value>(body).ok()? {
        serde_json::Value::Array(items) => items.into_iter().next()?,
        value => value,
    };
    if !value.is_object() {
        return None;
    }
    serde_json::from_value::<ErrorEnvelope>(value).ok()?.error
}

/// An error object; `fallback_status` is used when the body names no HTTP code.
pub(super) fn error_from_body(err: ErrorBody, fallback_status: u16) -> ProviderError {
    let mut status = err.code.filter(|c| (400..=599).contains(c)).unwrap_or(fallback_status);
    let key_invalid = err.details.iter().any(|d| d.reason.as_deref() == Some("API_KEY_INVALID"));
    if key_invalid {
        // Gemini answers a bad key with 400 INVALID_ARGUMENT; report it as what it is.
        status = ErrorKind::Authentication.status();
    }
    let kind = if key_invalid { ErrorKind::Authentication } else { error_kind(err.status.as_deref(), status) };
    let message = match (err.message.as_deref().map(str::trim).filter(|m| !m.is_empty()), err.status) {
        (Some(m), _) => m.to_string(),
        (None, Some(s)) => format!("provider error {s}"),
        (None, None) => format!("provider returned HTTP {status}"),
    };
    ProviderError { kind, status, message }
}

pub(super) fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}...", s.get(..cut).unwrap_or_default()),
        None => s.to_string(),
    }
}

/// Unix seconds of an RFC 3339 UTC timestamp such as `2026-03-10T14:54:45.066123Z`
/// (offsets other than `Z` are applied; fractions ignored).
pub(super) fn parse_rfc3339(s: &str) -> Option<u64> {
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = s.get(19..)?;
    let rest = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = if rest.eq_ignore_ascii_case("z") {
        0
    } else {
        let sign = match rest.get(..1)? {
            "+" => 1,
            "-" => -1,
            _ => return None,
        };
        let oh = rest.get(1..3)?.parse::<i64>().ok()?;
        let om = rest.get(4..6)?.parse::<i64>().ok()?;
        sign * (oh * 3600 + om * 60)
    };
    let days = crate::calendar::days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    u64::try_from(secs).ok()
}
