//! The OpenAI Responses API as a client dialect (`src/llm/openai_responses/`): requests
//! decoded into the IR (fixtures from OpenAI's API reference, tests/fixtures/openai_responses),
//! what is refused and why, the `response` object, and the typed SSE event stream.
//! Pair goldens with every provider are in tests/pairs.rs.

use llm_gateway::config::Limits;
use llm_gateway::llm::dialect::{self, StreamEncoder};
use llm_gateway::llm::ir::{
    ChatResponse, ClientDialect, ErrorKind, ImageSource, Part, ProviderDialect, ProviderError, Reasoning,
    ResponseFormat, Role, StopReason, StreamEvent, ToolCall, ToolChoice, TranslateError,
};
use llm_gateway::llm::openai_responses;
use llm_gateway::stream::sse::{SseDecoder, SseEvent};
use llm_gateway::usage::{Usage, UsageSource};
use serde_json::{json, Value};

mod common;
use common::Fixtures;

const FIXTURES: Fixtures = Fixtures("openai_responses");

fn decode(body: &Value) -> Result<llm_gateway::llm::ir::ChatRequest, TranslateError> {
    openai_responses::decode_request(body.to_string().as_bytes())
}

/// The field a refusal names.
fn refused_field(body: &Value) -> String {
    match decode(body) {
        Err(TranslateError::Invalid { field, .. }) => field,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

// ------------------------------------------------------------------------------ requests

#[test]
fn string_input_with_function_tools_from_the_reference() {
    let request = openai_responses::decode_request(&FIXTURES.read("request_function_tools.json")).unwrap();
    assert_eq!(request.model, "gpt-4.1");
    assert_eq!(request.messages.len(), 1);
    assert_eq!(request.messages[0].role, Role::User);
    assert_eq!(request.messages[0].content, vec![Part::Text("What is the weather like in Boston today?".into())]);
    assert_eq!(request.tools.len(), 1);
    let tool = &request.tools[0];
    assert_eq!(tool.name, "get_current_weather");
    assert_eq!(tool.description.as_deref(), Some("Get the current weather in a given location"));
    assert_eq!(tool.parameters["required"], json!(["location", "unit"]));
    // Absent `strict` leaves each provider's default.
    assert_eq!(tool.strict, None);
    assert_eq!(request.tool_choice, Some(ToolChoice::Auto));
    assert!(!request.stream);
}

#[test]
fn image_input_from_the_reference() {
    let request = openai_responses::decode_request(&FIXTURES.read("request_image_input.json")).unwrap();
    let content = &request.messages[0].content;
    assert_eq!(content[0], Part::Text("what is in this image?".into()));
    let Part::Image(image) = &content[1] else { panic!("{content:?}") };
    assert!(matches!(&image.source, ImageSource::Url(u) if u.starts_with("https://upload.wikimedia.org/")));
    let data_url = json!({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}]}]});
    let Part::Image(image) = &decode(&data_url).unwrap().messages[0].content[0] else { panic!() };
    assert_eq!(image.source, ImageSource::Base64 { media_type: "image/png".into(), data: "iVBORw0KGgo=".into() });
    assert_eq!(image.detail.as_deref(), Some("high"));
}

