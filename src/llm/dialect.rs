//! Dispatch over the closed sets of dialects: one `match` per codec function, so the
//! engine never names a provider module directly.

use super::ir::{
    ChatRequest, ChatResponse, ClientDialect, ProviderDialect, ProviderError, StreamEvent, TranslateError,
};
use super::{anthropic, bedrock, gemini, openai_chat, openai_responses};

pub fn decode_request(client: ClientDialect, body: &[u8]) -> Result<ChatRequest, TranslateError> {
    match client {
        ClientDialect::OpenAi => openai_chat::decode_request(body),
        ClientDialect::Anthropic => anthropic::decode_request(body),
        ClientDialect::Responses => openai_responses::decode_request(body),
    }
}

/// A request must have a message once templates and decorators have run (the decoders accept
/// an empty list, which a template may fill). The error in each client API's own wording.
pub fn require_messages(client: ClientDialect, request: &ChatRequest) -> Result<(), TranslateError> {
    if !request.messages.is_empty() {
        return Ok(());
    }
    let message = match client {
        ClientDialect::OpenAi => {
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead."
        }
        ClientDialect::Anthropic => "at least one message is required",
        ClientDialect::Responses => {
            "Invalid 'input': the request has no input items. Send the conversation in `input`."
        }
    };
    let field = if client == ClientDialect::Responses { "input" } else { "messages" };
    Err(TranslateError::Invalid { field: field.to_string(), message: message.to_string() })
}

pub fn encode_response(client: ClientDialect, response: &ChatResponse) -> Vec<u8> {
    match client {
        ClientDialect::OpenAi => openai_chat::encode_response(response),
        ClientDialect::Anthropic => anthropic::encode_response(response),
        ClientDialect::Responses => openai_responses::encode_response(response),
    }
}

pub fn encode_error(client: ClientDialect, error: &ProviderError) -> Vec<u8> {
    match client {
        ClientDialect::OpenAi => openai_chat::encode_error(error),
        ClientDialect::Anthropic => anthropic::encode_error(error),
        ClientDialect::Responses => openai_responses::encode_error(error),
    }
}

pub fn encode_request(provider: ProviderDialect, request: &ChatRequest) -> Result<Vec<u8>, TranslateError> {
    match provider {
        ProviderDialect::OpenAi => openai_chat::encode_request(request),
        ProviderDialect::Anthropic => anthropic::encode_request(request),
        ProviderDialect::Gemini => gemini::encode_request(request),
        ProviderDialect::Bedrock => bedrock::encode_request(request),
    }
}

pub fn decode_response(provider: ProviderDialect, body: &[u8]) -> Result<ChatResponse, ProviderError> {
    match provider {
        ProviderDialect::OpenAi => openai_chat::decode_response(body),
        ProviderDialect::Anthropic => anthropic::decode_response(body),
        ProviderDialect::Gemini => gemini::decode_response(body),
        ProviderDialect::Bedrock => bedrock::decode_response(body),
    }
}

pub fn decode_error(provider: ProviderDialect, status: u16, body: &[u8]) -> ProviderError {
    match provider {
        ProviderDialect::OpenAi => openai_chat::decode_error(status, body),
        ProviderDialect::Anthropic => anthropic::decode_error(status, body),
        ProviderDialect::Gemini => gemini::decode_error(status, body),
        ProviderDialect::Bedrock => bedrock::decode_error(status, body),
    }
}

/// A provider's stream decoder (SSE, or AWS eventstream for Bedrock).
#[derive(Debug)]
pub enum StreamDecoder {
    OpenAi(openai_chat::StreamDecoder),
    Anthropic(anthropic::StreamDecoder),
    Gemini(gemini::StreamDecoder),
    Bedrock(bedrock::StreamDecoder),
}

impl StreamDecoder {
    /// The provider's decoder, holding at most `max_event_bytes` for one event (SSE event or
    /// event-stream message): the configured `limits.max_sse_event_bytes`, the same bound the
    /// untranslated OpenAI passthrough applies.
    pub fn new(provider: ProviderDialect, max_event_bytes: usize) -> Self {
        match provider {
            ProviderDialect::OpenAi => {
                StreamDecoder::OpenAi(openai_chat::StreamDecoder::with_event_limit(max_event_bytes))
            }
            ProviderDialect::Anthropic => {
                StreamDecoder::Anthropic(anthropic::StreamDecoder::with_event_limit(max_event_bytes))
            }
            ProviderDialect::Gemini => StreamDecoder::Gemini(gemini::StreamDecoder::with_event_limit(max_event_bytes)),
            ProviderDialect::Bedrock => {
                StreamDecoder::Bedrock(bedrock::StreamDecoder::with_event_limit(max_event_bytes))
            }
        }
    }

    /// Whether the stream ended because its framing failed (an event beyond the bound).
    pub fn framing_failed(&self) -> bool {
        match self {
            StreamDecoder::OpenAi(d) => d.framing_failed(),
            StreamDecoder::Anthropic(d) => d.framing_failed(),
            StreamDecoder::Gemini(d) => d.framing_failed(),
            StreamDecoder::Bedrock(d) => d.framing_failed(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<StreamEvent>) {
        match self {
            StreamDecoder::OpenAi(d) => d.feed(chunk, out),
            StreamDecoder::Anthropic(d) => d.feed(chunk, out),
            StreamDecoder::Gemini(d) => d.feed(chunk, out),
            StreamDecoder::Bedrock(d) => d.feed(chunk, out),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        match self {
            StreamDecoder::OpenAi(d) => d.finish(out),
            StreamDecoder::Anthropic(d) => d.finish(out),
            StreamDecoder::Gemini(d) => d.finish(out),
            StreamDecoder::Bedrock(d) => d.finish(out),
        }
    }
}

/// A client's stream encoder (always SSE).
#[derive(Debug)]
pub enum StreamEncoder {
    OpenAi(openai_chat::StreamEncoder),
    Anthropic(anthropic::StreamEncoder),
    Responses(openai_responses::StreamEncoder),
}

impl StreamEncoder {
    pub fn new(client: ClientDialect, include_usage: bool, created_unix: u64) -> Self {
        match client {
            ClientDialect::OpenAi => {
                StreamEncoder::OpenAi(openai_chat::StreamEncoder::new(include_usage, created_unix))
            }
            ClientDialect::Anthropic => {
                StreamEncoder::Anthropic(anthropic::StreamEncoder::new(include_usage, created_unix))
            }
            ClientDialect::Responses => {
                StreamEncoder::Responses(openai_responses::StreamEncoder::new(include_usage, created_unix))
            }
        }
    }

    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        match self {
            StreamEncoder::OpenAi(e) => e.encode(event, out),
            StreamEncoder::Anthropic(e) => e.encode(event, out),
            StreamEncoder::Responses(e) => e.encode(event, out),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            StreamEncoder::OpenAi(e) => e.finish(out),
            StreamEncoder::Anthropic(e) => e.finish(out),
            StreamEncoder::Responses(e) => e.finish(out),
        }
    }
}
