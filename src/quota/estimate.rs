//! Token estimates before the call. Which one admission uses is `quota.estimator`
//! ([`super::Estimator`]); exact counts live in [`super::bpe`].
//!
//! - [`char_class_tokens`]: a fast guess for `o200k_base`-like vocabularies, by character
//!   class: a run of ASCII letters is one token per started 8 letters, digits go in groups of
//!   3, punctuation in groups of 3, a single space joins the next word and other whitespace
//!   runs cost half a token per 16 characters, 2-byte UTF-8 characters (accented Latin,
//!   Cyrillic, Greek...) one token per 2, wider ones (CJK, emoji) one each. The constants were
//!   fitted against exact `o200k_base` counts on this repository's prose, code and provider
//!   payloads (`tests/estimate.rs`, feature `tiktoken`). Mean absolute error per 2 KB chunk:
//!   prose 3 %, Rust code 9 %, JSON/SSE payloads 9 %, where `bytes / 4`
//!   (`crate::usage::tokens_from_byte_count`) is off by 16 %, 8 % and 17 %. Short non-English
//!   paragraphs are over-estimated (about +40 %), which errs on the budget's safe side.
//!   Those figures are in-sample; on text the constants never saw (crate READMEs, Python's
//!   standard library, CPython's CJK test texts) the error is 6 % for prose, 5 % for code and
//!   29 % for CJK. On whole chat `messages` (what admission estimates) it is 11-20 % high on
//!   average, because the JSON around the text counts too. About 4 ns per byte natively.
//! - [`prompt_tokens`]: the prompt tokens of a request body by OpenAI's chat recipe, given a
//!   text counter (the exact BPE of [`super::bpe`]); [`Vocabulary::for_model`] picks the BPE.
//! - [`upper_bound_tokens`]: every token of a byte-level BPE (or SentencePiece with byte
//!   fallback) covers at least one byte, so a text of `n` bytes has at most `n` tokens. Counting
//!   the bytes of the serialized `messages` array also covers the chat template's per-message
//!   tokens (each message's JSON wrapper is longer than its template tokens); [`REPLY_PRIMING`]
//!   adds the few tokens that open the reply. This is the estimate under which the budget
//!   bound in [`super::budget`] is exact. Images, audio and files given by URL are not in
//!   their bytes: admission adds [`media_tokens`] for each (every estimator).

/// Tokens a chat template adds to open the assistant's reply.
pub const REPLY_PRIMING: u64 = 8;

/// Upper bound of the tokens in a prompt whose serialized text is `bytes` long.
pub fn upper_bound_tokens(bytes: usize) -> u64 {
    (bytes as u64).saturating_add(REPLY_PRIMING)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Digit,
    Space,
    Punct,
    Wide2,
    Wide,
}

fn class_of(c: char) -> Class {
    match c {
        'a'..='z' | 'A'..='Z' => Class::Letter,
        '0'..='9' => Class::Digit,
        c if c.is_whitespace() => Class::Space,
        c if c.is_ascii() => Class::Punct,
        c if c.len_utf8() == 2 => Class::Wide2,
        _ => Class::Wide,
    }
}

/// Half-tokens of one run of a class (`newline`: the run holds a line break).
fn run_half_tokens(class: Class, len: u64, newline: bool) -> u64 {
    match class {
        Class::Letter => 2 * len.div_ceil(8),
        Class::Digit => 2 * len.div_ceil(3),
        // A single space joins the next word; other runs (indentation, line breaks) mostly
        // merge with their neighbours: half a token per started 16 characters.
        Class::Space if len == 1 && !newline => 0,
        Class::Space => len.div_ceil(16),
        Class::Punct => 2 * len.div_ceil(3),
        Class::Wide2 => 2 * len.div_ceil(2),
        Class::Wide => 2 * len,
    }
}

