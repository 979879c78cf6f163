//! Guards: deny/allow rules, size limits and masking over the prompt text of an IR request.
//!
//! What the guards see ("covered text"), in every content shape both dialects decode to:
//! - IR `system` text parts (OpenAI system/developer messages, Anthropic `system` string or blocks);
//! - text parts of every user and assistant message (string content or arrays of parts);
//! - text parts inside tool results (OpenAI `role: tool` messages, Anthropic `tool_result`);
//! - tool call arguments: the object keys, string values and numbers of the arguments JSON
//!   (decoded, so `\u0070` escapes cannot hide a keyword; the raw text when it is not valid
//!   JSON). A masked key is renamed; a masked number becomes the placeholder string.
//!
//! Rules and masks match the text after [`super::fold`] (zero-width characters removed,
//! full-width and other Unicode digit and letter forms folded to ASCII), so an obfuscated
//! spelling matches like the plain one; deny and allow rules also see the text as written.
//! A mask replaces the span of the original text the match was folded from.
//!
//! Not covered: images, thinking blocks (model output whose signature must stay intact) and
//! tool definitions. Rules match within one text, not across two parts.
//!
//! All rules are compiled once, at configure time: deny rules and allow rules into one
//! `regex::RegexSet` each. The `regex` crate matches in time linear in the text (no
//! backtracking), so no prompt can make a guard slow.

use super::error::GuardViolation;
use super::fold::{fold, to_original};
use crate::config_base::ConfigError;
use crate::llm::ir::{ChatRequest, DocumentSource, Part};
use base64::Engine;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde_json::Value;
use std::borrow::Cow;

/// Built-in masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// E-mail addresses.
    Email,
    /// 13-19 digit card numbers, contiguous or in groups separated by up to three spaces, dots
    /// or dashes (`4111 1111 1111 1111`, `4111.1111.1111.1111`, `4111-111111-11111`),
    /// starting with 2-6 (every major network) and passing the Luhn check, so order numbers,
    /// phone numbers and millisecond timestamps stay ([`card_within`]).
    CreditCard,
    /// Common API key shapes: OpenAI/Anthropic `sk-...`, AWS `AKIA...`, GitHub `ghp_`/`gho_`/
    /// `ghu_`/`ghs_`/`ghr_`/`github_pat_`, Slack `xox?-`, Google `AIza...`.
    ApiKey,
}

impl Builtin {
    fn pattern(self) -> &'static str {
        match self {
            Builtin::Email => r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}",
            Builtin::CreditCard => r"(?-u:\b)[0-9](?:[ .\-]{0,3}[0-9]){12,18}(?-u:\b)",
            Builtin::ApiKey => {
                r"(?-u:\b)(?:sk-[A-Za-z0-9_\-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|xox[abprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{35})"
            }
        }
    }

    fn placeholder(self) -> &'static str {
        match self {
            Builtin::Email => "[EMAIL]",
            Builtin::CreditCard => "[CREDIT_CARD]",
            Builtin::ApiKey => "[API_KEY]",
        }
    }
}

/// A deny or allow rule before compilation (from config validation).
#[derive(Debug, Clone)]
pub(crate) struct RuleSpec {
    pub name: String,
    pub pattern: String,
    pub case_insensitive: bool,
    /// Config path of the rule and the field that holds its pattern (`regex` or `keywords`),
    /// for compile errors.
    pub path: String,
    pub field: &'static str,
}

#[derive(Debug, Clone)]
pub(crate) enum MaskSource {
    Pattern(String),
    Builtin(Builtin),
}

#[derive(Debug, Clone)]
pub(crate) struct MaskSpec {
    pub name: String,
    pub source: MaskSource,
    pub placeholder: Option<String>,
    pub case_insensitive: bool,
    pub path: String,
}

#[derive(Debug, Clone)]
struct RuleSet {
    set: RegexSet,
    /// Rule names, aligned with the set's patterns (config order).
    names: Vec<String>,
}

#[derive(Debug, Clone)]
struct Mask {
    name: String,
    regex: Regex,
    placeholder: String,
    luhn: bool,
}

/// Compiled guards; `Guards::default()` checks and masks nothing.
#[derive(Debug, Clone, Default)]
pub struct Guards {
    deny: Option<RuleSet>,
    allow: Option<RuleSet>,
    max_prompt_bytes: Option<usize>,
    max_messages: Option<usize>,
    masks: Vec<Mask>,
}

