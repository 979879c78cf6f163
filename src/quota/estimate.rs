//! Token estimates before the call, without a tokenizer.
//!
//! - [`estimate_tokens`]: a fast guess for `o200k_base`-like vocabularies, by character
//!   class: a run of ASCII letters is one token per started 8 letters, digits go in groups of
//!   3, punctuation in groups of 3, a single space joins the next word and other whitespace
//!   runs cost half a token per 16 characters, 2-byte UTF-8 characters (accented Latin,
//!   Cyrillic, Greek...) one token per 2, wider ones (CJK, emoji) one each. The constants were
//!   fitted against exact `o200k_base` counts on this repository's prose, code and provider
//!   payloads (`tests/estimate.rs`, feature `tiktoken`). Mean absolute error per 2 KB chunk:
//!   prose 3 %, Rust code 9 %, JSON/SSE payloads 9 %, where `bytes / 4`
//!   (`crate::usage::estimate_tokens`) is off by 16 %, 8 % and 17 %. Short non-English
//!   paragraphs are over-estimated (about +40 %), which errs on the budget's safe side.
//! - [`upper_bound_tokens`]: every token of a byte-level BPE (or SentencePiece with byte
//!   fallback) covers at least one byte, so a text of `n` bytes has at most `n` tokens. Counting
//!   the bytes of the serialized `messages` array also covers the chat template's per-message
//!   tokens (each message's JSON wrapper is longer than its template tokens); [`REPLY_PRIMING`]
//!   adds the few tokens that open the reply. This is the estimate under which the budget
//!   bound in [`super::budget`] is exact. It does not hold for images or audio given by URL.

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

/// Fast estimate of the `o200k_base`-like tokens in `text` (invalid UTF-8 counts one token
/// per 2 bytes). Never zero for non-empty text.
pub fn estimate_tokens(text: &[u8]) -> u64 {
    let s = String::from_utf8_lossy(text);
    let mut half_tokens: u64 = 0;
    let mut current: Option<(Class, u64, bool)> = None;
    for c in s.chars() {
        let class = if c == char::REPLACEMENT_CHARACTER { Class::Wide2 } else { class_of(c) };
        let newline = c == '\n';
        current = match current {
            Some((run, len, nl)) if run == class => Some((run, len + 1, nl || newline)),
            Some((run, len, nl)) => {
                half_tokens += run_half_tokens(run, len, nl);
                Some((class, 1, newline))
            }
            None => Some((class, 1, newline)),
        };
    }
    if let Some((run, len, nl)) = current {
        half_tokens += run_half_tokens(run, len, nl);
    }
    let tokens = half_tokens.div_ceil(2);
    if tokens == 0 && !text.is_empty() {
        1
    } else {
        tokens
    }
}

/// Exact counts with OpenAI's `o200k_base` vocabulary (GPT-4o, GPT-4.1, GPT-5, o-series), for
/// measuring the estimators and for configurations that ask for exact counting. Behind the
/// `tiktoken` feature: the table costs about 5 MB of wasm and 35 MB and 120-180 ms of init per
/// VM (DESIGN.md §5), built once per process on first use.
#[cfg(feature = "tiktoken")]
pub mod exact {
    use std::sync::OnceLock;

    static O200K: OnceLock<Option<tiktoken_rs::CoreBPE>> = OnceLock::new();

    /// Tokens of `text` under `o200k_base` (no special tokens), or `None` if the table failed
    /// to load.
    pub fn o200k_tokens(text: &str) -> Option<u64> {
        let bpe = O200K.get_or_init(|| tiktoken_rs::o200k_base().ok()).as_ref()?;
        Some(bpe.encode_ordinary(text).len() as u64)
    }
}
