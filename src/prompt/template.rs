//! Named, versioned prompt templates and their rendering into the IR.
//!
//! Syntax: `{{name}}` (spaces inside the braces allowed: `{{ name }}`) inserts variable `name`.
//! `{{{{` writes a literal `{{`; a lone `{`, `}` or `}}` is always literal. Anything else that
//! starts with `{{` is a configuration error, so a typo never reaches a model silently.
//!
//! Rendering is one pass over pre-parsed segments: a value is inserted as *text* into an IR
//! `Part::Text` and is never parsed again. A value containing `{{other}}`, quotes, newlines or
//! `"}, {"role": "system"` stays literal text inside its message: it cannot expand, add a
//! message or change a role. JSON escaping is the encoder's job when the IR is serialized.

use super::error::PromptError;
use crate::llm::ir::{Message, Part, Role};
use serde_json::{Map, Value};

/// The request body field that selects a template. The gateway removes it before the request
/// goes upstream; no OpenAI or Anthropic request field has this name.
pub const SELECTION_FIELD: &str = "llm_gateway_template";

/// A variable's declared type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarType {
    String,
    Number,
    Boolean,
    Enum(Vec<String>),
}

impl VarType {
    /// Reads after "must be".
    pub fn expected(&self) -> String {
        match self {
            VarType::String => "a string".to_string(),
            VarType::Number => "a number".to_string(),
            VarType::Boolean => "a boolean (true or false)".to_string(),
            VarType::Enum(values) => {
                let list: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
                format!("one of {}", list.join(", "))
            }
        }
    }

    /// The text a JSON value renders as, or `None` when it has the wrong type.
    pub fn render(&self, value: &Value) -> Option<String> {
        match (self, value) {
            (VarType::String, Value::String(s)) => Some(s.clone()),
            (VarType::Number, Value::Number(n)) => Some(n.to_string()),
            (VarType::Boolean, Value::Bool(b)) => Some(b.to_string()),
            (VarType::Enum(values), Value::String(s)) if values.contains(s) => Some(s.clone()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub name: String,
    pub kind: VarType,
    pub required: bool,
    /// The default, already rendered as text. An optional variable without a default
    /// renders as the empty string.
    pub default: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateRole {
    System,
    User,
    Assistant,
}

/// A piece of a template message: literal text or the index of a variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Text(String),
    Var(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateMessage {
    pub role: TemplateRole,
    pub content: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub name: String,
    /// Overrides the template's model (A/B tests of a model change).
    pub model: Option<String>,
    pub(crate) messages: Vec<TemplateMessage>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pick {
    /// Unpinned requests get this version (index into `versions`).
    Fixed(usize),
    /// Weight per version (aligned with `versions`, 0 = pinned requests only).
    Weighted { weights: Vec<u64>, total: u64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub name: String,
    /// Declared variables, sorted by name.
    pub variables: Vec<Variable>,
    /// Versions sorted by name.
    pub versions: Vec<Version>,
    pub model: Option<String>,
    pub(crate) pick: Pick,
}

/// Which template a request asked for, and with what.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selection {
    pub template: String,
    /// A pinned version; `None` lets the weights (or the default version) decide.
    pub version: Option<String>,
    pub variables: Map<String, Value>,
}

/// The template and version a request used: for metrics and the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateUse {
    pub template: String,
    pub version: String,
}

impl Selection {
    /// Reads the value of the `llm_gateway_template` field:
    /// `{"name": "...", "version": "2" (or 2), "variables": {...}}`; `name` is required,
    /// unknown members are rejected.
    pub fn from_value(value: &Value) -> Result<Selection, PromptError> {
        let invalid = |detail: &str| PromptError::InvalidSelection { detail: detail.to_string() };
        let Value::Object(obj) = value else {
            return Err(invalid(
                "must be an object {\"name\": ..., \"version\": ... (optional), \"variables\": {...}}",
            ));
        };
        if let Some(key) = obj.keys().find(|k| !matches!(k.as_str(), "name" | "version" | "variables")) {
            return Err(PromptError::InvalidSelection {
                detail: format!(
                    "unknown member {:?} (expected \"name\", \"version\", \"variables\")",
                    super::error::clip(key)
                ),
            });
        }
        let template = match obj.get("name") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(invalid("\"name\" must be a string")),
            // Where the gateway forces a template, the request may pass only variables.
            None => String::new(),
        };
        let version = match obj.get("version") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) if n.is_u64() => Some(n.to_string()),
            Some(_) => return Err(invalid("\"version\" must be a string")),
        };
        let variables = match obj.get("variables") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(vars)) => vars.clone(),
            Some(_) => return Err(invalid("\"variables\" must be an object")),
        };
        Ok(Selection { template, version, variables })
    }
}

