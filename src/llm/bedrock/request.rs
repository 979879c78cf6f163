//! IR -> Converse request body (the same body serves `Converse` and `ConverseStream`; the
//! model id and the stream choice live in the path, see [`super::upstream_path`]).
//!
//! Mapping:
//! - `system` text parts -> `system: [{text}]` (other part kinds -> Unsupported).
//! - messages -> `messages: [{role, content}]`. Consecutive messages of the same role are
//!   merged into one (Converse rejects two user turns in a row; the IR produces them when an
//!   OpenAI `tool` message is followed by a `user` message). Empty text parts are dropped
//!   (Converse rejects blank text blocks) and so are messages left without content.
//! - `Text` -> `{text}`; `Image(Base64)` -> `{image:{format, source:{bytes}}}` for
//!   png/jpeg/gif/webp; `ToolCall` -> `{toolUse:{toolUseId, name, input}}` (arguments parsed
//!   as JSON, empty = `{}`); `ToolResult` -> `{toolResult:{toolUseId, content:[{text}|{image}],
//!   status}}`; `Thinking` -> `{reasoningContent:{reasoningText:{text, signature}}}`;
//!   `RedactedThinking` -> `{reasoningContent:{redactedContent}}`.
//! - `max_tokens`, `temperature`, `top_p`, `stop` -> `inferenceConfig` (`maxTokens`,
//!   `temperature`, `topP`, `stopSequences`).
//! - `top_k` -> `additionalModelRequestFields`: `{"inferenceConfig":{"topK"}}` for Amazon Nova
//!   models, `{"top_k"}` otherwise (Anthropic, Mistral, ...).
//! - `tools` -> `toolConfig.tools[].toolSpec{name, description, inputSchema:{json}, strict}`
//!   (`strict`: the API reference's `ToolSpecification.strict`, structured-output enforcement
//!   of the tool input);
//!   `tool_choice` Auto/Required/Tool -> `{auto:{}}`/`{any:{}}`/`{tool:{name}}`. Converse has
//!   no "none": `ToolChoice::None` sends no `toolConfig` at all (the model cannot call what it
//!   is not offered), which Converse only allows when the history holds no tool blocks;
//!   otherwise -> Unsupported.
//! - `reasoning`: `BudgetTokens(n)` -> `additionalModelRequestFields.thinking =
//!   {"type":"enabled","budget_tokens":n}` for Anthropic Claude models (else Unsupported);
//!   `Effort(e)` -> `outputConfig.effort` (`minimal` becomes `low`, `none` sends nothing);
//!   `Disabled` -> nothing.
//! - `response_format` JsonSchema -> `outputConfig.textFormat = {type:"json_schema",
//!   structure:{jsonSchema:{schema: <schema as a JSON string>, name}}}`; Text -> nothing.
//! - `Document` -> `{document:{format, name, source:{bytes}|{text}}}` (format from the media
//!   type: pdf, csv, doc, docx, xls, xlsx, html, txt, md; `name` required by Converse: the
//!   client's title or file name reduced to the characters Converse allows, else `document
//!   <i>-<j>`). Document URLs, other media types and a document `context` -> Unsupported.
//! - Prompt caching: a `CachePoint` part -> a `{cachePoint:{type:"default", ttl}}` block
//!   after the block it closes (system, messages; one opening a message goes at the end of the
//!   previous one, one inside a tool result after the `toolResult`); a tool breakpoint -> a
//!   `cachePoint` entry after that tool in `toolConfig.tools`; Anthropic's top-level
//!   (automatic) `cache_control` -> a `cachePoint` at the end of the last message, where
//!   Anthropic puts it. Bedrock refuses cache points for models without prompt caching (its
//!   400 reaches the client).
//! - With stop sequences on a Claude model, `additionalModelResponseFieldPaths:
//!   ["/stop_sequence"]` asks Bedrock to return which sequence matched.
//!
//! Unsupported (400 naming the field): `n` > 1, `response_format` json_object,
//! `seed`, `frequency_penalty`, `presence_penalty`, `parallel_tool_calls: false`, image URLs
//! (Converse takes bytes or S3 locations only), image media types other than the four above,
//! non-text system parts, nested tool calls/results inside a tool result.
//! Ignored as harmless metadata: `user`, `stream_usage` (Bedrock always reports usage),
//! tool-call `signature` (a Gemini-only field), image `detail` `auto`/`high` (`low` is
//! Unsupported, see `Image::check_detail`), message names when each role has one participant
//! (several speakers in one role are Unsupported, see `ChatRequest::check_names`).

