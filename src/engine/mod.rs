//! The gateway engine: decisions for one plugin (`Gateway`) and one request (`Exchange`),
//! returned as data for the proxy-wasm shell to apply.

mod exchange;
mod meter;
mod reply;
mod response;
mod upstream;

pub use exchange::{BodyAction, Exchange, Record, ResponseOrigin};
pub use reply::{GatewayError, LocalReply};

use crate::auth::{AuthOutcome, Consumer, Credentials, KeyHeader, TrustedConfig};
use crate::config::{Config, ConfigError};
use crate::llm::ir::{ClientDialect, ProviderDialect};
use crate::quota::{Policy, Store};

/// A header change. Request-header changes are applied in the request-headers callback
/// (the only place the host allows it); response-header changes in the response-headers one.
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
    /// OpenAI Chat Completions or Anthropic Messages (see the client dialect).
    Chat,
    Embeddings,
    /// OpenAI Responses API (passed through to OpenAI-dialect providers).
    Responses,
}

impl Operation {
    /// OpenTelemetry `gen_ai.operation.name`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
            Operation::Embeddings => "embeddings",
            Operation::Responses => "responses",
        }
    }
}

/// The endpoints the gateway serves: method and path -> operation and client dialect.
fn endpoint(method: &str, path: &str) -> Option<(Operation, ClientDialect)> {
    match (method, path) {
        ("POST", "/v1/chat/completions") => Some((Operation::Chat, ClientDialect::OpenAi)),
        ("POST", "/v1/messages") => Some((Operation::Chat, ClientDialect::Anthropic)),
        ("POST", "/v1/embeddings") => Some((Operation::Embeddings, ClientDialect::OpenAi)),
        ("POST", "/v1/responses") => Some((Operation::Responses, ClientDialect::OpenAi)),
        _ => None,
    }
}

/// What the request-headers callback knows.
#[derive(Debug, Clone, Default)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// `model` from the body, extracted by Envoy's json_to_metadata filter.
    pub body_model: Option<&'a str>,
    /// `stream` from the body (json_to_metadata writes `true` as "1").
    pub body_stream: bool,
    /// json_to_metadata could not parse the body as a JSON object.
    pub body_invalid: bool,
    /// The model header (`Config::model_header`), for clients that name the model there.
    pub header_model: Option<&'a str>,
    /// Identity: the `authorization` and `x-api-key` headers, and the trusted consumer and
    /// plan values when `auth.trusted` is configured (see `Gateway::trusted_sources`).
    pub authorization: Option<&'a str>,
    pub x_api_key: Option<&'a str>,
    pub trusted_consumer: Option<&'a str>,
    pub trusted_plan: Option<&'a str>,
    /// The request ended with its headers: no body follows.
    pub no_body: bool,
}

