//! Fallback on a provider's error *code* (`fallback.on_error`, e.g. `context_length_exceeded`).
//!
//! Envoy decides a retry on the response headers, before the body that names the error is
//! known, so this cannot be one of Envoy's retries. The next best, measured through Envoy
//! 1.40: the per-attempt instance *holds* an error that may carry a code (it buffers the
//! body; the downstream instance pauses the response headers, which stay writable), reads
//! the code once the body is complete and, when it is a trigger, dispatches the request to
//! the chain's next untried target itself (`dispatch_http_call` to that target's cluster,
//! translated for its dialect, with its credential or SigV4 signature). The answer, translated
//! to the client's dialect, replaces the held body; the downstream instance's headers get its
//! status and content type, and the request is settled once, at the price of the target that
//! answered, from the attempt log like any chain. Envoy keeps the transport of every first
//! attempt; only these hops are callouts.

use super::exchange::Exchange;
use super::fallback::{Attempt, AttemptPlan};
use super::{BodyAction, Gateway, HeaderOp, ResponseOrigin};
use crate::llm::ir::ProviderDialect;
use crate::quota::Store;

/// The attempt-log reason of an error held until its body is read.
pub const HOLD_REASON: &str = "held";
/// Filter state: the downstream instance's context id (the attempt resumes it).
pub const DOWNSTREAM_CONTEXT_STATE: &str = "llm_downstream_context";
/// Filter state: the status and content type of what the client gets after a held error
/// (`"<status> <content-type>"`), read by the downstream instance when it resumes.
pub const HOP_OUTCOME_STATE: &str = "llm_hop_outcome";
/// The normalized code for a prompt longer than the model's context, in every dialect.
pub const CONTEXT_LENGTH_EXCEEDED: &str = "context_length_exceeded";

/// What providers say when the prompt does not fit the model's context (lower case):
/// OpenAI (`This model's maximum context length is ...`), Anthropic (`prompt is too long:
/// ...`), Gemini (`The input token count (...) exceeds the maximum number of tokens allowed`),
/// Bedrock (`Input is too long for requested model.`, `too many input tokens`).
const CONTEXT_LENGTH_PHRASES: [&str; 6] = [
    "maximum context length",
    "context_length_exceeded",
    "prompt is too long",
    "input is too long",
    "too many input tokens",
    "exceeds the maximum number of tokens",
];

/// The codes an error body carries, the normalized one first: `context_length_exceeded`
/// when the provider's code or message says so, then the provider's own code and type
/// (OpenAI `error.code`/`error.type`, Anthropic `error.type`, Gemini `error.status`, Bedrock
/// `__type`), lower case. An unreadable body carries none.
pub fn error_codes(dialect: ProviderDialect, body: &[u8]) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else { return Vec::new() };
    let error = value.get("error").filter(|e| e.is_object()).unwrap_or(&value);
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_ascii_lowercase);
    let own: Vec<String> = match dialect {
        ProviderDialect::OpenAi => vec![text(error.get("code")), text(error.get("type"))],
        ProviderDialect::Anthropic => vec![text(error.get("type"))],
        ProviderDialect::Gemini => vec![text(error.get("status"))],
        ProviderDialect::Bedrock => {
            // `ValidationException` or `com.amazon...#ValidationException`.
            let kind = text(value.get("__type")).map(|t| t.rsplit('#').next().unwrap_or_default().to_string());
            vec![kind]
        }
    }
    .into_iter()
    .flatten()
    .filter(|c| !c.is_empty())
    .collect();
    let message = text(error.get("message").or_else(|| value.get("message")).or_else(|| value.get("Message")))
        .unwrap_or_default();
    let too_long = own.iter().any(|c| c == CONTEXT_LENGTH_EXCEEDED)
        || CONTEXT_LENGTH_PHRASES.iter().any(|phrase| message.contains(phrase));
    let mut codes = Vec::with_capacity(own.len() + 1);
    if too_long {
        codes.push(CONTEXT_LENGTH_EXCEEDED.to_string());
    }
    codes.extend(own.into_iter().filter(|c| c != CONTEXT_LENGTH_EXCEEDED));
    codes
}

/// The first configured trigger the error carries.
pub fn matching_trigger<'a>(triggers: &'a [String], codes: &[String]) -> Option<&'a str> {
    triggers.iter().find(|t| codes.iter().any(|c| c.eq_ignore_ascii_case(t))).map(String::as_str)
}

/// A hop ready to dispatch: where, what, and the exchange that reads its answer.
#[derive(Debug)]
pub struct Hop {
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
    /// Translation of the answer (the request's own, for the hop's target).
    pub exchange: Exchange,
    /// The hop's line in the attempt log (no response yet).
    pub attempt: Attempt,
}

/// What the client gets: status, content type and body in its dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopAnswer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl HopAnswer {
    /// For the downstream instance (filter state `HOP_OUTCOME_STATE`).
    pub fn outcome(&self) -> String {
        encode_outcome(self.status, &self.content_type)
    }
}