#[test]
fn structured_output_from_the_reference() {
    let request = openai_responses::decode_request(&FIXTURES.read("request_structured_output.json")).unwrap();
    assert_eq!(request.system, vec![Part::Text("Extract the event information.".into())]);
    let Some(ResponseFormat::JsonSchema { name, schema, strict }) = &request.response_format else {
        panic!("{:?}", request.response_format)
    };
    assert_eq!(name, "calendar_event");
    assert_eq!(schema["required"], json!(["name", "date", "participants"]));
    assert_eq!(*strict, Some(true));
    let object = json!({"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}});
    assert_eq!(decode(&object).unwrap().response_format, Some(ResponseFormat::JsonObject));
}

#[test]
fn a_whole_tool_conversation_with_reasoning_given_back() {
    let request = openai_responses::decode_request(&FIXTURES.read("request_tool_roundtrip.json")).unwrap();
    // `instructions` first, then developer messages, hoisted in order.
    assert_eq!(
        request.system,
        vec![
            Part::Text("You are a weather assistant. Use the tools.".into()),
            Part::Text("Answer in one sentence.".into())
        ]
    );
    let roles: Vec<Role> = request.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::User, Role::Assistant, Role::User]);
    // The reasoning item and the call are one assistant turn; the signature survives.
    assert_eq!(
        request.messages[1].content,
        vec![
            Part::Thinking {
                text: "The user wants the weather in Paris; call get_weather.".into(),
                signature: Some("EqQBCkYIBxgCKkBsignature".into()),
            },
            Part::ToolCall(ToolCall {
                id: "call_12345xyz".into(),
                name: "get_weather".into(),
                arguments: r#"{"latitude":48.8566,"longitude":2.3522}"#.into(),
                signature: None,
            }),
        ]
    );
    let Part::ToolResult(result) = &request.messages[2].content[0] else { panic!() };
    assert_eq!(result.call_id, "call_12345xyz");
    // Filled from the call, for Gemini.
    assert_eq!(result.name.as_deref(), Some("get_weather"));
    assert_eq!(result.content, vec![Part::Text(r#"{"temperature": 14}"#.into())]);
    assert_eq!(request.messages[3].content, vec![Part::Text("It is 14°C in Paris.".into())]);
    assert_eq!(request.tool_choice, Some(ToolChoice::Tool("get_weather".into())));
    assert_eq!(request.reasoning, Some(Reasoning::Effort("medium".into())));
    assert_eq!(request.max_tokens, Some(2048));
    assert!(request.stream && request.stream_usage);
}

#[test]
fn parallel_results_merge_into_one_user_turn() {
    let body = json!({"model": "m", "input": [
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "b", "name": "g", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "a", "output": "1"},
        {"type": "function_call_output", "call_id": "b", "output": [{"type": "input_text", "text": "2"}]},
        {"role": "user", "content": "thanks"}]});
    let request = decode(&body).unwrap();
    assert_eq!(request.messages.len(), 4);
    assert_eq!(request.messages[1].content.len(), 2);
    let ids: Vec<&str> = request.messages[2]
        .content
        .iter()
        .map(|p| match p {
            Part::ToolResult(r) => r.call_id.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(request.messages[3].content, vec![Part::Text("thanks".into())]);
}

#[test]
fn stateful_requests_are_refused_naming_the_field() {
    // OpenAI's "conversation state" example: continuing a stored response.
    let body: Value = serde_json::from_slice(&FIXTURES.read("request_previous_response_id.json")).unwrap();
    match decode(&body) {
        Err(TranslateError::Invalid { field, message }) => {
            assert_eq!(field, "previous_response_id");
            assert!(message.contains("no stored state"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    for (body, field) in [
        (json!({"model": "m", "input": "x", "store": true}), "store"),
        (json!({"model": "m", "input": "x", "conversation": "conv_1"}), "conversation"),
        (json!({"model": "m", "input": "x", "background": true}), "background"),
        (json!({"model": "m", "prompt": {"id": "pmpt_1"}}), "prompt"),
        (json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}), "input[0].type"),
    ] {
        assert_eq!(refused_field(&body), field, "{body}");
    }
    // `store: false` and nulls are fine.
    decode(&json!({"model": "m", "input": "x", "store": false, "previous_response_id": null})).unwrap();
}

#[test]
fn what_the_ir_cannot_carry_is_refused_naming_the_field() {
    let web: Value = serde_json::from_slice(&FIXTURES.read("request_web_search.json")).unwrap();
    assert_eq!(refused_field(&web), "tools[0].type");
    for (body, field) in [
        (json!({"model": "m", "input": "x", "frobnicate": 1}), "frobnicate"),
        (json!({"model": "m", "input": "x", "truncation": "auto"}), "truncation"),
        (json!({"model": "m", "input": "x", "max_tool_calls": 3}), "max_tool_calls"),
        (json!({"model": "m", "input": "x", "top_logprobs": 2}), "top_logprobs"),
        (json!({"model": "m", "input": "x", "include": ["file_search_call.results"]}), "include[0]"),
        (json!({"model": "m", "input": "x", "text": {"verbosity": "low"}}), "text.verbosity"),
        (json!({"model": "m", "input": "x", "reasoning": {"effort": "high", "budget": 3}}), "reasoning.budget"),
        (json!({"model": "m", "input": "x", "tool_choice": {"type": "web_search_preview"}}), "tool_choice.type"),
        (json!({"model": "m", "input": "x", "tools": [{"type": "custom", "name": "apply_patch"}]}), "tools[0].type"),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]}),
            "input[0].content[0].type",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]}),
            "input[0].content[0].file_id",
        ),
        (json!({"model": "m", "input": [{"type": "web_search_call", "id": "ws_1"}]}), "input[0].type"),
        (json!({"model": "m", "input": [{"role": "tool", "content": "x"}]}), "input[0].role"),
        (json!({"model": "m", "input": "x", "temperature": 3}), "temperature"),
    ] {
        assert_eq!(refused_field(&body), field, "{body}");
    }
}

