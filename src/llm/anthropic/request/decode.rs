//! Requests from clients: [`decode_request`] (an Anthropic client's body -> IR).
//!
//! Client-side decoding validates like the Messages API does (field paths in its style,
//! `messages.1.content.0.tool_use_id`). `cache_control` is carried: on a system or content
//! block as a [`Part::CachePoint`] after the block's part (one inside a `tool_result`'s
//! content closes the whole `tool_result`: the nearest point every provider can express);
//! on `tools[i]` and at the top level in [`ChatRequest::cache`]. Accepted but **ignored** on
//! decode: `citations` on text blocks.
//! `document` blocks (base64 PDF, text and URL sources, `title`, `context`) are carried as
//! `Part::Document`. Anthropic-only features are kept as sent, for an Anthropic provider
//! (`ChatRequest::anthropic_only`; other encoders refuse them): `mcp_servers`, `container`
//! and the serving metadata `service_tier`, `context_management`, `inference_geo`, `speed`,
//! `diagnostics` (which other providers ignore); server and Anthropic-defined tools
//! (`tools.N.type` other than `custom`); server-tool, MCP, search-result and container-upload
//! blocks (`Part::AnthropicBlock`).
//! Refused as `Unsupported` (valid Anthropic, but the IR cannot carry them): `file` image and
//! document sources, `content` document sources, document `citations` enabled, block types
//! added to the API after these.
//! Any other unknown top-level field is `Invalid` ("Extra inputs are not permitted"),
//! as the real API answers. A tool's `strict` (strict tool use) is carried as `Tool::strict`.

use crate::llm::anthropic::GATEWAY;
use crate::llm::ir::{
    CacheControl, ChatRequest, Document, DocumentSource, ImageSource, Message, Part, Reasoning, ResponseFormat, Role,
    Tool, ToolCall, ToolChoice, ToolResult, TranslateError,
};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

pub(super) type R<T> = Result<T, TranslateError>;
type Obj = Map<String, Value>;

const KNOWN_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "cache_control",
];
/// Anthropic-only top-level members, carried in `ChatRequest::anthropic_only`.
const ANTHROPIC_ONLY_FIELDS: &[&str] =
    &["mcp_servers", "container", "service_tier", "context_management", "inference_geo", "speed", "diagnostics"];
/// Content blocks of Anthropic's server tools, MCP connector, search results and container
/// uploads, carried as `Part::AnthropicBlock`.
const ANTHROPIC_ONLY_BLOCKS: &[&str] = &[
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "tool_search_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
    "search_result",
    "container_upload",
];
const IMAGE_MEDIA_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

pub(super) fn invalid(field: impl Into<String>, message: impl Into<String>) -> TranslateError {
    TranslateError::Invalid { field: field.into(), message: message.into() }
}

fn not_carried(field: impl Into<String>, detail: impl Into<String>) -> TranslateError {
    TranslateError::Unsupported { field: field.into(), provider: GATEWAY, detail: detail.into() }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn expected(path: &str, what: &str, got: &Value) -> TranslateError {
    invalid(path, format!("Input should be {what}, got {}", type_name(got)))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A present, non-null member of `obj`.
fn member<'a>(obj: &'a Obj, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn req_member<'a>(obj: &'a Obj, key: &str, path: &str) -> R<&'a Value> {
    member(obj, key).ok_or_else(|| invalid(join(path, key), "Field required"))
}

fn as_str<'a>(v: &'a Value, path: &str) -> R<&'a str> {
    v.as_str().ok_or_else(|| expected(path, "a valid string", v))
}

fn as_obj<'a>(v: &'a Value, path: &str) -> R<&'a Obj> {
    v.as_object().ok_or_else(|| expected(path, "a valid dictionary", v))
}

fn as_arr<'a>(v: &'a Value, path: &str) -> R<&'a Vec<Value>> {
    v.as_array().ok_or_else(|| expected(path, "a valid list", v))
}