use super::wire::{OutConverseRequest, OutInferenceConfig};
use super::PROVIDER;
use crate::llm::ir::{
    CacheControl, ChatRequest, DocumentSource, Image, ImageSource, Part, Reasoning, ResponseFormat, Role, ToolChoice,
    TranslateError,
};
// json! stays for content blocks, tool specs and tool choices: Converse unions with one member
// each (`{"text": ...}`, `{"toolUse": ...}`), one-line literals; a tool's schema passes through.
use serde_json::{json, Map, Value};

fn unsupported(field: &str, detail: impl Into<String>) -> TranslateError {
    TranslateError::Unsupported { field: field.to_owned(), provider: PROVIDER, detail: detail.into() }
}

/// Whether the model id (or inference-profile id / ARN) names an Anthropic Claude model.
pub(crate) fn is_claude(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    m.contains("anthropic.") || m.contains("claude")
}

fn is_nova(model: &str) -> bool {
    model.to_ascii_lowercase().contains("amazon.nova")
}

/// Converse image `format` of a media type.
fn image_format(media_type: &str) -> Option<&'static str> {
    match media_type.trim().to_ascii_lowercase().as_str() {
        "image/png" => Some("png"),
        "image/jpeg" | "image/jpg" => Some("jpeg"),
        "image/gif" => Some("gif"),
        "image/webp" => Some("webp"),
        _ => None,
    }
}

fn image_block(img: &Image, field: &str) -> Result<Value, TranslateError> {
    img.check_detail(field, PROVIDER)?;
    match &img.source {
        ImageSource::Url(_) => Err(unsupported(
            field,
            "Bedrock Converse takes image bytes (base64) or S3 locations, not URLs; send the image as a data URL / base64",
        )),
        ImageSource::Base64 { media_type, data } => {
            let format = image_format(media_type).ok_or_else(|| {
                unsupported(field, format!("image media type {media_type:?} (Converse accepts png, jpeg, gif, webp)"))
            })?;
            Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
        }
    }
}

/// `{"cachePoint": {"type": "default", "ttl": "1h"}}` (CachePointBlock; `ttl` 5m or 1h).
fn cache_point(c: &CacheControl) -> Value {
    let mut point = Map::new();
    point.insert("type".into(), json!("default"));
    if let Some(ttl) = &c.ttl {
        point.insert("ttl".into(), json!(ttl));
    }
    json!({"cachePoint": Value::Object(point)})
}

fn is_cache_point(block: &Value) -> bool {
    block.get("cachePoint").is_some()
}

/// Appends a cache point after the last block, if there is one to close and it is not one.
fn close_with_cache_point(blocks: &mut Vec<Value>, c: &CacheControl) {
    if blocks.last().is_some_and(|b| !is_cache_point(b)) {
        blocks.push(cache_point(c));
    }
}

/// Converse `DocumentBlock.format` of a media type.
fn document_format(media_type: &str) -> Option<&'static str> {
    let essence = media_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    Some(match essence.as_str() {
        "application/pdf" => "pdf",
        "text/csv" => "csv",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "text/html" => "html",
        "text/plain" => "txt",
        "text/markdown" => "md",
        _ => return None,
    })
}

/// Converse requires a document `name` of letters, digits, single spaces, hyphens,
/// parentheses and square brackets (1-200 characters): the client's title or file name with
/// other characters made spaces, or `document N` (N counts the documents in the request).
fn document_name(name: Option<&str>, field: &str) -> String {
    let cleaned: String = name
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '(' | ')' | '[' | ']') { c } else { ' ' })
        .collect();
    let cleaned = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    if cleaned.is_empty() {
        // `messages[2].content[1]` -> "document m2c1": unique within the request.
        let digits: String = field.chars().map(|c| if c.is_ascii_digit() { c } else { ' ' }).collect();
        let at: Vec<&str> = digits.split_whitespace().collect();
        format!("document {}", at.join("-"))
    } else {
        cleaned.chars().take(200).collect()
    }
}

