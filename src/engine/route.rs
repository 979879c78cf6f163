//! Step 1 of a request: the request headers decide who calls which API for which model and
//! where it goes. [`Gateway::route`] is a pure function of the headers and the configuration:
//! it returns a [`Routed`] value, from which [`Exchange::start`](super::Exchange) builds the
//! exchange.

use super::fallback::AttemptPlan;
use super::reply::{GatewayError, LocalReply};
use super::upstream::{self, SigningPlan};
use super::{endpoint, Gateway, HeaderOp, Operation, RequestHead, CLIENT_CREDENTIAL_HEADERS, ORIGINAL_PATH};
use crate::auth::Consumer;
use crate::config::{Provider, ProviderKind};
use crate::llm::embeddings;
use crate::llm::ir::{ClientDialect, ProviderDialect};
use crate::prompt::PromptApi;

/// What the request headers decided.
#[derive(Debug)]
pub(super) struct Routed {
    pub(super) request: RequestFacts,
    pub(super) decision: Decision,
}

/// What is known of the request from its headers on (as far as routing got: a refused
/// request knows less).
#[derive(Debug, Clone)]
pub(super) struct RequestFacts {
    pub(super) operation: Option<Operation>,
    /// The API shape the client speaks (and gets its errors in).
    pub(super) client: ClientDialect,
    /// The request path without its query string (decorators match paths).
    pub(super) path: String,
    /// The roll template versions are chosen by (not the target's: sharing it would tie a
    /// version to a canary target).
    pub(super) roll: u64,
    /// The name the client asked for (may be unknown or an alias).
    pub(super) requested_model: Option<String>,
    /// The route was chosen by the body's `model` as Envoy's json_to_metadata read it: the
    /// body the module sees must name the same model.
    pub(super) model_from_body: bool,
    /// The request is a call to this published prompt.
    pub(super) prompt_api: Option<PromptApi>,
    pub(super) consumer: Option<Consumer>,
    /// The consumer is configured by name (not an unlisted JWT subject).
    pub(super) consumer_listed: bool,
    /// This exchange is one attempt of a fallback chain (admitted downstream).
    pub(super) attempt: bool,
}

impl RequestFacts {
    /// Nothing known yet: an unknown endpoint is answered in OpenAI's shape.
    pub(super) fn unknown() -> Self {
        RequestFacts {
            operation: None,
            client: ClientDialect::OpenAi,
            path: String::new(),
            roll: 0,
            requested_model: None,
            model_from_body: false,
            prompt_api: None,
            consumer: None,
            consumer_listed: false,
            attempt: false,
        }
    }
}

/// What happens to the request next.
#[derive(Debug)]
pub(super) enum Decision {
    /// Apply `ops` and read the body; the request goes to `route` once admitted. A fallback
    /// chain carries the `plan` each attempt reads.
    Forward { route: Route, plan: Option<AttemptPlan>, ops: Vec<HeaderOp> },
    /// Apply `ops` (nothing is routed) and refuse once the body is seen: only the body tells
    /// an unknown model from one of the wrong type.
    RefuseAfterBody { error: GatewayError, ops: Vec<HeaderOp> },
    /// Refuse now, in the client's dialect.
    Refuse(GatewayError),
    /// The gateway answers itself (`GET /v1/models`).
    Answer(LocalReply),
}

/// The provider a routed exchange talks to.
#[derive(Debug, Clone)]
pub(super) struct Route {
    /// The public model name (a configured name, never an alias).
    pub(super) model: String,
    /// Empty for a fallback chain until the attempt that answered is known.
    pub(super) provider: String,
    pub(super) dialect: ProviderDialect,
    /// The provider kind (which member caps output in its API).
    pub(super) kind: ProviderKind,
    pub(super) target_model: String,
    /// The upstream path was chosen for a streaming (true) or single response.
    pub(super) planned_stream: bool,
    /// A SigV4 signature to compute once the body is known.
    pub(super) signing: Option<Box<SigningPlan>>,
}

impl Route {
    /// One provider's target.
    pub(super) fn single(
        model: &str,
        provider: &Provider,
        target_model: &str,
        planned_stream: bool,
        signing: Option<SigningPlan>,
    ) -> Self {
        Route {
            model: model.to_string(),
            provider: provider.name.clone(),
            dialect: provider.kind.dialect(),
            kind: provider.kind,
            target_model: target_model.to_string(),
            planned_stream,
            signing: signing.map(Box::new),
        }
    }