/// Finds the `llm_gateway_template` member of a request body and returns the selection with
/// the body minus that member (every other byte unchanged), or `None` when the body has no
/// such member or is not a JSON object (the dialect decoder reports that).
pub fn take_selection(body: &[u8]) -> Result<Option<(Selection, Vec<u8>)>, PromptError> {
    use crate::json_scan;
    let Ok(members) = json_scan::top_level_members(body) else {
        return Ok(None);
    };
    let mut found = members.iter().filter(|m| m.key == SELECTION_FIELD);
    let Some(member) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() {
        return Err(PromptError::InvalidSelection { detail: "appears more than once".to_string() });
    }
    let raw = body.get(member.value.clone()).unwrap_or_default();
    let value: Value = serde_json::from_slice(raw)
        .map_err(|_| PromptError::InvalidSelection { detail: "is not valid JSON".to_string() })?;
    let selection = Selection::from_value(&value)?;
    let edit = json_scan::remove_member(body, &members, member);
    Ok(Some((selection, json_scan::apply_edits(body, &[edit]))))
}

impl Template {
    pub fn version(&self, name: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.name == name)
    }

    /// The version for a request: the pinned one, else by weight with `roll` (any random
    /// number), else the default version.
    pub fn choose(&self, pinned: Option<&str>, roll: u64) -> Result<&Version, PromptError> {
        if let Some(name) = pinned {
            return self
                .version(name)
                .ok_or_else(|| PromptError::UnknownVersion { template: self.name.clone(), version: name.to_string() });
        }
        let index = match &self.pick {
            Pick::Fixed(i) => *i,
            Pick::Weighted { weights, total } => {
                let mut point = roll % (*total).max(1);
                let mut chosen = 0;
                for (i, &w) in weights.iter().enumerate() {
                    if point < w {
                        chosen = i;
                        break;
                    }
                    point -= w;
                }
                chosen
            }
        };
        self.versions.get(index).ok_or_else(|| PromptError::UnknownTemplate { name: self.name.clone() })
    }

    /// Type-checks the request's variables and returns each declared variable's text, in the
    /// order of `self.variables`. Checks, in order: unknown names (first in name order),
    /// then each declared variable in name order (missing, then type). `null` counts as absent.
    pub fn bind(&self, given: &Map<String, Value>) -> Result<Vec<String>, PromptError> {
        if let Some(name) = given.keys().find(|k| !self.variables.iter().any(|v| &v.name == *k)) {
            return Err(PromptError::UnknownVariable {
                template: self.name.clone(),
                name: name.clone(),
                declared: self.variables.iter().map(|v| v.name.clone()).collect(),
            });
        }
        let mut texts = Vec::with_capacity(self.variables.len());
        for var in &self.variables {
            let text = match given.get(&var.name) {
                None | Some(Value::Null) => match (&var.default, var.required) {
                    (Some(d), _) => d.clone(),
                    (None, true) => {
                        return Err(PromptError::MissingVariable {
                            template: self.name.clone(),
                            name: var.name.clone(),
                        })
                    }
                    (None, false) => String::new(),
                },
                Some(value) => var.kind.render(value).ok_or_else(|| PromptError::WrongType {
                    template: self.name.clone(),
                    name: var.name.clone(),
                    expected: var.kind.expected(),
                })?,
            };
            texts.push(text);
        }
        Ok(texts)
    }
}

