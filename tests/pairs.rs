//! Golden tests per client dialect x provider pair, through the same dispatch the engine
//! uses (`llm::dialect`). Requests: each client fixture encoded for every provider.
//! Streams: each provider stream fixture translated for every client, re-fed at every split
//! point and in 1-byte chunks with identical output. `BLESS=1 cargo test --test pairs`
//! rewrites the goldens in tests/fixtures/pairs/; review them as diffs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use llm_gateway::llm::dialect::{self, StreamDecoder, StreamEncoder};
use llm_gateway::llm::ir::{ClientDialect, ProviderDialect, StreamEvent};
use std::path::{Path, PathBuf};

const CLIENTS: [(ClientDialect, &str); 2] =
    [(ClientDialect::OpenAi, "openai"), (ClientDialect::Anthropic, "anthropic")];
const PROVIDERS: [(ProviderDialect, &str); 4] = [
    (ProviderDialect::OpenAi, "openai"),
    (ProviderDialect::Anthropic, "anthropic"),
    (ProviderDialect::Gemini, "gemini"),
    (ProviderDialect::Bedrock, "bedrock"),
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Compares with the golden file, or rewrites it under BLESS=1.
fn golden(name: &str, actual: &str) {
    let path = fixtures().join("pairs").join(name);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing golden {name}; run with BLESS=1"));
    assert_eq!(actual, expected, "golden {name} differs (BLESS=1 rewrites it)");
}

fn pretty(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap();
    serde_json::to_string_pretty(&value).unwrap() + "\n"
}

#[test]
fn client_requests_encoded_for_every_provider() {
    let requests = [
        (ClientDialect::OpenAi, "openai", "request_tool_roundtrip.json"),
        (ClientDialect::OpenAi, "openai", "request_image_input.json"),
        (ClientDialect::Anthropic, "anthropic", "request_features.json"),
        (ClientDialect::Anthropic, "anthropic", "request_claude_code.json"),
    ];
    for (client, dir, file) in requests {
        let body = std::fs::read(fixtures().join(dir).join(file)).unwrap();
        let mut request = dialect::decode_request(client, &body).unwrap_or_else(|e| panic!("{dir}/{file}: {e}"));
        request.model = "target-model".to_string();
        for (provider, pname) in PROVIDERS {
            let stem = file.trim_end_matches(".json");
            let out = match dialect::encode_request(provider, &request) {
                Ok(encoded) => pretty(&encoded),
                Err(e) => format!("400: {e}\n"),
            };
            golden(&format!("{dir}_{stem}__to_{pname}.txt"), &out);
        }
    }
}

/// Translates a provider stream for a client, fed in the given chunks.
fn translate(provider: ProviderDialect, client: ClientDialect, chunks: &[&[u8]]) -> (String, Vec<StreamEvent>) {
    let mut decoder = StreamDecoder::new(provider);
    let mut encoder = StreamEncoder::new(client, true, 1_700_000_000);
    let (mut events, mut all, mut out) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in chunks {
        decoder.feed(chunk, &mut events);
        for e in events.drain(..) {
            encoder.encode(&e, &mut out);
            all.push(e);
        }
    }
    decoder.finish(&mut events);
    for e in events.drain(..) {
        encoder.encode(&e, &mut out);
        all.push(e);
    }
    encoder.finish(&mut out);
    (String::from_utf8(out).unwrap(), all)
}

#[test]
fn provider_streams_translated_for_every_client() {
    let streams = [
        (ProviderDialect::OpenAi, "openai", "chat_stream_parallel_tool_calls.sse"),
        (ProviderDialect::OpenAi, "openai", "deepseek_reasoner_stream.sse"),
        (ProviderDialect::OpenAi, "openai", "chat_stream_error.sse"),
        (ProviderDialect::Anthropic, "anthropic", "stream_tool_use.sse"),
        (ProviderDialect::Anthropic, "anthropic", "stream_thinking.sse"),
        (ProviderDialect::Anthropic, "anthropic", "stream_truncated.sse"),
        (ProviderDialect::Gemini, "gemini", "stream_text.sse"),
        (ProviderDialect::Gemini, "gemini", "stream_function_call.sse"),
        (ProviderDialect::Bedrock, "bedrock", "stream_tool_use.eventstream"),
        (ProviderDialect::Bedrock, "bedrock", "stream_reasoning.eventstream"),
        (ProviderDialect::Bedrock, "bedrock", "stream_exception.eventstream"),
    ];
    for (provider, dir, file) in streams {
        let bytes = std::fs::read(fixtures().join(dir).join(file)).unwrap();
        for (client, cname) in CLIENTS {
            let (whole, events) = translate(provider, client, &[&bytes]);
            let ends = events.iter().filter(|e| matches!(e, StreamEvent::Done | StreamEvent::Error(_))).count();
            assert_eq!(ends, 1, "{dir}/{file}: exactly one Done or Error");
            golden(&format!("{dir}_{file}__to_{cname}.sse"), &whole);
            for split in 0..=bytes.len() {
                let (a, b) = bytes.split_at(split);
                assert_eq!(translate(provider, client, &[a, b]).0, whole, "{dir}/{file} -> {cname}, split at {split}");
            }
            let ones: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(translate(provider, client, &ones).0, whole, "{dir}/{file} -> {cname}, 1-byte chunks");
        }
    }
}
