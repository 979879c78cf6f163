//! IR -> Gemini `GenerateContentRequest`.
//!
//! Mapping decisions:
//! - Messages become `contents` with role `user` / `model`. Consecutive messages of the same
//!   role are merged into one content: Gemini requires all `functionResponse` parts answering
//!   one model turn to sit in a single content, and OpenAI clients send one `tool` message
//!   per result. Empty text parts and messages left without parts are skipped (Gemini
//!   rejects empty `text` and empty `parts`).
//! - `system` -> `systemInstruction.parts` (text only).
//! - Image `detail` (OpenAI) -> `generationConfig.mediaResolution` (low -> LOW, high -> HIGH,
//!   auto -> nothing), one level per request: different levels in one request are
//!   `Unsupported`.
//! - Images: base64 -> `inlineData`; a `data:` URL -> `inlineData`; an `http(s)://` or
//!   `gs://` URL -> `fileData{fileUri, mimeType?}` (the Gemini API fetches public and
//!   signed HTTPS URLs itself since January 2026; the MIME type is guessed from the file
//!   extension and omitted when unknown). Any other URL scheme is `Unsupported`.
//! - Tool calls -> `functionCall{name, args}`; the arguments text must be a JSON object
//!   (empty text counts as `{}`), else `Invalid`. `ToolCall.signature` -> the part's
//!   `thoughtSignature`. A thinking part with empty text and a signature directly before a
//!   tool call without one (the shape our stream decoder produces) lends the signature to
//!   that call. In the current turn (the model turns after the last user message that is
//!   not only tool results), a model turn whose function calls carry no signature at all
//!   gets Google's documented placeholder `skip_thought_signature_validator` on its first
//!   call: Gemini 3 rejects signature-less calls there, and a client that cannot carry
//!   signatures (OpenAI Chat) would otherwise be unable to finish a tool loop.
//! - Tool results -> `functionResponse{name, response}`; `ToolResult.name` is required. The
//!   text parts are joined; text that parses as a JSON object is sent as the object itself,
//!   other text as `{"output": text}` (the key Google's docs suggest), and an error result as
//!   `{"error": <object or text>}`. Images inside tool results are `Unsupported`.
//! - Thinking -> a `thought: true` text part with its `thoughtSignature`; a thinking part with
//!   empty text and a signature -> `{"text": "", "thoughtSignature": ..}` (what Gemini itself
//!   streams). Redacted thinking is `Unsupported`.
//! - Tools -> one `tools[{functionDeclarations}]` entry, the JSON schema passed whole as
//!   `parametersJsonSchema` (full JSON Schema, no conversion to the OpenAPI subset of
//!   `parameters`); only a top-level `$schema` (metadata) is removed. A tool with
//!   `strict: true` is `Unsupported` (a function declaration has no strict flag; `false` is
//!   the default and is accepted).
//! - `tool_choice` -> `toolConfig.functionCallingConfig.mode` AUTO / NONE / ANY, a named tool
//!   -> ANY with `allowedFunctionNames: [name]`. `parallel_tool_calls: false` is
//!   `Unsupported` (Gemini cannot be limited to one call per turn); `true` is the default.
//! - `generationConfig`: temperature, topP, topK, maxOutputTokens, stopSequences (at most 5),
//!   seed, presencePenalty, frequencyPenalty; `n` -> candidateCount (the candidates come back
//!   as the response's choices). JSON object mode ->
//!   `responseMimeType: application/json`; a JSON schema -> also `responseJsonSchema` (the
//!   schema's name and strictness have no Gemini equivalent; Gemini always follows a given
//!   schema).
//! - Reasoning: a token budget -> `thinkingConfig{thinkingBudget, includeThoughts: true}`;
//!   disabled -> `thinkingBudget: 0`; an effort (minimal/low/medium/high) ->
//!   `thinkingLevel` for Gemini 3+ models, and for `gemini-1*`/`gemini-2*` models (which only
//!   know budgets) the budgets of Google's OpenAI compatibility layer (1024 / 1024 / 8192 /
//!   24576). Other effort values are `Unsupported`.
//! - Documents -> `inlineData` (PDF, other media types as given, plain text as `text/plain`
//!   bytes) or `fileData` by URL (`application/pdf`); a document `context` is `Unsupported`,
//!   its name is not sent (the Gemini API's `Blob` has no name).
//! - Prompt-cache breakpoints are not sent: Gemini 2.5+ caches implicitly, and its explicit
//!   cache is a `cachedContents` resource a request cannot create.
//! - Ignored: `stream` (the path decides), `stream_usage` (Gemini always reports usage),
//!   `user` (end-user id, metadata only), message names when each role has one participant
//!   (several speakers in one role are `Unsupported`, see `ChatRequest::check_names`).

