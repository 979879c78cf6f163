//! Requests to the provider: [`encode_request`] (IR -> the body sent to api.anthropic.com).

use super::decode::{invalid, role_name, R};
use crate::llm::anthropic::wire::ToolResultContent;
use crate::llm::anthropic::wire::{
    empty_object, Block, ImageSource as WireImage, OutMessage, OutMetadata, OutRequest, OutSystem,
};
use crate::llm::anthropic::wire::{
    DocumentSource as WireDocument, OutBlock, OutCacheControl, OutContent, OutTool, OutToolEntry,
};
use crate::llm::anthropic::{effort_budget, DEFAULT_MAX_TOKENS, PROVIDER};
use crate::llm::ir::{
    CacheControl, ChatRequest, Document, DocumentSource, Image, ImageSource, Message, Part, Reasoning, ResponseFormat,
    ToolCall, ToolChoice, TranslateError,
};
use base64::Engine;
// json! stays for `thinking`, `tool_choice` and `output_config`: small tagged objects that
// `OutRequest` carries as `Value`s (a tool's schema passes through as the client wrote it).
use serde_json::{json, Value};

fn unsupported(field: impl Into<String>, detail: impl Into<String>) -> TranslateError {
    TranslateError::Unsupported { field: field.into(), provider: PROVIDER, detail: detail.into() }
}

/// Encodes an IR request as an Anthropic Messages body for api.anthropic.com.
///
/// Notes: consecutive same-role IR messages are merged into one turn (the API merges them
/// anyway) and, in user turns, `tool_result` blocks are moved first (the API requires it);
/// `Thinking` parts without a signature (produced by another provider) are dropped, as
/// Anthropic accepts only its own signed thinking; a `data:` image URL is sent as a base64
/// source. Message names are dropped when each role has one participant, refused otherwise
/// ([`ChatRequest::check_names`]); image `detail` follows [`crate::llm::ir::Image::check_detail`];
/// tool `strict` is sent as Anthropic's strict tool use. Cache breakpoints become
/// `cache_control` on the block they close (a lone system text with one is sent as a block);
/// documents become `document` blocks (PDF, plain text, URL); Anthropic-only members, tools
/// and blocks (`ChatRequest::anthropic_only`, `Part::AnthropicBlock`) go back as the client
/// sent them, server tools at their place among the tools.
pub fn encode_request(req: &ChatRequest) -> R<Vec<u8>> {
    if req.seed.is_some() {
        return Err(unsupported("seed", "Anthropic has no sampling seed"));
    }
    if req.frequency_penalty.is_some() {
        return Err(unsupported("frequency_penalty", "Anthropic has no frequency penalty"));
    }
    if req.presence_penalty.is_some() {
        return Err(unsupported("presence_penalty", "Anthropic has no presence penalty"));
    }
    if req.n.is_some_and(|n| n > 1) {
        return Err(unsupported("n", "Anthropic returns exactly one choice"));
    }
    req.check_names(PROVIDER, |i| format!("messages.{i}"))?;
    let output_config = match &req.response_format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => {
            return Err(unsupported(
                "response_format",
                "json_object needs a schema on Anthropic; use response_format json_schema",
            ))
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            Some(json!({"format": {"type": "json_schema", "schema": schema}}))
        }
    };
    let (thinking, budget) = encode_reasoning(req.reasoning.as_ref(), req.max_tokens)?;
    let max_tokens = req.max_tokens.unwrap_or(match budget {
        Some(b) => b.saturating_add(DEFAULT_MAX_TOKENS),
        None => DEFAULT_MAX_TOKENS,
    });
    let out = OutRequest {
        model: req.model.clone(),
        max_tokens,
        messages: encode_messages(&req.messages)?,
        system: encode_system(&req.system)?,
        metadata: req.user.as_ref().map(|u| OutMetadata { user_id: u.clone() }),
        stop_sequences: req.stop.clone(),
        stream: req.stream,
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        tools: encode_tools(req),
        tool_choice: encode_tool_choice(req),
        thinking,
        output_config,
        cache_control: req.cache.automatic.as_ref().map(cache_control),
        anthropic_only: req.anthropic_only.members.iter().cloned().collect(),
    };
    serde_json::to_vec(&out).map_err(|e| invalid("body", format!("cannot serialize request: {e}")))
}

