//! Client side: an OpenAI Chat Completions request body -> IR.
//!
//! Validation follows what OpenAI itself rejects (messages in OpenAI's own wording where
//! we know it). `TranslateError::Invalid.field` is a path like `messages[2].content[0].type`.

use super::fields::{invalid, request_model, request_object};
use super::fields::{member, wrong_type};
use super::messages::Conversation;
use crate::llm::ir::{ChatRequest, Reasoning, ResponseFormat, Tool, ToolChoice, TranslateError};
use serde_json::{Map, Value};

type Result<T> = std::result::Result<T, TranslateError>;

/// Top-level members carried into the IR.
const CARRIED: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "n",
    "user",
    "logprobs",
    "prompt_cache_key",
    "prompt_cache_retention",
];

/// Harmless metadata, accepted and ignored (they do not change what the model generates).
const IGNORED: &[&str] = &["store", "metadata", "service_tier", "safety_identifier"];

/// Valid OpenAI members that change the response and that the IR cannot carry.
const NOT_TRANSLATABLE: &[&str] = &[
    "top_logprobs",
    "logit_bias",
    "audio",
    "modalities",
    "prediction",
    "web_search_options",
    "verbosity",
    "functions",
    "function_call",
];

const NOT_TRANSLATABLE_MSG: &str = "is not supported when the model is served by a non-OpenAI provider";

pub(super) fn not_translatable(field: impl Into<String>) -> TranslateError {
    invalid(field, NOT_TRANSLATABLE_MSG)
}

pub(super) fn opt_str<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a str>> {
    match member(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(wrong_type(path, "a string", v)),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    match member(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(wrong_type(key, "a boolean", v)),
    }
}

fn opt_f64(obj: &Map<String, Value>, key: &str, min: f64, max: f64) -> Result<Option<f64>> {
    let Some(v) = member(obj, key) else { return Ok(None) };
    let x = v.as_f64().ok_or_else(|| wrong_type(key, "a decimal", v))?;
    if x < min || x > max {
        let msg = format!("Invalid '{key}': decimal above maximum value. Expected a value between {min} and {max}, but got {x} instead.");
        let msg = if x < min { msg.replace("above maximum", "below minimum") } else { msg };
        return Err(invalid(key, msg));
    }
    Ok(Some(x))
}

fn opt_u64(obj: &Map<String, Value>, key: &str, min: u64) -> Result<Option<u64>> {
    let Some(v) = member(obj, key) else { return Ok(None) };
    let x = v.as_u64().ok_or_else(|| wrong_type(key, "an integer", v))?;
    if x < min {
        return Err(invalid(
            key,
            format!("Invalid '{key}': integer below minimum value. Expected a value >= {min}, but got {x} instead."),
        ));
    }
    Ok(Some(x))
}

/// Decodes an OpenAI Chat Completions request.
///
/// Carried into the IR: everything in [`CARRIED`] (`top_k` is the vLLM/OpenRouter extension;
/// `logprobs: false` is accepted, `true` is not translatable; `prompt_cache_key` and
/// `prompt_cache_retention` go to `ChatRequest::cache`). Ignored as metadata: `store`,
/// `metadata`, `service_tier`, `safety_identifier`, `stream_options.include_obfuscation`, the `name` of a system or
/// developer message, and `json_schema.description`. Carried: a user or assistant message's
/// `name` (`Message::name`), an image part's `detail` (`Image::detail`) and a tool's
/// `function.strict` (`Tool::strict`); each provider encoder decides what it can express.
///
/// Members OpenAI accepts but the IR cannot carry (`logprobs: true`, `top_logprobs`,
/// `logit_bias`, `audio`, `modalities` other than `["text"]`, `prediction`,
/// `web_search_options`, `verbosity`, the deprecated `functions`/`function_call`, `function`
/// role messages, audio content parts, `file` parts by `file_id` (inline `file_data` is carried as `Part::Document`), custom tools, `allowed_tools` tool choice) are
/// `Invalid { field, message: "is not supported when the model is served by a non-OpenAI
/// provider" }`: this decoder only runs on translated routes (OpenAI -> OpenAI is a byte
/// passthrough) but does not know the target provider, so it cannot build `Unsupported`.
///
/// Unknown members are rejected like OpenAI does ("Unrecognized request argument supplied").
///
/// `system`/`developer` messages become IR `system` parts in order, wherever they appear:
/// one that follows user turns is hoisted to the system prompt (no other provider has a
/// mid-conversation system role). Consecutive `tool` messages become one IR `User` message
/// of `ToolResult` parts (a following `user` message stays a separate IR message).
pub fn decode_request(body: &[u8]) -> Result<ChatRequest> {
    let obj = request_object(body)?;
    check_members(&obj)?;
    let model = request_model(&obj)?;
    let stream = opt_bool(&obj, "stream")?.unwrap_or(false);
    let mut req = ChatRequest {
        model,
        stream,
        stream_usage: stream_usage(&obj, stream)?,
        max_tokens: opt_u64(&obj, "max_completion_tokens", 1)?.or(opt_u64(&obj, "max_tokens", 1)?),
        temperature: opt_f64(&obj, "temperature", 0.0, 2.0)?,
        top_p: opt_f64(&obj, "top_p", 0.0, 1.0)?,
        top_k: opt_u64(&obj, "top_k", 0)?,
        stop: stop(&obj)?,
        seed: match member(&obj, "seed") {
            None => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| wrong_type("seed", "an integer", v))?),
        },
        frequency_penalty: opt_f64(&obj, "frequency_penalty", -2.0, 2.0)?,
        presence_penalty: opt_f64(&obj, "presence_penalty", -2.0, 2.0)?,
        n: opt_u64(&obj, "n", 1)?,
        user: opt_str(&obj, "user", "user")?.map(str::to_string),
        parallel_tool_calls: opt_bool(&obj, "parallel_tool_calls")?,
        tools: tools(&obj)?,
        tool_choice: tool_choice(&obj)?,
        response_format: response_format(&obj)?,
        reasoning: reasoning(&obj)?,
        ..ChatRequest::default()
    };
    let messages = match obj.get("messages") {
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) => return Err(invalid("messages", "Missing required parameter: 'messages'.")),
        Some(v) => return Err(wrong_type("messages", "an array of objects", v)),
    };
    // An empty list is checked after the prompt layer (`dialect::require_messages`): a
    // template may supply every message.
    let mut conv = Conversation::default();
    for (i, m) in messages.iter().enumerate() {
        conv.push(i, m)?;
    }
    req.system = conv.system;
    req.messages = conv.messages;
    req.cache.key = opt_str(&obj, "prompt_cache_key", "prompt_cache_key")?.map(str::to_string);
    req.cache.retention = opt_str(&obj, "prompt_cache_retention", "prompt_cache_retention")?.map(str::to_string);
    Ok(req)
}

