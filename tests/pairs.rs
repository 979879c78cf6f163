//! Golden tests per client dialect x provider pair, through the same dispatch the engine
//! uses (`llm::dialect`). Requests: each client fixture encoded for every provider.
//! Responses: each provider JSON response fixture encoded for every client.
//! Streams: each provider stream fixture translated for every client, re-fed at every split
//! point and in 1-byte chunks with identical output. `BLESS=1 cargo test --test pairs`
//! rewrites the goldens in tests/fixtures/pairs/golden/; review them as diffs.
//! integration/test_replay.py holds the module in Envoy to the same goldens: the fake provider
//! replays these fixtures, the client must get the golden's bytes, the provider the golden's
//! body (goldens are found by name there, so a new one here is tested there too).

use llm_gateway::config::Limits;
use llm_gateway::llm::dialect::{self, StreamDecoder, StreamEncoder};
use llm_gateway::llm::ir::{ClientDialect, ProviderDialect, StreamEvent};

mod common;
use common::{pretty_json, same_at_every_split, stem, Fixtures};

/// The goldens: `tests/fixtures/pairs/golden/<source set>_<fixture stem>.to_<dialect>.<ext>`.
const PAIRS: Fixtures = Fixtures("pairs");

const CLIENTS: [(ClientDialect, &str); 3] = [
    (ClientDialect::OpenAi, "openai"),
    (ClientDialect::Anthropic, "anthropic"),
    (ClientDialect::Responses, "responses"),
];
const PROVIDERS: [(ProviderDialect, &str); 4] = [
    (ProviderDialect::OpenAi, "openai"),
    (ProviderDialect::Anthropic, "anthropic"),
    (ProviderDialect::Gemini, "gemini"),
    (ProviderDialect::Bedrock, "bedrock"),
];

#[test]
fn client_requests_encoded_for_every_provider() {
    let requests = [
        (ClientDialect::OpenAi, "openai", "request_tool_roundtrip.json"),
        (ClientDialect::OpenAi, "openai", "request_image_input.json"),
        (ClientDialect::OpenAi, "openai", "request_names_strict.json"),
        (ClientDialect::OpenAi, "openai", "request_image_detail_low.json"),
        (ClientDialect::Anthropic, "anthropic", "request_features.json"),
        (ClientDialect::Anthropic, "anthropic", "request_claude_code.json"),
        (ClientDialect::Responses, "openai_responses", "request_function_tools.json"),
        (ClientDialect::Responses, "openai_responses", "request_image_input.json"),
        (ClientDialect::Responses, "openai_responses", "request_structured_output.json"),
        (ClientDialect::Responses, "openai_responses", "request_tool_roundtrip.json"),
        (ClientDialect::Anthropic, "anthropic", "request_prompt_caching.json"),
        (ClientDialect::Anthropic, "anthropic", "request_automatic_caching.json"),
        (ClientDialect::OpenAi, "openai", "request_prompt_cache_key.json"),
        (ClientDialect::OpenAi, "openai", "request_file_input.json"),
        (ClientDialect::Anthropic, "anthropic", "request_document_pdf.json"),
        (ClientDialect::Anthropic, "anthropic", "request_document_text_url.json"),
        (ClientDialect::Anthropic, "anthropic", "request_server_tools.json"),
    ];
    for (client, dir, file) in requests {
        let body = Fixtures(dir).read(file);
        let mut request = dialect::decode_request(client, &body).unwrap_or_else(|e| panic!("{dir}/{file}: {e}"));
        request.model = "target-model".to_string();
        for (provider, pname) in PROVIDERS {
            let out = match dialect::encode_request(provider, &request) {
                Ok(encoded) => pretty_json(&encoded),
                Err(e) => format!("400: {e}\n"),
            };
            PAIRS.golden(&format!("{dir}_{}.to_{pname}.txt", stem(file)), &out);
        }
    }
}

#[test]
fn provider_responses_encoded_for_every_client() {
    let responses = [
        (ProviderDialect::OpenAi, "openai", "chat_completion_tool_calls.json"),
        (ProviderDialect::OpenAi, "openai", "deepseek_reasoner_completion.json"),
        (ProviderDialect::OpenAi, "openai", "chat_completion_n2.json"),
        (ProviderDialect::Gemini, "gemini", "generate_content_candidates.json"),
        (ProviderDialect::Anthropic, "anthropic", "response_thinking_tool_use.json"),
        (ProviderDialect::Gemini, "gemini", "generate_content_thinking.json"),
        (ProviderDialect::Bedrock, "bedrock", "converse_reasoning_cache.json"),
    ];
    for (provider, dir, file) in responses {
        let body = Fixtures(dir).read(file);
        let mut response =
            dialect::decode_response(provider, &body).unwrap_or_else(|e| panic!("{dir}/{file}: {}", e.message));
        if response.created == 0 {
            response.created = 1_700_000_000;
        }
        for (client, cname) in CLIENTS {
            let out = pretty_json(&dialect::encode_response(client, &response));
            PAIRS.golden(&format!("{dir}_{}.to_{cname}.json", stem(file)), &out);
        }
    }
}

