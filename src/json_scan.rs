//! Strict, allocation-light JSON scanning and byte-level patching.
//!
//! The gateway rewrites request bodies and streamed SSE chunk JSON without
//! re-serializing them: it replaces the value of a top-level member, inserts a
//! member, or removes one. [`top_level_members`] validates a whole document
//! (strict RFC 8259) whose top level is an object and returns the byte spans of
//! its top-level members; [`set_member`] / [`remove_member`] build [`Edit`]s
//! and [`apply_edits`] applies them in a single pass.
//!
//! The scanner is linear-time and never recurses: nested values are skipped
//! with a 128-bit container-kind stack, so nothing is allocated for them. Only
//! the keys of top-level members are allocated.

use std::fmt;
use std::ops::Range;

/// Maximum nesting depth of arrays/objects, counting the top-level object.
const MAX_DEPTH: usize = 128;

const EOF: &str = "unexpected end of input";

/// One top-level member of a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The key, unescaped.
    pub key: String,
    /// From the key's opening quote to the end of the value.
    pub span: Range<usize>,
    /// The value's bytes, without surrounding whitespace.
    pub value: Range<usize>,
}

/// Why a document was rejected, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    /// Byte offset of the offending input (the document length at end of input).
    pub offset: usize,
    pub message: &'static str,
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for ScanError {}

/// A byte-range replacement; an empty `range` is an insertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub range: Range<usize>,
    pub replacement: Vec<u8>,
}

/// Validates the whole document (strict RFC 8259) and returns its top-level
/// members in document order (duplicate keys included).
///
/// The top level must be an object. Strings must be valid UTF-8 and `\u`
/// escapes must form valid code points (lone surrogates are rejected). Nesting
/// deeper than 128 containers (the top-level object included) is rejected.
pub fn top_level_members(doc: &[u8]) -> Result<Vec<Member>, ScanError> {
    let mut members = Vec::new();
    scan_top_level(doc, |key_start, key_end, escaped, value_start, end| {
        let key = key_string(doc, key_start, key_end, escaped)?;
        members.push(Member { key, span: key_start..end, value: value_start..end });
        Ok(())
    })?;
    Ok(members)
}

/// A top-level member located without copying its key (see [`top_level_spans`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpan {
    /// The key's bytes between its quotes, escapes not decoded.
    pub key: Range<usize>,
    /// The key holds escapes (compare it decoded: [`MemberSpan::key_is`]).
    pub key_escaped: bool,
    /// From the key's opening quote to the end of the value.
    pub span: Range<usize>,
    /// The value's bytes, without surrounding whitespace.
    pub value: Range<usize>,
}

impl MemberSpan {
    /// The key, decoded, is `key`.
    pub fn key_is(&self, doc: &[u8], key: &str) -> bool {
        let raw = doc.get(self.key.clone()).unwrap_or_default();
        if self.key_escaped {
            unescape(raw).is_some_and(|k| k == key)
        } else {
            raw == key.as_bytes()
        }
    }
}

/// [`top_level_members`] without a `String` per key: the same validation, the members'
/// spans written into `out` (cleared first, so one vector serves many documents). Returns
/// the deepest nesting of any member's value (0 when every value is a scalar or empty).
/// On error `out` holds the members read before it.
pub fn top_level_spans(doc: &[u8], out: &mut Vec<MemberSpan>) -> Result<usize, ScanError> {
    out.clear();
    scan_top_level(doc, |key_start, key_end, key_escaped, value_start, end| {
        out.push(MemberSpan {
            key: key_start + 1..key_end.saturating_sub(1),
            key_escaped,
            span: key_start..end,
            value: value_start..end,
        });
        Ok(())
    })
}

/// The first span whose key is `key`.
pub fn find_span<'a>(doc: &[u8], members: &'a [MemberSpan], key: &str) -> Option<&'a MemberSpan> {
    members.iter().find(|m| m.key_is(doc, key))
}

/// The range [`remove_member`] removes for `members[index]`: the member with one adjacent
/// comma (the following one and the whitespace up to the next member, or, for the last
/// member, the preceding one and the whitespace after the previous value).
pub fn removal_range(members: &[MemberSpan], index: usize) -> Option<Range<usize>> {
    let m = members.get(index)?;
    Some(match (members.get(index + 1), index.checked_sub(1).and_then(|p| members.get(p))) {
        (Some(next), _) => m.span.start..next.span.start,
        (None, Some(prev)) => prev.value.end..m.span.end,
        (None, None) => m.span.clone(),
    })
}