/// How many spans one mask replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskCount {
    pub mask: String,
    pub count: usize,
}

/// Compiled-size bound per pattern (the regex crate's default is 10 MiB).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The regex for a keyword list: any keyword, as a whole word. A keyword edge that is a word
/// character must border a non-word character or the text's start/end (`\W` rather than `\b`,
/// which keeps the pattern in the lazy DFA for non-ASCII text). Keywords are grouped by which
/// edges need a boundary so each group's boundary classes appear once (a Unicode `\W` per
/// keyword would make long lists too large to compile). Errors carry the index of the
/// offending keyword, if one is at fault.
pub(crate) fn keywords_pattern(keywords: &[String]) -> Result<String, (Option<usize>, String)> {
    if keywords.is_empty() {
        return Err((None, "at least one keyword is required".to_string()));
    }
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    // Index: left boundary needed * 2 + right boundary needed.
    let mut groups: [Vec<String>; 4] = Default::default();
    for (i, keyword) in keywords.iter().enumerate() {
        if keyword.trim().is_empty() {
            return Err((Some(i), "must not be empty".to_string()));
        }
        let left = usize::from(is_word(keyword.chars().next()));
        let right = usize::from(is_word(keyword.chars().next_back()));
        if let Some(group) = groups.get_mut(left * 2 + right) {
            group.push(regex::escape(keyword));
        }
    }
    let mut alternatives = Vec::new();
    for (index, group) in groups.iter().enumerate() {
        if group.is_empty() {
            continue;
        }
        let left = if index >= 2 { r"(?:^|\W)" } else { "" };
        let right = if index % 2 == 1 { r"(?:\W|$)" } else { "" };
        alternatives.push(format!("{left}(?:{}){right}", group.join("|")));
    }
    Ok(format!("(?:{})", alternatives.join("|")))
}

fn regex_error(path: &str, e: &regex::Error) -> ConfigError {
    let message = match e {
        regex::Error::Syntax(s) => {
            let detail = s.lines().rev().find_map(|l| l.strip_prefix("error: ")).unwrap_or(s.as_str());
            format!("invalid regex: {detail}")
        }
        regex::Error::CompiledTooBig(limit) => {
            format!("the regex is too large once compiled (limit {limit} bytes); simplify it")
        }
        other => format!("invalid regex: {other}"),
    };
    ConfigError { path: path.to_string(), message }
}

fn compile_set(rules: Vec<RuleSpec>) -> Result<Option<RuleSet>, ConfigError> {
    if rules.is_empty() {
        return Ok(None);
    }
    // `prompts.guards.deny[0]` -> `prompts.guards.deny`, for an error of the set as a whole.
    let set_path = rules.first().and_then(|r| r.path.rsplit_once('[')).map(|(p, _)| p.to_string()).unwrap_or_default();
    let mut patterns = Vec::with_capacity(rules.len());
    let mut names = Vec::with_capacity(rules.len());
    for rule in rules {
        let pattern = if rule.case_insensitive { format!("(?i){}", rule.pattern) } else { rule.pattern };
        // Compiled alone first so an error names the rule's path.
        RegexBuilder::new(&pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| regex_error(&format!("{}.{}", rule.path, rule.field), &e))?;
        patterns.push(pattern);
        names.push(rule.name);
    }
    let set = RegexSetBuilder::new(&patterns)
        .size_limit(REGEX_SIZE_LIMIT.saturating_mul(patterns.len()))
        .build()
        .map_err(|e| regex_error(&set_path, &e))?;
    Ok(Some(RuleSet { set, names }))
}

