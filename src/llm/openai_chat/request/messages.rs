//! Client side: OpenAI `messages` -> IR system parts and messages.

use super::decode::{not_translatable, opt_str};
use super::fields::{invalid, parse_data_url};
use super::fields::{member, wrong_type};
use crate::llm::ir::{
    Document, DocumentSource, Image, ImageSource, Message, Part, Role, ToolCall, ToolResult, TranslateError,
};
use serde_json::{Map, Value};
use std::collections::HashMap;

type Result<T> = std::result::Result<T, TranslateError>;

/// Builds system parts and IR messages from OpenAI messages, in order.
#[derive(Default)]
pub(super) struct Conversation {
    pub(super) system: Vec<Part>,
    pub(super) messages: Vec<Message>,
    /// The last IR message was built from `tool` messages (the next one merges into it).
    last_is_tool: bool,
    /// Tool call id -> function name, from earlier assistant messages.
    call_names: HashMap<String, String>,
}

impl Conversation {
    pub(super) fn push(&mut self, i: usize, m: &Value) -> Result<()> {
        let path = format!("messages[{i}]");
        let m = m.as_object().ok_or_else(|| wrong_type(&path, "an object", m))?;
        let role = match m.get("role") {
            Some(Value::String(r)) => r.as_str(),
            None | Some(Value::Null) => {
                return Err(invalid(format!("{path}.role"), format!("Missing required parameter: '{path}.role'.")))
            }
            Some(v) => return Err(wrong_type(&format!("{path}.role"), "a string", v)),
        };
        let is_tool = role == "tool";
        match role {
            "system" | "developer" => {
                let parts = text_only_content(m, &path, true)?;
                self.system.extend(parts.into_iter().filter(|p| !matches!(p, Part::Text(t) if t.is_empty())));
            }
            "user" => {
                let content = user_content(m, &path)?;
                let name = participant_name(m, &path)?;
                self.messages.push(Message { role: Role::User, content, name });
            }
            "assistant" => {
                let content = self.assistant_content(m, &path)?;
                let name = participant_name(m, &path)?;
                self.messages.push(Message { role: Role::Assistant, content, name });
            }
            "tool" => {
                let call_id = opt_str(m, "tool_call_id", &format!("{path}.tool_call_id"))?.ok_or_else(|| {
                    invalid(format!("{path}.tool_call_id"), format!("Missing required parameter: '{path}.tool_call_id'."))
                })?;
                let content = text_only_content(m, &path, true)?;
                let content = content.into_iter().filter(|p| !matches!(p, Part::Text(t) if t.is_empty())).collect();
                let result = Part::ToolResult(ToolResult {
                    call_id: call_id.to_string(),
                    name: self.call_names.get(call_id).cloned(),
                    content,
                    is_error: false,
                });
                match self.messages.last_mut() {
                    Some(last) if self.last_is_tool => last.content.push(result),
                    _ => self.messages.push(Message { role: Role::User, content: vec![result], name: None }),
                }
            }
            "function" => return Err(not_translatable(format!("{path}.role"))),
            other => {
                return Err(invalid(
                    format!("{path}.role"),
                    format!("Invalid value: '{other}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."),
                ))
            }
        }
        self.last_is_tool = is_tool;
        Ok(())
    }

