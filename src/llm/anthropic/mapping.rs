//! How Anthropic's closed sets map to the IR: stop reasons, error types, usage (both ways)
//! and reasoning effort -> thinking budget, each tested row by row below.

use super::wire;
use crate::llm::ir::{ErrorKind, StopReason};
use crate::usage::{Usage, UsageSource};

/// Thinking budget for an OpenAI-style reasoning effort. `Some(None)` means "thinking
/// disabled" (effort `none`); `None` means the effort is unknown.
pub fn effort_budget(effort: &str) -> Option<Option<u64>> {
    match effort {
        "none" => Some(None),
        "minimal" | "low" => Some(Some(1024)),
        "medium" => Some(Some(4096)),
        "high" => Some(Some(16384)),
        "xhigh" => Some(Some(32768)),
        "max" => Some(Some(65536)),
        _ => None,
    }
}

pub(crate) fn stop_reason_from_wire(reason: &str) -> StopReason {
    match reason {
        "end_turn" | "stop_sequence" => StopReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => StopReason::Length,
        "tool_use" => StopReason::ToolCalls,
        "refusal" => StopReason::ContentFilter,
        _ => StopReason::Other,
    }
}

pub(crate) fn stop_reason_to_wire(reason: StopReason, stop_sequence: Option<&str>) -> &'static str {
    match reason {
        StopReason::Stop if stop_sequence.is_some() => "stop_sequence",
        StopReason::Stop | StopReason::Other => "end_turn",
        StopReason::Length => "max_tokens",
        StopReason::ToolCalls => "tool_use",
        StopReason::ContentFilter => "refusal",
    }
}

pub(crate) fn error_kind_from_type(kind: &str) -> Option<ErrorKind> {
    Some(match kind {
        "invalid_request_error" => ErrorKind::InvalidRequest,
        "authentication_error" => ErrorKind::Authentication,
        "permission_error" | "billing_error" => ErrorKind::PermissionDenied,
        "not_found_error" => ErrorKind::NotFound,
        "request_too_large" => ErrorKind::RequestTooLarge,
        "rate_limit_error" => ErrorKind::RateLimited,
        "overloaded_error" => ErrorKind::Overloaded,
        "api_error" => ErrorKind::Server,
        "timeout_error" => ErrorKind::Timeout,
        _ => return None,
    })
}

pub(crate) fn error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::PermissionDenied => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RequestTooLarge => "request_too_large",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::Overloaded => "overloaded_error",
        ErrorKind::Server => "api_error",
        ErrorKind::Timeout => "timeout_error",
    }
}

/// Anthropic usage counts (any subset) -> IR usage, given the counts already known
/// (`message_start`) for those a `message_delta` omits.
pub(crate) fn usage_from_wire(u: &wire::InUsage, prev: &wire::InUsage) -> (Usage, wire::InUsage) {
    let merged = wire::InUsage {
        input_tokens: u.input_tokens.or(prev.input_tokens),
        output_tokens: u.output_tokens.or(prev.output_tokens),
        cache_creation_input_tokens: u.cache_creation_input_tokens.or(prev.cache_creation_input_tokens),
        cache_read_input_tokens: u.cache_read_input_tokens.or(prev.cache_read_input_tokens),
        cache_creation: u.cache_creation.or(prev.cache_creation),
        output_tokens_details: u.output_tokens_details.clone().or_else(|| prev.output_tokens_details.clone()),
    };
    let input = merged.input_tokens.map(|i| {
        i.saturating_add(merged.cache_read_input_tokens.unwrap_or(0))
            .saturating_add(merged.cache_creation_input_tokens.unwrap_or(0))
    });
    let usage = Usage {
        input,
        output: merged.output_tokens,
        cached_input: merged.cache_read_input_tokens,
        cache_write: merged.cache_creation_input_tokens,
        cache_write_1h: merged.cache_creation.map(|c| {
            // A subset of all writes, whatever the provider's figures say.
            let written = merged.cache_creation_input_tokens.unwrap_or(c.ephemeral_1h_input_tokens);
            c.ephemeral_1h_input_tokens.min(written)
        }),
        reasoning: merged.output_tokens_details.as_ref().and_then(|d| d.thinking_tokens),
        source: UsageSource::Reported,
    };
    (usage, merged)
}

/// The TTL split of the cache writes, when the provider reported one.
pub(crate) fn cache_creation_to_wire(u: &Usage) -> Option<wire::CacheCreation> {
    let one_hour = u.cache_write_1h?;
    let written = u.cache_write.unwrap_or(one_hour).max(one_hour);
    Some(wire::CacheCreation { ephemeral_5m_input_tokens: written - one_hour, ephemeral_1h_input_tokens: one_hour })
}

