//! Fleet-wide token budgets on a rate-limit service shared by every Envoy: Kuadrant
//! Limitador's check/report API (`kuadrant.service.ratelimit.v1.RateLimitService`), whose
//! messages are Envoy's RLS `RateLimitRequest` / `RateLimitResponse`.
//!
//! Why check/report from the module and not Envoy's rate-limit filter with `hits_addend` at
//! stream end: Envoy puts the tokens in the descriptor's `hits_addend`, which Limitador ignores
//! (it counts 1), and `ShouldRateLimit` drops a charge that would cross the limit anyway
//! (measured: 1,000 tokens spent against a 150-token budget; README "Fleet-wide budgets").
//! `Report` adds unconditionally; `CheckRateLimit`
//! only reads. So the module:
//! 1. **checks** once the request is admitted locally (consumer known, body read): is there
//!    budget left (`used + 1 <= limit`)? Over: 429 in the client's dialect, nothing sent.
//! 2. **reports** the tokens the provider reported (or the estimate for cut streams) when the
//!    exchange ends, from the VM's root context so the call outlives the stream.
//!
//! Overspend bound: a request is admitted while the counter is below the limit, so a window
//! ends at most `limit - 1 + the sum of the requests in flight when it crossed` (each is
//! bounded by its reservation: prompt estimate + clamped output cap). Without concurrency,
//! one request's cost. See README "Fleet-wide budgets".
//!
//! `quota.fleet` configures it:
//! ```json
//! {"cluster": "limitador", "domain": "llm-gateway", "timeout_ms": 500, "failure_mode": "deny"}
//! ```
//! `failure_mode`: `deny` (default; fail closed: the service unreachable, erroring or late
//! answers 503) or `allow` (admit, and still report).

use crate::config_base::ConfigError;
use serde::Deserialize;

/// Kuadrant's check/report service (Limitador, `limitador-server/proto/kuadrantrls.proto`).
pub const SERVICE: &str = "kuadrant.service.ratelimit.v1.RateLimitService";
pub const CHECK_METHOD: &str = "CheckRateLimit";
pub const REPORT_METHOD: &str = "Report";

/// Descriptor entry keys a Limitador limit can use: `descriptors[0]['llm_consumer']`.
pub const CONSUMER_KEY: &str = "llm_consumer";
pub const PLAN_KEY: &str = "llm_plan";
pub const MODEL_KEY: &str = "llm_model";

const DEFAULT_DOMAIN: &str = "llm-gateway";
const DEFAULT_TIMEOUT_MS: u64 = 500;
const MAX_TIMEOUT_MS: u64 = 60_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    /// The Envoy cluster of the rate-limit service (HTTP/2).
    pub cluster: String,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub failure_mode: Option<FailureMode>,
    /// `:authority` of the calls (default: the cluster name when it is a valid host name,
    /// else `limitador`: Istio's `outbound|8081||...` names are refused by HTTP/2 servers).
    #[serde(default)]
    pub authority: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FailureMode {
    /// The request is refused (503) when the service cannot say.
    #[default]
    Deny,
    /// The request is admitted when the service cannot say.
    Allow,
}

/// A validated `quota.fleet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    pub cluster: String,
    pub authority: String,
    pub domain: String,
    pub timeout_ms: u64,
    pub failure_mode: FailureMode,
}

