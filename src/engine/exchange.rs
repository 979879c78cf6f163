//! One request's life: body patch or translation, response reading, and the final record.

use super::meter::Meter;
use super::reply::{GatewayError, LocalReply};
use super::response::{
    Buffered, EmbeddingsReply, Observed, OpenAiSse, ResponseBody, Shape, ShapeEncoder, Substitute, Translated,
};
use super::upstream::SigningPlan;
use super::{HeaderOp, Operation, Quota};
use crate::auth::Consumer;
use crate::config::{Limits, Provider, ProviderKind};
use crate::json_scan::{self, BodyFacts, Edit, InspectError, Member};
use crate::llm::dialect::{self, StreamDecoder};
use crate::llm::embeddings;
use crate::llm::ir::{ClientDialect, ErrorKind, ProviderDialect, ProviderError, TranslateError};
use crate::prompt::{take_selection, Context as PromptContext, PromptApi, Prompts, RawApi, TemplateUse};
use crate::quota::fleet::{Descriptor, Verdict};
use crate::quota::{Media, Reservation, Settlement, TokenCounts};
use crate::stream::sse::SseDecoder;
use crate::usage::{tokens_from_byte_count as estimate_tokens, Usage};

/// What to do with a body the shell handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyAction {
    /// Let the bytes through as they are.
    Unchanged,
    /// Replace them with these.
    Replace(Vec<u8>),
    /// Answer locally instead (request side only).
    Reply(LocalReply),
}

/// The finished exchange: what metrics and the access log report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub operation: Option<Operation>,
    /// Public model name as routed (a configured name, never the alias or raw input).
    pub model: Option<String>,
    /// The name the client asked for (may be unknown or an alias). Logs only, not metrics.
    pub requested_model: Option<String>,
    pub provider: Option<String>,
    pub target_model: Option<String>,
    pub status: u16,
    pub stream: bool,
    pub usage: Usage,
    pub duration_ms: u64,
    pub time_to_first_token_ms: Option<u64>,
    pub time_per_output_token_ms: Option<u64>,
    /// The identified consumer (logs), and its metric label: configured consumers by name,
    /// any other identity (an unlisted JWT subject) as `unlisted`, so labels stay bounded.
    pub consumer: Option<String>,
    pub consumer_label: Option<String>,
    /// Cost of the usage at the configured price, in micro-USD.
    pub cost_micros: Option<u64>,
    /// Prompt template and version used.
    pub template: Option<(String, String)>,
    /// Why the gateway refused the request itself (`GatewayError::reason`), and the guard
    /// rule when a guard did.
    pub rejection: Option<(&'static str, Option<String>)>,
    /// What remains of each budget limit the request was settled against (configured
    /// consumers only, so the gauges stay bounded): (limit name, remaining).
    pub budget_remaining: Vec<(String, u64)>,
    /// A fallback chain's attempts, oldest first (empty for a single target).
    pub attempts: Vec<super::Attempt>,
}

/// The provider a routed exchange talks to.
#[derive(Debug, Clone)]
struct Route {
    model: String,
    provider: String,
    dialect: ProviderDialect,
    /// The provider kind (which member caps output in its API).
    kind: ProviderKind,
    target_model: String,
    /// The upstream path was chosen for a streaming (true) or single response.
    planned_stream: bool,
    /// A SigV4 signature to compute once the body is known.
    signing: Option<Box<SigningPlan>>,
}

#[derive(Debug)]
pub struct Exchange {
    limits: Limits,
    started_ms: u64,
    pub(super) operation: Option<Operation>,
    pub(super) client: ClientDialect,
    pub(super) requested_model: Option<String>,
    pub(super) consumer: Option<Consumer>,
    /// The request path and the random roll (decorators match paths; template versions
    /// are chosen by weight).
    pub(super) path: String,
    pub(super) roll: u64,
    /// The template and version the request used.
    template: Option<(String, String)>,
    /// The request is a call to this published prompt.
    pub(super) prompt_api: Option<PromptApi>,
    rejection: Option<(&'static str, Option<String>)>,
    /// The consumer is configured by name (not an unlisted JWT subject).
    pub(super) consumer_listed: bool,
    /// The route was chosen by the body's `model` as Envoy's json_to_metadata read it: the
    /// body the module sees must name the same model.
    pub(super) model_from_body: bool,
    /// A refusal decided at header time that waits for the body to be stated precisely.
    deferred_rejection: Option<GatewayError>,
    /// The body step ran (on the complete body): the request was admitted or refused.
    body_seen: bool,
    /// Budget held for this request until it is settled or released.
    reservation: Option<Reservation>,
    /// What settlement charged (cost and remaining budgets for metrics and the access log).
    settled: Option<Settlement>,
    route: Option<Route>,
    stream: bool,
    client_wants_usage: bool,
    /// Estimated prompt tokens, for when the provider reports none.
    input_estimate: u64,
    status: Option<u16>,
    body: ResponseBody,
    meter: Meter,
    /// The gateway answered itself; the reply passes through the response callbacks untouched.
    replied: bool,
    deferred_headers: Vec<(String, String)>,
    finished: bool,
    /// A line for the host log (a provider's detail the client must not see).
    log_line: Option<String>,
    /// The response ended with its headers.
    headers_only: bool,
    /// A reply to send in place of a response that has no body to replace.
    pending_reply: Option<LocalReply>,
    /// A fallback chain: what each attempt needs to know (the shell writes it to filter
    /// state), and the attempts as they reported.
    attempt_plan: Option<super::AttemptPlan>,
    attempts: Vec<super::Attempt>,
    /// The key of the provider's pool this request uses (`engine::keys`).
    pub(super) key_index: Option<usize>,
    /// This exchange is one attempt of a fallback chain (admitted downstream).
    pub(super) attempt: bool,
    /// An embeddings request translated for Gemini or Bedrock: how to read the answer.
    embeddings: Option<EmbeddingsReply>,
}

/// Where a response comes from, as Envoy's `response.code_details` tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseOrigin {
    /// `via_upstream` (or the host did not say): the provider's own response.
    Upstream,
    /// Envoy's own local reply (upstream reset, timeout, overflow, no healthy upstream...),
    /// with its details string.
    Envoy(String),
}