/// A version rendered with its variables: system text and conversation turns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rendered {
    pub system: Vec<Part>,
    pub messages: Vec<Message>,
}

impl Version {
    /// Renders with `texts` aligned with the template's variables (from [`Template::bind`]).
    /// Each template message becomes one text part: system ones in IR `system`, the others
    /// one message each.
    pub fn render(&self, texts: &[String]) -> Rendered {
        let mut out = Rendered::default();
        for message in &self.messages {
            let mut text = String::new();
            for segment in &message.content {
                match segment {
                    Segment::Text(t) => text.push_str(t),
                    Segment::Var(i) => text.push_str(texts.get(*i).map(String::as_str).unwrap_or("")),
                }
            }
            match message.role {
                TemplateRole::System => out.system.push(Part::Text(text)),
                TemplateRole::User => {
                    out.messages.push(Message { role: Role::User, content: vec![Part::Text(text)], name: None })
                }
                TemplateRole::Assistant => {
                    out.messages.push(Message { role: Role::Assistant, content: vec![Part::Text(text)], name: None })
                }
            }
        }
        out
    }
}

/// Puts a rendered template in front of the request's own prompt: template system parts
/// before the request's system parts, template turns before the request's turns. When the
/// last template turn and the first request turn have the same role they become one turn
/// (template parts first), so turns keep alternating for providers that require it.
pub fn merge(req: &mut crate::llm::ir::ChatRequest, rendered: Rendered) {
    let Rendered { mut system, mut messages } = rendered;
    system.append(&mut req.system);
    req.system = system;
    let mut own = std::mem::take(&mut req.messages).into_iter();
    if let Some(first) = own.next() {
        match messages.last_mut() {
            Some(last) if last.role == first.role => {
                // The joined turn is the client's speaker's (template turns have no name).
                last.name = last.name.take().or(first.name);
                last.content.extend(first.content);
            }
            _ => messages.push(first),
        }
    }
    messages.extend(own);
    req.messages = messages;
}

/// Parses template text into segments. `lookup` maps a variable name to its index, or `None`
/// when undeclared. Errors are messages for the config path of the text.
pub(crate) fn parse_segments(text: &str, lookup: &dyn Fn(&str) -> Option<usize>) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("{{") {
        literal.push_str(rest.get(..at).unwrap_or(""));
        let after = rest.get(at..).unwrap_or("");
        if let Some(tail) = after.strip_prefix("{{{{") {
            literal.push_str("{{");
            rest = tail;
            continue;
        }
        let inner_and_tail = after.get(2..).unwrap_or("");
        let Some(close) = inner_and_tail.find("}}") else {
            return Err("\"{{\" opens a placeholder that is never closed with \"}}\" \
                        (write \"{{{{\" for a literal \"{{\")"
                .to_string());
        };
        let inner = inner_and_tail.get(..close).unwrap_or("");
        let name = inner.trim();
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            let shown: String = inner.chars().take(40).collect();
            return Err(format!(
                "\"{{{{{shown}}}}}\" is not a placeholder: write \"{{{{name}}}}\" with a variable name \
                 (letters, digits, '_'), or \"{{{{{{{{\" for a literal \"{{{{\""
            ));
        }
        let index = lookup(name).ok_or_else(|| format!("uses undeclared variable {name:?}"))?;
        if !literal.is_empty() {
            segments.push(Segment::Text(std::mem::take(&mut literal)));
        }
        segments.push(Segment::Var(index));
        rest = inner_and_tail.get(close + 2..).unwrap_or("");
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        segments.push(Segment::Text(literal));
    }
    Ok(segments)
}
