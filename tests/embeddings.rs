//! OpenAI `/v1/embeddings` translated for Gemini (`batchEmbedContents`) and Bedrock
//! (`InvokeModel`, Titan Text Embeddings and Cohere Embed): the codec against the providers'
//! documented shapes (tests/fixtures/embeddings/README.md), then the engine end to end with
//! budgets, SigV4 and usage.

use base64::Engine as _;
use llm_gateway::auth::api_key::digest;
use llm_gateway::engine::{BodyAction, Exchange, Gateway, HeaderOp, LocalReply, RequestAction, RequestHead};
use llm_gateway::llm::embeddings::{self, EmbeddingsRequest, Target};
use llm_gateway::llm::ir::{ProviderDialect, TranslateError};
use llm_gateway::quota::MemoryStore;
use llm_gateway::usage::UsageSource;
use serde_json::{json, Value};

const GEMINI_REQUEST: &str = include_str!("fixtures/embeddings/gemini_batch_embed_request.json");
const GEMINI_RESPONSE: &[u8] = include_bytes!("fixtures/embeddings/gemini_batch_embed_response.json");
const GEMINI_ERROR: &[u8] = include_bytes!("fixtures/embeddings/gemini_error_invalid_argument.json");
const TITAN_V2_REQUEST: &str = include_str!("fixtures/embeddings/titan_v2_request.json");
const TITAN_V2_RESPONSE: &[u8] = include_bytes!("fixtures/embeddings/titan_v2_response.json");
const TITAN_V1_RESPONSE: &[u8] = include_bytes!("fixtures/embeddings/titan_v1_response.json");
const COHERE_V3_REQUEST: &str = include_str!("fixtures/embeddings/cohere_v3_request.json");
const COHERE_V3_RESPONSE: &[u8] = include_bytes!("fixtures/embeddings/cohere_v3_response.json");
const COHERE_V4_RESPONSE: &[u8] = include_bytes!("fixtures/embeddings/cohere_v4_response.json");

const TITAN_V2: Target = Target::Titan { v2: true };
const COHERE_V3: Target = Target::Cohere { v4: false };
const COHERE_V4: Target = Target::Cohere { v4: true };

fn decode(body: Value) -> Result<EmbeddingsRequest, TranslateError> {
    embeddings::decode_request(body.to_string().as_bytes())
}

fn encode(target: Target, model: &str, body: Value) -> Result<Value, TranslateError> {
    let request = decode(body)?;
    embeddings::encode_request(target, model, &request).map(|b| serde_json::from_slice(&b).unwrap())
}

