//! One request's life, step by step: [`Exchange::start`] (from the request headers'
//! [`Routed`] decision), [`Exchange::on_request_body`] (admission: patch or translation, the
//! budget; `request.rs`), [`Exchange::on_response`] and [`Exchange::on_response_body`] (the
//! body plan and its reader; `response.rs`), [`Exchange::finish`] (settlement and the
//! [`Record`]; `record.rs`).

mod record;
mod request;
mod response;

pub use record::Record;

use super::meter::Meter;
use super::reply::{GatewayError, LocalReply};
use super::response::{EmbeddingsReply, ResponseBody};
use super::route::{Decision, RequestFacts, Route, Routed};
use super::{HeaderOp, Quota, RequestAction};
use crate::config::{Limits, ProviderKind};
use crate::llm::ir::{ClientDialect, ProviderDialect};
use crate::quota::fleet::{Descriptor, Verdict};
use crate::quota::{Reservation, Settlement};

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

/// One request's life. Its state is grouped by phase: what the request headers decided
/// (`request`, `route`, `attempt_plan`, fixed after `Exchange::start`), what the body step
/// decided (`admission`), the response as it is read (`response`), and what the record
/// reports beyond the usage (`outcome`).
#[derive(Debug)]
pub struct Exchange {
    limits: Limits,
    started_ms: u64,
    /// What the request headers decided (`Gateway::route`).
    request: RequestFacts,
    route: Option<Route>,
    /// A fallback chain: what each attempt needs to know (the shell writes it to filter
    /// state).
    attempt_plan: Option<super::AttemptPlan>,
    admission: Admission,
    response: Response,
    outcome: Outcome,
}

/// What the body step decided (and the key the request uses).
#[derive(Debug, Default)]
struct Admission {
    /// A refusal decided at header time that waits for the body to be stated precisely.
    deferred_rejection: Option<GatewayError>,
    /// The body step ran (on the complete body): the request was admitted or refused.
    body_seen: bool,
    /// The template and version the request used.
    template: Option<(String, String)>,
    /// Budget held for this request until it is settled or released.
    reservation: Option<Reservation>,
    /// The request asked for a stream.
    stream: bool,
    /// The client asked for usage in its stream (OpenAI's `stream_options.include_usage`;
    /// Anthropic's streams always carry it).
    client_wants_usage: bool,
    /// Estimated prompt tokens, for when the provider reports none.
    input_estimate: u64,
    /// An embeddings request translated for Gemini or Bedrock: how to read the answer.
    embeddings: Option<EmbeddingsReply>,
    /// Headers decided after the body (a SigV4 signature).
    deferred_headers: Vec<(String, String)>,
    /// The key of the provider's pool this request uses (`engine::keys`).
    key_index: Option<usize>,
}

/// The response as it is read.
#[derive(Debug)]
struct Response {
    status: Option<u16>,
    /// The response ended with its headers.
    headers_only: bool,
    body: ResponseBody,
    meter: Meter,
    /// A reply to send in place of a response that has no body to replace.
    pending_reply: Option<LocalReply>,
}

/// What the record and the host log report beyond the usage.
#[derive(Debug, Default)]
struct Outcome {
    /// The gateway answered itself; the reply passes through the response callbacks untouched.
    replied: bool,
    rejection: Option<(&'static str, Option<String>)>,
    /// What settlement charged (cost and remaining budgets for metrics and the access log).
    settled: Option<Settlement>,
    /// A fallback chain's attempts, as they reported.
    attempts: Vec<super::Attempt>,
    /// A line for the host log (a provider's detail the client must not see).
    log_line: Option<String>,
    finished: bool,
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
    /// Whether a response with this status needs `response.code_details` read to know its
    /// origin. A 2xx is taken as the provider's: Envoy's own replies on the way to one (no
    /// route, no healthy host, reset, timeout, overflow, a filter's refusal) are 4xx/5xx,
    /// and the property read is a host call (about 1.5 us in V8) saved on every success.
    pub fn needs_code_details(status: u16) -> bool {
        !(200..300).contains(&status)
    }

    /// From the `response.code_details` property, when the host gives it.
    pub fn from_code_details(details: Option<&str>) -> Self {
        match details.map(str::trim) {
            None | Some("" | "via_upstream") => ResponseOrigin::Upstream,
            Some(other) => ResponseOrigin::Envoy(other.to_string()),
        }
    }
}

impl Exchange {
    /// Builds the exchange from the request headers' verdict ([`Gateway::route`]), and the
    /// action the shell applies.
    ///
    /// [`Gateway::route`]: super::Gateway
    pub(super) fn start(now_ms: u64, limits: Limits, routed: Routed) -> (Exchange, RequestAction) {
        let mut exchange = Exchange {
            limits,
            started_ms: now_ms,
            request: routed.request,
            route: None,
            attempt_plan: None,
            admission: Admission::default(),
            response: Response {
                status: None,
                headers_only: false,
                body: ResponseBody::Pending,
                meter: Meter::default(),
                pending_reply: None,
            },
            outcome: Outcome::default(),
        };
        let action = match routed.decision {
            Decision::Forward { route, plan, ops } => {
                exchange.route = Some(route);
                exchange.attempt_plan = plan;
                RequestAction::Forward(ops)
            }
            Decision::RefuseAfterBody { error, ops } => {
                exchange.admission.deferred_rejection = Some(error);
                RequestAction::Forward(ops)
            }
            Decision::Refuse(error) => RequestAction::Reply(exchange.reject(&error)),
            Decision::Answer(reply) => RequestAction::Reply(exchange.answer(reply)),
        };
        (exchange, action)
    }