impl ResponseOrigin {
    /// From the `response.code_details` property, when the host gives it.
    pub fn from_code_details(details: Option<&str>) -> Self {
        match details.map(str::trim) {
            None | Some("" | "via_upstream") => ResponseOrigin::Upstream,
            Some(other) => ResponseOrigin::Envoy(other.to_string()),
        }
    }
}

impl Exchange {
    pub(super) fn new(now_ms: u64, limits: Limits) -> Self {
        Exchange {
            limits,
            started_ms: now_ms,
            operation: None,
            client: ClientDialect::OpenAi,
            requested_model: None,
            consumer: None,
            path: String::new(),
            roll: 0,
            template: None,
            prompt_api: None,
            rejection: None,
            consumer_listed: false,
            model_from_body: false,
            deferred_rejection: None,
            body_seen: false,
            reservation: None,
            settled: None,
            route: None,
            stream: false,
            client_wants_usage: false,
            input_estimate: 0,
            status: None,
            body: ResponseBody::Pending,
            meter: Meter::default(),
            replied: false,
            deferred_headers: Vec::new(),
            finished: false,
            log_line: None,
            headers_only: false,
            pending_reply: None,
            attempt_plan: None,
            attempts: Vec::new(),
            key_index: None,
            attempt: false,
            embeddings: None,
        }
    }

    /// The provider this exchange talks to (none for a fallback chain downstream: each
    /// attempt has its own).
    pub(super) fn provider_name(&self) -> Option<&str> {
        self.route.as_ref().map(|r| r.provider.as_str()).filter(|p| !p.is_empty())
    }

    /// A fallback chain's route: the body stays in the client's dialect (each attempt
    /// translates it for its target) and the budget is reserved at `reserve_model`'s price.
    pub(super) fn set_chain_route(&mut self, model: &str, reserve_model: &str, planned_stream: bool) {
        let (dialect, kind) = match self.client {
            // Chains serve chat only (`Gateway::route_chain` refuses the Responses API).
            ClientDialect::OpenAi | ClientDialect::Responses => (ProviderDialect::OpenAi, ProviderKind::OpenAi),
            ClientDialect::Anthropic => (ProviderDialect::Anthropic, ProviderKind::Anthropic),
        };
        self.route = Some(Route {
            model: model.to_string(),
            provider: String::new(),
            dialect,
            kind,
            target_model: reserve_model.to_string(),
            planned_stream,
            signing: None,
        });
        self.attempt_plan =
            Some(super::AttemptPlan { route: model.to_string(), path: self.path.clone(), stream: planned_stream });
    }

    /// The plan each attempt of a fallback chain reads (the shell writes it to filter state).
    pub fn attempt_plan(&self) -> Option<&super::AttemptPlan> {
        self.attempt_plan.as_ref()
    }

    /// A fallback chain's attempts, as they reported, and the one that answered (when the
    /// response came from a provider): usage is priced at that target's model and the
    /// metrics name it.
    pub fn record_attempts(
        &mut self,
        attempts: Vec<super::Attempt>,
        answered: Option<super::Attempt>,
        quota: Option<Quota<'_>>,
    ) {
        self.attempts = attempts;
        let (Some(answered), Some(route)) = (answered, self.route.as_mut()) else { return };
        route.provider = answered.provider;
        route.target_model = answered.target_model;
        if let (Some(quota), Some(reservation)) = (quota, self.reservation.as_mut()) {
            reservation.reprice(quota.policy.price(&route.target_model).copied());
        }
    }

    pub(super) fn set_route(
        &mut self,
        model: &str,
        provider: &Provider,
        target_model: &str,
        planned_stream: bool,
        signing: Option<SigningPlan>,
    ) {
        self.route = Some(Route {
            model: model.to_string(),
            provider: provider.name.clone(),
            dialect: provider.kind.dialect(),
            kind: provider.kind,
            target_model: target_model.to_string(),
            planned_stream,
            signing: signing.map(Box::new),
        });
    }

    /// Headers decided after the body (a SigV4 signature), for the shell to hand to the
    /// module's header-applying instance through filter state.
    pub fn deferred_headers(&self) -> &[(String, String)] {
        &self.deferred_headers
    }

    /// Records a local rejection and builds its reply in the client's dialect.
    pub(super) fn reject(&mut self, error: &GatewayError) -> LocalReply {
        self.rejection = Some((error.reason(), error.guard_rule().map(str::to_string)));
        self.answer(error.to_reply(self.client))
    }

    /// Records that the gateway answers this request itself.
    pub(super) fn answer(&mut self, reply: LocalReply) -> LocalReply {
        self.status = Some(reply.status);
        self.replied = true;
        self.body = ResponseBody::Opaque;
        reply
    }

    /// Refuses the request once its body is seen (see `Gateway::route`).
    pub(super) fn defer_rejection(&mut self, error: GatewayError) {
        self.deferred_rejection = Some(error);
    }

