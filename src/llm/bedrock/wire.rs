//! Bedrock Converse wire types that are *read* (responses, stream events, errors). Tolerant:
//! every field defaults, unknown fields are ignored. Requests are written as JSON values in
//! `request.rs`.

use crate::usage::{Usage, UsageSource};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ConverseResponse {
    pub output: Option<ConverseOutput>,
    pub stop_reason: Option<String>,
    pub usage: Option<TokenUsage>,
    pub additional_model_response_fields: Option<Value>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct ConverseOutput {
    pub message: Option<OutMessage>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct OutMessage {
    pub content: Vec<OutBlock>,
}

/// A response content block (a union: one member is set; others such as `image` or
/// `citationsContent` are not translated).
#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct OutBlock {
    pub text: Option<String>,
    pub tool_use: Option<ToolUse>,
    pub reasoning_content: Option<ReasoningContent>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ToolUse {
    pub tool_use_id: String,
    pub name: String,
    pub input: Value,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ReasoningContent {
    pub reasoning_text: Option<ReasoningText>,
    /// Base64 of the encrypted reasoning.
    pub redacted_content: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct ReasoningText {
    pub text: String,
    pub signature: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default, rename_all = "camelCase")]
pub struct TokenUsage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
    pub cache_write_input_tokens: Option<u64>,
    /// The cache writes by TTL (API reference `CacheDetail`: `{inputTokens, ttl: "5m" | "1h"}`).
    pub cache_details: Option<Vec<CacheDetail>>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default, rename_all = "camelCase")]
pub struct CacheDetail {
    pub input_tokens: u64,
    pub ttl: String,
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

// ----------------------------------------------------------------------------- stream events

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ContentBlockStartEvent {
    pub content_block_index: Option<u64>,
    pub start: Option<BlockStart>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct BlockStart {
    pub tool_use: Option<ToolUseStart>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ToolUseStart {
    pub tool_use_id: String,
    pub name: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ContentBlockDeltaEvent {
    pub content_block_index: Option<u64>,
    pub delta: Option<Delta>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Delta {
    pub text: Option<String>,
    pub tool_use: Option<ToolUseDelta>,
    pub reasoning_content: Option<ReasoningDelta>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct ToolUseDelta {
    pub input: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ReasoningDelta {
    pub text: Option<String>,
    pub signature: Option<String>,
    pub redacted_content: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct MessageStopEvent {
    pub stop_reason: Option<String>,
    pub additional_model_response_fields: Option<Value>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct MetadataEvent {
    pub usage: Option<TokenUsage>,
}

/// Error bodies: `{"message": "..."}` (rest-json; some front ends say `Message`), sometimes
/// with `__type`.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct ErrorBody {
    pub message: Option<String>,
    #[serde(rename = "Message")]
    pub message_upper: Option<String>,
    #[serde(rename = "__type")]
    pub kind: Option<String>,
}

impl ErrorBody {
    pub fn text(&self) -> Option<&str> {
        self.message.as_deref().or(self.message_upper.as_deref())
    }
}
