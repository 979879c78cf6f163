//! Each dialect's codecs through `llm::dialect`, the dispatch the engine uses.
//!
//! Round trips are checked where they hold: what an encoder produces in a client dialect
//! (OpenAI, Anthropic) must decode again, and encode to the same JSON. The first
//! decode -> encode may normalize (OpenAI requests drop thinking parts, always ask for
//! stream usage...), so the oracle is idempotence: encode(decode(encode(x))) = encode(x).

use super::streams::fix_crcs;
use super::{chunkings_with, json_close, must_parse, selector};
use llm_gateway::config::Limits;
use llm_gateway::llm::dialect::{self, StreamDecoder, StreamEncoder};
use llm_gateway::llm::embeddings::{self, Target};
use llm_gateway::llm::ir::{ClientDialect, ProviderDialect, ProviderError, StreamEvent, TranslateError};
use llm_gateway::stream::sse::SseDecoder;

const CLIENTS: [ClientDialect; 2] = [ClientDialect::OpenAi, ClientDialect::Anthropic];
/// Every client dialect; the Responses dialect has no provider-side decoder, so its output
/// is checked for shape, not round-tripped.
const ALL_CLIENTS: [ClientDialect; 3] = [ClientDialect::OpenAi, ClientDialect::Anthropic, ClientDialect::Responses];
const PROVIDERS: [ProviderDialect; 4] =
    [ProviderDialect::OpenAi, ProviderDialect::Anthropic, ProviderDialect::Gemini, ProviderDialect::Bedrock];
const STATUSES: [u16; 8] = [400, 401, 403, 404, 429, 500, 503, 529];
/// Every translated embeddings API.
const EMBEDDING_TARGETS: [Target; 5] = [
    Target::Gemini,
    Target::Titan { v2: false },
    Target::Titan { v2: true },
    Target::Cohere { v4: false },
    Target::Cohere { v4: true },
];

fn client(bits: u8) -> ClientDialect {
    if bits & 1 == 0 {
        ClientDialect::OpenAi
    } else {
        ClientDialect::Anthropic
    }
}

fn provider(bits: u8) -> ProviderDialect {
    PROVIDERS.get(usize::from(bits & 3)).copied().unwrap_or(ProviderDialect::OpenAi)
}

/// The provider dialect a client dialect's own API is (the selectors pick only these two).
fn as_provider(client: ClientDialect) -> ProviderDialect {
    match client {
        ClientDialect::OpenAi => ProviderDialect::OpenAi,
        ClientDialect::Anthropic => ProviderDialect::Anthropic,
        ClientDialect::Responses => panic!("no provider speaks the Responses dialect through the IR"),
    }
}

fn as_client(provider: ProviderDialect) -> Option<ClientDialect> {
    match provider {
        ProviderDialect::OpenAi => Some(ClientDialect::OpenAi),
        ProviderDialect::Anthropic => Some(ClientDialect::Anthropic),
        ProviderDialect::Gemini | ProviderDialect::Bedrock => None,
    }
}

fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Selector bit 0: the client dialect. The rest: the client's request body (also read as
/// a Responses request: every provider's encoding of it must be JSON).
pub fn request_codecs(data: &[u8]) {
    let (sel, body) = selector(data);
    embedding_requests(body);
    if let Ok(mut request) = dialect::decode_request(ClientDialect::Responses, body) {
        let _ = dialect::require_messages(ClientDialect::Responses, &request);
        request.model = "target-model".to_string();
        for provider in PROVIDERS {
            if let Ok(encoded) = dialect::encode_request(provider, &request) {
                must_parse("an encoded request from a Responses client", &encoded);
            }
        }
    }
    let client = client(sel);
    let Ok(mut request) = dialect::decode_request(client, body) else { return };
    let _ = dialect::require_messages(client, &request);
    request.model = "target-model".to_string();
    for provider in PROVIDERS {
        let Ok(first) = dialect::encode_request(provider, &request) else { continue };
        let v1 = must_parse("an encoded request", &first);
        let Some(same) = as_client(provider) else { continue };
        let again = match dialect::decode_request(same, &first) {
            Ok(r) => r,
            // Translated: each decoder enforces its own API's rules (Anthropic's image media
            // types, a `tool_result` answering a `tool_use` of the previous message...), which
            // the other dialect's decoder does not; the provider answers 400 for those.
            Err(TranslateError::Invalid { .. }) if same != client => continue,
            Err(e) => panic!("our {provider:?} request does not decode ({e}): {}", text(&first)),
        };
        let second = match dialect::encode_request(provider, &again) {
            Ok(b) => b,
            Err(e) => panic!("our {provider:?} request decoded but does not encode again ({e}): {}", text(&first)),
        };
        let v2 = must_parse("a re-encoded request", &second);
        assert!(json_close(&v1, &v2), "{provider:?} request round trip:\n{v1}\n{v2}");
    }
}

