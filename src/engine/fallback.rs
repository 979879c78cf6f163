//! Fallback across providers through Envoy's retries: the downstream instance admits the
//! request once (identity, budget, prompts) and routes it to the chain's aggregate cluster
//! in the client's own dialect; the per-attempt instance (the module as an Envoy upstream
//! HTTP filter) translates it for the target each attempt reached, sets that target's path
//! and credentials, marks failed attempts for retry and translates the answer back.
//!
//! The two instances talk through filter state (written by one, readable by the other;
//! measured through Envoy 1.40): the attempt plan (downstream -> attempts) and the attempt
//! log (attempts -> downstream, which settles the budget and reports each attempt).

use super::exchange::Exchange;
use super::reply::{json_headers, LocalReply};
use super::route::{Decision, RequestFacts, Route, Routed};
use super::{endpoint, upstream, Gateway, HeaderOp, Operation, RequestAction, ORIGINAL_PATH};
use crate::config::{Fallback, ModelRoute, Provider};
use crate::llm::dialect;
use crate::llm::ir::{ClientDialect, ErrorKind, ProviderDialect, ProviderError};

/// Filter state carrying the attempt plan from the downstream instance to each attempt.
pub const PLAN_STATE: &str = "llm_attempt_plan";
/// Filter state carrying the attempts' outcomes back to the downstream instance.
pub const ATTEMPTS_STATE: &str = "llm_attempt_log";
/// The response header an attempt sets when its outcome should move the request to the
/// next target; the route's retry policy matches it (`retriable_headers`). Removed before
/// the client sees the response.
pub const RETRY_HEADER: &str = "x-llm-gateway-retry";
/// The upstream path of a chained request until an attempt sets the target's: without the
/// per-attempt instance in Envoy's upstream filters, nothing valid reaches a provider (and
/// no credential: the downstream instance sets none).
pub const UNTRANSLATED_PATH: &str = "/llm-gateway/untranslated-needs-the-attempt-filter";

/// What each attempt needs to know of the admitted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptPlan {
    /// The public model name (a configured name, never an alias).
    pub route: String,
    /// The path the client called (its dialect and operation).
    pub path: String,
    /// The request streams (Gemini's and Bedrock's paths depend on it).
    pub stream: bool,
}

impl AttemptPlan {
    pub fn encode(&self) -> String {
        format!("{}\n{}\n{}", self.route, self.path, u8::from(self.stream))
    }

    pub fn decode(raw: &[u8]) -> Option<AttemptPlan> {
        let text = std::str::from_utf8(raw).ok()?;
        let mut lines = text.split('\n');
        let route = lines.next()?.to_string();
        let path = lines.next()?.to_string();
        let stream = match lines.next()? {
            "1" => true,
            "0" => false,
            _ => return None,
        };
        lines.next().is_none().then_some(AttemptPlan { route, path, stream })
    }
}

/// One attempt, as the per-attempt instance reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub provider: String,
    pub target_model: String,
    /// The provider's status; `None` when no response came (reset, connect failure,
    /// per-try timeout: Envoy ends the attempt without running its response callbacks).
    pub status: Option<u16>,
    /// `ok`, `fallback` (marked for retry), `error` (an error the client gets), or
    /// `no_response`.
    pub reason: String,
}

impl Attempt {
    /// Names are printable ASCII without spaces (`config::check_name`): one attempt per
    /// line, fields separated by spaces.
    fn encode(&self) -> String {
        let status = self.status.map_or_else(|| "-".to_string(), |s| s.to_string());
        format!("{} {} {} {}", self.provider, self.target_model, status, self.reason)
    }

    fn decode(line: &str) -> Option<Attempt> {
        let mut fields = line.split(' ');
        let provider = fields.next()?.to_string();
        let target_model = fields.next()?.to_string();
        let status = match fields.next()? {
            "-" => None,
            s => Some(s.parse().ok()?),
        };
        let reason = fields.next()?.to_string();
        fields.next().is_none().then_some(Attempt { provider, target_model, status, reason })
    }
}