use super::wire::{
    Blob, Content, FileData, FunctionCallingConfig, FunctionDeclaration, FunctionResponse, GenerationConfig,
    OutFunctionCall, OutPart, Request, SystemInstruction, ThinkingConfig, ToolConfig, ToolSet,
};
use super::PROVIDER;
use crate::llm::ir::{
    ChatRequest, Document, DocumentSource, Image, ImageSource, Message, Part, Reasoning, ResponseFormat, Role,
    ToolCall, ToolChoice, ToolResult, TranslateError,
};
use base64::Engine;
use serde_json::{Map, Value};

/// Google's documented placeholder for function calls whose real signature is unknown.
pub const PLACEHOLDER_SIGNATURE: &str = "skip_thought_signature_validator";

/// The most stop sequences Gemini accepts.
const MAX_STOP_SEQUENCES: usize = 5;

/// Encodes the request body (the model and the stream flag travel in the path).
pub fn encode_request(req: &ChatRequest) -> Result<Vec<u8>, TranslateError> {
    req.check_anthropic_only(PROVIDER)?;
    req.check_names(PROVIDER, |i| format!("messages[{i}]"))?;
    let wire = Request {
        contents: encode_contents(&req.messages)?,
        system_instruction: encode_system(&req.system)?,
        tools: encode_tools(req)?,
        tool_config: encode_tool_choice(req)?,
        generation_config: encode_generation_config(req)?,
    };
    serde_json::to_vec(&wire).map_err(|e| invalid("request", format!("cannot serialize the request: {e}")))
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> TranslateError {
    TranslateError::Invalid { field: field.into(), message: message.into() }
}

fn unsupported(field: impl Into<String>, detail: impl Into<String>) -> TranslateError {
    TranslateError::Unsupported { field: field.into(), provider: PROVIDER, detail: detail.into() }
}

fn text_part(text: String) -> OutPart {
    OutPart { text: Some(text), ..OutPart::default() }
}

// ----------------------------------------------------------------------------- contents

fn encode_contents(messages: &[Message]) -> Result<Vec<Content>, TranslateError> {
    let current_turn_start = messages
        .iter()
        .rposition(|m| m.role == Role::User && m.content.iter().any(|p| !matches!(p, Part::ToolResult(_))))
        .unwrap_or(0);
    let mut contents: Vec<Content> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let mut parts = encode_message_parts(i, message)?;
        if message.role == Role::Assistant && i >= current_turn_start {
            add_placeholder_signature(&mut parts);
        }
        if parts.is_empty() {
            continue;
        }
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "model",
        };
        match contents.last_mut() {
            Some(last) if last.role == role => last.parts.append(&mut parts),
            _ => contents.push(Content { role, parts }),
        }
    }
    if contents.is_empty() {
        return Err(invalid("messages", "at least one message with content is required"));
    }
    Ok(contents)
}

/// A model turn with function calls none of which carries a signature: give the first one
/// Google's placeholder.
fn add_placeholder_signature(parts: &mut [OutPart]) {
    let calls = || parts.iter().filter(|p| p.function_call.is_some());
    if calls().next().is_none() || calls().any(|p| p.thought_signature.is_some()) {
        return;
    }
    if let Some(first) = parts.iter_mut().find(|p| p.function_call.is_some()) {
        first.thought_signature = Some(PLACEHOLDER_SIGNATURE.to_string());
    }
}

