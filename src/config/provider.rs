//! Provider kinds: the closed set of upstream APIs, with each kind's dialect and defaults.
//! Adding a provider is adding a variant here; the compiler then lists every place to teach.

use crate::llm::ir::ProviderDialect;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    /// Any server speaking OpenAI Chat Completions; `base_path` and `authority` as configured.
    OpenAiCompatible,
    AzureOpenAi,
    Anthropic,
    Gemini,
    Bedrock,
    // OpenAI-compatible presets: the same dialect with the provider's own path prefix.
    Mistral,
    Groq,
    DeepSeek,
    Together,
    Fireworks,
    OpenRouter,
    Xai,
    Ollama,
    Vllm,
}

/// Every kind with its config name (`"kind": "..."`).
pub const KINDS: [(&str, ProviderKind); 15] = [
    ("openai", ProviderKind::OpenAi),
    ("openai-compatible", ProviderKind::OpenAiCompatible),
    ("azure-openai", ProviderKind::AzureOpenAi),
    ("anthropic", ProviderKind::Anthropic),
    ("gemini", ProviderKind::Gemini),
    ("bedrock", ProviderKind::Bedrock),
    ("mistral", ProviderKind::Mistral),
    ("groq", ProviderKind::Groq),
    ("deepseek", ProviderKind::DeepSeek),
    ("together", ProviderKind::Together),
    ("fireworks", ProviderKind::Fireworks),
    ("openrouter", ProviderKind::OpenRouter),
    ("xai", ProviderKind::Xai),
    ("ollama", ProviderKind::Ollama),
    ("vllm", ProviderKind::Vllm),
];

impl ProviderKind {
    pub fn parse(name: &str) -> Option<ProviderKind> {
        KINDS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }

    pub fn as_str(self) -> &'static str {
        KINDS.iter().find(|(_, k)| *k == self).map_or("unknown", |(n, _)| n)
    }

    pub fn dialect(self) -> ProviderDialect {
        match self {
            ProviderKind::Anthropic => ProviderDialect::Anthropic,
            ProviderKind::Gemini => ProviderDialect::Gemini,
            ProviderKind::Bedrock => ProviderDialect::Bedrock,
            _ => ProviderDialect::OpenAi,
        }
    }

    /// Path prefix of the provider's API (before `/chat/completions`, `/messages`, ...).
    /// The presets' prefixes are the ones each provider documents for its OpenAI-compatible API.
    pub fn default_base_path(self) -> &'static str {
        match self {
            ProviderKind::AzureOpenAi => "/openai",
            ProviderKind::Gemini => "/v1beta",
            ProviderKind::Bedrock | ProviderKind::DeepSeek => "",
            ProviderKind::Groq => "/openai/v1",
            ProviderKind::Fireworks => "/inference/v1",
            ProviderKind::OpenRouter => "/api/v1",
            _ => "/v1",
        }
    }

    /// The request member that caps output tokens in this provider's chat API (OpenAI
    /// dialect): OpenAI, Azure, Groq and xAI read `max_completion_tokens` (OpenAI's reasoning
    /// models refuse `max_tokens`); Mistral, DeepSeek, Together, Fireworks and OpenRouter
    /// document only `max_tokens`, and a generic OpenAI-compatible server, Ollama or vLLM read
    /// `max_tokens` in every version. Other dialects have their own field (`max_tokens`).
    pub fn max_tokens_field(self) -> &'static str {
        match self {
            ProviderKind::OpenAi | ProviderKind::AzureOpenAi | ProviderKind::Groq | ProviderKind::Xai => {
                "max_completion_tokens"
            }
            _ => "max_tokens",
        }
    }

    /// The header carrying an API key in this provider's own convention, and the value prefix.
    pub fn api_key_header(self) -> Option<(&'static str, &'static str)> {
        // An Option so a future kind without API keys is a config error, not a guess.
        match self {
            ProviderKind::AzureOpenAi => Some(("api-key", "")),
            ProviderKind::Anthropic => Some(("x-api-key", "")),
            ProviderKind::Gemini => Some(("x-goog-api-key", "")),
            // Bedrock API keys (AWS_BEARER_TOKEN_BEDROCK) are bearer tokens.
            _ => Some(("authorization", "Bearer ")),
        }
    }
}