/// Length in bytes of the decoded text of the string token `token` (quotes included),
/// which a scan has validated: what a JSON parser's string would measure. `None` when the
/// token is not a well-formed string.
pub fn decoded_string_len(token: &[u8]) -> Option<usize> {
    let raw = token.strip_prefix(b"\"").and_then(|t| t.strip_suffix(b"\""))?;
    let mut len = 0;
    let mut i = 0;
    while let Some(n) = raw.get(i..)?.iter().position(|&b| b == b'\\') {
        len += n;
        i += n;
        let esc = *raw.get(i + 1)?;
        i += 2;
        if esc != b'u' {
            len += 1;
            continue;
        }
        let unit = hex4(raw.get(i..i + 4)?)?;
        i += 4;
        len += match unit {
            0..=0x7f => 1,
            0x80..=0x7ff => 2,
            0xD800..=0xDBFF => {
                // A validated high surrogate is followed by its low one: 4 bytes together.
                if raw.get(i..i + 2)? != b"\\u" {
                    return None;
                }
                i += 6;
                4
            }
            _ => 3,
        };
    }
    Some(len + raw.len().checked_sub(i)?)
}

/// End of the JSON value starting at `start` in `doc` (no leading whitespace), validated as
/// [`top_level_members`] validates a member's value; `None` when it is not one.
pub fn value_end(doc: &[u8], start: usize) -> Option<usize> {
    let mut s = Scanner { doc, pos: start, deepest: 0 };
    s.scan_value().ok()?;
    Some(s.pos)
}

/// End of the string token starting at `start` (its opening quote), and whether it holds
/// escapes; `None` when it is not a valid string.
pub fn string_end(doc: &[u8], start: usize) -> Option<(usize, bool)> {
    if doc.get(start) != Some(&b'"') {
        return None;
    }
    let mut s = Scanner { doc, pos: start, deepest: 0 };
    let escaped = s.scan_string().ok()?;
    Some((s.pos, escaped))
}

/// [`string_end`] for a document a scan has already validated: the closing quote found
/// without checking the string again. `None` when no string starts at `start` or it is not
/// well formed after all.
pub fn validated_string_end(doc: &[u8], start: usize) -> Option<(usize, bool)> {
    if doc.get(start) != Some(&b'"') {
        return None;
    }
    let mut pos = start + 1;
    let mut escaped = false;
    let mut seen = 0;
    loop {
        pos += find_string_special(doc.get(pos..)?, &mut seen)?;
        match doc.get(pos)? {
            b'"' => return Some((pos + 1, escaped)),
            b'\\' => {
                escaped = true;
                pos += 2;
            }
            _ => return None,
        }
    }
}

/// Validates `doc` as an object (see [`top_level_members`]) and reports each top-level
/// member: key token start and end (quotes included), whether the key holds escapes, value
/// start, value end. Returns the deepest nesting of any value.
#[inline]
fn scan_top_level(
    doc: &[u8],
    mut member: impl FnMut(usize, usize, bool, usize, usize) -> Result<(), ScanError>,
) -> Result<usize, ScanError> {
    let mut s = Scanner { doc, pos: 0, deepest: 0 };
    s.skip_ws();
    if s.peek() != Some(b'{') {
        return Err(s.err("expected a JSON object"));
    }
    s.pos += 1;
    s.skip_ws();
    if s.peek() == Some(b'}') {
        s.pos += 1;
    } else {
        let mut comma = None;
        loop {
            let key_start = s.pos;
            s.check_key_start(comma)?;
            let escaped = s.scan_string()?;
            let key_end = s.pos;
            s.skip_ws();
            s.expect_colon()?;
            s.skip_ws();
            let value_start = s.pos;
            s.scan_value()?;
            member(key_start, key_end, escaped, value_start, s.pos)?;
            s.skip_ws();
            match s.peek() {
                Some(b',') => {
                    comma = Some(s.pos);
                    s.pos += 1;
                    s.skip_ws();
                }
                Some(b'}') => {
                    s.pos += 1;
                    break;
                }
                _ => return Err(s.unexpected("expected ',' or '}'")),
            }
        }
    }
    s.skip_ws();
    if s.pos != doc.len() {
        return Err(s.err("trailing characters after the object"));
    }
    Ok(s.deepest)
}