#[test]
fn harmless_members_are_accepted() {
    let body = json!({"model": "m", "input": "x", "store": false, "truncation": "disabled",
        "include": ["reasoning.encrypted_content"], "text": {"verbosity": "medium", "format": {"type": "text"}},
        "top_logprobs": 0, "metadata": {"a": "b"}, "prompt_cache_key": "k", "service_tier": "auto",
        "safety_identifier": "u1", "stream": true, "stream_options": {"include_obfuscation": false},
        "reasoning": {"summary": "detailed"}, "user": "u"});
    let request = decode(&body).unwrap();
    assert_eq!(request.response_format, Some(ResponseFormat::Text));
    assert_eq!(request.reasoning, None);
    assert_eq!(request.user.as_deref(), Some("u"));
    let none = json!({"model": "m", "input": "x", "reasoning": {"effort": "none"}});
    assert_eq!(decode(&none).unwrap().reasoning, Some(Reasoning::Disabled));
}

#[test]
fn an_empty_input_is_refused_after_the_prompt_layer() {
    let request = decode(&json!({"model": "m", "instructions": "be brief"})).unwrap();
    match dialect::require_messages(ClientDialect::Responses, &request) {
        Err(TranslateError::Invalid { field, .. }) => assert_eq!(field, "input"),
        other => panic!("{other:?}"),
    }
}

// ----------------------------------------------------------------------------- responses

fn usage(input: u64, output: u64) -> Usage {
    Usage {
        input: Some(input),
        output: Some(output),
        cached_input: Some(3),
        cache_write: None,
        cache_write_1h: None,
        reasoning: Some(2),
        source: UsageSource::Reported,
    }
}

fn encoded(response: &ChatResponse) -> Value {
    serde_json::from_slice(&openai_responses::encode_response(response)).unwrap()
}

#[test]
fn a_response_object_with_reasoning_text_and_a_call() {
    let response = ChatResponse {
        id: "msg_01".into(),
        model: "claude-x".into(),
        created: 1_700_000_000,
        content: vec![
            Part::Thinking { text: "think".into(), signature: Some("sig".into()) },
            Part::Text("Hello".into()),
            Part::Text(" there".into()),
            Part::ToolCall(ToolCall {
                id: "toolu_1".into(),
                name: "f".into(),
                arguments: "{}".into(),
                signature: None,
            }),
        ],
        stop_reason: Some(StopReason::ToolCalls),
        stop_sequence: None,
        usage: usage(10, 5),
        more_choices: Vec::new(),
    };
    let v = encoded(&response);
    assert_eq!(v["object"], "response");
    assert_eq!(v["id"], "resp_msg_01");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], "claude-x");
    assert_eq!(v["created_at"], 1_700_000_000);
    let output = v["output"].as_array().unwrap();
    assert_eq!(output.len(), 3);
    assert_eq!(output[0]["type"], "reasoning");
    assert_eq!(output[0]["summary"], json!([{"type": "summary_text", "text": "think"}]));
    assert_eq!(output[0]["encrypted_content"], "sig");
    assert_eq!(output[1]["type"], "message");
    assert_eq!(output[1]["role"], "assistant");
    let texts: Vec<&str> =
        output[1]["content"].as_array().unwrap().iter().map(|c| c["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["Hello", " there"]);
    assert_eq!(output[2]["type"], "function_call");
    assert_eq!(output[2]["call_id"], "toolu_1");
    assert_eq!(output[2]["arguments"], "{}");
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 3}, "output_tokens": 5,
               "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 15})
    );
    assert_eq!(v["store"], false);
}

