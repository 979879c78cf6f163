//! Provider side: IR -> an OpenAI Chat Completions request body.

use crate::llm::ir::{
    ChatRequest, Document, DocumentSource, Image, ImageSource, Message, Part, Reasoning, ResponseFormat, Role,
    ToolChoice, ToolResult, TranslateError,
};
use crate::llm::openai_chat::wire::{OutRequest, OutStreamOptions};
use base64::Engine;
// json! stays below the top level: messages, tools and formats are `Value`s because their
// shapes vary by content (a string or parts) and tool schemas pass through as given.
use serde_json::{json, Map, Value};

const PROVIDER: &str = "openai";

/// Knobs for OpenAI-compatible servers that lag behind OpenAI's current API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Send the limit as `max_tokens` (deprecated by OpenAI, and refused by its reasoning
    /// models) instead of `max_completion_tokens`; for servers that only know the old name.
    pub legacy_max_tokens: bool,
}

fn unsupported(field: impl Into<String>, detail: impl Into<String>) -> TranslateError {
    TranslateError::Unsupported { field: field.into(), provider: PROVIDER, detail: detail.into() }
}

/// Encodes with [`EncodeOptions::default`] (OpenAI itself).
pub fn encode_request(req: &ChatRequest) -> Result<Vec<u8>, TranslateError> {
    encode_request_with(req, EncodeOptions::default())
}

/// Encodes an IR request for OpenAI Chat Completions.
///
/// - System parts become one leading `system` message (a string for one part, text parts
///   for several).
/// - `ToolResult` parts become `role: tool` messages, placed before the rest of their IR
///   message (OpenAI wants them right after the assistant's `tool_calls`). Images in a tool
///   result cannot go in a tool message (text only): they move to a `user` message that
///   follows the tool messages. `is_error` has no OpenAI field and is not sent (the result
///   text carries the error).
/// - Assistant `Thinking`/`RedactedThinking` parts are omitted: OpenAI's API has no field for
///   earlier reasoning text (the accepted convention; OpenAI-compatible servers such as
///   DeepSeek ask clients not to send `reasoning_content` back either).
/// - A message's `name`, a tool's `strict` and an image's `detail` are sent as OpenAI names
///   them (`name`, `function.strict`, `image_url.detail`).
/// - Streaming always asks for `stream_options.include_usage` (the gateway needs usage).
/// - Prompt caching: `prompt_cache_key` and `prompt_cache_retention` are sent as the client
///   gave them (as the passthrough would); cache breakpoints (`Part::CachePoint`, tool and
///   automatic ones) are not sent: OpenAI caches every prompt prefix of 1024 tokens or more
///   by itself, with no marks.
/// - `Reasoning::BudgetTokens(n)` maps to `reasoning_effort`: n <= 2048 low, <= 8192 medium,
///   more high; `BudgetTokens(0)` and `Disabled` send nothing (the model's default).
///
/// Unsupported: `top_k`, more than 4 stop sequences, images in system or assistant content.
/// `n` is sent (several choices come back as the response's choices).
pub fn encode_request_with(req: &ChatRequest, opts: EncodeOptions) -> Result<Vec<u8>, TranslateError> {
    req.check_anthropic_only(PROVIDER)?;
    if req.top_k.is_some() {
        return Err(unsupported("top_k", "OpenAI Chat Completions has no top_k sampling parameter"));
    }
    if req.stop.len() > 4 {
        return Err(unsupported("stop", "OpenAI accepts at most 4 stop sequences"));
    }
    let (max_tokens, max_completion_tokens) =
        if opts.legacy_max_tokens { (req.max_tokens, None) } else { (None, req.max_tokens) };
    let body = OutRequest {
        model: &req.model,
        messages: messages(req)?,
        max_tokens,
        max_completion_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        stop: (!req.stop.is_empty()).then_some(req.stop.as_slice()),
        seed: req.seed,
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
        n: req.n,
        user: req.user.as_deref(),
        reasoning_effort: reasoning_effort(req.reasoning.as_ref()),
        tools: (!req.tools.is_empty()).then(|| tools(req)),
        tool_choice: req.tool_choice.as_ref().map(tool_choice),
        parallel_tool_calls: req.parallel_tool_calls,
        response_format: req.response_format.as_ref().map(response_format),
        prompt_cache_key: req.cache.key.as_deref(),
        prompt_cache_retention: req.cache.retention.as_deref(),
        stream: req.stream.then_some(true),
        stream_options: req.stream.then_some(OutStreamOptions { include_usage: true }),
    };
    serde_json::to_vec(&body).map_err(|e| unsupported("body", e.to_string()))
}