/// Translates a provider stream for a client, fed in the given chunks.
fn translate(provider: ProviderDialect, client: ClientDialect, chunks: &[&[u8]]) -> (String, Vec<StreamEvent>) {
    let mut decoder = StreamDecoder::new(provider, Limits::default().max_sse_event_bytes);
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
        (ProviderDialect::OpenAi, "openai", "chat_stream_n2.sse"),
        (ProviderDialect::Gemini, "gemini", "stream_candidates.sse"),
        (ProviderDialect::Anthropic, "anthropic", "stream_tool_use.sse"),
        (ProviderDialect::Anthropic, "anthropic", "stream_thinking.sse"),
        (ProviderDialect::Anthropic, "anthropic", "stream_truncated.sse"),
        (ProviderDialect::Gemini, "gemini", "stream_text.sse"),
        (ProviderDialect::Gemini, "gemini", "stream_function_call.sse"),
        (ProviderDialect::Bedrock, "bedrock", "stream_tool_use.eventstream"),
        (ProviderDialect::Bedrock, "bedrock", "stream_reasoning.eventstream"),
        (ProviderDialect::Bedrock, "bedrock", "stream_redacted_reasoning.eventstream"),
        (ProviderDialect::Bedrock, "bedrock", "stream_exception.eventstream"),
    ];
    for (provider, dir, file) in streams {
        let bytes = Fixtures(dir).read(file);
        for (client, cname) in CLIENTS {
            let (_, events) = translate(provider, client, &[&bytes]);
            let ends = events.iter().filter(|e| matches!(e, StreamEvent::Done | StreamEvent::Error(_))).count();
            assert_eq!(ends, 1, "{dir}/{file}: exactly one Done or Error");
            let whole = same_at_every_split(&bytes, |chunks| translate(provider, client, chunks).0);
            PAIRS.golden(&format!("{dir}_{}.to_{cname}.sse", stem(file)), &whole);
        }
    }
}

/// serde_json's `preserve_order`: tool schemas and tool-call arguments keep the client's key
/// order through every translation (OpenAI structured outputs generate properties in schema
/// order, so sorting them would change what the model writes).
#[test]
fn key_order_survives_translation() {
    let body = br#"{"model":"m","messages":[
        {"role":"user","content":"go"},
        {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
            "function":{"name":"f","arguments":"{\"zeta\":1,\"alpha\":{\"y\":2,\"b\":3},\"mid\":4}"}}]},
        {"role":"tool","tool_call_id":"c1","content":"ok"}],
        "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object",
            "properties":{"zeta":{"type":"integer"},"alpha":{"type":"object","properties":{"y":{},"b":{}}},"mid":{}},
            "required":["zeta","alpha","mid"]}}}]}"#;
    let request = dialect::decode_request(ClientDialect::OpenAi, body).unwrap();
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    for (provider, pname) in PROVIDERS {
        let out: serde_json::Value =
            serde_json::from_slice(&dialect::encode_request(provider, &request).unwrap()).unwrap();
        let (schema, args) = match provider {
            ProviderDialect::OpenAi => {
                let args: serde_json::Value = serde_json::from_str(
                    out["messages"][1]["tool_calls"][0]["function"]["arguments"].as_str().unwrap(),
                )
                .unwrap();
                (out["tools"][0]["function"]["parameters"].clone(), args)
            }
            ProviderDialect::Anthropic => {
                (out["tools"][0]["input_schema"].clone(), out["messages"][1]["content"][0]["input"].clone())
            }
            ProviderDialect::Gemini => (
                out["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"].clone(),
                out["contents"][1]["parts"][0]["functionCall"]["args"].clone(),
            ),
            ProviderDialect::Bedrock => (
                out["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"].clone(),
                out["messages"][1]["content"][0]["toolUse"]["input"].clone(),
            ),
        };
        assert_eq!(keys(&schema["properties"]), ["zeta", "alpha", "mid"], "{pname} schema");
        assert_eq!(keys(&schema["properties"]["alpha"]["properties"]), ["y", "b"], "{pname} nested schema");
        assert_eq!(keys(&args), ["zeta", "alpha", "mid"], "{pname} arguments");
        assert_eq!(keys(&args["alpha"]), ["y", "b"], "{pname} nested arguments");
    }
    // Provider tool input (an object on Anthropic's wire) -> OpenAI arguments text, in order.
    let response = br#"{"id":"msg_1","model":"c","content":[{"type":"tool_use","id":"t","name":"f",
        "input":{"zeta":1,"alpha":2}}],"stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":1}}"#;
    let decoded = dialect::decode_response(ProviderDialect::Anthropic, response).unwrap();
    let out: serde_json::Value =
        serde_json::from_slice(&dialect::encode_response(ClientDialect::OpenAi, &decoded)).unwrap();
    assert_eq!(out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], r#"{"zeta":1,"alpha":2}"#);
}