/// Classes of ASCII bytes (index: the byte). Evaluated at compile time, where an index out of
/// range is a build error, not a panic.
#[allow(clippy::indexing_slicing)]
static ASCII_CLASSES: [Class; 128] = {
    let mut table = [Class::Punct; 128];
    let mut b = 0;
    while b < 128 {
        let byte = b as u8;
        table[b] = if byte.is_ascii_alphabetic() {
            Class::Letter
        } else if byte.is_ascii_digit() {
            Class::Digit
        } else if matches!(byte, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ') {
            Class::Space
        } else {
            Class::Punct
        };
        b += 1;
    }
    table
};

/// Fast estimate of the `o200k_base`-like tokens in `text` (each invalid UTF-8 sequence counts
/// as a 2-byte character). Never zero for non-empty text. One pass over the bytes, decoding
/// only non-ASCII characters.
pub fn char_class_tokens(text: &[u8]) -> u64 {
    let mut half_tokens: u64 = 0;
    // The current run: class (None before the first character), length in characters, and
    // whether it holds a line break.
    let mut run: Option<Class> = None;
    let mut len: u64 = 0;
    let mut newline = false;
    let mut add = |class: Class, is_newline: bool| {
        if run == Some(class) {
            len += 1;
            newline |= is_newline;
        } else {
            if let Some(previous) = run {
                half_tokens += run_half_tokens(previous, len, newline);
            }
            run = Some(class);
            len = 1;
            newline = is_newline;
        }
    };
    for chunk in text.utf8_chunks() {
        let valid = chunk.valid();
        let bytes = valid.as_bytes();
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            if let Some(&class) = ASCII_CLASSES.get(usize::from(b)) {
                add(class, b == b'\n');
                i += 1;
            } else {
                let Some(c) = valid.get(i..).and_then(|rest| rest.chars().next()) else { break };
                add(if c == char::REPLACEMENT_CHARACTER { Class::Wide2 } else { class_of(c) }, false);
                i += c.len_utf8();
            }
        }
        if !chunk.invalid().is_empty() {
            add(Class::Wide2, false); // what a lossy conversion makes of it: U+FFFD
        }
    }
    if let Some(previous) = run {
        half_tokens += run_half_tokens(previous, len, newline);
    }
    let tokens = half_tokens.div_ceil(2);
    if tokens == 0 && !text.is_empty() {
        1
    } else {
        tokens
    }
}

/// An OpenAI BPE vocabulary, for exact counts (see [`super::bpe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vocabulary {
    /// GPT-4o, GPT-4.1, GPT-4.5, GPT-5, the o-series, gpt-oss.
    O200kBase,
    /// GPT-4, GPT-3.5 Turbo, `text-embedding-3-*` and `-ada-002`.
    Cl100kBase,
}

impl Vocabulary {
    pub fn as_str(self) -> &'static str {
        match self {
            Vocabulary::O200kBase => "o200k_base",
            Vocabulary::Cl100kBase => "cl100k_base",
        }
    }

    /// The vocabulary of an OpenAI model id (as sent to the provider), or `None` for models
    /// without a public BPE (Anthropic, Gemini, Mistral, Llama...) and unknown names. Accepts
    /// fine-tune ids (`ft:gpt-4o-mini:org::id`), dated snapshots and an `openai/` prefix
    /// (OpenRouter). Azure deployment names are the operator's own: map them with
    /// `quota.tokenizers`.
    pub fn for_model(model: &str) -> Option<Vocabulary> {
        let lower = model.trim().to_ascii_lowercase();
        let mut m = lower.as_str();
        m = m.strip_prefix("openai/").unwrap_or(m);
        if let Some(rest) = m.strip_prefix("ft:") {
            m = rest.split(':').next().unwrap_or(rest);
        }
        let family =
            |prefix: &str| m == prefix || m.strip_prefix(prefix).is_some_and(|r| r.starts_with(['-', '.', '_']));
        const O200K: &[&str] = &[
            "gpt-4o",
            "chatgpt-4o",
            "gpt-4.1",
            "gpt-4.5",
            "gpt-5",
            "gpt-oss",
            "o1",
            "o3",
            "o4",
            "codex",
            "omni-moderation",
            "computer-use-preview",
        ];
        const CL100K: &[&str] = &["gpt-4", "gpt-3.5", "gpt-35", "text-embedding-ada-002", "text-embedding-3"];
        if O200K.iter().any(|p| family(p)) {
            Some(Vocabulary::O200kBase)
        } else if CL100K.iter().any(|p| family(p)) {
            Some(Vocabulary::Cl100kBase)
        } else {
            None
        }
    }
}

