//! Token estimates before the call, without a tokenizer.
//!
//! - [`estimate_tokens`]: a fast guess for BPE vocabularies of the cl100k/o200k kind, by
//!   character class: a word of ASCII letters (with its leading space) is one token per
//!   started 6 letters, digits go in groups of 3, punctuation in pairs, a run of other
//!   whitespace is one token, 2-byte UTF-8 characters (accented Latin, Cyrillic, Greek...) one
//!   per 2, and wider characters (CJK, emoji) one each. It has not been measured against a
//!   tokenizer corpus here; the plain `bytes / 4` rule (`crate::usage::estimate_tokens`)
//!   remains the reference it must beat.
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
    OtherSpace,
    Punct,
    Wide2,
    Wide,
}

fn class_of(c: char) -> Class {
    match c {
        'a'..='z' | 'A'..='Z' => Class::Letter,
        '0'..='9' => Class::Digit,
        ' ' => Class::Space,
        c if c.is_whitespace() => Class::OtherSpace,
        c if c.is_ascii() => Class::Punct,
        c if c.len_utf8() == 2 => Class::Wide2,
        _ => Class::Wide,
    }
}

fn run_tokens(class: Class, len: u64) -> u64 {
    match class {
        Class::Letter => len.div_ceil(6),
        Class::Digit => len.div_ceil(3),
        // A single space joins the next word; longer runs of spaces are about one token each 4.
        Class::Space => (len.saturating_sub(1)).div_ceil(4),
        Class::OtherSpace => 1,
        Class::Punct => len.div_ceil(2),
        Class::Wide2 => len.div_ceil(2),
        Class::Wide => len,
    }
}

/// Fast estimate of the tokens in `text` (invalid UTF-8 counts one token per 2 bytes).
pub fn estimate_tokens(text: &[u8]) -> u64 {
    let s = String::from_utf8_lossy(text);
    let mut total: u64 = 0;
    let mut current: Option<(Class, u64)> = None;
    for c in s.chars() {
        let class = if c == char::REPLACEMENT_CHARACTER { Class::Wide2 } else { class_of(c) };
        current = match current {
            Some((run, len)) if run == class => Some((run, len + 1)),
            Some((run, len)) => {
                total += run_tokens(run, len);
                Some((class, 1))
            }
            None => Some((class, 1)),
        };
    }
    if let Some((run, len)) = current {
        total += run_tokens(run, len);
    }
    if total == 0 && !text.is_empty() {
        1
    } else {
        total
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
