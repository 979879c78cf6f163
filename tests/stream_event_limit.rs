//! `limits.max_sse_event_bytes` bounds every provider stream the gateway reads, whether it
//! translates it (another dialect's client) or passes it through and only observes it
//! (the client's own dialect), SSE or Bedrock's event stream: an event over the bound ends the
//! stream with an error naming the bound, and an event within it passes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use llm_gateway::engine::{BodyAction, Gateway, RequestAction, RequestHead};
use llm_gateway::stream::eventstream::{encode_message, HeaderValue};
use serde_json::json;

const NOW_MS: u64 = 1_795_734_600_000;
/// The configured bound of these tests.
const LIMIT: usize = 512;

fn gateway() -> Gateway {
    let config = json!({
        "providers": {
            "oa": {"kind": "openai", "cluster": "openai", "auth": {"type": "bearer", "env": "KEY"}},
            "an": {"kind": "anthropic", "cluster": "anthropic", "auth": {"type": "api-key", "env": "KEY"}},
            "ge": {"kind": "gemini", "cluster": "gemini", "auth": {"type": "api-key", "env": "KEY"}},
            "br": {"kind": "bedrock", "cluster": "bedrock", "region": "us-east-1", "auth": {"type": "bearer", "env": "KEY"}}
        },
        "models": {
            "gpt": {"provider": "oa", "model": "gpt-4o-mini"},
            "claude": {"provider": "an", "model": "claude-sonnet-4-5"},
            "gemini": {"provider": "ge", "model": "gemini-2.0-flash"},
            "bedrock": {"provider": "br", "model": "anthropic.claude-3-haiku-20240307-v1:0"}
        },
        "limits": {"max_sse_event_bytes": LIMIT}
    });
    let env = |k: &str| (k == "KEY").then(|| "sk-upstream".to_string());
    Gateway::from_json(config.to_string().as_bytes(), &env).unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Client {
    OpenAi,
    Anthropic,
}

/// An Anthropic stream whose one text delta is `text`.
fn anthropic_stream(text: &str) -> Vec<u8> {
    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "usage": {"input_tokens": 3, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
        ),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    events.iter().map(|(name, data)| format!("event: {name}\ndata: {data}\n\n")).collect::<String>().into_bytes()
}

/// An OpenAI Chat Completions stream whose one content delta is `text`.
fn openai_stream(text: &str) -> Vec<u8> {
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let chunks = [chunk(json!({"role": "assistant", "content": text}), json!(null)), chunk(json!({}), json!("stop"))];
    let mut out: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

/// A Gemini `alt=sse` stream whose one text part is `text`.
fn gemini_stream(text: &str) -> Vec<u8> {
    let chunks = [
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}}]}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "."}]}, "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 7}}),
    ];
    chunks.iter().map(|c| format!("data: {c}\r\n\r\n")).collect::<String>().into_bytes()
}

/// A Bedrock ConverseStream (AWS event stream) whose one text delta is `text`.
fn bedrock_stream(text: &str) -> Vec<u8> {
    let events = [
        ("messageStart", json!({"role": "assistant"})),
        ("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": text}})),
        ("contentBlockStop", json!({"contentBlockIndex": 0})),
        ("messageStop", json!({"stopReason": "end_turn"})),
        (
            "metadata",
            json!({"usage": {"inputTokens": 3, "outputTokens": 7, "totalTokens": 10}, "metrics": {"latencyMs": 5}}),
        ),
    ];
    let mut out = Vec::new();
    for (name, payload) in events {
        let headers = [
            (":event-type".to_string(), HeaderValue::String(name.to_string())),
            (":content-type".to_string(), HeaderValue::String("application/json".to_string())),
            (":message-type".to_string(), HeaderValue::String("event".to_string())),
        ];
        out.extend(encode_message(&headers, payload.to_string().as_bytes()).unwrap());
    }
    out
}