fn reasoning_effort(r: Option<&Reasoning>) -> Option<String> {
    match r? {
        Reasoning::Effort(e) => Some(e.clone()),
        Reasoning::BudgetTokens(0) | Reasoning::Disabled => None,
        Reasoning::BudgetTokens(n) if *n <= 2048 => Some("low".into()),
        Reasoning::BudgetTokens(n) if *n <= 8192 => Some("medium".into()),
        Reasoning::BudgetTokens(_) => Some("high".into()),
    }
}

fn tools(req: &ChatRequest) -> Value {
    Value::Array(
        req.tools
            .iter()
            .map(|t| {
                let mut f = Map::new();
                f.insert("name".into(), json!(t.name));
                if let Some(d) = &t.description {
                    f.insert("description".into(), json!(d));
                }
                let params = if t.parameters.is_null() {
                    json!({"type": "object", "properties": {}})
                } else {
                    t.parameters.clone()
                };
                f.insert("parameters".into(), params);
                if let Some(strict) = t.strict {
                    f.insert("strict".into(), json!(strict));
                }
                json!({"type": "function", "function": Value::Object(f)})
            })
            .collect(),
    )
}

fn tool_choice(c: &ToolChoice) -> Value {
    match c {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
    }
}

fn response_format(f: &ResponseFormat) -> Value {
    match f {
        ResponseFormat::Text => json!({"type": "text"}),
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ResponseFormat::JsonSchema { name, schema, strict } => {
            let mut js = Map::new();
            js.insert("name".into(), json!(name));
            js.insert("schema".into(), schema.clone());
            if let Some(s) = strict {
                js.insert("strict".into(), json!(s));
            }
            json!({"type": "json_schema", "json_schema": Value::Object(js)})
        }
    }
}

fn image_part(img: &Image) -> Value {
    let url = match &img.source {
        ImageSource::Url(u) => u.clone(),
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
    };
    let mut image_url = Map::new();
    image_url.insert("url".into(), json!(url));
    if let Some(detail) = &img.detail {
        image_url.insert("detail".into(), json!(detail));
    }
    json!({"type": "image_url", "image_url": Value::Object(image_url)})
}

/// A `file` content part with the document inline (`file_data` as a base64 data URL; plain
/// text as `text/plain`). OpenAI needs a file name with inline data: the document's own, else
/// `document.pdf` / `document.txt`. Chat Completions takes no file URL.
fn file_part(doc: &Document, field: &str) -> Result<Value, TranslateError> {
    doc.check_context(field, PROVIDER)?;
    let (media_type, data) = match &doc.source {
        DocumentSource::Base64 { media_type, data } => (media_type.as_str(), data.clone()),
        DocumentSource::Text(text) => ("text/plain", base64::engine::general_purpose::STANDARD.encode(text.as_bytes())),
        DocumentSource::Url(_) => {
            return Err(unsupported(field, "Chat Completions takes files inline or by file id, not by URL"))
        }
    };
    let default_name = if media_type == "text/plain" { "document.txt" } else { "document.pdf" };
    Ok(json!({"type": "file", "file": {
        "filename": doc.name.as_deref().unwrap_or(default_name),
        "file_data": format!("data:{media_type};base64,{data}"),
    }}))
}

/// A string for one text part, an array of text parts otherwise.
fn text_content(texts: Vec<&str>) -> Value {
    match texts.as_slice() {
        [one] => json!(one),
        _ => Value::Array(texts.into_iter().map(|t| json!({"type": "text", "text": t})).collect()),
    }
}

