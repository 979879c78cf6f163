//! Steps 3 and 4 of a request: the response headers choose how the body is read
//! ([`Exchange::plan`], a [`BodyPlan`]), then each body chunk goes through that reader
//! ([`Exchange::on_response_body`]).

use super::{BodyAction, Exchange, ResponseOrigin};
use crate::engine::reply::{json_headers, LocalReply};
use crate::engine::response::{
    Buffered, Observed, OpenAiSse, ResponseBody, Shape, ShapeEncoder, Substitute, Translated,
};
use crate::engine::route::Route;
use crate::engine::{HeaderOp, Operation};
use crate::llm::dialect::{self, StreamDecoder};
use crate::llm::ir::{ClientDialect, ErrorKind, ProviderError};
use crate::prompt::TemplateUse;

/// How the response body is read, chosen from the response headers.
#[derive(Debug, Clone)]
pub(crate) enum BodyPlan {
    /// The gateway answered itself: its reply passes untouched.
    Untouched,
    /// Passed through unread: nothing was routed, or an error already in the client's
    /// dialect.
    Opaque,
    /// Dropped; a gateway error in the client's dialect takes its place under `status`
    /// (with a `log_heading`, the dropped body goes to the host log under it).
    Substitute { status: u16, kind: ErrorKind, message: String, log_heading: Option<String> },
    /// A provider stream translated event by event into `Shape`.
    TranslateStream(Shape),
    /// A JSON answer (or the provider's JSON error, `error_status`) translated at its end.
    TranslateJson { shape: Shape, error_status: Option<u16> },
    /// An OpenAI stream to an OpenAI-dialect client, observed for usage; `rewrite` removes
    /// the usage chunk the gateway asked for and the client did not.
    ObserveOpenAiStream { rewrite: bool },
    /// A stream in the client's own dialect (Anthropic's), observed for usage.
    ObserveStream,
    /// A JSON answer in the client's dialect, held until it is known to be complete JSON.
    HoldJson,
}

impl Exchange {
    /// Whether the shell should read Bedrock's input-token header (a host call, so only for
    /// translated embeddings).
    pub fn reads_input_token_header(&self) -> bool {
        self.admission.embeddings.is_some()
    }

    /// Bedrock's `x-amzn-bedrock-input-token-count` response header, read by the shell before
    /// [`Exchange::on_response`]: the input tokens of an `InvokeModel` answer whose body has
    /// none (Cohere Embed on Bedrock).
    pub fn note_input_token_header(&mut self, value: Option<&str>) {
        let tokens = value.and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(reply) = self.admission.embeddings.as_mut() {
            reply.header_tokens = tokens;
        }
    }

    /// Response headers from the provider: see [`Exchange::on_response`].
    pub fn on_response_headers(&mut self, status: u16, content_type: Option<&str>) -> Vec<HeaderOp> {
        self.on_response(status, content_type, &ResponseOrigin::Upstream, false)
    }

    /// The reply to send instead of the response (after [`Exchange::on_response`]), once.
    pub fn take_reply(&mut self) -> Option<LocalReply> {
        self.response.pending_reply.take()
    }

    /// A line for the host log, once (the provider's detail of an error the client gets
    /// without it).
    pub fn take_log_line(&mut self) -> Option<String> {
        self.outcome.log_line.take()
    }

    /// Response headers: choose how to read the body (`Exchange::plan`) and follow the
    /// plan; returns response-header changes. `headers_only`: the response has no body (none
    /// can be added then; only the status changes).
    pub fn on_response(
        &mut self,
        status: u16,
        content_type: Option<&str>,
        origin: &ResponseOrigin,
        headers_only: bool,
    ) -> Vec<HeaderOp> {
        let plan = self.plan(status, content_type, origin);
        if let BodyPlan::Untouched = plan {
            return Vec::new();
        }
        self.response.status = Some(status);
        self.response.headers_only = headers_only;
        match plan {
            BodyPlan::Substitute { status, kind, message, log_heading } => {
                self.substitute(status, kind, message, log_heading)
            }
            plan => {
                let (body, ops) = self.reader(plan);
                self.response.body = body;
                ops
            }
        }
    }