    /// Who the fleet-wide budget charges for this request: the identified consumer, its
    /// plan and the routed model (`quota::fleet`); `None` before routing or without identity.
    pub fn fleet_descriptor(&self) -> Option<Descriptor<'_>> {
        let consumer = self.consumer.as_ref()?;
        let route = self.route.as_ref()?;
        Some(Descriptor { consumer: &consumer.name, plan: consumer.plan.as_deref().unwrap_or(""), model: &route.model })
    }

    /// The request was admitted here (body read, routed, not answered): the fleet-wide
    /// check is what remains before it may leave.
    pub fn needs_fleet_check(&self) -> bool {
        self.body_seen && !self.replied && self.fleet_descriptor().is_some()
    }

    /// The rate-limit service's answer to the fleet check: a reply in the client's dialect
    /// when the request may not leave (its local reservation is released at the end).
    pub fn on_fleet_verdict(&mut self, verdict: &Verdict) -> Option<LocalReply> {
        let error = match verdict {
            Verdict::Admit => return None,
            Verdict::OverLimit => GatewayError::FleetOverBudget {
                consumer: self.consumer.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
            },
            Verdict::Unavailable(reason) => {
                self.log_line = Some(format!("llm-gateway: fleet budget service unavailable ({reason}): refused"));
                GatewayError::FleetUnavailable
            }
        };
        Some(self.reject(&error))
    }

    /// The body must be read before the request may go anywhere: the shell buffers it and
    /// hands it over complete, whether the stream ends with data or with trailers. Nothing
    /// is forwarded while this is true.
    pub fn awaits_body(&self) -> bool {
        (self.route.is_some() || self.deferred_rejection.is_some()) && !self.replied && !self.body_seen
    }

    /// Names for the access log, known from the request headers on.
    pub fn route_fields(&self) -> [(&'static str, Option<&str>); 4] {
        [
            // Known at request time, so other filters (rate limits, RBAC) can read it.
            ("llm_consumer", self.consumer.as_ref().map(|c| c.name.as_str())),
            ("llm_model", self.requested_model.as_deref()),
            // A fallback chain's provider and target are known at the response.
            ("llm_provider", self.route.as_ref().map(|r| r.provider.as_str()).filter(|p| !p.is_empty())),
            (
                "llm_target_model",
                self.route.as_ref().filter(|r| !r.provider.is_empty()).map(|r| r.target_model.as_str()),
            ),
        ]
    }

    /// The largest request body admitted, in bytes.
    pub fn body_limit(&self) -> usize {
        self.limits.max_request_body_bytes
    }

    /// The request body has grown to `size` bytes: refuse it past the limit.
    pub fn reject_oversized_body(&mut self, size: usize) -> Option<LocalReply> {
        let limit = self.limits.max_request_body_bytes;
        (size > limit).then(|| self.reject(&GatewayError::BodyTooLarge { limit }))
    }

    fn translates(&self) -> bool {
        if self.prompt_api.is_some() {
            return true; // the answer is the prompt API's own shape
        }
        let client_dialect = match self.client {
            ClientDialect::OpenAi => ProviderDialect::OpenAi,
            ClientDialect::Anthropic => ProviderDialect::Anthropic,
            // Only OpenAI itself speaks it (`Operation::upstream`).
            ClientDialect::Responses => {
                return self.route.as_ref().is_some_and(|r| r.kind != ProviderKind::OpenAi);
            }
        };
        self.route.as_ref().is_some_and(|r| r.dialect != client_dialect)
    }

    /// The whole request body (the shell buffers it). Same dialect: patch `model` (and
    /// OpenAI's `stream_options`) in place. Otherwise: translate through the IR.
    pub fn on_request_body(
        &mut self,
        body: &[u8],
        now_ms: u64,
        quota: Option<Quota<'_>>,
        prompts: Option<&Prompts>,
    ) -> BodyAction {
        self.body_seen = true;
        if let Some(reply) = self.reject_oversized_body(body.len()) {
            return BodyAction::Reply(reply);
        }
        // One strict pass over the whole body before anything reads it: a key repeated in
        // any object is refused (the gateway, Envoy's json_to_metadata and the provider would
        // not agree on its value), and media parts are counted for the estimate.
        let facts = match json_scan::inspect(body) {
            Ok(facts) => facts,
            Err(error) => {
                let error = match error {
                    // A prompt API's body is its variables: its own error names that.
                    InspectError::Syntax(e) if self.prompt_api.is_some() => {
                        GatewayError::PromptApi(crate::prompt::PromptError::InvalidBody { detail: e.to_string() })
                    }
                    error => inspect_error(error),
                };
                return BodyAction::Reply(self.reject(&error));
            }
        };
        // A prompt API's body holds variables; one may be called `model`.
        let model_error = match self.prompt_api {
            None => body_model_error(body, &facts.members, self.requested_model.as_deref(), self.model_from_body),
            Some(_) => None,
        };
        if let Some(error) = model_error {
            return BodyAction::Reply(self.reject(&error));
        }
        if let Some(error) = self.deferred_rejection.take() {
            return BodyAction::Reply(self.reject(&error));
        }
        let Some(route) = self.route.clone() else {
            return BodyAction::Unchanged;
        };
        // Responses and Embeddings bypass the IR: the prompt layer screens their JSON.
        let screened = match self.screen_raw(&route, body, prompts) {
            Ok(screened) => screened,
            Err(error) => return BodyAction::Reply(self.reject(&error)),
        };
        let (body, facts) = match &screened {
            Some(masked) => match json_scan::inspect(masked) {
                Ok(facts) => (masked.as_slice(), facts),
                Err(error) => return BodyAction::Reply(self.reject(&inspect_error(error))),
            },
            None => (body, facts),
        };
        let media = Media {
            count: facts.media,
            tokens_each: crate::quota::estimate::media_tokens(route.dialect, &route.target_model),
        };
        // The prompt layer works on the IR, so configured prompts take the IR path even
        // when client and provider share a dialect.
        let prompts = prompts.filter(|_| self.operation == Some(Operation::Chat));
        let translated_embeddings =
            self.operation == Some(Operation::Embeddings) && route.dialect != ProviderDialect::OpenAi;
        let result = if translated_embeddings {
            self.translate_embeddings(&route, body, quota, now_ms)
        } else if self.translates() || prompts.is_some() {
            self.translate_request(&route, body, media, quota, now_ms, prompts)
        } else {
            self.patch_request(&route, body, &facts, media, quota, now_ms)
        };
        match result {
            Ok(new_body) => {
                if let Some(plan) = &route.signing {
                    self.deferred_headers = plan.sign(&new_body, now_ms / 1000);
                }
                BodyAction::Replace(new_body)
            }
            Err(error) => BodyAction::Reply(self.reject(&error)),
        }
    }

    /// Guards and masks for a Responses or Embeddings body (see `prompt::RawApi`): the masked
    /// body when a mask changed it.
    fn screen_raw(
        &self,
        route: &Route,
        body: &[u8],
        prompts: Option<&Prompts>,
    ) -> Result<Option<Vec<u8>>, GatewayError> {
        let api = match self.operation {
            Some(Operation::Responses) => RawApi::Responses,
            Some(Operation::Embeddings) => RawApi::Embeddings,
            _ => return Ok(None),
        };
        let Some(prompts) = prompts else { return Ok(None) };
        let consumer = self.consumer.as_ref().map(|c| c.name.as_str());
        let ctx = PromptContext { path: &self.path, consumer, model: &route.model };
        let screened = prompts.screen_raw(api, body, &ctx).map_err(GatewayError::Prompt)?;
        Ok(screened.map(|masked| masked.body))
    }

    fn patch_request(
        &mut self,
        route: &Route,
        body: &[u8],
        facts: &BodyFacts,
        media: Media,
        quota: Option<Quota<'_>>,
        now_ms: u64,
    ) -> Result<Vec<u8>, GatewayError> {
        let members = &facts.members;
        let value = |key: &str| member_value(body, members, key);
        // The whole body is estimated, as the translated path does: `system`, `tools`,
        // `response_format`, `instructions`... are prompt too (the JSON around them makes it
        // a slight over-estimate, the safe side).
        self.input_estimate = estimate_tokens(body.len());
        self.stream = value("stream") == Some(b"true");
        self.client_wants_usage = self.client == ClientDialect::Anthropic;
        let mut edits =
            vec![json_scan::set_member(body, members, "model", &json_scan::json_string(&route.target_model))];
        // Every member that caps output here, validated; the largest is what may be produced.
        let fields = output_fields(self.operation, self.client);
        let mut requested: Vec<(&str, u64)> = Vec::new();
        for field in fields {
            if let Some(n) = positive_integer(field, value(field), u64::MAX)? {
                requested.push((field, n));
            }
        }
        let choices = self.choices(body, members)?;
        let requested_max = requested.iter().map(|(_, n)| *n).max();
        // Each choice may produce the whole cap; with no cap, the default output reserve is
        // per choice too.
        let reserve = quota.map(|q| &q.policy.settings().reserve);
        let per_choice_ask =
            requested_max.or_else(|| reserve.filter(|_| choices > 1).map(|r| r.default_max_output_tokens));
        let total = per_choice_ask.map(|n| n.saturating_mul(choices));
        let clamped = self.reserve(route, quota, body, media, total, now_ms)?;
        // The client set no cap: clamping sets one (per choice), as it does for one choice.
        let clamped = clamped.or_else(|| {
            let clamp = reserve.is_some_and(|r| r.clamp) && requested_max.is_none();
            self.reservation.as_ref().filter(|_| clamp).map(|r| r.output_tokens())
        });
        if let Some(clamped) = clamped {
            let per_choice = self.per_choice(quota, clamped, choices, now_ms)?;
            // Lower every cap above what the budget pays for; make sure the member the
            // provider reads carries it.
            for (field, n) in &requested {
                if *n > per_choice {
                    edits.push(json_scan::set_member(body, members, field, per_choice.to_string().as_bytes()));
                }
            }
            // Inserted only when no cap the provider honours was sent: OpenAI's family reads
            // both names and refuses both at once; the others may ignore the newer name.
            let read = self.provider_output_field(route);
            let honoured =
                |field: &str| Some(field) == read || (read == Some("max_completion_tokens") && field == "max_tokens");
            if let Some(read) = read.filter(|_| !requested.iter().any(|(f, _)| honoured(f))) {
                edits.push(json_scan::set_member(body, members, read, per_choice.to_string().as_bytes()));
            }
        }
        if self.attempt && route.kind.max_tokens_field() == "max_tokens" && value("max_tokens").is_none() {
            // A fallback chain's attempt: the downstream instance capped output where OpenAI
            // reads it; a target that reads only `max_tokens` gets the cap there too.
            if let Some(cap) = value("max_completion_tokens").filter(|_| self.client == ClientDialect::OpenAi) {
                edits.push(json_scan::set_member(body, members, "max_tokens", cap));
            }
        }
        if self.stream && self.client == ClientDialect::OpenAi && self.operation == Some(Operation::Chat) {
            let (wants, edit) = stream_options_edit(body, members, value("stream_options"));
            self.client_wants_usage = wants;
            edits.extend(edit);
        }
        Ok(json_scan::apply_edits(body, &edits))
    }

    /// How many answers one request asks for (OpenAI chat `n`, and `best_of` that some
    /// OpenAI-compatible servers accept): each may produce the whole output cap.
    fn choices(&self, body: &[u8], members: &[Member]) -> Result<u64, GatewayError> {
        if (self.operation, self.client) != (Some(Operation::Chat), ClientDialect::OpenAi) {
            return Ok(1);
        }
        let value = |key: &str| member_value(body, members, key);
        // OpenAI's own bound on `n`.
        let n = positive_integer("n", value("n"), 128)?.unwrap_or(1);
        let best_of = positive_integer("best_of", value("best_of"), 128)?.unwrap_or(1);
        Ok(n.max(best_of))
    }

    /// The output cap of each choice when the budget pays for `total` output tokens in all;
    /// refuses (and gives the reservation back) when that is below the configured minimum.
    fn per_choice(
        &mut self,
        quota: Option<Quota<'_>>,
        total: u64,
        choices: u64,
        now_ms: u64,
    ) -> Result<u64, GatewayError> {
        let per_choice = total / choices.max(1);
        let minimum = quota.map_or(1, |q| q.policy.settings().reserve.min_output_tokens).max(1);
        if choices == 1 || per_choice >= minimum {
            return Ok(per_choice.max(1));
        }
        let headers = self.budget_headers(now_ms).into_iter().filter_map(|op| match op {
            HeaderOp::Set(name, value) => Some((name, value)),
            HeaderOp::Remove(_) => None,
        });
        let headers = headers.collect();
        if let (Some(quota), Some(reservation)) = (quota, self.reservation.take()) {
            crate::quota::release(quota.store, reservation);
        }
        Err(GatewayError::OverBudget {
            message: format!(
                "The budget left pays for {total} output tokens: not enough for {choices} choices of at least \
                 {minimum} tokens each. Ask for fewer choices (`n`) or retry later."
            ),
            headers,
        })
    }

    /// The member the provider reads the output cap from, for the operations the gateway
    /// clamps (chat and Responses; embeddings produce no output tokens).
    fn provider_output_field(&self, route: &Route) -> Option<&'static str> {
        match (self.operation, self.client) {
            (Some(Operation::Chat), ClientDialect::OpenAi) => Some(route.kind.max_tokens_field()),
            (Some(Operation::Chat), ClientDialect::Anthropic) => Some("max_tokens"),
            (Some(Operation::Responses), _) => Some("max_output_tokens"),
            _ => None,
        }
    }

    fn translate_request(
        &mut self,
        route: &Route,
        body: &[u8],
        media: Media,
        quota: Option<Quota<'_>>,
        now_ms: u64,
        prompts: Option<&Prompts>,
    ) -> Result<Vec<u8>, GatewayError> {
        let consumer = self.consumer.as_ref().map(|c| c.name.clone());
        // A prompt API's route is only chosen when prompts are configured (`Gateway::route`).
        let mut request = if let (Some(prompts), Some(api)) = (prompts, &self.prompt_api) {
            let call =
                prompts.build_request(api, body, consumer.as_deref(), self.roll).map_err(GatewayError::PromptApi)?;
            self.template = Some((call.used.template, call.used.version));
            call.request
        } else {
            let selection = match prompts {
                Some(_) => take_selection(body).map_err(GatewayError::Prompt)?,
                None => None,
            };
            let (selection, body) = match &selection {
                Some((sel, stripped)) => (Some(sel), stripped.as_slice()),
                None => (None, body),
            };
            let mut request = dialect::decode_request(self.client, body).map_err(GatewayError::Translate)?;
            if let Some(prompts) = prompts {
                let ctx = PromptContext { path: &self.path, consumer: consumer.as_deref(), model: &route.model };
                let applied =
                    prompts.prepare(&mut request, selection, &ctx, self.roll).map_err(GatewayError::Prompt)?;
                self.template = applied.template.map(|t| (t.template, t.version));
            }
            request
        };
        dialect::require_messages(self.client, &request).map_err(GatewayError::Translate)?;
        request.model = route.target_model.clone();
        self.stream = request.stream;
        self.client_wants_usage = request.stream_usage;
        let path_depends_on_stream = matches!(route.dialect, ProviderDialect::Gemini | ProviderDialect::Bedrock);
        if path_depends_on_stream && request.stream != route.planned_stream {
            return Err(GatewayError::StreamNotRoutable);
        }
        let mut encoded = encode_for(route, &request)?;
        // Estimated from what the provider will read: template and decorator text included.
        if let Some(clamped) = self.reserve(route, quota, &encoded, media, request.max_tokens, now_ms)? {
            if request.max_tokens != Some(clamped) {
                request.max_tokens = Some(clamped);
                encoded = encode_for(route, &request)?;
            }
        }
        self.input_estimate = estimate_tokens(encoded.len());
        Ok(encoded)
    }

    /// An OpenAI embeddings request in Gemini's or Bedrock's embeddings API
    /// (`llm::embeddings`). Reserved like a passthrough embeddings request (no output cap);
    /// the input estimate is the text's, for a provider that reports no tokens.
    fn translate_embeddings(
        &mut self,
        route: &Route,
        body: &[u8],
        quota: Option<Quota<'_>>,
        now_ms: u64,
    ) -> Result<Vec<u8>, GatewayError> {
        let Some(target) = embeddings::Target::of(route.dialect, &route.target_model) else {
            // `Gateway::route` refuses these before the body.
            return Err(GatewayError::UnsupportedOperation {
                operation: "embeddings",
                provider: route.provider.clone(),
            });
        };
        let request = embeddings::decode_request(body).map_err(GatewayError::Translate)?;
        let encoded =
            embeddings::encode_request(target, &route.target_model, &request).map_err(GatewayError::Translate)?;
        self.reserve(route, quota, &encoded, Media { count: 0, tokens_each: 0 }, None, now_ms)?;
        self.input_estimate = estimate_tokens(request.text_bytes());
        self.embeddings = Some(EmbeddingsReply {
            target,
            inputs: request.inputs.len(),
            base64: request.base64,
            header_tokens: None,
            estimate: self.input_estimate,
        });
        Ok(encoded)
    }

    /// Whether the shell should read Bedrock's input-token header (a host call, so only for
    /// translated embeddings).
    pub fn reads_input_token_header(&self) -> bool {
        self.embeddings.is_some()
    }

    /// Bedrock's `x-amzn-bedrock-input-token-count` response header, read by the shell before
    /// [`Exchange::on_response`]: the input tokens of an `InvokeModel` answer whose body has
    /// none (Cohere Embed on Bedrock).
    pub fn note_input_token_header(&mut self, value: Option<&str>) {
        let tokens = value.and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(reply) = self.embeddings.as_mut() {
            reply.header_tokens = tokens;
        }
    }

    /// Reserves the request's budget (when budgets apply). Returns the output cap the
    /// budget can pay for, when clamping lowered or set it.
    fn reserve(
        &mut self,
        route: &Route,
        quota: Option<Quota<'_>>,
        prompt: &[u8],
        media: Media,
        max_output_tokens: Option<u64>,
        now_ms: u64,
    ) -> Result<Option<u64>, GatewayError> {
        let (Some(quota), Some(consumer)) = (quota, &self.consumer) else { return Ok(None) };
        // The estimator the config chose (exact BPE counting needs the upstream model), with
        // the least each image can cost.
        let estimate = quota.policy.prompt_with_media(prompt, max_output_tokens, media);
        let reserved = quota.policy.reserve(
            quota.store,
            &consumer.name,
            consumer.plan.as_deref(),
            &route.model,
            &route.target_model,
            estimate,
            now_ms / 1000,
        );
        match reserved {
            Ok(reservation) => {
                let cap = reservation.max_tokens();
                self.reservation = Some(reservation);
                Ok(cap)
            }
            Err(rejection) => {
                Err(GatewayError::OverBudget { message: rejection.message(), headers: rejection.headers() })
            }
        }
    }

    /// Budget headers for the response (`x-ratelimit-limit-*`, `-remaining-*`, `-reset-*`).
    pub fn budget_headers(&self, now_ms: u64) -> Vec<HeaderOp> {
        self.reservation
            .as_ref()
            .map(|r| r.headers(now_ms / 1000).into_iter().map(|(n, v)| HeaderOp::Set(n, v)).collect())
            .unwrap_or_default()
    }

    /// Settles the reservation to what was used (or releases it when the provider failed).
    fn settle(&mut self, quota: Option<Quota<'_>>, usage: &crate::usage::Usage, now_ms: u64) {
        let (Some(quota), Some(reservation)) = (quota, self.reservation.take()) else { return };
        let answered = self.status.is_some_and(|s| (200..300).contains(&s));
        if answered || usage.source != crate::usage::UsageSource::None {
            let counts = TokenCounts::from_usage(usage, reservation.reserved_counts());
            self.settled = Some(crate::quota::settle(quota.store, reservation, &counts, now_ms / 1000));
        } else {
            crate::quota::release(quota.store, reservation);
        }
    }

    /// Response headers from the provider: see [`Exchange::on_response`].
    pub fn on_response_headers(&mut self, status: u16, content_type: Option<&str>) -> Vec<HeaderOp> {
        self.on_response(status, content_type, &ResponseOrigin::Upstream, false)
    }

    /// The reply to send instead of the response (after [`Exchange::on_response`]), once.
    pub fn take_reply(&mut self) -> Option<LocalReply> {
        self.pending_reply.take()
    }

    /// A line for the host log, once (the provider's detail of an error the client gets
    /// without it).
    pub fn take_log_line(&mut self) -> Option<String> {
        self.log_line.take()
    }

    /// Response headers: choose how to read the body; returns response-header changes.
    /// Every error the client sees is JSON in its dialect: Envoy's own replies and a
    /// provider's non-JSON error pages are replaced (status kept); a provider refusing the
    /// gateway's credentials becomes a 502 that says nothing of them. `headers_only`: the
    /// response has no body (none can be added then; only the status changes).
    pub fn on_response(
        &mut self,
        status: u16,
        content_type: Option<&str>,
        origin: &ResponseOrigin,
        headers_only: bool,
    ) -> Vec<HeaderOp> {
        if self.replied {
            return Vec::new();
        }
        self.status = Some(status);
        self.headers_only = headers_only;
        let content_type = content_type.unwrap_or_default().trim_start();
        // `application/json`, with parameters, and `+json` types (`application/problem+json`).
        let is_json = content_type.split(';').next().is_some_and(|t| t.trim().to_ascii_lowercase().ends_with("json"));
        if let ResponseOrigin::Envoy(details) = origin {
            let message = format!("llm-gateway: the proxy answered instead of the provider ({details})");
            return self.substitute(status, ErrorKind::from_status(status), message, None);
        }
        let Some(route) = self.route.clone() else {
            self.body = ResponseBody::Opaque;
            return Vec::new();
        };
        if matches!(status, 401 | 403) {
            // The provider refused the gateway's own credential; its message may quote it.
            let message = format!(
                "llm-gateway: provider `{}` rejected the gateway's credentials (HTTP {status}); \
                 the gateway's operator must fix its provider key",
                route.provider
            );
            let heading = format!(
                "llm-gateway: provider `{}` answered HTTP {status} to the gateway's credentials",
                route.provider
            );
            return self.substitute(502, ErrorKind::Server, message, Some(heading));
        }
        let is_stream = content_type.starts_with("text/event-stream")
            || content_type.starts_with("application/vnd.amazon.eventstream");
        let ok = (200..300).contains(&status);
        if !ok && !is_json {
            // An HTML or plain-text error page (a proxy's 502): the client gets its dialect.
            let message =
                format!("llm-gateway: provider `{}` failed with HTTP {status} (a non-JSON body)", route.provider);
            return self.substitute(status, ErrorKind::from_status(status), message, None);
        }
        if ok && !is_stream && !is_json && !content_type.is_empty() {
            // The body is read only after the headers are sent, so an answer that is not
            // JSON is known from its content type here (an undecodable JSON body still
            // reaches the client under the provider's status: translated, as an error body).
            // Measured on Envoy 1.40: returning Pause from the response-header callback to
            // hold the status stops the body too (the host turns StopIteration into
            // StopAllIterationAndWatermark): the body callback never runs, the client hangs.
            let message = format!(
                "llm-gateway: provider `{}` answered HTTP {status} with content-type {content_type:?}, not JSON",
                route.provider
            );
            return self.substitute(502, ErrorKind::Server, message, None);
        }
        let responses_api = self.operation == Some(Operation::Responses);
        let counts_output = self.operation != Some(Operation::Embeddings);
        let client = self.client;
        let started_secs = self.started_ms / 1000;
        let embeddings = self.embeddings.clone();
        let json = |translate: Option<Shape>, error_status: Option<u16>| {
            // A passthrough answer is held until it is known to be complete JSON.
            let hold = (translate.is_none() && error_status.is_none()).then_some(client);
            ResponseBody::Json(Box::new(Buffered {
                copy: Vec::new(),
                seen: 0,
                counts_output,
                hold,
                overflowed: false,
                translate,
                error_status,
                provider: route.dialect,
                responses_api,
                fallback_model: route.target_model.clone(),
                fallback_created: started_secs,
                embeddings: embeddings.clone(),
            }))
        };
        let set_type = |value: &str| {
            vec![
                HeaderOp::Remove("content-length".to_string()),
                HeaderOp::Set("content-type".to_string(), value.to_string()),
            ]
        };
        if self.translates() {
            let shape = match (&self.prompt_api, &self.template) {
                (Some(_), Some((template, version))) => {
                    Shape::Prompt(TemplateUse { template: template.clone(), version: version.clone() })
                }
                _ => Shape::Chat(self.client),
            };
            // An embeddings answer is never a stream: one that claims to be is read as JSON
            // (and refused as unreadable).
            if ok && is_stream && self.embeddings.is_none() {
                let created = self.started_ms / 1000;
                self.body = ResponseBody::Translated(Box::new(Translated {
                    decoder: StreamDecoder::new(route.dialect),
                    encoder: ShapeEncoder::new(shape, self.client_wants_usage, created),
                    events: Vec::new(),
                    fallback_model: Some(route.target_model.clone()),
                }));
                return set_type("text/event-stream");
            }
            self.body = json(Some(shape), (!ok).then_some(status));
            return set_type("application/json");
        }
        if !ok {
            self.body = ResponseBody::Opaque;
            return Vec::new();
        }
        match (is_stream, self.client) {
            (true, ClientDialect::OpenAi | ClientDialect::Responses) => {
                let rewrite = self.stream && !self.client_wants_usage && self.operation == Some(Operation::Chat);
                self.body = ResponseBody::OpenAiSse(Box::new(OpenAiSse {
                    decoder: SseDecoder::new(self.limits.max_sse_event_bytes),
                    rewrite,
                    broken: false,
                    terminated: false,
                    tail: Vec::new(),
                    events: Vec::new(),
                    responses_api,
                }));
            }
            (true, ClientDialect::Anthropic) => {
                self.body = ResponseBody::Observed(Box::new(Observed {
                    decoder: StreamDecoder::new(route.dialect),
                    events: Vec::new(),
                    tail: Vec::new(),
                }));
            }
            (false, _) => self.body = json(None, None),
        }
        // Streams may be rewritten or ended by the gateway when the provider cuts them; a
        // JSON answer is held, and replaced by an error when it is not complete JSON.
        vec![HeaderOp::Remove("content-length".to_string())]
    }

    /// Replaces the response with a gateway error in the client's dialect, under `status`.
    /// With a `log_heading`, the dropped body goes to the host log under it.
    fn substitute(
        &mut self,
        status: u16,
        kind: ErrorKind,
        message: String,
        log_heading: Option<String>,
    ) -> Vec<HeaderOp> {
        self.status = Some(status);
        let error = ProviderError { kind, status, message };
        let body = match (&self.prompt_api, self.client) {
            (Some(_), _) => dialect::encode_error(ClientDialect::OpenAi, &error),
            (None, client) => dialect::encode_error(client, &error),
        };
        if self.headers_only {
            // No body can be added to a response that ends with its headers: the gateway
            // answers in its place (a local reply while encoding replaces the response
            // before anything reached the client; measured through Envoy 1.40).
            self.log_line = log_heading;
            let reply = LocalReply { status, headers: super::reply::json_headers(), body };
            self.pending_reply = Some(self.answer(reply));
            return Vec::new();
        }
        self.body = ResponseBody::Substitute(Box::new(Substitute { body, log_heading, dropped: Vec::new() }));
        vec![
            HeaderOp::Set(":status".to_string(), status.to_string()),
            HeaderOp::Remove("content-length".to_string()),
            HeaderOp::Remove("content-encoding".to_string()),
            HeaderOp::Set("content-type".to_string(), "application/json".to_string()),
        ]
    }

    /// One response body chunk, as it arrives.
    pub fn on_response_body(&mut self, chunk: &[u8], end_of_stream: bool, now_ms: u64) -> BodyAction {
        let max = self.limits.max_response_body_bytes;
        let rewrite = self.body.chunk(&mut self.meter, chunk, end_of_stream, now_ms, max);
        if end_of_stream {
            if let ResponseBody::Substitute(substitute) = &self.body {
                self.log_line = substitute.log_line();
            }
            // Read to the end: nothing is left for `finish` to account for.
            self.body = ResponseBody::Opaque;
        }
        match rewrite {
            Some(bytes) => BodyAction::Replace(bytes),
            None => BodyAction::Unchanged,
        }
    }

    /// Ends the exchange (response complete, or the client went away). Returns the record
    /// once; later calls return `None`.
    pub fn finish(&mut self, now_ms: u64, quota: Option<Quota<'_>>) -> Option<Record> {
        if self.finished {
            return None;
        }
        self.finished = true;
        self.body.abandon(&mut self.meter, now_ms);
        let meter = &self.meter;
        let answered = self.status.is_some_and(|s| (200..300).contains(&s)) && self.route.is_some();
        // An answer is charged what the provider reported, completed by the estimate where
        // the report is missing, partial or cut short.
        let usage = if answered { meter.settled_usage(self.input_estimate) } else { meter.usage };
        self.settle(quota, &usage, now_ms);
        let meter = &self.meter;
        let duration_ms = now_ms.saturating_sub(self.started_ms);
        let time_to_first_token_ms =
            meter.first_token_ms.filter(|_| self.stream).map(|t| t.saturating_sub(self.started_ms));
        let time_per_output_token_ms = match (meter.first_token_ms, usage.output) {
            (Some(first), Some(out)) if self.stream && out > 1 => Some(now_ms.saturating_sub(first) / (out - 1)),
            _ => None,
        };
        let route = self.route.as_ref();
        Some(Record {
            operation: self.operation,
            model: route.map(|r| r.model.clone()),
            requested_model: self.requested_model.clone(),
            // A fallback chain that no target answered names no provider.
            provider: route.map(|r| r.provider.clone()).filter(|p| !p.is_empty()),
            target_model: route.filter(|r| !r.provider.is_empty()).map(|r| r.target_model.clone()),
            // No response at all: the client went away (Envoy logs 0 too).
            status: self.status.unwrap_or(0),
            stream: self.stream,
            usage,
            duration_ms,
            time_to_first_token_ms,
            time_per_output_token_ms,
            consumer: self.consumer.as_ref().map(|c| c.name.clone()),
            consumer_label: self.consumer.as_ref().map(|c| {
                if self.consumer_listed {
                    c.name.clone()
                } else {
                    "unlisted".to_string()
                }
            }),
            cost_micros: self.settled.as_ref().and_then(|s| s.cost_micros),
            template: self.template.clone(),
            rejection: self.rejection.clone(),
            budget_remaining: match &self.settled {
                Some(settled) if self.consumer_listed => settled.remaining.clone(),
                _ => Vec::new(),
            },
            attempts: self.attempts.clone(),
        })
    }
}