/// Tokens a chat template adds per message (OpenAI: `<|start|>{role}<|message|>...<|end|>`
/// is 3 tokens besides the role and the content).
pub const TOKENS_PER_MESSAGE: u64 = 3;
/// Extra token of a message with a `name`.
pub const TOKENS_PER_NAME: u64 = 1;
/// Tokens that open the reply (`<|start|>assistant<|message|>`).
pub const REPLY_TOKENS: u64 = 3;
/// An image, audio clip or file in the prompt: the cost of a 1024x1024 high-detail image in
/// GPT-4o (85 + 4 x 170), for [`prompt_tokens`]. Admission uses [`media_tokens`] instead.
pub const MEDIA_TOKENS: u64 = 765;

/// What admission charges at least per image (audio clip, file, document) for a provider
/// model, since the gateway cannot see the pixels: the largest count the provider's published
/// image recipe can give for one image after its own resizing.
/// - OpenAI dialect (OpenAI, Azure and the OpenAI-compatible servers): 3,779, GPT-4.1-nano's
///   patch recipe at its cap (1,536 patches x 2.46), the largest of OpenAI's recipes besides
///   GPT-4o-mini (GPT-4o high detail: 85 + 8 x 170 = 1,445 for a 768 x 2048 image; GPT-5:
///   70 + 8 x 140; o-series: 75 + 8 x 150; GPT-4.1-mini: 1,536 x 1.62). `gpt-4o-mini` counts
///   its tiles 33 times higher: 2,833 + 8 x 5,667 = 48,169.
/// - Anthropic (and Bedrock, which serves Claude): 1,600, about the most Claude gives an image
///   (images are scaled to at most about 1.15 megapixels; tokens = pixels / 750).
/// - Gemini: 1,120, Gemini 3's high media resolution (Gemini 2.x: 258 per 768 x 768 tile).
///
/// Fast and upper-bound estimates add this to their count of the body's bytes (a data URL's
/// bytes are counted too, so a request costs at least the larger of its bytes' estimate and
/// this minimum per image); exact counts ([`prompt_tokens_with_media`]) use it per media part.
/// A PDF document may cost more than one image per page: the fast and upper-bound
/// estimates still count its base64 bytes, an exact count only this figure (a known gap).
pub fn media_tokens(provider: crate::llm::ir::ProviderDialect, upstream_model: &str) -> u64 {
    use crate::llm::ir::ProviderDialect;
    match provider {
        ProviderDialect::OpenAi if upstream_model.to_ascii_lowercase().contains("4o-mini") => 48_169,
        ProviderDialect::OpenAi => 3_779,
        ProviderDialect::Anthropic | ProviderDialect::Bedrock => 1_600,
        ProviderDialect::Gemini => 1_120,
    }
}

/// Members whose values are not prompt text (parameters, markers, signatures, ids of content
/// the provider already holds).
const NOT_PROMPT: &[&str] = &[
    "model",
    "type",
    "cache_control",
    "metadata",
    "user",
    "service_tier",
    "reasoning_effort",
    "stop",
    "stop_sequences",
    "stream",
    "stream_options",
    "store",
    "modalities",
    "prompt_cache_key",
    "safety_identifier",
    "safetySettings",
    "generationConfig",
    "inferenceConfig",
    "anthropic_version",
    "anthropic_beta",
    "signature",
    "encrypted_content",
    "thoughtSignature",
    "id",
    "tool_call_id",
    "tool_use_id",
    "toolUseId",
];

/// Members whose whole JSON (keys included) becomes prompt text: tool definitions, schemas,
/// and tool-call arguments given as objects.
const AS_JSON: &[&str] = &[
    "tools",
    "functions",
    "toolConfig",
    "response_format",
    "parameters",
    "input_schema",
    "functionDeclarations",
    "args",
];

