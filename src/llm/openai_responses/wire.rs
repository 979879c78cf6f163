//! Serde wire types of the OpenAI Responses API: what the gateway reads from a passed-through
//! answer, and the `response` object it writes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Deserialize)]
pub struct WireUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub input_tokens_details: Option<InputDetails>,
    #[serde(default)]
    pub output_tokens_details: Option<OutputDetails>,
}

#[derive(Deserialize)]
pub struct InputDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
pub struct OutputDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

#[derive(Deserialize)]
pub struct WireResponse {
    #[serde(default)]
    pub usage: Option<WireUsage>,
}

#[derive(Deserialize)]
pub struct WireEvent<'a> {
    #[serde(default, borrow, rename = "type")]
    pub kind: Option<&'a str>,
    #[serde(default)]
    pub response: Option<WireResponse>,
    #[serde(default, borrow)]
    pub delta: Option<std::borrow::Cow<'a, str>>,
}

/// The `response` object, with the fields the API always sends (request parameters are not
/// echoed: `null`, empty or the API's defaults). Serialized directly, without a JSON tree: a
/// stream writes it three times.
#[derive(Serialize)]
pub struct ResponseObject<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created_at: u64,
    pub status: &'static str,
    pub background: bool,
    pub error: &'a Value,
    pub incomplete_details: &'a Value,
    pub instructions: Option<()>,
    pub max_output_tokens: Option<()>,
    pub model: &'a str,
    pub output: &'a [Value],
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<()>,
    pub reasoning: NoReasoning,
    pub store: bool,
    pub temperature: Option<()>,
    pub text: TextFormat,
    pub tool_choice: &'static str,
    pub tools: [(); 0],
    pub top_p: Option<()>,
    pub truncation: &'static str,
    pub usage: &'a Value,
    pub metadata: Empty,
}

#[derive(Serialize)]
pub struct NoReasoning {
    pub effort: Option<()>,
    pub summary: Option<()>,
}

#[derive(Serialize)]
pub struct TextFormat {
    pub format: FormatType,
}

#[derive(Serialize)]
pub struct FormatType {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Serialize)]
pub struct Empty {}