fn as_u64(v: &Value, path: &str) -> R<u64> {
    v.as_u64().ok_or_else(|| expected(path, "a valid non-negative integer", v))
}

fn opt_str<'a>(obj: &'a Obj, key: &str, path: &str) -> R<Option<&'a str>> {
    member(obj, key).map(|v| as_str(v, &join(path, key))).transpose()
}

fn opt_f64_in(obj: &Obj, key: &str, lo: f64, hi: f64) -> R<Option<f64>> {
    let Some(v) = member(obj, key) else { return Ok(None) };
    let x = v.as_f64().ok_or_else(|| expected(key, "a valid number", v))?;
    if !(lo..=hi).contains(&x) {
        return Err(invalid(key, format!("Input should be between {lo} and {hi}")));
    }
    Ok(Some(x))
}

// ============================================================================= decode (client)

/// Decodes an Anthropic Messages request sent by a client.
pub fn decode_request(body: &[u8]) -> R<ChatRequest> {
    let root: Value = serde_json::from_slice(body).map_err(|e| invalid("body", format!("invalid JSON: {e}")))?;
    let obj = as_obj(&root, "body")?;
    let mut anthropic_only = Vec::new();
    for (key, value) in obj {
        let k = key.as_str();
        if ANTHROPIC_ONLY_FIELDS.contains(&k) {
            if !value.is_null() {
                anthropic_only.push((key.clone(), value.clone()));
            }
            continue;
        }
        if !KNOWN_FIELDS.contains(&k) {
            return Err(invalid(k, "Extra inputs are not permitted"));
        }
    }
    let model = as_str(req_member(obj, "model", "")?, "model")?.to_string();
    let max_tokens = as_u64(req_member(obj, "max_tokens", "")?, "max_tokens")?;
    if max_tokens < 1 {
        return Err(invalid("max_tokens", "Input should be greater than or equal to 1"));
    }
    let mut req = ChatRequest {
        model,
        max_tokens: Some(max_tokens),
        stream_usage: true,
        temperature: opt_f64_in(obj, "temperature", 0.0, 1.0)?,
        top_p: opt_f64_in(obj, "top_p", 0.0, 1.0)?,
        top_k: member(obj, "top_k").map(|v| as_u64(v, "top_k")).transpose()?,
        ..ChatRequest::default()
    };
    req.anthropic_only.members = anthropic_only;
    if let Some(v) = member(obj, "stream") {
        req.stream = v.as_bool().ok_or_else(|| expected("stream", "a valid boolean", v))?;
    }
    if let Some(v) = member(obj, "system") {
        req.system = decode_system(v)?;
    }
    req.cache.automatic = decode_cache_control(obj, "")?;
    if let Some(v) = member(obj, "stop_sequences") {
        for (i, s) in as_arr(v, "stop_sequences")?.iter().enumerate() {
            req.stop.push(as_str(s, &format!("stop_sequences.{i}"))?.to_string());
        }
    }
    if let Some(v) = member(obj, "metadata") {
        let meta = as_obj(v, "metadata")?;
        req.user = opt_str(meta, "user_id", "metadata")?.map(str::to_string);
    }
    req.messages = decode_messages(req_member(obj, "messages", "")?)?;
    check_tool_pairing(&req.messages)?;
    fill_tool_result_names(&mut req.messages);
    if let Some(v) = member(obj, "tools") {
        for (i, t) in as_arr(v, "tools")?.iter().enumerate() {
            let path = format!("tools.{i}");
            let tool = as_obj(t, &path)?;
            if opt_str(tool, "type", &path)?.is_some_and(|kind| kind != "custom") {
                // A server or Anthropic-defined tool: kept whole, its cache_control included.
                decode_cache_control(tool, &path)?;
                req.anthropic_only.tools.push((i, t.clone()));
                continue;
            }
            req.tools.push(decode_tool(t, &path)?);
            if let Some(control) = decode_cache_control(tool, &path)? {
                req.cache.tools.push((req.tools.len().saturating_sub(1), control));
            }
        }
    }
    if let Some(v) = member(obj, "tool_choice") {
        let (choice, parallel) = decode_tool_choice(v)?;
        req.tool_choice = Some(choice);
        req.parallel_tool_calls = parallel;
    }
    let output_config = member(obj, "output_config").map(|v| as_obj(v, "output_config")).transpose()?;
    let effort = match output_config {
        Some(oc) => decode_effort(oc)?,
        None => None,
    };
    if let Some(oc) = output_config {
        req.response_format = decode_format(oc)?;
    }
    req.reasoning = match member(obj, "thinking") {
        Some(v) => Some(decode_thinking(v, max_tokens, effort)?),
        None => effort.map(Reasoning::Effort),
    };
    Ok(req)
}