fn check_members(obj: &Map<String, Value>) -> Result<()> {
    for (key, value) in obj {
        let key = key.as_str();
        if CARRIED.contains(&key) || IGNORED.contains(&key) {
            continue;
        }
        if NOT_TRANSLATABLE.contains(&key) {
            let harmless = match key {
                "logit_bias" => value.as_object().is_some_and(Map::is_empty),
                "modalities" => value.as_array().is_some_and(|a| a.iter().all(|m| m == "text")),
                "functions" => value.as_array().is_some_and(Vec::is_empty),
                _ => false,
            };
            if value.is_null() || harmless {
                continue;
            }
            return Err(not_translatable(key));
        }
        return Err(invalid(key, format!("Unrecognized request argument supplied: {key}")));
    }
    if opt_bool(obj, "logprobs")? == Some(true) {
        return Err(not_translatable("logprobs"));
    }
    Ok(())
}

fn stream_usage(obj: &Map<String, Value>, stream: bool) -> Result<bool> {
    let Some(opts) = member(obj, "stream_options") else { return Ok(false) };
    if !stream {
        return Err(invalid(
            "stream_options",
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        ));
    }
    let opts = opts.as_object().ok_or_else(|| wrong_type("stream_options", "an object", opts))?;
    match member(opts, "include_usage") {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(wrong_type("stream_options.include_usage", "a boolean", v)),
    }
}

fn stop(obj: &Map<String, Value>) -> Result<Vec<String>> {
    match member(obj, "stop") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => {
            if items.len() > 4 {
                return Err(invalid(
                    "stop",
                    format!("Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with length {} instead.", items.len()),
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    s.as_str().map(str::to_string).ok_or_else(|| wrong_type(&format!("stop[{i}]"), "a string", s))
                })
                .collect()
        }
        Some(v) => Err(wrong_type("stop", "a string or an array of strings", v)),
    }
}