/// Finds the first member with this key.
pub fn find<'a>(members: &'a [Member], key: &str) -> Option<&'a Member> {
    members.iter().find(|m| m.key == key)
}

/// Edit that sets top-level `key` to `raw_value` (already-serialized JSON).
///
/// Replaces the value of the first member with that key if there is one;
/// otherwise inserts `"key":raw_value` as the first member, right after the
/// opening `{` (followed by `,` if the object has other members).
/// `doc` and `members` must come from a successful [`top_level_members`].
pub fn set_member(doc: &[u8], members: &[Member], key: &str, raw_value: &[u8]) -> Edit {
    if let Some(m) = find(members, key) {
        return Edit { range: m.value.clone(), replacement: raw_value.to_vec() };
    }
    let at = doc.iter().position(|b| !is_ws(*b)).map_or(doc.len(), |open| open + 1);
    let mut replacement = json_string(key);
    replacement.reserve(raw_value.len() + 2);
    replacement.push(b':');
    replacement.extend_from_slice(raw_value);
    if !members.is_empty() {
        replacement.push(b',');
    }
    Edit { range: at..at, replacement }
}

/// Edit that deletes member `m` together with exactly one adjacent comma: the
/// following one (and the whitespace up to the next member), or, for the last
/// member, the preceding one (and the whitespace after the previous value).
/// Removing the only member leaves the surrounding whitespace: `{ }`.
/// `doc` and `members` must come from a successful [`top_level_members`].
pub fn remove_member(doc: &[u8], members: &[Member], m: &Member) -> Edit {
    let range = match members.iter().position(|x| x.span == m.span) {
        Some(i) => match (members.get(i + 1), i.checked_sub(1).and_then(|p| members.get(p))) {
            (Some(next), _) => m.span.start..next.span.start,
            (None, Some(prev)) => prev.value.end..m.span.end,
            (None, None) => m.span.clone(),
        },
        // `m` is not one of `members`: locate the adjacent comma in `doc`.
        None => remove_range_by_scan(doc, &m.span),
    };
    Edit { range, replacement: Vec::new() }
}

fn remove_range_by_scan(doc: &[u8], span: &Range<usize>) -> Range<usize> {
    let after = doc.get(span.end..).unwrap_or_default().iter().position(|b| !is_ws(*b)).map(|i| span.end + i);
    if let Some(comma) = after.filter(|&i| doc.get(i) == Some(&b',')) {
        let next = doc
            .get(comma + 1..)
            .unwrap_or_default()
            .iter()
            .position(|b| !is_ws(*b))
            .map_or(doc.len(), |i| comma + 1 + i);
        return span.start..next;
    }
    let before = doc.get(..span.start).unwrap_or_default().iter().rposition(|b| !is_ws(*b));
    match before.filter(|&i| doc.get(i) == Some(&b',')) {
        Some(comma) => comma..span.end,
        None => span.clone(),
    }
}

/// Applies non-overlapping edits (in any order; they are sorted by position,
/// insertions before a replacement starting at the same offset, ties kept in
/// the given order) in a single pass into a new buffer. Ranges are clamped to
/// the document; a range overlapping an earlier edit is clipped to start after
/// it. Insertions at the same offset that do not end with a comma (what
/// [`set_member`] inserts into an empty object) are joined with commas, so
/// several members inserted into `{}` still make one valid object.
pub fn apply_edits(doc: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| (e.range.start, e.range.end));
    let added: usize = sorted.iter().map(|e| e.replacement.len() + 1).sum();
    let mut out = Vec::with_capacity(doc.len() + added);
    let mut cursor = 0;
    // Offset of the previous edit when it was an insertion without a trailing comma.
    let mut open_insertion = None;
    for e in sorted {
        let start = e.range.start.max(cursor).min(doc.len());
        let end = e.range.end.min(doc.len()).max(start);
        out.extend_from_slice(doc.get(cursor..start).unwrap_or_default());
        let insertion = e.range.is_empty() && !e.replacement.is_empty();
        if insertion && open_insertion == Some(start) {
            out.push(b',');
        }
        out.extend_from_slice(&e.replacement);
        open_insertion = (insertion && !e.replacement.ends_with(b",")).then_some(start);
        cursor = end;
    }
    out.extend_from_slice(doc.get(cursor..).unwrap_or_default());
    out
}

