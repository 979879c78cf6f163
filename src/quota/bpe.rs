//! Exact token counts with OpenAI's byte-level BPE vocabularies (`o200k_base`, `cl100k_base`),
//! for the `exact` and `auto` estimators. The tables come from `tiktoken-rs` (cargo feature
//! `tiktoken`); without the feature [`AVAILABLE`] is false and [`count`] answers `None`.
//!
//! - **Once per VM, on first use.** Each table is built the first time a request needs it
//!   (`OnceLock`; a VM is single-threaded): about 0.1-0.2 s and 30+ MB per VM for `o200k_base`
//!   (BENCHMARKS.md, "Token estimators"). VMs that never count (Envoy's two main-thread VMs,
//!   `auto` far from every budget) never pay it.
//! - **Bounded work, no panic.** `tiktoken-rs` unwraps its pre-tokenizer's result, and the
//!   backtracking regex fails (or overflows its stack) on pathological input such as a
//!   megabyte of one repeated character. [`segments`] therefore feeds it pieces of at most
//!   [`MAX_SEGMENT_BYTES`], cut where both vocabularies' pre-tokenizers end a piece anyway
//!   (before a space that follows a non-space; after a line break that precedes a non-space
//!   other than `/`), so the count is unchanged; a run of [`MAX_RUN_BYTES`] characters of one
//!   class with no such place (a long word, a run of punctuation or of whitespace) is cut
//!   where it is, which can add a token per cut. Real prose and code have no such runs.

use super::estimate::Vocabulary;

/// Whether this build can count exactly (cargo feature `tiktoken`).
pub const AVAILABLE: bool = cfg!(feature = "tiktoken");

/// Longest text handed to the tokenizer at once.
pub const MAX_SEGMENT_BYTES: usize = 2048;

/// Longest run of letters, of punctuation or of whitespace handed to the tokenizer uncut.
pub const MAX_RUN_BYTES: usize = 128;

#[derive(Clone, Copy, PartialEq, Eq)]
enum RunClass {
    Letter,
    Space,
    Punct,
    Other,
}

fn run_class(c: char) -> RunClass {
    if c.is_whitespace() {
        RunClass::Space
    } else if c.is_alphabetic() {
        RunClass::Letter
    } else if c.is_numeric() {
        RunClass::Other
    } else {
        RunClass::Punct
    }
}

/// Splits `text` into segments of at most [`MAX_SEGMENT_BYTES`] (a character longer than
/// that aside), preferring places where the pre-tokenizers of `o200k_base` and `cl100k_base`
/// end a piece (see the module doc). Concatenated, the segments are `text`.
pub fn segments(text: &str) -> Segments<'_> {
    Segments { rest: text }
}

/// Iterator of [`segments`].
pub struct Segments<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let cut = cut_point(self.rest);
        let (head, tail) = self.rest.split_at_checked(cut).unwrap_or((self.rest, ""));
        self.rest = tail;
        Some(head)
    }
}

/// Where the first segment of `text` ends (a char boundary, > 0 for non-empty text).
fn cut_point(text: &str) -> usize {
    if text.len() <= MAX_SEGMENT_BYTES {
        // Still bound the runs in a short text.
        return forced_run_cut(text).unwrap_or(text.len());
    }
    let mut last_safe: Option<usize> = None;
    let mut prev: Option<char> = None;
    let mut run: (RunClass, usize) = (RunClass::Other, 0);
    for (i, c) in text.char_indices() {
        if i > 0 {
            if let Some(p) = prev {
                let safe_before_space = c == ' ' && !p.is_whitespace();
                let safe_after_newline = p == '\n' && !c.is_whitespace() && c != '/';
                if safe_before_space || safe_after_newline {
                    last_safe = Some(i);
                }
            }
            if i + c.len_utf8() > MAX_SEGMENT_BYTES {
                return last_safe.unwrap_or(i);
            }
        }
        let class = run_class(c);
        run = if class == run.0 && class != RunClass::Other { (class, run.1 + c.len_utf8()) } else { (class, 0) };
        if i > 0 && run.1 >= MAX_RUN_BYTES {
            return last_safe.unwrap_or(i);
        }
        prev = Some(c);
    }
    text.len()
}

/// The first place a run of one class reaches [`MAX_RUN_BYTES`], if any.
fn forced_run_cut(text: &str) -> Option<usize> {
    let mut run: (RunClass, usize) = (RunClass::Other, 0);
    for (i, c) in text.char_indices() {
        let class = run_class(c);
        run = if class == run.0 && class != RunClass::Other { (class, run.1 + c.len_utf8()) } else { (class, 0) };
        if i > 0 && run.1 >= MAX_RUN_BYTES {
            return Some(i);
        }
    }
    None
}

/// Tokens of `text` under `vocabulary` (no special tokens), or `None` when this build has no
/// tables (or the table failed to build).
pub fn count(vocabulary: Vocabulary, text: &str) -> Option<u64> {
    tables::count(vocabulary, text)
}

/// Builds `vocabulary`'s table now if it is not built yet (e.g. at configuration time, to
/// move the first request's cost to start-up). Returns whether it is available.
pub fn warm_up(vocabulary: Vocabulary) -> bool {
    tables::count(vocabulary, "").is_some()
}

#[cfg(feature = "tiktoken")]
mod tables {
    use super::{segments, Vocabulary};
    use std::sync::OnceLock;
    use tiktoken_rs::CoreBPE;

    static O200K: OnceLock<Option<CoreBPE>> = OnceLock::new();
    static CL100K: OnceLock<Option<CoreBPE>> = OnceLock::new();

    fn table(vocabulary: Vocabulary) -> Option<&'static CoreBPE> {
        match vocabulary {
            Vocabulary::O200kBase => O200K.get_or_init(|| tiktoken_rs::o200k_base().ok()).as_ref(),
            Vocabulary::Cl100kBase => CL100K.get_or_init(|| tiktoken_rs::cl100k_base().ok()).as_ref(),
        }
    }

    pub fn count(vocabulary: Vocabulary, text: &str) -> Option<u64> {
        let bpe = table(vocabulary)?;
        Some(segments(text).map(|s| bpe.encode_ordinary(s).len() as u64).sum())
    }
}

#[cfg(not(feature = "tiktoken"))]
mod tables {
    use super::Vocabulary;

    pub fn count(_vocabulary: Vocabulary, _text: &str) -> Option<u64> {
        None
    }
}
