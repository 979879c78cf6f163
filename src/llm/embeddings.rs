//! OpenAI Embeddings (`POST /v1/embeddings`) for providers with their own embeddings API:
//! Gemini `models/{model}:batchEmbedContents` and Bedrock `InvokeModel` for Amazon Titan Text
//! Embeddings and Cohere Embed. OpenAI-dialect providers get the request as is (the engine's
//! passthrough); this module is the translation for the others.
//!
//! Request (`decode_request`): `model`, `input` (a string or an array of strings),
//! `dimensions`, `encoding_format`. Refused with a 400 naming the field: token-id input (no
//! translated provider takes token ids from OpenAI's tokenizer), an empty input or string,
//! `dimensions` where the model has no such setting, an unknown `encoding_format`, `user`
//! (OpenAI's end-user id for its abuse monitoring: no translated provider has a field for it,
//! and dropping it would be silent; the gateway's access log names the consumer), and any
//! other member. `encoding_format: "base64"` (the default of the official OpenAI SDKs) is
//! encoded by the gateway: the floats as little-endian `f32`, base64, as OpenAI sends them.
//! One extension, `input_type` (Cohere's `search_document`, `search_query`, `classification`,
//! `clustering`), is taken for Cohere models only (default `search_document`).
//!
//! Response (`decode_response` / `encode_response`): the provider's vectors in input order as
//! OpenAI's `{"object":"list","data":[...],"model","usage"}`. Usage: Titan's
//! `inputTextTokenCount`; Cohere's `meta.billed_units.input_tokens` when the body has it,
//! else Bedrock's `x-amzn-bedrock-input-token-count` response header; Gemini's
//! `batchEmbedContents` reports no tokens (a `usageMetadata.promptTokenCount`, or Vertex AI's
//! per-embedding `statistics.tokenCount`, is read when present): the gateway's estimate is used
//! and recorded as estimated.

use super::ir::{ErrorKind, ProviderDialect, ProviderError, TranslateError};
use base64::Engine as _;
use serde_json::{json, Map, Value};

/// Which embeddings API the request is translated to, chosen by provider and model id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Gemini `batchEmbedContents`: every input is one request of the batch.
    Gemini,
    /// Amazon Titan Text Embeddings (`amazon.titan-embed-text-v1`, `-v2:0`): one input per call;
    /// `dimensions` only on v2.
    Titan { v2: bool },
    /// Cohere Embed on Bedrock (`cohere.embed-*`): up to 96 `texts`; `output_dimension` on v4.
    Cohere { v4: bool },
}

/// The most texts one Cohere Embed call takes (Bedrock's model parameters page).
pub const COHERE_MAX_TEXTS: usize = 96;

const COHERE_INPUT_TYPES: [&str; 4] = ["search_document", "search_query", "classification", "clustering"];

/// Why a Bedrock model id cannot serve embeddings: the `model` the client named routes to a
/// model the gateway cannot translate embeddings for.
pub const BEDROCK_MODELS: &str =
    "Bedrock embeddings are translated for Amazon Titan Text Embeddings (amazon.titan-embed-text-*) \
     and Cohere Embed (cohere.embed-*) model ids";

impl Target {
    /// The target for a provider dialect and model id (a base model id, an inference profile
    /// such as `us.cohere.embed-v4:0`, or an ARN ending in one). `None`: not translatable.
    pub fn of(dialect: ProviderDialect, model: &str) -> Option<Target> {
        match dialect {
            ProviderDialect::Gemini => Some(Target::Gemini),
            ProviderDialect::Bedrock => {
                let id = model.rsplit('/').next().unwrap_or(model);
                if id.contains("amazon.titan-embed-text-") || id.contains("amazon.titan-embed-g1-text-") {
                    Some(Target::Titan { v2: id.contains("titan-embed-text-v2") })
                } else if id.contains("cohere.embed-") {
                    Some(Target::Cohere { v4: id.contains("cohere.embed-v4") })
                } else {
                    None
                }
            }
            ProviderDialect::OpenAi | ProviderDialect::Anthropic => None,
        }
    }

    fn provider(self) -> &'static str {
        match self {
            Target::Gemini => "gemini",
            Target::Titan { .. } | Target::Cohere { .. } => "bedrock",
        }
    }
}

/// An OpenAI embeddings request, as far as a translation carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsRequest {
    pub inputs: Vec<String>,
    pub dimensions: Option<u64>,
    /// `encoding_format: "base64"`: the answer's vectors are base64 `f32` arrays.
    pub base64: bool,
    /// Cohere's `input_type` (the one extension member).
    pub input_type: Option<String>,
}

impl EmbeddingsRequest {
    /// Bytes of input text (for the token estimate).
    pub fn text_bytes(&self) -> usize {
        self.inputs.iter().map(String::len).sum()
    }
}