/// What the client receives for a stream of `model` answered with `answer`, fed in 64-byte chunks.
fn client_receives(client: Client, model: &str, answer: &[u8]) -> String {
    let gw = gateway();
    let (path, body) = match client {
        Client::OpenAi => (
            "/v1/chat/completions",
            json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        ),
        Client::Anthropic => (
            "/v1/messages",
            json!({"model": model, "stream": true, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}),
        ),
    };
    let head = RequestHead {
        method: "POST",
        path,
        body_model: Some(model),
        body_stream: true,
        anthropic_version: client == Client::Anthropic,
        ..RequestHead::default()
    };
    let (mut exchange, action) = gw.on_request_headers(&head, 0, NOW_MS);
    assert!(matches!(action, RequestAction::Forward(_)), "{action:?}");
    let sent = exchange.on_request_body(body.to_string().as_bytes(), NOW_MS, None, gw.prompts());
    assert!(matches!(sent, BodyAction::Replace(_) | BodyAction::Unchanged), "{sent:?}");
    let content_type = if model == "bedrock" { "application/vnd.amazon.eventstream" } else { "text/event-stream" };
    exchange.on_response_headers(200, Some(content_type));
    let chunks: Vec<&[u8]> = answer.chunks(64).collect();
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        match exchange.on_response_body(chunk, i + 1 == chunks.len(), NOW_MS + 10) {
            BodyAction::Replace(bytes) => out.extend(bytes),
            BodyAction::Unchanged => out.extend_from_slice(chunk),
            BodyAction::Reply(reply) => panic!("{reply:?}"),
        }
    }
    assert!(exchange.finish(NOW_MS + 20, None).is_some());
    String::from_utf8(out).unwrap()
}

/// A case: its name, the client, the model, and the provider's answer for a text delta.
type Case = (&'static str, Client, &'static str, fn(&str) -> Vec<u8>);

/// One stream per way the gateway reads it.
fn cases() -> [Case; 6] {
    [
        ("Anthropic passthrough (observed)", Client::Anthropic, "claude", anthropic_stream),
        ("OpenAI passthrough", Client::OpenAi, "gpt", openai_stream),
        ("Anthropic translated for OpenAI", Client::OpenAi, "claude", anthropic_stream),
        ("OpenAI translated for Anthropic", Client::Anthropic, "gpt", openai_stream),
        ("Gemini translated for OpenAI", Client::OpenAi, "gemini", gemini_stream),
        ("Bedrock event stream translated for Anthropic", Client::Anthropic, "bedrock", bedrock_stream),
    ]
}

/// The last `data:` payload of an SSE body, as JSON.
fn last_data(body: &str) -> serde_json::Value {
    let mut data = body.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).filter(|d| *d != "[DONE]");
    serde_json::from_str(data.next_back().unwrap_or_else(|| panic!("no event in {body:?}"))).unwrap()
}

#[test]
fn an_event_over_the_limit_ends_every_stream_with_an_error() {
    let big = "x".repeat(LIMIT * 2);
    for (name, client, model, answer) in cases() {
        let body = client_receives(client, model, &answer(&big));
        let error = last_data(&body);
        let message = match client {
            Client::OpenAi => error["error"]["message"].as_str(),
            Client::Anthropic => {
                assert_eq!(error["type"], "error", "{name}: {body}");
                error["error"]["message"].as_str()
            }
        };
        let message = message.unwrap_or_else(|| panic!("{name}: the stream does not end on an error: {body}"));
        // SSE: "exceeds 512 bytes"; event stream: "exceeds the 512-byte limit".
        assert!(message.contains("exceeds") && message.contains(&LIMIT.to_string()), "{name}: {message}");
        assert!(!body.contains(&big), "{name}: the event over the limit reached the client whole");
        assert!(!body.contains("message_stop"), "{name}: the stream went on after the error");
    }
}

#[test]
fn events_within_the_limit_pass() {
    let text = "y".repeat(LIMIT / 4);
    for (name, client, model, answer) in cases() {
        let body = client_receives(client, model, &answer(&text));
        assert!(body.contains(&text), "{name}: {body}");
        assert!(!body.contains("exceeds"), "{name}: {body}");
        let last = last_data(&body);
        assert!(last.get("error").is_none() && last["type"] != "error", "{name}: {body}");
    }
}
