//! Reading (and, when translating, rewriting) a response body chunk by chunk.

use super::meter::Meter;
use crate::json_scan::{self, MemberSpan};
use crate::llm::dialect::{self, StreamDecoder, StreamEncoder};
use crate::llm::embeddings;
use crate::llm::ir::{ChatResponse, ClientDialect, ErrorKind, Part, ProviderDialect, ProviderError, StreamEvent};
use crate::llm::openai_chat::passthrough::{self as openai, ChunkKeys};
use crate::llm::openai_responses;
use crate::prompt::{prompt_response, PromptStreamEncoder, TemplateUse};
use crate::stream::sse::{encode_event, encode_event_with_data, RawEvent, SseDecoder, SseEvent};

/// How the response body is handled, chosen at response-header time.
#[derive(Debug)]
pub enum ResponseBody {
    /// No response headers yet.
    Pending,
    /// Passed through, not inspected (errors in the client's own dialect, local replies).
    Opaque,
    /// A complete JSON body, copied (bounded) and read at the end. When `translate` is set
    /// the client gets nothing until the end, then the translated body.
    Json(Box<Buffered>),
    /// An OpenAI stream passed through to an OpenAI client, observed for usage; when
    /// `rewrite` is set the usage the gateway asked for is removed again.
    OpenAiSse(Box<OpenAiSse>),
    /// A stream in the client's own dialect (other than OpenAI's), decoded only to observe.
    Observed(Box<Observed>),
    /// A provider stream translated event by event into the client's dialect.
    Translated(Box<Translated>),
    /// The upstream body is dropped and a gateway error in the client's dialect takes its
    /// place: Envoy's own plain-text replies, a non-JSON error page, a provider refusing the
    /// gateway's credentials (whose message may quote them).
    Substitute(Box<Substitute>),
}

#[derive(Debug)]
pub struct Substitute {
    /// What the client gets instead.
    pub body: Vec<u8>,
    /// The dropped body is kept (bounded) for the host log, under this heading.
    pub log_heading: Option<String>,
    pub dropped: Vec<u8>,
}

/// How much of a dropped provider body the host log gets.
const MAX_LOGGED_BYTES: usize = 2048;

impl Substitute {
    fn chunk(&mut self, chunk: &[u8], end: bool) -> Rewrite {
        if self.log_heading.is_some() {
            let room = MAX_LOGGED_BYTES.saturating_sub(self.dropped.len());
            self.dropped.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        }
        Some(if end { std::mem::take(&mut self.body) } else { Vec::new() })
    }

    /// The log line for the dropped body, once the body is complete.
    pub fn log_line(&self) -> Option<String> {
        let heading = self.log_heading.as_ref()?;
        Some(format!("{heading}: {}", String::from_utf8_lossy(&self.dropped)))
    }
}

#[derive(Debug)]
pub struct Buffered {
    pub copy: Vec<u8>,
    /// Every byte seen, kept or not: a body past the copy limit still counts as delivered.
    pub seen: usize,
    /// The body is generated output when it reports no usage (not for embeddings: vectors).
    pub counts_output: bool,
    /// A passthrough answer held back (bounded) until it is known to be complete JSON: a body
    /// cut short or garbled becomes an error in this client dialect. Past the bound, what
    /// was held goes out and the rest passes as it comes.
    pub hold: Option<ClientDialect>,
    pub overflowed: bool,
    /// Set when the body is translated for the client.
    pub translate: Option<Shape>,
    /// A non-2xx status: the body is the provider's error.
    pub error_status: Option<u16>,
    pub provider: ProviderDialect,
    pub responses_api: bool,
    /// The routed model, for a response that does not name one (Bedrock's).
    pub fallback_model: String,
    /// Unix seconds the request started, for a translated answer without a creation time
    /// (Anthropic's, Bedrock's).
    pub fallback_created: u64,
    /// A translated embeddings answer (Gemini, Bedrock) instead of a chat one.
    pub embeddings: Option<EmbeddingsReply>,
}