fn decode_system(v: &Value) -> R<Vec<Part>> {
    match v {
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![Part::Text(s.clone())]),
        Value::Array(blocks) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (i, b) in blocks.iter().enumerate() {
                let path = format!("system.{i}");
                let block = as_obj(b, &path)?;
                let kind = as_str(req_member(block, "type", &path)?, &join(&path, "type"))?;
                if kind != "text" {
                    return Err(invalid(join(&path, "type"), format!("Input tag '{kind}' is not a text block")));
                }
                let text = as_str(req_member(block, "text", &path)?, &join(&path, "text"))?;
                parts.push(Part::Text(text.to_string()));
                parts.extend(decode_cache_control(block, &path)?.map(Part::CachePoint));
            }
            Ok(parts)
        }
        other => Err(expected("system", "a valid string or a list of text blocks", other)),
    }
}

fn decode_messages(v: &Value) -> R<Vec<Message>> {
    let list = as_arr(v, "messages")?;
    // An empty list is checked after the prompt layer (`dialect::require_messages`).
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let path = format!("messages.{i}");
        let msg = as_obj(m, &path)?;
        let role = match as_str(req_member(msg, "role", &path)?, &join(&path, "role"))? {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(invalid(
                    join(&path, "role"),
                    format!("Input should be 'user' or 'assistant', got '{other}'"),
                ))
            }
        };
        let content = decode_content(req_member(msg, "content", &path)?, &join(&path, "content"), role)?;
        let is_final_assistant = role == Role::Assistant && i + 1 == list.len();
        if content.is_empty() && !is_final_assistant {
            let who = if role == Role::User { "user" } else { "assistant" };
            return Err(invalid(
                &path,
                format!(
                    "all messages must have non-empty content except for the optional final assistant \
                     message ({who} message)"
                ),
            ));
        }
        out.push(Message { role, content, name: None });
    }
    Ok(out)
}

fn decode_content(v: &Value, path: &str, role: Role) -> R<Vec<Part>> {
    let blocks = match v {
        Value::String(s) if s.is_empty() => return Ok(Vec::new()),
        Value::String(s) => return Ok(vec![Part::Text(s.clone())]),
        Value::Array(blocks) => blocks,
        other => return Err(expected(path, "a valid string or a list of content blocks", other)),
    };
    let mut parts = Vec::with_capacity(blocks.len());
    for (j, b) in blocks.iter().enumerate() {
        let block_path = format!("{path}.{j}");
        let mut part = decode_block(b, &block_path, role)?;
        let nested = take_nested_cache_point(&mut part);
        parts.push(part);
        match (as_obj(b, &block_path).and_then(|block| decode_cache_control(block, &block_path))?, nested) {
            (Some(control), _) | (None, Some(control)) => parts.push(Part::CachePoint(control)),
            (None, None) => {}
        }
    }
    Ok(parts)
}

