//! OpenAI wire format: usage in responses and stream chunks, and the error shape.

use crate::json_scan::{self, Member};
use crate::usage::{Usage, UsageSource};
use serde::Deserialize;
use std::borrow::Cow;

#[derive(Debug, Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
    /// DeepSeek's own name for cached input (it sends `prompt_tokens_details` too, but only
    /// since 2025; older deployments and some proxies of it send only this).
    #[serde(default)]
    prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

/// Parses an OpenAI `usage` object (chat completions or embeddings).
pub fn parse_usage_object(raw: &[u8]) -> Option<Usage> {
    let wire: WireUsage = serde_json::from_slice(raw).ok()?;
    if wire.prompt_tokens.is_none() && wire.completion_tokens.is_none() {
        return None;
    }
    Some(Usage {
        input: wire.prompt_tokens,
        output: wire.completion_tokens,
        cached_input: wire.prompt_tokens_details.and_then(|d| d.cached_tokens).or(wire.prompt_cache_hit_tokens),
        cache_write: None,
        cache_write_1h: None,
        reasoning: wire.completion_tokens_details.and_then(|d| d.reasoning_tokens),
        source: UsageSource::Reported,
    })
}

/// Usage of a complete (non-streamed) response body, if it reports any.
pub fn response_usage(body: &[u8]) -> Option<Usage> {
    let members = json_scan::top_level_members(body).ok()?;
    let usage = json_scan::find(&members, "usage")?;
    parse_usage_object(body.get(usage.value.clone())?)
}

/// What the gateway needs to know about one `chat.completion.chunk`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ChunkInfo {
    /// The chunk's non-null `usage`.
    pub usage: Option<Usage>,
    /// The chunk is the extra usage-only chunk `include_usage` adds (`"choices": []`).
    pub usage_only: bool,
    /// Bytes of generated text (content, reasoning, tool arguments) in this chunk.
    pub generated_bytes: usize,
}

#[derive(Deserialize)]
struct WireChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<WireDelta<'a>>,
}

#[derive(Deserialize)]
struct WireDelta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<WireToolCall<'a>>>,
}

#[derive(Deserialize)]
struct WireToolCall<'a> {
    #[serde(default, borrow)]
    function: Option<WireFunction<'a>>,
}

#[derive(Deserialize)]
struct WireFunction<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    arguments: Option<Cow<'a, str>>,
}

fn text_len(s: &Option<Cow<'_, str>>) -> usize {
    s.as_ref().map_or(0, |s| s.len())
}

/// Inspects one chunk given its scanned top-level members. Tolerant: a chunk we cannot
/// read yields an empty `ChunkInfo` and is passed on untouched.
pub fn inspect_chunk(data: &[u8], members: &[Member]) -> ChunkInfo {
    let usage = json_scan::find(members, "usage")
        .and_then(|m| data.get(m.value.clone()))
        .filter(|raw| *raw != b"null")
        .and_then(parse_usage_object);
    let choices_empty = json_scan::find(members, "choices")
        .and_then(|m| data.get(m.value.clone()))
        .is_some_and(|raw| raw.iter().filter(|b| !b.is_ascii_whitespace()).eq(b"[]".iter()));
    // Only `choices` is parsed (the rest of the chunk was validated by the scan that found
    // its members); a repeated `choices` makes the chunk unreadable, as it did when the
    // whole chunk was parsed.
    let mut choices = members.iter().filter(|m| m.key == "choices");
    let choices = match (choices.next(), choices.next()) {
        (Some(m), None) => serde_json::from_slice::<Vec<WireChoice>>(data.get(m.value.clone()).unwrap_or_default()),
        (None, _) => Ok(Vec::new()),
        (Some(_), Some(_)) => Err(serde::de::Error::custom("duplicate field `choices`")),
    };
    let generated_bytes = choices.map_or(0, |choices| {
        choices
            .iter()
            .filter_map(|c| c.delta.as_ref())
            .map(|d| {
                let tools: usize = d
                    .tool_calls
                    .iter()
                    .flatten()
                    .filter_map(|t| t.function.as_ref())
                    .map(|f| text_len(&f.name) + text_len(&f.arguments))
                    .sum();
                text_len(&d.content) + text_len(&d.reasoning_content) + text_len(&d.refusal) + tools
            })
            .sum()
    });
    ChunkInfo { usage_only: usage.is_some() && choices_empty, usage, generated_bytes }
}

/// An error body in OpenAI's shape: `{"error":{"message","type","param","code"}}`.
pub fn error_body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Vec<u8> {
    serde_json::json!({
        "error": {"message": message, "type": kind, "param": param, "code": code}
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_input_from_openai_and_deepseek_names() {
        let openai =
            br#"{"prompt_tokens":2006,"completion_tokens":300,"prompt_tokens_details":{"cached_tokens":1920}}"#;
        assert_eq!(parse_usage_object(openai).and_then(|u| u.cached_input), Some(1920));
        // DeepSeek's context-caching guide: prompt_cache_hit_tokens + prompt_cache_miss_tokens.
        let deepseek =
            br#"{"prompt_tokens":6,"completion_tokens":12,"prompt_cache_hit_tokens":4,"prompt_cache_miss_tokens":2}"#;
        assert_eq!(parse_usage_object(deepseek).and_then(|u| u.cached_input), Some(4));
        let both = br#"{"prompt_tokens":6,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":0},"prompt_cache_hit_tokens":0}"#;
        assert_eq!(parse_usage_object(both).and_then(|u| u.cached_input), Some(0));
    }
}