/// What a translated embeddings answer needs: the request's shape and how to count it.
#[derive(Debug, Clone)]
pub struct EmbeddingsReply {
    pub target: embeddings::Target,
    /// How many vectors the answer must hold.
    pub inputs: usize,
    /// The client asked for `encoding_format: "base64"`.
    pub base64: bool,
    /// Input tokens Bedrock reported in a response header (`x-amzn-bedrock-input-token-count`).
    pub header_tokens: Option<u64>,
    /// The gateway's estimate of the input tokens, for a provider that reports none (Gemini).
    pub estimate: u64,
}

impl EmbeddingsReply {
    /// The OpenAI answer, or the error the client gets; reported tokens go to the meter (the
    /// estimate is what `Exchange::finish` records, marked estimated, when none came).
    fn answer(&self, meter: &mut Meter, body: &[u8], model: &str, shape: &Shape) -> Vec<u8> {
        match embeddings::decode_response(self.target, body, self.inputs) {
            Ok(answer) => {
                let reported = answer.input_tokens.or(self.header_tokens);
                if let Some(tokens) = reported {
                    let usage = crate::usage::Usage { input: Some(tokens), output: Some(0), ..Default::default() };
                    meter.report(&usage);
                }
                embeddings::encode_response(&answer, model, self.base64, reported.unwrap_or(self.estimate))
            }
            Err(error) => shape.error(&error),
        }
    }
}

#[derive(Debug)]
pub struct OpenAiSse {
    pub decoder: SseDecoder,
    pub rewrite: bool,
    pub broken: bool,
    /// The stream's own end was seen (`[DONE]`, an error event, the Responses API's last
    /// event): a body that ends without it was cut by the provider.
    pub terminated: bool,
    /// The last bytes passed to the client, to end its last event before one is appended.
    pub tail: Vec<u8>,
    pub events: Vec<SseEvent>,
    pub responses_api: bool,
    /// The current event's top-level members (one vector for the whole stream).
    members: Vec<MemberSpan>,
}

#[derive(Debug)]
pub struct Observed {
    pub decoder: StreamDecoder,
    pub events: Vec<StreamEvent>,
    /// The last bytes passed to the client, to end its last event before one is appended.
    pub tail: Vec<u8>,
    /// The stream was ended by the gateway (an event beyond `limits.max_sse_event_bytes`):
    /// nothing more reaches the client.
    pub cut: bool,
}

/// Keeps the last few bytes the client was sent.
fn remember_tail(tail: &mut Vec<u8>, sent: &[u8]) {
    tail.extend_from_slice(sent.get(sent.len().saturating_sub(4)..).unwrap_or_default());
    let excess = tail.len().saturating_sub(4);
    tail.drain(..excess);
}

/// What to write before an appended event so the client's last event ends first (a stream
/// cut mid-event still gets its partial event dispatched: the bytes are already sent).
fn event_separator(tail: &[u8]) -> &'static [u8] {
    if tail.is_empty() || tail.ends_with(b"\n\n") || tail.ends_with(b"\r\n\r\n") || tail.ends_with(b"\r\r") {
        b""
    } else if tail.ends_with(b"\n") || tail.ends_with(b"\r") {
        b"\n"
    } else {
        b"\n\n"
    }
}

/// What a translated answer looks like to the client.
#[derive(Debug, Clone)]
pub enum Shape {
    /// The client's chat dialect.
    Chat(ClientDialect),
    /// A prompt API's `{"output", "usage"}` (errors in OpenAI's error shape).
    Prompt(TemplateUse),
}

impl Shape {
    fn response(&self, response: &ChatResponse) -> Vec<u8> {
        match self {
            Shape::Chat(client) => dialect::encode_response(*client, response),
            Shape::Prompt(used) => prompt_response(response, used),
        }
    }