    /// How the body of a response with these headers is read. Every error the client sees
    /// is JSON in its dialect: Envoy's own replies and a provider's non-JSON error pages are
    /// replaced (status kept); a provider refusing the gateway's credentials becomes a 502
    /// that says nothing of them.
    pub(crate) fn plan(&self, status: u16, content_type: Option<&str>, origin: &ResponseOrigin) -> BodyPlan {
        if self.outcome.replied {
            return BodyPlan::Untouched;
        }
        let content_type = content_type.unwrap_or_default().trim_start();
        // `application/json`, with parameters, and `+json` types (`application/problem+json`).
        let is_json = content_type.split(';').next().is_some_and(|t| t.trim().to_ascii_lowercase().ends_with("json"));
        if let ResponseOrigin::Envoy(details) = origin {
            let message = format!("llm-gateway: the proxy answered instead of the provider ({details})");
            return BodyPlan::Substitute { status, kind: ErrorKind::from_status(status), message, log_heading: None };
        }
        let Some(route) = &self.route else { return BodyPlan::Opaque };
        if matches!(status, 401 | 403) {
            return credentials_refused(route, status);
        }
        let is_stream = content_type.starts_with("text/event-stream")
            || content_type.starts_with("application/vnd.amazon.eventstream");
        let ok = (200..300).contains(&status);
        if !ok && !is_json {
            // An HTML or plain-text error page (a proxy's 502): the client gets its dialect.
            let message =
                format!("llm-gateway: provider `{}` failed with HTTP {status} (a non-JSON body)", route.provider);
            return BodyPlan::Substitute { status, kind: ErrorKind::from_status(status), message, log_heading: None };
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
            return BodyPlan::Substitute { status: 502, kind: ErrorKind::Server, message, log_heading: None };
        }
        if self.translates() {
            let shape = match (&self.request.prompt_api, &self.admission.template) {
                (Some(_), Some((template, version))) => {
                    Shape::Prompt(TemplateUse { template: template.clone(), version: version.clone() })
                }
                _ => Shape::Chat(self.request.client),
            };
            // An embeddings answer is never a stream: one that claims to be is read as JSON
            // (and refused as unreadable).
            if ok && is_stream && self.admission.embeddings.is_none() {
                return BodyPlan::TranslateStream(shape);
            }
            return BodyPlan::TranslateJson { shape, error_status: (!ok).then_some(status) };
        }
        match (ok, is_stream, self.request.client) {
            (false, ..) => BodyPlan::Opaque,
            (true, true, ClientDialect::OpenAi | ClientDialect::Responses) => BodyPlan::ObserveOpenAiStream {
                rewrite: self.admission.stream
                    && !self.admission.client_wants_usage
                    && self.request.operation == Some(Operation::Chat),
            },
            (true, true, ClientDialect::Anthropic) => BodyPlan::ObserveStream,
            (true, false, _) => BodyPlan::HoldJson,
        }
    }

    /// The body reader a plan names, and the response-header changes it needs (`Untouched`
    /// and `Substitute` are followed by [`Exchange::on_response`] itself).
    fn reader(&self, plan: BodyPlan) -> (ResponseBody, Vec<HeaderOp>) {
        let Some(route) = &self.route else { return (ResponseBody::Opaque, Vec::new()) };
        let set_type = |value: &str| {
            vec![
                HeaderOp::Remove("content-length".to_string()),
                HeaderOp::Set("content-type".to_string(), value.to_string()),
            ]
        };
        // Streams may be rewritten or ended by the gateway when the provider cuts them; a
        // JSON answer is held, and replaced by an error when it is not complete JSON.
        let unknown_length = || vec![HeaderOp::Remove("content-length".to_string())];
        match plan {
            BodyPlan::Untouched | BodyPlan::Opaque | BodyPlan::Substitute { .. } => (ResponseBody::Opaque, Vec::new()),
            BodyPlan::TranslateStream(shape) => {
                let created = self.started_ms / 1000;
                let body = ResponseBody::Translated(Box::new(Translated {
                    decoder: StreamDecoder::new(route.dialect, self.limits.max_sse_event_bytes),
                    encoder: ShapeEncoder::new(shape, self.admission.client_wants_usage, created),
                    events: Vec::new(),
                    fallback_model: Some(route.target_model.clone()),
                }));
                (body, set_type("text/event-stream"))
            }
            BodyPlan::TranslateJson { shape, error_status } => {
                (self.buffered(route, Some(shape), error_status), set_type("application/json"))
            }
            BodyPlan::ObserveOpenAiStream { rewrite } => {
                let body = ResponseBody::OpenAiSse(Box::new(OpenAiSse::new(
                    self.limits.max_sse_event_bytes,
                    rewrite,
                    self.request.operation == Some(Operation::Responses),
                )));
                (body, unknown_length())
            }
            BodyPlan::ObserveStream => {
                let body = ResponseBody::Observed(Box::new(Observed {
                    decoder: StreamDecoder::new(route.dialect, self.limits.max_sse_event_bytes),
                    events: Vec::new(),
                    tail: Vec::new(),
                    cut: false,
                }));
                (body, unknown_length())
            }
            BodyPlan::HoldJson => (self.buffered(route, None, None), unknown_length()),
        }
    }

