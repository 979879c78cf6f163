//! Bedrock Converse wire types that are *read* (responses, stream events, errors). Tolerant:
//! every field defaults, unknown fields are ignored. Requests are written as JSON values in
//! `request.rs`.

use serde::{Deserialize, Serialize};
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

// ----------------------------------------------------------------------------- requests

/// A Converse / ConverseStream request body; absent members are not sent. Messages, system
/// blocks and the tool configuration are `Value`s built by `request.rs` (their blocks are
/// one-member unions); `additionalModelRequestFields` and `outputConfig` are model-specific.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutConverseRequest<'a> {
    pub messages: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<OutInferenceConfig<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_model_request_fields: Option<serde_json::Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_model_response_field_paths: Option<[&'static str; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_config: Option<serde_json::Map<String, Value>>,
}

/// `inferenceConfig`: the sampling members every Converse model takes.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutInferenceConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<&'a [String]>,
}

impl OutInferenceConfig<'_> {
    /// No member set: the object is not sent.
    pub fn is_empty(&self) -> bool {
        self.max_tokens.is_none() && self.temperature.is_none() && self.top_p.is_none() && self.stop_sequences.is_none()
    }
}