fn messages(req: &ChatRequest) -> Result<Vec<Value>, TranslateError> {
    let mut out = Vec::with_capacity(req.messages.len() + 1);
    if !req.system.is_empty() {
        let mut texts = Vec::with_capacity(req.system.len());
        for (i, p) in req.system.iter().enumerate() {
            match p {
                Part::Text(t) => texts.push(t.as_str()),
                Part::CachePoint(_) => {} // OpenAI caches prompt prefixes automatically
                _ => return Err(unsupported(format!("system[{i}]"), "OpenAI system messages accept text only")),
            }
        }
        out.push(json!({"role": "system", "content": text_content(texts)}));
    }
    for (i, m) in req.messages.iter().enumerate() {
        match m.role {
            Role::User => user_message(m, i, &mut out)?,
            Role::Assistant => out.push(assistant_message(m, i)?),
        }
    }
    Ok(out)
}

fn user_message(m: &Message, i: usize, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let mut parts = Vec::new();
    let mut moved_images = Vec::new();
    for (j, p) in m.content.iter().enumerate() {
        match p {
            Part::Text(t) => parts.push(json!({"type": "text", "text": t})),
            Part::Image(img) => parts.push(image_part(img)),
            Part::Document(doc) => parts.push(file_part(doc, &format!("messages[{i}].content[{j}]"))?),
            Part::AnthropicBlock(_) => {
                return Err(unsupported(format!("messages[{i}].content[{j}]"), "an Anthropic server-tool block"))
            }
            Part::ToolResult(r) => {
                out.push(tool_message(r, &format!("messages[{i}].content[{j}]"), &mut moved_images)?)
            }
            Part::CachePoint(_) => {} // OpenAI caches prompt prefixes automatically
            Part::ToolCall(_) | Part::Thinking { .. } | Part::RedactedThinking { .. } => {
                return Err(unsupported(
                    format!("messages[{i}].content[{j}]"),
                    "a user message can hold only text, images and tool results",
                ))
            }
        }
    }
    moved_images.append(&mut parts);
    let parts = moved_images;
    if parts.is_empty() {
        return Ok(());
    }
    let content = match parts.as_slice() {
        [one] if one.get("type").and_then(Value::as_str) == Some("text") => {
            one.get("text").cloned().unwrap_or_default()
        }
        _ => Value::Array(parts),
    };
    let mut msg = Map::new();
    msg.insert("role".into(), json!("user"));
    msg.insert("content".into(), content);
    if let Some(name) = &m.name {
        msg.insert("name".into(), json!(name));
    }
    out.push(Value::Object(msg));
    Ok(())
}

/// A `tool` message holds text only: images and documents of the result move to the user
/// message after the tool messages.
fn tool_message(r: &ToolResult, field: &str, moved: &mut Vec<Value>) -> Result<Value, TranslateError> {
    let mut texts = Vec::new();
    for (k, p) in r.content.iter().enumerate() {
        match p {
            Part::Text(t) => texts.push(t.as_str()),
            Part::Image(img) => moved.push(image_part(img)),
            Part::Document(doc) => moved.push(file_part(doc, &format!("{field}.content[{k}]"))?),
            Part::CachePoint(_) => {} // OpenAI caches prompt prefixes automatically
            _ => {
                return Err(unsupported(
                    format!("{field}.content[{k}]"),
                    "a tool result can hold only text, images and documents",
                ))
            }
        }
    }
    let content = if texts.is_empty() { json!("") } else { text_content(texts) };
    Ok(json!({"role": "tool", "tool_call_id": r.call_id, "content": content}))
}

fn assistant_message(m: &Message, i: usize) -> Result<Value, TranslateError> {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for (j, p) in m.content.iter().enumerate() {
        match p {
            Part::Text(t) => texts.push(t.as_str()),
            Part::ToolCall(c) => calls.push(json!({
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            })),
            Part::Thinking { .. } | Part::RedactedThinking { .. } | Part::CachePoint(_) => {}
            Part::Image(_) | Part::ToolResult(_) | Part::Document(_) | Part::AnthropicBlock(_) => {
                return Err(unsupported(
                    format!("messages[{i}].content[{j}]"),
                    "OpenAI assistant messages accept text and tool calls only",
                ))
            }
        }
    }
    let mut msg = Map::new();
    msg.insert("role".into(), json!("assistant"));
    let content = if texts.is_empty() {
        if calls.is_empty() {
            json!("")
        } else {
            Value::Null
        }
    } else {
        text_content(texts)
    };
    msg.insert("content".into(), content);
    if let Some(name) = &m.name {
        msg.insert("name".into(), json!(name));
    }
    if !calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(Value::Object(msg))
}
