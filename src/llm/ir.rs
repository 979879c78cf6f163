//! The canonical (intermediate) representation every dialect decodes into and encodes from:
//! client dialect -> IR -> provider dialect, and back. N decoders + N encoders give N x N
//! pairs. Where the client and provider speak the same dialect the engine skips the IR and
//! patches bytes instead.
//!
//! Rules for codecs:
//! - Nothing is dropped silently. A request feature the target cannot express is a
//!   `TranslateError::Unsupported` naming the field and the provider (-> 400). The few
//!   deliberate drops (hints the target already satisfies or cannot use: image `detail`
//!   `auto`/`high`, one participant name per role, opaque reasoning data for clients without
//!   a field for it) are documented on the field and in the README's provider matrix.
//! - Provider payloads are read tolerantly (unknown fields ignored); only what the IR
//!   carries is translated.
//! - Tool-call arguments stay JSON *text* (providers stream them as text fragments).

use crate::usage::Usage;
use serde_json::Value;

/// Which API the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientDialect {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`).
    OpenAi,
    /// Anthropic Messages (`POST /v1/messages`).
    Anthropic,
    /// OpenAI Responses (`POST /v1/responses`); passed through to OpenAI itself.
    Responses,
}

/// Which API the provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderDialect {
    OpenAi,
    Anthropic,
    Gemini,
    Bedrock,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// The model as the provider names it (set by the engine from the route).
    pub model: String,
    /// System / developer instructions, in order (OpenAI system+developer messages,
    /// Anthropic `system`, Gemini `systemInstruction`, Bedrock `system`).
    pub system: Vec<Part>,
    pub messages: Vec<Message>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub stop: Vec<String>,
    pub stream: bool,
    /// The client asked for usage on the stream (OpenAI `stream_options.include_usage`;
    /// always true for Anthropic clients, whose events carry usage).
    pub stream_usage: bool,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub response_format: Option<ResponseFormat>,
    pub reasoning: Option<Reasoning>,
    pub seed: Option<i64>,
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    /// OpenAI `n` (number of choices). Only 1 is translatable to other providers.
    pub n: Option<u64>,
    /// End-user id (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<String>,
}

impl ChatRequest {
    /// For providers without per-message names: the first message whose `name` differs from
    /// an earlier name of the same role, as (index, earlier name, its name). `None` when each
    /// role has at most one named participant: the role then already says who spoke, and
    /// encoders drop the names; otherwise they refuse the request, as dropping the names
    /// would merge several speakers into one.
    pub fn conflicting_name(&self) -> Option<(usize, &str, &str)> {
        let (mut user, mut assistant): (Option<&str>, Option<&str>) = (None, None);
        for (i, m) in self.messages.iter().enumerate() {
            let Some(name) = m.name.as_deref() else { continue };
            let seen = match m.role {
                Role::User => &mut user,
                Role::Assistant => &mut assistant,
            };
            match *seen {
                Some(earlier) if earlier != name => return Some((i, earlier, name)),
                Some(_) => {}
                None => *seen = Some(name),
            }
        }
        None
    }

