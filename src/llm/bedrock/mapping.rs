//! How Bedrock Converse's closed sets map to the IR: `stopReason`, the exception names of
//! errors, and `usage` (whose `inputTokens` excludes the cache counts), each tested row by row
//! below. Bedrock is a provider only: nothing maps back.

use super::wire::TokenUsage;
use crate::llm::ir::{ErrorKind, StopReason};
use crate::usage::{Usage, UsageSource};
use serde_json::Value;

/// Converse `stopReason` -> IR.
pub fn stop_reason(reason: &str) -> StopReason {
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
pub fn stop_sequence(fields: Option<&Value>) -> Option<String> {
    fields?.get("stop_sequence")?.as_str().map(str::to_owned)
}

/// Error kind and client status of a modelled Bedrock exception name (`ThrottlingException`,
/// `throttlingException`, `com.amazon...#ThrottlingException`, ...).
pub fn exception_kind(name: &str) -> Option<(ErrorKind, u16)> {
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

impl TokenUsage {
    /// To the IR convention. Bedrock's `inputTokens` counts only the input tokens that were
    /// neither read from nor written to the prompt cache (the Bedrock prompt-caching guide;
    /// the same split as Anthropic's `input_tokens`), so the IR `input` adds both cache counts
    /// back in. Bedrock reports no reasoning split of `outputTokens`.
    pub fn to_ir(&self) -> Usage {
        let cached = self.cache_read_input_tokens;
        let written = self.cache_write_input_tokens;
        // Of the writes, those with a 1-hour TTL (a subset, whatever the details say).
        let written_1h = self.cache_details.as_ref().map(|details| {
            let one_hour =
                details.iter().filter(|d| d.ttl == "1h").fold(0u64, |sum, d| sum.saturating_add(d.input_tokens));
            one_hour.min(written.unwrap_or(one_hour))
        });
        Usage {
            input: self
                .input_tokens
                .map(|i| i.saturating_add(cached.unwrap_or(0)).saturating_add(written.unwrap_or(0))),
            output: self.output_tokens,
            cached_input: cached,
            cache_write: written,
            cache_write_1h: written_1h,
            reasoning: None,
            source: UsageSource::Reported,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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
            ("guardrail_intervened", StopReason::ContentFilter),
            ("content_filtered", StopReason::ContentFilter),
            ("something_new", StopReason::Other),
        ];
        for (wire, ir) in rows {
            assert_eq!(stop_reason(wire), ir, "{wire}");
        }
        let fields = serde_json::json!({"stop_sequence": "###"});
        assert_eq!(stop_sequence(Some(&fields)).as_deref(), Some("###"));
        assert_eq!(stop_sequence(None), None);
    }

    #[test]
    fn exceptions_row_by_row() {
        // Every spelling Bedrock and the SDKs use reads as the same row.
        let rows = [
            ("ValidationException", Some((ErrorKind::InvalidRequest, 400))),
            ("ServiceQuotaExceededException", Some((ErrorKind::InvalidRequest, 400))),
            ("SerializationException", Some((ErrorKind::InvalidRequest, 400))),
            ("AccessDeniedException", Some((ErrorKind::PermissionDenied, 403))),
            ("UnrecognizedClientException", Some((ErrorKind::PermissionDenied, 403))),
            ("InvalidSignatureException", Some((ErrorKind::PermissionDenied, 403))),
            ("MissingAuthenticationTokenException", Some((ErrorKind::PermissionDenied, 403))),
            ("ExpiredTokenException", Some((ErrorKind::Authentication, 401))),
            ("ResourceNotFoundException", Some((ErrorKind::NotFound, 404))),
            ("ThrottlingException", Some((ErrorKind::RateLimited, 429))),
            ("throttlingException", Some((ErrorKind::RateLimited, 429))),
            ("com.amazon.coral.service#ThrottlingException", Some((ErrorKind::RateLimited, 429))),
            ("ModelNotReadyException", Some((ErrorKind::RateLimited, 429))),
            ("ModelTimeoutException", Some((ErrorKind::Timeout, 504))),
            ("ServiceUnavailableException", Some((ErrorKind::Overloaded, 503))),
            ("InternalServerException", Some((ErrorKind::Server, 500))),
            ("ModelStreamErrorException", Some((ErrorKind::Server, 502))),
            ("ModelErrorException", Some((ErrorKind::Server, 502))),
            ("TeapotException", None),
        ];
        for (name, expected) in rows {
            assert_eq!(exception_kind(name), expected, "{name}");
        }
    }

    #[test]
    fn usage_row_by_row() {
        // (usage, IR input, output, cached input, cache write, 1h cache write): the IR input
        // adds back the cache counts Bedrock's `inputTokens` excludes.
        type Row = (&'static str, Option<u64>, Option<u64>, Option<u64>, Option<u64>, Option<u64>);
        let rows: [Row; 3] = [
            (r#"{"inputTokens":10,"outputTokens":5,"totalTokens":15}"#, Some(10), Some(5), None, None, None),
            (
                r#"{"inputTokens":10,"outputTokens":5,"cacheReadInputTokens":100,"cacheWriteInputTokens":20}"#,
                Some(130),
                Some(5),
                Some(100),
                Some(20),
                None,
            ),
            (
                r#"{"inputTokens":1,"outputTokens":2,"cacheWriteInputTokens":30,"cacheDetails":[{"inputTokens":10,"ttl":"5m"},{"inputTokens":20,"ttl":"1h"}]}"#,
                Some(31),
                Some(2),
                None,
                Some(30),
                Some(20),
            ),
        ];
        for (wire, input, output, cached, write, write_1h) in rows {
            let usage = serde_json::from_str::<TokenUsage>(wire).unwrap().to_ir();
            let got = (usage.input, usage.output, usage.cached_input, usage.cache_write, usage.cache_write_1h);
            assert_eq!(got, (input, output, cached, write, write_1h), "{wire}");
            assert_eq!((usage.reasoning, usage.source), (None, UsageSource::Reported), "{wire}");
        }
    }
}