fn decode_block(v: &Value, path: &str, role: Role) -> R<Part> {
    let block = as_obj(v, path)?;
    let type_path = join(path, "type");
    let kind = as_str(req_member(block, "type", path)?, &type_path)?;
    let only = |want: Role, what: &str| -> R<()> {
        if role == want {
            Ok(())
        } else {
            Err(invalid(type_path.clone(), format!("`{what}` blocks are only allowed in {} messages", role_name(want))))
        }
    };
    let text_of = |key: &str| -> R<String> { Ok(as_str(req_member(block, key, path)?, &join(path, key))?.to_string()) };
    match kind {
        "text" => Ok(Part::Text(text_of("text")?)),
        "image" => Ok(Part::Image(decode_image(req_member(block, "source", path)?, &join(path, "source"))?.into())),
        "tool_use" => {
            only(Role::Assistant, "tool_use")?;
            let input = as_obj(req_member(block, "input", path)?, &join(path, "input"))?;
            Ok(Part::ToolCall(ToolCall {
                id: text_of("id")?,
                name: text_of("name")?,
                arguments: Value::Object(input.clone()).to_string(),
                signature: None,
            }))
        }
        "tool_result" => {
            only(Role::User, "tool_result")?;
            let content = match member(block, "content") {
                None => Vec::new(),
                Some(Value::String(s)) if s.is_empty() => Vec::new(),
                Some(Value::String(s)) => vec![Part::Text(s.clone())],
                Some(Value::Array(items)) => {
                    let mut parts = Vec::with_capacity(items.len());
                    for (k, item) in items.iter().enumerate() {
                        let p = format!("{path}.content.{k}");
                        let cache = as_obj(item, &p).and_then(|b| decode_cache_control(b, &p))?;
                        let kind = as_obj(item, &p)?.get("type").and_then(Value::as_str);
                        let allowed = matches!(kind, Some("text" | "image" | "document" | "search_result"));
                        match decode_block(item, &p, role)? {
                            part @ (Part::Text(_) | Part::Image(_) | Part::Document(_) | Part::AnthropicBlock(_))
                                if allowed =>
                            {
                                parts.push(part);
                                // Hoisted by `take_nested_cache_point` to after the tool result.
                                parts.extend(cache.map(Part::CachePoint));
                            }
                            _ => {
                                return Err(invalid(
                                    join(&p, "type"),
                                    "Input tag does not match any of the expected tags: 'text', 'image', 'search_result', 'document'",
                                ))
                            }
                        }
                    }
                    parts
                }
                Some(other) => return Err(expected(&join(path, "content"), "a valid string or list", other)),
            };
            let is_error = match member(block, "is_error") {
                None => false,
                Some(v) => v.as_bool().ok_or_else(|| expected(&join(path, "is_error"), "a valid boolean", v))?,
            };
            Ok(Part::ToolResult(ToolResult { call_id: text_of("tool_use_id")?, name: None, content, is_error }))
        }
        "thinking" | "redacted_thinking" if member(block, "cache_control").is_some() => Err(invalid(
            join(path, "cache_control"),
            "thinking blocks cannot be marked with cache_control; they are cached as part of the turn that follows",
        )),
        "thinking" => {
            only(Role::Assistant, "thinking")?;
            let signature = text_of("signature")?;
            Ok(Part::Thinking { text: text_of("thinking")?, signature: Some(signature).filter(|s| !s.is_empty()) })
        }
        "redacted_thinking" => {
            only(Role::Assistant, "redacted_thinking")?;
            Ok(Part::RedactedThinking { data: text_of("data")? })
        }
        "document" => {
            only(Role::User, "document")?;
            Ok(Part::Document(decode_document(block, path)?))
        }
        kind if ANTHROPIC_ONLY_BLOCKS.contains(&kind) => {
            // Its cache_control becomes the CachePoint after it (`decode_content`).
            let mut raw = block.clone();
            raw.remove("cache_control");
            Ok(Part::AnthropicBlock(Value::Object(raw)))
        }
        other => Err(not_carried(type_path, format!("content blocks of type `{other}` cannot be translated"))),
    }
}

