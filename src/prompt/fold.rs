//! The text guards match against: the prompt with the Unicode spellings attackers use to
//! hide a word or a number from a pattern folded to plain ASCII.
//!
//! NFKC would be the reference, but the crate carries no Unicode normalization tables (a
//! dependency for a few classes of characters); this is a small, documented fold table for
//! the classes that defeat a deny rule or a mask. One character folds to at most one
//! character, so a span found in the folded text maps back to one span of the original
//! ([`to_original`]) and masks replace what the client actually wrote.
//!
//! | class | characters | folded to |
//! |---|---|---|
//! | invisible | soft hyphen U+00AD, U+034F, U+061C, U+115F/U+1160, U+17B4/5, U+180B-U+180F, zero-width U+200B-U+200F, bidi controls U+202A-U+202E and U+2066-U+206F, U+2060-U+2064, variation selectors U+FE00-U+FE0F, U+FEFF, Hangul fillers U+3164/U+FFA0, unassigned tag controls | removed |
//! | combining marks | U+0300-U+036F (`p̲a̲s̲s̲`) | removed |
//! | tag characters | U+E0020-U+E007E ("ASCII smuggling": invisible copies of ASCII) | the ASCII character |
//! | full width | U+FF01-U+FF5E | U+0021-U+007E |
//! | spaces | U+00A0, U+2000-U+200A, U+202F, U+205F, U+3000 | space |
//! | dashes | U+2010-U+2015, U+2212, U+FE58, U+FE63 | `-` |
//! | digits | every Unicode decimal digit (Nd: Arabic-Indic, Devanagari, mathematical, ...), superscripts and subscripts, circled ①-⑨ and ⓪ | `0`-`9` |
//! | letters | mathematical alphanumerics U+1D400-U+1D6A3 (`𝐩𝐚𝐬𝐬`), circled Ⓐ-ⓩ | `A`-`Z`, `a`-`z` |
//!
//! Not folded: look-alike letters of other scripts (Cyrillic `а` for Latin `a`), which NFKC
//! does not fold either, and separators inside words (`p.a.s.s`): a deny rule that must
//! see through those says so in its pattern. Case is the rule's `case_insensitive`.

use std::borrow::Cow;

/// What one character becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fold {
    Keep,
    Drop,
    To(char),
}

/// The first code point of every run of ten Unicode decimal digits (general category Nd,
/// Unicode 14), sorted. ASCII included (it folds to itself).
const DIGIT_ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66, 0xce6, 0xd66, 0xde6, 0xe50, 0xed0,
    0xf20, 0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0, 0x1a80, 0x1a90, 0x1b50, 0x1bb0, 0x1c40, 0x1c50, 0xa620,
    0xa8d0, 0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0, 0xff10, 0x104a0, 0x10d30, 0x11066, 0x110f0, 0x11136, 0x111d0,
    0x112f0, 0x11450, 0x114d0, 0x11650, 0x116c0, 0x11730, 0x118e0, 0x11950, 0x11c50, 0x11d50, 0x11da0, 0x16a60,
    0x16ac0, 0x16b50, 0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e950, 0x1fbf0,
];

/// `base` + `offset` as a char (all callers stay within ASCII).
fn ascii(base: u8, offset: u32) -> Fold {
    match u8::try_from(offset).ok().and_then(|o| base.checked_add(o)) {
        Some(b) if b.is_ascii() => Fold::To(char::from(b)),
        _ => Fold::Keep,
    }
}

fn decimal_digit(cp: u32) -> Option<u32> {
    let i = DIGIT_ZEROS.partition_point(|&zero| zero <= cp);
    let zero = *DIGIT_ZEROS.get(i.checked_sub(1)?)?;
    (cp - zero < 10).then_some(cp - zero)
}