    /// A JSON body read whole: translated into `translate`'s shape, or (passthrough) held
    /// until it is known to be complete JSON.
    fn buffered(&self, route: &Route, translate: Option<Shape>, error_status: Option<u16>) -> ResponseBody {
        let hold = (translate.is_none() && error_status.is_none()).then_some(self.request.client);
        ResponseBody::Json(Box::new(Buffered {
            copy: Vec::new(),
            seen: 0,
            counts_output: self.request.operation != Some(Operation::Embeddings),
            hold,
            overflowed: false,
            translate,
            error_status,
            provider: route.dialect,
            responses_api: self.request.operation == Some(Operation::Responses),
            fallback_model: route.target_model.clone(),
            fallback_created: self.started_ms / 1000,
            embeddings: self.admission.embeddings.clone(),
        }))
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
        self.response.status = Some(status);
        let error = ProviderError { kind, status, message };
        let body = match (&self.request.prompt_api, self.request.client) {
            (Some(_), _) => dialect::encode_error(ClientDialect::OpenAi, &error),
            (None, client) => dialect::encode_error(client, &error),
        };
        if self.response.headers_only {
            // No body can be added to a response that ends with its headers: the gateway
            // answers in its place (a local reply while encoding replaces the response
            // before anything reached the client; measured through Envoy 1.40).
            self.outcome.log_line = log_heading;
            let reply = LocalReply { status, headers: json_headers(), body };
            self.response.pending_reply = Some(self.answer(reply));
            return Vec::new();
        }
        self.response.body = ResponseBody::Substitute(Box::new(Substitute { body, log_heading, dropped: Vec::new() }));
        vec![
            HeaderOp::Set(":status".to_string(), status.to_string()),
            HeaderOp::Remove("content-length".to_string()),
            HeaderOp::Remove("content-encoding".to_string()),
            HeaderOp::Set("content-type".to_string(), "application/json".to_string()),
        ]
    }

    /// Whether the client gets nothing of the response body before its end (a held-back
    /// JSON body, each chunk copied by the module and emptied in the host). The shell keeps
    /// the host's (empty) buffer open meanwhile, a paused body, so an answer that ends with
    /// trailers instead of an end of stream in a body callback can still be written there.
    /// (The chunks are copied as they come, not left in the host's buffer: a provider that
    /// resets mid-answer still has what it sent counted.)
    pub fn response_held_back(&self) -> bool {
        matches!(&self.response.body, ResponseBody::Json(b) if b.holds_back())
    }

    /// Whether `on_response_body` needs the time: only until the first token is seen (the
    /// time to first token); later chunks take any `now_ms` (a host clock read saved each).
    pub fn response_needs_clock(&self) -> bool {
        self.response.meter.first_token_ms.is_none()
    }

    /// One response body chunk, as it arrives.
    pub fn on_response_body(&mut self, chunk: &[u8], end_of_stream: bool, now_ms: u64) -> BodyAction {
        let max = self.limits.max_response_body_bytes;
        let rewrite = self.response.body.chunk(&mut self.response.meter, chunk, end_of_stream, now_ms, max);
        if end_of_stream {
            if let ResponseBody::Substitute(substitute) = &self.response.body {
                self.outcome.log_line = substitute.log_line();
            }
            // Read to the end: nothing is left for `finish` to account for.
            self.response.body = ResponseBody::Opaque;
        }
        match rewrite {
            Some(bytes) => BodyAction::Replace(bytes),
            None => BodyAction::Unchanged,
        }
    }
}

/// The provider refused the gateway's own credential; its message may quote it, so the
/// client gets a 502 that says nothing of it and the host log gets the provider's body.
fn credentials_refused(route: &Route, status: u16) -> BodyPlan {
    let message = format!(
        "llm-gateway: provider `{}` rejected the gateway's credentials (HTTP {status}); \
         the gateway's operator must fix its provider key",
        route.provider
    );
    let heading =
        format!("llm-gateway: provider `{}` answered HTTP {status} to the gateway's credentials", route.provider);
    BodyPlan::Substitute { status: 502, kind: ErrorKind::Server, message, log_heading: Some(heading) }
}