fn encode_message_parts(i: usize, message: &Message) -> Result<Vec<OutPart>, TranslateError> {
    let mut out: Vec<OutPart> = Vec::with_capacity(message.content.len());
    // A signature-only thinking part waiting to be lent to the tool call right after it.
    let mut pending_signature: Option<String> = None;
    for (j, part) in message.content.iter().enumerate() {
        let field = format!("messages[{i}].content[{j}]");
        if matches!(part, Part::CachePoint(_)) {
            // Gemini caches implicitly (2.5 and later); its explicit cache is a separate
            // `cachedContents` resource, not a mark in the prompt (README, provider matrix).
            continue;
        }
        if let Some(sig) = pending_signature.take() {
            match part {
                Part::ToolCall(call) if call.signature.is_none() => {
                    let mut encoded = encode_tool_call(&field, message.role, call)?;
                    encoded.thought_signature = Some(sig);
                    out.push(encoded);
                    continue;
                }
                _ => {
                    out.push(OutPart { text: Some(String::new()), thought_signature: Some(sig), ..OutPart::default() })
                }
            }
        }
        match part {
            Part::Text(text) => {
                if !text.is_empty() {
                    out.push(text_part(text.clone()));
                }
            }
            Part::Image(image) => out.push(encode_image(&field, image)?),
            Part::Document(doc) => out.push(encode_document(&field, doc)?),
            Part::AnthropicBlock(_) => {
                return Err(unsupported(field, "Anthropic server-tool blocks cannot be sent to Gemini"))
            }
            Part::ToolCall(call) => out.push(encode_tool_call(&field, message.role, call)?),
            Part::ToolResult(result) => out.push(encode_tool_result(&field, message.role, result)?),
            Part::Thinking { text, signature } => match (text.is_empty(), signature) {
                (true, Some(sig)) => pending_signature = Some(sig.clone()),
                (true, None) => {}
                (false, sig) => out.push(OutPart {
                    text: Some(text.clone()),
                    thought: Some(true),
                    thought_signature: sig.clone(),
                    ..OutPart::default()
                }),
            },
            Part::RedactedThinking { .. } => {
                return Err(unsupported(field, "redacted thinking blocks cannot be sent to Gemini"));
            }
            Part::CachePoint(_) => {}
        }
    }
    if let Some(sig) = pending_signature {
        out.push(OutPart { text: Some(String::new()), thought_signature: Some(sig), ..OutPart::default() });
    }
    Ok(out)
}

fn encode_tool_call(field: &str, role: Role, call: &ToolCall) -> Result<OutPart, TranslateError> {
    if role != Role::Assistant {
        return Err(invalid(field, "tool calls may only appear in assistant messages"));
    }
    let args = parse_arguments(&call.arguments)
        .ok_or_else(|| invalid(format!("{field}.arguments"), "tool call arguments must be a JSON object"))?;
    Ok(OutPart {
        function_call: Some(OutFunctionCall { name: call.name.clone(), args }),
        thought_signature: call.signature.clone(),
        ..OutPart::default()
    })
}

fn parse_arguments(text: &str) -> Option<Map<String, Value>> {
    if text.trim().is_empty() {
        return Some(Map::new());
    }
    match serde_json::from_str::<Value>(text).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn encode_tool_result(field: &str, role: Role, result: &ToolResult) -> Result<OutPart, TranslateError> {
    if role != Role::User {
        return Err(invalid(field, "tool results may only appear in user messages"));
    }
    let name = result
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid(format!("{field}.name"), "Gemini needs the function name of every tool result"))?;
    let mut texts: Vec<&str> = Vec::new();
    for (k, part) in result.content.iter().enumerate() {
        match part {
            Part::Text(text) => texts.push(text),
            Part::CachePoint(_) => {} // implicit caching, see `encode_parts`
            Part::Image(_) => {
                return Err(unsupported(
                    format!("{field}.content[{k}]"),
                    "images in tool results cannot be sent to Gemini",
                ));
            }
            Part::Document(_) | Part::AnthropicBlock(_) => {
                return Err(unsupported(
                    format!("{field}.content[{k}]"),
                    "a function response holds JSON only: documents and search results cannot be sent to Gemini in tool results",
                ));
            }
            _ => return Err(invalid(format!("{field}.content[{k}]"), "tool results may only contain text and images")),
        }
    }
    let text = texts.join("\n");
    let parsed = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    let response = match (result.is_error, parsed) {
        (false, Some(map)) => map,
        (false, None) => Map::from_iter([("output".to_string(), Value::String(text))]),
        (true, Some(map)) => Map::from_iter([("error".to_string(), Value::Object(map))]),
        (true, None) => Map::from_iter([("error".to_string(), Value::String(text))]),
    };
    Ok(OutPart { function_response: Some(FunctionResponse { name, response }), ..OutPart::default() })
}