/// Serializes `s` as a JSON string literal, quotes included. Escapes `"`, `\`
/// and control characters; everything else is copied verbatim.
pub fn json_string(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.push(b'"');
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(bytes.get(run..i).unwrap_or_default());
        if short.is_empty() {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex_digit(b >> 4), hex_digit(b & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        run = i + 1;
    }
    out.extend_from_slice(bytes.get(run..).unwrap_or_default());
    out.push(b'"');
    out
}

fn hex_digit(n: u8) -> u8 {
    if n < 10 {
        b'0' + n
    } else {
        b'a' + (n - 10)
    }
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn hex_val(b: u8) -> Option<u16> {
    match b {
        b'0'..=b'9' => Some(u16::from(b - b'0')),
        b'a'..=b'f' => Some(u16::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u16::from(b - b'A' + 10)),
        _ => None,
    }
}

/// Builds the key of a validated string token spanning `start..end` (quotes
/// included).
fn key_string(doc: &[u8], start: usize, end: usize, escaped: bool) -> Result<String, ScanError> {
    let raw = doc.get(start + 1..end.saturating_sub(1)).unwrap_or_default();
    let key = if escaped { unescape(raw) } else { String::from_utf8(raw.to_vec()).ok() };
    // Unreachable for a validated token; reported rather than panicking.
    key.ok_or(ScanError { offset: start, message: "invalid string" })
}

/// Decodes the contents of an already validated JSON string.
fn unescape(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let run = raw.get(i..)?.iter().position(|&b| b == b'\\');
        let run_end = run.map_or(raw.len(), |n| i + n);
        out.extend_from_slice(raw.get(i..run_end)?);
        i = run_end;
        if run.is_none() {
            break;
        }
        let esc = *raw.get(i + 1)?;
        i += 2;
        let byte = match esc {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let hi = hex4(raw.get(i..i + 4)?)?;
                i += 4;
                let cp = if (0xD800..=0xDBFF).contains(&hi) {
                    if raw.get(i..i + 2)? != b"\\u" {
                        return None;
                    }
                    let lo = hex4(raw.get(i + 2..i + 6)?)?;
                    i += 6;
                    0x10000 + ((u32::from(hi) - 0xD800) << 10) + (u32::from(lo).checked_sub(0xDC00)?)
                } else {
                    u32::from(hi)
                };
                let c = char::from_u32(cp)?;
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                continue;
            }
            _ => return None,
        };
        out.push(byte);
    }
    String::from_utf8(out).ok()
}

fn hex4(digits: &[u8]) -> Option<u16> {
    digits.iter().try_fold(0u16, |acc, &b| Some((acc << 4) | hex_val(b)?))
}

