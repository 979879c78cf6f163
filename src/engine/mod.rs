//! The gateway engine: decisions for one plugin (`Gateway`) and one request (`Exchange`),
//! returned as data for the proxy-wasm shell to apply.

mod exchange;
mod reply;

pub use exchange::{BodyAction, Exchange, Record};
pub use reply::{GatewayError, LocalReply};

use crate::config::{Config, ConfigError, UpstreamAuth};

/// A header change, applied by the shell in the request-headers callback (the only place
/// the host allows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOp {
    Set(String, String),
    Remove(String),
}

/// Client credentials removed from every request: the provider gets only ours.
const CLIENT_CREDENTIAL_HEADERS: [&str; 4] = ["authorization", "x-api-key", "api-key", "x-goog-api-key"];

/// Which API the client is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Chat,
    Embeddings,
}

impl Operation {
    /// OpenTelemetry `gen_ai.operation.name`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
            Operation::Embeddings => "embeddings",
        }
    }

    fn upstream_suffix(self) -> &'static str {
        match self {
            Operation::Chat => "/chat/completions",
            Operation::Embeddings => "/embeddings",
        }
    }
}

/// What the request-headers callback knows.
#[derive(Debug, Clone, Default)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// `model` from the body, extracted by Envoy's json_to_metadata filter.
    pub body_model: Option<&'a str>,
    /// json_to_metadata found a body that is not JSON.
    pub body_invalid: bool,
    /// The model header (`Config::model_header`), for clients that name the model there.
    pub header_model: Option<&'a str>,
}

/// The request-headers verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestAction {
    /// Apply these header changes and let the request (and its body) through.
    Forward(Vec<HeaderOp>),
    /// Answer locally; nothing is sent upstream.
    Reply(LocalReply),
}

/// Per-plugin state built once from the configuration.
#[derive(Debug)]
pub struct Gateway {
    config: Config,
}

impl Gateway {
    pub fn new(config: Config) -> Self {
        Gateway { config }
    }

    pub fn from_json(json: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Config::parse(json, env).map(Gateway::new)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Starts an exchange. `roll` is a random number for weighted targets; `now_ms` the
    /// host clock.
    pub fn on_request_headers(&self, head: &RequestHead<'_>, roll: u64, now_ms: u64) -> (Exchange, RequestAction) {
        let mut exchange = Exchange::new(now_ms, self.config.limits);
        let action = match self.route(head, roll, &mut exchange) {
            Ok(ops) => RequestAction::Forward(ops),
            Err(error) => RequestAction::Reply(exchange.reject(&error)),
        };
        (exchange, action)
    }

    fn route(&self, head: &RequestHead<'_>, roll: u64, exchange: &mut Exchange) -> Result<Vec<HeaderOp>, GatewayError> {
        let (path, query) = match head.path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (head.path, None),
        };
        let operation = match (head.method, path) {
            ("POST", "/v1/chat/completions") => Operation::Chat,
            ("POST", "/v1/embeddings") => Operation::Embeddings,
            _ => return Err(GatewayError::UnknownEndpoint { method: head.method.to_string(), path: path.to_string() }),
        };
        exchange.operation = Some(operation);
        let requested = match (head.body_model, head.header_model) {
            (Some(model), _) | (None, Some(model)) => model,
            (None, None) if head.body_invalid => {
                return Err(GatewayError::InvalidJson {
                    detail: "the body is not a JSON object sent with Content-Type: application/json".to_string(),
                })
            }
            (None, None) => return Err(GatewayError::MissingModel),
        };
        exchange.requested_model = Some(requested.to_string());
        let route =
            self.config.lookup(requested).ok_or_else(|| GatewayError::UnknownModel { model: requested.to_string() })?;
        let target = route.pick(roll).ok_or_else(|| GatewayError::UnknownModel { model: requested.to_string() })?;
        let provider = self
            .config
            .provider(target.provider)
            .ok_or_else(|| GatewayError::UnknownModel { model: requested.to_string() })?;
        exchange.set_route(&route.name, &provider.name, &target.model);

        let mut upstream_path = format!("{}{}", provider.base_path, operation.upstream_suffix());
        if let Some(query) = query {
            upstream_path.push('?');
            upstream_path.push_str(query);
        }
        let mut ops = vec![
            HeaderOp::Set(self.config.cluster_header.clone(), provider.cluster.clone()),
            HeaderOp::Set(":path".to_string(), upstream_path),
            HeaderOp::Remove(self.config.model_header.clone()),
            // The body is patched, so its length changes.
            HeaderOp::Remove("content-length".to_string()),
        ];
        ops.extend(CLIENT_CREDENTIAL_HEADERS.iter().map(|h| HeaderOp::Remove(h.to_string())));
        if let UpstreamAuth::Header { name, value } = &provider.auth {
            ops.push(HeaderOp::Set(name.clone(), value.expose().to_string()));
        }
        if let Some(authority) = &provider.authority {
            ops.push(HeaderOp::Set(":authority".to_string(), authority.clone()));
        }
        Ok(ops)
    }
}