    fn assistant_content(&mut self, m: &Map<String, Value>, path: &str) -> Result<Vec<Part>> {
        if member(m, "function_call").is_some() {
            return Err(not_translatable(format!("{path}.function_call")));
        }
        if member(m, "audio").is_some() {
            return Err(not_translatable(format!("{path}.audio")));
        }
        let mut parts = Vec::new();
        let reasoning = match opt_str(m, "reasoning_content", &format!("{path}.reasoning_content"))? {
            Some(r) => Some(r),
            None => member(m, "reasoning").and_then(Value::as_str),
        };
        if let Some(r) = reasoning.filter(|r| !r.is_empty()) {
            parts.push(Part::Thinking { text: r.to_string(), signature: None });
        }
        match member(m, "content") {
            None => {}
            Some(Value::String(s)) if !s.is_empty() => parts.push(Part::Text(s.clone())),
            Some(Value::String(_)) => {}
            Some(Value::Array(items)) => {
                for (j, p) in items.iter().enumerate() {
                    let ppath = format!("{path}.content[{j}]");
                    let p = p.as_object().ok_or_else(|| wrong_type(&ppath, "an object", p))?;
                    match p.get("type").and_then(Value::as_str) {
                        Some("text") => parts.push(Part::Text(required_text(p, &ppath, "text")?)),
                        Some("refusal") => parts.push(Part::Text(required_text(p, &ppath, "refusal")?)),
                        _ => {
                            return Err(invalid(
                                format!("{ppath}.type"),
                                "Invalid value. Supported values are: 'text' and 'refusal'.",
                            ))
                        }
                    }
                }
            }
            Some(v) => return Err(wrong_type(&format!("{path}.content"), "a string or an array", v)),
        }
        if let Some(r) = opt_str(m, "refusal", &format!("{path}.refusal"))?.filter(|r| !r.is_empty()) {
            parts.push(Part::Text(r.to_string()));
        }
        let has_calls = match member(m, "tool_calls") {
            None => false,
            Some(Value::Array(calls)) => {
                for (j, c) in calls.iter().enumerate() {
                    let call = self.tool_call(c, &format!("{path}.tool_calls[{j}]"))?;
                    parts.push(Part::ToolCall(call));
                }
                !calls.is_empty()
            }
            Some(v) => return Err(wrong_type(&format!("{path}.tool_calls"), "an array", v)),
        };
        if member(m, "content").is_none() && !has_calls && member(m, "refusal").is_none() {
            return Err(invalid(
                format!("{path}.content"),
                format!("Invalid value for '{path}.content': expected a string, got null."),
            ));
        }
        Ok(parts)
    }

    fn tool_call(&mut self, c: &Value, path: &str) -> Result<ToolCall> {
        let c = c.as_object().ok_or_else(|| wrong_type(path, "an object", c))?;
        match c.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some("custom") => return Err(not_translatable(format!("{path}.type"))),
            _ => {
                return Err(invalid(
                    format!("{path}.type"),
                    "Invalid value. Supported values are: 'function' and 'custom'.",
                ))
            }
        }
        let id = opt_str(c, "id", &format!("{path}.id"))?
            .ok_or_else(|| invalid(format!("{path}.id"), format!("Missing required parameter: '{path}.id'.")))?;
        let f = c.get("function").and_then(Value::as_object).ok_or_else(|| {
            invalid(format!("{path}.function"), format!("Missing required parameter: '{path}.function'."))
        })?;
        let name = opt_str(f, "name", &format!("{path}.function.name"))?.ok_or_else(|| {
            invalid(format!("{path}.function.name"), format!("Missing required parameter: '{path}.function.name'."))
        })?;
        let arguments = opt_str(f, "arguments", &format!("{path}.function.arguments"))?.ok_or_else(|| {
            invalid(
                format!("{path}.function.arguments"),
                format!("Missing required parameter: '{path}.function.arguments'."),
            )
        })?;
        self.call_names.insert(id.to_string(), name.to_string());
        Ok(ToolCall { id: id.to_string(), name: name.to_string(), arguments: arguments.to_string(), signature: None })
    }
}

/// A user or assistant message's `name` (system and developer names are not carried: the IR
/// system prompt is a list of parts).
fn participant_name(m: &Map<String, Value>, path: &str) -> Result<Option<String>> {
    Ok(opt_str(m, "name", &format!("{path}.name"))?.map(str::to_string))
}

fn required_text(p: &Map<String, Value>, path: &str, key: &str) -> Result<String> {
    match p.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => {
            Err(invalid(format!("{path}.{key}"), format!("Missing required parameter: '{path}.{key}'.")))
        }
        Some(v) => Err(wrong_type(&format!("{path}.{key}"), "a string", v)),
    }
}

/// `content` of system, developer and tool messages: a string or an array of text parts.
fn text_only_content(m: &Map<String, Value>, path: &str, required: bool) -> Result<Vec<Part>> {
    match member(m, "content") {
        None if required => Err(invalid(
            format!("{path}.content"),
            format!("Invalid value for '{path}.content': expected a string, got null."),
        )),
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![Part::Text(s.clone())]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(j, p)| {
                let ppath = format!("{path}.content[{j}]");
                let p = p.as_object().ok_or_else(|| wrong_type(&ppath, "an object", p))?;
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => Ok(Part::Text(required_text(p, &ppath, "text")?)),
                    _ => Err(invalid(format!("{ppath}.type"), "Invalid value. Supported values are: 'text'.")),
                }
            })
            .collect(),
        Some(v) => Err(wrong_type(&format!("{path}.content"), "a string or an array", v)),
    }
}