    fn error(&self, error: &ProviderError) -> Vec<u8> {
        match self {
            Shape::Chat(client) => dialect::encode_error(*client, error),
            Shape::Prompt(_) => dialect::encode_error(ClientDialect::OpenAi, error),
        }
    }
}

/// A translated stream's encoder, by shape.
#[derive(Debug)]
pub enum ShapeEncoder {
    Chat(StreamEncoder),
    Prompt(PromptStreamEncoder),
}

impl ShapeEncoder {
    pub fn new(shape: Shape, include_usage: bool, created_unix: u64) -> Self {
        match shape {
            Shape::Chat(client) => ShapeEncoder::Chat(StreamEncoder::new(client, include_usage, created_unix)),
            Shape::Prompt(used) => ShapeEncoder::Prompt(PromptStreamEncoder::new(used)),
        }
    }

    fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        match self {
            ShapeEncoder::Chat(e) => e.encode(event, out),
            ShapeEncoder::Prompt(e) => e.push(event, out),
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            ShapeEncoder::Chat(e) => e.finish(out),
            ShapeEncoder::Prompt(e) => e.finish(out),
        }
    }
}

#[derive(Debug)]
pub struct Translated {
    pub decoder: StreamDecoder,
    pub encoder: ShapeEncoder,
    pub events: Vec<StreamEvent>,
    /// The routed model, for a stream that does not name one (Bedrock's); taken by the
    /// first event.
    pub fallback_model: Option<String>,
}

/// The result of one chunk: `None` lets the bytes through, `Some` replaces them.
pub type Rewrite = Option<Vec<u8>>;

impl ResponseBody {
    pub fn chunk(&mut self, meter: &mut Meter, chunk: &[u8], end: bool, now_ms: u64, max_copy: usize) -> Rewrite {
        match self {
            ResponseBody::Pending | ResponseBody::Opaque => None,
            ResponseBody::Json(b) => b.chunk(meter, chunk, end, max_copy),
            ResponseBody::OpenAiSse(s) => s.chunk(meter, chunk, end, now_ms),
            ResponseBody::Observed(o) => o.chunk(meter, chunk, end, now_ms),
            ResponseBody::Substitute(s) => s.chunk(chunk, end),
            ResponseBody::Translated(t) => {
                let mut out = Vec::new();
                t.decoder.feed(chunk, &mut t.events);
                if end {
                    t.decoder.finish(&mut t.events);
                }
                for mut event in t.events.drain(..) {
                    if let Some(model) = t.fallback_model.take() {
                        match &mut event {
                            StreamEvent::Start { model: named, .. } if named.is_empty() => *named = model,
                            StreamEvent::Start { .. } => {}
                            _ => t.encoder.encode(&StreamEvent::Start { id: String::new(), model }, &mut out),
                        }
                    }
                    meter.observe(&event, now_ms);
                    t.encoder.encode(&event, &mut out);
                }
                if end {
                    t.encoder.finish(&mut out);
                }
                Some(out)
            }
        }
    }

    /// The client went away or the stream was cut: account for what was seen.
    pub fn abandon(&mut self, meter: &mut Meter, now_ms: u64) {
        match self {
            ResponseBody::OpenAiSse(s) => {
                let mut events = std::mem::take(&mut s.events);
                let _ = s.decoder.finish(&mut events);
                for event in &events {
                    let depth = json_scan::top_level_spans(event.data.as_bytes(), &mut s.members).ok();
                    s.observe(event.event.as_deref(), event.data.as_bytes(), depth, meter, now_ms);
                }
            }
            ResponseBody::Observed(o) => drain_finished(&mut o.decoder, &mut o.events, meter, now_ms),
            ResponseBody::Translated(t) => drain_finished(&mut t.decoder, &mut t.events, meter, now_ms),
            // Only an answer counts: a provider error or a substitute carries no output.
            ResponseBody::Json(b) if b.error_status.is_none() && b.counts_output => meter.generated(b.seen, now_ms),
            _ => {}
        }
    }
}