fn encode_image(field: &str, image: &Image) -> Result<OutPart, TranslateError> {
    match &image.source {
        ImageSource::Base64 { media_type, data } => Ok(OutPart {
            inline_data: Some(Blob { mime_type: media_type.clone(), data: data.clone() }),
            ..OutPart::default()
        }),
        ImageSource::Url(url) => {
            if let Some(rest) = strip_prefix_ignore_case(url, "data:") {
                let (meta, data) =
                    rest.split_once(',').ok_or_else(|| invalid(format!("{field}.image_url"), "malformed data URL"))?;
                let mime = meta
                    .strip_suffix(";base64")
                    .ok_or_else(|| unsupported(format!("{field}.image_url"), "only base64 data URLs can be sent"))?;
                return Ok(OutPart {
                    inline_data: Some(Blob { mime_type: mime.to_string(), data: data.to_string() }),
                    ..OutPart::default()
                });
            }
            let fetchable = ["https://", "http://", "gs://"].iter().any(|s| strip_prefix_ignore_case(url, s).is_some());
            if !fetchable {
                return Err(unsupported(
                    format!("{field}.image_url"),
                    "Gemini accepts images as base64 data, data: URLs, or http(s):// and gs:// URLs",
                ));
            }
            Ok(OutPart {
                file_data: Some(FileData {
                    mime_type: guess_image_mime(url).map(str::to_string),
                    file_uri: url.clone(),
                }),
                ..OutPart::default()
            })
        }
    }
}

/// Documents as `inlineData` (PDF and the other media types Gemini reads; plain text as
/// `text/plain` bytes) or, by URL, `fileData` (a PDF, as Anthropic's URL documents are). The
/// Gemini API's `Blob` has no name field: a document's title or file name is not sent.
fn encode_document(field: &str, doc: &Document) -> Result<OutPart, TranslateError> {
    doc.check_context(field, PROVIDER)?;
    let inline = |mime_type: &str, data: String| OutPart {
        inline_data: Some(Blob { mime_type: mime_type.to_string(), data }),
        ..OutPart::default()
    };
    match &doc.source {
        DocumentSource::Base64 { media_type, data } => Ok(inline(media_type, data.clone())),
        DocumentSource::Text(text) => {
            Ok(inline("text/plain", base64::engine::general_purpose::STANDARD.encode(text.as_bytes())))
        }
        DocumentSource::Url(url) => {
            if !["https://", "http://", "gs://"].iter().any(|s| strip_prefix_ignore_case(url, s).is_some()) {
                return Err(unsupported(field, "Gemini reads documents by http(s):// and gs:// URLs only"));
            }
            Ok(OutPart {
                file_data: Some(FileData { mime_type: Some("application/pdf".to_string()), file_uri: url.clone() }),
                ..OutPart::default()
            })
        }
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| s.get(prefix.len()..)).flatten()
}

/// MIME type from the URL path's extension (query and fragment ignored).
fn guess_image_mime(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase())?;
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => return None,
    })
}

fn encode_system(system: &[Part]) -> Result<Option<SystemInstruction>, TranslateError> {
    let mut parts = Vec::with_capacity(system.len());
    for (i, part) in system.iter().enumerate() {
        match part {
            Part::Text(text) if text.is_empty() => {}
            Part::Text(text) => parts.push(text_part(text.clone())),
            Part::CachePoint(_) => {} // implicit caching, see `encode_parts`
            _ => return Err(unsupported(format!("system[{i}]"), "Gemini system instructions can only contain text")),
        }
    }
    Ok((!parts.is_empty()).then_some(SystemInstruction { parts }))
}

// -------------------------------------------------------------------------------- tools

fn encode_tools(req: &ChatRequest) -> Result<Vec<ToolSet>, TranslateError> {
    if req.tools.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(i) = req.tools.iter().position(|t| t.strict == Some(true)) {
        return Err(unsupported(
            format!("tools[{i}].strict"),
            "Gemini function declarations have no strict mode (schema-constrained arguments); omit strict or set it to false",
        ));
    }
    let function_declarations = req
        .tools
        .iter()
        .map(|tool| {
            let schema = match &tool.parameters {
                Value::Null => None,
                Value::Object(map) => {
                    let mut map = map.clone();
                    // shift_remove keeps the other keys' order (`remove` would swap the last key in).
                    map.shift_remove("$schema");
                    Some(Value::Object(map))
                }
                other => Some(other.clone()),
            };
            FunctionDeclaration {
                name: tool.name.clone(),
                description: tool.description.clone(),
                parameters_json_schema: schema,
            }
        })
        .collect();
    Ok(vec![ToolSet { function_declarations }])
}

