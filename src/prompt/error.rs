//! Errors of the prompt layer. Every one is the client's fault (HTTP 400); the engine renders it
//! in the client's dialect with [`PromptError::code`] and [`PromptError::param`].
//!
//! Messages never echo a variable's value or the text a guard matched. Names the client sent
//! (template, version, variable) are echoed quoted and clipped to 64 characters.

use std::fmt;

/// A guard rule blocked the prompt. `rule` is the configured rule name, or one of the
/// reserved names `max_prompt_bytes`, `max_messages`, `allow` (no allow rule matched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardViolation {
    pub rule: String,
}

impl fmt::Display for GuardViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rule.as_str() {
            "allow" => f.write_str("the prompt was blocked by the gateway: it matches none of the allowed topics"),
            rule => write!(f, "the prompt was blocked by the gateway's guard rule {rule:?}"),
        }
    }
}

impl std::error::Error for GuardViolation {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptError {
    /// The request names a template the config does not have.
    UnknownTemplate {
        name: String,
    },
    /// The request pins a version the template does not have.
    UnknownVersion {
        template: String,
        version: String,
    },
    /// A required variable is missing (or `null`).
    MissingVariable {
        template: String,
        name: String,
    },
    /// A variable has the wrong JSON type, or an enum value outside its list.
    /// `expected` reads after "must be": `a string`, `one of "short", "long"`.
    WrongType {
        template: String,
        name: String,
        expected: String,
    },
    /// The request passes a variable the template does not declare (typo safety).
    UnknownVariable {
        template: String,
        name: String,
        declared: Vec<String>,
    },
    /// The `llm_gateway_template` request field is malformed.
    InvalidSelection {
        detail: String,
    },
    /// A prompt API body is not a JSON object (or `stream` is not a boolean).
    InvalidBody {
        detail: String,
    },
    /// `"stream": true` on a prompt API that does not allow streaming.
    StreamNotAllowed {
        api: String,
    },
    /// The gateway imposes a template here and the request chose another (or another version).
    TemplateForced {
        template: String,
    },
    Guard(GuardViolation),
    /// A forced template or decorator matches a request of an API that cannot carry it
    /// (Responses, Embeddings), or guards cannot read its input (token ids): refused rather
    /// than skipped.
    NotApplicable {
        api: &'static str,
        what: String,
    },
}

impl PromptError {
    /// Every prompt error is the client's: 400.
    pub fn status(&self) -> u16 {
        400
    }

    /// A stable machine-readable code (OpenAI `error.code`; metrics label).
    pub fn code(&self) -> &'static str {
        match self {
            PromptError::UnknownTemplate { .. } => "unknown_template",
            PromptError::UnknownVersion { .. } => "unknown_template_version",
            PromptError::MissingVariable { .. } => "missing_variable",
            PromptError::WrongType { .. } => "invalid_variable",
            PromptError::UnknownVariable { .. } => "unknown_variable",
            PromptError::InvalidSelection { .. } => "invalid_template_selection",
            PromptError::InvalidBody { .. } => "invalid_body",
            PromptError::StreamNotAllowed { .. } => "stream_not_allowed",
            PromptError::TemplateForced { .. } => "template_forced",
            PromptError::Guard(_) => "prompt_blocked",
            PromptError::NotApplicable { .. } => "prompt_layer_not_applicable",
        }
    }

    /// The request field at fault, as OpenAI's `error.param` names it. Variables of a chat
    /// request live under `llm_gateway_template.variables`; a prompt API's are top-level, so
    /// the engine may prefer the bare variable name there.
    pub fn param(&self) -> Option<String> {
        match self {
            PromptError::UnknownTemplate { .. } => Some(format!("{}.name", super::SELECTION_FIELD)),
            PromptError::UnknownVersion { .. } => Some(format!("{}.version", super::SELECTION_FIELD)),
            PromptError::MissingVariable { name, .. }
            | PromptError::WrongType { name, .. }
            | PromptError::UnknownVariable { name, .. } => {
                Some(format!("{}.variables.{}", super::SELECTION_FIELD, clip(name)))
            }
            PromptError::InvalidSelection { .. } | PromptError::TemplateForced { .. } => {
                Some(super::SELECTION_FIELD.to_string())
            }
            PromptError::StreamNotAllowed { .. } => Some("stream".to_string()),
            PromptError::InvalidBody { .. } | PromptError::Guard(_) | PromptError::NotApplicable { .. } => None,
        }
    }
}

impl PromptError {
    /// The body field at fault in a prompt API call, whose variables are top-level fields
    /// (the template and version are the operator's choice, not the caller's).
    pub fn api_param(&self) -> Option<String> {
        match self {
            PromptError::MissingVariable { name, .. }
            | PromptError::WrongType { name, .. }
            | PromptError::UnknownVariable { name, .. } => Some(clip(name).to_string()),
            PromptError::StreamNotAllowed { .. } => Some("stream".to_string()),
            _ => None,
        }
    }
}

impl fmt::Display for PromptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PromptError::UnknownTemplate { name } => write!(f, "unknown prompt template {:?}", clip(name)),
            PromptError::UnknownVersion { template, version } => {
                write!(f, "prompt template {:?} has no version {:?}", clip(template), clip(version))
            }
            PromptError::MissingVariable { template, name } => {
                write!(f, "prompt template {:?} requires variable {:?}", clip(template), clip(name))
            }
            PromptError::WrongType { template, name, expected } => {
                write!(f, "variable {:?} of prompt template {:?} must be {expected}", clip(name), clip(template))
            }
            PromptError::UnknownVariable { template, name, declared } => {
                write!(f, "prompt template {:?} has no variable {:?}", clip(template), clip(name))?;
                if declared.is_empty() {
                    f.write_str(" (it takes no variables)")
                } else {
                    let list: Vec<String> = declared.iter().map(|d| format!("{d:?}")).collect();
                    write!(f, " (its variables are {})", list.join(", "))
                }
            }
            PromptError::InvalidSelection { detail } => write!(f, "{}: {detail}", super::SELECTION_FIELD),
            PromptError::InvalidBody { detail } => f.write_str(detail),
            PromptError::StreamNotAllowed { api } => write!(f, "{api} does not support streaming"),
            PromptError::TemplateForced { template } => write!(
                f,
                "the gateway applies prompt template {:?} to this request; pass its variables, not another template \
                 or version",
                clip(template)
            ),
            PromptError::Guard(v) => v.fmt(f),
            PromptError::NotApplicable { api, what } => write!(
                f,
                "{what} applies to this request, but the {api} API cannot carry it; the gateway refuses the request \
                 rather than send it without"
            ),
        }
    }
}

impl std::error::Error for PromptError {}

impl From<GuardViolation> for PromptError {
    fn from(v: GuardViolation) -> Self {
        PromptError::Guard(v)
    }
}

/// Client-supplied names are echoed, but bounded.
pub(crate) fn clip(s: &str) -> &str {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}