/// Index of the first `"`, `\\` or control byte (< 0x20) in `bytes`. Every
/// byte examined (and possibly a few after the match) is OR-ed into `seen`, so
/// `seen & 0x80 == 0` proves the scanned part is ASCII. Checks 8 bytes at a
/// time (SWAR) before finishing byte by byte.
#[inline]
fn find_string_special(bytes: &[u8], seen: &mut u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // Nonzero iff some byte of `x` is zero (exact for the lowest such byte).
    let has_zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    let mut acc = 0u64;
    let mut offset = 0;
    for chunk in bytes.chunks_exact(8) {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let special = has_zero(w ^ (LO * u64::from(b'"')))
            | has_zero(w ^ (LO * u64::from(b'\\')))
            | (w.wrapping_sub(LO * 0x20) & !w & HI);
        acc |= w;
        if special != 0 {
            // Each test flags its lowest matching byte exactly (false positives only above
            // it), so the lowest flag of all three is the first special byte.
            *seen |= acc.to_le_bytes().iter().fold(0, |a, b| a | b);
            return Some(offset + (special.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    *seen |= acc.to_le_bytes().iter().fold(0, |a, b| a | b);
    let tail = bytes.get(offset..).unwrap_or_default();
    tail.iter()
        .position(|&b| {
            *seen |= b;
            b == b'"' || b == b'\\' || b < 0x20
        })
        .map(|n| offset + n)
}

struct Scanner<'a> {
    doc: &'a [u8],
    pos: usize,
    /// The deepest nesting `scan_value` opened (containers inside one value).
    deepest: usize,
}

impl Scanner<'_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.doc.get(self.pos).copied()
    }

    #[inline]
    fn err(&self, message: &'static str) -> ScanError {
        ScanError { offset: self.pos, message }
    }

    /// `message` at the current position, or "unexpected end of input" there.
    #[inline]
    fn unexpected(&self, message: &'static str) -> ScanError {
        self.err(if self.pos >= self.doc.len() { EOF } else { message })
    }

    #[inline]
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    fn expect_colon(&mut self) -> Result<(), ScanError> {
        if self.peek() == Some(b':') {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected("expected ':'"))
        }
    }

    /// Checks that a key starts here; `comma` is the offset of the comma that
    /// preceded it, if any (for the trailing-comma diagnostic).
    fn check_key_start(&self, comma: Option<usize>) -> Result<(), ScanError> {
        match (self.peek(), comma) {
            (Some(b'"'), _) => Ok(()),
            (Some(b'}'), Some(c)) => Err(ScanError { offset: c, message: "trailing comma" }),
            _ => Err(self.unexpected("expected a string key")),
        }
    }

    /// Scans a member key (at `pos`), whitespace, ':' and whitespace.
    fn scan_key_colon(&mut self, comma: Option<usize>) -> Result<(), ScanError> {
        self.check_key_start(comma)?;
        self.scan_string()?;
        self.skip_ws();
        self.expect_colon()?;
        self.skip_ws();
        Ok(())
    }

    /// Scans and validates any JSON value starting at `pos` (no leading
    /// whitespace), nested inside the top-level object. Iterative: bit `i` of
    /// `kinds` tells whether the `i`-th innermost open container is an object.
    fn scan_value(&mut self) -> Result<(), ScanError> {
        let mut kinds: u128 = 0;
        let mut depth: usize = 0;
        loop {
            match self.peek() {
                Some(open @ (b'{' | b'[')) => {
                    // +1 for the top-level object, +1 for this container.
                    if depth + 2 > MAX_DEPTH {
                        return Err(self.err("nesting too deep"));
                    }
                    let is_object = open == b'{';
                    let close = if is_object { b'}' } else { b']' };
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(close) {
                        self.pos += 1;
                    } else {
                        depth += 1;
                        self.deepest = self.deepest.max(depth);
                        kinds = (kinds << 1) | u128::from(is_object);
                        if is_object {
                            self.scan_key_colon(None)?;
                        }
                        continue;
                    }
                }
                Some(b'"') => {
                    self.scan_string()?;
                }
                Some(b'-' | b'0'..=b'9') => self.scan_number()?,
                Some(b't') => self.scan_literal(b"true")?,
                Some(b'f') => self.scan_literal(b"false")?,
                Some(b'n') => self.scan_literal(b"null")?,
                _ => return Err(self.unexpected("expected a value")),
            }
            // A value just ended: close containers until the next element.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                self.skip_ws();
                let in_object = kinds & 1 == 1;
                match self.peek() {
                    Some(b',') => {
                        let comma = self.pos;
                        self.pos += 1;
                        self.skip_ws();
                        if in_object {
                            self.scan_key_colon(Some(comma))?;
                        } else if self.peek() == Some(b']') {
                            return Err(ScanError { offset: comma, message: "trailing comma" });
                        }
                        break;
                    }
                    Some(b'}') if in_object => {}
                    Some(b']') if !in_object => {}
                    _ => {
                        return Err(self.unexpected(if in_object {
                            "expected ',' or '}'"
                        } else {
                            "expected ',' or ']'"
                        }))
                    }
                }
                self.pos += 1;
                depth -= 1;
                kinds >>= 1;
            }
        }
    }

    /// Scans a string token starting at the opening quote at `pos`; returns
    /// whether it contains escapes. Leaves `pos` after the closing quote.
    fn scan_string(&mut self) -> Result<bool, ScanError> {
        let start = self.pos + 1;
        self.pos = start;
        let mut escaped = false;
        let mut high_bits = 0u8;
        loop {
            let rest = self.doc.get(self.pos..).unwrap_or_default();
            let stop = find_string_special(rest, &mut high_bits);
            let Some(n) = stop else {
                self.pos = self.doc.len();
                return Err(self.err(EOF));
            };
            self.pos += n;
            match self.peek() {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.scan_escape()?;
                }
                _ => return Err(self.err("control character in string")),
            }
        }
        if high_bits & 0x80 != 0 {
            let raw = self.doc.get(start..self.pos).unwrap_or_default();
            if let Err(e) = std::str::from_utf8(raw) {
                return Err(ScanError { offset: start + e.valid_up_to(), message: "invalid UTF-8 in string" });
            }
        }
        self.pos += 1;
        Ok(escaped)
    }

    /// Validates the escape whose backslash is at `pos`; leaves `pos` after it.
    fn scan_escape(&mut self) -> Result<(), ScanError> {
        let backslash = self.pos;
        self.pos += 1;
        match self.peek() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 1;
                Ok(())
            }
            Some(b'u') => {
                self.pos += 1;
                let unit = self.scan_hex4()?;
                if (0xDC00..=0xDFFF).contains(&unit) {
                    return Err(ScanError { offset: backslash, message: "lone surrogate in \\u escape" });
                }
                if (0xD800..=0xDBFF).contains(&unit) {
                    let rest = self.doc.get(self.pos..).unwrap_or_default();
                    if !rest.starts_with(b"\\u") {
                        return Err(ScanError { offset: backslash, message: "lone surrogate in \\u escape" });
                    }
                    self.pos += 2;
                    let low = self.scan_hex4()?;
                    if !(0xDC00..=0xDFFF).contains(&low) {
                        return Err(ScanError { offset: backslash, message: "lone surrogate in \\u escape" });
                    }
                }
                Ok(())
            }
            None => Err(self.err(EOF)),
            Some(_) => Err(ScanError { offset: backslash, message: "invalid escape" }),
        }
    }

    fn scan_hex4(&mut self) -> Result<u16, ScanError> {
        let mut unit = 0u16;
        for _ in 0..4 {
            let digit = self.peek().and_then(hex_val);
            let Some(d) = digit else {
                return Err(self.unexpected("invalid \\u escape"));
            };
            unit = (unit << 4) | d;
            self.pos += 1;
        }
        Ok(unit)
    }

    fn scan_digits(&mut self, message: &'static str) -> Result<(), ScanError> {
        if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
            return Err(self.unexpected(message));
        }
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        Ok(())
    }

    fn scan_number(&mut self) -> Result<(), ScanError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        if self.peek() == Some(b'0') {
            self.pos += 1;
            if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.err("leading zeros are not allowed"));
            }
        } else {
            self.scan_digits("expected a digit")?;
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.scan_digits("expected a digit after '.'")?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.scan_digits("expected a digit in the exponent")?;
        }
        Ok(())
    }

    fn scan_literal(&mut self, literal: &'static [u8]) -> Result<(), ScanError> {
        let rest = self.doc.get(self.pos..).unwrap_or_default();
        let matched = rest.iter().zip(literal).take_while(|(a, b)| a == b).count();
        self.pos += matched;
        if matched == literal.len() {
            Ok(())
        } else {
            Err(self.unexpected("invalid literal"))
        }
    }
}