/// Two documents of a request may not share a name in Converse: a repeated name gets " (2)",
/// " (3)"... (characters a document name may have).
fn distinct_document_names<'a>(blocks: impl Iterator<Item = &'a mut Value>) {
    let mut seen: Vec<String> = Vec::new();
    for name in blocks.filter_map(|b| b.get_mut("document")?.get_mut("name")) {
        let Some(base) = name.as_str().map(str::to_string) else { continue };
        let mut unique = base.clone();
        let mut n = 1u32;
        while seen.contains(&unique) {
            n = n.saturating_add(1);
            unique = format!("{base} ({n})");
        }
        *name = Value::String(unique.clone());
        seen.push(unique);
    }
}

fn document_block(doc: &crate::llm::ir::Document, field: &str) -> Result<Value, TranslateError> {
    doc.check_context(field, PROVIDER)?;
    let name = document_name(doc.name.as_deref(), field);
    let (format, source) = match &doc.source {
        DocumentSource::Base64 { media_type, data } => {
            let format = document_format(media_type).ok_or_else(|| {
                unsupported(
                    field,
                    format!("document media type {media_type:?} (Converse takes pdf, csv, doc, docx, xls, xlsx, html, txt, md)"),
                )
            })?;
            (format, json!({"bytes": data}))
        }
        DocumentSource::Text(text) => ("txt", json!({"text": text})),
        DocumentSource::Url(_) => {
            return Err(unsupported(field, "Bedrock Converse takes document bytes or S3 locations, not URLs"))
        }
    };
    Ok(json!({"document": {"format": format, "name": name, "source": source}}))
}

fn tool_input(arguments: &str, field: &str) -> Result<Value, TranslateError> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(arguments).map_err(|e| TranslateError::Invalid {
        field: field.to_owned(),
        message: format!("tool call arguments are not valid JSON: {e}"),
    })
}

fn content_block(part: &Part, field: &str) -> Result<Option<Value>, TranslateError> {
    Ok(Some(match part {
        Part::Text(t) if t.is_empty() => return Ok(None),
        Part::Text(t) => json!({"text": t}),
        Part::Image(src) => image_block(src, field)?,
        Part::ToolCall(call) => json!({"toolUse": {
            "toolUseId": call.id,
            "name": call.name,
            "input": tool_input(&call.arguments, &format!("{field}.arguments"))?,
        }}),
        Part::ToolResult(result) => {
            let mut content = Vec::with_capacity(result.content.len());
            for (k, p) in result.content.iter().enumerate() {
                let f = format!("{field}.content[{k}]");
                match p {
                    Part::Text(t) => content.push(json!({"text": t})),
                    Part::Image(src) => content.push(image_block(src, &f)?),
                    Part::Document(doc) => content.push(document_block(doc, &f)?),
                    Part::CachePoint(_) => {} // after the toolResult, see `messages`
                    _ => return Err(unsupported(&f, "a tool result may only hold text, images and documents")),
                }
            }
            json!({"toolResult": {
                "toolUseId": result.call_id,
                "content": content,
                "status": if result.is_error { "error" } else { "success" },
            }})
        }
        Part::Thinking { text, signature } => {
            let mut rt = Map::new();
            rt.insert("text".into(), json!(text));
            if let Some(sig) = signature {
                rt.insert("signature".into(), json!(sig));
            }
            json!({"reasoningContent": {"reasoningText": rt}})
        }
        Part::RedactedThinking { data } => json!({"reasoningContent": {"redactedContent": data}}),
        Part::CachePoint(c) => cache_point(c),
        Part::Document(doc) => document_block(doc, field)?,
        Part::AnthropicBlock(_) => {
            return Err(unsupported(field, "Anthropic server-tool blocks cannot be sent to Converse"))
        }
    }))
}

fn has_tool_blocks(req: &ChatRequest) -> bool {
    req.messages.iter().flat_map(|m| &m.content).any(|p| matches!(p, Part::ToolCall(_) | Part::ToolResult(_)))
}