/// The `cache_control` member of a block, tool or request: `{"type": "ephemeral"}` with an
/// optional `ttl` of `5m` or `1h`, as the Messages API takes it.
fn decode_cache_control(obj: &Obj, path: &str) -> R<Option<CacheControl>> {
    let Some(v) = member(obj, "cache_control") else { return Ok(None) };
    let path = join(path, "cache_control");
    let cc = as_obj(v, &path)?;
    let kind = as_str(req_member(cc, "type", &path)?, &join(&path, "type"))?;
    if kind != "ephemeral" {
        return Err(invalid(
            join(&path, "type"),
            format!("Input tag '{kind}' does not match the expected tag 'ephemeral'"),
        ));
    }
    let ttl = opt_str(cc, "ttl", &path)?;
    if let Some(t) = ttl.filter(|t| !matches!(*t, "5m" | "1h")) {
        return Err(invalid(join(&path, "ttl"), format!("Input should be '5m' or '1h', got '{t}'")));
    }
    Ok(Some(CacheControl { ttl: ttl.map(str::to_string) }))
}

/// A breakpoint set inside a tool result's content, taken out of it: it closes the whole tool
/// result (Converse has no cache point inside a tool result, and the cached prefix then ends a
/// few blocks later at most, on content that is in every later request too).
fn take_nested_cache_point(part: &mut Part) -> Option<CacheControl> {
    let Part::ToolResult(result) = part else { return None };
    let mut last = None;
    result.content.retain(|p| match p {
        Part::CachePoint(c) => {
            last = Some(c.clone());
            false
        }
        _ => true,
    });
    last
}

pub(super) fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

fn decode_image(v: &Value, path: &str) -> R<ImageSource> {
    let src = as_obj(v, path)?;
    let kind = as_str(req_member(src, "type", path)?, &join(path, "type"))?;
    match kind {
        "base64" => {
            let media_type = as_str(req_member(src, "media_type", path)?, &join(path, "media_type"))?;
            if !IMAGE_MEDIA_TYPES.contains(&media_type) {
                return Err(invalid(
                    join(path, "media_type"),
                    "Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
                ));
            }
            let data = as_str(req_member(src, "data", path)?, &join(path, "data"))?;
            Ok(ImageSource::Base64 { media_type: media_type.to_string(), data: data.to_string() })
        }
        "url" => Ok(ImageSource::Url(as_str(req_member(src, "url", path)?, &join(path, "url"))?.to_string())),
        other => Err(not_carried(join(path, "type"), format!("image sources of type `{other}` cannot be translated"))),
    }
}

/// A `document` block: base64 PDF, plain-text or URL source, `title`, `context`. Citations
/// (`citations.enabled: true`) come back as citation blocks the IR has no place for, and
/// Files API (`file`) and custom-content (`content`) sources are Anthropic's own: refused.
fn decode_document(block: &Obj, path: &str) -> R<Document> {
    let src_path = join(path, "source");
    let src = as_obj(req_member(block, "source", path)?, &src_path)?;
    let kind = as_str(req_member(src, "type", &src_path)?, &join(&src_path, "type"))?;
    let media_type = |want: &str| -> R<()> {
        let got = as_str(req_member(src, "media_type", &src_path)?, &join(&src_path, "media_type"))?;
        if got == want {
            Ok(())
        } else {
            Err(invalid(join(&src_path, "media_type"), format!("Input should be '{want}'")))
        }
    };
    let data =
        || -> R<String> { Ok(as_str(req_member(src, "data", &src_path)?, &join(&src_path, "data"))?.to_string()) };
    let source = match kind {
        "base64" => {
            media_type("application/pdf")?;
            DocumentSource::Base64 { media_type: "application/pdf".to_string(), data: data()? }
        }
        "text" => {
            media_type("text/plain")?;
            DocumentSource::Text(data()?)
        }
        "url" => DocumentSource::Url(as_str(req_member(src, "url", &src_path)?, &join(&src_path, "url"))?.to_string()),
        other => {
            return Err(not_carried(
                join(&src_path, "type"),
                format!(
                "document sources of type `{other}` cannot be translated; send the document as base64, text or a URL"
            ),
            ))
        }
    };
    if let Some(c) = member(block, "citations") {
        let c_path = join(path, "citations");
        let enabled = member(as_obj(c, &c_path)?, "enabled");
        if let Some(e) = enabled {
            if e.as_bool().ok_or_else(|| expected(&join(&c_path, "enabled"), "a valid boolean", e))? {
                return Err(not_carried(c_path, "citations cannot be translated: answers have no place for them"));
            }
        }
    }
    Ok(Document {
        source,
        name: opt_str(block, "title", path)?.map(str::to_string),
        context: opt_str(block, "context", path)?.map(str::to_string),
    })
}