/// The budget policy and the store its counters live in (host shared data in Envoy).
#[derive(Clone, Copy)]
pub struct Quota<'a> {
    pub policy: &'a Policy,
    pub store: &'a dyn Store,
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
        let action = if (head.method, head.path) == ("GET", "/v1/models") {
            let reply = LocalReply { status: 200, headers: reply::json_headers(), body: self.model_list(now_ms) };
            RequestAction::Reply(exchange.answer(reply))
        } else {
            match self.route(head, roll, now_ms / 1000, &mut exchange) {
                Ok(ops) => RequestAction::Forward(ops),
                Err(error) => RequestAction::Reply(exchange.reject(&error)),
            }
        };
        (exchange, action)
    }

    /// Where the trusted consumer and plan are read from, when `auth.trusted` is configured.
    pub fn trusted_sources(&self) -> Option<&TrustedConfig> {
        self.config.access.as_ref().and_then(|a| a.auth.trusted())
    }

    /// The consumer, when identity is configured; a 401 when the credentials do not name one.
    fn identify(
        &self,
        head: &RequestHead<'_>,
        client: ClientDialect,
        now_secs: u64,
    ) -> Result<Option<Consumer>, GatewayError> {
        let Some(access) = &self.config.access else { return Ok(None) };
        let credentials = Credentials {
            authorization: head.authorization,
            x_api_key: head.x_api_key,
            trusted_consumer: head.trusted_consumer,
            trusted_plan: head.trusted_plan,
        };
        // Each SDK's own header first: OpenAI's bearer token, Anthropic's x-api-key.
        let prefer = match client {
            ClientDialect::OpenAi => KeyHeader::Authorization,
            ClientDialect::Anthropic => KeyHeader::XApiKey,
        };
        match access.auth.authenticate(&credentials, prefer, now_secs) {
            AuthOutcome::Consumer(consumer) => Ok(Some(consumer)),
            outcome => {
                let code = match &outcome {
                    AuthOutcome::Invalid(error) => error.code(),
                    // OpenAI's own code when no key is sent.
                    _ => "invalid_api_key",
                };
                Err(GatewayError::Unauthorized { message: outcome.message().unwrap_or_default(), code })
            }
        }
    }

    /// The prompt layer, when configured.
    pub fn prompts(&self) -> Option<&crate::prompt::Prompts> {
        self.config.prompts.as_ref()
    }

    /// Budgets to reserve against, with the host's shared store.
    pub fn quota<'a>(&'a self, store: &'a dyn Store) -> Option<Quota<'a>> {
        self.config.access.as_ref().map(|a| Quota { policy: &a.policy, store })
    }

    /// `GET /v1/models`: the public names (aliases included) in OpenAI's list shape.
    fn model_list(&self, now_ms: u64) -> Vec<u8> {
        let mut names: Vec<&str> = self.config.routes.iter().map(|r| r.name.as_str()).collect();
        names.extend(self.config.aliases());
        names.sort_unstable();
        let data: Vec<serde_json::Value> = names
            .iter()
            .map(|id| serde_json::json!({"id": id, "object": "model", "created": now_ms / 1000, "owned_by": "llm-gateway"}))
            .collect();
        serde_json::json!({"object": "list", "data": data}).to_string().into_bytes()
    }

    fn route(
        &self,
        head: &RequestHead<'_>,
        roll: u64,
        now_secs: u64,
        exchange: &mut Exchange,
    ) -> Result<Vec<HeaderOp>, GatewayError> {
        let (path, query) = match head.path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (head.path, None),
        };
        // A published prompt: its template's version decides the model, not the body.
        let prompt_api = self.prompts().filter(|_| head.method == "POST").and_then(|p| p.api(path).map(|api| (p, api)));
        let (operation, client) = match prompt_api {
            Some(_) => (Operation::Chat, ClientDialect::OpenAi),
            None => endpoint(head.method, path).ok_or_else(|| GatewayError::UnknownEndpoint {
                method: head.method.to_string(),
                path: path.to_string(),
            })?,
        };
        exchange.operation = Some(operation);
        exchange.client = client;
        exchange.path = path.to_string();
        // Template versions get their own roll: sharing the target's would tie a version
        // to a canary target.
        exchange.roll = roll.rotate_right(32);
        let requested = match (prompt_api, head.body_model, head.header_model) {
            (Some((prompts, api)), ..) => {
                if head.no_body {
                    return Err(GatewayError::PromptApi(crate::prompt::PromptError::InvalidBody {
                        detail: "send the prompt's variables as a JSON object body (`{}` when there are none)"
                            .to_string(),
                    }));
                }
                exchange.prompt_api = Some(api.clone());
                prompts.api_model(api, exchange.roll).map_err(GatewayError::PromptApi)?
            }
            (None, Some(model), _) | (None, None, Some(model)) => model,
            (None, None, None) if head.body_invalid => {
                return Err(GatewayError::InvalidJson {
                    detail: "the body is not a JSON object sent with Content-Type: application/json".to_string(),
                })
            }
            (None, None, None) => return Err(GatewayError::MissingModel),
        };
        exchange.requested_model = Some(requested.to_string());
        // Who is calling comes first: an unauthenticated caller learns nothing about models.
        let consumer = self.identify(head, client, now_secs)?;
        let unknown = || GatewayError::UnknownModel { model: requested.to_string() };
        let route = self.config.lookup(requested).ok_or_else(unknown)?;
        exchange.consumer = consumer;
        if let (Some(access), Some(consumer)) = (&self.config.access, &exchange.consumer) {
            exchange.consumer_listed = access.auth.consumers().get(&consumer.name).is_some();
            access
                .auth
                .check_model(consumer, &route.name)
                .map_err(|f| GatewayError::Forbidden { message: f.to_string() })?;
        }
        let target = route.pick(roll).ok_or_else(unknown)?;
        let provider = self.config.provider(target.provider).ok_or_else(unknown)?;
        let dialect = provider.kind.dialect();
        if operation != Operation::Chat && dialect != ProviderDialect::OpenAi {
            return Err(GatewayError::UnsupportedOperation {
                operation: operation.as_str(),
                provider: provider.name.clone(),
            });
        }
        let upstream_path = upstream::path(provider, operation, &target.model, head.body_stream, query);
        let (provider_headers, signing) = upstream::headers(provider, &upstream_path);
        exchange.set_route(&route.name, provider, &target.model, head.body_stream, signing);

        let mut ops = vec![
            HeaderOp::Set(self.config.cluster_header.clone(), provider.cluster.clone()),
            HeaderOp::Remove(self.config.model_header.clone()),
            // The body is patched or translated, so its length changes.
            HeaderOp::Remove("content-length".to_string()),
        ];
        ops.extend(CLIENT_CREDENTIAL_HEADERS.iter().map(|h| HeaderOp::Remove(h.to_string())));
        if client == ClientDialect::Anthropic && dialect != ProviderDialect::Anthropic {
            ops.push(HeaderOp::Remove("anthropic-version".to_string()));
            ops.push(HeaderOp::Remove("anthropic-beta".to_string()));
        }
        if exchange.prompt_api.is_some() {
            // The caller's body may be sent as anything; ours is JSON.
            ops.push(HeaderOp::Set("content-type".to_string(), "application/json".to_string()));
        }
        ops.extend(provider_headers);
        if upstream_path != head.path {
            // What Envoy itself sets when a route rewrites the path: access logs written with
            // `%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%` then show the path the client called.
            ops.push(HeaderOp::Set("x-envoy-original-path".to_string(), head.path.to_string()));
        }
        ops.push(HeaderOp::Set(":path".to_string(), upstream_path));
        Ok(ops)
    }
}
