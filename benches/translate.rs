//! Translation per client x provider pair, and stream decoding (criterion):
//! `cargo bench --bench translate` (`make bench-native` runs it after `benches/core.rs`). Figures
//! are in BENCHMARKS.md ("Translation").
//!
//! Typical inputs, from the fixtures: the OpenAI client sends `openai/request_tool_roundtrip`
//! (2.5 KB: system + developer, a data-URL image, an assistant turn with reasoning and two
//! tool calls, two tool results, two tools, JSON schema output), minus `seed`,
//! `frequency_penalty` and `presence_penalty`, which only OpenAI and Gemini accept (so every
//! provider gets the same request); the Anthropic client sends `anthropic/request_claude_code`
//! (4.7 KB, Claude Code's shape: cached system blocks, two tools, signed thinking, tool
//! results); the Responses client sends `openai_responses/request_tool_roundtrip` (2.2 KB:
//! instructions, developer message, reasoning item with signature, function call and output,
//! one tool, reasoning effort). Each provider gets its own kind of model id (a Claude id on Bedrock, where
//! thinking budgets need one). Provider answers: OpenAI `chat_completion_tool_calls`,
//! Anthropic `response_text`, Gemini `generate_content_text`, Bedrock `converse_text`.
//!
//! - `request/<client>-><provider>`: decode the client request, encode it for the provider.
//! - `response/<provider>-><client>`: decode the provider's JSON answer, encode it for the
//!   client.
//! - `pair/<client>-><provider>`: both, i.e. the translation work of one non-streamed
//!   exchange for that pair.
//! - `stream/<provider>-><client>`: decode a provider stream fixture and re-encode it event
//!   by event for the client (throughput in bytes of provider stream).
//! - `decode/sse`, `decode/eventstream`: the framing decoders alone, on about 75 KB of
//!   stream (fixtures repeated; CRC checks included for eventstream), in bytes per second.
//!
//! `BENCH_CLOCK=cpu` measures the benchmark thread's CPU time (64-bit Linux,
//! `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`) instead of wall time: on a shared machine it leaves out the
//! time the thread waited for a core (not the slowdown of sharing caches or a core's sibling).

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput};
use llm_gateway::config::Limits;
use llm_gateway::llm::dialect::{self, StreamDecoder, StreamEncoder};
use llm_gateway::llm::ir::{ChatRequest, ClientDialect, ProviderDialect};
use llm_gateway::stream::eventstream::EventStreamDecoder;
use llm_gateway::stream::sse::SseDecoder;
use std::hint::black_box;
use std::time::Duration;

