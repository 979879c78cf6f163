//! Native micro-benchmarks of the core (criterion): `make bench-native`, i.e.
//! `cargo bench --bench core`. Not run by `make test` (clippy checks that it compiles).
//!
//! - `sse_decode`: `SseDecoder` on a realistic OpenAI Chat Completions stream (role chunk,
//!   300 content chunks, finish chunk, usage chunk, `[DONE]`), fed whole and in 1 KiB chunks.
//! - `json_scan_patch`: validate a chat request, set `model`, set `stream_options`, apply the
//!   edits (what the engine does to a pass-through request body), at 2 KB and 50 KB.
//! - `engine_exchange`: one whole request through `Gateway` -> `Exchange`: request headers,
//!   request body, response headers, response body, finish; non-streaming and streaming.
//!
//! Throughput figures are bytes of input per second. Add a group here when a feature lands
//! (translation per pair, eventstream decoding, token estimation, JWT, quota).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use llm_gateway::engine::{Gateway, RequestAction, RequestHead};
use llm_gateway::json_scan;
use llm_gateway::metrics;
use llm_gateway::stream::sse::{SseDecoder, SseEvent};

/// The benchmark's ~2 KB chat request (also what `make bench` sends through Envoy).
const CHAT_2K: &[u8] = include_bytes!("../bench/bodies/chat_request.json");
const COMPLETION: &[u8] = include_bytes!("../bench/bodies/upstream_chat_completion.json");
/// What the bench's Anthropic upstream answers (`make bench` scenario d).
const ANTHROPIC_MESSAGE: &[u8] = include_bytes!("../bench/bodies/upstream_anthropic_message.json");

const CONFIG: &str = r#"{
  "providers": {"bench-openai": {"kind": "openai", "cluster": "upstream",
                                 "auth": {"type": "bearer", "env": "BENCH_UPSTREAM_KEY"}}},
  "models": {"bench-gpt": {"provider": "bench-openai", "model": "gpt-4o-mini"}}
}"#;