/// What [`inspect`] learns from a whole request body in one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyFacts {
    /// The top-level members, as [`top_level_members`] returns them (no duplicates).
    pub members: Vec<Member>,
    /// Images, audio clips, files and documents in the body: objects whose `type` names a
    /// media part (OpenAI `image_url`/`input_audio`/`file`, Responses `input_image`/
    /// `input_file`, Anthropic `image`/`document`) or that hold a media member as an object
    /// (Gemini `inlineData`/`fileData`, Bedrock `image`/`document`/`video`/`audio`). Each such
    /// object counts once, however its strings are escaped.
    pub media: u64,
}

/// Why [`inspect`] refused a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InspectError {
    /// Not strict JSON, or not an object at the top level.
    Syntax(ScanError),
    /// An object holds `key` twice; `path` names the object (`""` for the top level,
    /// `messages[0].content[1]` style below it).
    DuplicateKey { path: String, key: String },
}

impl fmt::Display for InspectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InspectError::Syntax(e) => e.fmt(f),
            InspectError::DuplicateKey { path, key } if path.is_empty() => {
                write!(f, "duplicate key {key:?} at the top level of the body")
            }
            InspectError::DuplicateKey { path, key } => write!(f, "duplicate key {key:?} in `{path}`"),
        }
    }
}

impl std::error::Error for InspectError {}

impl From<ScanError> for InspectError {
    fn from(e: ScanError) -> Self {
        InspectError::Syntax(e)
    }
}

