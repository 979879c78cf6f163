//! Reading an OpenAI request's members with OpenAI's own error messages (Chat Completions and
//! the Responses API alike).

use crate::llm::ir::TranslateError;
use serde_json::{Map, Value};

pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> TranslateError {
    TranslateError::Invalid { field: field.into(), message: message.into() }
}

pub fn wrong_type(field: &str, expected: &str, got: &Value) -> TranslateError {
    invalid(field, format!("Invalid type for '{field}': expected {expected}, but got {} instead.", type_name(got)))
}

/// The member, with JSON `null` treated as absent (OpenAI accepts `null` for every optional member).
pub fn member<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// An OpenAI request body's top-level object, with OpenAI's own messages for a body that is
/// not JSON or not an object (Chat Completions and Responses alike).
pub fn request_object(body: &[u8]) -> Result<Map<String, Value>, TranslateError> {
    let root: Value = serde_json::from_slice(body)
        .map_err(|e| invalid("body", format!("We could not parse the JSON body of your request. ({e})")))?;
    match root {
        Value::Object(obj) => Ok(obj),
        other => Err(invalid(
            "body",
            format!("Invalid type for request body: expected an object, but got {} instead.", type_name(&other)),
        )),
    }
}

/// The request's `model` (required, a string).
pub fn request_model(obj: &Map<String, Value>) -> Result<String, TranslateError> {
    match obj.get("model") {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(invalid("model", "you must provide a model parameter")),
        Some(v) => Err(wrong_type("model", "a string", v)),
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `<media type>[;param...];base64,<data>` (the part after `data:`) -> (media type, data).
pub fn parse_data_url(rest: &str) -> Option<(String, String)> {
    let (header, data) = rest.split_once(',')?;
    let mut params = header.split(';');
    let media_type = params.next()?.trim();
    if media_type.is_empty() || !params.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
        return None;
    }
    Some((media_type.to_ascii_lowercase(), data.to_string()))
}
