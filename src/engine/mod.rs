//! The gateway engine: decisions for one plugin (`Gateway`) and one request (`Exchange`),
//! returned as data for the proxy-wasm shell to apply.

mod exchange;
mod fallback;
mod keys;
mod meter;
mod reply;
mod response;
mod upstream;

pub use exchange::{BodyAction, Exchange, Record, ResponseOrigin};
pub use fallback::{
    decode_attempts, encode_attempts, Attempt, AttemptPlan, AttemptStart, ATTEMPTS_STATE, PLAN_STATE, RETRY_HEADER,
    UNTRANSLATED_PATH,
};
pub use reply::{GatewayError, LocalReply};

use crate::auth::{AuthOutcome, Consumer, Credentials, KeyHeader, TrustedConfig};
use crate::config::{Config, ConfigError};
use crate::llm::embeddings;
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

/// Where the access log finds the path the client called when the module rewrote `:path`.
const ORIGINAL_PATH: &str = "x-envoy-original-path";

/// Request headers a client may not set: the shell removes them before anything else, on
/// every request (answered locally or not). A client-sent `x-envoy-original-path` would be
/// printed by the access log as the request's path.
pub const UNTRUSTED_REQUEST_HEADERS: [&str; 1] = [ORIGINAL_PATH];

/// Which API the client is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// OpenAI Chat Completions or Anthropic Messages (see the client dialect).
    Chat,
    Embeddings,
    /// OpenAI Responses API (passed through to OpenAI itself, translated for every other
    /// provider: see [`Operation::upstream`]).
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

    /// The operation the provider is asked for: a Responses call goes as is only to OpenAI
    /// itself (the one provider that keeps responses and runs OpenAI's hosted tools); every
    /// other provider gets it translated into its chat API.
    pub fn upstream(self, kind: crate::config::ProviderKind) -> Operation {
        match self {
            Operation::Responses if kind != crate::config::ProviderKind::OpenAi => Operation::Chat,
            other => other,
        }
    }
}

