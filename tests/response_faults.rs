//! The response side against failing providers and departing clients (issue 10: items 4, 7,
//! 10, 11, 12, 15, 25): every answer is counted or estimated, every error the client sees is
//! JSON (or an SSE error event) in its own dialect, and no provider credential reaches it.

use llm_gateway::engine::{
    BodyAction, Exchange, Gateway, HeaderOp, Record, RequestAction, RequestHead, ResponseOrigin,
};
use llm_gateway::usage::UsageSource;
use serde_json::Value;

const CONFIG: &str = r#"{
  "providers": {
    "oa": {"kind": "openai", "cluster": "openai_cluster", "auth": {"type": "bearer", "env": "KEY"}},
    "an": {"kind": "anthropic", "cluster": "anthropic_cluster", "auth": {"type": "api-key", "env": "KEY"}}
  },
  "models": {
    "gpt": {"provider": "oa", "model": "gpt-4o-mini"},
    "claude": {"provider": "an", "model": "claude-3-opus-latest"}
  },
  "limits": {"max_response_body_bytes": 4096}
}"#;

const OPENAI_STREAM: &[u8] = include_bytes!("fixtures/openai/chat_stream_include_usage.sse");
const ANTHROPIC_STREAM: &[u8] = include_bytes!("fixtures/anthropic/stream_basic.sse");
const ANTHROPIC_TRUNCATED: &[u8] = include_bytes!("fixtures/anthropic/stream_truncated.sse");

/// What the provider's key looks like in OpenAI's 401 message.
const KEY_QUOTE: &str = "Incorrect API key provided: sk-upstr**********-key. You can find your API key at \
                         https://platform.openai.com/account/api-keys.";

/// A client of `dialect` ("openai" or "anthropic") asking for `model`, request body sent.
fn exchange(client: &str, model: &str, stream: bool) -> Exchange {
    let gw =
        Gateway::from_json(CONFIG.as_bytes(), &|k| (k == "KEY").then(|| "sk-upstream-test-key".to_string())).unwrap();
    let path = if client == "anthropic" { "/v1/messages" } else { "/v1/chat/completions" };
    let head = RequestHead { method: "POST", path, body_model: Some(model), ..RequestHead::default() };
    let (mut exchange, action) = gw.on_request_headers(&head, 0, 1_000);
    assert!(matches!(action, RequestAction::Forward(_)));
    let body = format!(
        r#"{{"model":"{model}","max_tokens":100,"stream":{stream},"messages":[{{"role":"user","content":"0123456789abcdef"}}]}}"#
    );
    assert!(matches!(exchange.on_request_body(body.as_bytes(), 1_000, None, None), BodyAction::Replace(_)));
    exchange
}

/// Feeds the chunks (the last one ends the body unless `cut`) and returns what the client got.
fn feed(exchange: &mut Exchange, chunks: &[&[u8]], cut: bool) -> Vec<u8> {
    let mut client = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let end = !cut && i + 1 == chunks.len();
        match exchange.on_response_body(chunk, end, 1_010 + i as u64) {
            BodyAction::Unchanged => client.extend_from_slice(chunk),
            BodyAction::Replace(bytes) => client.extend_from_slice(&bytes),
            BodyAction::Reply(_) => panic!("no replies on responses"),
        }
    }
    client
}

fn finish(exchange: &mut Exchange) -> Record {
    exchange.finish(2_000, None).unwrap()
}

fn status_set(ops: &[HeaderOp]) -> Option<&str> {
    ops.iter().find_map(|op| match op {
        HeaderOp::Set(name, value) if name == ":status" => Some(value.as_str()),
        _ => None,
    })
}

fn sets_json(ops: &[HeaderOp]) -> bool {
    ops.contains(&HeaderOp::Set("content-type".to_string(), "application/json".to_string()))
        && ops.contains(&HeaderOp::Remove("content-length".to_string()))
}

/// OpenAI's error shape: `{"error": {"message", "type", "param", "code"}}`.
fn assert_openai_error(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)));
    let error = &v["error"];
    for field in ["message", "type", "param", "code"] {
        assert!(error.get(field).is_some(), "no {field} in {v}");
    }
    error["message"].as_str().unwrap().to_string()
}