#[test]
fn reasoning_given_out_comes_back_with_its_signature() {
    let response = ChatResponse {
        content: vec![
            Part::Thinking { text: "t".into(), signature: Some("sig".into()) },
            Part::RedactedThinking { data: "opaque==".into() },
            Part::ToolCall(ToolCall { id: "c".into(), name: "f".into(), arguments: "{}".into(), signature: None }),
        ],
        ..ChatResponse::default()
    };
    let v = encoded(&response);
    // What a client does: the output items become the next request's input.
    let mut input: Vec<Value> = v["output"].as_array().unwrap().clone();
    input.insert(0, json!({"role": "user", "content": "go"}));
    input.push(json!({"type": "function_call_output", "call_id": "c", "output": "ok"}));
    let request = decode(&json!({"model": "m", "input": input})).unwrap();
    assert_eq!(request.messages[1].content, response.content);
}

#[test]
fn incomplete_and_unreported_answers() {
    let cut = ChatResponse { stop_reason: Some(StopReason::Length), ..ChatResponse::default() };
    let v = encoded(&cut);
    assert_eq!(v["status"], "incomplete");
    assert_eq!(v["incomplete_details"], json!({"reason": "max_output_tokens"}));
    assert_eq!(v["usage"], Value::Null);
    assert!(v["id"].as_str().unwrap().starts_with("resp_gw"));
    let filtered = ChatResponse { stop_reason: Some(StopReason::ContentFilter), ..ChatResponse::default() };
    assert_eq!(encoded(&filtered)["incomplete_details"]["reason"], "content_filter");
}

#[test]
fn errors_have_openais_shape() {
    let error = ProviderError { kind: ErrorKind::RateLimited, status: 429, message: "slow down".into() };
    let v: Value = serde_json::from_slice(&dialect::encode_error(ClientDialect::Responses, &error)).unwrap();
    assert_eq!(v["error"]["message"], "slow down");
    assert_eq!(v["error"]["type"], "rate_limit_error");
}

// -------------------------------------------------------------------------------- streams

fn stream(events: &[StreamEvent]) -> Vec<SseEvent> {
    let mut encoder = StreamEncoder::new(ClientDialect::Responses, false, 1_700_000_000);
    let mut out = Vec::new();
    for e in events {
        encoder.encode(e, &mut out);
    }
    encoder.finish(&mut out);
    let n = out.len();
    encoder.encode(&StreamEvent::TextDelta { text: "late".into() }, &mut out);
    assert_eq!(out.len(), n, "nothing after the end");
    let mut decoder = SseDecoder::new(1 << 20);
    let mut sse = Vec::new();
    decoder.feed(&out, &mut sse).unwrap();
    decoder.finish(&mut sse).unwrap();
    sse
}

fn data(e: &SseEvent) -> Value {
    serde_json::from_str(&e.data).unwrap()
}

/// Every event is named by its `type` and numbered from 0 without gaps.
fn check_numbering(events: &[SseEvent]) {
    for (i, e) in events.iter().enumerate() {
        let d = data(e);
        assert_eq!(e.event.as_deref(), d["type"].as_str(), "{d}");
        assert_eq!(d["sequence_number"], i as u64, "{d}");
    }
}

fn kinds(events: &[SseEvent]) -> Vec<String> {
    events.iter().map(|e| e.event.clone().unwrap()).collect()
}

