//! Serde wire types of OpenAI Chat Completions.
//!
//! Incoming provider payloads (`Wire*` with `Deserialize`) are read tolerantly: every field
//! has a default and unknown fields are ignored. Outgoing payloads (`Out*` with `Serialize`)
//! are structs so that keys keep OpenAI's order (`id`, `object`, `created`, `model`, ...).

use serde::{Deserialize, Serialize};
use serde_json::Value;

// ------------------------------------------------------------------ provider -> gateway

/// A `usage` object (chat completions, chunks and embeddings).
#[derive(Debug, Deserialize, Default)]
pub struct WireUsage {
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    pub completion_tokens_details: Option<CompletionDetails>,
    /// DeepSeek's own name for cached input (it sends `prompt_tokens_details` too, but only
    /// since 2025; older deployments and some proxies of it send only this).
    #[serde(default)]
    pub prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
pub struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
pub struct CompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

/// A `chat.completion` body or a `chat.completion.chunk` (same shape, `message` vs `delta`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WireCompletion {
    pub id: Option<String>,
    pub model: Option<String>,
    pub created: Option<u64>,
    pub choices: Vec<WireChoice>,
    pub usage: Option<Value>,
    /// Some OpenAI-compatible servers answer 2xx with an error object, and OpenAI sends
    /// `data: {"error": {...}}` mid-stream.
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WireChoice {
    pub index: Option<u64>,
    pub message: Option<WireMessage>,
    pub delta: Option<WireMessage>,
    pub finish_reason: Option<String>,
}

/// An assistant `message` (non-streamed) or `delta` (streamed).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WireMessage {
    /// A string; tolerated as an array of `{type: text, text}` parts too.
    pub content: Option<Value>,
    pub refusal: Option<String>,
    /// DeepSeek, vLLM, SGLang and most OpenAI-compatible reasoning servers.
    pub reasoning_content: Option<String>,
    /// OpenRouter's (and Ollama's) name for the same thing.
    pub reasoning: Option<Value>,
    pub tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WireToolCall {
    pub index: Option<u64>,
    pub id: Option<String>,
    pub function: Option<WireFunction>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WireFunction {
    pub name: Option<String>,
    /// A JSON string per the spec; a few compatible servers send an object.
    pub arguments: Option<Value>,
}

/// `{"error": {...}}` as OpenAI and most compatible servers send it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WireErrorBody {
    pub error: Option<Value>,
    /// Some compatible servers put the message at the top level.
    pub message: Option<Value>,
    pub detail: Option<Value>,
}

// ------------------------------------------------------------------ gateway -> client / provider

#[derive(Debug, Serialize)]
pub struct OutUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<OutPromptDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<OutCompletionDetails>,
}

#[derive(Debug, Serialize)]
pub struct OutPromptDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Serialize)]
pub struct OutCompletionDetails {
    pub reasoning_tokens: u64,
}

#[derive(Debug, Serialize)]
pub struct OutToolCall<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: OutFunction<'a>,
}

#[derive(Debug, Serialize)]
pub struct OutFunction<'a> {
    pub name: &'a str,
    pub arguments: &'a str,
}

#[derive(Debug, Serialize)]
pub struct OutCompletion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<OutChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<OutUsage>,
}

#[derive(Debug, Serialize)]
pub struct OutChoice<'a> {
    pub index: u32,
    pub message: OutMessage<'a>,
    pub logprobs: Option<()>,
    pub finish_reason: &'static str,
}

#[derive(Debug, Serialize)]
pub struct OutMessage<'a> {
    pub role: &'static str,
    pub content: Option<String>,
    /// The de-facto field of DeepSeek / vLLM / OpenRouter-style APIs for shown reasoning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<OutToolCall<'a>>,
    pub refusal: Option<()>,
}

/// `{"error": {"message", "type", "param", "code"}}`, in OpenAI's key order.
#[derive(Debug, Serialize)]
pub struct OutError<'a> {
    pub error: OutErrorObject<'a>,
}

#[derive(Debug, Serialize)]
pub struct OutErrorObject<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

/// A Chat Completions request body, in the order OpenAI documents its members; absent
/// members are not sent.
#[derive(Debug, Serialize)]
pub struct OutRequest<'a> {
    pub model: &'a str,
    pub messages: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_cache_retention: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<OutStreamOptions>,
}

#[derive(Debug, Serialize)]
pub struct OutStreamOptions {
    pub include_usage: bool,
}