impl Observed {
    /// Observes for usage; a stream the provider cut (the body ends without the dialect's end
    /// event) gets the error event the decoder produced for it, in the client's own dialect.
    fn chunk(&mut self, meter: &mut Meter, chunk: &[u8], end: bool, now_ms: u64) -> Rewrite {
        if self.cut {
            return Some(Vec::new());
        }
        self.decoder.feed(chunk, &mut self.events);
        let mut last_error = None;
        for event in self.events.drain(..) {
            meter.observe(&event, now_ms);
            if let StreamEvent::Error(error) = event {
                last_error = Some(error);
            }
        }
        if let Some(error) = last_error.filter(|_| self.decoder.framing_failed()) {
            // An event beyond the bound cannot be forwarded intact (as in the OpenAI
            // passthrough): this chunk is dropped and the stream ends on the gateway's error.
            self.cut = true;
            let mut out = event_separator(&self.tail).to_vec();
            encode_anthropic_stream_error(&error, &mut out);
            return Some(out);
        }
        remember_tail(&mut self.tail, chunk);
        if !end {
            return None;
        }
        self.decoder.finish(&mut self.events);
        let mut appended = Vec::new();
        for event in self.events.drain(..) {
            meter.observe(&event, now_ms);
            if let StreamEvent::Error(error) = &event {
                encode_anthropic_stream_error(error, &mut appended);
            }
        }
        if appended.is_empty() {
            return None;
        }
        let mut out = chunk.to_vec();
        out.extend_from_slice(event_separator(&self.tail));
        out.extend_from_slice(&appended);
        Some(out)
    }
}

/// An error event as Anthropic sends one mid-stream (`event: error`).
fn encode_anthropic_stream_error(error: &ProviderError, out: &mut Vec<u8>) {
    let data = String::from_utf8_lossy(&dialect::encode_error(ClientDialect::Anthropic, error)).into_owned();
    encode_event(&SseEvent { event: Some("error".to_string()), data, ..SseEvent::default() }, out);
}

fn drain_finished(decoder: &mut StreamDecoder, events: &mut Vec<StreamEvent>, meter: &mut Meter, now_ms: u64) {
    decoder.finish(events);
    for event in events.drain(..) {
        meter.observe(&event, now_ms);
    }
}

impl Buffered {
    /// Whether the client gets nothing of this body before its end: a translated body, or a
    /// passthrough answer still held (the hold is dropped when the body outgrows the copy).
    pub fn holds_back(&self) -> bool {
        self.translate.is_some() || self.hold.is_some()
    }