fn encode_tool_choice(req: &ChatRequest) -> Result<Option<ToolConfig>, TranslateError> {
    if req.parallel_tool_calls == Some(false) && !req.tools.is_empty() {
        return Err(unsupported(
            "parallel_tool_calls",
            "Gemini cannot limit the model to one function call per turn; omit the field or set it to true",
        ));
    }
    let (mode, allowed) = match &req.tool_choice {
        None => return Ok(None),
        Some(ToolChoice::Auto) => ("AUTO", Vec::new()),
        Some(ToolChoice::None) => ("NONE", Vec::new()),
        Some(ToolChoice::Required) => ("ANY", Vec::new()),
        Some(ToolChoice::Tool(name)) => ("ANY", vec![name.clone()]),
    };
    Ok(Some(ToolConfig { function_calling_config: FunctionCallingConfig { mode, allowed_function_names: allowed } }))
}

// -------------------------------------------------------------------- generation config

fn encode_generation_config(req: &ChatRequest) -> Result<GenerationConfig, TranslateError> {
    if req.stop.len() > MAX_STOP_SEQUENCES {
        return Err(unsupported("stop", format!("Gemini accepts at most {MAX_STOP_SEQUENCES} stop sequences")));
    }
    let candidate_count = req.n;
    let (response_mime_type, response_json_schema) = match &req.response_format {
        None | Some(ResponseFormat::Text) => (None, None),
        Some(ResponseFormat::JsonObject) => (Some("application/json"), None),
        Some(ResponseFormat::JsonSchema { schema, .. }) => (Some("application/json"), Some(schema.clone())),
    };
    Ok(GenerationConfig {
        stop_sequences: req.stop.clone(),
        response_mime_type,
        response_json_schema,
        candidate_count,
        max_output_tokens: req.max_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        seed: req.seed,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        thinking_config: encode_thinking(&req.model, req.reasoning.as_ref())?,
        media_resolution: media_resolution(&req.messages)?,
    })
}

/// The request-wide `mediaResolution` for the images' OpenAI `detail`: `low` ->
/// `MEDIA_RESOLUTION_LOW`, `high` -> `MEDIA_RESOLUTION_HIGH`, `auto` or none -> nothing.
/// `generateContent` (v1beta) sets one resolution per request (per-part resolution is a
/// v1alpha, Gemini 3 only feature), so images asking for different levels are `Unsupported`;
/// images without a level get the one the others asked for.
fn media_resolution(messages: &[Message]) -> Result<Option<&'static str>, TranslateError> {
    let mut chosen: Option<&'static str> = None;
    for (i, message) in messages.iter().enumerate() {
        for (j, part) in message.content.iter().enumerate() {
            let Part::Image(image) = part else { continue };
            let field = format!("messages[{i}].content[{j}].detail");
            let level = match image.detail.as_deref() {
                None | Some("auto") => continue,
                Some("low") => "MEDIA_RESOLUTION_LOW",
                Some("high") => "MEDIA_RESOLUTION_HIGH",
                Some(other) => {
                    return Err(unsupported(field, format!("image detail {other:?} has no Gemini media resolution")))
                }
            };
            match chosen {
                Some(prev) if prev != level => {
                    return Err(unsupported(
                        field,
                        "images with different detail levels: Gemini takes one mediaResolution per request",
                    ))
                }
                _ => chosen = Some(level),
            }
        }
    }
    Ok(chosen)
}

fn encode_thinking(model: &str, reasoning: Option<&Reasoning>) -> Result<Option<ThinkingConfig>, TranslateError> {
    let config = match reasoning {
        None => return Ok(None),
        Some(Reasoning::Disabled) => ThinkingConfig { thinking_budget: Some(0), ..ThinkingConfig::default() },
        Some(Reasoning::BudgetTokens(budget)) => {
            ThinkingConfig { include_thoughts: Some(true), thinking_budget: Some(*budget), ..ThinkingConfig::default() }
        }
        Some(Reasoning::Effort(effort)) => {
            let budget = match effort.as_str() {
                "minimal" | "low" => 1024,
                "medium" => 8192,
                "high" => 24576,
                other => {
                    return Err(unsupported(
                        "reasoning_effort",
                        format!("unknown effort {other:?}; Gemini knows minimal, low, medium and high"),
                    ))
                }
            };
            let model = model.strip_prefix("models/").unwrap_or(model);
            if model.starts_with("gemini-1") || model.starts_with("gemini-2") {
                ThinkingConfig {
                    include_thoughts: Some(true),
                    thinking_budget: Some(budget),
                    ..ThinkingConfig::default()
                }
            } else {
                ThinkingConfig {
                    include_thoughts: Some(true),
                    thinking_level: Some(effort.clone()),
                    ..ThinkingConfig::default()
                }
            }
        }
    };
    Ok(Some(config))
}