/// Custom tools in order, with the client's server tools back at their places in the list.
fn encode_tools(req: &ChatRequest) -> Vec<OutToolEntry> {
    let mut custom = req.tools.iter().enumerate().map(|(i, t)| {
        OutToolEntry::Custom(OutTool {
            name: t.name.clone(),
            description: t.description.clone(),
            input_schema: if t.parameters.is_object() { t.parameters.clone() } else { json!({"type": "object"}) },
            strict: t.strict,
            cache_control: req.cache.tools.iter().rev().find(|(at, _)| *at == i).map(|(_, c)| cache_control(c)),
        })
    });
    let mut server = req.anthropic_only.tools.iter().peekable();
    let mut out = Vec::with_capacity(req.tools.len() + req.anthropic_only.tools.len());
    loop {
        match server.peek() {
            Some((at, raw)) if *at <= out.len() => {
                out.push(OutToolEntry::Raw(raw.clone()));
                server.next();
            }
            _ => match custom.next() {
                Some(tool) => out.push(tool),
                None => break,
            },
        }
    }
    out.extend(server.map(|(_, raw)| OutToolEntry::Raw(raw.clone())));
    out
}

/// The smallest thinking budget Anthropic accepts.
const MIN_THINKING_BUDGET: u64 = 1024;

/// `thinking` and its budget. A budget derived from an OpenAI-style effort must fit under
/// the client's output cap, as Anthropic requires (`max_tokens` > `budget_tokens`; both
/// OpenAI's `max_output_tokens`/`max_completion_tokens` and Anthropic's `max_tokens` count
/// the reasoning): it is lowered to the cap minus one, and thinking is left off when that
/// is below Anthropic's minimum. An explicit budget (an Anthropic client's) is sent as given.
fn encode_reasoning(r: Option<&Reasoning>, max_tokens: Option<u64>) -> R<(Option<Value>, Option<u64>)> {
    let budget = match r {
        None => return Ok((None, None)),
        Some(Reasoning::Disabled) | Some(Reasoning::BudgetTokens(0)) => None,
        Some(Reasoning::BudgetTokens(b)) => Some(*b),
        Some(Reasoning::Effort(e)) => {
            let budget = effort_budget(e).ok_or_else(|| {
                unsupported("reasoning_effort", format!("no thinking budget is defined for effort `{e}`"))
            })?;
            match (budget, max_tokens) {
                (Some(b), Some(cap)) if b >= cap => {
                    let fitted = cap.saturating_sub(1);
                    if fitted < MIN_THINKING_BUDGET {
                        return Ok((None, None));
                    }
                    Some(fitted)
                }
                (budget, _) => budget,
            }
        }
    };
    Ok(match budget {
        Some(b) => (Some(json!({"type": "enabled", "budget_tokens": b})), Some(b)),
        None => (Some(json!({"type": "disabled"})), None),
    })
}

fn encode_tool_choice(req: &ChatRequest) -> Option<Value> {
    let no_parallel = req.parallel_tool_calls == Some(false);
    let mut v = match (&req.tool_choice, req.tools.is_empty()) {
        // The API rejects tool_choice without tools; auto/none are the defaults then.
        (Some(ToolChoice::Auto | ToolChoice::None), true) | (None, true) => return None,
        (None, false) if !no_parallel => return None,
        (None | Some(ToolChoice::Auto), _) => json!({"type": "auto"}),
        (Some(ToolChoice::None), _) => return Some(json!({"type": "none"})),
        (Some(ToolChoice::Required), _) => json!({"type": "any"}),
        (Some(ToolChoice::Tool(name)), _) => json!({"type": "tool", "name": name}),
    };
    if no_parallel {
        if let Some(o) = v.as_object_mut() {
            o.insert("disable_parallel_tool_use".into(), Value::Bool(true));
        }
    }
    Some(v)
}