/// The body's `model` against the name the request was routed by. Envoy's json_to_metadata
/// read the model before the module saw the body, with its own parser; a body whose model
/// is not a string, or reads differently here, is refused rather than sent where it was
/// not meant to go. `members`: the body's top-level members, as `json_scan::inspect` read them.
fn body_model_error(
    body: &[u8],
    members: &[Member],
    routed: Option<&str>,
    routed_by_body: bool,
) -> Option<GatewayError> {
    let invalid = |message: &str| {
        Some(GatewayError::Translate(TranslateError::Invalid {
            field: "model".to_string(),
            message: message.to_string(),
        }))
    };
    let Some(raw) = member_value(body, members, "model") else {
        return if routed_by_body {
            invalid("the model was read before the body and is missing from it")
        } else {
            None
        };
    };
    match serde_json::from_slice::<String>(raw) {
        Err(_) => invalid("must be a string"),
        Ok(model) if routed_by_body && Some(model.as_str()) != routed => {
            invalid("the body names a different model than the one it was routed by")
        }
        Ok(_) => None,
    }
}

/// The raw value of top-level member `key`.
fn member_value<'a>(body: &'a [u8], members: &[Member], key: &str) -> Option<&'a [u8]> {
    json_scan::find(members, key).and_then(|m| body.get(m.value.clone()))
}