    /// `TranslateError::Unsupported` for [`ChatRequest::conflicting_name`], with the
    /// provider's own path style for the message (`messages.2` or `messages[2]`).
    pub fn check_names(&self, provider: &'static str, path: impl Fn(usize) -> String) -> Result<(), TranslateError> {
        match self.conflicting_name() {
            None => Ok(()),
            Some((i, earlier, name)) => Err(TranslateError::Unsupported {
                field: format!("{}.name", path(i)),
                provider,
                detail: format!(
                    "messages have no participant names there, and this conversation has several speakers in one role ({earlier:?} and {name:?}): dropping the names would merge them"
                ),
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// One turn. Tool results are `Part::ToolResult` in a `User` message (Anthropic's model);
/// OpenAI `role: tool` messages decode to that and encode back.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Part>,
    /// Participant name (OpenAI `name` on user and assistant messages), sent to OpenAI-dialect
    /// providers. Anthropic, Gemini and Bedrock have no per-message name: their encoders drop
    /// it (see the README's provider matrix for why this is not a 400).
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Image(Image),
    ToolCall(ToolCall),
    ToolResult(ToolResult),
    /// Reasoning shown by the model (Anthropic `thinking`, OpenAI-compatible
    /// `reasoning_content`, Gemini `thought: true` parts). The signature must be sent back
    /// unchanged on the next turn where the provider requires it.
    Thinking {
        text: String,
        signature: Option<String>,
    },
    /// Anthropic `redacted_thinking` (opaque, round-tripped).
    RedactedThinking {
        data: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub source: ImageSource,
    /// OpenAI `image_url.detail` (`auto`, `low`, `high`): a resolution / cost hint, sent as is
    /// to OpenAI-dialect providers. Others apply [`Image::check_detail`] (Gemini maps it to
    /// `mediaResolution`).
    pub detail: Option<String>,
}

impl From<ImageSource> for Image {
    fn from(source: ImageSource) -> Self {
        Image { source, detail: None }
    }
}

impl Image {
    /// `detail` for a provider that has no per-image resolution setting: `auto` and `high`
    /// are accepted and dropped (such providers always read the image at the most detail
    /// they support, which is what `high` asks for); `low` and unknown values are
    /// `Unsupported`: `low` caps an image's cost (85 tokens at OpenAI), and silently sending
    /// a full-resolution image instead would multiply it.
    pub fn check_detail(&self, field: &str, provider: &'static str) -> Result<(), TranslateError> {
        match self.detail.as_deref() {
            None | Some("auto" | "high") => Ok(()),
            Some(other) => Err(TranslateError::Unsupported {
                field: format!("{field}.detail"),
                provider,
                detail: format!(
                    "image detail {other:?} cannot be expressed: the provider has no low-resolution image mode; resize the image before sending it, or omit detail"
                ),
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    Url(String),
    Base64 { media_type: String, data: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// JSON text of the arguments object.
    pub arguments: String,
    /// Gemini `thoughtSignature` attached to a function call part, round-tripped.
    pub signature: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    pub call_id: String,
    /// Gemini needs the function *name* with a result; OpenAI/Anthropic carry only the id.
    /// Decoders fill it from the matching earlier `ToolCall` when the wire lacks it.
    pub name: Option<String>,
    /// Text and image parts.
    pub content: Vec<Part>,
    pub is_error: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the parameters object.
    pub parameters: Value,
    /// Constrained decoding: the call's arguments must match the schema (OpenAI
    /// `function.strict`, Anthropic and Bedrock tool `strict`). `None` leaves the provider's
    /// default. Providers without it refuse `Some(true)`.
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    Auto,
    None,
    /// Must call some tool (OpenAI `required`, Anthropic `any`, Gemini `ANY`).
    Required,
    Tool(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { name: String, schema: Value, strict: Option<bool> },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reasoning {
    /// OpenAI `reasoning_effort`: minimal, low, medium, high.
    Effort(String),
    /// Anthropic `thinking.budget_tokens`, Gemini `thinkingConfig.thinkingBudget`.
    BudgetTokens(u64),
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Natural end or a stop sequence.
    Stop,
    /// Max tokens reached.
    Length,
    ToolCalls,
    ContentFilter,
    /// Anthropic `pause_turn` / `refusal` and anything else providers add.
    Other,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatResponse {
    pub id: String,
    pub model: String,
    /// Unix seconds (encoders use the gateway clock when the provider gives none).
    pub created: u64,
    /// Text, thinking and tool calls in the order the provider produced them.
    pub content: Vec<Part>,
    pub stop_reason: Option<StopReason>,
    /// The stop sequence that ended generation, when the provider says.
    pub stop_sequence: Option<String>,
    pub usage: Usage,
}

/// One step of a streamed response, provider-neutral. Block indexes are the IR's own,
/// counted from 0 in order of first appearance (encoders map them to their dialect).
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The response began (id and model as the provider reports them).
    Start {
        id: String,
        model: String,
    },
    TextDelta {
        text: String,
    },
    ThinkingDelta {
        text: String,
    },
    /// The signature that closes a thinking block.
    ThinkingSignature {
        signature: String,
    },
    /// A whole redacted (encrypted) thinking block: Anthropic `redacted_thinking.data`,
    /// Bedrock `reasoningContent.redactedContent` (base64, the wire string kept as is).
    /// Opaque, never split: decoders emit it once the block is complete. Encoders without a
    /// field for it (OpenAI) drop it, as they drop `ThinkingSignature` and `Part::RedactedThinking`.
    RedactedThinking {
        data: String,
    },
    /// A tool call begins; `index` counts tool calls in this response from 0.
    ToolCallStart {
        index: u32,
        id: String,
        name: String,
    },
    /// A fragment of a tool call's JSON arguments.
    ToolCallDelta {
        index: u32,
        arguments: String,
    },
    /// Usage so far. Counts present replace earlier ones (decoders convert incremental
    /// counts to cumulative ones).
    Usage(Usage),
    Stop {
        reason: StopReason,
        stop_sequence: Option<String>,
    },
    /// A provider error mid-stream.
    Error(ProviderError),
    /// The provider ended the stream normally.
    Done,
}

/// What kind of failure, mapped to each dialect's error type and HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    PermissionDenied,
    NotFound,
    RequestTooLarge,
    RateLimited,
    Overloaded,
    Server,
    Timeout,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::RequestTooLarge => 413,
            ErrorKind::RateLimited => 429,
            ErrorKind::Overloaded => 529,
            ErrorKind::Server => 500,
            ErrorKind::Timeout => 504,
        }
    }

    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            400 | 422 => ErrorKind::InvalidRequest,
            401 => ErrorKind::Authentication,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            413 => ErrorKind::RequestTooLarge,
            429 => ErrorKind::RateLimited,
            503 | 529 => ErrorKind::Overloaded,
            408 | 504 => ErrorKind::Timeout,
            _ => ErrorKind::Server,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProviderError {
    pub kind: ErrorKind,
    /// HTTP status to give the client (the provider's, or `kind.status()`).
    pub status: u16,
    pub message: String,
}

/// Why a request cannot be translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranslateError {
    /// The client's body is not a valid request of its own dialect.
    Invalid { field: String, message: String },
    /// Valid, but the target provider cannot express it.
    Unsupported { field: String, provider: &'static str, detail: String },
}

impl std::fmt::Display for TranslateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TranslateError::Invalid { field, message } => write!(f, "{field}: {message}"),
            TranslateError::Unsupported { field, provider, detail } => {
                write!(f, "{field} is not supported by provider {provider}: {detail}")
            }
        }
    }
}

impl std::error::Error for TranslateError {}
