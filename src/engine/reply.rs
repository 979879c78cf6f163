//! Gateway errors and the local replies that carry them, in the client's dialect.

use crate::llm::openai;

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
    UnknownEndpoint { method: String, path: String },
    MissingModel,
    InvalidJson { detail: String },
    UnknownModel { model: String },
    BodyTooLarge { limit: usize },
}

impl GatewayError {
    pub fn status(&self) -> u16 {
        match self {
            GatewayError::UnknownEndpoint { .. } | GatewayError::UnknownModel { .. } => 404,
            GatewayError::MissingModel | GatewayError::InvalidJson { .. } => 400,
            GatewayError::BodyTooLarge { .. } => 413,
        }
    }

    /// The error in OpenAI's shape; messages follow OpenAI's own wording where one exists.
    pub fn to_reply(&self) -> LocalReply {
        let body = match self {
            GatewayError::UnknownEndpoint { method, path } => openai::error_body(
                &format!("Invalid URL ({method} {path})"),
                "invalid_request_error",
                None,
                Some("unknown_url"),
            ),
            GatewayError::MissingModel => {
                openai::error_body("you must provide a model parameter", "invalid_request_error", Some("model"), None)
            }
            GatewayError::InvalidJson { detail } => openai::error_body(
                &format!("We could not parse the JSON body of your request: {detail}"),
                "invalid_request_error",
                None,
                None,
            ),
            GatewayError::UnknownModel { model } => openai::error_body(
                &format!("The model `{model}` does not exist or you do not have access to it."),
                "invalid_request_error",
                Some("model"),
                Some("model_not_found"),
            ),
            GatewayError::BodyTooLarge { limit } => openai::error_body(
                &format!("Request body exceeds the gateway's limit of {limit} bytes"),
                "invalid_request_error",
                None,
                Some("request_too_large"),
            ),
        };
        json_reply(self.status(), body)
    }
}

pub fn json_reply(status: u16, body: Vec<u8>) -> LocalReply {
    LocalReply { status, headers: vec![("content-type".to_string(), "application/json".to_string())], body }
}