fn invalid(field: &str, message: impl Into<String>) -> TranslateError {
    TranslateError::Invalid { field: field.to_string(), message: message.into() }
}

/// Reads an OpenAI embeddings body (see the module doc for what is refused).
pub fn decode_request(body: &[u8]) -> Result<EmbeddingsRequest, TranslateError> {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return Err(invalid("body", "must be a JSON object"));
    };
    let mut request = EmbeddingsRequest { inputs: Vec::new(), dimensions: None, base64: false, input_type: None };
    for (name, value) in &object {
        match name.as_str() {
            "model" => {}
            "input" => request.inputs = decode_input(value)?,
            "dimensions" => request.dimensions = decode_dimensions(value)?,
            "encoding_format" => request.base64 = decode_encoding_format(value)?,
            "input_type" => match value {
                Value::Null => {}
                Value::String(kind) if COHERE_INPUT_TYPES.contains(&kind.as_str()) => {
                    request.input_type = Some(kind.clone());
                }
                _ => return Err(invalid("input_type", format!("must be one of {}", COHERE_INPUT_TYPES.join(", ")))),
            },
            "user" => {
                return Err(invalid(
                    "user",
                    "OpenAI's end-user id has no equivalent in this provider's embeddings API; \
                     the gateway refuses rather than drop it (its access log names the consumer)",
                ))
            }
            other => {
                return Err(invalid(other, "unknown member of an embeddings request (the gateway translates this one)"))
            }
        }
    }
    if !object.contains_key("input") {
        return Err(invalid("input", "Missing required parameter: 'input'."));
    }
    Ok(request)
}

fn decode_input(value: &Value) -> Result<Vec<String>, TranslateError> {
    let token_ids = || {
        invalid(
            "input",
            "token-id input is not translated: the provider tokenizes text itself; send the text as a string or an \
             array of strings",
        )
    };
    let texts = match value {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) if items.is_empty() => {
            return Err(invalid("input", "empty array: send at least one string"));
        }
        Value::Array(items) => {
            let mut texts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(text) => texts.push(text.clone()),
                    Value::Number(_) | Value::Array(_) => return Err(token_ids()),
                    _ => return Err(invalid("input", "must be a string or an array of strings")),
                }
            }
            texts
        }
        _ => return Err(invalid("input", "must be a string or an array of strings")),
    };
    if let Some(i) = texts.iter().position(String::is_empty) {
        return Err(invalid(&format!("input[{i}]"), "empty string: the provider cannot embed no text"));
    }
    Ok(texts)
}

fn decode_dimensions(value: &Value) -> Result<Option<u64>, TranslateError> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_u64() {
            Some(d) if d >= 1 => Ok(Some(d)),
            _ => Err(invalid("dimensions", "must be an integer of at least 1")),
        },
        _ => Err(invalid("dimensions", "must be an integer of at least 1")),
    }
}

fn decode_encoding_format(value: &Value) -> Result<bool, TranslateError> {
    match value {
        Value::Null => Ok(false),
        Value::String(format) if format == "float" => Ok(false),
        Value::String(format) if format == "base64" => Ok(true),
        _ => Err(invalid("encoding_format", "must be \"float\" or \"base64\"")),
    }
}

fn unsupported(target: Target, field: &str, detail: &str) -> TranslateError {
    TranslateError::Unsupported { field: field.to_string(), provider: target.provider(), detail: detail.to_string() }
}