fn refused_field(result: Result<impl std::fmt::Debug, TranslateError>) -> String {
    match result {
        Err(TranslateError::Invalid { field, .. } | TranslateError::Unsupported { field, .. }) => field,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

// ---------------------------------------------------------------- codec: requests

#[test]
fn gemini_request_is_the_documented_batch_embed_contents_example() {
    let inputs = ["What is the meaning of life?", "How much wood would a woodchuck chuck?", "How does the brain work?"];
    let encoded = encode(Target::Gemini, "gemini-embedding-001", json!({"model": "e", "input": inputs})).unwrap();
    assert_eq!(encoded, serde_json::from_str::<Value>(GEMINI_REQUEST).unwrap());
    // `dimensions` becomes every request's `outputDimensionality`; a `models/` prefix is not doubled.
    let sized =
        encode(Target::Gemini, "models/gemini-embedding-001", json!({"input": "x", "dimensions": 768})).unwrap();
    assert_eq!(sized["requests"][0]["outputDimensionality"], 768);
    assert_eq!(sized["requests"][0]["model"], "models/gemini-embedding-001");
}

#[test]
fn titan_request_is_the_documented_v2_shape_and_takes_one_text() {
    let text = "What are the different services that you offer?";
    let encoded =
        encode(TITAN_V2, "amazon.titan-embed-text-v2:0", json!({"input": [text], "dimensions": 512})).unwrap();
    assert_eq!(encoded, serde_json::from_str::<Value>(TITAN_V2_REQUEST).unwrap());
    // Titan embeds one text per call: several are a 400 naming `input`, not a silent first.
    let many = encode(TITAN_V2, "amazon.titan-embed-text-v2:0", json!({"input": ["a", "b"]}));
    assert_eq!(refused_field(many), "input");
    // v1 has a fixed size.
    let v1 =
        encode(Target::Titan { v2: false }, "amazon.titan-embed-text-v1", json!({"input": "a", "dimensions": 256}));
    assert_eq!(refused_field(v1), "dimensions");
}

#[test]
fn cohere_request_has_texts_and_input_type() {
    let encoded =
        encode(COHERE_V3, "cohere.embed-english-v3", json!({"input": ["Hello world", "This is a test"]})).unwrap();
    assert_eq!(encoded, serde_json::from_str::<Value>(COHERE_V3_REQUEST).unwrap());
    let query = encode(COHERE_V3, "m", json!({"input": "q", "input_type": "search_query"})).unwrap();
    assert_eq!(query["input_type"], "search_query");
    let v4 = encode(COHERE_V4, "cohere.embed-v4:0", json!({"input": "q", "dimensions": 1024})).unwrap();
    assert_eq!(v4["output_dimension"], 1024);
    assert_eq!(refused_field(encode(COHERE_V3, "m", json!({"input": "q", "dimensions": 1024}))), "dimensions");
    let too_many: Vec<String> = (0..97).map(|i| format!("t{i}")).collect();
    assert_eq!(refused_field(encode(COHERE_V3, "m", json!({"input": too_many}))), "input");
    // `input_type` is Cohere's: elsewhere it is refused, not dropped.
    assert_eq!(
        refused_field(encode(Target::Gemini, "m", json!({"input": "q", "input_type": "search_query"}))),
        "input_type"
    );
    assert_eq!(refused_field(decode(json!({"input": "q", "input_type": "retrieval"}))), "input_type");
}

#[test]
fn what_a_translation_cannot_carry_is_refused_naming_the_field() {
    for input in [json!([1, 2, 3]), json!([[1, 2], [3]]), json!(["text", 5])] {
        assert_eq!(refused_field(decode(json!({"input": input}))), "input", "{input}");
    }
    assert_eq!(refused_field(decode(json!({"input": []}))), "input");
    assert_eq!(refused_field(decode(json!({"input": ["a", ""]}))), "input[1]");
    assert_eq!(refused_field(decode(json!({"model": "m"}))), "input");
    assert_eq!(refused_field(decode(json!({"input": "a", "user": "user-1234"}))), "user");
    assert_eq!(refused_field(decode(json!({"input": "a", "encoding_format": "int8"}))), "encoding_format");
    assert_eq!(refused_field(decode(json!({"input": "a", "dimensions": 0}))), "dimensions");
    assert_eq!(refused_field(decode(json!({"input": "a", "dimensions": "256"}))), "dimensions");
    assert_eq!(refused_field(decode(json!({"input": "a", "task_type": "x"}))), "task_type");
    let ok = decode(json!({"input": "a", "encoding_format": "base64", "dimensions": null})).unwrap();
    assert!(ok.base64 && ok.dimensions.is_none());
    assert!(!decode(json!({"input": "a", "encoding_format": "float"})).unwrap().base64);
}

#[test]
fn targets_are_chosen_by_model_id() {
    let bedrock = |id| Target::of(ProviderDialect::Bedrock, id);
    assert_eq!(bedrock("amazon.titan-embed-text-v2:0"), Some(TITAN_V2));
    assert_eq!(bedrock("amazon.titan-embed-text-v1"), Some(Target::Titan { v2: false }));
    assert_eq!(bedrock("amazon.titan-embed-g1-text-02"), Some(Target::Titan { v2: false }));
    assert_eq!(bedrock("us.cohere.embed-v4:0"), Some(COHERE_V4));
    assert_eq!(bedrock("arn:aws:bedrock:us-east-1::foundation-model/cohere.embed-multilingual-v3"), Some(COHERE_V3));
    assert_eq!(bedrock("anthropic.claude-sonnet-4-5-20250929-v1:0"), None);
    assert_eq!(bedrock("amazon.titan-embed-image-v1"), None);
    assert_eq!(Target::of(ProviderDialect::Gemini, "gemini-embedding-001"), Some(Target::Gemini));
    assert_eq!(Target::of(ProviderDialect::Anthropic, "claude"), None);
}

// ---------------------------------------------------------------- codec: responses

#[test]
fn provider_answers_decode_in_order_with_their_token_counts() {
    let gemini = embeddings::decode_response(Target::Gemini, GEMINI_RESPONSE, 3).unwrap();
    assert_eq!(gemini.vectors[1], [0.0051, -0.0195, 0.0093, -0.0412]);
    assert_eq!(gemini.input_tokens, None, "batchEmbedContents reports no tokens");
    // Vertex AI's answer counts per embedding: summed, only when every embedding has a count.
    let counted = br#"{"embeddings":[{"values":[1],"statistics":{"tokenCount":4}},{"values":[2],"statistics":{"tokenCount":3}}]}"#;
    assert_eq!(embeddings::decode_response(Target::Gemini, counted, 2).unwrap().input_tokens, Some(7));
    let partly = br#"{"embeddings":[{"values":[1],"statistics":{"tokenCount":4}},{"values":[2]}]}"#;
    assert_eq!(embeddings::decode_response(Target::Gemini, partly, 2).unwrap().input_tokens, None);
    let titan = embeddings::decode_response(TITAN_V2, TITAN_V2_RESPONSE, 1).unwrap();
    assert_eq!((titan.vectors[0][0], titan.input_tokens), (0.0462, Some(10)));
    let v1 = embeddings::decode_response(Target::Titan { v2: false }, TITAN_V1_RESPONSE, 1).unwrap();
    assert_eq!((v1.vectors[0][3], v1.input_tokens), (-0.40820312, Some(10)));
    let v3 = embeddings::decode_response(COHERE_V3, COHERE_V3_RESPONSE, 2).unwrap();
    assert_eq!((v3.vectors[1][2], v3.input_tokens), (-0.0331, None));
    let v4 = embeddings::decode_response(COHERE_V4, COHERE_V4_RESPONSE, 1).unwrap();
    assert_eq!((v4.vectors[0][1], v4.input_tokens), (-0.0456, Some(2)));
    // A vector missing or extra is not passed on as if it were the client's.
    let short = embeddings::decode_response(Target::Gemini, GEMINI_RESPONSE, 4).unwrap_err();
    assert_eq!(short.status, 502);
    assert!(short.message.contains("3 vectors for 4 inputs"), "{}", short.message);
    assert_eq!(embeddings::decode_response(COHERE_V3, b"{\"embeddings\":[[\"x\"]]}", 1).unwrap_err().status, 502);
}

#[test]
fn openai_answer_in_float_and_base64() {
    let answer = embeddings::decode_response(COHERE_V3, COHERE_V3_RESPONSE, 2).unwrap();
    let float: Value = serde_json::from_slice(&embeddings::encode_response(&answer, "embed", false, 7)).unwrap();
    assert_eq!(float["object"], "list");
    assert_eq!(float["model"], "embed");
    assert_eq!(float["usage"], json!({"prompt_tokens": 7, "total_tokens": 7}));
    assert_eq!(
        float["data"][1],
        json!({"object": "embedding", "index": 1, "embedding": [-0.0109, 0.0258, -0.0331, 0.0072]})
    );
    let b64: Value = serde_json::from_slice(&embeddings::encode_response(&answer, "embed", true, 7)).unwrap();
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(b64["data"][0]["embedding"].as_str().unwrap()).unwrap();
    let floats: Vec<f32> = bytes.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(floats, [0.0166f32, -0.0436, 0.0184, 0.0357]);
}

// ---------------------------------------------------------------- engine end to end

const NOW_MS: u64 = 1_795_734_600_000;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn gateway() -> Gateway {
    let config = json!({
        "providers": {
            "ge": {"kind": "gemini", "cluster": "gemini", "auth": {"type": "api-key", "env": "KEY"}},
            "br": {"kind": "bedrock", "cluster": "bedrock", "region": "us-east-1",
                   "auth": {"type": "aws-sigv4", "access_key_env": "AKID", "secret_key_env": "SECRET"}},
            "an": {"kind": "anthropic", "cluster": "anthropic", "auth": {"type": "api-key", "env": "KEY"}},
        },
        "models": {
            "gem-embed": {"provider": "ge", "model": "gemini-embedding-001"},
            "titan": {"provider": "br", "model": "amazon.titan-embed-text-v2:0"},
            "cohere": {"provider": "br", "model": "cohere.embed-english-v3"},
            "claude-on-bedrock": {"provider": "br", "model": "anthropic.claude-sonnet-4-5-20250929-v1:0"},
            "claude": {"provider": "an", "model": "claude-sonnet-4-5"},
        },
        "consumers": {"alice": {"api_keys": [hex(&digest("sk-alice"))], "plan": "small"}},
        "plans": {"small": {"limits": [{"name": "tpm", "window": "minute", "tokens": 100_000}]}},
        "quota": {"default_max_output_tokens": 64},
    });
    let env = |k: &str| match k {
        "KEY" => Some("upstream-key".to_string()),
        "AKID" => Some("AKIDEXAMPLE".to_string()),
        "SECRET" => Some("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_string()),
        _ => None,
    };
    Gateway::from_json(config.to_string().as_bytes(), &env).unwrap()
}

fn head(model: &str) -> RequestHead<'_> {
    RequestHead {
        method: "POST",
        path: "/v1/embeddings",
        body_model: Some(model),
        authorization: Some("Bearer sk-alice"),
        ..RequestHead::default()
    }
}

fn start(gw: &Gateway, model: &str) -> (Exchange, Vec<HeaderOp>) {
    match gw.on_request_headers(&head(model), 0, NOW_MS) {
        (exchange, RequestAction::Forward(ops)) => (exchange, ops),
        (_, RequestAction::Reply(reply)) => panic!("refused at headers: {}", String::from_utf8_lossy(&reply.body)),
    }
}

fn path_of(ops: &[HeaderOp]) -> &str {
    ops.iter()
        .find_map(|op| match op {
            HeaderOp::Set(name, value) if name == ":path" => Some(value.as_str()),
            _ => None,
        })
        .unwrap()
}

fn sent(action: BodyAction) -> Value {
    match action {
        BodyAction::Replace(bytes) => serde_json::from_slice(&bytes).unwrap(),
        other => panic!("not forwarded: {other:?}"),
    }
}

fn refusal(action: BodyAction) -> (u16, Value) {
    match action {
        BodyAction::Reply(LocalReply { status, body, .. }) => (status, serde_json::from_slice(&body).unwrap()),
        other => panic!("admitted: {other:?}"),
    }
}

/// The provider's answer through the response callbacks: what the client gets.
fn answer(exchange: &mut Exchange, status: u16, body: &[u8]) -> Value {
    exchange.on_response_headers(status, Some("application/json"));
    let (a, b) = body.split_at(body.len() / 2);
    assert_eq!(exchange.on_response_body(a, false, NOW_MS + 5), BodyAction::Replace(Vec::new()));
    match exchange.on_response_body(b, true, NOW_MS + 10) {
        BodyAction::Replace(bytes) => serde_json::from_slice(&bytes).unwrap(),
        other => panic!("{other:?}"),
    }
}

fn remaining(exchange: &Exchange) -> u64 {
    exchange
        .budget_headers(NOW_MS)
        .into_iter()
        .find_map(|op| match op {
            HeaderOp::Set(name, value) if name == "x-ratelimit-remaining-tokens" => value.parse().ok(),
            _ => None,
        })
        .expect("a reservation was made")
}

#[test]
fn gemini_embeddings_end_to_end_with_estimated_usage() {
    let gw = gateway();
    let store = MemoryStore::new();
    let (mut ex, ops) = start(&gw, "gem-embed");
    assert_eq!(path_of(&ops), "/v1beta/models/gemini-embedding-001:batchEmbedContents");
    assert!(ops.contains(&HeaderOp::Set("x-goog-api-key".to_string(), "upstream-key".to_string())));
    let inputs = ["What is the meaning of life?", "How much wood would a woodchuck chuck?", "How does the brain work?"];
    let body = json!({"model": "gem-embed", "input": inputs, "encoding_format": "float"});
    let upstream = sent(ex.on_request_body(body.to_string().as_bytes(), NOW_MS, gw.quota(&store), None));
    assert_eq!(upstream, serde_json::from_str::<Value>(GEMINI_REQUEST).unwrap());
    assert!(remaining(&ex) < 100_000, "the request holds budget while it runs");
    let client = answer(&mut ex, 200, GEMINI_RESPONSE);
    assert_eq!(client["data"].as_array().unwrap().len(), 3);
    assert_eq!(client["data"][2]["index"], 2);
    assert_eq!(client["data"][2]["embedding"], json!([-0.0143, 0.0227, -0.0011, 0.0345]));
    assert_eq!(client["model"], "gemini-embedding-001");
    // No count from Gemini: the estimate of the input text, recorded as estimated.
    let text_bytes: usize = inputs.iter().map(|t| t.len()).sum();
    let estimate = llm_gateway::usage::tokens_from_byte_count(text_bytes);
    assert_eq!(client["usage"], json!({"prompt_tokens": estimate, "total_tokens": estimate}));
    let record = ex.finish(NOW_MS + 20, gw.quota(&store)).unwrap();
    assert_eq!((record.usage.input, record.usage.output), (Some(estimate), Some(0)));
    assert_eq!(record.usage.source, UsageSource::Estimated);
    assert_eq!(record.operation.unwrap().as_str(), "embeddings");
    // Settled to what was used: the budget left is the limit minus the estimate.
    assert_eq!(record.budget_remaining, [("tpm".to_string(), 100_000 - estimate)]);
}

#[test]
fn titan_embeddings_are_signed_and_report_their_tokens() {
    let gw = gateway();
    let store = MemoryStore::new();
    let (mut ex, ops) = start(&gw, "titan");
    assert_eq!(path_of(&ops), "/model/amazon.titan-embed-text-v2%3A0/invoke");
    let body = json!({"model": "titan", "input": "What are the different services that you offer?", "dimensions": 512});
    let action = ex.on_request_body(body.to_string().as_bytes(), NOW_MS, gw.quota(&store), None);
    let BodyAction::Replace(upstream) = action else { panic!("{action:?}") };
    // The signature covers the translated body (its SHA-256 is the signed payload hash).
    let headers = ex.deferred_headers();
    let auth = headers.iter().find(|(n, _)| n == "authorization").map(|(_, v)| v.as_str()).unwrap();
    assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{auth}");
    let hash = headers.iter().find(|(n, _)| n == "x-amz-content-sha256").map(|(_, v)| v.clone());
    let expected = llm_gateway::llm::bedrock::sigv4::sha256_hex(&upstream);
    assert!(hash.is_none_or(|h| h == expected), "a payload hash header must be the body's");
    assert_eq!(
        serde_json::from_slice::<Value>(&upstream).unwrap(),
        serde_json::from_str::<Value>(TITAN_V2_REQUEST).unwrap()
    );
    let client = answer(&mut ex, 200, TITAN_V2_RESPONSE);
    assert_eq!(client["usage"], json!({"prompt_tokens": 10, "total_tokens": 10}));
    let record = ex.finish(NOW_MS + 20, gw.quota(&store)).unwrap();
    assert_eq!(
        (record.usage.input, record.usage.output, record.usage.source),
        (Some(10), Some(0), UsageSource::Reported)
    );
    assert_eq!(record.budget_remaining, [("tpm".to_string(), 100_000 - 10)]);
}

#[test]
fn cohere_usage_comes_from_bedrocks_token_header() {
    let gw = gateway();
    let (mut ex, ops) = start(&gw, "cohere");
    assert_eq!(path_of(&ops), "/model/cohere.embed-english-v3/invoke");
    let body = json!({"model": "cohere", "input": ["Hello world", "This is a test"], "encoding_format": "base64"});
    let upstream = sent(ex.on_request_body(body.to_string().as_bytes(), NOW_MS, None, None));
    assert_eq!(upstream, serde_json::from_str::<Value>(COHERE_V3_REQUEST).unwrap());
    ex.note_input_token_header(Some("6"));
    let client = answer(&mut ex, 200, COHERE_V3_RESPONSE);
    assert!(client["data"][0]["embedding"].is_string(), "base64 asked, base64 given");
    assert_eq!(client["usage"]["prompt_tokens"], 6);
    let record = ex.finish(NOW_MS + 20, None).unwrap();
    assert_eq!((record.usage.input, record.usage.source), (Some(6), UsageSource::Reported));
}

#[test]
fn provider_errors_reach_the_client_in_openai_shape() {
    let gw = gateway();
    let (mut ex, _) = start(&gw, "gem-embed");
    sent(ex.on_request_body(br#"{"model":"gem-embed","input":"x"}"#, NOW_MS, None, None));
    let client = answer(&mut ex, 400, GEMINI_ERROR);
    assert_eq!(client["error"]["type"], "invalid_request_error");
    assert!(client["error"]["message"].as_str().unwrap().contains("must not be empty"), "{client}");
    let record = ex.finish(NOW_MS + 20, None).unwrap();
    assert_eq!((record.status, record.usage.source), (400, UsageSource::None));
}

#[test]
fn refusals_name_the_field_and_send_nothing() {
    let gw = gateway();
    let store = MemoryStore::new();
    for (model, body, field) in [
        ("titan", json!({"model": "titan", "input": ["a", "b"]}), "input"),
        ("gem-embed", json!({"model": "gem-embed", "input": [[1, 2, 3]]}), "input"),
        ("cohere", json!({"model": "cohere", "input": "a", "user": "u-1"}), "user"),
        ("cohere", json!({"model": "cohere", "input": "a", "dimensions": 256}), "dimensions"),
    ] {
        let (mut ex, _) = start(&gw, model);
        let (status, error) = refusal(ex.on_request_body(body.to_string().as_bytes(), NOW_MS, gw.quota(&store), None));
        assert_eq!((status, error["error"]["param"].as_str()), (400, Some(field)), "{body}: {error}");
        // Refused before any budget was held.
        assert!(ex.budget_headers(NOW_MS).is_empty(), "{body}: a reservation was made");
    }
    // A Bedrock chat model and an Anthropic model cannot embed: refused at the headers.
    for (model, code) in [("claude-on-bedrock", None), ("claude", Some("unsupported_operation"))] {
        let (_, action) = gw.on_request_headers(&head(model), 0, NOW_MS);
        let RequestAction::Reply(reply) = action else { panic!("{model} was forwarded") };
        let error: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!((reply.status, error["error"]["param"].as_str()), (400, Some("model")), "{error}");
        if let Some(code) = code {
            assert_eq!(error["error"]["code"], code);
        } else {
            assert!(error["error"]["message"].as_str().unwrap().contains("cohere.embed-*"), "{error}");
        }
    }
}

#[test]
fn guards_and_masks_screen_the_text_before_translation() {
    let config = json!({
        "providers": {"ge": {"kind": "gemini", "cluster": "gemini", "auth": {"type": "api-key", "env": "KEY"}}},
        "models": {"gem-embed": {"provider": "ge", "model": "gemini-embedding-001"}},
        "prompts": {"guards": {"deny": [{"name": "secrets", "regex": "password\\s*[:=]"}],
                               "mask": [{"name": "email", "builtin": "email"}]}},
    });
    let gw = Gateway::from_json(config.to_string().as_bytes(), &|_| Some("upstream-key".to_string())).unwrap();
    let head =
        RequestHead { method: "POST", path: "/v1/embeddings", body_model: Some("gem-embed"), ..Default::default() };
    let run = |body: Value| {
        let (mut ex, action) = gw.on_request_headers(&head, 0, NOW_MS);
        assert!(matches!(action, RequestAction::Forward(_)), "{action:?}");
        ex.on_request_body(body.to_string().as_bytes(), NOW_MS, None, gw.prompts())
    };
    let sent = sent(run(json!({"model": "gem-embed", "input": ["write to ada@example.com", "b"]})));
    assert_eq!(sent["requests"][0]["content"]["parts"][0]["text"], "write to [EMAIL]");
    let (status, error) = refusal(run(json!({"model": "gem-embed", "input": ["fine", "password: hunter2"]})));
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("prompt_blocked")));
}