fn decode_tool(v: &Value, path: &str) -> R<Tool> {
    let tool = as_obj(v, path)?;
    let name = as_str(req_member(tool, "name", path)?, &join(path, "name"))?;
    if name.is_empty() || name.len() > 128 {
        return Err(invalid(join(path, "name"), "String should have between 1 and 128 characters"));
    }
    let schema = req_member(tool, "input_schema", path)?;
    as_obj(schema, &join(path, "input_schema"))?;
    let strict = match tool.get("strict") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(invalid(join(path, "strict"), "Input should be a valid boolean")),
    };
    Ok(Tool {
        name: name.to_string(),
        description: opt_str(tool, "description", path)?.map(str::to_string),
        parameters: schema.clone(),
        strict,
    })
}

fn decode_tool_choice(v: &Value) -> R<(ToolChoice, Option<bool>)> {
    let tc = as_obj(v, "tool_choice")?;
    let kind = as_str(req_member(tc, "type", "tool_choice")?, "tool_choice.type")?;
    let choice = match kind {
        "auto" => ToolChoice::Auto,
        "any" => ToolChoice::Required,
        "none" => ToolChoice::None,
        "tool" => ToolChoice::Tool(as_str(req_member(tc, "name", "tool_choice")?, "tool_choice.name")?.to_string()),
        other => {
            return Err(invalid(
                "tool_choice.type",
                format!("Input tag '{other}' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"),
            ))
        }
    };
    let parallel = match member(tc, "disable_parallel_tool_use") {
        None => None,
        Some(v) => {
            Some(!v.as_bool().ok_or_else(|| expected("tool_choice.disable_parallel_tool_use", "a valid boolean", v))?)
        }
    };
    Ok((choice, parallel))
}

fn decode_effort(oc: &Obj) -> R<Option<String>> {
    let Some(e) = opt_str(oc, "effort", "output_config")? else { return Ok(None) };
    if !matches!(e, "low" | "medium" | "high" | "xhigh" | "max") {
        return Err(invalid("output_config.effort", "Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"));
    }
    Ok(Some(e.to_string()))
}

fn decode_format(oc: &Obj) -> R<Option<ResponseFormat>> {
    let Some(v) = member(oc, "format") else { return Ok(None) };
    let f = as_obj(v, "output_config.format")?;
    let kind = as_str(req_member(f, "type", "output_config.format")?, "output_config.format.type")?;
    if kind != "json_schema" {
        return Err(invalid("output_config.format.type", format!("Input tag '{kind}' is not 'json_schema'")));
    }
    let schema = req_member(f, "schema", "output_config.format")?;
    as_obj(schema, "output_config.format.schema")?;
    Ok(Some(ResponseFormat::JsonSchema { name: "output".to_string(), schema: schema.clone(), strict: None }))
}