/// Anthropic's error shape: `{"type": "error", "error": {"type", "message"}}`.
fn assert_anthropic_error(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)));
    assert_eq!(v["type"], "error", "{v}");
    assert!(v["error"]["type"].is_string(), "{v}");
    v["error"]["message"].as_str().unwrap().to_string()
}

fn completion(content: &str, usage: &str) -> Vec<u8> {
    format!(
        r#"{{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{{"index":0,"message":{{"role":"assistant","content":"{content}"}},"finish_reason":"stop"}}]{usage}}}"#
    )
    .into_bytes()
}

// ------------------------------------------------------------- item 4: usage missing or unusable

#[test]
fn item4_an_answer_without_usage_is_estimated_from_its_text() {
    for usage in [
        "",
        r#","usage":null"#,
        r#","usage":{"prompt_tokens":-5,"completion_tokens":-1}"#,
        r#","usage":{"prompt_tokens":"12","completion_tokens":"40"}"#,
        r#","usage":{}"#,
    ] {
        let mut ex = exchange("openai", "gpt", false);
        ex.on_response_headers(200, Some("application/json"));
        let body = completion(&"x".repeat(400), usage);
        assert_eq!(feed(&mut ex, &[&body], false), body, "passed through untouched");
        let record = finish(&mut ex);
        assert_eq!(record.usage.source, UsageSource::Estimated, "{usage}");
        assert_eq!(record.usage.output, Some(100), "400 bytes of text: {usage}");
        assert!(record.usage.input.unwrap() > 0, "{usage}");
    }
}