/// `type` values that mark a media part (see [`BodyFacts::media`]).
pub const MEDIA_TYPES: &[&str] =
    &["image_url", "image", "input_image", "input_audio", "audio", "file", "input_file", "document"];
/// Members that hold media directly when their value is an object.
pub const MEDIA_KEYS: &[&str] = &["inlineData", "fileData", "image", "document", "video", "audio"];

/// Objects with more keys than this check duplicates with a hash set instead of a scan.
const LINEAR_KEYS: usize = 16;

type Key<'a> = std::borrow::Cow<'a, [u8]>;

/// One open container of [`inspect`]. The keys of all open objects share one stack (each
/// frame owns `keys[keys_start..]` until it closes), so an object allocates nothing of its
/// own unless it grows past [`LINEAR_KEYS`] keys.
struct Frame<'a> {
    is_object: bool,
    keys_start: usize,
    /// The object's keys, hashed, once it has more than [`LINEAR_KEYS`].
    hashed: Option<std::collections::HashSet<Key<'a>>>,
    /// The member being read (objects).
    current: Key<'a>,
    /// The element being read (arrays).
    index: usize,
    media: bool,
}

impl<'a> Frame<'a> {
    fn new(is_object: bool, keys_start: usize) -> Self {
        Frame { is_object, keys_start, hashed: None, current: Key::Borrowed(&[]), index: 0, media: false }
    }

    fn current_key(&self) -> &[u8] {
        &self.current
    }

    /// Records a key on the shared stack; false if the object already holds it.
    fn insert_key(&mut self, keys: &mut Vec<Key<'a>>, key: Key<'a>) -> bool {
        let own = keys.get(self.keys_start..).unwrap_or_default();
        if let Some(set) = &mut self.hashed {
            if !set.insert(key.clone()) {
                return false;
            }
        } else if own.contains(&key) {
            return false;
        } else if own.len() >= LINEAR_KEYS {
            let mut set: std::collections::HashSet<_> = own.iter().cloned().collect();
            set.insert(key.clone());
            self.hashed = Some(set);
        }
        keys.push(key.clone());
        self.current = key;
        true
    }
}

/// The path of the innermost frame, for error messages: `messages[0].content`.
fn frames_path(frames: &[Frame<'_>]) -> String {
    let mut path = String::new();
    // Each frame's own segment is its parent's current key or index.
    for pair in frames.windows(2) {
        let (Some(parent), Some(_)) = (pair.first(), pair.get(1)) else { continue };
        if parent.is_object {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&String::from_utf8_lossy(parent.current_key()));
        } else {
            path.push_str(&format!("[{}]", parent.index));
        }
    }
    path
}

fn unescaped_key(doc: &[u8], start: usize, end: usize, escaped: bool) -> Result<std::borrow::Cow<'_, [u8]>, ScanError> {
    if escaped {
        Ok(std::borrow::Cow::Owned(key_string(doc, start, end, true)?.into_bytes()))
    } else {
        Ok(std::borrow::Cow::Borrowed(doc.get(start + 1..end.saturating_sub(1)).unwrap_or_default()))
    }
}