pub(super) fn cache_control(c: &CacheControl) -> OutCacheControl {
    OutCacheControl { kind: "ephemeral", ttl: c.ttl.clone() }
}

/// Puts a breakpoint on the block it closes. A breakpoint with no block before it (its block
/// was empty text or unsigned thinking, which are not sent) closes nothing and is not sent.
fn mark_last(blocks: &mut [OutBlock], c: &CacheControl) {
    if let Some(last) = blocks.last_mut() {
        last.cache_control = Some(cache_control(c));
    }
}

/// One string when the system prompt is one text without a breakpoint, text blocks otherwise.
fn encode_system(system: &[Part]) -> R<Option<OutSystem>> {
    let mut blocks: Vec<OutBlock> = Vec::with_capacity(system.len());
    for p in system {
        match p {
            Part::Text(t) if t.is_empty() => {}
            Part::Text(t) => blocks.push(Block::Text { text: t.clone() }.into()),
            Part::CachePoint(c) => mark_last(&mut blocks, c),
            _ => return Err(unsupported("system", "system instructions can only hold text")),
        }
    }
    Ok(match blocks.as_mut_slice() {
        [] => None,
        [OutBlock { block: OutContent::Block(Block::Text { text }), cache_control: None }] => {
            Some(OutSystem::Text(std::mem::take(text)))
        }
        _ => Some(OutSystem::Blocks(blocks)),
    })
}

fn encode_messages(messages: &[Message]) -> R<Vec<OutMessage>> {
    let mut out: Vec<OutMessage> = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let mut blocks: Vec<OutBlock> = Vec::with_capacity(m.content.len());
        for (j, p) in m.content.iter().enumerate() {
            match p {
                // A breakpoint opening a message closes the previous turn's last block.
                Part::CachePoint(c) if blocks.is_empty() => {
                    if let Some(last) = out.last_mut() {
                        mark_last(&mut last.content, c);
                    }
                }
                Part::CachePoint(c) => mark_last(&mut blocks, c),
                Part::AnthropicBlock(Value::Object(raw)) => {
                    blocks.push(OutBlock { block: OutContent::Raw(raw.clone()), cache_control: None })
                }
                _ => blocks.extend(encode_part(p, &format!("messages.{i}.content.{j}"))?.map(OutBlock::from)),
            }
        }
        if blocks.is_empty() {
            continue;
        }
        let role = role_name(m.role);
        match out.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => out.push(OutMessage { role, content: blocks }),
        }
    }
    for m in out.iter_mut().filter(|m| m.role == "user") {
        // Stable: tool results first, in order, then everything else in order.
        m.content.sort_by_key(|b| !matches!(b.block, OutContent::Block(Block::ToolResult { .. })));
    }
    Ok(out)
}