/// The body could not be admitted as it is.
fn inspect_error(error: InspectError) -> GatewayError {
    match error {
        InspectError::Syntax(e) => GatewayError::InvalidJson { detail: e.to_string() },
        InspectError::DuplicateKey { path, key } => GatewayError::DuplicateKey { path, key },
    }
}

/// The members that cap output tokens in the client's API, for one operation.
fn output_fields(operation: Option<Operation>, client: ClientDialect) -> &'static [&'static str] {
    match (operation, client) {
        (Some(Operation::Chat), ClientDialect::OpenAi) => &["max_completion_tokens", "max_tokens"],
        (Some(Operation::Chat), ClientDialect::Anthropic) => &["max_tokens"],
        (Some(Operation::Responses), _) => &["max_output_tokens"],
        _ => &[],
    }
}

/// A member that must be an integer from 1 to `max` when present (`null` is absent, as
/// OpenAI treats it); anything else is refused in OpenAI's wording, since a value the
/// gateway cannot read is one it cannot budget for.
fn positive_integer(field: &str, raw: Option<&[u8]>, max: u64) -> Result<Option<u64>, GatewayError> {
    let Some(raw) = raw.filter(|r| *r != b"null") else { return Ok(None) };
    let invalid =
        |message: String| GatewayError::Translate(TranslateError::Invalid { field: field.to_string(), message });
    let text = std::str::from_utf8(raw).unwrap_or_default();
    let is_integer =
        !text.is_empty() && text.bytes().enumerate().all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-'));
    if !is_integer {
        let got = match raw.first() {
            Some(b'"') => "a string",
            Some(b'[') => "an array",
            Some(b'{') => "an object",
            Some(b't' | b'f') => "a boolean",
            _ => "a decimal",
        };
        return Err(invalid(format!("Invalid type for '{field}': expected an integer, but got {got} instead.")));
    }
    match text.parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
        Ok(n) if n > max => Err(invalid(format!(
            "Invalid '{field}': integer above maximum value. Expected a value <= {max}, but got {n} instead."
        ))),
        // Zero, negative, or beyond 64 bits (then also above any maximum).
        _ if text.starts_with('-') || text == "0" => Err(invalid(format!(
            "Invalid '{field}': integer below minimum value. Expected a value >= 1, but got {text} instead."
        ))),
        _ => Err(invalid(format!("Invalid '{field}': integer above maximum value, got {text} instead."))),
    }
}