impl Fleet {
    pub fn validate(path: &str, raw: &RawFleet) -> Result<Fleet, ConfigError> {
        let err = |field: &str, message: &str| ConfigError { path: format!("{path}.{field}"), message: message.into() };
        if raw.cluster.trim().is_empty() {
            return Err(err("cluster", "must name the Envoy cluster of the rate-limit service"));
        }
        let domain = raw.domain.clone().unwrap_or_else(|| DEFAULT_DOMAIN.to_string());
        if domain.is_empty() {
            return Err(err("domain", "must not be empty (Limitador ignores requests without a domain)"));
        }
        let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
            return Err(err("timeout_ms", "must be between 1 and 60000"));
        }
        let authority = match &raw.authority {
            Some(a) if is_host(a) => a.clone(),
            Some(_) => return Err(err("authority", "must be a host name (letters, digits, '.', '-', ':')")),
            None if is_host(&raw.cluster) => raw.cluster.clone(),
            None => "limitador".to_string(),
        };
        Ok(Fleet {
            cluster: raw.cluster.clone(),
            authority,
            domain,
            timeout_ms,
            failure_mode: raw.failure_mode.unwrap_or_default(),
        })
    }

    /// The `CheckRateLimit` message for one request.
    pub fn check(&self, who: &Descriptor<'_>) -> Vec<u8> {
        encode_request(&self.domain, who, 1)
    }

    /// The `Report` message charging `tokens`; `None` when there is nothing to charge.
    pub fn report(&self, who: &Descriptor<'_>, tokens: u64) -> Option<Vec<u8>> {
        let hits = u32::try_from(tokens).unwrap_or(u32::MAX);
        (hits > 0).then(|| encode_request(&self.domain, who, hits))
    }

    /// What the service's answer means for the request: `status` is the gRPC status (0 ok),
    /// `body` the response message.
    pub fn verdict(&self, status: u32, body: &[u8]) -> Verdict {
        let unavailable = |reason: String| match self.failure_mode {
            FailureMode::Deny => Verdict::Unavailable(reason),
            FailureMode::Allow => Verdict::Admit,
        };
        if status != 0 {
            return unavailable(format!("grpc status {status}"));
        }
        match overall_code(body) {
            Some(CODE_OK) => Verdict::Admit,
            Some(CODE_OVER_LIMIT) => Verdict::OverLimit,
            Some(code) => unavailable(format!("overall_code {code}")),
            None => unavailable("unreadable response".to_string()),
        }
    }
}

/// A valid HTTP/2 `:authority`: host name characters and an optional port.
fn is_host(value: &str) -> bool {
    !value.is_empty() && value.len() <= 253 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b))
}

/// Who a check or report is for: one descriptor with the consumer, its plan and the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor<'a> {
    pub consumer: &'a str,
    /// Empty when the consumer has no plan.
    pub plan: &'a str,
    /// The public model name, as routed.
    pub model: &'a str,
}

/// The service's answer to a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    OverLimit,
    /// The service could not say (unreachable, error, timeout) and `failure_mode` is deny.
    Unavailable(String),
}

/// Reports waiting to be sent, or sent and not yet answered, in one VM. The root context
/// sends them on its tick (so each answer comes back to it) and sends again, with backoff,
/// the ones the service did not take, so usage is charged across an outage of the service
/// of up to [`RETRY_FOR_MS`]. Bounded: past [`MAX_QUEUED`] the oldest is dropped (counted).
#[derive(Debug, Default)]
pub struct ReportQueue {
    waiting: std::collections::VecDeque<Pending>,
    in_flight: std::collections::HashMap<u32, Pending>,
    /// Reports given up on (retried too long, or pushed out of a full queue).
    pub dropped: u64,
}

#[derive(Debug, Clone)]
struct Pending {
    message: Vec<u8>,
    queued_ms: u64,
    attempts: u32,
    not_before_ms: u64,
}

/// Reports held per VM while the service is away.
pub const MAX_QUEUED: usize = 10_000;
/// How long a report is retried before it is given up.
pub const RETRY_FOR_MS: u64 = 300_000;
/// Backoff between sends of one report: 100 ms doubling up to 5 s.
const FIRST_BACKOFF_MS: u64 = 100;
const MAX_BACKOFF_MS: u64 = 5_000;

impl ReportQueue {
    pub fn push(&mut self, message: Vec<u8>, now_ms: u64) {
        if self.waiting.len() + self.in_flight.len() >= MAX_QUEUED {
            self.waiting.pop_front();
            self.dropped += 1;
        }
        self.waiting.push_back(Pending { message, queued_ms: now_ms, attempts: 0, not_before_ms: 0 });
    }

    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.in_flight.is_empty()
    }

    /// Sends every report whose backoff has passed with `send` (the callout token, or an
    /// error: the report then waits for its next turn).
    pub fn send_waiting(&mut self, now_ms: u64, mut send: impl FnMut(&[u8]) -> Result<u32, String>) -> Option<String> {
        let mut error = None;
        let mut later = std::collections::VecDeque::new();
        while let Some(mut pending) = self.waiting.pop_front() {
            if pending.not_before_ms > now_ms || error.is_some() {
                later.push_back(pending);
                continue;
            }
            pending.attempts += 1;
            match send(&pending.message) {
                Ok(token) => {
                    self.in_flight.insert(token, pending);
                }
                Err(e) => {
                    error = Some(e);
                    self.retry_or_drop(pending, now_ms, &mut later);
                }
            }
        }
        self.waiting = later;
        error
    }

    /// The answer to callout `token` arrived: `taken` when the service counted the report.
    /// Returns false for a token that is not a report.
    pub fn answered(&mut self, token: u32, taken: bool, now_ms: u64) -> bool {
        let Some(pending) = self.in_flight.remove(&token) else { return false };
        if !taken {
            let mut waiting = std::mem::take(&mut self.waiting);
            self.retry_or_drop(pending, now_ms, &mut waiting);
            self.waiting = waiting;
        }
        true
    }

    fn retry_or_drop(&mut self, mut pending: Pending, now_ms: u64, into: &mut std::collections::VecDeque<Pending>) {
        if now_ms.saturating_sub(pending.queued_ms) >= RETRY_FOR_MS {
            self.dropped += 1;
            return;
        }
        let backoff = FIRST_BACKOFF_MS.saturating_mul(1 << pending.attempts.min(16)).min(MAX_BACKOFF_MS);
        pending.not_before_ms = now_ms.saturating_add(backoff);
        into.push_back(pending);
    }
}