#[test]
fn item4_a_body_past_the_response_buffer_is_estimated_from_every_byte() {
    let mut ex = exchange("openai", "gpt", false);
    ex.on_response_headers(200, Some("application/json"));
    // 40 chunks of 1000 bytes: ten times the 4096-byte copy limit; usage at the very end.
    let body = completion(&"y".repeat(40_000), r#","usage":{"prompt_tokens":1,"completion_tokens":1}"#);
    let chunks: Vec<&[u8]> = body.chunks(1000).collect();
    assert_eq!(feed(&mut ex, &chunks, false), body);
    let record = finish(&mut ex);
    assert_eq!(record.usage.source, UsageSource::Estimated);
    assert_eq!(record.usage.output, Some((body.len() as u64).div_ceil(4)));
}

#[test]
fn item4_a_partial_report_keeps_the_side_it_has_and_estimates_the_other() {
    let mut ex = exchange("openai", "gpt", false);
    ex.on_response_headers(200, Some("application/json"));
    feed(&mut ex, &[&completion(&"z".repeat(80), r#","usage":{"prompt_tokens":33}"#)], false);
    let record = finish(&mut ex);
    assert_eq!((record.usage.input, record.usage.output), (Some(33), Some(20)));
    assert_eq!(record.usage.source, UsageSource::Estimated);

    let mut ex = exchange("openai", "gpt", false);
    ex.on_response_headers(200, Some("application/json"));
    feed(&mut ex, &[&completion("hi", r#","usage":{"completion_tokens":7}"#)], false);
    let record = finish(&mut ex);
    assert_eq!(record.usage.output, Some(7));
    assert!(record.usage.input.unwrap() > 0, "the prompt estimate, not 0");
}

#[test]
fn item4_a_translated_answer_without_usage_is_estimated() {
    let mut ex = exchange("openai", "claude", false);
    ex.on_response_headers(200, Some("application/json"));
    let body = format!(
        r#"{{"id":"msg_1","type":"message","role":"assistant","model":"claude-3-opus-latest","content":[{{"type":"text","text":"{}"}}],"stop_reason":"end_turn"}}"#,
        "w".repeat(200)
    );
    let client = feed(&mut ex, &[body.as_bytes()], false);
    let v: Value = serde_json::from_slice(&client).unwrap();
    assert_eq!(v["object"], "chat.completion", "{v}");
    let record = finish(&mut ex);
    assert_eq!((record.usage.output, record.usage.source), (Some(50), UsageSource::Estimated));
}

#[test]
fn item4_a_complete_report_is_kept() {
    let mut ex = exchange("openai", "gpt", false);
    ex.on_response_headers(200, Some("application/json"));
    feed(&mut ex, &[&completion("hello", r#","usage":{"prompt_tokens":9,"completion_tokens":2}"#)], false);
    let record = finish(&mut ex);
    assert_eq!((record.usage.input, record.usage.output), (Some(9), Some(2)));
    assert_eq!(record.usage.source, UsageSource::Reported);
}

// ------------------------------------------------------------- item 7: provider 401/403

#[test]
fn item7_a_provider_refusing_the_gateway_key_becomes_a_502_that_quotes_nothing() {
    let provider_body = format!(
        r#"{{"error":{{"message":"{KEY_QUOTE}","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#
    );
    for (client, model, status) in
        [("openai", "gpt", 401), ("openai", "gpt", 403), ("anthropic", "gpt", 401), ("anthropic", "claude", 403)]
    {
        for stream in [false, true] {
            let mut ex = exchange(client, model, stream);
            let ops = ex.on_response_headers(status, Some("application/json"));
            assert_eq!(status_set(&ops), Some("502"), "{client} {model} {status}");
            assert!(sets_json(&ops));
            let (a, b) = provider_body.as_bytes().split_at(40);
            let body = feed(&mut ex, &[a, b], false);
            let text = String::from_utf8_lossy(&body);
            assert!(!text.contains("sk-") && !text.contains("**") && !text.contains("api-keys"), "{text}");
            let message = if client == "openai" { assert_openai_error(&body) } else { assert_anthropic_error(&body) };
            assert!(message.contains("rejected the gateway's credentials"), "{message}");
            // The operator sees the provider's own detail in the host log.
            let log = ex.take_log_line().expect("a log line");
            assert!(log.contains(KEY_QUOTE) && log.contains(&format!("HTTP {status}")), "{log}");
            assert_eq!(ex.take_log_line(), None, "logged once");
            let record = finish(&mut ex);
            assert_eq!(record.status, 502);
            assert_eq!(record.usage.source, UsageSource::None);
        }
    }
}

// ------------------------------------------------------------- item 10: Envoy's replies, HTML pages

#[test]
fn item10_envoy_local_replies_reach_each_client_in_its_dialect() {
    let cases = [
        (503, "upstream_reset_before_response_started{connection_termination}", "upstream connect error"),
        (504, "response_timeout", "upstream request timeout"),
        (503, "no_healthy_upstream", "no healthy upstream"),
        (413, "request_payload_too_large", "Payload Too Large"),
    ];
    for (status, details, envoy_body) in cases {
        for (client, model) in [("openai", "gpt"), ("openai", "claude"), ("anthropic", "claude"), ("anthropic", "gpt")]
        {
            let mut ex = exchange(client, model, true);
            let origin = ResponseOrigin::from_code_details(Some(details));
            let ops = ex.on_response(status, Some("text/plain"), &origin, false);
            assert_eq!(status_set(&ops), Some(status.to_string().as_str()), "status kept");
            assert!(sets_json(&ops));
            let body = feed(&mut ex, &[envoy_body.as_bytes()], false);
            let message = if client == "openai" { assert_openai_error(&body) } else { assert_anthropic_error(&body) };
            assert!(message.contains(details), "{message}");
            let record = finish(&mut ex);
            assert_eq!((record.status, record.usage.source), (status, UsageSource::None));
        }
    }
}

#[test]
fn item10_a_response_without_body_is_answered_in_its_place() {
    // Envoy's 503 for a missing cluster, the rate-limit filter's 429: headers only.
    for (client, status, details) in [
        ("openai", 503, "cluster_not_found"),
        ("anthropic", 503, "cluster_not_found"),
        ("openai", 429, "request_rate_limited"),
    ] {
        let mut ex = exchange(client, "gpt", false);
        let origin = ResponseOrigin::from_code_details(Some(details));
        assert_eq!(ex.on_response(status, None, &origin, true), Vec::new());
        let reply = ex.take_reply().expect("a reply in its place");
        assert_eq!(reply.status, status);
        assert!(reply.headers.contains(&("content-type".to_string(), "application/json".to_string())));
        let message =
            if client == "openai" { assert_openai_error(&reply.body) } else { assert_anthropic_error(&reply.body) };
        assert!(message.contains(details), "{message}");
        assert_eq!(ex.take_reply(), None, "once");
        // The reply passes through the response callbacks untouched.
        assert_eq!(ex.on_response(status, Some("application/json"), &ResponseOrigin::Upstream, false), Vec::new());
        assert_eq!(finish(&mut ex).status, status);
    }
    // A provider 401 without a body: a 502 in its place, the status in the log.
    let mut ex = exchange("openai", "gpt", false);
    assert_eq!(ex.on_response(401, None, &ResponseOrigin::Upstream, true), Vec::new());
    assert_eq!(ex.take_reply().unwrap().status, 502);
    assert!(ex.take_log_line().unwrap().contains("HTTP 401"));
    assert_eq!(finish(&mut ex).status, 502);
}

#[test]
fn item10_the_upstream_origin_is_told_by_code_details() {
    assert_eq!(ResponseOrigin::from_code_details(Some("via_upstream")), ResponseOrigin::Upstream);
    assert_eq!(ResponseOrigin::from_code_details(None), ResponseOrigin::Upstream);
    assert_eq!(
        ResponseOrigin::from_code_details(Some("response_timeout")),
        ResponseOrigin::Envoy("response_timeout".to_string())
    );
    // Only a response that is not a success has its origin read (one host call fewer on
    // every success): Envoy's own replies are 4xx/5xx.
    for status in [200, 201, 204, 299] {
        assert!(!ResponseOrigin::needs_code_details(status), "{status}");
    }
    for status in [0, 100, 302, 400, 401, 404, 413, 429, 500, 502, 503, 504] {
        assert!(ResponseOrigin::needs_code_details(status), "{status}");
    }
}

#[test]
fn item10_a_non_json_error_page_is_rewritten_and_a_json_error_passes() {
    let html = include_bytes!("fixtures/anthropic/error_502.html");
    for (client, model) in [("openai", "gpt"), ("anthropic", "claude"), ("openai", "claude")] {
        let mut ex = exchange(client, model, false);
        let ops = ex.on_response_headers(502, Some("text/html; charset=utf-8"));
        assert_eq!(status_set(&ops), Some("502"));
        let body = feed(&mut ex, &[html.as_slice()], false);
        let message = if client == "openai" { assert_openai_error(&body) } else { assert_anthropic_error(&body) };
        assert!(message.contains("HTTP 502"), "{message}");
    }
    // The provider's own JSON error in the client's dialect passes as it is.
    let mut ex = exchange("openai", "gpt", false);
    let ops = ex.on_response_headers(429, Some("application/json"));
    assert!(status_set(&ops).is_none());
    let error =
        br#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    assert_eq!(feed(&mut ex, &[error.as_slice()], false), error);
}

// ------------------------------------------------------------- item 11: non-JSON 200, translated

#[test]
fn item11_a_non_json_200_is_a_502() {
    for (client, model) in [("openai", "claude"), ("anthropic", "gpt"), ("openai", "gpt"), ("anthropic", "claude")] {
        let mut ex = exchange(client, model, false);
        let ops = ex.on_response_headers(200, Some("text/html"));
        assert_eq!(status_set(&ops), Some("502"), "{client}");
        let body = feed(&mut ex, &[b"<html>maintenance</html>".as_slice()], false);
        let message = if client == "openai" { assert_openai_error(&body) } else { assert_anthropic_error(&body) };
        assert!(message.contains("not JSON"), "{message}");
        let record = finish(&mut ex);
        assert_eq!((record.status, record.usage.source), (502, UsageSource::None), "released, not charged");
    }
}

// ------------------------------------------------------------- item 12: a stream the provider cuts

fn before<'a>(haystack: &'a [u8], needle: &[u8]) -> &'a [u8] {
    let at = haystack.windows(needle.len()).position(|w| w == needle).unwrap();
    &haystack[..at]
}

/// The last SSE event's `event:` type and parsed data.
fn last_event(stream: &[u8]) -> (Option<String>, String) {
    let text = String::from_utf8_lossy(stream);
    let block = text.trim_end().rsplit("\n\n").next().unwrap().to_string();
    let event = block.lines().find_map(|l| l.strip_prefix("event: ")).map(str::to_string);
    let data = block.lines().filter_map(|l| l.strip_prefix("data: ")).collect::<Vec<_>>().join("\n");
    (event, data)
}

#[test]
fn item12_a_cut_openai_stream_ends_with_an_error_event() {
    for (model, upstream) in [("gpt", before(OPENAI_STREAM, b"data: [DONE]")), ("claude", ANTHROPIC_TRUNCATED)] {
        let mut ex = exchange("openai", model, true);
        ex.on_response_headers(200, Some("text/event-stream"));
        let client = feed(&mut ex, &[upstream], false);
        let text = String::from_utf8_lossy(&client);
        let error_at = text.rfind(r#"data: {"error""#).unwrap_or_else(|| panic!("{model}: {text}"));
        assert_openai_error(text[error_at + 6..].lines().next().unwrap().as_bytes());
        assert!(text.trim_end().ends_with("}") || text.trim_end().ends_with("data: [DONE]"), "{text}");
        let record = finish(&mut ex);
        // The OpenAI stream had sent its usage chunk before the cut; Anthropic's only
        // `message_start` (1 output token): "Hello" is estimated at 2.
        let source = if model == "gpt" { UsageSource::Reported } else { UsageSource::Estimated };
        assert_eq!(record.usage.source, source, "{model}");
        assert!(record.usage.output.unwrap() >= 2, "{model}: {:?}", record.usage);
    }
}

/// The OpenAI stream cut before its last choice chunk (an OpenAI stream with a
/// `finish_reason` and usage but no `[DONE]` is complete for the decoder).
fn openai_stream_cut() -> &'static [u8] {
    let stop = before(OPENAI_STREAM, br#""finish_reason":"stop""#);
    let at = stop.windows(6).rposition(|w| w == b"data: ").unwrap();
    &OPENAI_STREAM[..at]
}

#[test]
fn item12_a_cut_anthropic_stream_ends_with_an_error_event() {
    for (model, upstream) in [("claude", ANTHROPIC_TRUNCATED), ("gpt", openai_stream_cut())] {
        let mut ex = exchange("anthropic", model, true);
        ex.on_response_headers(200, Some("text/event-stream"));
        let client = feed(&mut ex, &[upstream], false);
        let (event, data) = last_event(&client);
        assert_eq!(event.as_deref(), Some("error"), "{model}: {}", String::from_utf8_lossy(&client));
        assert_anthropic_error(data.as_bytes());
    }
}

#[test]
fn item12_complete_streams_get_no_error_event() {
    for (client, model, upstream) in [
        ("openai", "gpt", OPENAI_STREAM),
        ("anthropic", "claude", ANTHROPIC_STREAM),
        ("openai", "claude", ANTHROPIC_STREAM),
    ] {
        let mut ex = exchange(client, model, true);
        ex.on_response_headers(200, Some("text/event-stream"));
        let body = feed(&mut ex, &[upstream], false);
        assert!(!String::from_utf8_lossy(&body).contains("error"), "{client} {model}");
        assert_eq!(finish(&mut ex).usage.source, UsageSource::Reported, "{client} {model}");
    }
}

// ------------------------------------------------------------- item 15: abandoned Anthropic stream

#[test]
fn item15_an_abandoned_anthropic_stream_is_charged_what_was_generated() {
    let mut events = String::from_utf8(before(ANTHROPIC_STREAM, b"event: content_block_stop").to_vec()).unwrap();
    let text = "generated ".repeat(40);
    events.push_str(&format!(
        "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{text}\"}}}}\n\n"
    ));
    for (client, model) in [("anthropic", "claude"), ("openai", "claude")] {
        let mut ex = exchange(client, model, true);
        ex.on_response_headers(200, Some("text/event-stream"));
        feed(&mut ex, &[events.as_bytes()], true); // the client goes away here
        let record = finish(&mut ex);
        // message_start said input 11, output 1; 412 bytes were generated since.
        assert_eq!(record.usage.input, Some(11), "{client}");
        assert_eq!(record.usage.output, Some((text.len() as u64 + 12).div_ceil(4)), "{client}");
        assert_eq!(record.usage.source, UsageSource::Estimated);
    }
}

// ------------------------------------------------------------- item 25: abandoned JSON answer

#[test]
fn item25_an_abandoned_json_answer_is_estimated_from_the_bytes_seen() {
    for model in ["gpt", "claude"] {
        let mut ex = exchange("openai", model, false);
        ex.on_response_headers(200, Some("application/json"));
        let partial = completion(&"q".repeat(2000), "");
        feed(&mut ex, &[&partial[..1200], &partial[1200..1600]], true);
        let record = finish(&mut ex);
        assert_eq!(record.usage.output, Some(400), "{model}: 1600 bytes seen");
        assert_eq!(record.usage.source, UsageSource::Estimated);
    }
}

#[test]
fn item4_a_translated_answer_cut_short_is_counted_from_its_bytes() {
    let mut ex = exchange("openai", "claude", false);
    ex.on_response_headers(200, Some("application/json"));
    let body = format!(r#"{{"id":"msg_1","type":"message","content":[{{"type":"text","text":"{}"#, "v".repeat(400));
    let client = feed(&mut ex, &[body.as_bytes()], false);
    assert_openai_error(&client);
    let record = finish(&mut ex);
    assert_eq!(record.usage.output, Some((body.len() as u64).div_ceil(4)));
    assert_eq!(record.usage.source, UsageSource::Estimated);
}

#[test]
fn item15_a_complete_anthropic_stream_without_its_final_usage_is_charged_what_was_generated() {
    // message_stop arrives, but the message_delta carrying the output count does not.
    let text = String::from_utf8(ANTHROPIC_STREAM.to_vec()).unwrap();
    let without_delta: String =
        text.split("\n\n").filter(|e| !e.contains("message_delta")).map(|e| format!("{e}\n\n")).collect();
    let mut ex = exchange("anthropic", "claude", true);
    ex.on_response_headers(200, Some("text/event-stream"));
    let body = feed(&mut ex, &[without_delta.trim_end().as_bytes()], false);
    assert!(!String::from_utf8_lossy(&body).contains("event: error"));
    let record = finish(&mut ex);
    // "Hello there!" = 12 bytes -> 3 tokens, more than message_start's 1.
    assert_eq!((record.usage.input, record.usage.output), (Some(11), Some(3)));
    assert_eq!(record.usage.source, UsageSource::Estimated);
}

#[test]
fn item10_json_content_types_are_told_apart_from_pages() {
    for (content_type, replaced) in [
        ("application/json", false),
        ("application/json; charset=UTF-8", false),
        ("Application/JSON;charset=utf-8", false),
        ("application/problem+json", false),
        ("text/html; charset=utf-8", true),
        ("text/plain", true),
        ("application/jsonp-but-not", true),
    ] {
        let mut ex = exchange("openai", "gpt", false);
        let ops = ex.on_response_headers(500, Some(content_type));
        assert_eq!(status_set(&ops).is_some(), replaced, "{content_type}");
    }
}

#[test]
fn item12_a_provider_error_event_is_not_doubled() {
    let upstream = include_bytes!("fixtures/anthropic/stream_error_overloaded.sse");
    let mut ex = exchange("anthropic", "claude", true);
    ex.on_response_headers(200, Some("text/event-stream"));
    let body = feed(&mut ex, &[upstream.as_slice()], false);
    assert_eq!(body, upstream, "the provider's own error event ends the stream as it is");
    let text =
        "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n";
    let mut ex = exchange("openai", "gpt", true);
    ex.on_response_headers(200, Some("text/event-stream"));
    let body = feed(&mut ex, &[text.as_bytes()], false);
    assert_eq!(String::from_utf8(body).unwrap().matches("\"error\"").count(), 1);
}

#[test]
fn a_passthrough_answer_cut_short_becomes_an_error_in_the_client_dialect() {
    for (client, model) in [("openai", "gpt"), ("anthropic", "claude")] {
        let mut ex = exchange(client, model, false);
        ex.on_response_headers(200, Some("application/json"));
        let body = completion(&"c".repeat(400), r#","usage":{"prompt_tokens":9,"completion_tokens":100}"#);
        let cut = &body[..body.len() / 2];
        let sent = feed(&mut ex, &[&cut[..100], &cut[100..]], false);
        let message = if client == "openai" { assert_openai_error(&sent) } else { assert_anthropic_error(&sent) };
        assert!(message.contains("not complete JSON"), "{message}");
        let record = finish(&mut ex);
        assert_eq!(record.usage.output, Some((cut.len() as u64).div_ceil(4)), "counted from the bytes");
        // A complete answer is sent byte for byte.
        let mut ex = exchange(client, model, false);
        ex.on_response_headers(200, Some("application/json"));
        assert_eq!(feed(&mut ex, &[&body[..100], &body[100..]], false), body);
    }
}
