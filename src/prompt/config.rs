//! The prompt sections of the plugin configuration, as written in JSON (strict: unknown fields
//! are errors), and their validation into [`Prompts`]. Errors carry the path of the offending
//! value under a prefix the caller chooses, e.g.
//! `prompts.templates["summarize"].versions["2"].messages[0].content: uses undeclared variable "lang"`.

use super::decorate::{Decorator, Matcher};
use super::guard::{Builtin, Guards, MaskSource, MaskSpec, RuleSpec};
use super::template::{parse_segments, Pick, Template, TemplateMessage, TemplateRole, VarType, Variable, Version};
use super::{ForcedTemplate, PromptApi, Prompts};
use crate::config_base::{check_name, err, strip_position, ConfigError};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPromptConfig {
    #[serde(default)]
    pub templates: BTreeMap<String, RawTemplate>,
    #[serde(default)]
    pub decorators: Vec<RawDecorator>,
    #[serde(default)]
    pub guards: Option<RawGuards>,
    /// Request path (e.g. `/v1/prompts/summarize`) -> the template it serves.
    #[serde(default)]
    pub prompt_apis: BTreeMap<String, RawPromptApi>,
    /// Templates the operator imposes by route, consumer or model (first match wins).
    #[serde(default)]
    pub forced_templates: Vec<RawForcedTemplate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForcedTemplate {
    #[serde(default, rename = "match")]
    pub matcher: RawMatch,
    pub template: String,
    /// Pins a version; otherwise the template's weights or default version decide.
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTemplate {
    pub versions: BTreeMap<String, RawVersion>,
    /// Version name -> weight for unpinned requests; versions left out get 0 (pinned only).
    #[serde(default)]
    pub weights: Option<BTreeMap<String, u32>>,
    /// The version unpinned requests get when there are no weights.
    #[serde(default)]
    pub default_version: Option<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, RawVariable>,
    /// Public model a prompt API sends the rendered request to.
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVersion {
    pub messages: Vec<RawMessage>,
    /// Overrides the template's `model` for this version.
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMessage {
    pub role: RawRole,
    pub content: String,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RawRole {
    System,
    User,
    Assistant,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVariable {
    #[serde(rename = "type")]
    pub kind: RawVarType,
    /// The allowed values of an `enum`.
    #[serde(default)]
    pub values: Option<Vec<String>>,
    /// Defaults to true unless a `default` is given.
    #[serde(default)]
    pub required: Option<bool>,
    #[serde(default)]
    pub default: Option<Value>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RawVarType {
    String,
    Number,
    Boolean,
    Enum,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDecorator {
    /// For logs and metrics; defaults to `decorators[<index>]`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "match")]
    pub matcher: RawMatch,
    #[serde(default)]
    pub prepend: Vec<RawMessage>,
    #[serde(default)]
    pub append: Vec<RawMessage>,
}

/// Every condition given must hold; an empty match applies to every request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    #[serde(default)]
    pub route_prefix: Option<String>,
    #[serde(default)]
    pub consumer: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuards {
    #[serde(default)]
    pub deny: Vec<RawRule>,
    /// When any allow rule exists, a prompt must match at least one.
    #[serde(default)]
    pub allow: Vec<RawRule>,
    #[serde(default)]
    pub max_prompt_bytes: Option<usize>,
    #[serde(default)]
    pub max_messages: Option<usize>,
    #[serde(default)]
    pub mask: Vec<RawMask>,
}

/// Exactly one of `regex` and `keywords`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: String,
    #[serde(default)]
    pub regex: Option<String>,
    /// Matched as whole words.
    #[serde(default)]
    pub keywords: Option<Vec<String>>,
    #[serde(default)]
    pub case_insensitive: bool,
}

/// Exactly one of `pattern` and `builtin`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMask {
    pub name: String,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub builtin: Option<RawBuiltin>,
    /// Defaults to `[EMAIL]`, `[CREDIT_CARD]`, `[API_KEY]` for built-ins, `[REDACTED]` otherwise.
    #[serde(default)]
    pub placeholder: Option<String>,
    #[serde(default)]
    pub case_insensitive: bool,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawBuiltin {
    Email,
    CreditCard,
    ApiKey,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPromptApi {
    pub template: String,
    /// Pins a version; otherwise the template's weights or default version decide.
    #[serde(default)]
    pub version: Option<String>,
    /// Whether callers may ask for `"stream": true`.
    #[serde(default = "yes")]
    pub allow_stream: bool,
}

fn yes() -> bool {
    true
}

/// POST paths the gateway serves itself (`engine`'s endpoint table); a prompt API, matched
/// first, would shadow them. (`/v1/models` is a GET: a POST prompt API there shadows nothing.)
const RESERVED_PATHS: [&str; 4] = ["/v1/chat/completions", "/v1/messages", "/v1/embeddings", "/v1/responses"];
/// Guard rule names the gateway reports itself.
const RESERVED_RULES: [&str; 3] = ["allow", "max_prompt_bytes", "max_messages"];

/// Parses a JSON document holding the prompt sections (the value of the plugin config's
/// prompt member) and validates it. Paths in errors start with `prefix`.
pub fn parse(json: &[u8], prefix: &str, is_model: &dyn Fn(&str) -> bool) -> Result<Prompts, ConfigError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let raw: RawPromptConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| ConfigError {
        path: render_path(prefix, e.path()),
        message: strip_position(&e.inner().to_string()),
    })?;
    de.end().map_err(|e| ConfigError { path: prefix.to_string(), message: strip_position(&e.to_string()) })?;
    validate(raw, prefix, is_model)
}

/// The same, from an already-parsed JSON value (e.g. a `serde_json::Value` member of the
/// plugin's raw config).
pub fn parse_value(value: &Value, prefix: &str, is_model: &dyn Fn(&str) -> bool) -> Result<Prompts, ConfigError> {
    let raw: RawPromptConfig = serde_path_to_error::deserialize(value)
        .map_err(|e| ConfigError { path: render_path(prefix, e.path()), message: e.inner().to_string() })?;
    validate(raw, prefix, is_model)
}

/// The maps whose keys the operator chose (quoted in error paths).
const NAMED_MAPS: [&str; 5] = ["templates", "versions", "variables", "weights", "prompt_apis"];

fn render_path(prefix: &str, path: &serde_path_to_error::Path) -> String {
    crate::config_base::render_path(prefix, path, &NAMED_MAPS)
}

fn at(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() {
        rest.to_string()
    } else {
        format!("{prefix}.{rest}")
    }
}

/// Validates the raw sections. `is_model` says whether a public model name exists (template
/// `model` and decorator `match.model` are checked against it).
pub fn validate(raw: RawPromptConfig, prefix: &str, is_model: &dyn Fn(&str) -> bool) -> Result<Prompts, ConfigError> {
    let mut templates = BTreeMap::new();
    for (name, t) in raw.templates {
        let path = at(prefix, &format!("templates[{name:?}]"));
        let template = validate_template(&path, name.clone(), t, is_model)?;
        templates.insert(name, template);
    }
    let mut decorators = Vec::with_capacity(raw.decorators.len());
    for (i, d) in raw.decorators.into_iter().enumerate() {
        decorators.push(validate_decorator(&at(prefix, &format!("decorators[{i}]")), i, d, is_model)?);
    }
    let guards = match raw.guards {
        Some(g) => validate_guards(&at(prefix, "guards"), g)?,
        None => Guards::default(),
    };
    let mut apis = BTreeMap::new();
    for (path_key, a) in raw.prompt_apis {
        let path = at(prefix, &format!("prompt_apis[{path_key:?}]"));
        let api = validate_api(&path, &prefix_templates(prefix), path_key.clone(), a, &templates)?;
        apis.insert(path_key, api);
    }
    let mut forced = Vec::with_capacity(raw.forced_templates.len());
    for (i, f) in raw.forced_templates.into_iter().enumerate() {
        forced.push(validate_forced(&at(prefix, &format!("forced_templates[{i}]")), f, &templates, is_model)?);
    }
    Ok(Prompts { templates, decorators, guards, apis, forced })
}

fn validate_matcher(path: &str, m: RawMatch, is_model: &dyn Fn(&str) -> bool) -> Result<Matcher, ConfigError> {
    if let Some(prefix) = &m.route_prefix {
        if !prefix.starts_with('/') {
            return Err(err(format!("{path}.match.route_prefix"), format!("{prefix:?} must start with '/'")));
        }
    }
    if let Some(model) = &m.model {
        check_model(format!("{path}.match.model"), model, is_model)?;
    }
    Ok(Matcher { route_prefix: m.route_prefix, consumer: m.consumer, model: m.model })
}

fn validate_forced(
    path: &str,
    f: RawForcedTemplate,
    templates: &BTreeMap<String, Template>,
    is_model: &dyn Fn(&str) -> bool,
) -> Result<ForcedTemplate, ConfigError> {
    let matcher = validate_matcher(path, f.matcher, is_model)?;
    template_version(path, &f.template, f.version.as_deref(), templates)?;
    Ok(ForcedTemplate { matcher, template: f.template, version: f.version })
}

/// The template `name` names (at `<path>.template`), which must have `version` if one is pinned.
fn template_version<'a>(
    path: &str,
    name: &str,
    version: Option<&str>,
    templates: &'a BTreeMap<String, Template>,
) -> Result<&'a Template, ConfigError> {
    let template =
        templates.get(name).ok_or_else(|| err(format!("{path}.template"), format!("no template named {name:?}")))?;
    if let Some(version) = version {
        if template.version(version).is_none() {
            return Err(err(format!("{path}.version"), format!("template {name:?} has no version {version:?}")));
        }
    }
    Ok(template)
}

fn prefix_templates(prefix: &str) -> String {
    at(prefix, "templates")
}

fn check_model(path: String, model: &str, is_model: &dyn Fn(&str) -> bool) -> Result<(), ConfigError> {
    if is_model(model) {
        Ok(())
    } else {
        Err(err(path, format!("no model named {model:?}")))
    }
}

fn validate_template(
    path: &str,
    name: String,
    t: RawTemplate,
    is_model: &dyn Fn(&str) -> bool,
) -> Result<Template, ConfigError> {
    check_name(path, &name)?;
    if let Some(model) = &t.model {
        check_model(format!("{path}.model"), model, is_model)?;
    }
    let mut variables = Vec::with_capacity(t.variables.len());
    for (var_name, v) in t.variables {
        variables.push(validate_variable(&format!("{path}.variables[{var_name:?}]"), var_name, v)?);
    }
    let lookup = |n: &str| variables.iter().position(|v: &Variable| v.name == n);

    if t.versions.is_empty() {
        return Err(err(format!("{path}.versions"), "at least one version is required"));
    }
    let mut versions = Vec::with_capacity(t.versions.len());
    for (version_name, v) in t.versions {
        let vpath = format!("{path}.versions[{version_name:?}]");
        check_name(&vpath, &version_name)?;
        if let Some(model) = &v.model {
            check_model(format!("{vpath}.model"), model, is_model)?;
        }
        if v.messages.is_empty() {
            return Err(err(format!("{vpath}.messages"), "at least one message is required"));
        }
        let mut messages = Vec::with_capacity(v.messages.len());
        for (i, m) in v.messages.into_iter().enumerate() {
            let cpath = format!("{vpath}.messages[{i}].content");
            if m.content.trim().is_empty() {
                return Err(err(cpath, "must not be empty"));
            }
            let content = parse_segments(&m.content, &lookup).map_err(|message| err(cpath, message))?;
            messages.push(TemplateMessage { role: role(m.role), content });
        }
        versions.push(Version { name: version_name, model: v.model, messages });
    }

    let pick = match (t.weights, t.default_version) {
        (Some(_), Some(_)) => {
            return Err(err(path, "use either \"weights\" or \"default_version\", not both"));
        }
        (Some(weights), None) => {
            let mut aligned = vec![0u64; versions.len()];
            for (version_name, weight) in weights {
                let i = versions.iter().position(|v| v.name == version_name).ok_or_else(|| {
                    err(
                        format!("{path}.weights[{version_name:?}]"),
                        format!("no version {version_name:?} in this template"),
                    )
                })?;
                if let Some(slot) = aligned.get_mut(i) {
                    *slot = u64::from(weight);
                }
            }
            let total: u64 = aligned.iter().sum();
            if total == 0 {
                return Err(err(format!("{path}.weights"), "at least one weight must be greater than 0"));
            }
            Pick::Weighted { weights: aligned, total }
        }
        (None, Some(default)) => {
            let i = versions.iter().position(|v| v.name == default).ok_or_else(|| {
                err(format!("{path}.default_version"), format!("no version {default:?} in this template"))
            })?;
            Pick::Fixed(i)
        }
        (None, None) if versions.len() == 1 => Pick::Fixed(0),
        (None, None) => {
            return Err(err(path, "several versions need \"default_version\" or \"weights\" to choose between them"));
        }
    };
    Ok(Template { name, variables, versions, model: t.model, pick })
}

fn role(r: RawRole) -> TemplateRole {
    match r {
        RawRole::System => TemplateRole::System,
        RawRole::User => TemplateRole::User,
        RawRole::Assistant => TemplateRole::Assistant,
    }
}

fn validate_variable(path: &str, name: String, v: RawVariable) -> Result<Variable, ConfigError> {
    let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64;
    if !valid_name {
        return Err(err(
            path,
            format!("{name:?} is not a valid variable name (letters, digits and '_', not starting with a digit)"),
        ));
    }
    let kind = match (v.kind, v.values) {
        (RawVarType::Enum, Some(values)) => {
            if values.is_empty() {
                return Err(err(format!("{path}.values"), "an enum needs at least one value"));
            }
            for (i, value) in values.iter().enumerate() {
                if values.iter().take(i).any(|earlier| earlier == value) {
                    return Err(err(format!("{path}.values[{i}]"), format!("{value:?} is listed twice")));
                }
            }
            VarType::Enum(values)
        }
        (RawVarType::Enum, None) => return Err(err(path, "an enum needs \"values\"")),
        (_, Some(_)) => return Err(err(format!("{path}.values"), "only an enum has \"values\"")),
        (RawVarType::String, None) => VarType::String,
        (RawVarType::Number, None) => VarType::Number,
        (RawVarType::Boolean, None) => VarType::Boolean,
    };
    let default = match &v.default {
        None => None,
        Some(value) => {
            let text = kind.render(value);
            Some(text.ok_or_else(|| err(format!("{path}.default"), format!("must be {}", kind.expected())))?)
        }
    };
    let required = match (v.required, &default) {
        (Some(true), Some(_)) => return Err(err(path, "a required variable cannot have a default")),
        (Some(r), _) => r,
        (None, d) => d.is_none(),
    };
    Ok(Variable { name, kind, required, default })
}

fn validate_decorator(
    path: &str,
    index: usize,
    d: RawDecorator,
    is_model: &dyn Fn(&str) -> bool,
) -> Result<Decorator, ConfigError> {
    let name = match d.name {
        Some(n) => {
            check_name(&format!("{path}.name"), &n)?;
            n
        }
        None => format!("decorators[{index}]"),
    };
    let matcher = validate_matcher(path, d.matcher, is_model)?;
    if d.prepend.is_empty() && d.append.is_empty() {
        return Err(err(path, "a decorator must \"prepend\" or \"append\" at least one message"));
    }
    let texts = |field: &str, list: Vec<RawMessage>| -> Result<Vec<(TemplateRole, String)>, ConfigError> {
        let mut out = Vec::with_capacity(list.len());
        for (i, m) in list.into_iter().enumerate() {
            let mpath = format!("{path}.{field}[{i}]");
            if m.role == RawRole::Assistant {
                return Err(err(format!("{mpath}.role"), "a decorator adds system or user text only"));
            }
            if m.content.trim().is_empty() {
                return Err(err(format!("{mpath}.content"), "must not be empty"));
            }
            out.push((role(m.role), m.content));
        }
        Ok(out)
    };
    let prepend = texts("prepend", d.prepend)?;
    let append = texts("append", d.append)?;
    Ok(Decorator { name, matcher, prepend, append })
}

fn validate_guards(path: &str, g: RawGuards) -> Result<Guards, ConfigError> {
    let mut names: Vec<String> = Vec::new();
    let mut rules = |field: &str, list: Vec<RawRule>| -> Result<Vec<RuleSpec>, ConfigError> {
        let mut out = Vec::with_capacity(list.len());
        for (i, r) in list.into_iter().enumerate() {
            let rpath = format!("{path}.{field}[{i}]");
            check_name(&format!("{rpath}.name"), &r.name)?;
            if RESERVED_RULES.contains(&r.name.as_str()) {
                return Err(err(
                    format!("{rpath}.name"),
                    format!("{:?} is reserved for the gateway's own checks", r.name),
                ));
            }
            if names.contains(&r.name) {
                return Err(err(format!("{rpath}.name"), format!("another rule is already named {:?}", r.name)));
            }
            names.push(r.name.clone());
            let (pattern, source_field) = match (r.regex, r.keywords) {
                (Some(regex), None) => {
                    if regex.is_empty() {
                        return Err(err(format!("{rpath}.regex"), "must not be empty"));
                    }
                    (regex, "regex")
                }
                (None, Some(keywords)) => {
                    let pattern = super::guard::keywords_pattern(&keywords).map_err(|(i, m)| match i {
                        Some(i) => err(format!("{rpath}.keywords[{i}]"), m),
                        None => err(format!("{rpath}.keywords"), m),
                    })?;
                    (pattern, "keywords")
                }
                (Some(_), Some(_)) => return Err(err(rpath, "use either \"regex\" or \"keywords\", not both")),
                (None, None) => return Err(err(rpath, "needs \"regex\" or \"keywords\"")),
            };
            out.push(RuleSpec {
                name: r.name,
                pattern,
                case_insensitive: r.case_insensitive,
                path: rpath,
                field: source_field,
            });
        }
        Ok(out)
    };
    let deny = rules("deny", g.deny)?;
    let allow = rules("allow", g.allow)?;
    for (field, value) in [("max_prompt_bytes", g.max_prompt_bytes), ("max_messages", g.max_messages)] {
        if value == Some(0) {
            return Err(err(format!("{path}.{field}"), "must be greater than 0"));
        }
    }
    let mut masks = Vec::with_capacity(g.mask.len());
    for (i, m) in g.mask.into_iter().enumerate() {
        let mpath = format!("{path}.mask[{i}]");
        check_name(&format!("{mpath}.name"), &m.name)?;
        if masks.iter().any(|x: &MaskSpec| x.name == m.name) {
            return Err(err(format!("{mpath}.name"), format!("another mask is already named {:?}", m.name)));
        }
        let source = match (m.pattern, m.builtin) {
            (Some(p), None) if p.is_empty() => return Err(err(format!("{mpath}.pattern"), "must not be empty")),
            (Some(p), None) => MaskSource::Pattern(p),
            (None, Some(b)) => MaskSource::Builtin(match b {
                RawBuiltin::Email => Builtin::Email,
                RawBuiltin::CreditCard => Builtin::CreditCard,
                RawBuiltin::ApiKey => Builtin::ApiKey,
            }),
            (Some(_), Some(_)) => return Err(err(mpath, "use either \"pattern\" or \"builtin\", not both")),
            (None, None) => return Err(err(mpath, "needs \"pattern\" or \"builtin\"")),
        };
        if let Some(p) = &m.placeholder {
            if p.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
                return Err(err(
                    format!("{mpath}.placeholder"),
                    "must not contain quotes, backslashes or control characters",
                ));
            }
        }
        masks.push(MaskSpec {
            name: m.name,
            source,
            placeholder: m.placeholder,
            case_insensitive: m.case_insensitive,
            path: mpath,
        });
    }
    Guards::compile(deny, allow, g.max_prompt_bytes, g.max_messages, masks)
}

fn validate_api(
    path: &str,
    templates_path: &str,
    api_path: String,
    a: RawPromptApi,
    templates: &BTreeMap<String, Template>,
) -> Result<PromptApi, ConfigError> {
    if !api_path.starts_with('/') || api_path.contains(['?', '#', ' ']) || api_path.ends_with('/') {
        return Err(err(
            path,
            "the key must be a request path starting with '/', without query, spaces or a trailing '/'",
        ));
    }
    if RESERVED_PATHS.contains(&api_path.as_str()) {
        return Err(err(path, "this path is one of the gateway's own endpoints"));
    }
    let template = template_version(path, &a.template, a.version.as_deref(), templates)?;
    // Every version the API can reach needs a model to send the request to.
    let reachable: Vec<&Version> = match &a.version {
        Some(v) => template.versions.iter().filter(|x| &x.name == v).collect(),
        None => match &template.pick {
            Pick::Fixed(i) => template.versions.get(*i).into_iter().collect(),
            Pick::Weighted { weights, .. } => {
                template.versions.iter().zip(weights).filter(|(_, w)| **w > 0).map(|(v, _)| v).collect()
            }
        },
    };
    if let Some(v) = reachable.iter().find(|v| v.model.is_none() && template.model.is_none()) {
        return Err(err(
            format!("{path}.template"),
            format!(
                "template {:?} has no model for version {:?}; set {templates_path}[{:?}].model",
                a.template, v.name, a.template
            ),
        ));
    }
    if template.variables.iter().any(|v| v.name == "stream") {
        return Err(err(
            format!("{path}.template"),
            format!("template {:?} declares a variable \"stream\", which a prompt API reserves", a.template),
        ));
    }
    Ok(PromptApi { path: api_path, template: a.template, version: a.version, allow_stream: a.allow_stream })
}