/// The request in the provider's dialect; OpenAI-compatible servers that read only
/// `max_tokens` get the cap there.
fn encode_for(route: &Route, request: &crate::llm::ir::ChatRequest) -> Result<Vec<u8>, GatewayError> {
    let encoded = match route.dialect {
        ProviderDialect::OpenAi => {
            let legacy_max_tokens = route.kind.max_tokens_field() == "max_tokens";
            crate::llm::openai_chat::encode_request_with(
                request,
                crate::llm::openai_chat::EncodeOptions { legacy_max_tokens },
            )
        }
        _ => dialect::encode_request(route.dialect, request),
    };
    encoded.map_err(GatewayError::Translate)
}

/// For a streaming request: whether the client itself asked for usage, and the edit that
/// makes the provider report it.
fn stream_options_edit(body: &[u8], members: &[Member], current: Option<&[u8]>) -> (bool, Option<Edit>) {
    let parsed = current.map(serde_json::from_slice::<serde_json::Value>);
    let mut options = match parsed {
        Some(Ok(serde_json::Value::Object(map))) => map,
        // Absent or null: add ours. Anything else is the provider's to reject.
        None | Some(Ok(serde_json::Value::Null)) => serde_json::Map::new(),
        Some(_) => return (true, None),
    };
    if options.get("include_usage") == Some(&serde_json::Value::Bool(true)) {
        return (true, None);
    }
    options.insert("include_usage".to_string(), serde_json::Value::Bool(true));
    let raw = serde_json::Value::Object(options).to_string();
    (false, Some(json_scan::set_member(body, members, "stream_options", raw.as_bytes())))
}
