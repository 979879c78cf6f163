//! Client side: an OpenAI Responses request body (`POST /v1/responses`) -> IR.
//!
//! This decoder runs only when the model is served by a provider other than OpenAI itself
//! (OpenAI gets the bytes, patched). It therefore refuses, naming the field, everything that
//! needs OpenAI's server-side state or tools: `previous_response_id`, `conversation`,
//! `store: true`, `background`, `prompt`, `item_reference` items, hosted tools.
//! `TranslateError::Invalid.field` is a path like `input[2].content[0].type`.

use crate::llm::ir::{
    ChatRequest, Image, ImageSource, Message, Part, Reasoning, ResponseFormat, Role, Tool, ToolCall, ToolChoice,
    ToolResult, TranslateError,
};
use crate::llm::openai_chat::fields::{invalid, member, parse_data_url, request_model, request_object, wrong_type};
use serde_json::{Map, Value};
use std::collections::HashMap;

type Result<T> = std::result::Result<T, TranslateError>;

/// Top-level members carried into the IR.
const CARRIED: &[&str] = &[
    "model",
    "input",
    "instructions",
    "max_output_tokens",
    "temperature",
    "top_p",
    "stream",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning",
    "text",
    "user",
    "store",
    "include",
    "truncation",
    "stream_options",
    "top_logprobs",
];

/// Harmless metadata, accepted and ignored (they do not change what the model generates).
const IGNORED: &[&str] =
    &["metadata", "service_tier", "safety_identifier", "prompt_cache_key", "prompt_cache_retention"];

/// Valid Responses members that need OpenAI's stored state (a 400 unless null).
const STATEFUL: &[&str] = &["previous_response_id", "conversation", "background", "prompt"];

/// Valid Responses members the IR cannot carry (a 400 unless null).
const NOT_TRANSLATABLE: &[&str] = &["max_tool_calls"];

/// Why a stateful member is refused (the provider cannot hold the state).
const STATELESS: &str = "is not supported when the model is served by a non-OpenAI provider: the gateway and this provider keep no responses, so there is no stored state to continue from; send the whole conversation in `input` with `store: false`";

const NOT_TRANSLATABLE_MSG: &str = "is not supported when the model is served by a non-OpenAI provider";

fn not_translatable(field: impl Into<String>) -> TranslateError {
    invalid(field, NOT_TRANSLATABLE_MSG)
}

fn missing(field: &str) -> TranslateError {
    invalid(field, format!("Missing required parameter: '{field}'."))
}

fn opt_str<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a str>> {
    match member(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(wrong_type(path, "a string", v)),
    }
}

fn required_str<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str> {
    opt_str(obj, key, path)?.ok_or_else(|| missing(path))
}

fn opt_bool(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>> {
    match member(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(wrong_type(path, "a boolean", v)),
    }
}

fn opt_f64(obj: &Map<String, Value>, key: &str, min: f64, max: f64) -> Result<Option<f64>> {
    let Some(v) = member(obj, key) else { return Ok(None) };
    let x = v.as_f64().ok_or_else(|| wrong_type(key, "a decimal", v))?;
    if !(min..=max).contains(&x) {
        let side = if x < min { "below minimum" } else { "above maximum" };
        return Err(invalid(
            key,
            format!(
                "Invalid '{key}': decimal {side} value. Expected a value between {min} and {max}, but got {x} instead."
            ),
        ));
    }
    Ok(Some(x))
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| wrong_type(path, "an object", v))
}