fn decode_thinking(v: &Value, max_tokens: u64, effort: Option<String>) -> R<Reasoning> {
    let th = as_obj(v, "thinking")?;
    match as_str(req_member(th, "type", "thinking")?, "thinking.type")? {
        "enabled" => {
            let budget = as_u64(req_member(th, "budget_tokens", "thinking")?, "thinking.budget_tokens")?;
            if budget < 1024 {
                return Err(invalid("thinking.budget_tokens", "Input should be greater than or equal to 1024"));
            }
            if budget >= max_tokens {
                return Err(invalid("max_tokens", "`max_tokens` must be greater than `thinking.budget_tokens`"));
            }
            Ok(Reasoning::BudgetTokens(budget))
        }
        "disabled" => Ok(Reasoning::Disabled),
        "adaptive" => Ok(Reasoning::Effort(effort.unwrap_or_else(|| "high".to_string()))),
        other => Err(invalid(
            "thinking.type",
            format!("Input tag '{other}' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'"),
        )),
    }
}

/// The API's pairing rules, over turns (consecutive same-role messages form one turn):
/// every `tool_result` answers a `tool_use` of the previous assistant turn, and every
/// `tool_use` not in the last turn is answered in the next user turn.
fn check_tool_pairing(messages: &[Message]) -> R<()> {
    // (role, indexes of the turn's messages)
    let mut turns: Vec<(Role, Vec<usize>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        match turns.last_mut() {
            Some((role, idx)) if *role == m.role => idx.push(i),
            _ => turns.push((m.role, vec![i])),
        }
    }
    let calls_of = |idx: &[usize]| -> Vec<(usize, String)> {
        idx.iter()
            .flat_map(|&i| messages.get(i).into_iter().flat_map(move |m| m.content.iter().map(move |p| (i, p))))
            .filter_map(|(i, p)| match p {
                Part::ToolCall(c) => Some((i, c.id.clone())),
                _ => None,
            })
            .collect()
    };
    let mut prev_calls: Vec<(usize, String)> = Vec::new();
    for (role, idx) in &turns {
        match role {
            Role::Assistant => prev_calls = calls_of(idx),
            Role::User => {
                let ids: HashSet<&str> = prev_calls.iter().map(|(_, id)| id.as_str()).collect();
                let mut answered: HashSet<&str> = HashSet::new();
                for &i in idx {
                    let Some(m) = messages.get(i) else { continue };
                    for (j, p) in m.content.iter().enumerate() {
                        if let Part::ToolResult(r) = p {
                            if !ids.contains(r.call_id.as_str()) {
                                return Err(invalid(
                                    format!("messages.{i}.content.{j}"),
                                    format!(
                                        "unexpected `tool_use_id` found in `tool_result` blocks: {}. Each \
                                         `tool_result` block must have a corresponding `tool_use` block in the \
                                         previous message.",
                                        r.call_id
                                    ),
                                ));
                            }
                            answered.insert(r.call_id.as_str());
                        }
                    }
                }
                let missing: Vec<&(usize, String)> =
                    prev_calls.iter().filter(|(_, id)| !answered.contains(id.as_str())).collect();
                if let Some((i, _)) = missing.first() {
                    let list: Vec<&str> = missing.iter().map(|(_, id)| id.as_str()).collect();
                    return Err(invalid(
                        format!("messages.{i}"),
                        format!(
                            "`tool_use` ids were found without `tool_result` blocks immediately after: {}. Each \
                             `tool_use` block must have a corresponding `tool_result` block in the next message.",
                            list.join(", ")
                        ),
                    ));
                }
                prev_calls.clear();
            }
        }
    }
    Ok(())
}

fn fill_tool_result_names(messages: &mut [Message]) {
    let mut names: HashMap<String, String> = HashMap::new();
    for m in messages.iter_mut() {
        for p in m.content.iter_mut() {
            match p {
                Part::ToolCall(c) => {
                    names.insert(c.id.clone(), c.name.clone());
                }
                Part::ToolResult(r) if r.name.is_none() => r.name = names.get(&r.call_id).cloned(),
                _ => {}
            }
        }
    }
}
