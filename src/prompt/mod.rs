//! The prompt layer: templates, decorators, guards and prompt APIs, all acting on the IR
//! (`llm::ir::ChatRequest`), so they work for every client dialect.
//!
//! Order of operations for one request ([`Prompts::prepare`]):
//! 1. resolve the template the request selected (`llm_gateway_template` body field, see
//!    [`take_selection`]), choose its version (pinned, or weighted with a random roll) and
//!    type-check the variables;
//! 2. guards check the *client's* text: the request's own covered text plus the variable
//!    values (operator text from templates and decorators is trusted and not checked);
//! 3. masks rewrite that same client text (the request's parts and the variable values);
//! 4. the template is rendered with the (masked) values and put in front of the request;
//! 5. matching decorators add their system and user text.
//!
//! A prompt API call ([`Prompts::build_request`]) runs the same pipeline on an empty request.

mod api;
pub mod config;
mod decorate;
mod error;
pub mod fold;
mod guard;
mod raw;
mod template;

pub use api::{prompt_response, PromptApi, PromptStreamEncoder};
pub use decorate::{decorate, Context, Decorator, Matcher};
pub use error::{GuardViolation, PromptError};
pub use guard::{luhn_valid, Builtin, Guards, MaskCount};
pub use raw::{Masked, RawApi};
pub use template::{
    merge, take_selection, Rendered, Selection, Template, TemplateRole, TemplateUse, VarType, Variable, Version,
    SELECTION_FIELD,
};

use crate::config_base::ConfigError;
use crate::llm::ir::ChatRequest;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The validated prompt configuration, compiled once per plugin (VM).
#[derive(Debug, Clone, Default)]
pub struct Prompts {
    pub(crate) templates: BTreeMap<String, Template>,
    pub(crate) decorators: Vec<Decorator>,
    pub(crate) guards: Guards,
    /// By request path.
    pub(crate) apis: BTreeMap<String, PromptApi>,
    pub(crate) forced: Vec<ForcedTemplate>,
}

/// A template the operator imposes on matching chat requests (`forced_templates`): the
/// request may pass variables, but not choose another template or version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForcedTemplate {
    pub matcher: Matcher,
    pub template: String,
    pub version: Option<String>,
}

/// What the prompt layer did to a request: for metrics and the access log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    pub template: Option<TemplateUse>,
    /// Names of the decorators applied, in order.
    pub decorators: Vec<String>,
    /// Spans masked, per mask (non-zero counts only).
    pub masked: Vec<MaskCount>,
}

/// A prompt API call turned into a chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptCall {
    /// The rendered request; `model` holds the public model name (the engine replaces it
    /// with the provider's), `stream` / `stream_usage` what the caller asked for.
    pub request: ChatRequest,
    /// The public model to route to (the version's model, else the template's).
    pub model: String,
    pub used: TemplateUse,
    pub decorators: Vec<String>,
    pub masked: Vec<MaskCount>,
}

/// A selected template, its chosen version and the variables' texts (aligned with
/// `template.variables`).
struct Resolved<'a> {
    template: &'a Template,
    version: &'a Version,
    texts: Vec<String>,
}

impl Prompts {
    /// Parses and validates the prompt sections (see [`config::parse`]).
    pub fn parse(json: &[u8], prefix: &str, is_model: &dyn Fn(&str) -> bool) -> Result<Prompts, ConfigError> {
        config::parse(json, prefix, is_model)
    }