    fn chunk(&mut self, meter: &mut Meter, chunk: &[u8], end: bool, max_copy: usize) -> Rewrite {
        self.seen = self.seen.saturating_add(chunk.len());
        let mut flushed = None;
        if !self.overflowed {
            if self.copy.len() + chunk.len() > max_copy {
                self.overflowed = true;
                let mut held = std::mem::take(&mut self.copy);
                if self.hold.take().is_some() {
                    held.extend_from_slice(chunk);
                    flushed = Some(held);
                }
            } else {
                self.copy.extend_from_slice(chunk);
            }
        }
        if !end {
            // Translated and held bodies are held back (bounded) until complete.
            return flushed.or_else(|| (self.translate.is_some() || self.hold.is_some()).then(Vec::new));
        }
        let body = std::mem::take(&mut self.copy);
        match (&self.translate, self.error_status) {
            (None, Some(_)) => flushed,
            (None, None) => {
                // One scan of the top level: whether a held answer is complete JSON, and
                // where an OpenAI answer's usage is.
                let members = (!self.overflowed).then(|| json_scan::top_level_members(&body));
                let usage = match &members {
                    None => None,
                    Some(_) if self.responses_api => openai_responses::response_usage(&body),
                    Some(scan) if self.provider == ProviderDialect::OpenAi => {
                        scan.as_ref().ok().and_then(|members| openai::usage_member(&body, members))
                    }
                    Some(_) => dialect::decode_response(self.provider, &body).ok().map(|r| r.usage),
                };
                let usage = usage.filter(|u| u.input.is_some() || u.output.is_some());
                // No output count: the estimate is what reached the client.
                if self.counts_output && usage.is_none_or(|u| u.output.is_none()) {
                    meter.generated(self.delivered_output_bytes(&body), 0);
                }
                if let Some(usage) = &usage {
                    meter.report(usage); // covers the whole body
                }
                match self.hold {
                    None => flushed,
                    Some(_) if members.as_ref().is_some_and(Result::is_ok) => Some(body),
                    Some(client) => {
                        let error = ProviderError {
                            kind: ErrorKind::Server,
                            status: 502,
                            message: "llm-gateway: the provider's answer is not complete JSON (cut short or garbled)"
                                .to_string(),
                        };
                        Some(dialect::encode_error(client, &error))
                    }
                }
            }
            (Some(shape), Some(status)) => {
                let error = dialect::decode_error(self.provider, status, &body);
                Some(shape.error(&error))
            }
            (Some(shape), None) => {
                if self.overflowed {
                    // The client gets an error, but the provider generated (and bills) what it
                    // sent: estimated from the bytes (vectors are not output tokens).
                    if self.counts_output {
                        meter.generated(self.seen, 0);
                    }
                    let error = crate::llm::ir::ProviderError {
                        kind: crate::llm::ir::ErrorKind::Server,
                        status: 502,
                        message: format!("provider response exceeds the gateway's limit of {max_copy} bytes"),
                    };
                    return Some(shape.error(&error));
                }
                if let Some(reply) = &self.embeddings {
                    return Some(reply.answer(meter, &body, &self.fallback_model, shape));
                }
                match dialect::decode_response(self.provider, &body) {
                    Ok(mut response) => {
                        if response.model.is_empty() {
                            response.model = std::mem::take(&mut self.fallback_model);
                        }
                        if response.created == 0 {
                            response.created = self.fallback_created;
                        }
                        meter.generated(generated_bytes(&response), 0);
                        if response.usage.input.is_some() || response.usage.output.is_some() {
                            meter.report(&response.usage); // covers the whole body
                        }
                        Some(shape.response(&response))
                    }
                    Err(error) => {
                        // A 2xx body cut short or garbled: counted like one past the limit.
                        meter.generated(self.seen, 0);
                        Some(shape.error(&error))
                    }
                }
            }
        }
    }
}

impl Buffered {
    /// Output bytes of a passthrough answer that reports no usage: its generated text when
    /// the body decodes, else every byte delivered (a body past the copy limit included).
    fn delivered_output_bytes(&self, body: &[u8]) -> usize {
        let decoded = if self.overflowed || self.responses_api {
            None
        } else {
            dialect::decode_response(self.provider, body).ok()
        };
        decoded.map_or(self.seen, |r| generated_bytes(&r))
    }
}

/// Bytes of text, thinking and tool calls in a complete answer.
fn generated_bytes(response: &ChatResponse) -> usize {
    response
        .content
        .iter()
        .map(|part| match part {
            Part::Text(text) | Part::Thinking { text, .. } => text.len(),
            Part::ToolCall(call) => call.name.len() + call.arguments.len(),
            _ => 0,
        })
        .sum()
}

impl OpenAiSse {
    pub fn new(max_event_bytes: usize, rewrite: bool, responses_api: bool) -> Self {
        OpenAiSse {
            decoder: SseDecoder::new(max_event_bytes),
            rewrite,
            broken: false,
            terminated: false,
            tail: Vec::new(),
            events: Vec::new(),
            responses_api,
            members: Vec::new(),
        }
    }