/// The attempt log in filter state: one line per attempt, oldest first.
pub fn encode_attempts(attempts: &[Attempt]) -> String {
    attempts.iter().map(Attempt::encode).collect::<Vec<_>>().join("\n")
}

/// Reads the attempt log; unreadable lines are dropped (only the module writes it).
pub fn decode_attempts(raw: &[u8]) -> Vec<Attempt> {
    raw.split(|b| *b == b'\n').filter_map(|line| Attempt::decode(std::str::from_utf8(line).ok()?)).collect()
}

/// An attempt that started: its exchange (translation both ways, no budget: the
/// downstream instance holds the one reservation) and the request-header changes.
#[derive(Debug)]
pub struct AttemptStart {
    pub exchange: Exchange,
    pub ops: Vec<HeaderOp>,
    pub attempt: Attempt,
}

impl Gateway {
    /// Downstream: routes a chained model to its aggregate cluster, body in the client's
    /// dialect. The budget is reserved at the chain's most expensive target and settled at
    /// the price of the target that answered.
    pub(super) fn route_chain(
        &self,
        route: &ModelRoute,
        chain: &Fallback,
        operation: Operation,
        request: &RequestFacts,
        stream: bool,
    ) -> Result<Decision, super::GatewayError> {
        if operation != Operation::Chat {
            return Err(super::GatewayError::UnsupportedOperation {
                operation: operation.as_str(),
                provider: format!("fallback chain of {}", route.name),
            });
        }
        let reserve_model = self.costliest_target(route);
        let plan = AttemptPlan { route: route.name.clone(), path: request.path.clone(), stream };
        let mut ops = vec![
            HeaderOp::Set(self.config.cluster_header.clone(), chain.cluster.clone()),
            HeaderOp::Remove(self.config.model_header.clone()),
            HeaderOp::Remove("content-length".to_string()),
            HeaderOp::Set("accept-encoding".to_string(), "identity".to_string()),
        ];
        ops.extend(super::CLIENT_CREDENTIAL_HEADERS.iter().map(|h| HeaderOp::Remove(h.to_string())));
        ops.extend(
            self.trusted_sources().into_iter().flat_map(|t| t.headers()).map(|h| HeaderOp::Remove(h.to_string())),
        );
        ops.push(HeaderOp::Set(ORIGINAL_PATH.to_string(), request.path.clone()));
        ops.push(HeaderOp::Set(":path".to_string(), UNTRANSLATED_PATH.to_string()));
        let route = Route::chain(&route.name, reserve_model, request.client, stream);
        Ok(Decision::Forward { route, plan: Some(plan), ops })
    }