/// Decodes a Responses API request.
///
/// Carried: `input` (a string, or items: messages with `input_text`/`input_image` content,
/// assistant messages with `output_text`/`refusal`, `function_call`, `function_call_output`,
/// `reasoning` items whose `encrypted_content` is the signature the gateway gave out),
/// `instructions`, `max_output_tokens`, `temperature`, `top_p`, function `tools` (the flat
/// Responses shape), `tool_choice`, `parallel_tool_calls`, `reasoning.effort` (and
/// `reasoning.summary`: reasoning the provider returns always reaches the client as a
/// summary), `text.format` (text, json_object, json_schema), `user`, `stream`.
/// Accepted as they change nothing here: `store: false`, `truncation: "disabled"`,
/// `include: ["reasoning.encrypted_content"]`, `text.verbosity: "medium"`, `top_logprobs: 0`,
/// `stream_options.include_obfuscation`, and the metadata in [`IGNORED`]. Everything else
/// is refused naming the field: stateful members ([`STATEFUL`], `store: true`,
/// `item_reference` items), hosted and custom tools, file inputs, unknown members.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest> {
    let obj = request_object(body)?;
    check_members(&obj)?;
    let model = request_model(&obj)?;
    let stream = opt_bool(&obj, "stream", "stream")?.unwrap_or(false);
    let max_tokens = match member(&obj, "max_output_tokens") {
        None => None,
        Some(v) => Some(v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
            invalid("max_output_tokens", "Invalid 'max_output_tokens': expected an integer of at least 1.")
        })?),
    };
    let mut conversation = Conversation::default();
    if let Some(instructions) = opt_str(&obj, "instructions", "instructions")?.filter(|s| !s.is_empty()) {
        conversation.system.push(Part::Text(instructions.to_string()));
    }
    match member(&obj, "input") {
        None => {}
        Some(Value::String(s)) => conversation.push_message(Role::User, vec![Part::Text(s.clone())]),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                conversation.push_item(i, item)?;
            }
        }
        Some(v) => return Err(wrong_type("input", "a string or an array", v)),
    }
    Ok(ChatRequest {
        model,
        system: conversation.system,
        messages: conversation.messages,
        max_tokens,
        temperature: opt_f64(&obj, "temperature", 0.0, 2.0)?,
        top_p: opt_f64(&obj, "top_p", 0.0, 1.0)?,
        stream,
        // Responses streams always end with usage (`response.completed`).
        stream_usage: true,
        tools: tools(&obj)?,
        tool_choice: tool_choice(&obj)?,
        parallel_tool_calls: opt_bool(&obj, "parallel_tool_calls", "parallel_tool_calls")?,
        response_format: text_format(&obj)?,
        reasoning: reasoning(&obj)?,
        user: opt_str(&obj, "user", "user")?.map(str::to_string),
        ..ChatRequest::default()
    })
}

fn check_members(obj: &Map<String, Value>) -> Result<()> {
    for (key, value) in obj {
        let key = key.as_str();
        if CARRIED.contains(&key) || IGNORED.contains(&key) || value.is_null() {
            continue;
        }
        if STATEFUL.contains(&key) {
            return Err(invalid(key, STATELESS));
        }
        if NOT_TRANSLATABLE.contains(&key) {
            return Err(not_translatable(key));
        }
        return Err(invalid(key, format!("Unrecognized request argument supplied: {key}")));
    }
    if opt_bool(obj, "store", "store")? == Some(true) {
        return Err(invalid("store", STATELESS));
    }
    match opt_str(obj, "truncation", "truncation")? {
        None | Some("disabled") => {}
        Some("auto") => return Err(not_translatable("truncation")),
        Some(other) => {
            return Err(invalid(
                "truncation",
                format!("Invalid value: '{other}'. Supported values are: 'auto' and 'disabled'."),
            ))
        }
    }
    if let Some(v) = member(obj, "top_logprobs") {
        if v.as_u64() != Some(0) {
            return Err(not_translatable("top_logprobs"));
        }
    }
    check_include(obj)?;
    if let Some(v) = member(obj, "stream_options") {
        for key in object(v, "stream_options")?.keys() {
            if key != "include_obfuscation" {
                return Err(invalid(
                    format!("stream_options.{key}"),
                    format!("Unrecognized request argument supplied: stream_options.{key}"),
                ));
            }
        }
    }
    Ok(())
}

/// `include`: only `reasoning.encrypted_content` (the gateway returns reasoning signatures
/// there whenever the provider gives them); other inclusions are results of hosted tools or
/// logprobs, which no translated provider produces.
fn check_include(obj: &Map<String, Value>) -> Result<()> {
    let Some(v) = member(obj, "include") else { return Ok(()) };
    let items = v.as_array().ok_or_else(|| wrong_type("include", "an array", v))?;
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some("reasoning.encrypted_content") => {}
            Some(_) => return Err(not_translatable(format!("include[{i}]"))),
            None => return Err(wrong_type(&format!("include[{i}]"), "a string", item)),
        }
    }
    Ok(())
}

/// Builds system parts and IR messages from `input` items, in order.
#[derive(Default)]
struct Conversation {
    system: Vec<Part>,
    messages: Vec<Message>,
    /// The last IR message holds `function_call_output` results (the next one merges in).
    last_is_results: bool,
    /// Call id -> function name, from earlier `function_call` items (Gemini needs the name).
    call_names: HashMap<String, String>,
}

impl Conversation {
    fn push_message(&mut self, role: Role, content: Vec<Part>) {
        self.messages.push(Message { role, content, name: None });
        self.last_is_results = false;
    }

