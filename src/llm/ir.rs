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
//!   a field for it, cache breakpoints for providers that cache by themselves, OpenAI's
//!   `prompt_cache_key` for the others, a document's name for Gemini, Anthropic serving
//!   metadata for the others) are documented on the field and in the README's provider matrix.
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
    /// OpenAI `n` (number of choices): sent to OpenAI-dialect providers as `n` and to Gemini as
    /// `candidateCount`; Anthropic and Bedrock refuse more than 1.
    pub n: Option<u64>,
    /// End-user id (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<String>,
    /// Prompt-caching hints that are not a place in the content (those are
    /// [`Part::CachePoint`]): see [`CacheHints`].
    pub cache: CacheHints,
    /// What only Anthropic's Messages API has, kept as the client sent it: see [`AnthropicOnly`].
    pub anthropic_only: AnthropicOnly,
}

/// Anthropic-only request members (server tools such as web search, `mcp_servers`,
/// `container`...), kept as the client sent them. The Anthropic encoder sends them back, and
/// Anthropic answers them itself (the answer then passes through to the Anthropic client);
/// every other encoder refuses them with [`ChatRequest::check_anthropic_only`]. Their
/// content blocks in the history are [`Part::AnthropicBlock`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AnthropicOnly {
    /// Top-level members: `mcp_servers` and `container` (refused elsewhere), and the serving
    /// metadata other providers ignore (`service_tier`, `context_management`,
    /// `inference_geo`, `speed`, `diagnostics`).
    pub members: Vec<(String, Value)>,
    /// Server and Anthropic-defined tools (`tools[i].type` other than `custom`), with their
    /// index in the client's `tools` list.
    pub tools: Vec<(usize, Value)>,
}

/// Top-level Anthropic members other providers cannot do without (they change what the model
/// can do), as opposed to serving metadata they ignore.
pub const ANTHROPIC_ONLY_REFUSED: &[&str] = &["mcp_servers", "container"];

