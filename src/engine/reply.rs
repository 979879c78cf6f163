//! Gateway errors and the local replies that carry them, in the client's dialect.

use crate::auth;
use crate::llm::ir::{ClientDialect, TranslateError};
use crate::llm::openai_chat::passthrough as openai;
use crate::prompt::PromptError;

/// An answer the gateway gives itself, without contacting a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Everything the gateway itself can refuse a request for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    UnknownEndpoint {
        method: String,
        path: String,
    },
    MissingModel,
    /// A POST that ended with its headers: there is no request to admit.
    MissingBody,
    InvalidJson {
        detail: String,
    },
    /// An object of the body holds a key twice (`path` names the object, empty at the top).
    DuplicateKey {
        path: String,
        key: String,
    },
    UnknownModel {
        model: String,
    },
    BodyTooLarge {
        limit: usize,
    },
    /// Embeddings for a provider that only has its own chat API (the Responses API is
    /// translated for those).
    UnsupportedOperation {
        operation: &'static str,
        provider: String,
    },
    /// The request cannot be translated to the provider's dialect.
    Translate(TranslateError),
    /// The `stream` flag was not known when the upstream path was chosen.
    StreamNotRoutable,
    /// Missing or bad credentials (401).
    Unauthorized {
        message: String,
        /// `invalid_api_key`, `invalid_token` (JWT), `missing_credentials`...
        code: &'static str,
    },
    /// The consumer may not use this model (403).
    Forbidden {
        message: String,
    },
    /// A template, variable or guard refused the request (400; never echoes matched text).
    Prompt(PromptError),
    /// The same for a prompt API call, whose variables are the body's top-level fields.
    PromptApi(PromptError),
    /// A budget is spent (429), with `retry-after` and `x-ratelimit-*` headers.
    OverBudget {
        message: String,
        headers: Vec<(String, String)>,
    },
    /// The consumer's fleet-wide budget (on the rate-limit service) is spent (429).
    FleetOverBudget {
        consumer: String,
    },
    /// The rate-limit service holding fleet-wide budgets did not answer and
    /// `quota.fleet.failure_mode` is `deny` (503).
    FleetUnavailable,
}

impl GatewayError {
    pub fn status(&self) -> u16 {
        match self {
            GatewayError::UnknownEndpoint { .. } | GatewayError::UnknownModel { .. } => 404,
            GatewayError::BodyTooLarge { .. } => 413,
            GatewayError::Unauthorized { .. } => auth::UNAUTHORIZED,
            GatewayError::Forbidden { .. } => auth::FORBIDDEN,
            GatewayError::OverBudget { .. } | GatewayError::FleetOverBudget { .. } => 429,
            GatewayError::FleetUnavailable => 503,
            _ => 400,
        }
    }