    /// The chain's target the budget is reserved at: one without a price if any (a money
    /// limit then refuses, as for any unpriced model), else the one whose worst case costs
    /// most.
    fn costliest_target<'a>(&self, route: &'a ModelRoute) -> &'a str {
        let Some(access) = &self.config.access else {
            return route.targets.first().map_or("", |t| t.model.as_str());
        };
        let policy = &access.policy;
        let cost = |model: &str| policy.price(model).map(|p| p.max_cost(1_000_000, 1_000_000));
        let unpriced = route.targets.iter().find(|t| cost(&t.model).is_none());
        let costliest = route.targets.iter().max_by_key(|t| cost(&t.model));
        unpriced.or(costliest).map_or("", |t| t.model.as_str())
    }

    /// Per attempt: the exchange for the target this attempt reached (`provider`: the
    /// endpoint's `llm.provider` metadata). A plan or endpoint that names no target of the
    /// chain is answered with a 502 in the client's dialect (nothing goes upstream).
    pub fn start_attempt(
        &self,
        plan: &AttemptPlan,
        provider: Option<&str>,
        now_ms: u64,
    ) -> Result<AttemptStart, LocalReply> {
        let (operation, client) = endpoint("POST", &plan.path).unwrap_or((Operation::Chat, ClientDialect::OpenAi));
        let misconfigured = |message: String| {
            let error = ProviderError { kind: ErrorKind::Server, status: 502, message };
            LocalReply { status: 502, headers: json_headers(), body: dialect::encode_error(client, &error) }
        };
        let Some((route, chain_target)) = self.chain_target(plan, provider) else {
            return Err(misconfigured(format!(
                "llm-gateway: fallback for model `{}` reached an endpoint whose metadata `llm.provider` ({}) names \
                 no target of its chain",
                plan.route,
                provider.unwrap_or("missing")
            )));
        };
        let (target, provider) = chain_target;
        let upstream_path = upstream::path(provider, operation, &target.model, plan.stream);
        // A SigV4 signature is computed with the body (`Exchange::deferred_headers`) and set
        // by the applier instance after Envoy's buffer filter among the upstream filters.
        let (provider_headers, signing) = upstream::headers(provider, &upstream_path);
        let request = RequestFacts {
            operation: Some(operation),
            client,
            path: plan.path.clone(),
            attempt: true,
            ..RequestFacts::unknown()
        };
        let route = Route::single(&route.name, provider, &target.model, plan.stream, signing);
        let mut ops = vec![HeaderOp::Remove("content-length".to_string())];
        if client == ClientDialect::Anthropic && provider.kind.dialect() != ProviderDialect::Anthropic {
            ops.push(HeaderOp::Remove("anthropic-version".to_string()));
            ops.push(HeaderOp::Remove("anthropic-beta".to_string()));
        }
        ops.extend(provider_headers);
        ops.push(HeaderOp::Set(":path".to_string(), upstream_path));
        let routed = Routed { request, decision: Decision::Forward { route, plan: None, ops } };
        let (exchange, ops) = match Exchange::start(now_ms, self.config.limits, routed) {
            (exchange, RequestAction::Forward(ops)) => (exchange, ops),
            (_, RequestAction::Reply(reply)) => return Err(reply),
        };
        let attempt = Attempt {
            provider: provider.name.clone(),
            target_model: target.model.clone(),
            status: None,
            reason: "no_response".to_string(),
        };
        Ok(AttemptStart { exchange, ops, attempt })
    }

    fn chain_target(
        &self,
        plan: &AttemptPlan,
        provider: Option<&str>,
    ) -> Option<(&ModelRoute, (&crate::config::Target, &Provider))> {
        let route = self.config.lookup(&plan.route).filter(|r| r.fallback.is_some() && r.name == plan.route)?;
        let provider = provider?;
        route.targets.iter().find_map(|t| {
            let p = self.config.provider(t.provider)?;
            (p.name == provider).then_some((route, (t, p)))
        })
    }

    /// Per attempt, at the provider's response headers: whether the status moves the
    /// request to the next target (the route's `fallback.on_status`, and 401/403), which needs a target
    /// of the chain no attempt has tried yet (`attempts`, this one included): the last
    /// target's error goes to the client even when Envoy has retries left.
    pub fn should_fall_back(&self, plan: &AttemptPlan, status: u16, attempts: &[Attempt]) -> bool {
        let Some(route) = self.config.lookup(&plan.route) else { return false };
        let Some(chain) = &route.fallback else { return false };
        let untried = route
            .targets
            .iter()
            .any(|t| self.config.provider(t.provider).is_some_and(|p| !attempts.iter().any(|a| a.provider == p.name)));
        // A refused gateway credential (401/403) is never the client's fault: another
        // target can serve.
        let listed = chain.on_status.contains(&status) || matches!(status, 401 | 403);
        match (listed, untried) {
            (true, true) => log::debug!("model `{}`: HTTP {status} moves the request to the next target", route.name),
            (true, false) => {
                log::debug!("model `{}`: HTTP {status} from the last untried target goes to the client", route.name)
            }
            (false, _) => {}
        }
        untried && listed
    }

    /// Downstream, at the response: the attempt that answered, when it is a target of the
    /// request's chain (the log is the module's own, but nothing unchecked becomes a label).
    pub fn answering_attempt(&self, route: &str, attempts: &[Attempt]) -> Option<Attempt> {
        let route = self.config.lookup(route)?;
        let last = attempts.last()?;
        let known = route.targets.iter().any(|t| {
            t.model == last.target_model && self.config.provider(t.provider).is_some_and(|p| p.name == last.provider)
        });
        known.then(|| last.clone())
    }
}