    /// Events in the form the encoder writes (one `data:` line, LF endings: what OpenAI
    /// sends) are read where they lie: the data scanned in place, an unchanged event copied
    /// as it came, a `"usage":null` cut out of it. Others are decoded and re-encoded. Both
    /// give the client the same bytes (re-encoding such an event reproduces it).
    fn chunk(&mut self, meter: &mut Meter, chunk: &[u8], end: bool, now_ms: u64) -> Rewrite {
        if self.broken {
            return Some(Vec::new());
        }
        if !self.rewrite {
            remember_tail(&mut self.tail, chunk);
        }
        let mut out = self.rewrite.then(|| Vec::with_capacity(chunk.len()));
        let mut rest = chunk;
        let mut failed = None;
        while !rest.is_empty() && failed.is_none() {
            match self.decoder.next_raw(&mut rest, &mut self.events) {
                Ok(Some(raw)) => {
                    if !self.raw_event(&raw, meter, now_ms, out.as_mut()) {
                        // Not UTF-8: decoded (lossily) like any other event.
                        failed = self.decoder.feed(raw.block, &mut self.events).err();
                    }
                }
                Ok(None) => {}
                Err(error) => failed = Some(error),
            }
            self.decoded_events(meter, now_ms, out.as_mut());
        }
        if end && failed.is_none() {
            failed = self.decoder.finish(&mut self.events).err();
            self.decoded_events(meter, now_ms, out.as_mut());
        }
        if let Some(error) = failed {
            // An event beyond the bound cannot be forwarded intact: end the stream cleanly.
            self.broken = true;
            let out = out.get_or_insert_with(Vec::new);
            encode_openai_stream_error(&format!("llm-gateway: {error}; stream ended"), out);
        } else if end && !self.terminated {
            // The provider closed the body without ending the stream: end it with an error
            // event, so the client knows the answer is incomplete.
            let out = out.get_or_insert_with(|| chunk.to_vec());
            let separator = if self.rewrite { b"".as_slice() } else { event_separator(&self.tail) };
            out.extend_from_slice(separator);
            encode_openai_stream_error("llm-gateway: provider stream ended early", out);
        }

        out
    }

    /// One event read in place; false (nothing observed) when its data is not UTF-8.
    fn raw_event(&mut self, raw: &RawEvent<'_>, meter: &mut Meter, now_ms: u64, out: Option<&mut Vec<u8>>) -> bool {
        let depth = json_scan::top_level_spans(raw.data, &mut self.members).ok();
        // A scanned object is UTF-8; anything else is checked.
        if depth.is_none() && std::str::from_utf8(raw.data).is_err() {
            return false;
        }
        let keep = self.observe(raw.event, raw.data, depth, meter, now_ms);
        if let Some(out) = out {
            match keep {
                Keep::Drop => {}
                Keep::Same => out.extend_from_slice(raw.block),
                Keep::Cut(cut) => {
                    let (start, end) = (raw.data_start + cut.start, raw.data_start + cut.end);
                    out.extend_from_slice(raw.block.get(..start).unwrap_or_default());
                    out.extend_from_slice(raw.block.get(end..).unwrap_or_default());
                }
            }
        }
        true
    }

    /// The events the decoder completed, observed and (when rewriting) re-encoded.
    fn decoded_events(&mut self, meter: &mut Meter, now_ms: u64, mut out: Option<&mut Vec<u8>>) {
        if self.events.is_empty() {
            return;
        }
        let mut events = std::mem::take(&mut self.events);
        for event in events.drain(..) {
            let data = event.data.as_bytes();
            let depth = json_scan::top_level_spans(data, &mut self.members).ok();
            let keep = self.observe(event.event.as_deref(), data, depth, meter, now_ms);
            if let Some(out) = out.as_deref_mut() {
                match keep {
                    Keep::Drop => {}
                    Keep::Same => encode_event(&event, out),
                    Keep::Cut(cut) => {
                        let mut patched = String::with_capacity(data.len());
                        patched.push_str(event.data.get(..cut.start).unwrap_or_default());
                        patched.push_str(event.data.get(cut.end..).unwrap_or_default());
                        encode_event_with_data(&event, &patched, out);
                    }
                }
            }
        }
        self.events = events;
    }

