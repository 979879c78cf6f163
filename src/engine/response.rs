//! Reading (and, when translating, rewriting) a response body chunk by chunk.

use super::meter::Meter;
use crate::json_scan;
use crate::llm::dialect::{self, StreamDecoder, StreamEncoder};
use crate::llm::ir::{ChatResponse, ClientDialect, ProviderDialect, ProviderError, StreamEvent};
use crate::llm::{openai, openai_responses};
use crate::prompt::{prompt_response, PromptStreamEncoder, TemplateUse};
use crate::stream::sse::{encode_event, SseDecoder, SseEvent};

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
}

#[derive(Debug)]
pub struct Buffered {
    pub copy: Vec<u8>,
    pub overflowed: bool,
    /// Set when the body is translated for the client.
    pub translate: Option<Shape>,
    /// A non-2xx status: the body is the provider's error.
    pub error_status: Option<u16>,
    pub provider: ProviderDialect,
    pub responses_api: bool,
    /// The routed model, for a response that does not name one (Bedrock's).
    pub fallback_model: String,
}

#[derive(Debug)]
pub struct OpenAiSse {
    pub decoder: SseDecoder,
    pub rewrite: bool,
    pub broken: bool,
    pub events: Vec<SseEvent>,
    pub responses_api: bool,
}

#[derive(Debug)]
pub struct Observed {
    pub decoder: StreamDecoder,
    pub events: Vec<StreamEvent>,
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
            ResponseBody::Observed(o) => {
                o.decoder.feed(chunk, &mut o.events);
                if end {
                    o.decoder.finish(&mut o.events);
                }
                for event in o.events.drain(..) {
                    meter.observe(&event, now_ms);
                }
                None
            }
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
                    observe_openai_event(event, meter, now_ms, false, s.responses_api);
                }
            }
            ResponseBody::Observed(o) => drain_finished(&mut o.decoder, &mut o.events, meter, now_ms),
            ResponseBody::Translated(t) => drain_finished(&mut t.decoder, &mut t.events, meter, now_ms),
            _ => {}
        }
    }
}

fn drain_finished(decoder: &mut StreamDecoder, events: &mut Vec<StreamEvent>, meter: &mut Meter, now_ms: u64) {
    decoder.finish(events);
    for event in events.drain(..) {
        meter.observe(&event, now_ms);
    }
}

impl Buffered {
    fn chunk(&mut self, meter: &mut Meter, chunk: &[u8], end: bool, max_copy: usize) -> Rewrite {
        if !self.overflowed {
            if self.copy.len() + chunk.len() > max_copy {
                self.overflowed = true;
                self.copy = Vec::new();
            } else {
                self.copy.extend_from_slice(chunk);
            }
        }
        if !end {
            // Translated bodies are held back (bounded) until complete.
            return self.translate.as_ref().map(|_| Vec::new());
        }
        let body = std::mem::take(&mut self.copy);
        match (&self.translate, self.error_status) {
            (None, Some(_)) => None,
            (None, None) => {
                let usage = if self.responses_api {
                    openai_responses::response_usage(&body)
                } else if self.provider == ProviderDialect::OpenAi {
                    openai::response_usage(&body)
                } else {
                    dialect::decode_response(self.provider, &body).ok().map(|r| r.usage)
                };
                if let Some(usage) = usage {
                    meter.report(&usage);
                }
                None
            }
            (Some(shape), Some(status)) => {
                let error = dialect::decode_error(self.provider, status, &body);
                Some(shape.error(&error))
            }
            (Some(shape), None) => {
                if self.overflowed {
                    let error = crate::llm::ir::ProviderError {
                        kind: crate::llm::ir::ErrorKind::Server,
                        status: 502,
                        message: format!("provider response exceeds the gateway's limit of {max_copy} bytes"),
                    };
                    return Some(shape.error(&error));
                }
                match dialect::decode_response(self.provider, &body) {
                    Ok(mut response) => {
                        if response.model.is_empty() {
                            response.model = std::mem::take(&mut self.fallback_model);
                        }
                        if response.usage.input.is_some() || response.usage.output.is_some() {
                            meter.report(&response.usage);
                        }
                        Some(shape.response(&response))
                    }
                    Err(error) => Some(shape.error(&error)),
                }
            }
        }
    }
}

impl OpenAiSse {
    fn chunk(&mut self, meter: &mut Meter, chunk: &[u8], end: bool, now_ms: u64) -> Rewrite {
        if self.broken {
            return Some(Vec::new());
        }
        let mut failed = self.decoder.feed(chunk, &mut self.events).err();
        if end && failed.is_none() {
            failed = self.decoder.finish(&mut self.events).err();
        }
        let mut out = self.rewrite.then(Vec::new);
        for event in self.events.drain(..) {
            let keep = observe_openai_event(&event, meter, now_ms, self.rewrite, self.responses_api);
            if let Some(out) = out.as_mut() {
                match keep {
                    Keep::Drop => {}
                    Keep::As(patched) => encode_event(&patched, out),
                    Keep::Same => encode_event(&event, out),
                }
            }
        }
        if let Some(error) = failed {
            // An event beyond the bound cannot be forwarded intact: end the stream cleanly.
            self.broken = true;
            let out = out.get_or_insert_with(Vec::new);
            let message = format!("llm-gateway: {error}; stream ended");
            let data = String::from_utf8_lossy(&openai::error_body(&message, "server_error", None, None)).into_owned();
            encode_event(&SseEvent { data, ..SseEvent::default() }, out);
        }
        out
    }
}

enum Keep {
    Same,
    As(SseEvent),
    Drop,
}

/// Reads usage and timing off one OpenAI event. When `rewrite`, also says what to forward:
/// the usage-only chunk the gateway asked for is dropped, and `"usage":null` removed.
fn observe_openai_event(event: &SseEvent, meter: &mut Meter, now_ms: u64, rewrite: bool, responses_api: bool) -> Keep {
    if responses_api {
        if let Some(usage) = openai_responses::event_usage(event) {
            meter.report(&usage);
        }
        meter.generated(openai_responses::event_text_bytes(event), now_ms);
        return Keep::Same;
    }
    let data = event.data.as_bytes();
    let Ok(members) = json_scan::top_level_members(data) else {
        return Keep::Same; // `[DONE]`, or something we leave alone.
    };
    let info = openai::inspect_chunk(data, &members);
    if let Some(reported) = &info.usage {
        meter.report(reported);
    }
    meter.generated(info.generated_bytes, now_ms);
    if !rewrite {
        return Keep::Same;
    }
    if info.usage_only {
        return Keep::Drop;
    }
    match json_scan::find(&members, "usage") {
        Some(m) if data.get(m.value.clone()) == Some(b"null") => {
            let patched = json_scan::apply_edits(data, &[json_scan::remove_member(data, &members, m)]);
            Keep::As(SseEvent { data: String::from_utf8_lossy(&patched).into_owned(), ..event.clone() })
        }
        _ => Keep::Same,
    }
}
