//! Anthropic Messages dialect (`POST /v1/messages`), both sides:
//!
//! - client side (Claude Code and the Anthropic SDKs talk to the gateway):
//!   [`decode_request`], [`encode_response`], [`encode_error`], [`StreamEncoder`];
//! - provider side (the gateway talks to api.anthropic.com with `x-api-key` and
//!   `anthropic-version: 2023-06-01`, see [`API_VERSION`]): [`encode_request`],
//!   [`decode_response`], [`decode_error`], [`StreamDecoder`].
//!
//! Mapping choices (both directions):
//! - `system`: a string or text blocks <-> `ChatRequest::system` text parts.
//! - `cache_control` (`{type: ephemeral, ttl?}`) on a system or content block <->
//!   `Part::CachePoint` after the block's part; on `tools[i]` and at the top level <->
//!   `ChatRequest::cache` (`tools`, `automatic`). A system prompt with a breakpoint is sent
//!   as blocks.
//! - `max_tokens` is required by Anthropic. Encoding a request whose IR has none uses
//!   [`DEFAULT_MAX_TOKENS`] (4096), or `budget_tokens + 4096` when thinking is on (the
//!   API requires `max_tokens > budget_tokens`).
//! - `thinking: {type: enabled, budget_tokens}` <-> `Reasoning::BudgetTokens`;
//!   `{type: disabled}` <-> `Reasoning::Disabled`. `Reasoning::Effort` encodes to a budget
//!   by [`effort_budget`]: minimal/low 1024, medium 4096, high 16384, xhigh 32768,
//!   max 65536; effort `none` encodes as disabled. On decode, `{type: adaptive}` becomes
//!   `Reasoning::Effort(output_config.effort or "high")` (high is Anthropic's default
//!   effort), and a lone `output_config.effort` becomes `Reasoning::Effort`.
//! - `output_config.format: {type: json_schema, schema}` <-> `ResponseFormat::JsonSchema`
//!   (Anthropic's structured outputs). `ResponseFormat::JsonObject` (no schema) is
//!   `Unsupported`.
//! - `tool_choice` auto/any/tool/none <-> `ToolChoice`; `disable_parallel_tool_use: true`
//!   <-> `parallel_tool_calls: Some(false)`.
//! - Stop reasons: end_turn/stop_sequence -> Stop (the stop sequence kept), max_tokens and
//!   model_context_window_exceeded -> Length, tool_use -> ToolCalls, refusal ->
//!   ContentFilter, pause_turn and anything else -> Other. Back: Other -> end_turn.
//! - Usage: IR `input` = `input_tokens + cache_read_input_tokens +
//!   cache_creation_input_tokens`; `cached_input` = cache read; `cache_write` = cache
//!   creation; `cache_write_1h` = `cache_creation.ephemeral_1h_input_tokens` (and back, with
//!   the 5-minute rest, when known); `reasoning` = `output_tokens_details.thinking_tokens`. Stream usage is
//!   cumulative on the wire already (`message_delta` repeats totals).
//! - `metadata.user_id` <-> `ChatRequest::user`.

mod decode;
mod encode;
mod response;
mod stream;
mod wire;

pub use decode::decode_request;
pub use encode::encode_request;
pub use response::{decode_error, decode_response, encode_error, encode_response};
pub use stream::{StreamDecoder, StreamEncoder};

use crate::llm::ir::{ErrorKind, StopReason};
use crate::usage::{Usage, UsageSource};

/// Provider name used in `TranslateError::Unsupported`.
pub const PROVIDER: &str = "anthropic";
/// Name used in `TranslateError::Unsupported` when an Anthropic *client* sends something
/// valid in its dialect that the gateway's IR cannot carry.
pub const GATEWAY: &str = "llm-gateway";
/// The `anthropic-version` header value the gateway sends upstream unless the provider
/// sets `anthropic_version`.
pub const API_VERSION: &str = "2023-06-01";
/// `max_tokens` sent when the IR request has none (Anthropic requires the field).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

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
