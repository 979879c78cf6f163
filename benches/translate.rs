//! Translation per client x provider pair, and stream decoding (criterion):
//! `cargo bench --bench translate` (`make bench-native` runs every bench).
//!
//! - `request/<client>-><provider>`: decode a typical client request (tool round trip with
//!   an image, from the fixtures) and encode it for the provider.
//! - `response/<provider>-><client>`: decode a provider's JSON response, encode it for the
//!   client.
//! - `stream/<provider>-><client>`: decode a provider stream fixture and re-encode it event
//!   by event for the client (throughput in bytes of provider stream).
//! - `decode/eventstream`: AWS eventstream framing alone (CRC checks included).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use llm_gateway::llm::dialect::{self, StreamDecoder, StreamEncoder};
use llm_gateway::llm::ir::{ClientDialect, ProviderDialect};
use llm_gateway::stream::eventstream::EventStreamDecoder;
use std::hint::black_box;

const CLIENTS: [(ClientDialect, &str); 2] =
    [(ClientDialect::OpenAi, "openai"), (ClientDialect::Anthropic, "anthropic")];
const PROVIDERS: [(ProviderDialect, &str); 4] = [
    (ProviderDialect::OpenAi, "openai"),
    (ProviderDialect::Anthropic, "anthropic"),
    (ProviderDialect::Gemini, "gemini"),
    (ProviderDialect::Bedrock, "bedrock"),
];

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn requests(c: &mut Criterion) {
    let bodies = [
        (ClientDialect::OpenAi, "openai", fixture("openai/request_tool_roundtrip.json")),
        (ClientDialect::Anthropic, "anthropic", fixture("anthropic/request_basic.json")),
    ];
    let mut group = c.benchmark_group("request");
    for (client, cname, body) in &bodies {
        group.throughput(Throughput::Bytes(body.len() as u64));
        for (provider, pname) in PROVIDERS {
            let mut probe = dialect::decode_request(*client, body).unwrap();
            probe.model = "model".to_string();
            probe.seed = None;
            if dialect::encode_request(provider, &probe).is_err() {
                continue; // A feature this provider cannot express: nothing to time.
            }
            group.bench_function(format!("{cname}->{pname}"), |b| {
                b.iter(|| {
                    let mut request = dialect::decode_request(*client, black_box(body)).unwrap();
                    request.model = "model".to_string();
                    request.seed = None;
                    black_box(dialect::encode_request(provider, &request).unwrap())
                })
            });
        }
    }
    group.finish();
}

fn responses(c: &mut Criterion) {
    let bodies = [
        (ProviderDialect::OpenAi, "openai", fixture("openai/chat_completion_tool_calls.json")),
        (ProviderDialect::Anthropic, "anthropic", fixture("anthropic/response_text.json")),
        (ProviderDialect::Gemini, "gemini", fixture("gemini/generate_content_text.json")),
        (ProviderDialect::Bedrock, "bedrock", fixture("bedrock/converse_text.json")),
    ];
    let mut group = c.benchmark_group("response");
    for (provider, pname, body) in &bodies {
        group.throughput(Throughput::Bytes(body.len() as u64));
        for (client, cname) in CLIENTS {
            group.bench_function(format!("{pname}->{cname}"), |b| {
                b.iter(|| {
                    let response = dialect::decode_response(*provider, black_box(body)).unwrap();
                    black_box(dialect::encode_response(client, &response))
                })
            });
        }
    }
    group.finish();
}

fn streams(c: &mut Criterion) {
    let bodies = [
        (ProviderDialect::OpenAi, "openai", fixture("openai/chat_stream_parallel_tool_calls.sse")),
        (ProviderDialect::Anthropic, "anthropic", fixture("anthropic/stream_tool_use.sse")),
        (ProviderDialect::Gemini, "gemini", fixture("gemini/stream_text.sse")),
        (ProviderDialect::Bedrock, "bedrock", fixture("bedrock/stream_tool_use.eventstream")),
    ];
    let mut group = c.benchmark_group("stream");
    for (provider, pname, body) in &bodies {
        group.throughput(Throughput::Bytes(body.len() as u64));
        for (client, cname) in CLIENTS {
            group.bench_function(format!("{pname}->{cname}"), |b| {
                b.iter(|| {
                    let mut decoder = StreamDecoder::new(*provider);
                    let mut encoder = StreamEncoder::new(client, true, 1_700_000_000);
                    let (mut events, mut out) = (Vec::new(), Vec::new());
                    decoder.feed(black_box(body), &mut events);
                    decoder.finish(&mut events);
                    for event in &events {
                        encoder.encode(event, &mut out);
                    }
                    encoder.finish(&mut out);
                    black_box(out)
                })
            });
        }
    }
    group.finish();
}

fn eventstream(c: &mut Criterion) {
    let body = fixture("bedrock/stream_text.eventstream");
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("eventstream", |b| {
        b.iter(|| {
            let mut decoder = EventStreamDecoder::new(16 << 20);
            let mut out = Vec::new();
            decoder.feed(black_box(&body), &mut out).unwrap();
            black_box(out)
        })
    });
    group.finish();
}

criterion_group!(benches, requests, responses, streams, eventstream);
criterion_main!(benches);