/// gRPC status UNAVAILABLE: what an answer that is not gRPC at all (no response, a non-200
/// status, a cut frame) counts as.
const GRPC_UNAVAILABLE: u32 = 14;

/// The HTTP/2 request body of a unary gRPC call: uncompressed flag, big-endian length, message.
/// (The shell sends gRPC through the host's HTTP callouts: see `filter::fleet`.)
pub fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// A unary gRPC answer read as HTTP: (gRPC status, message). `grpc_status` comes from the
/// trailers, or from the headers of a trailers-only answer; anything that is not a complete
/// gRPC answer reads as UNAVAILABLE.
pub fn grpc_answer<'a>(http_status: Option<&str>, grpc_status: Option<&str>, body: &'a [u8]) -> (u32, &'a [u8]) {
    if http_status != Some("200") {
        return (GRPC_UNAVAILABLE, &[]);
    }
    let Some(status) = grpc_status.and_then(|s| s.trim().parse::<u32>().ok()) else {
        return (GRPC_UNAVAILABLE, &[]);
    };
    if status != 0 {
        return (status, &[]);
    }
    let length = body.get(1..5).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_be_bytes);
    let message = match (body.first(), length, body.get(5..)) {
        (Some(0), Some(len), Some(rest)) if rest.len() as u64 == u64::from(len) => Some(rest),
        _ => None,
    };
    match message {
        Some(message) => (0, message),
        None => (GRPC_UNAVAILABLE, &[]),
    }
}

// RateLimitResponse.Code
const CODE_OK: u64 = 1;
const CODE_OVER_LIMIT: u64 = 2;

/// `RateLimitRequest { domain = 1; repeated RateLimitDescriptor descriptors = 2;
/// hits_addend = 3 }`, `RateLimitDescriptor { repeated Entry entries = 1 }`,
/// `Entry { key = 1; value = 2 }` (envoy/service/ratelimit/v3/rls.proto).
fn encode_request(domain: &str, who: &Descriptor<'_>, hits: u32) -> Vec<u8> {
    let mut descriptor = Vec::new();
    for (key, value) in [(CONSUMER_KEY, who.consumer), (PLAN_KEY, who.plan), (MODEL_KEY, who.model)] {
        let mut entry = Vec::new();
        put_bytes(&mut entry, 1, key.as_bytes());
        put_bytes(&mut entry, 2, value.as_bytes());
        put_bytes(&mut descriptor, 1, &entry);
    }
    let mut message = Vec::new();
    put_bytes(&mut message, 1, domain.as_bytes());
    put_bytes(&mut message, 2, &descriptor);
    put_varint(&mut message, 3 << 3, u64::from(hits));
    message
}