    /// A fallback chain's route: the body stays in the client's dialect (each attempt
    /// translates it for its target) and the budget is reserved at `reserve_model`'s price.
    pub(super) fn chain(model: &str, reserve_model: &str, client: ClientDialect, planned_stream: bool) -> Self {
        let (dialect, kind) = match client {
            // Chains serve chat only (`Gateway::route_chain` refuses the Responses API).
            ClientDialect::OpenAi | ClientDialect::Responses => (ProviderDialect::OpenAi, ProviderKind::OpenAi),
            ClientDialect::Anthropic => (ProviderDialect::Anthropic, ProviderKind::Anthropic),
        };
        Route {
            model: model.to_string(),
            provider: String::new(),
            dialect,
            kind,
            target_model: reserve_model.to_string(),
            planned_stream,
            signing: None,
        }
    }
}

impl Gateway {
    /// The request headers' decision, as a value: endpoint, model, identity, then the target.
    pub(super) fn route(&self, head: &RequestHead<'_>, roll: u64, now_secs: u64) -> Routed {
        // The client's query string is never forwarded (it may carry a key): each provider
        // gets only the parameters the gateway sets (Azure's api-version, Gemini's alt=sse).
        let path = head.path.split_once('?').map_or(head.path, |(path, _)| path);
        let mut request = RequestFacts::unknown();
        let refuse = |request, error| Routed { request, decision: Decision::Refuse(error) };
        // A published prompt: its template's version decides the model, not the body.
        let prompt_api = self.prompts().filter(|_| head.method == "POST").and_then(|p| p.api(path).map(|api| (p, api)));
        let (operation, client) = match prompt_api {
            Some(_) => (Operation::Chat, ClientDialect::OpenAi),
            None => match endpoint(head.method, path) {
                Some(endpoint) => endpoint,
                None => {
                    let error =
                        GatewayError::UnknownEndpoint { method: head.method.to_string(), path: path.to_string() };
                    return refuse(request, error);
                }
            },
        };
        request.operation = Some(operation);
        request.client = client;
        request.path = path.to_string();
        request.roll = roll.rotate_right(32);
        // Without a body there is nothing to admit: refused before anyone is contacted.
        if head.no_body && prompt_api.is_none() {
            return refuse(request, GatewayError::MissingBody);
        }
        let requested = match (prompt_api, head.body_model, head.header_model) {
            (Some((prompts, api)), ..) => {
                if head.no_body {
                    let detail = "send the prompt's variables as a JSON object body (`{}` when there are none)";
                    let error = crate::prompt::PromptError::InvalidBody { detail: detail.to_string() };
                    return refuse(request, GatewayError::PromptApi(error));
                }
                request.prompt_api = Some(api.clone());
                match prompts.api_model(api, request.roll) {
                    Ok(model) => Some(model),
                    Err(error) => return refuse(request, GatewayError::PromptApi(error)),
                }
            }
            (None, Some(model), _) => {
                request.model_from_body = true;
                Some(model)
            }
            (None, None, Some(model)) => Some(model),
            (None, None, None) if head.body_invalid => {
                let detail = "the body is not a JSON object sent with Content-Type: application/json";
                return refuse(request, GatewayError::InvalidJson { detail: detail.to_string() });
            }
            (None, None, None) => None,
        };
        request.requested_model = requested.map(str::to_string);
        // Who is calling comes first: an unauthenticated caller learns nothing about models.
        request.consumer = match self.identify(head, client, now_secs) {
            Ok(consumer) => consumer,
            Err(error) => return refuse(request, error),
        };
        if let (Some(access), Some(consumer)) = (&self.config.access, &request.consumer) {
            request.consumer_listed = access.auth.consumers().get(&consumer.name).is_some();
        }
        let decision = match self.target(head, roll, operation, requested, &request) {
            Ok(decision) => decision,
            Err(error) => Decision::Refuse(error),
        };
        Routed { request, decision }
    }