fn user_content(m: &Map<String, Value>, path: &str) -> Result<Vec<Part>> {
    let items = match member(m, "content") {
        None => {
            return Err(invalid(
                format!("{path}.content"),
                format!("Invalid value for '{path}.content': expected a string, got null."),
            ))
        }
        Some(Value::String(s)) => return Ok(vec![Part::Text(s.clone())]),
        Some(Value::Array(items)) => items,
        Some(v) => return Err(wrong_type(&format!("{path}.content"), "a string or an array", v)),
    };
    if items.is_empty() {
        return Err(invalid(
            format!("{path}.content"),
            format!("Invalid '{path}.content': empty array. Expected an array with minimum length 1, but got an empty array instead."),
        ));
    }
    let mut parts = Vec::with_capacity(items.len());
    for (j, p) in items.iter().enumerate() {
        let ppath = format!("{path}.content[{j}]");
        let p = p.as_object().ok_or_else(|| wrong_type(&ppath, "an object", p))?;
        match p.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(Part::Text(required_text(p, &ppath, "text")?)),
            Some("image_url") => parts.push(Part::Image(image(p, &ppath)?)),
            Some("file") => parts.push(Part::Document(file(p, &ppath)?)),
            Some("input_audio") => return Err(not_translatable(format!("{ppath}.type"))),
            Some(other) => {
                return Err(invalid(
                    format!("{ppath}.type"),
                    format!(
                    "Invalid value: '{other}'. Supported values are: 'text', 'image_url', 'input_audio', and 'file'."
                ),
                ))
            }
            None => {
                return Err(invalid(format!("{ppath}.type"), format!("Missing required parameter: '{ppath}.type'.")))
            }
        }
    }
    Ok(parts)
}

/// A `file` part with inline `file_data` (a base64 data URL, as the file-inputs guide sends
/// PDFs) and its `filename`. A `file_id` names a file stored at OpenAI: not translatable.
fn file(p: &Map<String, Value>, path: &str) -> Result<Document> {
    let fpath = format!("{path}.file");
    let f = match member(p, "file") {
        Some(Value::Object(f)) => f,
        None => return Err(invalid(&fpath, format!("Missing required parameter: '{fpath}'."))),
        Some(v) => return Err(wrong_type(&fpath, "an object", v)),
    };
    if member(f, "file_id").is_some() {
        return Err(not_translatable(format!("{fpath}.file_id")));
    }
    let data_path = format!("{fpath}.file_data");
    let data_url = opt_str(f, "file_data", &data_path)?
        .ok_or_else(|| invalid(&data_path, format!("Missing required parameter: '{data_path}'.")))?;
    let (media_type, data) = data_url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
        .and_then(|(meta, data)| Some((meta.strip_suffix(";base64")?, data)))
        .filter(|(media_type, _)| !media_type.is_empty())
        .ok_or_else(|| {
            invalid(&data_path, "Invalid 'file_data': expected a base64 data URL (data:<media type>;base64,<data>).")
        })?;
    Ok(Document {
        source: DocumentSource::Base64 { media_type: media_type.to_string(), data: data.to_string() },
        name: opt_str(f, "filename", &format!("{fpath}.filename"))?.map(str::to_string),
        context: None,
    })
}

fn image(p: &Map<String, Value>, path: &str) -> Result<Image> {
    let detail = match p.get("image_url").and_then(Value::as_object) {
        Some(iu) => opt_str(iu, "detail", &format!("{path}.image_url.detail"))?.map(str::to_string),
        None => None,
    };
    let source = image_source(p, path)?;
    Ok(Image { source, detail })
}

fn image_source(p: &Map<String, Value>, path: &str) -> Result<ImageSource> {
    let url = p.get("image_url").and_then(|iu| iu.get("url")).and_then(Value::as_str).ok_or_else(|| {
        invalid(format!("{path}.image_url.url"), format!("Missing required parameter: '{path}.image_url.url'."))
    })?;
    if let Some(rest) = url.strip_prefix("data:") {
        let (media_type, data) = parse_data_url(rest).ok_or_else(|| {
            invalid(
                format!("{path}.image_url.url"),
                "Invalid image data URL: expected 'data:<media type>;base64,<data>'.",
            )
        })?;
        return Ok(ImageSource::Base64 { media_type, data });
    }
    Ok(ImageSource::Url(url.to_string()))
}