fn fold_char(c: char) -> Fold {
    if c.is_ascii() {
        return Fold::Keep;
    }
    let cp = u32::from(c);
    // Fast path for the scripts of most prose, where nothing folds (Latin letters, Greek,
    // Cyrillic, Armenian, Hebrew, kana, CJK, Hangul).
    if matches!(cp, 0x00C0..=0x02FF | 0x0370..=0x05FF | 0x3040..=0x30FF | 0x4E00..=0x9FFF | 0xAC00..=0xD7A3) {
        return Fold::Keep;
    }
    match cp {
        0x00AD
        | 0x034F
        | 0x061C
        | 0x115F
        | 0x1160
        | 0x17B4
        | 0x17B5
        | 0x180B..=0x180F
        | 0x200B..=0x200F
        | 0x202A..=0x202E
        | 0x2060..=0x2064
        | 0x2066..=0x206F
        | 0xFE00..=0xFE0F
        | 0xFEFF
        | 0x3164
        | 0xFFA0
        | 0xE0000..=0xE001F
        | 0xE007F => Fold::Drop,
        0x0300..=0x036F => Fold::Drop,
        0xE0020..=0xE007E => ascii(0, cp - 0xE0000),
        0xFF01..=0xFF5E => ascii(0x21, cp - 0xFF01),
        0x00A0 | 0x2000..=0x200A | 0x202F | 0x205F | 0x3000 => Fold::To(' '),
        0x2010..=0x2015 | 0x2212 | 0xFE58 | 0xFE63 => Fold::To('-'),
        0x00B2 => Fold::To('2'),
        0x00B3 => Fold::To('3'),
        0x00B9 => Fold::To('1'),
        0x2070 => Fold::To('0'),
        0x2074..=0x2079 => ascii(b'4', cp - 0x2074),
        0x2080..=0x2089 => ascii(b'0', cp - 0x2080),
        0x2460..=0x2468 => ascii(b'1', cp - 0x2460),
        0x24EA => Fold::To('0'),
        0x24B6..=0x24CF => ascii(b'A', cp - 0x24B6),
        0x24D0..=0x24E9 => ascii(b'a', cp - 0x24D0),
        // 13 alphabets of 52 letters (bold, italic, script, fraktur, double-struck, sans,
        // monospace...); the holes of some are unassigned code points.
        0x1D400..=0x1D6A3 => match (cp - 0x1D400) % 52 {
            k if k < 26 => ascii(b'A', k),
            k => ascii(b'a', k - 26),
        },
        _ => match decimal_digit(cp) {
            Some(d) => ascii(b'0', d),
            None => Fold::Keep,
        },
    }
}

/// `text` folded (see the module docs); borrowed when nothing folds (all ASCII text).
pub fn fold(text: &str) -> Cow<'_, str> {
    if text.is_ascii() || text.chars().all(|c| fold_char(c) == Fold::Keep) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match fold_char(c) {
            Fold::Keep => out.push(c),
            Fold::Drop => {}
            Fold::To(to) => out.push(to),
        }
    }
    Cow::Owned(out)
}

/// Maps byte spans of `fold(text)` (sorted, not overlapping, on character boundaries) back to
/// the spans of `text` they were folded from: a span starts at the first character that
/// produced it and ends after the last one. One pass over `text`, no table kept.
pub fn to_original(text: &str, spans: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(spans.len());
    let mut pending = spans.iter().peekable();
    let mut start: Option<usize> = None;
    let mut folded = 0usize;
    for (offset, c) in text.char_indices() {
        let Some(&&(span_start, span_end)) = pending.peek() else { break };
        let width = match fold_char(c) {
            Fold::Keep => c.len_utf8(),
            Fold::Drop => 0,
            Fold::To(to) => to.len_utf8(),
        };
        if width == 0 {
            continue;
        }
        if start.is_none() && folded == span_start {
            start = Some(offset);
        }
        folded += width;
        if let Some(s) = start {
            if folded >= span_end {
                out.push((s, offset + c.len_utf8()));
                start = None;
                pending.next();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_each_class() {
        assert_eq!(fold("pass\u{200B}word\u{00AD}"), "password");
        assert_eq!(fold("ｐａｓｓｗｏｒｄ：１２３"), "password:123");
        assert_eq!(fold("٤١١١ ४१११ ¹²³ ①⓪ 𝟒𝟏"), "4111 4111 123 10 41");
        assert_eq!(fold("𝐩𝐚𝐬𝐬 𝘱𝘢𝘴𝘴 Ⓟⓐⓢⓢ"), "pass pass Pass");
        assert_eq!(fold("p\u{0332}a\u{0332}ss"), "pass");
        assert_eq!(fold("\u{E0070}\u{E0061}\u{E0073}\u{E0073}"), "pass");
        assert_eq!(fold("4111\u{2010}1111\u{00A0}1111"), "4111-1111 1111");
        assert!(matches!(fold("plain ascii"), Cow::Borrowed(_)));
        assert!(matches!(fold("déjà vu"), Cow::Borrowed(_)));
    }

    #[test]
    fn spans_map_back_to_what_was_written() {
        let text = "a ｐａ\u{200B}ss b 𝟒𝟏";
        let folded = fold(text);
        let start = folded.find("pass").unwrap_or(0);
        let digits = folded.find("41").unwrap_or(0);
        let spans = to_original(text, &[(start, start + 4), (digits, digits + 2)]);
        let originals: Vec<&str> = spans.iter().map(|&(s, e)| text.get(s..e).unwrap_or("?")).collect();
        assert_eq!(originals, ["ｐａ\u{200B}ss", "𝟒𝟏"]);
    }
}