    /// The key of the provider's pool this request uses, once chosen (`engine::keys`).
    pub(super) fn key_index(&self) -> Option<usize> {
        self.admission.key_index
    }

    pub(super) fn use_key(&mut self, index: usize) {
        self.admission.key_index = Some(index);
    }

    /// The provider this exchange talks to (none for a fallback chain downstream: each
    /// attempt has its own).
    pub(super) fn provider_name(&self) -> Option<&str> {
        self.route.as_ref().map(|r| r.provider.as_str()).filter(|p| !p.is_empty())
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
        self.outcome.attempts = attempts;
        let (Some(answered), Some(route)) = (answered, self.route.as_mut()) else { return };
        route.provider = answered.provider;
        route.target_model = answered.target_model;
        if let (Some(quota), Some(reservation)) = (quota, self.admission.reservation.as_mut()) {
            reservation.reprice(quota.policy.price(&route.target_model).copied());
        }
    }

    /// Headers decided after the body (a SigV4 signature), for the shell to hand to the
    /// module's header-applying instance through filter state.
    pub fn deferred_headers(&self) -> &[(String, String)] {
        &self.admission.deferred_headers
    }

    /// Records a local rejection and builds its reply in the client's dialect.
    fn reject(&mut self, error: &GatewayError) -> LocalReply {
        self.outcome.rejection = Some((error.reason(), error.guard_rule().map(str::to_string)));
        self.answer(error.to_reply(self.request.client))
    }

    /// Records that the gateway answers this request itself.
    fn answer(&mut self, reply: LocalReply) -> LocalReply {
        self.response.status = Some(reply.status);
        self.outcome.replied = true;
        self.response.body = ResponseBody::Opaque;
        reply
    }

    /// Who the fleet-wide budget charges for this request: the identified consumer, its
    /// plan and the routed model (`quota::fleet`); `None` before routing or without identity.
    pub fn fleet_descriptor(&self) -> Option<Descriptor<'_>> {
        let consumer = self.request.consumer.as_ref()?;
        let route = self.route.as_ref()?;
        Some(Descriptor { consumer: &consumer.name, plan: consumer.plan.as_deref().unwrap_or(""), model: &route.model })
    }

    /// The request was admitted here (body read, routed, not answered): the fleet-wide
    /// check is what remains before it may leave.
    pub fn needs_fleet_check(&self) -> bool {
        self.admission.body_seen && !self.outcome.replied && self.fleet_descriptor().is_some()
    }

    /// The rate-limit service's answer to the fleet check: a reply in the client's dialect
    /// when the request may not leave (its local reservation is released at the end).
    pub fn on_fleet_verdict(&mut self, verdict: &Verdict) -> Option<LocalReply> {
        let error = match verdict {
            Verdict::Admit => return None,
            Verdict::OverLimit => GatewayError::FleetOverBudget {
                consumer: self.request.consumer.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
            },
            Verdict::Unavailable(reason) => {
                self.outcome.log_line =
                    Some(format!("llm-gateway: fleet budget service unavailable ({reason}): refused"));
                GatewayError::FleetUnavailable
            }
        };
        Some(self.reject(&error))
    }

    /// The body must be read before the request may go anywhere: the shell buffers it and
    /// hands it over complete, whether the stream ends with data or with trailers. Nothing
    /// is forwarded while this is true.
    pub fn awaits_body(&self) -> bool {
        (self.route.is_some() || self.admission.deferred_rejection.is_some())
            && !self.outcome.replied
            && !self.admission.body_seen
    }

    /// Names for the access log, known from the request headers on.
    pub fn route_fields(&self) -> [(&'static str, Option<&str>); 4] {
        [
            // Known at request time, so other filters (rate limits, RBAC) can read it.
            ("llm_consumer", self.request.consumer.as_ref().map(|c| c.name.as_str())),
            ("llm_model", self.request.requested_model.as_deref()),
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

    /// The client's API is not the provider's: the request and the answer are translated.
    fn translates(&self) -> bool {
        if self.request.prompt_api.is_some() {
            return true; // the answer is the prompt API's own shape
        }
        let client_dialect = match self.request.client {
            ClientDialect::OpenAi => ProviderDialect::OpenAi,
            ClientDialect::Anthropic => ProviderDialect::Anthropic,
            // Only OpenAI itself speaks it (`Operation::upstream`).
            ClientDialect::Responses => {
                return self.route.as_ref().is_some_and(|r| r.kind != ProviderKind::OpenAi);
            }
        };
        self.route.as_ref().is_some_and(|r| r.dialect != client_dialect)
    }

    /// Budget headers for the response (`x-ratelimit-limit-*`, `-remaining-*`, `-reset-*`).
    pub fn budget_headers(&self, now_ms: u64) -> Vec<HeaderOp> {
        self.admission
            .reservation
            .as_ref()
            .map(|r| r.headers(now_ms / 1000).into_iter().map(|(n, v)| HeaderOp::Set(n, v)).collect())
            .unwrap_or_default()
    }
}