/// The endpoints the gateway serves: method and path -> operation and client dialect.
fn endpoint(method: &str, path: &str) -> Option<(Operation, ClientDialect)> {
    match (method, path) {
        ("POST", "/v1/chat/completions") => Some((Operation::Chat, ClientDialect::OpenAi)),
        ("POST", "/v1/messages") => Some((Operation::Chat, ClientDialect::Anthropic)),
        ("POST", "/v1/embeddings") => Some((Operation::Embeddings, ClientDialect::OpenAi)),
        ("POST", "/v1/responses") => Some((Operation::Responses, ClientDialect::Responses)),
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
    /// The client sent `anthropic-version` (Anthropic's SDKs always do).
    pub anthropic_version: bool,
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
        let path = head.path.split_once('?').map_or(head.path, |(path, _)| path);
        let action = if (head.method, path) == ("GET", "/v1/models") {
            self.list_models(head, now_ms, &mut exchange)
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
            ClientDialect::OpenAi | ClientDialect::Responses => KeyHeader::Authorization,
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

    /// Fleet-wide budgets on a rate-limit service (`quota.fleet`), when configured.
    pub fn fleet(&self) -> Option<&crate::quota::fleet::Fleet> {
        self.config.access.as_ref().and_then(|a| a.policy.settings().fleet.as_ref())
    }

    /// Budgets to reserve against, with the host's shared store.
    pub fn quota<'a>(&'a self, store: &'a dyn Store) -> Option<Quota<'a>> {
        self.config.access.as_ref().map(|a| Quota { policy: &a.policy, store })
    }

    /// `GET /v1/models`: identified like any request (401 without a credential when identity
    /// is configured), then the models the consumer may use. The dialect is the credential's:
    /// an `anthropic-version` header (every Anthropic SDK sends one) or `x-api-key` alone is
    /// an Anthropic client (its list and error shapes), anything else gets OpenAI's.
    fn list_models(&self, head: &RequestHead<'_>, now_ms: u64, exchange: &mut Exchange) -> RequestAction {
        let client = match (head.anthropic_version, head.authorization, head.x_api_key) {
            (true, ..) | (false, None, Some(_)) => ClientDialect::Anthropic,
            _ => ClientDialect::OpenAi,
        };
        exchange.client = client;
        match self.identify(head, client, now_ms / 1000) {
            Err(error) => RequestAction::Reply(exchange.reject(&error)),
            Ok(consumer) => {
                let body = self.model_list(consumer.as_ref(), client, now_ms / 1000);
                exchange.consumer = consumer;
                RequestAction::Reply(exchange.answer(LocalReply { status: 200, headers: reply::json_headers(), body }))
            }
        }
    }

    /// The public names (aliases included) `consumer` may call, sorted, in the dialect's
    /// list shape.
    fn model_list(&self, consumer: Option<&Consumer>, client: ClientDialect, now_secs: u64) -> Vec<u8> {
        let allowed = |route: &str| match (&self.config.access, consumer) {
            (Some(access), Some(consumer)) => access.auth.check_model(consumer, route).is_ok(),
            _ => true,
        };
        let mut names: Vec<&str> =
            self.config.routes.iter().map(|r| r.name.as_str()).filter(|name| allowed(name)).collect();
        names.extend(self.config.aliases().filter(|alias| self.config.lookup(alias).is_some_and(|r| allowed(&r.name))));
        names.sort_unstable();
        let list = match client {
            ClientDialect::OpenAi | ClientDialect::Responses => {
                let data: Vec<serde_json::Value> = names
                    .iter()
                    .map(|id| serde_json::json!({"id": id, "object": "model", "created": now_secs, "owned_by": "llm-gateway"}))
                    .collect();
                serde_json::json!({"object": "list", "data": data})
            }
            ClientDialect::Anthropic => {
                let created_at = rfc3339(now_secs);
                let data: Vec<serde_json::Value> = names
                    .iter()
                    .map(|id| serde_json::json!({"type": "model", "id": id, "display_name": id, "created_at": created_at}))
                    .collect();
                serde_json::json!({"data": data, "has_more": false, "first_id": names.first(), "last_id": names.last()})
            }
        };
        list.to_string().into_bytes()
    }

    fn route(
        &self,
        head: &RequestHead<'_>,
        roll: u64,
        now_secs: u64,
        exchange: &mut Exchange,
    ) -> Result<Vec<HeaderOp>, GatewayError> {
        // The client's query string is never forwarded (it may carry a key): each provider
        // gets only the parameters the gateway sets (Azure's api-version, Gemini's alt=sse).
        let path = head.path.split_once('?').map_or(head.path, |(path, _)| path);
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
        // Without a body there is nothing to admit: refused before anyone is contacted.
        if head.no_body && prompt_api.is_none() {
            return Err(GatewayError::MissingBody);
        }
        let requested = match (prompt_api, head.body_model, head.header_model) {
            (Some((prompts, api)), ..) => {
                if head.no_body {
                    return Err(GatewayError::PromptApi(crate::prompt::PromptError::InvalidBody {
                        detail: "send the prompt's variables as a JSON object body (`{}` when there are none)"
                            .to_string(),
                    }));
                }
                exchange.prompt_api = Some(api.clone());
                Some(prompts.api_model(api, exchange.roll).map_err(GatewayError::PromptApi)?)
            }
            (None, Some(model), _) => {
                exchange.model_from_body = true;
                Some(model)
            }
            (None, None, Some(model)) => Some(model),
            (None, None, None) if head.body_invalid => {
                return Err(GatewayError::InvalidJson {
                    detail: "the body is not a JSON object sent with Content-Type: application/json".to_string(),
                })
            }
            (None, None, None) => None,
        };
        exchange.requested_model = requested.map(str::to_string);
        // Who is calling comes first: an unauthenticated caller learns nothing about models.
        exchange.consumer = self.identify(head, client, now_secs)?;
        if let (Some(access), Some(consumer)) = (&self.config.access, &exchange.consumer) {
            exchange.consumer_listed = access.auth.consumers().get(&consumer.name).is_some();
        }
        let Some(route) = requested.and_then(|name| self.config.lookup(name)) else {
            let error = match requested {
                Some(model) => GatewayError::UnknownModel { model: model.to_string() },
                None => GatewayError::MissingModel,
            };
            // json_to_metadata reads `"model": 123` as "123" and `null` as missing: the body
            // says whether the model is unknown or of the wrong type. Nothing goes upstream
            // (no cluster is chosen); the body callback answers.
            exchange.defer_rejection(error);
            // A client-sent cluster header must not choose an upstream meanwhile.
            let mut ops = vec![HeaderOp::Remove(self.config.cluster_header.clone())];
            ops.extend(CLIENT_CREDENTIAL_HEADERS.iter().map(|h| HeaderOp::Remove(h.to_string())));
            return Ok(ops);
        };
        if let (Some(access), Some(consumer)) = (&self.config.access, &exchange.consumer) {
            access
                .auth
                .check_model(consumer, &route.name)
                .map_err(|f| GatewayError::Forbidden { message: f.to_string() })?;
        }
        if let Some(chain) = &route.fallback {
            return self.route_chain(route, chain, operation, head.body_stream, exchange);
        }
        let unknown = || GatewayError::UnknownModel { model: route.name.clone() };
        let target = route.pick(roll).ok_or_else(unknown)?;
        let provider = self.config.provider(target.provider).ok_or_else(unknown)?;
        let dialect = provider.kind.dialect();
        // Embeddings: passed through to OpenAI-dialect providers, translated for Gemini and
        // for Bedrock's Titan and Cohere embedding models (`llm::embeddings`).
        if operation == Operation::Embeddings && dialect != ProviderDialect::OpenAi {
            if dialect == ProviderDialect::Anthropic {
                return Err(GatewayError::UnsupportedOperation {
                    operation: operation.as_str(),
                    provider: provider.name.clone(),
                });
            }
            if embeddings::Target::of(dialect, &target.model).is_none() {
                return Err(GatewayError::Translate(crate::llm::ir::TranslateError::Unsupported {
                    field: "model".to_string(),
                    provider: "bedrock",
                    detail: format!("`{}` is not an embeddings model: {}", route.name, embeddings::BEDROCK_MODELS),
                }));
            }
        }
        let upstream_path =
            upstream::path(provider, operation.upstream(provider.kind), &target.model, head.body_stream);
        let (provider_headers, signing) = upstream::headers(provider, &upstream_path);
        exchange.set_route(&route.name, provider, &target.model, head.body_stream, signing);

        let mut ops = vec![
            HeaderOp::Set(self.config.cluster_header.clone(), provider.cluster.clone()),
            HeaderOp::Remove(self.config.model_header.clone()),
            // The body is patched or translated, so its length changes.
            HeaderOp::Remove("content-length".to_string()),
            // The answer must be readable for usage: a client asking for gzip (the OpenAI SDK
            // does) would otherwise get a compressed body the gateway cannot count; without the
            // header any coding is acceptable (RFC 9110), so ask for none. Envoy's compressor
            // filter, placed before the module, can still compress toward the client.
            HeaderOp::Set("accept-encoding".to_string(), "identity".to_string()),
        ];
        ops.extend(CLIENT_CREDENTIAL_HEADERS.iter().map(|h| HeaderOp::Remove(h.to_string())));
        // Trusted identity headers are ours too: the provider never sees them.
        ops.extend(
            self.trusted_sources().into_iter().flat_map(|t| t.headers()).map(|h| HeaderOp::Remove(h.to_string())),
        );
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
            // `%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%` then show the path the client called
            // (without its query string, which may carry a key). A client's own value of this
            // header was removed by the shell (`UNTRUSTED_REQUEST_HEADERS`).
            ops.push(HeaderOp::Set(ORIGINAL_PATH.to_string(), path.to_string()));
        }
        ops.push(HeaderOp::Set(":path".to_string(), upstream_path));
        Ok(ops)
    }
}

/// `secs` since the epoch as an RFC 3339 UTC timestamp (Anthropic's `created_at`).
fn rfc3339(secs: u64) -> String {
    let (year, month, day) = crate::calendar::civil_from_days(secs / 86_400);
    let rest = secs % 86_400;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}