    /// The target of an identified request for `requested` (the model name it asked for).
    fn target(
        &self,
        head: &RequestHead<'_>,
        roll: u64,
        operation: Operation,
        requested: Option<&str>,
        request: &RequestFacts,
    ) -> Result<Decision, GatewayError> {
        let Some(route) = requested.and_then(|name| self.config.lookup(name)) else {
            let error = match requested {
                Some(model) => GatewayError::UnknownModel { model: model.to_string() },
                None => GatewayError::MissingModel,
            };
            // json_to_metadata reads `"model": 123` as "123" and `null` as missing: the body
            // says whether the model is unknown or of the wrong type. Nothing goes upstream
            // (no cluster is chosen); the body callback answers.
            // A client-sent cluster header must not choose an upstream meanwhile.
            let mut ops = vec![HeaderOp::Remove(self.config.cluster_header.clone())];
            ops.extend(CLIENT_CREDENTIAL_HEADERS.iter().map(|h| HeaderOp::Remove(h.to_string())));
            return Ok(Decision::RefuseAfterBody { error, ops });
        };
        if let (Some(access), Some(consumer)) = (&self.config.access, &request.consumer) {
            access
                .auth
                .check_model(consumer, &route.name)
                .map_err(|f| GatewayError::Forbidden { message: f.to_string() })?;
        }
        if let Some(chain) = &route.fallback {
            return self.route_chain(route, chain, operation, request, head.body_stream);
        }
        let unknown = || GatewayError::UnknownModel { model: route.name.clone() };
        let target = route.pick(roll).ok_or_else(unknown)?;
        let provider = self.config.provider(target.provider).ok_or_else(unknown)?;
        embeddings_supported(operation, &route.name, provider, &target.model)?;
        let upstream_path =
            upstream::path(provider, operation.upstream(provider.kind), &target.model, head.body_stream);
        let (provider_headers, signing) = upstream::headers(provider, &upstream_path);
        let ops = self.forward_ops(head, request, provider, provider_headers, upstream_path);
        let route = Route::single(&route.name, provider, &target.model, head.body_stream, signing);
        Ok(Decision::Forward { route, plan: None, ops })
    }

    /// The request-header changes that send a request to `provider` at `upstream_path`:
    /// cluster, credentials (the client's removed, the provider's set), path.
    fn forward_ops(
        &self,
        head: &RequestHead<'_>,
        request: &RequestFacts,
        provider: &Provider,
        provider_headers: Vec<HeaderOp>,
        upstream_path: String,
    ) -> Vec<HeaderOp> {
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
        if request.client == ClientDialect::Anthropic && provider.kind.dialect() != ProviderDialect::Anthropic {
            ops.push(HeaderOp::Remove("anthropic-version".to_string()));
            ops.push(HeaderOp::Remove("anthropic-beta".to_string()));
        }
        if request.prompt_api.is_some() {
            // The caller's body may be sent as anything; ours is JSON.
            ops.push(HeaderOp::Set("content-type".to_string(), "application/json".to_string()));
        }
        ops.extend(provider_headers);
        if upstream_path != head.path {
            // What Envoy itself sets when a route rewrites the path: access logs written with
            // `%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%` then show the path the client called
            // (without its query string, which may carry a key). A client's own value of this
            // header was removed by the shell (`UNTRUSTED_REQUEST_HEADERS`).
            ops.push(HeaderOp::Set(ORIGINAL_PATH.to_string(), request.path.clone()));
        }
        ops.push(HeaderOp::Set(":path".to_string(), upstream_path));
        ops
    }
}

/// Embeddings are passed through to OpenAI-dialect providers and translated for Gemini and
/// for Bedrock's Titan and Cohere embedding models (`llm::embeddings`); nothing else serves
/// them.
fn embeddings_supported(
    operation: Operation,
    route: &str,
    provider: &Provider,
    target_model: &str,
) -> Result<(), GatewayError> {
    let dialect = provider.kind.dialect();
    if operation != Operation::Embeddings || dialect == ProviderDialect::OpenAi {
        return Ok(());
    }
    if dialect == ProviderDialect::Anthropic {
        return Err(GatewayError::UnsupportedOperation {
            operation: operation.as_str(),
            provider: provider.name.clone(),
        });
    }
    if embeddings::Target::of(dialect, target_model).is_none() {
        return Err(GatewayError::Translate(crate::llm::ir::TranslateError::Unsupported {
            field: "model".to_string(),
            provider: "bedrock",
            detail: format!("`{route}` is not an embeddings model: {}", embeddings::BEDROCK_MODELS),
        }));
    }
    Ok(())
}