/// An OpenAI stream as sent with `stream_options.include_usage` (same shape as bench/streams.py).
fn openai_stream(content_chunks: usize) -> Vec<u8> {
    let base = r#""id":"chatcmpl-bench","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_44709d6fcb""#;
    let words = ["Set", " an", " idle", " timeout", " on", " the", " upstream", " cluster", " shorter", " than"];
    let mut out = String::new();
    let mut chunk = |delta: &str, finish: &str| {
        out.push_str(&format!(
            "data: {{{base},\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}],\"usage\":null}}\n\n"
        ));
    };
    chunk(r#"{"role":"assistant","content":"","refusal":null}"#, "null");
    for i in 0..content_chunks {
        chunk(&format!(r#"{{"content":"{}"}}"#, words[i % words.len()]), "null");
    }
    chunk("{}", r#""stop""#);
    out.push_str(&format!(
        "data: {{{base},\"choices\":[],\"usage\":{{\"prompt_tokens\":412,\"completion_tokens\":{content_chunks},\"total_tokens\":{},\"prompt_tokens_details\":{{\"cached_tokens\":0,\"audio_tokens\":0}},\"completion_tokens_details\":{{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}}}}\n\n",
        412 + content_chunks
    ));
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

/// The 2 KB request grown to about `size` bytes by repeating its history (a long conversation).
fn chat_request(size: usize) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(CHAT_2K).unwrap();
    let history = value["messages"].as_array().unwrap()[1..].to_vec();
    while serde_json::to_vec(&value).unwrap().len() < size {
        value["messages"].as_array_mut().unwrap().extend(history.iter().cloned());
    }
    serde_json::to_vec(&value).unwrap()
}

fn decode(chunks: &[&[u8]]) -> usize {
    let mut decoder = SseDecoder::new(1 << 20);
    let mut events: Vec<SseEvent> = Vec::with_capacity(512);
    for chunk in chunks {
        decoder.feed(chunk, &mut events).unwrap();
    }
    decoder.finish(&mut events).unwrap();
    events.len()
}

fn sse_decode(c: &mut Criterion) {
    let stream = openai_stream(300);
    let mut group = c.benchmark_group("sse_decode");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function(format!("openai_{}KiB_whole", stream.len() / 1024), |b| {
        b.iter(|| decode(&[black_box(&stream)]))
    });
    let chunks: Vec<&[u8]> = stream.chunks(1024).collect();
    group.bench_function(format!("openai_{}KiB_1KiB_chunks", stream.len() / 1024), |b| {
        b.iter(|| decode(black_box(&chunks)))
    });
    group.finish();
}

fn scan_and_patch(doc: &[u8]) -> Vec<u8> {
    let members = json_scan::top_level_members(doc).unwrap();
    let edits = [
        json_scan::set_member(doc, &members, "model", &json_scan::json_string("gpt-4o-mini")),
        json_scan::set_member(doc, &members, "stream_options", br#"{"include_usage":true}"#),
    ];
    json_scan::apply_edits(doc, &edits)
}

fn json_scan_patch(c: &mut Criterion) {
    let mut group = c.benchmark_group("json_scan_patch");
    for (name, doc) in [("chat_2KB", CHAT_2K.to_vec()), ("chat_50KB", chat_request(50 * 1024))] {
        group.throughput(Throughput::Bytes(doc.len() as u64));
        group.bench_function(format!("{name}_scan_only"), |b| {
            b.iter(|| json_scan::top_level_members(black_box(&doc)).unwrap().len())
        });
        // The strict whole-body check admission runs first (duplicate keys at any depth,
        // media count); it also returns the top-level members, replacing the scan above.
        group.bench_function(format!("{name}_inspect"), |b| {
            b.iter(|| json_scan::inspect(black_box(&doc)).unwrap().members.len())
        });
        group.bench_function(format!("{name}_scan_set_model_apply"), |b| b.iter(|| scan_and_patch(black_box(&doc))));
        // For scale: what a parse + re-serialize of the whole body would cost instead.
        group.bench_function(format!("{name}_serde_value_roundtrip"), |b| {
            b.iter(|| {
                let mut v: serde_json::Value = serde_json::from_slice(black_box(&doc)).unwrap();
                v["model"] = serde_json::Value::from("gpt-4o-mini");
                serde_json::to_vec(&v).unwrap()
            })
        });
    }
    group.finish();
}

/// `make bench` scenario d: the OpenAI client's `bench-gpt` served by an Anthropic provider.
const CONFIG_TRANSLATING: &str = r#"{
  "providers": {"bench-anthropic": {"kind": "anthropic", "cluster": "upstream",
                 "auth": {"type": "header", "name": "x-api-key", "env": "BENCH_UPSTREAM_KEY"}}},
  "models": {"bench-gpt": {"provider": "bench-anthropic", "model": "claude-sonnet-4-5"}}
}"#;

fn gateway() -> Gateway {
    gateway_from(CONFIG)
}

fn gateway_from(config: &str) -> Gateway {
    Gateway::from_json(config.as_bytes(), &|k| (k == "BENCH_UPSTREAM_KEY").then(|| "sk-bench".to_string())).unwrap()
}

/// One exchange; returns the bytes the client would receive (so nothing is optimized away).
fn exchange(gw: &Gateway, request: &[u8], stream: bool, content_type: &str, response: &[&[u8]]) -> usize {
    let head = RequestHead {
        method: "POST",
        path: "/v1/chat/completions",
        body_model: Some("bench-gpt"),
        ..RequestHead::default()
    };
    let (mut ex, action) = gw.on_request_headers(&head, 7, 1_000);
    let RequestAction::Forward(ops) = action else { panic!("the bench request must be forwarded") };
    let mut n = ops.len();
    black_box(ex.on_request_body(request, 1_001, None, None));
    let _ = black_box(ex.on_response_headers(200, Some(content_type)));
    for (i, chunk) in response.iter().enumerate() {
        let action = ex.on_response_body(chunk, i + 1 == response.len(), 1_010 + i as u64);
        black_box(&action);
        n += 1;
    }
    let record = ex.finish(2_000, None);
    black_box(&record);
    n + usize::from(stream)
}

/// One exchange as the shell drives it in Envoy, end to end: [`exchange`] plus what the
/// shell does with the record (the metric points, the access-log record and its `llm_tokens`
/// field). Only the host calls are missing.
fn shell_exchange(gw: &Gateway, request: &[u8], content_type: &str, response: &[&[u8]]) -> usize {
    let head = RequestHead {
        method: "POST",
        path: "/v1/chat/completions",
        body_model: Some("bench-gpt"),
        ..RequestHead::default()
    };
    let (mut ex, action) = gw.on_request_headers(&head, 7, 1_000);
    let RequestAction::Forward(ops) = action else { panic!("the bench request must be forwarded") };
    black_box(ops);
    black_box(ex.on_request_body(request, 1_001, None, None));
    let _ = black_box(ex.on_response_headers(200, Some(content_type)));
    for (i, chunk) in response.iter().enumerate() {
        let action = ex.on_response_body(chunk, i + 1 == response.len(), 1_010 + i as u64);
        black_box(&action);
    }
    let Some(record) = ex.finish(2_000, None) else { panic!("the bench exchange must end with a record") };
    let line = metrics::log_record(&record);
    let tokens = metrics::consumer_tokens(&record);
    let mut names = 0;
    metrics::each_point(&record, |_, name, _| names += name.len());
    black_box(&tokens);
    line.len() + names
}

/// The shell's path per step, on the passthrough (2 KB request, JSON answer) and on the
/// bench's 50-event stream (one event per chunk, as the paced provider sends them): what
/// `make bench` measures through Envoy, without the host. The sub-steps price the parts.
fn shell_path(c: &mut Criterion) {
    let gw = gateway();
    let mut group = c.benchmark_group("shell_path");
    group.throughput(Throughput::Elements(1));
    group.bench_function("passthrough_whole", |b| {
        b.iter(|| shell_exchange(&gw, black_box(CHAT_2K), "application/json", &[COMPLETION]))
    });
    let translating = gateway_from(CONFIG_TRANSLATING);
    group.bench_function("translation_whole", |b| {
        b.iter(|| shell_exchange(&translating, black_box(CHAT_2K), "application/json", &[ANTHROPIC_MESSAGE]))
    });
    let mut request: serde_json::Value = serde_json::from_slice(CHAT_2K).unwrap();
    request["stream"] = serde_json::Value::Bool(true);
    let stream_request = serde_json::to_vec(&request).unwrap();
    let stream = openai_stream(50);
    let events: Vec<&[u8]> = split_events(&stream);
    assert_eq!(events.len(), 54, "role + 50 content + finish + usage events and [DONE]");
    group.bench_function("stream_50_events_one_per_chunk", |b| {
        b.iter(|| shell_exchange(&gw, black_box(&stream_request), "text/event-stream", &events))
    });
    group.bench_function("stream_50_events_one_chunk", |b| {
        b.iter(|| shell_exchange(&gw, black_box(&stream_request), "text/event-stream", &[&stream]))
    });
    // The sub-steps.
    let head = RequestHead {
        method: "POST",
        path: "/v1/chat/completions",
        body_model: Some("bench-gpt"),
        ..RequestHead::default()
    };
    group.bench_function("step_request_headers", |b| {
        b.iter(|| black_box(gw.on_request_headers(black_box(&head), 7, 1_000)))
    });
    group.bench_function("step_request_headers_and_body", |b| {
        b.iter(|| {
            let (mut ex, _) = gw.on_request_headers(&head, 7, 1_000);
            black_box(ex.on_request_body(black_box(CHAT_2K), 1_001, None, None));
            ex
        })
    });
    group.bench_function("step_inspect_2KB", |b| {
        b.iter(|| json_scan::inspect(black_box(CHAT_2K)).unwrap().members.len())
    });
    let (mut ex, _) = gw.on_request_headers(&head, 7, 1_000);
    ex.on_request_body(CHAT_2K, 1_001, None, None);
    let _ = ex.on_response_headers(200, Some("application/json"));
    let _ = ex.on_response_body(COMPLETION, true, 1_010);
    let record = ex.finish(2_000, None).unwrap();
    group.bench_function("step_metric_points", |b| {
        b.iter(|| {
            let mut names = 0;
            metrics::each_point(black_box(&record), |_, name, _| names += name.len());
            names
        })
    });
    group.bench_function("step_log_record", |b| b.iter(|| metrics::log_record(black_box(&record))));
    group.bench_function("step_log_fields", |b| b.iter(|| metrics::log_fields(black_box(&record))));
    group.finish();
}

/// The stream cut after each event's blank line.
fn split_events(stream: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, pair) in stream.windows(2).enumerate() {
        if pair == b"\n\n" {
            out.push(&stream[start..i + 2]);
            start = i + 2;
        }
    }
    out
}

fn engine_exchange(c: &mut Criterion) {
    let gw = gateway();
    let mut group = c.benchmark_group("engine_exchange");
    group.throughput(Throughput::Elements(1));
    group.bench_function("openai_json_2KB_request", |b| {
        b.iter(|| exchange(&gw, black_box(CHAT_2K), false, "application/json", &[COMPLETION]))
    });
    let mut request: serde_json::Value = serde_json::from_slice(CHAT_2K).unwrap();
    request["stream"] = serde_json::Value::Bool(true);
    let request = serde_json::to_vec(&request).unwrap();
    let stream = openai_stream(300);
    let chunks: Vec<&[u8]> = stream.chunks(1024).collect();
    group.bench_function(format!("openai_sse_{}KiB_in_1KiB_chunks", stream.len() / 1024), |b| {
        b.iter(|| exchange(&gw, black_box(&request), true, "text/event-stream", &chunks))
    });
    group.bench_function("gateway_from_json", |b| b.iter_batched(|| (), |()| gateway(), BatchSize::SmallInput));
    group.finish();
}

criterion_group!(benches, sse_decode, json_scan_patch, engine_exchange, shell_path);
criterion_main!(benches);
