//! Serde types of the Anthropic Messages wire format.
//!
//! Output types (`Out*`) are what the gateway writes (requests to api.anthropic.com,
//! responses to Anthropic clients); input types are read tolerantly (unknown fields and
//! unknown block types ignored), as provider payloads must be.

use serde::{Deserialize, Serialize};
use serde_json::Value;

// ----------------------------------------------------------------------------- content blocks

/// A content block, in requests and responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        #[serde(default)]
        text: String,
    },
    Image {
        source: ImageSource,
    },
    ToolUse {
        #[serde(default)]
        id: String,
        #[serde(default)]
        name: String,
        #[serde(default = "empty_object")]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<ToolResultContent>,
        #[serde(default, skip_serializing_if = "is_false")]
        is_error: bool,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        #[serde(default)]
        data: String,
    },
    /// A document input (requests only).
    Document {
        source: DocumentSource,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
    },
    /// Any block type the gateway does not translate (server tools, search results, ...).
    #[serde(other, skip_serializing)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolResultContent {
    Text(String),
    Blocks(Vec<Block>),
    /// Blocks the gateway writes, Anthropic-only ones (search results) included.
    #[serde(skip_deserializing)]
    Raw(Vec<Value>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImageSource {
    Base64 {
        media_type: String,
        data: String,
    },
    Url {
        url: String,
    },
    #[serde(other, skip_serializing)]
    Unknown,
}

/// A `document` block's source: a base64 PDF, plain text or a URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DocumentSource {
    Base64 {
        media_type: String,
        data: String,
    },
    Text {
        media_type: String,
        data: String,
    },
    Url {
        url: String,
    },
    #[serde(other, skip_serializing)]
    Unknown,
}

pub fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

fn is_false(b: &bool) -> bool {
    !*b
}

// ----------------------------------------------------------------------------- request (out)

#[derive(Debug, Serialize)]
pub struct OutRequest {
    pub model: String,
    pub max_tokens: u64,
    pub messages: Vec<OutMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<OutSystem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<OutMetadata>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<OutToolEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_config: Option<Value>,
    /// Automatic prompt caching (the breakpoint goes on the last cacheable block).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<OutCacheControl>,
    /// Anthropic-only members (`mcp_servers`, `container`, ...) as the client sent them.
    #[serde(flatten)]
    pub anthropic_only: serde_json::Map<String, Value>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum OutSystem {
    Text(String),
    Blocks(Vec<OutBlock>),
}

#[derive(Debug, Serialize)]
pub struct OutMessage {
    pub role: &'static str,
    pub content: Vec<OutBlock>,
}

/// A request content block with its optional cache breakpoint.
#[derive(Debug, Serialize)]
pub struct OutBlock {
    #[serde(flatten)]
    pub block: OutContent,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<OutCacheControl>,
}

/// A block the gateway builds, or an Anthropic-only block sent back as the client wrote it
/// (without `cache_control`, which `OutBlock` writes).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum OutContent {
    Block(Block),
    Raw(serde_json::Map<String, Value>),
}

impl From<Block> for OutBlock {
    fn from(block: Block) -> Self {
        OutBlock { block: OutContent::Block(block), cache_control: None }
    }
}

/// `{"type": "ephemeral", "ttl": "1h"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutCacheControl {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct OutMetadata {
    pub user_id: String,
}

/// A tool definition: the gateway's, or a server tool as the client wrote it.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum OutToolEntry {
    Custom(OutTool),
    Raw(Value),
}

#[derive(Debug, Serialize)]
pub struct OutTool {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: Value,
    /// Strict tool use (grammar-constrained tool inputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<OutCacheControl>,
}

// ----------------------------------------------------------------------------- response (in/out)

/// A Message object (non-streamed response, and `message_start.message`).
#[derive(Debug, Default, Deserialize)]
pub struct InMessage {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub content: Vec<Block>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
    #[serde(default)]
    pub usage: Option<InUsage>,
}

/// `usage` of a Message or of a `message_delta` (every count optional: `message_delta`
/// omits what did not change; all counts are cumulative).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct InUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    /// The split of `cache_creation_input_tokens` by TTL.
    #[serde(default)]
    pub cache_creation: Option<CacheCreation>,
    #[serde(default)]
    pub output_tokens_details: Option<InOutputDetails>,
}

/// `usage.cache_creation`: cache writes by TTL (their sum is `cache_creation_input_tokens`).
#[derive(Debug, Default, Clone, Copy, Deserialize, Serialize)]
pub struct CacheCreation {
    #[serde(default)]
    pub ephemeral_5m_input_tokens: u64,
    #[serde(default)]
    pub ephemeral_1h_input_tokens: u64,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct InOutputDetails {
    #[serde(default)]
    pub thinking_tokens: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct OutMessageObject {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub role: &'static str,
    pub model: String,
    pub content: Vec<Block>,
    pub stop_reason: Option<&'static str>,
    pub stop_sequence: Option<String>,
    pub usage: OutUsage,
}

#[derive(Debug, Serialize, Default)]
pub struct OutUsage {
    pub input_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<CacheCreation>,
    pub output_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens_details: Option<OutOutputDetails>,
}

#[derive(Debug, Serialize)]
pub struct OutOutputDetails {
    pub thinking_tokens: u64,
}

// ----------------------------------------------------------------------------- errors

#[derive(Debug, Default, Deserialize)]
pub struct InErrorBody {
    #[serde(default)]
    pub error: Option<InErrorObject>,
    /// Some proxies answer `{"message": ...}` without the envelope.
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct InErrorObject {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

// ----------------------------------------------------------------------------- stream events (in)

/// One streamed event's `data`, dispatched on its `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InStreamEvent {
    MessageStart {
        message: InMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: Block,
    },
    ContentBlockDelta {
        index: u64,
        delta: InDelta,
    },
    ContentBlockStop {
        #[allow(dead_code)]
        index: u64,
    },
    MessageDelta {
        #[serde(default)]
        delta: InMessageDelta,
        #[serde(default)]
        usage: Option<InUsage>,
    },
    MessageStop,
    Ping,
    Error {
        #[serde(default)]
        error: InErrorObject,
    },
    /// Event types added to the API later are ignored (Anthropic's versioning policy).
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InDelta {
    TextDelta {
        #[serde(default)]
        text: String,
    },
    InputJsonDelta {
        #[serde(default)]
        partial_json: String,
    },
    ThinkingDelta {
        #[serde(default)]
        thinking: String,
    },
    SignatureDelta {
        #[serde(default)]
        signature: String,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Default, Deserialize)]
pub struct InMessageDelta {
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
}

/// `{"type": "error", "error": {"type", "message"}}`: an error body or stream event for a client.
#[derive(Debug, Serialize)]
pub struct OutErrorBody<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub error: OutErrorObject<'a>,
}

#[derive(Debug, Serialize)]
pub struct OutErrorObject<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: &'a str,
}