fn messages(req: &ChatRequest) -> Result<Vec<Value>, TranslateError> {
    let mut out: Vec<(Role, Vec<Value>)> = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        let mut blocks = Vec::with_capacity(m.content.len());
        for (j, p) in m.content.iter().enumerate() {
            match p {
                // A breakpoint opening a message closes the previous turn.
                Part::CachePoint(c) if blocks.is_empty() => {
                    if let Some((_, previous)) = out.last_mut() {
                        close_with_cache_point(previous, c);
                    }
                }
                Part::CachePoint(c) => close_with_cache_point(&mut blocks, c),
                _ => blocks.extend(content_block(p, &format!("messages[{i}].content[{j}]"))?),
            }
            if let Part::ToolResult(result) = p {
                if let Some(c) = result.content.iter().rev().find_map(|q| match q {
                    Part::CachePoint(c) => Some(c),
                    _ => None,
                }) {
                    close_with_cache_point(&mut blocks, c);
                }
            }
        }
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((role, content)) if *role == m.role => content.extend(blocks),
            _ => out.push((m.role, blocks)),
        }
    }
    if let (Some(c), Some((_, last))) = (&req.cache.automatic, out.last_mut()) {
        close_with_cache_point(last, c);
    }
    distinct_document_names(out.iter_mut().flat_map(|(_, blocks)| blocks.iter_mut()));
    Ok(out
        .into_iter()
        .map(|(role, content)| {
            let role = match role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({"role": role, "content": content})
        })
        .collect())
}

fn system(req: &ChatRequest) -> Result<Vec<Value>, TranslateError> {
    let mut out = Vec::with_capacity(req.system.len());
    for (i, p) in req.system.iter().enumerate() {
        match p {
            Part::Text(t) if t.is_empty() => {}
            Part::Text(t) => out.push(json!({"text": t})),
            Part::CachePoint(c) => close_with_cache_point(&mut out, c),
            _ => return Err(unsupported(&format!("system[{i}]"), "Converse system prompts hold text only")),
        }
    }
    Ok(out)
}

fn tool_spec(t: &crate::llm::ir::Tool) -> Value {
    let schema =
        if t.parameters.is_null() { json!({"type": "object", "properties": {}}) } else { t.parameters.clone() };
    let mut spec = Map::new();
    spec.insert("name".into(), json!(t.name));
    if let Some(d) = t.description.as_deref().filter(|d| !d.is_empty()) {
        spec.insert("description".into(), json!(d));
    }
    spec.insert("inputSchema".into(), json!({"json": schema}));
    if let Some(strict) = t.strict {
        spec.insert("strict".into(), json!(strict));
    }
    json!({"toolSpec": spec})
}

fn tool_config(req: &ChatRequest) -> Result<Option<Value>, TranslateError> {
    if matches!(req.tool_choice, Some(ToolChoice::None)) {
        if has_tool_blocks(req) {
            return Err(unsupported(
                "tool_choice",
                "Converse has no \"none\" tool choice, and tools cannot be withheld from a conversation that already holds tool calls",
            ));
        }
        return Ok(None);
    }
    if req.tools.is_empty() {
        return match &req.tool_choice {
            Some(ToolChoice::Required) | Some(ToolChoice::Tool(_)) => Err(TranslateError::Invalid {
                field: "tool_choice".into(),
                message: "a tool choice that forces a tool call needs tools".into(),
            }),
            _ => Ok(None),
        };
    }
    let mut tools: Vec<Value> = Vec::with_capacity(req.tools.len() + req.cache.tools.len());
    for (i, t) in req.tools.iter().enumerate() {
        tools.push(tool_spec(t));
        if let Some((_, c)) = req.cache.tools.iter().rev().find(|(at, _)| *at == i) {
            tools.push(cache_point(c));
        }
    }
    let mut config = Map::new();
    config.insert("tools".into(), Value::Array(tools));
    match &req.tool_choice {
        None => {}
        Some(ToolChoice::Auto) => {
            config.insert("toolChoice".into(), json!({"auto": {}}));
        }
        Some(ToolChoice::Required) => {
            config.insert("toolChoice".into(), json!({"any": {}}));
        }
        Some(ToolChoice::Tool(name)) => {
            config.insert("toolChoice".into(), json!({"tool": {"name": name}}));
        }
        Some(ToolChoice::None) => {}
    }
    Ok(Some(Value::Object(config)))
}