/// `HOP_OUTCOME_STATE`'s value.
pub fn encode_outcome(status: u16, content_type: &str) -> String {
    format!("{status} {content_type}")
}

/// Reads `HOP_OUTCOME_STATE`: (status, content type).
pub fn decode_outcome(raw: &[u8]) -> Option<(u16, String)> {
    let text = std::str::from_utf8(raw).ok()?;
    let (status, content_type) = text.split_once(' ')?;
    Some((status.parse().ok().filter(|s| (100..=599).contains(s))?, content_type.to_string()))
}

impl Gateway {
    fn chain_route(&self, plan: &AttemptPlan) -> Option<&crate::config::ModelRoute> {
        self.config.lookup(&plan.route).filter(|r| r.fallback.is_some() && r.name == plan.route)
    }

    /// Whether the chain falls back on error codes: each attempt then keeps the admitted
    /// body, which a hop translates for its target.
    pub fn hops_on_error(&self, plan: &AttemptPlan) -> bool {
        self.chain_route(plan).and_then(|r| r.fallback.as_ref()).is_some_and(|f| !f.on_error.is_empty())
    }

    /// The chain's first target no attempt has tried yet (by provider name).
    pub(super) fn next_untried(&self, plan: &AttemptPlan, tried: &[Attempt]) -> Option<String> {
        let route = self.chain_route(plan)?;
        route.targets.iter().find_map(|t| {
            let p = self.config.provider(t.provider)?;
            (!tried.iter().any(|a| a.provider == p.name)).then(|| p.name.clone())
        })
    }

    /// Per attempt, at response headers: whether to hold this error until its body is read
    /// (the route has `on_error` triggers, a target is left, and a JSON body follows). Not
    /// for an attempt Envoy retries anyway, nor for a refused gateway key (401/403).
    pub fn holds_error(
        &self,
        plan: &AttemptPlan,
        status: u16,
        json: bool,
        body_follows: bool,
        tried: &[Attempt],
    ) -> bool {
        let Some(chain) = self.chain_route(plan).and_then(|r| r.fallback.as_ref()) else { return false };
        let error = !(200..300).contains(&status) && !matches!(status, 401 | 403);
        !chain.on_error.is_empty() && error && json && body_follows && self.next_untried(plan, tried).is_some()
    }

    /// Once an error's body is known: the target to hop to and the trigger that matched,
    /// when the body (in the dialect of `provider`, the target that answered) carries a configured code — or
    /// the status is one that moves a chain on (`on_status`, 401/403) — and a target is left.
    pub fn error_hop_target(
        &self,
        plan: &AttemptPlan,
        tried: &[Attempt],
        status: u16,
        provider: &str,
        body: &[u8],
    ) -> Option<(String, String)> {
        let chain = self.chain_route(plan)?.fallback.as_ref()?;
        let dialect = self.config.providers.iter().find(|p| p.name == provider)?.kind.dialect();
        if (200..300).contains(&status) {
            return None;
        }
        let trigger = match matching_trigger(&chain.on_error, &error_codes(dialect, body)) {
            Some(trigger) => trigger.to_string(),
            None if self.should_fall_back(plan, status, tried) => format!("status {status}"),
            None => return None,
        };
        Some((self.next_untried(plan, tried)?, trigger))
    }

    /// The hop to `provider`: the admitted `body` translated for it, its path, authority and
    /// credential (a pooled key chosen with `roll`; a SigV4 signature over the translated
    /// body), to its cluster. An error is the reason no hop can be made (logged; the held
    /// error then goes to the client).
    pub fn start_hop(
        &self,
        plan: &AttemptPlan,
        provider: &str,
        body: &[u8],
        roll: u64,
        now_ms: u64,
        store: &dyn Store,
    ) -> Result<Hop, String> {
        let chain = self.chain_route(plan).and_then(|r| r.fallback.as_ref()).ok_or("not a fallback chain")?;
        let target = self.config.providers.iter().find(|p| p.name == provider).ok_or("unknown provider")?;
        let start = self
            .start_attempt(plan, Some(provider), now_ms)
            .map_err(|reply| String::from_utf8_lossy(&reply.body).into_owned())?;
        let mut exchange = start.exchange;
        let mut ops = start.ops;
        ops.extend(self.choose_key(&mut exchange, roll, now_ms, store));
        let translated = match exchange.on_request_body(body, now_ms, None, None) {
            BodyAction::Replace(bytes) => bytes,
            BodyAction::Unchanged => body.to_vec(),
            BodyAction::Reply(reply) => {
                return Err(format!("the request cannot go to `{provider}`: {}", String::from_utf8_lossy(&reply.body)))
            }
        };
        ops.extend(exchange.deferred_headers().iter().map(|(n, v)| HeaderOp::Set(n.clone(), v.clone())));
        let mut headers = vec![
            (":method".to_string(), "POST".to_string()),
            (":authority".to_string(), target.cluster.clone()),
            ("content-type".to_string(), "application/json".to_string()),
            ("accept-encoding".to_string(), "identity".to_string()),
        ];
        apply_ops(&mut headers, ops);
        Ok(Hop {
            cluster: target.cluster.clone(),
            headers,
            body: translated,
            timeout_ms: chain.on_error_timeout_ms,
            exchange,
            attempt: start.attempt,
        })
    }
}

