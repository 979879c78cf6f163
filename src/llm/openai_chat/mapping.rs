//! How OpenAI Chat Completions' closed sets map to the IR: `finish_reason`, `usage`, and the
//! error `type`/`code` of each `ErrorKind` (both ways), each tested row by row below.

use super::wire::{OutCompletionDetails, OutError, OutErrorObject, OutPromptDetails, OutUsage, WireUsage};
use crate::llm::ir::{ErrorKind, ProviderError, StopReason};
use crate::usage::{Usage, UsageSource};
use serde_json::Value;

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

/// Parses an OpenAI `usage` object (chat completions or embeddings).
pub fn parse_usage_object(raw: &[u8]) -> Option<Usage> {
    let wire: WireUsage = serde_json::from_slice(raw).ok()?;
    if wire.prompt_tokens.is_none() && wire.completion_tokens.is_none() {
        return None;
    }
    Some(Usage {
        input: wire.prompt_tokens,
        output: wire.completion_tokens,
        cached_input: wire.prompt_tokens_details.and_then(|d| d.cached_tokens).or(wire.prompt_cache_hit_tokens),
        cache_write: None,
        cache_write_1h: None,
        reasoning: wire.completion_tokens_details.and_then(|d| d.reasoning_tokens),
        source: UsageSource::Reported,
    })
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

/// `{"error": {"message", "type", "param": null, "code"}}` in OpenAI's key order.
pub fn error_body(err: &ProviderError) -> Vec<u8> {
    let (kind, code) = error_type_code(err.kind);
    let body = OutError { error: OutErrorObject { message: &err.message, kind, param: None, code } };
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// (wire usage, input, output, cached input, reasoning)
    type UsageRow = (&'static str, Option<u64>, Option<u64>, Option<u64>, Option<u64>);

    #[test]
    fn finish_reasons_row_by_row() {
        // (wire, IR); `function_call` is the legacy name of `tool_calls`.
        let rows = [
            ("stop", StopReason::Stop),
            ("length", StopReason::Length),
            ("tool_calls", StopReason::ToolCalls),
            ("function_call", StopReason::ToolCalls),
            ("content_filter", StopReason::ContentFilter),
            ("insufficient_system_resource", StopReason::Other),
        ];
        for (wire, ir) in rows {
            assert_eq!(finish_reason_to_ir(wire), ir, "{wire}");
        }
        // (IR, wire): the closed set back; Other is `stop`.
        let back = [
            (StopReason::Stop, "stop"),
            (StopReason::Length, "length"),
            (StopReason::ToolCalls, "tool_calls"),
            (StopReason::ContentFilter, "content_filter"),
            (StopReason::Other, "stop"),
        ];
        for (ir, wire) in back {
            assert_eq!(finish_reason_from_ir(ir), wire, "{ir:?}");
        }
    }

    #[test]
    fn error_kinds_row_by_row() {
        // (kind, type, code); the type and code read back as the kind, except those OpenAI
        // has no name for (they read back by status).
        let rows = [
            (ErrorKind::InvalidRequest, "invalid_request_error", None),
            (ErrorKind::Authentication, "invalid_request_error", Some("invalid_api_key")),
            (ErrorKind::PermissionDenied, "permission_error", None),
            (ErrorKind::NotFound, "invalid_request_error", Some("not_found")),
            (ErrorKind::RequestTooLarge, "invalid_request_error", Some("request_too_large")),
            (ErrorKind::RateLimited, "rate_limit_error", Some("rate_limit_exceeded")),
            (ErrorKind::Overloaded, "service_unavailable_error", Some("server_is_overloaded")),
            (ErrorKind::Server, "server_error", None),
            (ErrorKind::Timeout, "server_error", Some("timeout")),
        ];
        for (kind, etype, code) in rows {
            assert_eq!(error_type_code(kind), (etype, code), "{kind:?}");
        }
        // Mid-stream errors carry no status: the kind comes from `type`/`code`.
        let read = [
            (r#"{"type":"invalid_request_error","code":"invalid_api_key"}"#, ErrorKind::Authentication),
            (r#"{"type":"authentication_error"}"#, ErrorKind::Authentication),
            (r#"{"type":"requests"}"#, ErrorKind::RateLimited),
            (r#"{"type":"insufficient_quota"}"#, ErrorKind::RateLimited),
            (r#"{"type":"invalid_request_error","code":"rate_limit_exceeded"}"#, ErrorKind::RateLimited),
            (r#"{"type":"invalid_request_error","code":"context_length_exceeded"}"#, ErrorKind::InvalidRequest),
            (r#"{"type":"overloaded_error"}"#, ErrorKind::Overloaded),
            (r#"{"type":"server_error","code":"server_is_overloaded"}"#, ErrorKind::Overloaded),
            (r#"{"type":"server_error"}"#, ErrorKind::Server),
            (r#"{"code":429}"#, ErrorKind::RateLimited),
            (r#""plain text""#, ErrorKind::Server),
        ];
        for (object, kind) in read {
            let value: Value = serde_json::from_str(object).unwrap();
            assert_eq!(provider_error_from_object(&value, None).kind, kind, "{object}");
        }
    }

    #[test]
    fn usage_row_by_row() {
        let rows: [UsageRow; 5] = [
            (r#"{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}"#, Some(9), Some(12), None, None),
            (
                r#"{"prompt_tokens":2006,"completion_tokens":300,"prompt_tokens_details":{"cached_tokens":1920}}"#,
                Some(2006),
                Some(300),
                Some(1920),
                None,
            ),
            // DeepSeek's context-caching guide: prompt_cache_hit_tokens + prompt_cache_miss_tokens.
            (
                r#"{"prompt_tokens":6,"completion_tokens":12,"prompt_cache_hit_tokens":4,"prompt_cache_miss_tokens":2}"#,
                Some(6),
                Some(12),
                Some(4),
                None,
            ),
            (
                r#"{"prompt_tokens":6,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":0},"prompt_cache_hit_tokens":0}"#,
                Some(6),
                Some(1),
                Some(0),
                None,
            ),
            (
                r#"{"prompt_tokens":5,"completion_tokens":80,"completion_tokens_details":{"reasoning_tokens":64}}"#,
                Some(5),
                Some(80),
                None,
                Some(64),
            ),
        ];
        for (wire, input, output, cached, reasoning) in rows {
            let usage = parse_usage_object(wire.as_bytes()).unwrap();
            assert_eq!(
                (usage.input, usage.output, usage.cached_input, usage.reasoning),
                (input, output, cached, reasoning),
                "{wire}"
            );
            assert_eq!(usage.source, UsageSource::Reported);
            // And back: the counts the wire carries, total included.
            let out = serde_json::to_value(usage_out(&usage)).unwrap();
            assert_eq!(out["prompt_tokens"].as_u64(), input, "{wire}");
            assert_eq!(out["completion_tokens"].as_u64(), output, "{wire}");
            assert_eq!(out["total_tokens"].as_u64(), Some(input.unwrap_or(0) + output.unwrap_or(0)), "{wire}");
            assert_eq!(out["prompt_tokens_details"]["cached_tokens"].as_u64(), cached, "{wire}");
            assert_eq!(out["completion_tokens_details"]["reasoning_tokens"].as_u64(), reasoning, "{wire}");
        }
        assert_eq!(parse_usage_object(br#"{"total_tokens":3}"#), None, "no input or output: no usage");
        assert!(usage_out(&Usage::default()).is_none());
    }
}