    /// Appends assistant parts to the current assistant turn, or starts one: a turn's
    /// reasoning, text and calls arrive as separate items.
    fn push_assistant(&mut self, parts: Vec<Part>) {
        match self.messages.last_mut() {
            Some(last) if last.role == Role::Assistant => last.content.extend(parts),
            _ => self.push_message(Role::Assistant, parts),
        }
        self.last_is_results = false;
    }

    fn push_item(&mut self, i: usize, item: &Value) -> Result<()> {
        let path = format!("input[{i}]");
        let item = object(item, &path)?;
        let kind = opt_str(item, "type", &format!("{path}.type"))?;
        match kind {
            None | Some("message") => self.push_message_item(item, &path),
            Some("function_call") => {
                let call = function_call(item, &path)?;
                self.call_names.insert(call.id.clone(), call.name.clone());
                self.push_assistant(vec![Part::ToolCall(call)]);
                Ok(())
            }
            Some("function_call_output") => {
                let result = self.function_call_output(item, &path)?;
                match self.messages.last_mut() {
                    Some(last) if self.last_is_results => last.content.push(result),
                    _ => self.messages.push(Message { role: Role::User, content: vec![result], name: None }),
                }
                self.last_is_results = true;
                Ok(())
            }
            Some("reasoning") => {
                let part = reasoning_item(item, &path)?;
                self.push_assistant(part.into_iter().collect());
                Ok(())
            }
            Some("item_reference") => Err(invalid(format!("{path}.type"), STATELESS)),
            Some(_) => Err(not_translatable(format!("{path}.type"))),
        }
    }

    fn push_message_item(&mut self, item: &Map<String, Value>, path: &str) -> Result<()> {
        let role = required_str(item, "role", &format!("{path}.role"))?;
        match role {
            "system" | "developer" => {
                let parts = content(item, path, ContentSide::Input { images: false })?;
                self.system.extend(parts);
            }
            "user" => {
                let parts = content(item, path, ContentSide::Input { images: true })?;
                self.push_message(Role::User, parts);
            }
            "assistant" => {
                let parts = content(item, path, ContentSide::Output)?;
                self.push_assistant(parts);
            }
            other => {
                return Err(invalid(
                    format!("{path}.role"),
                    format!(
                    "Invalid value: '{other}'. Supported values are: 'user', 'assistant', 'system', and 'developer'."
                ),
                ))
            }
        }
        Ok(())
    }

    fn function_call_output(&self, item: &Map<String, Value>, path: &str) -> Result<Part> {
        let call_id = required_str(item, "call_id", &format!("{path}.call_id"))?;
        let output_path = format!("{path}.output");
        let content = match member(item, "output") {
            None => return Err(missing(&output_path)),
            Some(Value::String(s)) => vec![Part::Text(s.clone())],
            Some(Value::Array(parts)) => {
                let mut out = Vec::with_capacity(parts.len());
                for (j, p) in parts.iter().enumerate() {
                    out.push(input_part(p, &format!("{output_path}[{j}]"), true)?);
                }
                out
            }
            Some(v) => return Err(wrong_type(&output_path, "a string or an array", v)),
        };
        let content = content.into_iter().filter(|p| !matches!(p, Part::Text(t) if t.is_empty())).collect();
        Ok(Part::ToolResult(ToolResult {
            call_id: call_id.to_string(),
            name: self.call_names.get(call_id).cloned(),
            content,
            is_error: false,
        }))
    }
}

/// Which content a message may hold: input parts (user, system, developer) or the
/// assistant's earlier output.
#[derive(Clone, Copy)]
enum ContentSide {
    Input { images: bool },
    Output,
}

fn content(item: &Map<String, Value>, path: &str, side: ContentSide) -> Result<Vec<Part>> {
    let cpath = format!("{path}.content");
    let parts = match member(item, "content") {
        None => return Err(missing(&cpath)),
        Some(Value::String(s)) => vec![Part::Text(s.clone())],
        Some(Value::Array(items)) => {
            let mut parts = Vec::with_capacity(items.len());
            for (j, p) in items.iter().enumerate() {
                let ppath = format!("{cpath}[{j}]");
                parts.push(match side {
                    ContentSide::Input { images } => input_part(p, &ppath, images)?,
                    ContentSide::Output => output_part(p, &ppath)?,
                });
            }
            parts
        }
        Some(v) => return Err(wrong_type(&cpath, "a string or an array", v)),
    };
    Ok(parts.into_iter().filter(|p| !matches!(p, Part::Text(t) if t.is_empty())).collect())
}

fn text_of(p: &Map<String, Value>, path: &str) -> Result<Part> {
    Ok(Part::Text(required_str(p, "text", &format!("{path}.text"))?.to_string()))
}