/// The provider's request body for `model` (the routed target model id).
pub fn encode_request(target: Target, model: &str, request: &EmbeddingsRequest) -> Result<Vec<u8>, TranslateError> {
    if request.input_type.is_some() && !matches!(target, Target::Cohere { .. }) {
        return Err(unsupported(
            target,
            "input_type",
            "`input_type` is Cohere Embed's; this model has no such setting",
        ));
    }
    let body = match target {
        Target::Gemini => {
            let name = format!("models/{}", model.strip_prefix("models/").unwrap_or(model));
            let requests: Vec<Value> = request
                .inputs
                .iter()
                .map(|text| {
                    let mut one = json!({"model": name, "content": {"parts": [{"text": text}]}});
                    if let (Some(dimensions), Value::Object(one)) = (request.dimensions, &mut one) {
                        one.insert("outputDimensionality".to_string(), json!(dimensions));
                    }
                    one
                })
                .collect();
            json!({ "requests": requests })
        }
        Target::Titan { v2 } => {
            let [text] = request.inputs.as_slice() else {
                return Err(invalid(
                    "input",
                    format!(
                        "Amazon Titan Text Embeddings takes one text per call; send {} requests of one string each",
                        request.inputs.len()
                    ),
                ));
            };
            let mut body = Map::new();
            body.insert("inputText".to_string(), json!(text));
            match (request.dimensions, v2) {
                (Some(d), true) => {
                    body.insert("dimensions".to_string(), json!(d));
                }
                (Some(_), false) => {
                    return Err(unsupported(target, "dimensions", "Titan Text Embeddings v1 has a fixed size"))
                }
                (None, _) => {}
            }
            Value::Object(body)
        }
        Target::Cohere { v4 } => {
            if request.inputs.len() > COHERE_MAX_TEXTS {
                return Err(invalid(
                    "input",
                    format!(
                        "Cohere Embed takes at most {COHERE_MAX_TEXTS} texts per call, got {}",
                        request.inputs.len()
                    ),
                ));
            }
            let mut body = Map::new();
            body.insert("texts".to_string(), json!(request.inputs));
            let input_type = request.input_type.as_deref().unwrap_or("search_document");
            body.insert("input_type".to_string(), json!(input_type));
            match (request.dimensions, v4) {
                (Some(d), true) => {
                    body.insert("output_dimension".to_string(), json!(d));
                }
                (Some(_), false) => {
                    return Err(unsupported(
                        target,
                        "dimensions",
                        "Cohere Embed v3 has a fixed size (v4 has `output_dimension`)",
                    ))
                }
                (None, _) => {}
            }
            Value::Object(body)
        }
    };
    Ok(body.to_string().into_bytes())
}

/// A provider's answer: the vectors in input order, and the input tokens when it reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f64>>,
    pub input_tokens: Option<u64>,
}

fn bad_answer(message: &str) -> ProviderError {
    ProviderError {
        kind: ErrorKind::Server,
        status: 502,
        message: format!("llm-gateway: the provider's embeddings answer is not readable: {message}"),
    }
}

fn vector(value: &Value) -> Option<Vec<f64>> {
    value.as_array()?.iter().map(Value::as_f64).collect()
}

fn vectors(value: &Value) -> Option<Vec<Vec<f64>>> {
    value.as_array()?.iter().map(vector).collect()
}

/// Reads the provider's answer to a request of `expected` inputs.
pub fn decode_response(target: Target, body: &[u8], expected: usize) -> Result<Embeddings, ProviderError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| bad_answer("not JSON"))?;
    let tokens = |pointer: &str| value.pointer(pointer).and_then(Value::as_u64);
    let decoded = match target {
        Target::Gemini => {
            let list =
                value.get("embeddings").and_then(Value::as_array).ok_or_else(|| bad_answer("no `embeddings`"))?;
            let vectors: Option<Vec<Vec<f64>>> = list.iter().map(|e| e.get("values").and_then(vector)).collect();
            // Vertex AI's form of the answer counts tokens per embedding (`statistics.tokenCount`).
            let per_embedding: Option<u64> =
                list.iter().map(|e| e.pointer("/statistics/tokenCount").and_then(Value::as_u64)).sum();
            Embeddings {
                vectors: vectors.ok_or_else(|| bad_answer("an embedding without numeric `values`"))?,
                input_tokens: tokens("/usageMetadata/promptTokenCount").or(per_embedding.filter(|_| !list.is_empty())),
            }
        }
        Target::Titan { .. } => {
            let one = value
                .get("embedding")
                .or_else(|| value.pointer("/embeddingsByType/float"))
                .and_then(vector)
                .ok_or_else(|| bad_answer("no numeric `embedding`"))?;
            Embeddings { vectors: vec![one], input_tokens: tokens("/inputTextTokenCount") }
        }
        Target::Cohere { .. } => {
            // v3 without `embedding_types`: an array of vectors; by type (v4): `{"float": [...]}`.
            let list = value.get("embeddings").map(|e| e.get("float").unwrap_or(e));
            Embeddings {
                vectors: list.and_then(vectors).ok_or_else(|| bad_answer("no float `embeddings`"))?,
                input_tokens: tokens("/meta/billed_units/input_tokens"),
            }
        }
    };
    if decoded.vectors.len() != expected {
        return Err(bad_answer(&format!("{} vectors for {expected} inputs", decoded.vectors.len())));
    }
    Ok(decoded)
}

/// Bedrock's input token count header of an `InvokeModel` answer.
pub const BEDROCK_INPUT_TOKENS_HEADER: &str = "x-amzn-bedrock-input-token-count";

/// OpenAI's embeddings answer.
pub fn encode_response(embeddings: &Embeddings, model: &str, base64: bool, prompt_tokens: u64) -> Vec<u8> {
    let data: Vec<Value> = embeddings
        .vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 { json!(encode_base64(v)) } else { json!(v) };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    })
    .to_string()
    .into_bytes()
}

/// OpenAI's base64 form: the vector as little-endian `f32`s.
fn encode_base64(vector: &[f64]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