impl Guards {
    pub(crate) fn compile(
        deny: Vec<RuleSpec>,
        allow: Vec<RuleSpec>,
        max_prompt_bytes: Option<usize>,
        max_messages: Option<usize>,
        masks: Vec<MaskSpec>,
    ) -> Result<Guards, ConfigError> {
        let deny = compile_set(deny)?;
        let allow = compile_set(allow)?;
        let mut compiled = Vec::with_capacity(masks.len());
        for m in masks {
            let (pattern, default_placeholder, luhn) = match &m.source {
                MaskSource::Pattern(p) => (p.as_str(), "[REDACTED]", false),
                MaskSource::Builtin(b) => (b.pattern(), b.placeholder(), *b == Builtin::CreditCard),
            };
            let regex = RegexBuilder::new(pattern)
                .case_insensitive(m.case_insensitive)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| regex_error(&format!("{}.pattern", m.path), &e))?;
            let placeholder = m.placeholder.unwrap_or_else(|| default_placeholder.to_string());
            compiled.push(Mask { name: m.name, regex, placeholder, luhn });
        }
        Ok(Guards { deny, allow, max_prompt_bytes, max_messages, masks: compiled })
    }

    /// Nothing to check and nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.deny.is_none()
            && self.allow.is_none()
            && self.max_prompt_bytes.is_none()
            && self.max_messages.is_none()
            && self.masks.is_empty()
    }

    pub fn has_masks(&self) -> bool {
        !self.masks.is_empty()
    }

    /// Checks the request's covered text plus `extra` texts (e.g. template variable values).
    /// In order: `max_messages` (IR turns, system excluded), `max_prompt_bytes` (bytes of all
    /// covered text), deny rules (the first violated rule in config order is reported), then
    /// allow rules (some covered text must match one; reported as rule `allow`).
    pub fn check(&self, req: &ChatRequest, extra: &[&str]) -> Result<(), GuardViolation> {
        let violation = |rule: &str| GuardViolation { rule: rule.to_string() };
        if self.max_messages.is_some_and(|max| req.messages.len() > max) {
            return Err(violation("max_messages"));
        }
        if self.deny.is_none() && self.allow.is_none() && self.max_prompt_bytes.is_none() {
            return Ok(());
        }
        let mut texts: Vec<Cow<'_, str>> = extra.iter().map(|t| Cow::Borrowed(*t)).collect();
        collect_texts(req, &mut texts);
        if let Some(max) = self.max_prompt_bytes {
            let total = texts.iter().fold(0usize, |acc, t| acc.saturating_add(t.len()));
            if total > max {
                return Err(violation("max_prompt_bytes"));
            }
        }
        // Each text as written and, when folding changes it, folded.
        let folded: Vec<Cow<'_, str>> = texts
            .iter()
            .filter_map(|t| match fold(t) {
                Cow::Owned(f) => Some(Cow::Owned(f)),
                Cow::Borrowed(_) => None,
            })
            .collect();
        let views = || texts.iter().chain(folded.iter()).map(|t| t.as_ref());
        if let Some(deny) = &self.deny {
            let first =
                views().filter(|t| deny.set.is_match(t)).filter_map(|t| deny.set.matches(t).iter().next()).min();
            if let Some(name) = first.and_then(|i| deny.names.get(i)) {
                return Err(violation(name));
            }
        }
        if let Some(allow) = &self.allow {
            if !views().any(|t| allow.set.is_match(t)) {
                return Err(violation("allow"));
            }
        }
        Ok(())
    }

    /// Replaces every masked span in the request's covered text with its placeholder.
    /// Returns the non-zero counts per mask, in config order.
    pub fn mask(&self, req: &mut ChatRequest) -> Vec<MaskCount> {
        let mut counts = self.mask_counts();
        self.mask_into(req, &mut counts);
        self.report(counts)
    }

    /// [`Guards::mask`], adding to `counts` (see [`Guards::mask_counts`]).
    pub fn mask_into(&self, req: &mut ChatRequest, counts: &mut [usize]) {
        if self.masks.is_empty() {
            return;
        }
        for part in req.system.iter_mut() {
            self.mask_part(part, counts);
        }
        for message in req.messages.iter_mut() {
            for part in message.content.iter_mut() {
                self.mask_part(part, counts);
            }
        }
    }

    /// Masks one text in place; adds to `counts` (aligned with the masks; see [`Guards::mask_counts`]).
    pub fn mask_text(&self, text: &mut String, counts: &mut [usize]) {
        if let Some(masked) = self.mask_str(text, counts) {
            *text = masked;
        }
    }

    /// A zeroed counter vector for [`Guards::mask_text`].
    pub fn mask_counts(&self) -> Vec<usize> {
        vec![0; self.masks.len()]
    }

    /// Turns counters into the non-zero per-mask report.
    pub fn report(&self, counts: Vec<usize>) -> Vec<MaskCount> {
        self.masks
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .map(|(m, count)| MaskCount { mask: m.name.clone(), count })
            .collect()
    }

    fn mask_part(&self, part: &mut Part, counts: &mut [usize]) {
        match part {
            Part::Text(text) => self.mask_text(text, counts),
            Part::ToolCall(call) => self.mask_arguments(&mut call.arguments, counts),
            Part::ToolResult(result) => {
                for inner in result.content.iter_mut() {
                    self.mask_part(inner, counts);
                }
            }
            // The text a model reads of a document: its plain text (base64 `text/*` bytes
            // decoded, masked and encoded again), title and context. PDF bytes cannot be
            // inspected, like images.
            Part::Document(doc) => {
                match &mut doc.source {
                    DocumentSource::Text(text) => self.mask_text(text, counts),
                    DocumentSource::Base64 { media_type, data } if media_type.starts_with("text/") => {
                        if let Some(mut text) = decoded_text(data) {
                            self.mask_text(&mut text, counts);
                            *data = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
                        }
                    }
                    _ => {}
                }
                for text in [&mut doc.name, &mut doc.context].into_iter().flatten() {
                    self.mask_text(text, counts);
                }
            }
            // Search results and server-tool results are prompt text too.
            Part::AnthropicBlock(block) => self.mask_value(block, counts),
            Part::Image(_) | Part::Thinking { .. } | Part::RedactedThinking { .. } | Part::CachePoint(_) => {}
        }
    }

    /// Masks the string values of a JSON arguments text and re-serializes it when something
    /// changed (so the arguments stay valid JSON whatever the pattern); masks the raw text
    /// when it is not JSON.
    fn mask_arguments(&self, arguments: &mut String, counts: &mut [usize]) {
        match serde_json::from_str::<Value>(arguments) {
            Ok(mut value) => {
                let before: usize = counts.iter().sum();
                self.mask_value(&mut value, counts);
                if counts.iter().sum::<usize>() != before {
                    if let Ok(text) = serde_json::to_string(&value) {
                        *arguments = text;
                    }
                }
            }
            Err(_) => self.mask_text(arguments, counts),
        }
    }

    /// Masks string values, object keys (a masked key is renamed, kept unique) and numbers (a
    /// masked number becomes the placeholder string: a card number sent as a JSON number is
    /// a card number).
    fn mask_value(&self, value: &mut Value, counts: &mut [usize]) {
        match value {
            Value::String(s) => self.mask_text(s, counts),
            Value::Array(items) => items.iter_mut().for_each(|v| self.mask_value(v, counts)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut item) in entries {
                    self.mask_value(&mut item, counts);
                    let mut key = self.mask_str(&key, counts).unwrap_or(key);
                    while map.contains_key(&key) {
                        key.push('_');
                    }
                    map.insert(key, item);
                }
            }
            Value::Number(n) => {
                if let Some(masked) = self.mask_str(&n.to_string(), counts) {
                    *value = Value::String(masked);
                }
            }
            Value::Null | Value::Bool(_) => {}
        }
    }

    /// Applies every mask in config order; `None` when nothing changed. Each mask matches the
    /// folded text and replaces the original spans its matches came from.
    fn mask_str(&self, text: &str, counts: &mut [usize]) -> Option<String> {
        // Placeholders are ASCII: a text with nothing to fold stays so after masking.
        let folds = matches!(fold(text), Cow::Owned(_));
        let mut current: Option<String> = None;
        for (i, mask) in self.masks.iter().enumerate() {
            let haystack = current.as_deref().unwrap_or(text);
            let spans = mask_spans(mask, haystack, folds);
            if spans.is_empty() {
                continue;
            }
            let mut out = String::with_capacity(haystack.len());
            let mut copied = 0;
            for &(start, end) in &spans {
                out.push_str(haystack.get(copied..start).unwrap_or(""));
                out.push_str(&mask.placeholder);
                copied = end;
            }
            out.push_str(haystack.get(copied..).unwrap_or(""));
            if let Some(c) = counts.get_mut(i) {
                *c = c.saturating_add(spans.len());
            }
            current = Some(out);
        }
        current
    }
}