/// IR usage -> Anthropic usage (`input_tokens` excludes the cache counts).
pub(crate) fn usage_to_wire(u: &Usage) -> wire::OutUsage {
    let cached = u.cached_input.unwrap_or(0);
    let written = u.cache_write.unwrap_or(0);
    wire::OutUsage {
        input_tokens: u.input.unwrap_or(0).saturating_sub(cached).saturating_sub(written),
        cache_creation_input_tokens: u.cache_write,
        cache_read_input_tokens: u.cached_input,
        cache_creation: cache_creation_to_wire(u),
        output_tokens: u.output.unwrap_or(0),
        output_tokens_details: u.reasoning.map(|thinking_tokens| wire::OutOutputDetails { thinking_tokens }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_row_by_row() {
        let rows = [
            ("end_turn", StopReason::Stop),
            ("stop_sequence", StopReason::Stop),
            ("max_tokens", StopReason::Length),
            ("model_context_window_exceeded", StopReason::Length),
            ("tool_use", StopReason::ToolCalls),
            ("refusal", StopReason::ContentFilter),
            ("pause_turn", StopReason::Other),
            ("something_new", StopReason::Other),
        ];
        for (wire, ir) in rows {
            assert_eq!(stop_reason_from_wire(wire), ir, "{wire}");
        }
        // (IR, the stop sequence matched, wire)
        let back = [
            (StopReason::Stop, None, "end_turn"),
            (StopReason::Stop, Some("###"), "stop_sequence"),
            (StopReason::Other, None, "end_turn"),
            (StopReason::Length, None, "max_tokens"),
            (StopReason::ToolCalls, None, "tool_use"),
            (StopReason::ContentFilter, None, "refusal"),
        ];
        for (ir, sequence, wire) in back {
            assert_eq!(stop_reason_to_wire(ir, sequence), wire, "{ir:?} {sequence:?}");
        }
    }

    #[test]
    fn error_types_row_by_row() {
        // Every kind has a type, and the type reads back as the kind.
        let rows = [
            (ErrorKind::InvalidRequest, "invalid_request_error"),
            (ErrorKind::Authentication, "authentication_error"),
            (ErrorKind::PermissionDenied, "permission_error"),
            (ErrorKind::NotFound, "not_found_error"),
            (ErrorKind::RequestTooLarge, "request_too_large"),
            (ErrorKind::RateLimited, "rate_limit_error"),
            (ErrorKind::Overloaded, "overloaded_error"),
            (ErrorKind::Server, "api_error"),
            (ErrorKind::Timeout, "timeout_error"),
        ];
        for (kind, wire) in rows {
            assert_eq!(error_type(kind), wire, "{kind:?}");
            assert_eq!(error_kind_from_type(wire), Some(kind), "{wire}");
        }
        assert_eq!(error_kind_from_type("billing_error"), Some(ErrorKind::PermissionDenied));
        assert_eq!(error_kind_from_type("teapot_error"), None, "unknown types fall back to the status");
    }

    #[test]
    fn usage_row_by_row() {
        // (wire usage, IR input, output, cached input, cache write, 1h cache write, reasoning):
        // the IR input counts the cache reads and writes Anthropic's `input_tokens` excludes.
        type Row = (&'static str, Option<u64>, Option<u64>, Option<u64>, Option<u64>, Option<u64>, Option<u64>);
        let rows: [Row; 4] = [
            (r#"{"input_tokens":10,"output_tokens":5}"#, Some(10), Some(5), None, None, None, None),
            (
                r#"{"input_tokens":10,"cache_read_input_tokens":100,"cache_creation_input_tokens":20,"output_tokens":5}"#,
                Some(130),
                Some(5),
                Some(100),
                Some(20),
                None,
                None,
            ),
            (
                r#"{"input_tokens":1,"cache_creation_input_tokens":30,"cache_creation":{"ephemeral_5m_input_tokens":10,"ephemeral_1h_input_tokens":20},"output_tokens":2}"#,
                Some(31),
                Some(2),
                None,
                Some(30),
                Some(20),
                None,
            ),
            (
                r#"{"input_tokens":3,"output_tokens":70,"output_tokens_details":{"thinking_tokens":64}}"#,
                Some(3),
                Some(70),
                None,
                None,
                None,
                Some(64),
            ),
        ];
        for (wire, input, output, cached, write, write_1h, reasoning) in rows {
            let parsed: wire::InUsage = serde_json::from_str(wire).unwrap();
            let (usage, _) = usage_from_wire(&parsed, &wire::InUsage::default());
            let got = (
                usage.input,
                usage.output,
                usage.cached_input,
                usage.cache_write,
                usage.cache_write_1h,
                usage.reasoning,
            );
            assert_eq!(got, (input, output, cached, write, write_1h, reasoning), "{wire}");
            // And back: the same wire counts.
            let back = serde_json::to_value(usage_to_wire(&usage)).unwrap();
            let sent: serde_json::Value = serde_json::from_str(wire).unwrap();
            for key in ["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"] {
                assert_eq!(back[key], sent[key], "{wire}: {key}");
            }
            assert_eq!(back["cache_creation"], sent["cache_creation"], "{wire}");
            assert_eq!(back["output_tokens_details"], sent["output_tokens_details"], "{wire}");
        }
        // A `message_delta` repeats only some counts: the others come from `message_start`.
        let start: wire::InUsage =
            serde_json::from_str(r#"{"input_tokens":10,"cache_read_input_tokens":4,"output_tokens":1}"#).unwrap();
        let delta: wire::InUsage = serde_json::from_str(r#"{"output_tokens":9}"#).unwrap();
        let (usage, _) = usage_from_wire(&delta, &start);
        assert_eq!((usage.input, usage.output, usage.cached_input), (Some(14), Some(9), Some(4)));
    }

    #[test]
    fn effort_budgets_row_by_row() {
        let rows = [
            ("none", Some(None)),
            ("minimal", Some(Some(1024))),
            ("low", Some(Some(1024))),
            ("medium", Some(Some(4096))),
            ("high", Some(Some(16384))),
            ("xhigh", Some(Some(32768))),
            ("max", Some(Some(65536))),
            ("ludicrous", None),
        ];
        for (effort, budget) in rows {
            assert_eq!(effort_budget(effort), budget, "{effort}");
        }
    }
}