// Content types whose payload is media rather than text, and keys that hold media directly
// (Gemini parts, Bedrock content blocks): the same lists admission counts media with.
use crate::json_scan::{MEDIA_KEYS, MEDIA_TYPES};

/// The prompt tokens of a request body (or of its `messages`/`input` value alone) when each
/// text is counted by `count`: the text of every message, system prompt and tool call, tool
/// definitions as their JSON, [`TOKENS_PER_MESSAGE`] per message (an object with a `role`),
/// [`TOKENS_PER_NAME`] per named message, [`MEDIA_TOKENS`] per image, audio or file, and
/// [`REPLY_TOKENS`]. This is OpenAI's published recipe for chat prompts, extended to the other
/// dialects' shapes. A body that is not JSON counts as text.
pub fn prompt_tokens(body: &[u8], count: &mut dyn FnMut(&str) -> u64) -> u64 {
    prompt_tokens_with_media(body, MEDIA_TOKENS, count)
}

/// [`prompt_tokens`] with `media` tokens per image, audio clip or file ([`media_tokens`]).
pub fn prompt_tokens_with_media(body: &[u8], media: u64, count: &mut dyn FnMut(&str) -> u64) -> u64 {
    let walked = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => walk(&value, media, count),
        Err(_) => count(&String::from_utf8_lossy(body)),
    };
    walked.saturating_add(REPLY_TOKENS)
}

fn is_media(map: &serde_json::Map<String, serde_json::Value>) -> bool {
    let typed = map.get("type").and_then(|t| t.as_str()).is_some_and(|t| MEDIA_TYPES.contains(&t));
    typed || map.iter().any(|(k, v)| v.is_object() && MEDIA_KEYS.contains(&k.as_str()))
}

fn walk(value: &serde_json::Value, media: u64, count: &mut dyn FnMut(&str) -> u64) -> u64 {
    use serde_json::Value;
    match value {
        Value::String(s) => count(s),
        Value::Array(items) => items.iter().fold(0u64, |t, v| t.saturating_add(walk(v, media, count))),
        Value::Object(map) if is_media(map) => media,
        Value::Object(map) => {
            let mut total = 0u64;
            if map.contains_key("role") {
                total += TOKENS_PER_MESSAGE;
                if map.get("name").is_some_and(|n| n.is_string()) {
                    total += TOKENS_PER_NAME;
                }
            }
            for (key, v) in map {
                let key = key.as_str();
                if NOT_PROMPT.contains(&key) {
                    continue;
                }
                let as_json = AS_JSON.contains(&key) || (matches!(key, "input" | "arguments") && v.is_object());
                let tokens = if as_json { count(&v.to_string()) } else { walk(v, media, count) };
                total = total.saturating_add(tokens);
            }
            total
        }
        Value::Number(_) | Value::Bool(_) | Value::Null => 0,
    }
}

/// How far above the fast estimate `auto` reserves while far from every budget, in percent.
/// Measured on chat `messages` (tests/estimate.rs): the fast estimate is 11-20 % above the
/// exact count on average (it counts the JSON too) and below it for 0-7 % of English prose,
/// code and JSON requests (by at most 25 %) and 20 % of CJK ones (by at most 32 %); with this
/// margin the trial is below the exact count for none of the prose and code requests, 0.7 %
/// of the JSON ones and 10 % of the CJK ones.
pub const AUTO_MARGIN_PERCENT: u64 = 25;

/// `auto` does not count a refused request exactly unless `fast / AUTO_FLOOR_DIVISOR` input
/// tokens would be admitted (the fast estimate is at most about twice the exact count on every
/// corpus of tests/estimate.rs).
pub const AUTO_FLOOR_DIVISOR: u64 = 3;

/// What `auto` reserves for the input while far from the budget: the fast estimate plus
/// [`AUTO_MARGIN_PERCENT`], at most the byte upper bound (and at least the fast estimate).
pub fn auto_trial_tokens(fast: u64, bytes: usize) -> u64 {
    let padded = fast.saturating_add(fast.saturating_mul(AUTO_MARGIN_PERCENT).div_ceil(100));
    padded.min(upper_bound_tokens(bytes)).max(fast)
}
