//! How Gemini's closed sets map to the IR: `finishReason`, `usageMetadata` and the error
//! `status` (google.rpc.Code names), each tested row by row below. Gemini is a provider only:
//! nothing maps back.

use super::wire::UsageMetadata;
use crate::llm::ir::{ErrorKind, StopReason};
use crate::usage::{Usage, UsageSource};

pub fn finish_reason(reason: &str, has_calls: bool) -> StopReason {
    match reason {
        "STOP" if has_calls => StopReason::ToolCalls,
        "STOP" => StopReason::Stop,
        "MAX_TOKENS" => StopReason::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT" => StopReason::ContentFilter,
        _ => StopReason::Other,
    }
}

pub fn convert_usage(u: &UsageMetadata) -> Usage {
    let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    };
    let input = add(u.prompt_token_count, u.tool_use_prompt_token_count);
    let output = add(u.candidates_token_count, u.thoughts_token_count);
    let known = input.is_some() || output.is_some();
    Usage {
        input,
        output,
        cached_input: u.cached_content_token_count,
        cache_write: None,
        cache_write_1h: None,
        reasoning: u.thoughts_token_count,
        source: if known { UsageSource::Reported } else { UsageSource::None },
    }
}

/// The kind of an error by its `status` name; `http_status` decides for a missing or unknown one.
pub fn error_kind(status: Option<&str>, http_status: u16) -> ErrorKind {
    match status {
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE") => ErrorKind::InvalidRequest,
        Some("UNAUTHENTICATED") => ErrorKind::Authentication,
        Some("PERMISSION_DENIED") => ErrorKind::PermissionDenied,
        Some("NOT_FOUND") => ErrorKind::NotFound,
        Some("RESOURCE_EXHAUSTED") => ErrorKind::RateLimited,
        Some("UNAVAILABLE") => ErrorKind::Overloaded,
        Some("DEADLINE_EXCEEDED") => ErrorKind::Timeout,
        Some("INTERNAL" | "UNKNOWN" | "DATA_LOSS") => ErrorKind::Server,
        _ => ErrorKind::from_status(http_status),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons_row_by_row() {
        // (finishReason, the candidate has function calls, IR)
        let rows = [
            ("STOP", false, StopReason::Stop),
            ("STOP", true, StopReason::ToolCalls),
            ("MAX_TOKENS", false, StopReason::Length),
            ("SAFETY", false, StopReason::ContentFilter),
            ("RECITATION", false, StopReason::ContentFilter),
            ("BLOCKLIST", false, StopReason::ContentFilter),
            ("PROHIBITED_CONTENT", false, StopReason::ContentFilter),
            ("SPII", false, StopReason::ContentFilter),
            ("IMAGE_SAFETY", false, StopReason::ContentFilter),
            ("IMAGE_PROHIBITED_CONTENT", false, StopReason::ContentFilter),
            ("MALFORMED_FUNCTION_CALL", true, StopReason::Other),
            ("OTHER", false, StopReason::Other),
        ];
        for (wire, calls, ir) in rows {
            assert_eq!(finish_reason(wire, calls), ir, "{wire} calls={calls}");
        }
    }

    #[test]
    fn error_statuses_row_by_row() {
        // (status name, HTTP status, kind): the name decides; the HTTP status when it is unknown.
        let rows = [
            (Some("INVALID_ARGUMENT"), 400, ErrorKind::InvalidRequest),
            (Some("FAILED_PRECONDITION"), 400, ErrorKind::InvalidRequest),
            (Some("OUT_OF_RANGE"), 400, ErrorKind::InvalidRequest),
            (Some("UNAUTHENTICATED"), 401, ErrorKind::Authentication),
            (Some("PERMISSION_DENIED"), 403, ErrorKind::PermissionDenied),
            (Some("NOT_FOUND"), 404, ErrorKind::NotFound),
            (Some("RESOURCE_EXHAUSTED"), 429, ErrorKind::RateLimited),
            (Some("UNAVAILABLE"), 503, ErrorKind::Overloaded),
            (Some("DEADLINE_EXCEEDED"), 504, ErrorKind::Timeout),
            (Some("INTERNAL"), 500, ErrorKind::Server),
            (Some("UNKNOWN"), 500, ErrorKind::Server),
            (Some("DATA_LOSS"), 500, ErrorKind::Server),
            (Some("SOMETHING_NEW"), 429, ErrorKind::RateLimited),
            (None, 404, ErrorKind::NotFound),
        ];
        for (name, http, kind) in rows {
            assert_eq!(error_kind(name, http), kind, "{name:?} {http}");
        }
    }

    #[test]
    fn usage_row_by_row() {
        // (usageMetadata, input, output, cached input, reasoning): tool-use prompt tokens count
        // as input, thoughts as output (Gemini bills them so).
        let rows = [
            (r#"{"promptTokenCount":8,"candidatesTokenCount":5}"#, Some(8), Some(5), None, None),
            (
                r#"{"promptTokenCount":8,"toolUsePromptTokenCount":3,"candidatesTokenCount":5}"#,
                Some(11),
                Some(5),
                None,
                None,
            ),
            (
                r#"{"promptTokenCount":8,"candidatesTokenCount":5,"thoughtsTokenCount":40}"#,
                Some(8),
                Some(45),
                None,
                Some(40),
            ),
            (
                r#"{"promptTokenCount":900,"cachedContentTokenCount":512,"candidatesTokenCount":2}"#,
                Some(900),
                Some(2),
                Some(512),
                None,
            ),
            (r#"{"thoughtsTokenCount":7}"#, None, Some(7), None, Some(7)),
        ];
        for (wire, input, output, cached, reasoning) in rows {
            let usage = convert_usage(&serde_json::from_str::<UsageMetadata>(wire).unwrap());
            assert_eq!(
                (usage.input, usage.output, usage.cached_input, usage.reasoning),
                (input, output, cached, reasoning),
                "{wire}"
            );
            assert_eq!(usage.source, UsageSource::Reported, "{wire}");
        }
        assert_eq!(convert_usage(&serde_json::from_str::<UsageMetadata>("{}").unwrap()).source, UsageSource::None);
    }
}