    /// Reads usage, timing and the stream's end off one event (`kind`: its `event:` type;
    /// `data`: UTF-8; `depth`: [`json_scan::top_level_spans`] of it, which left its members
    /// in `self.members`, when it is a JSON object). When rewriting, also says what to
    /// forward: the usage-only chunk the gateway asked for is dropped, and `"usage":null`
    /// removed.
    fn observe(
        &mut self,
        kind: Option<&str>,
        data: &[u8],
        depth: Option<usize>,
        meter: &mut Meter,
        now_ms: u64,
    ) -> Keep {
        let members = depth.map(|_| self.members.as_slice());
        let keys = members.map(|m| ChunkKeys::find(data, m));
        self.terminated |= ends_openai_stream(data, members.zip(keys), self.responses_api);
        if self.responses_api {
            if let Some(usage) = openai_responses::event_usage(kind, data) {
                meter.report(&usage);
            }
            let scanned = members.zip(depth);
            meter.generated(openai_responses::event_text_bytes(kind, data, scanned), now_ms);
            return Keep::Same;
        }
        let (Some(members), Some(keys), Some(depth)) = (members, keys, depth) else {
            return Keep::Same; // `[DONE]`, or something we leave alone.
        };
        let info = openai::inspect_chunk_spans(data, members, &keys, depth);
        if let Some(reported) = &info.usage {
            meter.report(reported);
        }
        meter.generated(info.generated_bytes, now_ms);
        if !self.rewrite {
            return Keep::Same;
        }
        if info.usage_only {
            return Keep::Drop;
        }
        match keys.usage {
            Some(i) if members.get(i).and_then(|m| data.get(m.value.clone())) == Some(b"null") => {
                // Cutting a member out at JSON token boundaries leaves UTF-8.
                json_scan::removal_range(members, i).map_or(Keep::Same, Keep::Cut)
            }
            _ => Keep::Same,
        }
    }
}

/// An error event as OpenAI sends one mid-stream (`data: {"error": {...}}`).
fn encode_openai_stream_error(message: &str, out: &mut Vec<u8>) {
    let data = String::from_utf8_lossy(&openai::error_body(message, "server_error", None, None)).into_owned();
    encode_event(&SseEvent { data, ..SseEvent::default() }, out);
}

/// The event that ends an OpenAI stream: `[DONE]`, an error, or the Responses API's last event.
/// `data`: the event's data (UTF-8); `members`: its top-level members, when it is a JSON
/// object.
fn ends_openai_stream(data: &[u8], scanned: Option<(&[MemberSpan], ChunkKeys)>, responses_api: bool) -> bool {
    // The members were scanned from the untrimmed data; data with whitespace JSON does not
    // allow around it is scanned trimmed, as it always was.
    let rescanned;
    let (data, members, keys) = match scanned {
        Some((members, keys)) => (data, members, keys),
        None => {
            let trimmed = std::str::from_utf8(data).map_or(data, |text| text.trim().as_bytes());
            if trimmed == b"[DONE]" {
                return true;
            }
            if trimmed.len() == data.len() {
                return false;
            }
            let mut spans = Vec::new();
            if json_scan::top_level_spans(trimmed, &mut spans).is_err() {
                return false;
            }
            rescanned = spans;
            (trimmed, rescanned.as_slice(), ChunkKeys::find(trimmed, &rescanned))
        }
    };
    if keys.error.is_some() {
        return true;
    }
    let kind = keys.kind.and_then(|i| members.get(i)).and_then(|m| data.get(m.value.clone()));
    responses_api
        && matches!(
            kind,
            Some(b"\"response.completed\"" | b"\"response.failed\"" | b"\"response.incomplete\"" | b"\"error\"")
        )
}

enum Keep {
    Same,
    /// The event with this byte range cut out of its data.
    Cut(std::ops::Range<usize>),
    Drop,
}

/// The stream passthrough tested against the code it replaced (`response/reference.rs`).
#[cfg(test)]
mod reference;