    /// Nothing configured: the engine can skip the prompt layer (and the IR round trip).
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
            && self.decorators.is_empty()
            && self.guards.is_empty()
            && self.apis.is_empty()
            && self.forced.is_empty()
    }

    pub fn template(&self, name: &str) -> Option<&Template> {
        self.templates.get(name)
    }

    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        self.templates.values()
    }

    pub fn decorators(&self) -> &[Decorator] {
        &self.decorators
    }

    pub fn guards(&self) -> &Guards {
        &self.guards
    }

    /// The prompt API served at `path` (query string ignored).
    pub fn api(&self, path: &str) -> Option<&PromptApi> {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        self.apis.get(path)
    }

    pub fn apis(&self) -> impl Iterator<Item = &PromptApi> {
        self.apis.values()
    }

    fn resolve(&self, sel: &Selection, roll: u64) -> Result<Resolved<'_>, PromptError> {
        if sel.template.is_empty() {
            return Err(PromptError::InvalidSelection {
                detail: "\"name\" (the template's name) is required".to_string(),
            });
        }
        let template = self
            .templates
            .get(&sel.template)
            .ok_or_else(|| PromptError::UnknownTemplate { name: sel.template.clone() })?;
        let version = template.choose(sel.version.as_deref(), roll)?;
        let texts = template.bind(&sel.variables)?;
        Ok(Resolved { template, version, texts })
    }

    /// Renders a selection alone (no guards, no decorators): the chosen version and its output.
    pub fn render(&self, sel: &Selection, roll: u64) -> Result<(TemplateUse, Rendered), PromptError> {
        let r = self.resolve(sel, roll)?;
        let used = TemplateUse { template: r.template.name.clone(), version: r.version.name.clone() };
        Ok((used, r.version.render(&r.texts)))
    }

    /// The whole prompt layer for one chat request (see the module docs for the order).
    /// `roll` is a random number for weighted versions. On error the request may be
    /// partly changed and must not be sent.
    pub fn prepare(
        &self,
        req: &mut ChatRequest,
        sel: Option<&Selection>,
        ctx: &Context<'_>,
        roll: u64,
    ) -> Result<Applied, PromptError> {
        let forced = self.forced_selection(sel, ctx)?;
        let sel = forced.as_ref().or(sel);
        let resolved = sel.map(|s| self.resolve(s, roll)).transpose()?;
        self.prepare_resolved(req, resolved, ctx)
    }

    /// The selection a matching forced template imposes (`None`: no rule matches). The
    /// request's own variables carry over; naming another template or version is an error,
    /// not silently overridden.
    fn forced_selection(&self, sel: Option<&Selection>, ctx: &Context<'_>) -> Result<Option<Selection>, PromptError> {
        let Some(rule) = self.forced.iter().find(|f| f.matcher.matches(ctx)) else { return Ok(None) };
        let conflicts = sel.is_some_and(|s| {
            (!s.template.is_empty() && s.template != rule.template)
                || matches!((&rule.version, &s.version), (Some(forced), Some(asked)) if forced != asked)
        });
        if conflicts {
            return Err(PromptError::TemplateForced { template: rule.template.clone() });
        }
        Ok(Some(Selection {
            template: rule.template.clone(),
            version: rule.version.clone().or_else(|| sel.and_then(|s| s.version.clone())),
            variables: sel.map(|s| s.variables.clone()).unwrap_or_default(),
        }))
    }

    fn prepare_resolved(
        &self,
        req: &mut ChatRequest,
        resolved: Option<Resolved<'_>>,
        ctx: &Context<'_>,
    ) -> Result<Applied, PromptError> {
        let mut applied = Applied::default();
        let mut resolved = resolved;
        {
            let extra: Vec<&str> =
                resolved.as_ref().map(|r| r.texts.iter().map(String::as_str).collect()).unwrap_or_default();
            self.guards.check(req, &extra)?;
        }
        if self.guards.has_masks() {
            let mut counts = self.guards.mask_counts();
            self.guards.mask_into(req, &mut counts);
            if let Some(r) = resolved.as_mut() {
                for text in r.texts.iter_mut() {
                    self.guards.mask_text(text, &mut counts);
                }
            }
            applied.masked = self.guards.report(counts);
        }
        if let Some(r) = resolved {
            applied.template = Some(TemplateUse { template: r.template.name.clone(), version: r.version.name.clone() });
            merge(req, r.version.render(&r.texts));
        }
        applied.decorators = decorate(&self.decorators, req, ctx);
        Ok(applied)
    }

    /// The public model a prompt API call goes to, known before its body: the version the
    /// same `roll` will choose in [`Prompts::build_request`], or the template's model.
    pub fn api_model(&self, api: &PromptApi, roll: u64) -> Result<&str, PromptError> {
        let template = self
            .templates
            .get(&api.template)
            .ok_or_else(|| PromptError::UnknownTemplate { name: api.template.clone() })?;
        let version = template.choose(api.version.as_deref(), roll)?;
        // Config validation guarantees every reachable version has a model.
        Ok(version.model.as_deref().or(template.model.as_deref()).unwrap_or_default())
    }

    /// Builds the chat request for a prompt API call. `body` is the caller's JSON object of
    /// variables (plus optional `"stream": true`); `consumer` the authenticated consumer, for
    /// decorators; `roll` a random number for weighted versions.
    pub fn build_request(
        &self,
        api: &PromptApi,
        body: &[u8],
        consumer: Option<&str>,
        roll: u64,
    ) -> Result<PromptCall, PromptError> {
        let mut variables = parse_body(body)?;
        let stream = match variables.shift_remove("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err(PromptError::InvalidBody { detail: "\"stream\" must be true or false".to_string() }),
        };
        if stream && !api.allow_stream {
            return Err(PromptError::StreamNotAllowed { api: api.path.clone() });
        }
        let sel = Selection { template: api.template.clone(), version: api.version.clone(), variables };
        let resolved = self.resolve(&sel, roll)?;
        // Config validation guarantees every reachable version has a model.
        let model = resolved.version.model.clone().or_else(|| resolved.template.model.clone()).unwrap_or_default();
        let mut request = ChatRequest { model: model.clone(), stream, stream_usage: stream, ..ChatRequest::default() };
        let ctx = Context { path: &api.path, consumer, model: &model };
        let applied = self.prepare_resolved(&mut request, Some(resolved), &ctx)?;
        let used =
            applied.template.unwrap_or_else(|| TemplateUse { template: api.template.clone(), version: String::new() });
        Ok(PromptCall { request, model, used, decorators: applied.decorators, masked: applied.masked })
    }
}

fn parse_body(body: &[u8]) -> Result<Map<String, Value>, PromptError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(PromptError::InvalidBody {
            detail: "the body must be a JSON object of the prompt's variables".to_string(),
        }),
        Err(e) => {
            Err(PromptError::InvalidBody { detail: format!("the body is not valid JSON ({})", e.classify_name()) })
        }
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "data error",
            serde_json::error::Category::Eof => "unexpected end of input",
        }
    }
}
