//! How the Responses API's closed sets map to the IR: usage (both ways), `status` and
//! `incomplete_details` per stop reason, and the failure `code` per error kind, each tested
//! row by row below.

use super::wire::WireUsage;
use crate::llm::ir::{ErrorKind, StopReason};
use crate::usage::{Usage, UsageSource};
// json! stays: `usage` and `incomplete_details` are `Value`s embedded in the response object
// as written by response.rs and stream.rs (`null` when unknown).
use serde_json::{json, Value};

pub fn to_usage(w: WireUsage) -> Option<Usage> {
    if w.input_tokens.is_none() && w.output_tokens.is_none() {
        return None;
    }
    Some(Usage {
        input: w.input_tokens,
        output: w.output_tokens,
        cached_input: w.input_tokens_details.and_then(|d| d.cached_tokens),
        cache_write: None,
        cache_write_1h: None,
        reasoning: w.output_tokens_details.and_then(|d| d.reasoning_tokens),
        source: UsageSource::Reported,
    })
}

/// The Responses usage object (`null` when the provider reported nothing).
pub fn usage_json(u: &Usage) -> Value {
    if u.input.is_none() && u.output.is_none() {
        return Value::Null;
    }
    let input = u.input.unwrap_or(0);
    let output = u.output.unwrap_or(0);
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": u.cached_input.unwrap_or(0)},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning.unwrap_or(0)},
        "total_tokens": input.saturating_add(output),
    })
}

/// `status` and `incomplete_details` for how generation ended.
pub fn status_of(stop: Option<StopReason>) -> (&'static str, Value) {
    match stop {
        Some(StopReason::Length) => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some(StopReason::ContentFilter) => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// The Responses `error.code` for a failure during generation.
pub fn failure_code(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::RateLimited => "rate_limit_exceeded",
        ErrorKind::InvalidRequest => "invalid_prompt",
        _ => "server_error",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn usage_row_by_row() {
        // (wire usage, input, output, cached input, reasoning)
        let rows = [
            (r#"{"input_tokens":9,"output_tokens":12,"total_tokens":21}"#, Some(9), Some(12), None, None),
            (
                r#"{"input_tokens":2006,"input_tokens_details":{"cached_tokens":1920},"output_tokens":300,"output_tokens_details":{"reasoning_tokens":128}}"#,
                Some(2006),
                Some(300),
                Some(1920),
                Some(128),
            ),
            (r#"{"input_tokens":4}"#, Some(4), None, None, None),
        ];
        for (wire, input, output, cached, reasoning) in rows {
            let usage = to_usage(serde_json::from_str(wire).unwrap()).unwrap();
            assert_eq!(
                (usage.input, usage.output, usage.cached_input, usage.reasoning),
                (input, output, cached, reasoning)
            );
            assert_eq!(usage.source, UsageSource::Reported);
            // And back: the wire requires every count, so an unknown one is written as 0.
            let out = usage_json(&usage);
            assert_eq!(out["input_tokens"].as_u64(), Some(input.unwrap_or(0)), "{wire}");
            assert_eq!(out["output_tokens"].as_u64(), Some(output.unwrap_or(0)), "{wire}");
            assert_eq!(out["input_tokens_details"]["cached_tokens"].as_u64(), Some(cached.unwrap_or(0)), "{wire}");
            assert_eq!(out["output_tokens_details"]["reasoning_tokens"].as_u64(), Some(reasoning.unwrap_or(0)));
            assert_eq!(out["total_tokens"].as_u64(), Some(input.unwrap_or(0) + output.unwrap_or(0)), "{wire}");
        }
        assert!(to_usage(serde_json::from_str(r#"{"total_tokens":3}"#).unwrap()).is_none());
        assert_eq!(usage_json(&Usage::default()), Value::Null);
    }

    #[test]
    fn status_per_stop_reason_row_by_row() {
        let rows = [
            (None, "completed", Value::Null),
            (Some(StopReason::Stop), "completed", Value::Null),
            (Some(StopReason::ToolCalls), "completed", Value::Null),
            (Some(StopReason::Other), "completed", Value::Null),
            (Some(StopReason::Length), "incomplete", json!({"reason": "max_output_tokens"})),
            (Some(StopReason::ContentFilter), "incomplete", json!({"reason": "content_filter"})),
        ];
        for (stop, status, details) in rows {
            assert_eq!(status_of(stop), (status, details), "{stop:?}");
        }
    }

    #[test]
    fn failure_code_per_error_kind_row_by_row() {
        let rows = [
            (ErrorKind::RateLimited, "rate_limit_exceeded"),
            (ErrorKind::InvalidRequest, "invalid_prompt"),
            (ErrorKind::Authentication, "server_error"),
            (ErrorKind::PermissionDenied, "server_error"),
            (ErrorKind::NotFound, "server_error"),
            (ErrorKind::RequestTooLarge, "server_error"),
            (ErrorKind::Overloaded, "server_error"),
            (ErrorKind::Server, "server_error"),
            (ErrorKind::Timeout, "server_error"),
        ];
        for (kind, code) in rows {
            assert_eq!(failure_code(kind), code, "{kind:?}");
        }
    }
}