fn reject_unsupported(req: &ChatRequest) -> Result<(), TranslateError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(unsupported("n", "Bedrock Converse returns a single choice"));
    }
    if req.seed.is_some() {
        return Err(unsupported("seed", "Converse has no seed parameter"));
    }
    if req.frequency_penalty.is_some() {
        return Err(unsupported("frequency_penalty", "Converse has no frequency penalty"));
    }
    if req.presence_penalty.is_some() {
        return Err(unsupported("presence_penalty", "Converse has no presence penalty"));
    }
    if req.parallel_tool_calls == Some(false) {
        return Err(unsupported("parallel_tool_calls", "Converse cannot disable parallel tool calls"));
    }
    if matches!(req.response_format, Some(ResponseFormat::JsonObject)) {
        return Err(unsupported(
            "response_format",
            "Converse has no plain JSON mode; use a json_schema response format",
        ));
    }
    Ok(())
}

/// Encodes the Converse / ConverseStream request body.
pub fn encode_request(req: &ChatRequest) -> Result<Vec<u8>, TranslateError> {
    // Converse has no server tools, MCP connector or containers, Claude models included.
    req.check_anthropic_only(PROVIDER)?;
    reject_unsupported(req)?;
    req.check_names(PROVIDER, |i| format!("messages[{i}]"))?;
    // Messages are checked before the system prompt, as the errors have always been ordered.
    let messages = messages(req)?;
    let system = system(req)?;
    let inference = OutInferenceConfig {
        max_tokens: req.max_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        stop_sequences: (!req.stop.is_empty()).then_some(req.stop.as_slice()),
    };
    let mut body = OutConverseRequest {
        messages,
        system: (!system.is_empty()).then_some(system),
        inference_config: (!inference.is_empty()).then_some(inference),
        tool_config: tool_config(req)?,
        additional_model_request_fields: None,
        additional_model_response_field_paths: None,
        output_config: None,
    };

    // json! stays for `additionalModelRequestFields`: model-specific members Converse hands to
    // the model unchecked (Nova's `inferenceConfig.topK`, Claude's `top_k` and `thinking`).
    let mut additional = Map::new();
    if let Some(k) = req.top_k {
        if is_nova(&req.model) {
            additional.insert("inferenceConfig".into(), json!({"topK": k}));
        } else {
            additional.insert("top_k".into(), json!(k));
        }
    }
    let mut output_config = Map::new();
    match &req.reasoning {
        None | Some(Reasoning::Disabled) => {}
        Some(Reasoning::BudgetTokens(n)) => {
            if !is_claude(&req.model) {
                return Err(unsupported(
                    "reasoning",
                    "a thinking token budget is only translated for Anthropic Claude models on Bedrock",
                ));
            }
            additional.insert("thinking".into(), json!({"type": "enabled", "budget_tokens": n}));
        }
        Some(Reasoning::Effort(e)) if e == "none" => {}
        Some(Reasoning::Effort(e)) => {
            let effort = if e == "minimal" { "low" } else { e.as_str() };
            output_config.insert("effort".into(), json!(effort));
        }
    }
    if let Some(ResponseFormat::JsonSchema { name, schema, .. }) = &req.response_format {
        let mut js = Map::new();
        js.insert("schema".into(), json!(schema.to_string()));
        if !name.is_empty() {
            js.insert("name".into(), json!(name));
        }
        output_config.insert(
            "textFormat".into(),
            json!({"type": "json_schema", "structure": {"jsonSchema": Value::Object(js)}}),
        );
    }
    if !additional.is_empty() {
        body.additional_model_request_fields = Some(additional);
    }
    if !req.stop.is_empty() && is_claude(&req.model) {
        body.additional_model_response_field_paths = Some(["/stop_sequence"]);
    }
    if !output_config.is_empty() {
        body.output_config = Some(output_config);
    }
    serde_json::to_vec(&body).map_err(|e| TranslateError::Invalid {
        field: "request".into(),
        message: format!("cannot serialize the Bedrock request: {e}"),
    })
}