/// Header changes applied to a header list (names lower case, as Envoy's).
fn apply_ops(headers: &mut Vec<(String, String)>, ops: Vec<HeaderOp>) {
    for op in ops {
        match op {
            HeaderOp::Set(name, value) => {
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
                headers.push((name.to_ascii_lowercase(), value));
            }
            HeaderOp::Remove(name) => headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name)),
        }
    }
}

/// A response (a held error, or a hop's answer) translated to the client's dialect by the
/// exchange that made its request, as the client will get it. `content_type` is the
/// provider's.
pub fn translate_answer(
    exchange: &mut Exchange,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    now_ms: u64,
) -> HopAnswer {
    // A status no client can be given is the provider failing.
    let status = if (100..=599).contains(&status) { status } else { 502 };
    let ops = exchange.on_response(status, content_type, &ResponseOrigin::Upstream, body.is_empty());
    answer_after(exchange, status, content_type, ops, body, now_ms)
}

/// The rest of [`translate_answer`] once `Exchange::on_response` returned `ops` (the held
/// error's were already applied to its headers).
fn answer_after(
    exchange: &mut Exchange,
    status: u16,
    content_type: Option<&str>,
    ops: Vec<HeaderOp>,
    body: &[u8],
    now_ms: u64,
) -> HopAnswer {
    if let Some(reply) = exchange.take_reply() {
        let content_type = super::reply::json_headers().into_iter().map(|(_, v)| v).next().unwrap_or_default();
        return HopAnswer { status: reply.status, content_type, body: reply.body };
    }
    let mut headers = vec![(":status".to_string(), status.to_string())];
    headers.extend(content_type.map(|ct| ("content-type".to_string(), ct.to_string())));
    apply_ops(&mut headers, ops);
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let status = find(":status").and_then(|s| s.parse().ok()).unwrap_or(status);
    let body = match exchange.on_response_body(body, true, now_ms) {
        BodyAction::Replace(bytes) => bytes,
        BodyAction::Unchanged | BodyAction::Reply(_) => body.to_vec(),
    };
    HopAnswer { status, content_type: find("content-type").unwrap_or_default(), body }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(dialect: ProviderDialect, body: &str) -> Vec<String> {
        error_codes(dialect, body.as_bytes())
    }

    #[test]
    fn context_length_is_recognized_in_every_dialect() {
        let openai = r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        assert_eq!(codes(ProviderDialect::OpenAi, openai), ["context_length_exceeded", "invalid_request_error"]);
        let anthropic = r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#;
        assert_eq!(codes(ProviderDialect::Anthropic, anthropic), ["context_length_exceeded", "invalid_request_error"]);
        let gemini = r#"{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(codes(ProviderDialect::Gemini, gemini), ["context_length_exceeded", "invalid_argument"]);
        let bedrock = r#"{"message":"Input is too long for requested model.","__type":"com.amazon.coral.validate#ValidationException"}"#;
        assert_eq!(codes(ProviderDialect::Bedrock, bedrock), ["context_length_exceeded", "validationexception"]);
    }

    #[test]
    fn other_errors_carry_only_their_own_codes() {
        let openai =
            r#"{"error":{"message":"Invalid value for 'temperature'","type":"invalid_request_error","code":null}}"#;
        assert_eq!(codes(ProviderDialect::OpenAi, openai), ["invalid_request_error"]);
        let anthropic = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(codes(ProviderDialect::Anthropic, anthropic), ["overloaded_error"]);
        assert!(codes(ProviderDialect::OpenAi, "<html>502</html>").is_empty());
        assert!(codes(ProviderDialect::Anthropic, "[1,2]").is_empty());
        assert!(codes(ProviderDialect::Gemini, r#"{"error":"a string"}"#).is_empty());
    }

    #[test]
    fn triggers_match_normalized_or_provider_codes_case_insensitively() {
        let triggers = vec!["Context_Length_Exceeded".to_string(), "content_filter".to_string()];
        let carried = vec!["context_length_exceeded".to_string(), "invalid_request_error".to_string()];
        assert_eq!(matching_trigger(&triggers, &carried), Some("Context_Length_Exceeded"));
        assert_eq!(matching_trigger(&triggers, &["invalid_request_error".to_string()]), None);
        assert_eq!(matching_trigger(&[], &carried), None);
    }

    #[test]
    fn outcome_round_trips_and_rejects_garbage() {
        let answer = HopAnswer { status: 200, content_type: "text/event-stream".into(), body: Vec::new() };
        assert_eq!(decode_outcome(answer.outcome().as_bytes()), Some((200, "text/event-stream".to_string())));
        assert_eq!(decode_outcome(b"abc json"), None);
        assert_eq!(decode_outcome(b"9999 x"), None);
        assert_eq!(decode_outcome(b"\xff"), None);
    }
}