/// The body read as an OpenAI embeddings request: every target's encoding is JSON and
/// carries every input.
fn embedding_requests(body: &[u8]) {
    let Ok(request) = embeddings::decode_request(body) else { return };
    assert!(!request.inputs.is_empty(), "an admitted embeddings request has input");
    for target in EMBEDDING_TARGETS {
        let Ok(encoded) = embeddings::encode_request(target, "target-model", &request) else { continue };
        let value = must_parse("an encoded embeddings request", &encoded);
        let carried = match target {
            Target::Gemini => value["requests"].as_array().map_or(0, Vec::len),
            Target::Titan { .. } => usize::from(value["inputText"].is_string()),
            Target::Cohere { .. } => value["texts"].as_array().map_or(0, Vec::len),
        };
        assert_eq!(carried, request.inputs.len(), "{target:?} request lost inputs: {value}");
    }
}

/// The body read as every embeddings API's answer: a decoded one encodes as OpenAI's JSON with
/// one item per vector, in float and in base64 (`f32` little-endian, so 4 bytes a value).
fn embedding_responses(body: &[u8]) {
    for target in EMBEDDING_TARGETS {
        for expected in 1..=3 {
            let Ok(answer) = embeddings::decode_response(target, body, expected) else { continue };
            for base64 in [false, true] {
                let value = must_parse("an embeddings answer", &embeddings::encode_response(&answer, "m", base64, 1));
                let data = value["data"].as_array().map_or(0, Vec::len);
                assert_eq!(data, expected, "{target:?} answer lost vectors: {value}");
            }
        }
    }
}

/// Selector bits 0-1: the provider; bits 2-4: the error status. The rest: its response body.
pub fn response_codecs(data: &[u8]) {
    let (sel, body) = selector(data);
    embedding_responses(body);
    let provider = provider(sel);
    let status = STATUSES.get(usize::from((sel >> 2) & 7)).copied().unwrap_or(500);
    let error = dialect::decode_error(provider, status, body);
    for client in ALL_CLIENTS {
        must_parse("an encoded error", &dialect::encode_error(client, &error));
    }
    let Ok(response) = dialect::decode_response(provider, body) else { return };
    must_parse("a Responses response", &dialect::encode_response(ClientDialect::Responses, &response));
    for client in CLIENTS {
        // The first pass may normalize (an empty text is `""`, then no text at all: `null`);
        // from the second on, encode(decode(x)) = x.
        let first = dialect::encode_response(client, &response);
        let second = reencode_response(client, &first);
        let third = reencode_response(client, &second);
        let (v2, v3) = (must_parse("a re-encoded response", &second), must_parse("a re-encoded response", &third));
        assert!(json_close(&v2, &v3), "{client:?} response round trip:\n{v2}\n{v3}");
    }
}

/// Our response in a client's dialect, decoded as that dialect's provider answer and encoded again.
fn reencode_response(client: ClientDialect, encoded: &[u8]) -> Vec<u8> {
    must_parse("an encoded response", encoded);
    match dialect::decode_response(as_provider(client), encoded) {
        Ok(back) => dialect::encode_response(client, &back),
        Err(e) => panic!("our {client:?} response does not decode ({}): {}", e.message, text(encoded)),
    }
}