fn tools(obj: &Map<String, Value>) -> Result<Vec<Tool>> {
    let Some(v) = member(obj, "tools") else { return Ok(Vec::new()) };
    let items = v.as_array().ok_or_else(|| wrong_type("tools", "an array", v))?;
    let mut out = Vec::with_capacity(items.len());
    for (i, t) in items.iter().enumerate() {
        let path = format!("tools[{i}]");
        let t = t.as_object().ok_or_else(|| wrong_type(&path, "an object", t))?;
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some("custom") => return Err(not_translatable(format!("{path}.type"))),
            Some(other) => {
                return Err(invalid(
                    format!("{path}.type"),
                    format!("Invalid value: '{other}'. Supported values are: 'function' and 'custom'."),
                ))
            }
            None => return Err(invalid(format!("{path}.type"), format!("Missing required parameter: '{path}.type'."))),
        }
        let f = match t.get("function") {
            Some(Value::Object(f)) => f,
            None | Some(Value::Null) => {
                return Err(invalid(
                    format!("{path}.function"),
                    format!("Missing required parameter: '{path}.function'."),
                ))
            }
            Some(v) => return Err(wrong_type(&format!("{path}.function"), "an object", v)),
        };
        let name = match opt_str(f, "name", &format!("{path}.function.name"))? {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => {
                return Err(invalid(
                    format!("{path}.function.name"),
                    format!("Missing required parameter: '{path}.function.name'."),
                ))
            }
        };
        let parameters = match member(f, "parameters") {
            // json!: the IR carries a tool's schema as a `Value`; this is the empty one.
            None => serde_json::json!({"type": "object", "properties": {}}),
            Some(p @ Value::Object(_)) => p.clone(),
            Some(v) => return Err(wrong_type(&format!("{path}.function.parameters"), "an object", v)),
        };
        let description = opt_str(f, "description", &format!("{path}.function.description"))?.map(str::to_string);
        let strict = match member(f, "strict") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => return Err(wrong_type(&format!("{path}.function.strict"), "a boolean", v)),
        };
        out.push(Tool { name, description, parameters, strict });
    }
    Ok(out)
}

fn tool_choice(obj: &Map<String, Value>) -> Result<Option<ToolChoice>> {
    let Some(v) = member(obj, "tool_choice") else { return Ok(None) };
    match v {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(Some(ToolChoice::Auto)),
            "none" => Ok(Some(ToolChoice::None)),
            "required" => Ok(Some(ToolChoice::Required)),
            other => Err(invalid(
                "tool_choice",
                format!("Invalid value: '{other}'. Supported values are: 'none', 'auto', and 'required'."),
            )),
        },
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str);
                match name {
                    Some(n) => Ok(Some(ToolChoice::Tool(n.to_string()))),
                    None => Err(invalid(
                        "tool_choice.function.name",
                        "Missing required parameter: 'tool_choice.function.name'.",
                    )),
                }
            }
            Some("allowed_tools") | Some("custom") => Err(not_translatable("tool_choice.type")),
            _ => Err(invalid("tool_choice.type", "Invalid value for 'tool_choice.type'.")),
        },
        v => Err(wrong_type("tool_choice", "a string or an object", v)),
    }
}

fn response_format(obj: &Map<String, Value>) -> Result<Option<ResponseFormat>> {
    let Some(v) = member(obj, "response_format") else { return Ok(None) };
    let o = v.as_object().ok_or_else(|| wrong_type("response_format", "an object", v))?;
    match o.get("type").and_then(Value::as_str) {
        Some("text") => Ok(Some(ResponseFormat::Text)),
        Some("json_object") => Ok(Some(ResponseFormat::JsonObject)),
        Some("json_schema") => {
            let js = match o.get("json_schema") {
                Some(Value::Object(js)) => js,
                _ => {
                    return Err(invalid(
                        "response_format.json_schema",
                        "Missing required parameter: 'response_format.json_schema'.",
                    ))
                }
            };
            let name = opt_str(js, "name", "response_format.json_schema.name")?.ok_or_else(|| {
                invalid(
                    "response_format.json_schema.name",
                    "Missing required parameter: 'response_format.json_schema.name'.",
                )
            })?;
            let schema = match member(js, "schema") {
                // json!: the IR carries a response schema as a `Value`; none is the empty one.
                None => serde_json::json!({}),
                Some(s @ Value::Object(_)) => s.clone(),
                Some(v) => return Err(wrong_type("response_format.json_schema.schema", "an object", v)),
            };
            let strict = opt_bool(js, "strict")?;
            Ok(Some(ResponseFormat::JsonSchema { name: name.to_string(), schema, strict }))
        }
        Some(other) => Err(invalid(
            "response_format.type",
            format!("Invalid value: '{other}'. Supported values are: 'text', 'json_object', and 'json_schema'."),
        )),
        None => Err(invalid("response_format.type", "Missing required parameter: 'response_format.type'.")),
    }
}

fn reasoning(obj: &Map<String, Value>) -> Result<Option<Reasoning>> {
    match opt_str(obj, "reasoning_effort", "reasoning_effort")? {
        None => Ok(None),
        Some("none") => Ok(Some(Reasoning::Disabled)),
        Some(e @ ("minimal" | "low" | "medium" | "high" | "xhigh")) => Ok(Some(Reasoning::Effort(e.to_string()))),
        Some(other) => Err(invalid(
            "reasoning_effort",
            format!("Invalid value: '{other}'. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', and 'xhigh'."),
        )),
    }
}