const CLIENTS: [(ClientDialect, &str); 3] = [
    (ClientDialect::OpenAi, "openai"),
    (ClientDialect::Anthropic, "anthropic"),
    (ClientDialect::Responses, "responses"),
];
const PROVIDERS: [(ProviderDialect, &str, &str); 4] = [
    (ProviderDialect::OpenAi, "openai", "gpt-4.1"),
    (ProviderDialect::Anthropic, "anthropic", "claude-sonnet-4-5"),
    (ProviderDialect::Gemini, "gemini", "gemini-2.5-flash"),
    (ProviderDialect::Bedrock, "bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
];

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The typical request of each client dialect.
fn client_requests() -> [(ClientDialect, &'static str, Vec<u8>); 3] {
    [
        (ClientDialect::OpenAi, "openai", fixture("openai/request_tool_roundtrip.json")),
        (ClientDialect::Anthropic, "anthropic", fixture("anthropic/request_claude_code.json")),
        (ClientDialect::Responses, "responses", fixture("openai_responses/request_tool_roundtrip.json")),
    ]
}

/// The typical JSON answer of each provider dialect.
fn provider_responses() -> [(ProviderDialect, &'static str, Vec<u8>); 4] {
    [
        (ProviderDialect::OpenAi, "openai", fixture("openai/chat_completion_tool_calls.json")),
        (ProviderDialect::Anthropic, "anthropic", fixture("anthropic/response_text.json")),
        (ProviderDialect::Gemini, "gemini", fixture("gemini/generate_content_text.json")),
        (ProviderDialect::Bedrock, "bedrock", fixture("bedrock/converse_text.json")),
    ]
}

/// What the engine does to a request before encoding: the route's model; here also the
/// removal of the OpenAI-only sampling parameters (see the module docs).
fn route(request: &mut ChatRequest, model: &str) {
    request.model = model.to_string();
    request.seed = None;
    request.frequency_penalty = None;
    request.presence_penalty = None;
}

fn translate_request(client: ClientDialect, body: &[u8], provider: ProviderDialect, model: &str) -> Vec<u8> {
    let mut request = dialect::decode_request(client, body).unwrap();
    route(&mut request, model);
    dialect::encode_request(provider, &request).unwrap()
}

fn requests<M: Measurement>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group("request");
    for (client, cname, body) in &client_requests() {
        group.throughput(Throughput::Bytes(body.len() as u64));
        for (provider, pname, model) in PROVIDERS {
            group.bench_function(format!("{cname}->{pname}"), |b| {
                b.iter(|| black_box(translate_request(*client, black_box(body), provider, model)))
            });
        }
    }
    group.finish();
}

fn responses<M: Measurement>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group("response");
    for (provider, pname, body) in &provider_responses() {
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

fn pairs<M: Measurement>(c: &mut Criterion<M>) {
    let responses = provider_responses();
    let mut group = c.benchmark_group("pair");
    for (client, cname, request) in &client_requests() {
        for ((provider, pname, model), (_, _, response)) in PROVIDERS.into_iter().zip(&responses) {
            group.throughput(Throughput::Bytes((request.len() + response.len()) as u64));
            group.bench_function(format!("{cname}->{pname}"), |b| {
                b.iter(|| {
                    let upstream = translate_request(*client, black_box(request), provider, model);
                    let answer = dialect::decode_response(provider, black_box(response)).unwrap();
                    black_box((upstream, dialect::encode_response(*client, &answer)))
                })
            });
        }
    }
    group.finish();
}

fn streams<M: Measurement>(c: &mut Criterion<M>) {
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
                    let mut decoder = StreamDecoder::new(*provider, Limits::default().max_sse_event_bytes);
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

/// `copies` of a stream fixture back to back (SSE events and eventstream frames are
/// self-contained, so the result is one valid, longer stream).
fn repeated(path: &str, copies: usize) -> Vec<u8> {
    fixture(path).repeat(copies)
}

fn decoders<M: Measurement>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group("decode");
    // 10 x 7.7 KB: 260 events (OpenAI chunks with parallel tool-call deltas).
    let sse = repeated("openai/chat_stream_parallel_tool_calls.sse", 10);
    group.throughput(Throughput::Bytes(sse.len() as u64));
    group.bench_function("sse", |b| {
        b.iter(|| {
            let mut decoder = SseDecoder::new(1 << 20);
            let mut out = Vec::new();
            decoder.feed(black_box(&sse), &mut out).unwrap();
            decoder.finish(&mut out).unwrap();
            black_box(out)
        })
    });
    // 64 x 1.1 KB: 448 frames (ConverseStream text events).
    let frames = repeated("bedrock/stream_text.eventstream", 64);
    group.throughput(Throughput::Bytes(frames.len() as u64));
    group.bench_function("eventstream", |b| {
        b.iter(|| {
            let mut decoder = EventStreamDecoder::new(16 << 20);
            let mut out = Vec::new();
            decoder.feed(black_box(&frames), &mut out).unwrap();
            black_box(out)
        })
    });
    group.finish();
}

/// `struct timespec` of 64-bit Linux.
#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    /// From the C library std links on Linux.
    fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
}

/// `CLOCK_THREAD_CPUTIME_ID` (Linux `<time.h>`).
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux defines.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Criterion measurement: the benchmark thread's CPU time (see the module docs).
struct ThreadCpu;

/// `WallTime`'s formatter (durations in ns) serves CPU time too.
static WALL: WallTime = WallTime;

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = Duration;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> Duration {
        Duration::from_nanos(thread_cpu_ns().saturating_sub(start))
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

fn run<M: Measurement>(mut c: Criterion<M>) {
    requests(&mut c);
    responses(&mut c);
    pairs(&mut c);
    streams(&mut c);
    decoders(&mut c);
    c.final_summary();
}

fn main() {
    if std::env::var("BENCH_CLOCK").is_ok_and(|v| v == "cpu") {
        run(Criterion::default().with_measurement(ThreadCpu).configure_from_args());
    } else {
        run(Criterion::default().configure_from_args());
    }
}