/// Selector bits 0-1: the provider; bit 2: the client; bit 3: the client asked for usage;
/// bit 4: recompute eventstream CRCs (Bedrock). The rest: the provider's stream.
pub fn stream_codecs(data: &[u8]) {
    let (sel, rest) = selector(data);
    let provider = provider(sel);
    let client = client(sel >> 2);
    let include_usage = sel & 8 != 0;
    let fixed;
    let stream = if provider == ProviderDialect::Bedrock && sel & 16 != 0 {
        fixed = fix_crcs(rest);
        fixed.as_slice()
    } else {
        rest
    };
    let whole = decode_stream(provider, &[stream]);
    for chunks in chunkings_with(stream, 64, 8) {
        let lens: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        assert_eq!(decode_stream(provider, &chunks), whole, "{provider:?} stream split {lens:?} differs from one feed");
    }
    check_client_sse(ClientDialect::Responses, &encode_stream(ClientDialect::Responses, include_usage, &whole));
    let wire = encode_stream(client, include_usage, &whole);
    check_client_sse(client, &wire);
    // Our stream, read back as that dialect's provider stream, encoded and read again,
    // gives the same events (usage events aside: an encoder may write a count as 0 where
    // the first stream had none).
    let back = decode_stream(as_provider(client), &[&wire]);
    let again = encode_stream(client, include_usage, &back);
    let back_again = decode_stream(as_provider(client), &[&again]);
    assert_eq!(essence(&back_again), essence(&back), "{client:?} stream round trip: {}", text(&wire));
}

/// The events without usage (compared separately) and with error statuses left out
/// (Anthropic error events carry none).
fn essence(events: &[StreamEvent]) -> Vec<StreamEvent> {
    events
        .iter()
        .filter(|e| !matches!(e, StreamEvent::Usage(_)))
        .map(|e| match e {
            StreamEvent::Error(error) => StreamEvent::Error(ProviderError { status: 0, ..error.clone() }),
            other => other.clone(),
        })
        .collect()
}

fn decode_stream(provider: ProviderDialect, chunks: &[&[u8]]) -> Vec<StreamEvent> {
    let mut decoder = StreamDecoder::new(provider, Limits::default().max_sse_event_bytes);
    let mut events = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk, &mut events);
    }
    decoder.finish(&mut events);
    events
}

fn encode_stream(client: ClientDialect, include_usage: bool, events: &[StreamEvent]) -> Vec<u8> {
    let mut encoder = StreamEncoder::new(client, include_usage, 1_700_000_000);
    let mut out = Vec::new();
    for event in events {
        encoder.encode(event, &mut out);
    }
    encoder.finish(&mut out);
    let n = out.len();
    encoder.finish(&mut out);
    encoder.encode(&StreamEvent::TextDelta { text: "late".to_string() }, &mut out);
    assert_eq!(out.len(), n, "a {client:?} stream encoder wrote after its end");
    out
}

/// What a client receives is well-formed SSE whose every data is JSON (OpenAI's final
/// `[DONE]` aside), and it ends with its dialect's terminator.
fn check_client_sse(client: ClientDialect, wire: &[u8]) {
    let mut decoder = SseDecoder::new(usize::MAX);
    let mut events = Vec::new();
    let fed = decoder.feed(wire, &mut events).and_then(|()| decoder.finish(&mut events));
    assert!(fed.is_ok(), "client stream is not SSE: {}", text(wire));
    assert!(wire.is_empty() || wire.ends_with(b"\n\n"), "client stream does not end with a blank line");
    for ev in &events {
        if client == ClientDialect::OpenAi && ev.data == "[DONE]" {
            continue;
        }
        must_parse("a client stream event", ev.data.as_bytes());
    }
    let last = events.last().map(|e| (e.event.as_deref(), e.data.as_str()));
    let ended = match client {
        ClientDialect::OpenAi => matches!(last, Some((None, "[DONE]"))),
        ClientDialect::Anthropic => matches!(last, Some((Some("message_stop" | "error"), _))),
        ClientDialect::Responses => {
            matches!(last, Some((Some("response.completed" | "response.incomplete" | "response.failed"), _)))
        }
    };
    assert!(ended, "a {client:?} client stream ends without its terminator: {}", text(wire));
}