/// The spans of `text` (as written) that `mask` replaces: its matches in the folded text
/// (cards: the card number within each candidate), mapped back. Empty matches mask nothing.
/// `folds`: whether folding changes `text` (known to the caller).
fn mask_spans(mask: &Mask, text: &str, folds: bool) -> Vec<(usize, usize)> {
    let folded = if folds { fold(text) } else { Cow::Borrowed(text) };
    let mut spans = Vec::new();
    for m in mask.regex.find_iter(&folded) {
        if m.is_empty() {
            continue;
        }
        if mask.luhn {
            if let Some((start, end)) = card_within(m.as_str()) {
                spans.push((m.start() + start, m.start() + end));
            }
        } else {
            spans.push((m.start(), m.end()));
        }
    }
    match folded {
        Cow::Borrowed(_) => spans,
        Cow::Owned(_) => to_original(text, &spans),
    }
}

/// The card number within a candidate span of digits and separators: the longest run of
/// 13-19 of its digits that starts and ends at a digit group's edge, starts with 2-6 (card
/// networks: Mastercard 2/5, Amex/Diners/JCB 3, Visa 4, Discover/UnionPay 6) and passes the
/// Luhn check. A candidate may hold more than the card (`4111 1111 1111 1111 2` items).
pub fn card_within(span: &str) -> Option<(usize, usize)> {
    let digits: Vec<(usize, u32)> = span.char_indices().filter_map(|(i, c)| c.to_digit(10).map(|d| (i, d))).collect();
    // A digit continues its group when it directly follows the previous digit.
    let continues = |k: usize| match (k.checked_sub(1).and_then(|p| digits.get(p)), digits.get(k)) {
        (Some(&(prev, _)), Some(&(here, _))) => here == prev + 1,
        _ => false,
    };
    let mut best: Option<(usize, usize)> = None;
    for first in 0..digits.len() {
        let starts_card = digits.get(first).is_some_and(|&(_, d)| (2..=6).contains(&d));
        if continues(first) || !starts_card {
            continue;
        }
        for last in (first + 12..=(first + 18).min(digits.len().saturating_sub(1))).rev() {
            if continues(last + 1) {
                continue;
            }
            let run: Vec<u32> = digits.get(first..=last).unwrap_or_default().iter().map(|&(_, d)| d).collect();
            if luhn_digits(&run) {
                if best.is_none_or(|(a, b)| last - first > b - a) {
                    best = Some((first, last));
                }
                break;
            }
        }
    }
    let (first, last) = best?;
    Some((digits.get(first)?.0, digits.get(last)?.0 + 1))
}