/// `input_text`, `input_image` (by URL or data URL; `file_id` needs OpenAI's file store);
/// `input_file` is refused.
fn input_part(p: &Value, path: &str, images: bool) -> Result<Part> {
    let p = object(p, path)?;
    let tpath = format!("{path}.type");
    match required_str(p, "type", &tpath)? {
        "input_text" => text_of(p, path),
        "input_image" if images => input_image(p, path),
        "input_image" | "input_file" | "input_audio" => Err(not_translatable(tpath)),
        other => Err(invalid(
            tpath,
            format!("Invalid value: '{other}'. Supported values are: 'input_text', 'input_image', and 'input_file'."),
        )),
    }
}

fn input_image(p: &Map<String, Value>, path: &str) -> Result<Part> {
    if member(p, "file_id").is_some() {
        return Err(not_translatable(format!("{path}.file_id")));
    }
    let url_path = format!("{path}.image_url");
    let url = required_str(p, "image_url", &url_path)?;
    let source = match url.strip_prefix("data:") {
        Some(rest) => {
            let (media_type, data) = parse_data_url(rest).ok_or_else(|| {
                invalid(&url_path, "Invalid 'image_url'. Expected a base64-encoded data URL with an image MIME type.")
            })?;
            ImageSource::Base64 { media_type, data }
        }
        None => ImageSource::Url(url.to_string()),
    };
    let detail = opt_str(p, "detail", &format!("{path}.detail"))?.map(str::to_string);
    Ok(Part::Image(Image { source, detail }))
}

/// An assistant message's earlier output: `output_text` (its `annotations` are citations of
/// hosted tools, never produced here, and dropped) or `refusal`, as text.
fn output_part(p: &Value, path: &str) -> Result<Part> {
    let p = object(p, path)?;
    let tpath = format!("{path}.type");
    match required_str(p, "type", &tpath)? {
        // `input_text` in an assistant message is what EasyInputMessage clients send.
        "output_text" | "input_text" => text_of(p, path),
        "refusal" => Ok(Part::Text(required_str(p, "refusal", &format!("{path}.refusal"))?.to_string())),
        other => {
            Err(invalid(tpath, format!("Invalid value: '{other}'. Supported values are: 'output_text' and 'refusal'.")))
        }
    }
}

fn function_call(item: &Map<String, Value>, path: &str) -> Result<ToolCall> {
    Ok(ToolCall {
        id: required_str(item, "call_id", &format!("{path}.call_id"))?.to_string(),
        name: required_str(item, "name", &format!("{path}.name"))?.to_string(),
        arguments: required_str(item, "arguments", &format!("{path}.arguments"))?.to_string(),
        signature: None,
    })
}

/// Prefix of `encrypted_content` for a redacted thinking block (see `encode`): the rest is
/// the provider's opaque data, sent back as such.
pub(super) const REDACTED_PREFIX: &str = "redacted:";

/// A reasoning item given back: its summary text (or `content` reasoning text) with the
/// signature the gateway returned in `encrypted_content`. Without either it carries nothing
/// a provider can use, and is left out.
fn reasoning_item(item: &Map<String, Value>, path: &str) -> Result<Option<Part>> {
    let encrypted = opt_str(item, "encrypted_content", &format!("{path}.encrypted_content"))?;
    if let Some(data) = encrypted.and_then(|e| e.strip_prefix(REDACTED_PREFIX)) {
        return Ok(Some(Part::RedactedThinking { data: data.to_string() }));
    }
    let mut text = String::new();
    for key in ["summary", "content"] {
        let kpath = format!("{path}.{key}");
        let Some(v) = member(item, key) else { continue };
        let parts = v.as_array().ok_or_else(|| wrong_type(&kpath, "an array", v))?;
        for (j, p) in parts.iter().enumerate() {
            let ppath = format!("{kpath}[{j}]");
            let piece = required_str(object(p, &ppath)?, "text", &format!("{ppath}.text"))?;
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(piece);
        }
        if !text.is_empty() {
            break;
        }
    }
    if text.is_empty() && encrypted.is_none() {
        return Ok(None);
    }
    Ok(Some(Part::Thinking { text, signature: encrypted.map(str::to_string) }))
}