#[test]
fn a_text_stream_has_the_typed_events_in_order() {
    let events = stream(&[
        StreamEvent::Start { id: "chatcmpl-1".into(), model: "m".into() },
        StreamEvent::TextDelta { text: "Hel".into() },
        StreamEvent::TextDelta { text: "lo".into() },
        StreamEvent::Stop { reason: StopReason::Stop, stop_sequence: None },
        StreamEvent::Usage(usage(4, 2)),
        StreamEvent::Done,
    ]);
    check_numbering(&events);
    assert_eq!(
        kinds(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(data(&events[0])["response"]["status"], "in_progress");
    assert_eq!(data(&events[6])["text"], "Hello");
    let done = data(&events[9]);
    assert_eq!(done["response"]["id"], "resp_chatcmpl-1");
    assert_eq!(done["response"]["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(done["response"]["usage"]["total_tokens"], 6);
    assert_eq!(done["response"]["usage"]["input_tokens_details"]["cached_tokens"], 3);
}

#[test]
fn reasoning_and_tool_calls_stream_as_their_items() {
    let events = stream(&[
        StreamEvent::Start { id: String::new(), model: "m".into() },
        StreamEvent::ThinkingDelta { text: "hmm".into() },
        StreamEvent::ThinkingSignature { signature: "sig".into() },
        StreamEvent::ToolCallStart { index: 0, id: "call_a".into(), name: "f".into() },
        StreamEvent::ToolCallDelta { index: 0, arguments: "{\"x\":".into() },
        StreamEvent::ToolCallDelta { index: 0, arguments: "1}".into() },
        StreamEvent::ToolCallStart { index: 1, id: "call_b".into(), name: "g".into() },
        StreamEvent::ToolCallDelta { index: 1, arguments: "{}".into() },
        StreamEvent::Done,
    ]);
    check_numbering(&events);
    let k = kinds(&events);
    assert_eq!(
        k[2..9],
        [
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
        ]
    );
    let reasoning = data(&events[7]);
    assert_eq!(reasoning["item"]["encrypted_content"], "sig");
    assert_eq!(reasoning["item"]["summary"][0]["text"], "hmm");
    let deltas: Vec<Value> = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("response.function_call_arguments.delta"))
        .map(data)
        .collect();
    assert_eq!(deltas.len(), 3);
    assert_eq!(deltas[0]["output_index"], 1);
    assert_eq!(deltas[2]["output_index"], 2);
    let arg_done: Vec<Value> = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("response.function_call_arguments.done"))
        .map(data)
        .collect();
    assert_eq!(arg_done[0]["arguments"], "{\"x\":1}");
    let last = data(events.last().unwrap());
    assert_eq!(last["type"], "response.completed");
    let output = last["response"]["output"].as_array().unwrap();
    let types: Vec<&str> = output.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["reasoning", "function_call", "function_call"]);
    assert_eq!(output[2]["call_id"], "call_b");
    // Every item id and response id stays the same from added to done.
    assert!(last["response"]["id"].as_str().unwrap().starts_with("resp_gw"));
}

#[test]
fn a_provider_error_mid_stream_fails_the_response() {
    let events = stream(&[
        StreamEvent::Start { id: "x".into(), model: "m".into() },
        StreamEvent::TextDelta { text: "par".into() },
        StreamEvent::Usage(usage(4, 1)),
        StreamEvent::Error(ProviderError { kind: ErrorKind::Overloaded, status: 529, message: "busy".into() }),
    ]);
    check_numbering(&events);
    let k = kinds(&events);
    assert_eq!(k[k.len() - 3..], ["response.output_item.done", "error", "response.failed"]);
    let error = data(&events[events.len() - 2]);
    assert_eq!(error["message"], "busy");
    let failed = data(events.last().unwrap());
    assert_eq!(failed["response"]["status"], "failed");
    assert_eq!(failed["response"]["error"], json!({"code": "server_error", "message": "busy"}));
    assert_eq!(failed["response"]["output"][0]["content"][0]["text"], "par");
    assert_eq!(failed["response"]["usage"]["input_tokens"], 4);
}

#[test]
fn a_stream_cut_by_the_output_cap_is_incomplete() {
    let events = stream(&[
        StreamEvent::TextDelta { text: "a".into() },
        StreamEvent::Stop { reason: StopReason::Length, stop_sequence: None },
        StreamEvent::Done,
    ]);
    check_numbering(&events);
    let last = data(events.last().unwrap());
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(last["response"]["incomplete_details"]["reason"], "max_output_tokens");
}

/// A provider stream through the dispatch the engine uses, at every split (the pair goldens
/// do this for every fixture; this one checks the ids stay consistent across events).
#[test]
fn item_ids_match_from_added_to_done_at_every_split() {
    let bytes = Fixtures("anthropic").read("stream_thinking.sse");
    let run = |chunks: &[&[u8]]| {
        let mut decoder =
            dialect::StreamDecoder::new(ProviderDialect::Anthropic, Limits::default().max_sse_event_bytes);
        let mut encoder = StreamEncoder::new(ClientDialect::Responses, true, 1);
        let (mut ir, mut out) = (Vec::new(), Vec::new());
        for c in chunks {
            decoder.feed(c, &mut ir);
        }
        decoder.finish(&mut ir);
        for e in &ir {
            encoder.encode(e, &mut out);
        }
        encoder.finish(&mut out);
        out
    };
    let whole = run(&[&bytes]);
    for split in (0..bytes.len()).step_by(7) {
        let (a, b) = bytes.split_at(split);
        assert_eq!(run(&[a, b]), whole);
    }
    let mut decoder = SseDecoder::new(1 << 20);
    let mut sse = Vec::new();
    decoder.feed(&whole, &mut sse).unwrap();
    check_numbering(&sse);
    let mut open = std::collections::HashMap::new();
    for e in &sse {
        let d = data(e);
        match d["type"].as_str().unwrap() {
            "response.output_item.added" => {
                open.insert(d["output_index"].as_u64().unwrap(), d["item"]["id"].clone());
            }
            "response.output_item.done" => {
                assert_eq!(open.remove(&d["output_index"].as_u64().unwrap()), Some(d["item"]["id"].clone()));
            }
            _ if d.get("item_id").is_some() => {
                assert_eq!(open.get(&d["output_index"].as_u64().unwrap()), Some(&d["item_id"]), "{d}");
            }
            _ => {}
        }
    }
    assert!(open.is_empty());
}

/// Gemini signs function calls (`thoughtSignature` on the part; Gemini 3 refuses a call sent
/// back without it). A Responses function call has no field for it: it travels on a reasoning
/// item just before the call, and comes back on the call.
#[test]
fn gemini_call_signatures_survive_a_responses_round_trip() {
    // Gemini's parallel calls example: the first call is signed, the second is not.
    let body = Fixtures("gemini").read("generate_content_function_call.json");
    let response = dialect::decode_response(ProviderDialect::Gemini, &body).unwrap();
    let calls: Vec<ToolCall> = response
        .content
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(calls[0].signature.as_deref(), Some("<Signature_A>"));
    let v = encoded(&response);
    let types: Vec<&str> = v["output"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["reasoning", "function_call", "function_call"], "{v}");
    assert_eq!(v["output"][0]["encrypted_content"], "<Signature_A>");
    // The client sends the output back with the results.
    let mut input: Vec<Value> = v["output"].as_array().unwrap().clone();
    input.insert(0, json!({"role": "user", "content": "go"}));
    for call in &calls {
        input.push(json!({"type": "function_call_output", "call_id": call.id, "output": "ok"}));
    }
    let mut request = decode(&json!({"model": "m", "input": input})).unwrap();
    request.model = "gemini-3-pro".into();
    let gemini: Value =
        serde_json::from_slice(&dialect::encode_request(ProviderDialect::Gemini, &request).unwrap()).unwrap();
    let parts = gemini["contents"][1]["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "no empty thought part is left: {gemini}");
    assert_eq!(parts[0]["thoughtSignature"], "<Signature_A>", "{gemini}");
    assert!(parts[0]["functionCall"].is_object() && parts[1].get("thoughtSignature").is_none(), "{gemini}");
}
