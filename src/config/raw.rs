//! The plugin configuration exactly as written in JSON (v1). Strict: unknown fields are errors.
//! `super::validate` turns it into the typed `Config` the engine uses.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub providers: BTreeMap<String, RawProvider>,
    pub models: BTreeMap<String, RawModel>,
    /// Request header the Envoy route reads with `cluster_header`.
    #[serde(default)]
    pub cluster_header: Option<String>,
    /// Request header a client may use to name the model instead of the body.
    #[serde(default)]
    pub model_header: Option<String>,
    #[serde(default)]
    pub limits: Option<RawLimits>,
    /// Who may call (see `auth::config`).
    #[serde(default)]
    pub consumers: BTreeMap<String, crate::auth::config::RawConsumer>,
    /// How consumers are identified (API keys, JWT, a trusted header or metadata).
    #[serde(default)]
    pub auth: Option<crate::auth::config::RawAuth>,
    /// Budgets (see `quota::config`).
    #[serde(default)]
    pub plans: BTreeMap<String, crate::quota::config::RawPlan>,
    #[serde(default)]
    pub quota: Option<crate::quota::config::RawQuota>,
    /// Price overrides, USD per million tokens.
    #[serde(default)]
    pub prices: Option<BTreeMap<String, crate::quota::money::RawPrice>>,
    /// Templates, decorators, guards and prompt APIs (typed by, and validated in,
    /// `prompt::config`).
    #[serde(default)]
    pub prompts: Option<crate::prompt::config::RawPromptConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// One of `provider::KINDS`.
    pub kind: String,
    /// Envoy cluster the request is routed to.
    pub cluster: String,
    /// Value for `:authority` upstream (e.g. `api.openai.com`); the client's is kept when absent.
    #[serde(default)]
    pub authority: Option<String>,
    /// Path prefix of the provider's API; each kind has a default.
    #[serde(default)]
    pub base_path: Option<String>,
    pub auth: RawAuth,
    /// Azure OpenAI `api-version` query parameter (required for `azure-openai`).
    #[serde(default)]
    pub api_version: Option<String>,
    /// AWS region (required for `bedrock`).
    #[serde(default)]
    pub region: Option<String>,
    /// `anthropic-version` header for `anthropic` (default `2023-06-01`).
    #[serde(default)]
    pub anthropic_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RawAuth {
    /// `Authorization: Bearer <secret>`. `pool`: more keys (variable names), spread with
    /// `env` across requests.
    Bearer {
        env: String,
        #[serde(default)]
        pool: Vec<String>,
    },
    /// `<name>: <secret>` (e.g. `api-key` for Azure).
    Header {
        name: String,
        env: String,
        #[serde(default)]
        pool: Vec<String>,
    },
    /// The provider's own API-key header: `Authorization: Bearer` for the OpenAI family,
    /// `api-key` for Azure, `x-api-key` for Anthropic, `x-goog-api-key` for Gemini.
    ApiKey {
        env: String,
        #[serde(default)]
        pool: Vec<String>,
    },
    /// AWS Signature Version 4 (Bedrock), with credentials from the VM environment.
    AwsSigv4 {
        access_key_env: String,
        secret_key_env: String,
        #[serde(default)]
        session_token_env: Option<String>,
    },
    /// No credential upstream (local Ollama, vLLM).
    None,
}

/// Either one target (`provider` + `model`) or a weighted split (`targets`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub targets: Option<Vec<RawTarget>>,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `targets` form an ordered fallback chain that Envoy's retries walk (see `Fallback`).
    #[serde(default)]
    pub fallback: Option<RawFallback>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFallback {
    /// The Envoy cluster (an aggregate of the targets' clusters) the chain is routed to.
    pub cluster: String,
    /// Provider statuses that move the request to the next target.
    #[serde(default)]
    pub on_status: Option<Vec<u16>>,
    /// Provider error codes that move the request to the next target (a hop the module
    /// dispatches itself once the error's body is known).
    #[serde(default)]
    pub on_error: Option<Vec<String>>,
    #[serde(default)]
    pub on_error_timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub provider: String,
    pub model: String,
    /// Required in a weighted split; a fallback chain is ordered, not weighted.
    #[serde(default)]
    pub weight: Option<u32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    #[serde(default)]
    pub max_request_body_bytes: Option<usize>,
    #[serde(default)]
    pub max_response_body_bytes: Option<usize>,
    #[serde(default)]
    pub max_sse_event_bytes: Option<usize>,
}
