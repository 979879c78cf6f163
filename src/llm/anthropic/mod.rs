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
//!
//! The tables (stop reasons, error types, usage, effort budgets) are in `mapping.rs`, each
//! tested row by row there. Files: `wire.rs` (serde types), `request/` (`decode.rs`: client
//! bodies, `encode.rs`: provider bodies), `response.rs`, `stream.rs` (both directions).

mod mapping;
mod response;
mod stream;
mod wire;
mod request {
    pub mod decode;
    pub mod encode;
}

pub use mapping::effort_budget;
pub(crate) use mapping::{
    cache_creation_to_wire, error_kind_from_type, error_type, stop_reason_from_wire, stop_reason_to_wire,
    usage_from_wire, usage_to_wire,
};
pub use request::decode::decode_request;
pub use request::encode::encode_request;
pub use response::{decode_error, decode_response, encode_error, encode_response};
pub use stream::{StreamDecoder, StreamEncoder};

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