/// Validates the whole document like [`top_level_members`] and also refuses any object,
/// at any depth, that holds the same key twice (after unescaping: `"a"` and `"\u0061"` are
/// the same key). JSON parsers disagree on duplicates (serde_json keeps the last for maps,
/// refuses them for derived structs; Envoy's `json_to_metadata` and the providers read the
/// last), so a body with one cannot be read the same way by everyone on its path.
/// Linear time: keys are compared in place until an object grows past 16 keys, then hashed.
pub fn inspect(doc: &[u8]) -> Result<BodyFacts, InspectError> {
    let mut s = Scanner { doc, pos: 0, deepest: 0 };
    s.skip_ws();
    if s.peek() != Some(b'{') {
        return Err(s.err("expected a JSON object").into());
    }
    let mut facts = BodyFacts::default();
    let mut frames: Vec<Frame<'_>> = Vec::new();
    let mut keys: Vec<Key<'_>> = Vec::new();
    // The top-level member being read: (key, key start, value start).
    let mut pending: Option<(String, usize, usize)> = None;
    loop {
        // A value starts at `pos`.
        match s.peek() {
            Some(open @ (b'{' | b'[')) => {
                if frames.len() + 1 > MAX_DEPTH {
                    return Err(s.err("nesting too deep").into());
                }
                let is_object = open == b'{';
                s.pos += 1;
                s.skip_ws();
                if s.peek() == Some(if is_object { b'}' } else { b']' }) {
                    s.pos += 1;
                    note_value_media(&mut frames, is_object);
                } else {
                    frames.push(Frame::new(is_object, keys.len()));
                    if is_object {
                        let top = read_key(&mut s, &mut frames, &mut keys, None)?;
                        pending = top.or(pending);
                    }
                    continue;
                }
            }
            Some(b'"') => {
                let start = s.pos;
                let escaped = s.scan_string()?;
                let in_type_member = frames.last().is_some_and(|f| f.is_object && f.current_key() == b"type");
                if in_type_member {
                    let value = unescaped_key(doc, start, s.pos, escaped)?;
                    if MEDIA_TYPES.iter().any(|t| t.as_bytes() == value.as_ref()) {
                        if let Some(frame) = frames.last_mut() {
                            frame.media = true;
                        }
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => s.scan_number()?,
            Some(b't') => s.scan_literal(b"true")?,
            Some(b'f') => s.scan_literal(b"false")?,
            Some(b'n') => s.scan_literal(b"null")?,
            _ => return Err(s.unexpected("expected a value").into()),
        }
        // A value ended: close containers until the next element.
        loop {
            if frames.len() == 1 {
                if let Some((key, key_start, value_start)) = pending.take() {
                    facts.members.push(Member { key, span: key_start..s.pos, value: value_start..s.pos });
                }
            }
            let Some(frame) = frames.last_mut() else {
                s.skip_ws();
                if s.pos != doc.len() {
                    return Err(s.err("trailing characters after the object").into());
                }
                return Ok(facts);
            };
            s.skip_ws();
            let in_object = frame.is_object;
            match s.peek() {
                Some(b',') => {
                    let comma = s.pos;
                    s.pos += 1;
                    s.skip_ws();
                    if in_object {
                        let top = read_key(&mut s, &mut frames, &mut keys, Some(comma))?;
                        pending = top.or(pending);
                    } else if s.peek() == Some(b']') {
                        return Err(ScanError { offset: comma, message: "trailing comma" }.into());
                    } else {
                        frame.index += 1;
                    }
                    break;
                }
                Some(b'}') if in_object => {}
                Some(b']') if !in_object => {}
                _ => {
                    return Err(s
                        .unexpected(if in_object { "expected ',' or '}'" } else { "expected ',' or ']'" })
                        .into())
                }
            }
            s.pos += 1;
            let closed = frames.pop();
            if let Some(closed) = closed {
                keys.truncate(closed.keys_start);
                if closed.media {
                    facts.media = facts.media.saturating_add(1);
                }
                note_value_media(&mut frames, closed.is_object);
            }
        }
    }
}

/// A value that just ended is an object held by a media member (`"inlineData": {...}`):
/// the object holding that member is a media part.
fn note_value_media(frames: &mut [Frame<'_>], value_is_object: bool) {
    if let Some(parent) = frames.last_mut() {
        if value_is_object && parent.is_object && MEDIA_KEYS.iter().any(|k| k.as_bytes() == parent.current_key()) {
            parent.media = true;
        }
    }
}

/// Reads a member key (at `pos`) of the innermost object, refusing a duplicate, then the
/// colon and whitespace. For a top-level key, returns it with its start and the value's
/// start (the member's spans).
fn read_key<'a>(
    s: &mut Scanner<'a>,
    frames: &mut [Frame<'a>],
    keys: &mut Vec<Key<'a>>,
    comma: Option<usize>,
) -> Result<Option<(String, usize, usize)>, InspectError> {
    s.check_key_start(comma)?;
    let start = s.pos;
    let escaped = s.scan_string()?;
    let key = unescaped_key(s.doc, start, s.pos, escaped)?;
    let top = frames.len() == 1;
    let Some(frame) = frames.last_mut() else { return Ok(None) };
    if !frame.insert_key(keys, key.clone()) {
        let path = frames_path(frames);
        return Err(InspectError::DuplicateKey { path, key: String::from_utf8_lossy(&key).into_owned() });
    }
    s.skip_ws();
    s.expect_colon()?;
    s.skip_ws();
    Ok(top.then(|| (String::from_utf8_lossy(&key).into_owned(), start, s.pos)))
}