fn put_varint(out: &mut Vec<u8>, tag: u64, value: u64) {
    varint(out, tag);
    varint(out, value);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, field << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a varint at `*at`, advancing it; `None` past the end or beyond 64 bits.
fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// `RateLimitResponse.overall_code` (field 1, varint); 0 (UNKNOWN) when absent, as proto3
/// omits defaults. `None` for a message that is not valid protobuf.
fn overall_code(body: &[u8]) -> Option<u64> {
    let mut at = 0;
    let mut code = 0;
    while at < body.len() {
        let key = read_varint(body, &mut at)?;
        match key & 7 {
            0 => {
                let value = read_varint(body, &mut at)?;
                if key >> 3 == 1 {
                    code = value;
                }
            }
            1 => at = at.checked_add(8)?,
            2 => {
                let len = usize::try_from(read_varint(body, &mut at)?).ok()?;
                at = at.checked_add(len)?;
            }
            5 => at = at.checked_add(4)?,
            _ => return None,
        }
        if at > body.len() {
            return None;
        }
    }
    Some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(mode: FailureMode) -> Fleet {
        Fleet {
            cluster: "rls".into(),
            authority: "rls".into(),
            domain: "llm".into(),
            timeout_ms: 100,
            failure_mode: mode,
        }
    }

    const ALICE: Descriptor<'static> = Descriptor { consumer: "alice", plan: "free", model: "gpt" };

    #[test]
    fn request_encodes_domain_entries_and_hits_as_protoc_would() {
        // The layout `protoc --decode_raw` shows for these bytes: 1: "llm", 2 { 1 { 1: key 2: value } x3 }, 3: 300.
        let bytes = fleet(FailureMode::Deny).report(&ALICE, 300).unwrap();
        let mut want = vec![0x0a, 3, b'l', b'l', b'm', 0x12, 59];
        for (k, v) in [("llm_consumer", "alice"), ("llm_plan", "free"), ("llm_model", "gpt")] {
            want.extend([0x0a, (4 + k.len() + v.len()) as u8, 0x0a, k.len() as u8]);
            want.extend(k.bytes());
            want.extend([0x12, v.len() as u8]);
            want.extend(v.bytes());
        }
        want.extend([0x18, 0xac, 0x02]);
        assert_eq!(bytes, want);
    }

    #[test]
    fn nothing_to_report_sends_nothing_and_huge_counts_saturate() {
        let f = fleet(FailureMode::Deny);
        assert_eq!(f.report(&ALICE, 0), None);
        let huge = f.report(&ALICE, u64::MAX).unwrap();
        assert!(huge.ends_with(&[0x18, 0xff, 0xff, 0xff, 0xff, 0x0f]));
        assert!(f.check(&ALICE).ends_with(&[0x18, 1]));
    }

    #[test]
    fn verdicts_follow_the_code_and_the_failure_mode() {
        let deny = fleet(FailureMode::Deny);
        let allow = fleet(FailureMode::Allow);
        assert_eq!(deny.verdict(0, &[0x08, 1]), Verdict::Admit);
        assert_eq!(deny.verdict(0, &[0x08, 2]), Verdict::OverLimit);
        assert_eq!(allow.verdict(0, &[0x08, 2]), Verdict::OverLimit);
        // Other fields (statuses, headers) before the code are skipped.
        assert_eq!(deny.verdict(0, &[0x12, 2, 0x08, 1, 0x08, 2]), Verdict::OverLimit);
        // UNKNOWN (an empty message: proto3 omits 0), errors, garbage: the failure mode says.
        for (status, body) in
            [(0, &[][..]), (14, &[][..]), (4, &[0x08, 1][..]), (0, &[0x0a, 9, 1][..]), (0, &[0xff][..])]
        {
            assert!(matches!(deny.verdict(status, body), Verdict::Unavailable(_)), "{status} {body:?}");
            assert_eq!(allow.verdict(status, body), Verdict::Admit, "{status} {body:?}");
        }
    }

    #[test]
    fn response_parser_never_panics_on_any_short_input() {
        let f = fleet(FailureMode::Deny);
        for a in 0..=255u8 {
            for b in [0u8, 1, 2, 0x7f, 0x80, 0xff] {
                let _ = f.verdict(0, &[a, b]);
                let _ = f.verdict(0, &[a, b, 0x80, 0x80]);
            }
        }
        assert_eq!(overall_code(&[0x80; 11]), None);
    }

    #[test]
    fn config_defaults_and_errors() {
        let raw: RawFleet = serde_json::from_str(r#"{"cluster": "limitador"}"#).unwrap();
        let f = Fleet::validate("quota.fleet", &raw).unwrap();
        assert_eq!((f.domain.as_str(), f.timeout_ms, f.failure_mode), ("llm-gateway", 500, FailureMode::Deny));
        for (json, path) in [
            (r#"{"cluster": " "}"#, "quota.fleet.cluster"),
            (r#"{"cluster": "x", "domain": ""}"#, "quota.fleet.domain"),
            (r#"{"cluster": "x", "timeout_ms": 0}"#, "quota.fleet.timeout_ms"),
        ] {
            let raw: RawFleet = serde_json::from_str(json).unwrap();
            assert_eq!(Fleet::validate("quota.fleet", &raw).unwrap_err().path, path);
        }
        assert!(serde_json::from_str::<RawFleet>(r#"{"cluster": "x", "failure_mode": "open"}"#).is_err());
        assert!(serde_json::from_str::<RawFleet>(r#"{"cluster": "x", "extra": 1}"#).is_err());
        // Istio's cluster names are not authorities; an explicit one must be.
        let authority = |json: &str| {
            let raw: RawFleet = serde_json::from_str(json).unwrap();
            Fleet::validate("quota.fleet", &raw).map(|f| f.authority).map_err(|e| e.path)
        };
        assert_eq!(authority(r#"{"cluster": "limitador.kuadrant:8081"}"#), Ok("limitador.kuadrant:8081".into()));
        assert_eq!(
            authority(r#"{"cluster": "outbound|8081||limitador.ns.svc.cluster.local"}"#),
            Ok("limitador".into())
        );
        assert_eq!(
            authority(r#"{"cluster": "outbound|8081||l", "authority": "limitador.ns.svc"}"#),
            Ok("limitador.ns.svc".into())
        );
        assert_eq!(authority(r#"{"cluster": "x", "authority": "a b"}"#), Err("quota.fleet.authority".into()));
    }

    #[test]
    fn grpc_framing_round_trips_and_bad_answers_read_as_unavailable() {
        let framed = grpc_frame(&[0x08, 1]);
        assert_eq!(framed, [0, 0, 0, 0, 2, 0x08, 1]);
        assert_eq!(grpc_answer(Some("200"), Some("0"), &framed), (0, &[0x08, 1][..]));
        assert_eq!(grpc_answer(Some("200"), Some("8"), &framed), (8, &[][..]));
        for (http, grpc, body) in [
            (None, Some("0"), &framed[..]),
            (Some("503"), Some("0"), &framed[..]),
            (Some("200"), None, &framed[..]),
            (Some("200"), Some("zero"), &framed[..]),
            (Some("200"), Some("0"), &framed[..4]),
            (Some("200"), Some("0"), &[1, 0, 0, 0, 2, 0x08, 1][..]),
            (Some("200"), Some("0"), &[0, 0, 0, 0, 1, 0x08, 1][..]),
        ] {
            assert_eq!(grpc_answer(http, grpc, body).0, GRPC_UNAVAILABLE, "{http:?} {grpc:?} {body:?}");
        }
    }

    #[test]
    fn reports_are_sent_again_with_backoff_until_taken_and_the_queue_stays_bounded() {
        let mut queue = ReportQueue::default();
        queue.push(vec![1], 0);
        queue.push(vec![2], 0);
        let sent = std::cell::RefCell::new(Vec::new());
        let next = std::cell::Cell::new(10);
        let send = |m: &[u8]| {
            sent.borrow_mut().push(m.to_vec());
            next.set(next.get() + 1);
            Ok(next.get())
        };
        assert_eq!(queue.send_waiting(0, send), None);
        assert_eq!(*sent.borrow(), [vec![1], vec![2]]);
        assert!(queue.answered(11, true, 10));
        assert!(queue.answered(12, false, 10));
        assert!(!queue.answered(99, true, 10), "not a report");
        assert!(!queue.is_idle());
        // The refused one waits out its backoff (200 ms after a first attempt) ...
        sent.borrow_mut().clear();
        queue.send_waiting(100, send);
        assert!(sent.borrow().is_empty());
        // ... a send error keeps it waiting ...
        assert_eq!(queue.send_waiting(300, |_| Err("down".into())), Some("down".into()));
        // ... and it goes again once its backoff has passed.
        queue.send_waiting(2_000, send);
        assert_eq!(*sent.borrow(), [vec![2]]);
        queue.answered(13, true, 2_000);
        assert!(queue.is_idle());
        assert_eq!(queue.dropped, 0);
        // Given up once it has been retried for RETRY_FOR_MS.
        queue.push(vec![3], 0);
        let mut now = 0;
        while !queue.is_idle() {
            now += 1_000;
            queue.send_waiting(now, |_| Ok(30));
            queue.answered(30, false, now);
        }
        assert!((RETRY_FOR_MS..RETRY_FOR_MS + 2_000).contains(&now), "{now}");
        assert_eq!(queue.dropped, 1);
        for i in 0..MAX_QUEUED + 5 {
            queue.push(i.to_le_bytes().to_vec(), now);
        }
        assert_eq!(queue.waiting.len(), MAX_QUEUED);
        assert_eq!(queue.dropped, 6);
    }
}
