//! The prompt layer for the OpenAI APIs the gateway passes through without the IR:
//! Responses (`/v1/responses`) and Embeddings (`/v1/embeddings`).
//!
//! - Guards and masks apply to the client's text there too: every string of `input` (a
//!   string, an array of strings, or Responses items with their content parts) and of
//!   Responses `instructions`, except structural members (`type`, `role`, ids, URLs and file
//!   data). For the guards, `instructions` is the system text and each `input` item one turn
//!   (`max_messages` counts the items). Masked strings are written back in place.
//! - Embeddings input given as token ids cannot be read by a guard: refused when guards or
//!   masks are configured.
//! - Forced templates and decorators have no place in these APIs (an embedding has no
//!   conversation; a Responses request could carry decorator text in `instructions`, but
//!   a template's messages not): a request that one matches is refused (400,
//!   `prompt_layer_not_applicable`) rather than sent without it.

use super::decorate::Context;
use super::{MaskCount, PromptError, Prompts};
use crate::llm::ir::{ChatRequest, Message, Part, Role};
use serde_json::Value;

/// An API whose body the prompt layer screens as JSON ([`Prompts::screen_raw`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawApi {
    Responses,
    Embeddings,
}

impl RawApi {
    fn name(self) -> &'static str {
        match self {
            RawApi::Responses => "Responses",
            RawApi::Embeddings => "Embeddings",
        }
    }
}

/// A body a mask changed, re-serialized, with the counts per mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    pub body: Vec<u8>,
    pub counts: Vec<MaskCount>,
}

/// Members whose strings are structure or references, not the client's text.
const STRUCTURAL: &[&str] = &[
    "type",
    "role",
    "id",
    "call_id",
    "status",
    "detail",
    "format",
    "image_url",
    "file_id",
    "file_url",
    "file_data",
    "filename",
    "encrypted_content",
    "name",
];

impl Prompts {
    /// Applies guards and masks to a Responses or Embeddings body, and refuses what a forced
    /// template or decorator matches (see the module docs). Returns the masked body when a
    /// mask changed something, with the counts per mask.
    pub fn screen_raw(&self, api: RawApi, body: &[u8], ctx: &Context<'_>) -> Result<Option<Masked>, PromptError> {
        let not_applicable = |what: String| PromptError::NotApplicable { api: api.name(), what };
        if let Some(rule) = self.forced.iter().find(|f| f.matcher.matches(ctx)) {
            return Err(not_applicable(format!("the forced prompt template {:?}", super::error::clip(&rule.template))));
        }
        if let Some(d) = self.decorators.iter().find(|d| d.matcher.matches(ctx)) {
            return Err(not_applicable(format!("the prompt decorator {:?}", super::error::clip(&d.name))));
        }
        if self.guards.is_empty() {
            return Ok(None);
        }
        let mut root: Value = serde_json::from_slice(body)
            .map_err(|e| PromptError::InvalidBody { detail: format!("the body is not valid JSON ({e})") })?;
        let Some(obj) = root.as_object_mut() else {
            return Err(PromptError::InvalidBody { detail: "the body must be a JSON object".to_string() });
        };
        // The client's strings, grouped: the system text first, then one group per turn.
        let mut system: Vec<&mut String> = Vec::new();
        let mut turns: Vec<Vec<&mut String>> = Vec::new();
        let mut token_ids = false;
        for (key, value) in obj.iter_mut() {
            match key.as_str() {
                "instructions" => strings(value, &mut system, &mut token_ids),
                "input" => match value {
                    Value::Array(items) => {
                        for item in items.iter_mut() {
                            let mut turn = Vec::new();
                            strings(item, &mut turn, &mut token_ids);
                            turns.push(turn);
                        }
                    }
                    other => {
                        let mut turn = Vec::new();
                        strings(other, &mut turn, &mut token_ids);
                        turns.push(turn);
                    }
                },
                _ => {}
            }
        }
        if token_ids && api == RawApi::Embeddings {
            return Err(not_applicable("an input guard or mask (input given as token ids)".to_string()));
        }
        let text = |group: &[&mut String]| group.iter().map(|s| Part::Text(s.to_string())).collect::<Vec<_>>();
        let mut request = ChatRequest {
            system: text(&system),
            messages: turns.iter().map(|t| Message { role: Role::User, content: text(t), name: None }).collect(),
            ..ChatRequest::default()
        };
        self.guards.check(&request, &[])?;
        if !self.guards.has_masks() {
            return Ok(None);
        }
        let masked = self.guards.mask(&mut request);
        if masked.is_empty() {
            return Ok(None);
        }
        let masked_parts = request.system.into_iter().chain(request.messages.into_iter().flat_map(|m| m.content));
        let originals = system.into_iter().chain(turns.into_iter().flatten());
        for (original, part) in originals.zip(masked_parts) {
            if let Part::Text(text) = part {
                *original = text;
            }
        }
        let bytes = serde_json::to_vec(&root)
            .map_err(|e| PromptError::InvalidBody { detail: format!("the masked body could not be written ({e})") })?;
        Ok(Some(Masked { body: bytes, counts: masked }))
    }
}

/// Every string under `value` except structural members, in document order; notes numbers
/// found where text is expected (embeddings token ids).
fn strings<'a>(value: &'a mut Value, out: &mut Vec<&'a mut String>, numbers: &mut bool) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter_mut().for_each(|v| strings(v, out, numbers)),
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if !STRUCTURAL.contains(&key.as_str()) {
                    strings(v, out, numbers);
                }
            }
        }
        Value::Number(_) => *numbers = true,
        Value::Null | Value::Bool(_) => {}
    }
}