/// The Luhn checksum over the digits of `span` (separators ignored), 13-19 digits.
pub fn luhn_valid(span: &str) -> bool {
    let digits: Vec<u32> = span.chars().filter_map(|c| c.to_digit(10)).collect();
    luhn_digits(&digits)
}

fn luhn_digits(digits: &[u32]) -> bool {
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Collects the covered text of a request (see the module docs).
pub(crate) fn collect_texts<'a>(req: &'a ChatRequest, out: &mut Vec<Cow<'a, str>>) {
    for part in &req.system {
        collect_part(part, out);
    }
    for message in &req.messages {
        for part in &message.content {
            collect_part(part, out);
        }
    }
}

/// The UTF-8 text of base64 document bytes, if they are that.
fn decoded_text(data: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(data.trim()).ok()?;
    String::from_utf8(bytes).ok()
}

fn collect_part<'a>(part: &'a Part, out: &mut Vec<Cow<'a, str>>) {
    match part {
        Part::Text(text) => out.push(Cow::Borrowed(text)),
        Part::ToolCall(call) => match serde_json::from_str::<Value>(&call.arguments) {
            Ok(value) => collect_strings(value, out),
            Err(_) => out.push(Cow::Borrowed(&call.arguments)),
        },
        Part::ToolResult(result) => result.content.iter().for_each(|p| collect_part(p, out)),
        Part::Document(doc) => {
            match &doc.source {
                DocumentSource::Text(text) => out.push(Cow::Borrowed(text)),
                DocumentSource::Base64 { media_type, data } if media_type.starts_with("text/") => {
                    // Text a guard cannot read must not pass: undecodable text is checked as is.
                    out.push(decoded_text(data).map_or(Cow::Borrowed(data.as_str()), Cow::Owned));
                }
                _ => {}
            }
            out.extend([&doc.name, &doc.context].into_iter().flatten().map(|t| Cow::Borrowed(t.as_str())));
        }
        Part::AnthropicBlock(block) => collect_strings(block.clone(), out),
        Part::Image(_) | Part::Thinking { .. } | Part::RedactedThinking { .. } | Part::CachePoint(_) => {}
    }
}

/// Strings, object keys and numbers of a JSON value: everything a guard must see.
fn collect_strings(value: Value, out: &mut Vec<Cow<'_, str>>) {
    match value {
        Value::String(s) => out.push(Cow::Owned(s)),
        Value::Array(items) => items.into_iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.into_iter().for_each(|(k, v)| {
            out.push(Cow::Owned(k));
            collect_strings(v, out);
        }),
        Value::Number(n) => out.push(Cow::Owned(n.to_string())),
        Value::Null | Value::Bool(_) => {}
    }
}