impl ChatRequest {
    /// `Unsupported` naming, in the Anthropic client's own paths, the first Anthropic-only
    /// feature of the request, for a provider that does not speak Anthropic's dialect.
    pub fn check_anthropic_only(&self, provider: &'static str) -> Result<(), TranslateError> {
        let refuse = |field: String, what: &str| {
            Err(TranslateError::Unsupported {
                field,
                provider,
                detail: format!(
                    "{what} only exists in Anthropic's Messages API; route this request to an Anthropic model"
                ),
            })
        };
        if let Some((name, _)) =
            self.anthropic_only.members.iter().find(|(n, _)| ANTHROPIC_ONLY_REFUSED.contains(&n.as_str()))
        {
            return refuse(name.clone(), &format!("`{name}`"));
        }
        if let Some((i, tool)) = self.anthropic_only.tools.first() {
            let kind = tool.get("type").and_then(Value::as_str).unwrap_or_default();
            return refuse(format!("tools.{i}.type"), &format!("the server tool `{kind}`"));
        }
        for (i, m) in self.messages.iter().enumerate() {
            for (j, p) in m.content.iter().enumerate() {
                let nested = match p {
                    Part::ToolResult(r) => r.content.iter().enumerate().map(|(k, q)| (Some(k), q)).collect(),
                    _ => vec![(None, p)],
                };
                for (k, q) in nested {
                    if let Part::AnthropicBlock(block) = q {
                        let kind = block.get("type").and_then(Value::as_str).unwrap_or_default();
                        let at = k.map_or_else(String::new, |k| format!(".content.{k}"));
                        return refuse(format!("messages.{i}.content.{j}{at}.type"), &format!("a `{kind}` block"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Prompt caching, as the client asked for it. Breakpoints inside `system` and message content
/// are [`Part::CachePoint`] parts right after the part they close, so whatever the prompt layer
/// adds before or after them (templates, decorators) leaves them on the prefix they were on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CacheHints {
    /// Anthropic's top-level `cache_control` (automatic caching: the provider puts the
    /// breakpoint on the last cacheable block).
    pub automatic: Option<CacheControl>,
    /// Breakpoints after tool definitions: (index in `ChatRequest::tools`, control), from
    /// Anthropic `tools[i].cache_control`.
    pub tools: Vec<(usize, CacheControl)>,
    /// OpenAI `prompt_cache_key` (a routing hint for OpenAI's automatic cache).
    pub key: Option<String>,
    /// OpenAI `prompt_cache_retention` (`in_memory`, `24h`).
    pub retention: Option<String>,
}

/// One cache breakpoint: the prefix up to it may be cached (Anthropic `cache_control`
/// `{type: "ephemeral", ttl}`, Bedrock `cachePoint {type: "default", ttl}`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CacheControl {
    /// `5m` or `1h`; `None` is the provider's default (5 minutes on both).
    pub ttl: Option<String>,
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
    /// A document input (PDF or text) in a user message: Anthropic `document` blocks, OpenAI
    /// `file` content parts, Gemini `inlineData`, Bedrock `document` blocks.
    Document(Document),
    /// An Anthropic-only content block (server tool use and results, MCP tool use and results,
    /// search results, container uploads), as the client sent it (without its
    /// `cache_control`, which is a [`Part::CachePoint`] after it). See [`AnthropicOnly`].
    AnthropicBlock(Value),
    /// A prompt-cache breakpoint closing the part before it (Anthropic `cache_control` on that
    /// block, Bedrock a `cachePoint` block after it). Providers that cache automatically
    /// (OpenAI, Gemini) skip it; see the README's provider matrix.
    CachePoint(CacheControl),
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
pub struct Document {
    pub source: DocumentSource,
    /// Anthropic `title`, OpenAI `file.filename`, Bedrock `name`.
    pub name: Option<String>,
    /// Anthropic `context` (text about the document the model reads but cannot cite); only
    /// Anthropic has the field, other encoders refuse it.
    pub context: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DocumentSource {
    /// Bytes: `application/pdf`, or another media type where the provider takes it
    /// (`text/plain`, `text/csv`, Office formats...).
    Base64 { media_type: String, data: String },
    /// Plain text (Anthropic's `text` document source).
    Text(String),
    /// A document by URL (Anthropic's `url` source, PDFs).
    Url(String),
}

impl Document {
    /// `TranslateError::Unsupported` for a `context` the provider has no field for.
    pub fn check_context(&self, field: &str, provider: &'static str) -> Result<(), TranslateError> {
        match self.context {
            None => Ok(()),
            Some(_) => Err(TranslateError::Unsupported {
                field: format!("{field}.context"),
                provider,
                detail: "documents have no separate context there; put the context in a text block".into(),
            }),
        }
    }
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
    /// The choices after the first (OpenAI `n`, Gemini `candidateCount`), in order; the first
    /// is `content` / `stop_reason` above. `usage` covers all of them.
    pub more_choices: Vec<Choice>,
}

/// One further choice of a response with several.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Choice {
    pub content: Vec<Part>,
    pub stop_reason: Option<StopReason>,
    pub stop_sequence: Option<String>,
}

/// One step of a streamed response, provider-neutral. Block indexes are the IR's own,
/// counted from 0 in order of first appearance (encoders map them to their dialect).
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The events that follow belong to choice `index` (0 until this comes). Decoders emit it
    /// only for responses with several choices (OpenAI `n`, Gemini `candidateCount`); each
    /// choice has its own `Stop` and counts its tool calls from 0. Only OpenAI clients can ask
    /// for several choices.
    Choice {
        index: u32,
    },
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

impl StreamEvent {
    /// Events of the whole response rather than of one choice: encoders for dialects with a
    /// single choice (Anthropic, Responses) write these whatever choice they follow.
    pub fn spans_choices(&self) -> bool {
        matches!(self, StreamEvent::Start { .. } | StreamEvent::Usage(_) | StreamEvent::Error(_) | StreamEvent::Done)
    }
}

/// For encoders of dialects with one choice (Anthropic, Responses: their clients cannot ask
/// for more): follows [`StreamEvent::Choice`] and admits the events of choice 0 and those of
/// the whole response; the content of any other choice a provider sends unasked is not written.
#[derive(Debug, Default, Clone, Copy)]
pub struct FirstChoice {
    current: u32,
}

impl FirstChoice {
    pub fn admits(&mut self, event: &StreamEvent) -> bool {
        if let StreamEvent::Choice { index } = event {
            self.current = *index;
            return false;
        }
        self.current == 0 || event.spans_choices()
    }
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

/// Characters of a provider's plain-text error body quoted in the message.
const QUOTED_BODY_CHARS: usize = 200;

impl ProviderError {
    /// The error for a non-2xx body that is not the provider's error shape (an HTML page from
    /// a proxy, plain text, an empty body): one wording for every provider dialect. Plain
    /// text is quoted (control characters as spaces, at most 200 characters); HTML never.
    pub fn unreadable_body(kind: ErrorKind, status: u16, body: &[u8]) -> ProviderError {
        ProviderError { kind, status, message: describe_error_body(status, body) }
    }
}

/// `provider returned HTTP <status> ...`: with an empty body, with a text/html body, or the
/// body's text quoted (see [`ProviderError::unreadable_body`]).
pub fn describe_error_body(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return format!("provider returned HTTP {status} with an empty body");
    }
    if trimmed.starts_with('<') {
        return format!("provider returned HTTP {status} with a text/html body");
    }
    let printable = || trimmed.chars().map(|c| if c.is_control() { ' ' } else { c });
    let quoted: String = printable().take(QUOTED_BODY_CHARS).collect();
    let more = if printable().nth(QUOTED_BODY_CHARS).is_some() { "..." } else { "" };
    format!("provider returned HTTP {status}: {quoted}{more}")
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