fn encode_part(p: &Part, path: &str) -> R<Option<Block>> {
    Ok(Some(match p {
        Part::Text(t) if t.is_empty() => return Ok(None),
        Part::Text(t) => Block::Text { text: t.clone() },
        Part::Image(img) => {
            img.check_detail(path, PROVIDER)?;
            Block::Image { source: encode_image(img) }
        }
        Part::ToolCall(c) => Block::ToolUse { id: c.id.clone(), name: c.name.clone(), input: parse_args(c, path)? },
        Part::ToolResult(r) => {
            let mut blocks = Vec::with_capacity(r.content.len());
            let mut raw = false;
            for (k, part) in r.content.iter().enumerate() {
                match part {
                    Part::Text(_) | Part::Image(_) | Part::Document(_) => {
                        let block = encode_part(part, &format!("{path}.content.{k}"))?;
                        blocks.extend(block.and_then(|b| serde_json::to_value(b).ok()));
                    }
                    Part::AnthropicBlock(block) => {
                        raw = true;
                        blocks.push(block.clone());
                    }
                    // The Anthropic decoder hoists these out of tool results; another source's
                    // would close the tool result, which `encode_messages` cannot see from here.
                    Part::CachePoint(_) => {
                        return Err(unsupported(
                            format!("{path}.content.{k}"),
                            "a cache breakpoint inside a tool result; set it on the tool result itself",
                        ))
                    }
                    _ => {
                        return Err(unsupported(
                            format!("{path}.content.{k}"),
                            "tool results can only hold text, images, documents and search results",
                        ))
                    }
                }
            }
            let only_text =
                blocks.len() == 1 && !raw && blocks.first().and_then(|b| b.get("type")) == Some(&json!("text"));
            let content = match blocks.first().and_then(|b| b.get("text")).and_then(Value::as_str) {
                _ if blocks.is_empty() => None,
                Some(text) if only_text => Some(ToolResultContent::Text(text.to_string())),
                _ => Some(ToolResultContent::Raw(blocks)),
            };
            Block::ToolResult { tool_use_id: r.call_id.clone(), content, is_error: r.is_error }
        }
        Part::Thinking { text, signature: Some(sig) } => {
            Block::Thinking { thinking: text.clone(), signature: sig.clone() }
        }
        Part::Thinking { signature: None, .. } => return Ok(None),
        Part::RedactedThinking { data } => Block::RedactedThinking { data: data.clone() },
        Part::Document(doc) => encode_document(doc, path)?,
        Part::AnthropicBlock(_) => {
            return Err(invalid(format!("{path}.type"), "an Anthropic-only block must be a JSON object"))
        }
        Part::CachePoint(_) => return Ok(None),
    }))
}

/// PDFs as base64, plain text as a text source (text sent as base64 by an OpenAI client is
/// decoded), URLs as a URL source; the Messages API takes no other document media type.
fn encode_document(doc: &Document, path: &str) -> R<Block> {
    let source = match &doc.source {
        DocumentSource::Base64 { media_type, data } if media_type == "application/pdf" => {
            WireDocument::Base64 { media_type: media_type.clone(), data: data.clone() }
        }
        DocumentSource::Base64 { media_type, data } if media_type.starts_with("text/plain") => {
            let text = base64::engine::general_purpose::STANDARD
                .decode(data)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    invalid(format!("{path}.data"), "the text document is not valid base64 of UTF-8 text")
                })?;
            WireDocument::Text { media_type: "text/plain".to_string(), data: text }
        }
        DocumentSource::Base64 { media_type, .. } => {
            return Err(unsupported(
                path,
                format!(
                "document media type {media_type:?}: Anthropic takes PDF (application/pdf) and plain text documents"
            ),
            ))
        }
        DocumentSource::Text(text) => WireDocument::Text { media_type: "text/plain".to_string(), data: text.clone() },
        DocumentSource::Url(url) => WireDocument::Url { url: url.clone() },
    };
    Ok(Block::Document { source, title: doc.name.clone(), context: doc.context.clone() })
}

fn parse_args(c: &ToolCall, path: &str) -> R<Value> {
    if c.arguments.trim().is_empty() {
        return Ok(empty_object());
    }
    match serde_json::from_str::<Value>(&c.arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(invalid(format!("{path}.arguments"), "tool call arguments must be a JSON object")),
    }
}

fn encode_image(img: &Image) -> WireImage {
    match &img.source {
        ImageSource::Base64 { media_type, data } => {
            WireImage::Base64 { media_type: media_type.clone(), data: data.clone() }
        }
        ImageSource::Url(url) => match parse_data_url(url) {
            Some((media_type, data)) => WireImage::Base64 { media_type, data },
            None => WireImage::Url { url: url.clone() },
        },
    }
}

/// `data:image/png;base64,AAAA` -> ("image/png", "AAAA").
fn parse_data_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type.to_string(), data.to_string()))
}
