//! Decorators: configured system and user text added around every matching request.
//!
//! They act on the IR, so they work the same for every client dialect:
//! - system text goes into IR `system` (OpenAI: system messages; Anthropic: the top-level
//!   `system` field), prepended before or appended after what is there;
//! - user text joins the first / last turn when that turn is a user turn, as its own text part
//!   (before the existing parts, or after them), so turns keep alternating and images, tool
//!   results and other parts stay untouched and in order; otherwise it becomes a new user turn
//!   at the start / end.
//!
//! All matching decorators apply in config order: their `prepend` texts, in config order, come
//! before the original prompt, and their `append` texts, in config order, after it.

use super::template::TemplateRole;
use crate::llm::ir::{ChatRequest, Message, Part, Role};

/// Where a request is: what decorator matches test.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The request path (query string allowed; ignored).
    pub path: &'a str,
    /// The authenticated consumer, if any.
    pub consumer: Option<&'a str>,
    /// The public model name the request is routed to.
    pub model: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub route_prefix: Option<String>,
    pub consumer: Option<String>,
    pub model: Option<String>,
}

impl Matcher {
    pub fn matches(&self, ctx: &Context<'_>) -> bool {
        let path = ctx.path.split_once('?').map_or(ctx.path, |(p, _)| p);
        self.route_prefix.as_deref().is_none_or(|prefix| path.starts_with(prefix))
            && self.consumer.as_deref().is_none_or(|c| ctx.consumer == Some(c))
            && self.model.as_deref().is_none_or(|m| ctx.model == m)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decorator {
    pub name: String,
    pub matcher: Matcher,
    /// System or user texts (config validation rejects assistant).
    pub(crate) prepend: Vec<(TemplateRole, String)>,
    pub(crate) append: Vec<(TemplateRole, String)>,
}

/// Applies every matching decorator; returns the names of those applied, in order.
pub fn decorate(decorators: &[Decorator], req: &mut ChatRequest, ctx: &Context<'_>) -> Vec<String> {
    let matching: Vec<&Decorator> = decorators.iter().filter(|d| d.matcher.matches(ctx)).collect();
    if matching.is_empty() {
        return Vec::new();
    }
    let mut system_before = Vec::new();
    let mut user_before = Vec::new();
    let mut system_after = Vec::new();
    let mut user_after = Vec::new();
    for d in &matching {
        for (role, text) in &d.prepend {
            match role {
                TemplateRole::System => system_before.push(Part::Text(text.clone())),
                _ => user_before.push(Part::Text(text.clone())),
            }
        }
        for (role, text) in &d.append {
            match role {
                TemplateRole::System => system_after.push(Part::Text(text.clone())),
                _ => user_after.push(Part::Text(text.clone())),
            }
        }
    }
    if !system_before.is_empty() {
        system_before.append(&mut req.system);
        req.system = system_before;
    }
    req.system.append(&mut system_after);
    if !user_before.is_empty() {
        match req.messages.first_mut() {
            Some(first) if first.role == Role::User => {
                user_before.append(&mut first.content);
                first.content = user_before;
            }
            _ => req.messages.insert(0, Message { role: Role::User, content: user_before, name: None }),
        }
    }
    if !user_after.is_empty() {
        match req.messages.last_mut() {
            Some(last) if last.role == Role::User => last.content.append(&mut user_after),
            _ => req.messages.push(Message { role: Role::User, content: user_after, name: None }),
        }
    }
    matching.iter().map(|d| d.name.clone()).collect()
}
