//! The gateway engine: decisions for one plugin (`Gateway`) and one request (`Exchange`),
//! returned as data for the proxy-wasm shell to apply.

mod error_hop;
mod exchange;
mod fallback;
mod first_event;
mod keys;
mod meter;
mod reply;
mod response;
mod route;
mod upstream;

pub use error_hop::{
    decode_outcome, encode_outcome, translate_answer, Hop, HopAnswer, DOWNSTREAM_CONTEXT_STATE, HOLD_REASON,
    HOP_OUTCOME_STATE,
};
pub use exchange::{BodyAction, Exchange, Record, ResponseOrigin};
pub use fallback::{
    decode_attempts, encode_attempts, Attempt, AttemptPlan, AttemptStart, ATTEMPTS_STATE, PLAN_STATE, RETRY_HEADER,
    UNTRANSLATED_PATH,
};
pub use first_event::{
    FirstEventScan, Framing, FIRST_EVENT_CONFIG, FIRST_EVENT_HOLDER_STATE, FIRST_EVENT_WATCH_STATE,
    NO_FIRST_EVENT_REASON,
};
pub use reply::{GatewayError, LocalReply};

use route::{Decision, RequestFacts, Routed};

use crate::auth::{AuthOutcome, Consumer, Credentials, KeyHeader, TrustedConfig};
use crate::config::{Config, ConfigError};
use crate::llm::ir::ClientDialect;
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
        let path = head.path.split_once('?').map_or(head.path, |(path, _)| path);
        let routed = if (head.method, path) == ("GET", "/v1/models") {
            self.list_models(head, now_ms)
        } else {
            self.route(head, roll, now_ms / 1000)
        };
        Exchange::start(now_ms, self.config.limits, routed)
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
    fn list_models(&self, head: &RequestHead<'_>, now_ms: u64) -> Routed {
        let client = match (head.anthropic_version, head.authorization, head.x_api_key) {
            (true, ..) | (false, None, Some(_)) => ClientDialect::Anthropic,
            _ => ClientDialect::OpenAi,
        };
        let mut request = RequestFacts { client, ..RequestFacts::unknown() };
        let decision = match self.identify(head, client, now_ms / 1000) {
            Err(error) => Decision::Refuse(error),
            Ok(consumer) => {
                let body = self.model_list(consumer.as_ref(), client, now_ms / 1000);
                request.consumer = consumer;
                Decision::Answer(LocalReply { status: 200, headers: reply::json_headers(), body })
            }
        };
        Routed { request, decision }
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
}

/// `secs` since the epoch as an RFC 3339 UTC timestamp (Anthropic's `created_at`).
fn rfc3339(secs: u64) -> String {
    let (year, month, day) = crate::calendar::civil_from_days(secs / 86_400);
    let rest = secs % 86_400;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}