    /// Why the gateway refused, for the rejections metric: a fixed set of names.
    pub fn reason(&self) -> &'static str {
        match self {
            GatewayError::UnknownEndpoint { .. } => "unknown_endpoint",
            GatewayError::MissingModel => "missing_model",
            GatewayError::MissingBody => "missing_body",
            GatewayError::InvalidJson { .. } => "invalid_json",
            GatewayError::DuplicateKey { .. } => "duplicate_key",
            GatewayError::UnknownModel { .. } => "unknown_model",
            GatewayError::BodyTooLarge { .. } => "body_too_large",
            GatewayError::UnsupportedOperation { .. } => "unsupported_operation",
            GatewayError::Translate(TranslateError::Invalid { .. }) => "invalid_request",
            GatewayError::Translate(TranslateError::Unsupported { .. }) => "unsupported_parameter",
            GatewayError::StreamNotRoutable => "stream_not_routable",
            GatewayError::Unauthorized { .. } => "unauthorized",
            GatewayError::Forbidden { .. } => "forbidden",
            GatewayError::Prompt(e) | GatewayError::PromptApi(e) => e.code(),
            GatewayError::OverBudget { .. } => "over_budget",
            GatewayError::FleetOverBudget { .. } => "fleet_over_budget",
            GatewayError::FleetUnavailable => "fleet_unavailable",
        }
    }

    /// The guard rule that blocked the prompt, if that is why (a configured or reserved name).
    pub fn guard_rule(&self) -> Option<&str> {
        match self {
            GatewayError::Prompt(PromptError::Guard(v)) | GatewayError::PromptApi(PromptError::Guard(v)) => {
                Some(v.rule.as_str())
            }
            _ => None,
        }
    }

    /// (message, param, code): messages follow OpenAI's own wording where one exists.
    fn parts(&self) -> (String, Option<String>, Option<&'static str>) {
        match self {
            GatewayError::UnknownEndpoint { method, path } => {
                (format!("Invalid URL ({method} {path})"), None, Some("unknown_url"))
            }
            // OpenAI answers both with `"param": null`.
            GatewayError::MissingModel => ("you must provide a model parameter".to_string(), None, None),
            GatewayError::MissingBody => (
                "the request has no body: send the request as a JSON object".to_string(),
                None,
                Some("missing_body"),
            ),
            GatewayError::InvalidJson { detail } => {
                (format!("We could not parse the JSON body of your request: {detail}"), None, None)
            }
            GatewayError::DuplicateKey { path, key } => {
                let param = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                let at = if path.is_empty() { "at the top level".to_string() } else { format!("in `{path}`") };
                (
                    format!(
                        "Duplicate key '{key}' {at} of the request body: parsers disagree on which value wins, \
                         so the gateway refuses it. Send each key once."
                    ),
                    Some(param),
                    Some("duplicate_key"),
                )
            }
            GatewayError::UnknownModel { model } => (
                format!("The model `{model}` does not exist or you do not have access to it."),
                None,
                Some("model_not_found"),
            ),
            GatewayError::BodyTooLarge { limit } => {
                (format!("Request body exceeds the gateway's limit of {limit} bytes"), None, Some("request_too_large"))
            }
            GatewayError::UnsupportedOperation { operation, provider } => (
                format!("provider {provider:?} does not serve the {operation} API; route this model to an OpenAI-compatible, Gemini or Bedrock (Titan, Cohere) embeddings model"),
                Some("model".to_string()),
                Some("unsupported_operation"),
            ),
            GatewayError::Translate(TranslateError::Invalid { field, message }) => {
                (format!("{field}: {message}"), Some(field.clone()), None)
            }
            GatewayError::Translate(TranslateError::Unsupported { field, provider, detail }) => (
                format!("{field} is not supported by provider {provider}: {detail}"),
                Some(field.clone()),
                Some("unsupported_parameter"),
            ),
            GatewayError::Unauthorized { message, code } => (message.clone(), None, Some(*code)),
            GatewayError::Prompt(e) => (e.to_string(), e.param(), Some(e.code())),
            GatewayError::PromptApi(e) => (e.to_string(), e.api_param(), Some(e.code())),
            GatewayError::Forbidden { message } => (message.clone(), None, Some(auth::Forbidden::CODE)),
            GatewayError::OverBudget { message, .. } => (message.clone(), None, Some("rate_limit_exceeded")),
            GatewayError::FleetOverBudget { consumer } => (
                format!("The fleet-wide token budget of consumer {consumer:?} is spent for this window."),
                None,
                Some("rate_limit_exceeded"),
            ),
            GatewayError::FleetUnavailable => (
                "The gateway cannot check the fleet-wide budget right now; retry shortly.".to_string(),
                None,
                Some("budget_service_unavailable"),
            ),
            GatewayError::StreamNotRoutable => (
                "the `stream` flag was not available when the request was routed; add the json_to_metadata rule \
                 for `stream` to the Envoy config"
                    .to_string(),
                Some("stream".to_string()),
                None,
            ),
        }
    }

    /// The error in the client's dialect.
    pub fn to_reply(&self, client: ClientDialect) -> LocalReply {
        let status = self.status();
        let (message, param, code) = self.parts();
        // Messages never carry a credential or a guard's matched text (see `parts`).
        log::debug!("refused with {status} ({}): {message}", self.reason());
        // OpenAI's own types: its 401 and 403 are `invalid_request_error` (with a code).
        let kind = match status {
            429 => "rate_limit_error",
            500..=599 => "server_error",
            _ => "invalid_request_error",
        };
        let body = match client {
            ClientDialect::OpenAi | ClientDialect::Responses => {
                openai::error_body(&message, kind, param.as_deref(), code)
            }
            ClientDialect::Anthropic => anthropic_error_body(status, &message),
        };
        let mut headers = json_headers();
        match self {
            GatewayError::OverBudget { headers: extra, .. } => headers.extend(extra.iter().cloned()),
            GatewayError::Unauthorized { .. } => {
                headers.push(("www-authenticate".to_string(), auth::WWW_AUTHENTICATE.to_string()))
            }
            _ => {}
        }
        LocalReply { status, headers, body }
    }
}

pub(super) fn json_headers() -> Vec<(String, String)> {
    vec![("content-type".to_string(), "application/json".to_string())]
}

/// `{"type":"error","error":{"type":...,"message":...}}` with Anthropic's type per status.
pub fn anthropic_error_body(status: u16, message: &str) -> Vec<u8> {
    let kind = match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    };
    serde_json::json!({"type": "error", "error": {"type": kind, "message": message}}).to_string().into_bytes()
}