/// Function tools, in the flat Responses shape `{type, name, description, parameters, strict}`.
/// `strict` absent leaves the provider's default (OpenAI's own default for Responses is
/// strict; other providers' is not); hosted and custom tools are refused.
fn tools(obj: &Map<String, Value>) -> Result<Vec<Tool>> {
    let Some(v) = member(obj, "tools") else { return Ok(Vec::new()) };
    let items = v.as_array().ok_or_else(|| wrong_type("tools", "an array", v))?;
    let mut out = Vec::with_capacity(items.len());
    for (i, t) in items.iter().enumerate() {
        let path = format!("tools[{i}]");
        let t = object(t, &path)?;
        let tpath = format!("{path}.type");
        if required_str(t, "type", &tpath)? != "function" {
            return Err(not_translatable(tpath));
        }
        let name = required_str(t, "name", &format!("{path}.name"))?;
        if name.is_empty() {
            return Err(missing(&format!("{path}.name")));
        }
        let parameters = match member(t, "parameters") {
            // json!: the IR carries a tool's schema as a `Value`; this is the empty one.
            None => serde_json::json!({"type": "object", "properties": {}}),
            Some(p @ Value::Object(_)) => p.clone(),
            Some(v) => return Err(wrong_type(&format!("{path}.parameters"), "an object", v)),
        };
        out.push(Tool {
            name: name.to_string(),
            description: opt_str(t, "description", &format!("{path}.description"))?.map(str::to_string),
            parameters,
            strict: opt_bool(t, "strict", &format!("{path}.strict"))?,
        });
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
        Value::Object(o) => match opt_str(o, "type", "tool_choice.type")? {
            Some("function") => Ok(Some(ToolChoice::Tool(required_str(o, "name", "tool_choice.name")?.to_string()))),
            Some(_) => Err(not_translatable("tool_choice.type")),
            None => Err(missing("tool_choice.type")),
        },
        v => Err(wrong_type("tool_choice", "a string or an object", v)),
    }
}

/// `text.format` -> the IR response format; `text.verbosity` other than the default
/// `medium` cannot be expressed.
fn text_format(obj: &Map<String, Value>) -> Result<Option<ResponseFormat>> {
    let Some(v) = member(obj, "text") else { return Ok(None) };
    let text = object(v, "text")?;
    for (key, value) in text {
        match key.as_str() {
            "format" => {}
            "verbosity" if value.is_null() || value == "medium" => {}
            "verbosity" => return Err(not_translatable("text.verbosity")),
            other => {
                return Err(invalid(
                    format!("text.{other}"),
                    format!("Unrecognized request argument supplied: text.{other}"),
                ))
            }
        }
    }
    let Some(format) = member(text, "format") else { return Ok(None) };
    let format = object(format, "text.format")?;
    match required_str(format, "type", "text.format.type")? {
        "text" => Ok(Some(ResponseFormat::Text)),
        "json_object" => Ok(Some(ResponseFormat::JsonObject)),
        "json_schema" => {
            let name = required_str(format, "name", "text.format.name")?;
            let schema = match member(format, "schema") {
                Some(s @ Value::Object(_)) => s.clone(),
                None => return Err(missing("text.format.schema")),
                Some(v) => return Err(wrong_type("text.format.schema", "an object", v)),
            };
            let strict = opt_bool(format, "strict", "text.format.strict")?;
            Ok(Some(ResponseFormat::JsonSchema { name: name.to_string(), schema, strict }))
        }
        other => Err(invalid(
            "text.format.type",
            format!("Invalid value: '{other}'. Supported values are: 'text', 'json_object', and 'json_schema'."),
        )),
    }
}

/// `reasoning.effort` -> the IR effort (`none` disables); `summary` (and the deprecated
/// `generate_summary`) are accepted: reasoning text the provider returns always reaches the
/// client as a reasoning item's summary.
fn reasoning(obj: &Map<String, Value>) -> Result<Option<Reasoning>> {
    let Some(v) = member(obj, "reasoning") else { return Ok(None) };
    let r = object(v, "reasoning")?;
    for (key, value) in r {
        let path = format!("reasoning.{key}");
        match key.as_str() {
            "effort" => {}
            "summary" | "generate_summary" => match value {
                Value::Null => {}
                Value::String(s) if matches!(s.as_str(), "auto" | "concise" | "detailed" | "none") => {}
                other => {
                    return Err(invalid(
                        &path,
                        format!(
                            "Invalid value: {other}. Supported values are: 'auto', 'concise', 'detailed', and 'none'."
                        ),
                    ))
                }
            },
            _ => return Err(invalid(&path, format!("Unrecognized request argument supplied: {path}"))),
        }
    }
    match opt_str(r, "effort", "reasoning.effort")? {
        None => Ok(None),
        Some("none") => Ok(Some(Reasoning::Disabled)),
        Some(e @ ("minimal" | "low" | "medium" | "high" | "xhigh")) => Ok(Some(Reasoning::Effort(e.to_string()))),
        Some(other) => Err(invalid(
            "reasoning.effort",
            format!("Invalid value: '{other}'. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', and 'xhigh'."),
        )),
    }
}
