//! Incremental Server-Sent Events (`text/event-stream`) decoder and encoder.
//!
//! Parsing follows the WHATWG HTML "server-sent events" interpretation rules,
//! with a few gateway-oriented choices:
//!
//! * Bytes arrive in chunks with arbitrary boundaries. A line is decoded as
//!   UTF-8 (lossily, U+FFFD for invalid sequences) only once it is complete,
//!   so a multibyte character split across chunks decodes correctly. A CR at
//!   the end of one chunk followed by an LF at the start of the next is one
//!   line ending.
//! * `id` and `retry` are reported only on the event whose field block set
//!   them. The spec keeps a "last event ID" that persists across events; a
//!   proxy re-encoding events wants the field exactly where the upstream put
//!   it, so we do not carry it forward. Both are cleared at every blank line,
//!   so an `id:`/`retry:` in a block without `data` is dropped (such a block
//!   dispatches no event, and there is no event to attach it to).
//! * An `event:` field with an empty value means the default type, reported
//!   as `event: None`.
//! * [`SseDecoder::finish`] delivers a last event even when the stream ends
//!   without its terminating blank line (the spec discards it; providers
//!   sometimes omit it).
//! * Memory is bounded: see [`SseDecoder::new`].

use std::fmt;
use std::mem;

/// One dispatched SSE event. `data` has the lines joined with '\n' (no trailing '\n').
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` type, `None` for the default (`message`) type.
    pub event: Option<String>,
    /// The `data:` lines joined with '\n'.
    pub data: String,
    /// The `id:` set in this event's field block, if any.
    pub id: Option<String>,
    /// The `retry:` set in this event's field block, if any.
    pub retry: Option<u64>,
}

/// Decoder error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// The bytes held for one event (partial line + pending fields) exceeded `limit`.
    EventTooLarge { limit: usize },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::EventTooLarge { limit } => write!(f, "SSE event exceeds {limit} bytes"),
        }
    }
}

impl std::error::Error for SseError {}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reusable buffers larger than this are released instead of kept for the
/// next event, so one large event does not pin memory for the whole stream.
const RETAIN_CAPACITY: usize = 16 * 1024;

#[inline]
fn is_eol(b: &u8) -> bool {
    *b == b'\n' || *b == b'\r'
}

/// Incremental SSE decoder: feed chunks, collect completed events.
#[derive(Debug)]
pub struct SseDecoder {
    max_event_bytes: usize,
    /// Bytes of the current, not yet terminated line.
    line: Vec<u8>,
    /// The previous chunk ended with CR: an LF at the start of the next chunk
    /// belongs to the same line ending.
    pending_cr: bool,
    /// No line has been completed yet (a leading BOM is still to be dropped).
    at_stream_start: bool,
    /// Data buffer as in the spec: each `data` value followed by '\n'.
    /// Non-empty exactly when a `data` field was seen.
    data: String,
    /// Event type buffer; empty means the default type.
    event: String,
    id: Option<String>,
    retry: Option<u64>,
    /// Set after an error; sticky until `finish`.
    failed: bool,
}

impl SseDecoder {
    /// A decoder that holds at most `max_event_bytes` for one event: the
    /// current line (as raw bytes, field name included, line ending excluded)
    /// plus the pending `data`, `event` and `id` values. Exceeding it is
    /// [`SseError::EventTooLarge`]. Whether a stream errors, and which events
    /// are delivered before the error, do not depend on chunk boundaries.
    pub fn new(max_event_bytes: usize) -> Self {
        SseDecoder {
            max_event_bytes,
            line: Vec::new(),
            pending_cr: false,
            at_stream_start: true,
            data: String::new(),
            event: String::new(),
            id: None,
            retry: None,
            failed: false,
        }
    }

    /// Feed the next chunk (arbitrary boundaries); completed events are appended to `out`.
    ///
    /// On error, events completed earlier in this chunk are already in `out`;
    /// the pending state is discarded and every later `feed` returns the same
    /// error (the stream cannot be resynchronised reliably) until `finish`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.failed {
            return Err(self.error());
        }
        let mut rest = chunk;
        if self.pending_cr {
            if let Some((&first, tail)) = rest.split_first() {
                self.pending_cr = false;
                if first == b'\n' {
                    rest = tail;
                }
            }
        }
        while let Some(pos) = rest.iter().position(is_eol) {
            let line = rest.get(..pos).unwrap_or_default();
            let (eol, after) = match rest.get(pos..).and_then(<[u8]>::split_first) {
                Some((&eol, after)) => (eol, after),
                None => break, // unreachable: `pos` indexes a terminator
            };
            self.complete_line(line, out)?;
            rest = after;
            if eol == b'\r' {
                match rest.split_first() {
                    Some((&b'\n', after_lf)) => rest = after_lf,
                    Some(_) => {}
                    None => self.pending_cr = true,
                }
            }
        }
        if !rest.is_empty() {
            if self.line.len() + rest.len() + self.pending_bytes() > self.max_event_bytes {
                return Err(self.fail());
            }
            self.line.extend_from_slice(rest);
        }
        Ok(())
    }

    /// End of stream: a last line without its newline, and a last event without its blank line, are still delivered.
    ///
    /// The decoder is then reset and can decode a new stream. If the decoder
    /// had failed, returns that error (and still resets).
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let result = if self.failed { Err(self.error()) } else { self.finish_inner(out) };
        *self = SseDecoder::new(self.max_event_bytes);
        result
    }

    /// Bytes currently held back (partial line + pending event fields); for tests and bounds.
    /// Never exceeds `max_event_bytes`.
    pub fn held_bytes(&self) -> usize {
        self.line.len() + self.pending_bytes()
    }

    fn finish_inner(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        self.pending_cr = false;
        if !self.line.is_empty() {
            self.complete_line(&[], out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    fn pending_bytes(&self) -> usize {
        self.data.len() + self.event.len() + self.id.as_ref().map_or(0, String::len)
    }

    fn error(&self) -> SseError {
        SseError::EventTooLarge { limit: self.max_event_bytes }
    }

    /// Discard pending state and enter the failed state.
    fn fail(&mut self) -> SseError {
        let max = self.max_event_bytes;
        *self = SseDecoder::new(max);
        self.failed = true;
        self.error()
    }

    /// The line made of the held partial line followed by `tail` is complete.
    fn complete_line(&mut self, tail: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        // Counting the whole line (not just what was buffered) keeps the
        // outcome independent of where chunks were split.
        if self.line.len() + tail.len() + self.pending_bytes() > self.max_event_bytes {
            return Err(self.fail());
        }
        if self.line.is_empty() {
            self.process_line(tail, out);
        } else {
            self.line.extend_from_slice(tail);
            let mut line = mem::take(&mut self.line);
            self.process_line(&line, out);
            if line.capacity() <= RETAIN_CAPACITY {
                line.clear();
                self.line = line;
            }
        }
        // Decoding can grow a value: each invalid UTF-8 byte becomes U+FFFD (3 bytes).
        if self.pending_bytes() > self.max_event_bytes {
            return Err(self.fail());
        }
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        let line =
            if mem::replace(&mut self.at_stream_start, false) { line.strip_prefix(BOM).unwrap_or(line) } else { line };
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        // ':' is ASCII, so splitting the bytes before lossy decoding gives the
        // same result as decoding the whole line first.
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => return, // comment
            Some(colon) => {
                let value = line.get(colon + 1..).unwrap_or_default();
                let value = value.strip_prefix(b" ").unwrap_or(value);
                (line.get(..colon).unwrap_or_default(), value)
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                self.data.push_str(&String::from_utf8_lossy(value));
                self.data.push('\n');
            }
            b"event" => {
                self.event.clear();
                self.event.push_str(&String::from_utf8_lossy(value));
            }
            b"id" if !value.contains(&0) => {
                self.id = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"retry" => self.retry = parse_retry(value).or(self.retry),
            _ => {}
        }
    }

    /// Blank line: dispatch the pending event if a `data` field was seen,
    /// and reset the per-event buffers either way.
    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = mem::take(&mut self.event);
        let id = self.id.take();
        let retry = self.retry.take();
        if self.data.is_empty() {
            return;
        }
        let data = if self.data.len() > RETAIN_CAPACITY {
            // Large: hand the buffer over instead of copying it.
            let mut data = mem::take(&mut self.data);
            if data.ends_with('\n') {
                data.pop();
            }
            data
        } else {
            // Small: copy once and keep the buffer's capacity for the next event.
            let data = String::from(self.data.strip_suffix('\n').unwrap_or(&self.data));
            self.data.clear();
            data
        };
        out.push(SseEvent { event: (!event.is_empty()).then_some(event), data, id, retry });
    }
}

/// A complete event found in the raw bytes in exactly the form [`encode_event`] writes:
/// an optional `event: <type>` line, one `data: <data>` line, a blank line, LF line
/// endings. Decoding it and encoding the result gives `block` back, so an unchanged event
/// can be forwarded as `block` without either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawEvent<'a> {
    /// The whole event, blank line included.
    pub block: &'a [u8],
    /// The `event:` type (non-empty, UTF-8).
    pub event: Option<&'a str>,
    /// The data (non-empty, without CR or LF). Not checked for UTF-8: an event whose data
    /// is not UTF-8 decodes lossily, so it must go through [`SseDecoder::feed`] instead.
    pub data: &'a [u8],
    /// Where `data` starts in `block`.
    pub data_start: usize,
}

const EVENT_PREFIX: &[u8] = b"event: ";
const DATA_PREFIX: &[u8] = b"data: ";

impl SseDecoder {
    /// Reads the next piece of `rest` (at least one byte of a non-empty `rest`) and
    /// advances past it. Between events, a complete event in [`RawEvent`] form is returned
    /// undecoded (and counted as decoded: the decoder is where it would be after it).
    /// Anything else is decoded as by [`SseDecoder::feed`], one line at a time, the events
    /// it completes appended to `out`. Calling this until `rest` is empty delivers the
    /// same events, errors included, in the same order, as one `feed` of it, whatever the
    /// chunk boundaries (an event split across chunks is decoded).
    pub fn next_raw<'a>(
        &mut self,
        rest: &mut &'a [u8],
        out: &mut Vec<SseEvent>,
    ) -> Result<Option<RawEvent<'a>>, SseError> {
        if self.failed {
            return Err(self.error());
        }
        if self.is_idle() {
            if let Some(raw) = self.match_raw(rest) {
                *rest = rest.get(raw.block.len()..).unwrap_or_default();
                self.at_stream_start = false;
                return Ok(Some(raw));
            }
        }
        let line = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |lf| lf + 1);
        let (segment, after) = rest.split_at_checked(line).unwrap_or((rest, &[]));
        *rest = after;
        self.feed(segment, out)?;
        Ok(None)
    }

    /// No partial line and no pending field: the next byte starts a new event.
    fn is_idle(&self) -> bool {
        !self.failed
            && !self.pending_cr
            && self.line.is_empty()
            && self.data.is_empty()
            && self.event.is_empty()
            && self.id.is_none()
            && self.retry.is_none()
    }

    /// A [`RawEvent`] at the start of `rest`, if one is there complete and within the
    /// bound (what would exceed it is left to `feed`, which refuses it).
    fn match_raw<'a>(&self, rest: &'a [u8]) -> Option<RawEvent<'a>> {
        let mut start = 0;
        let mut event = None;
        if let Some(after) = rest.strip_prefix(EVENT_PREFIX) {
            let end = line_end(after)?;
            let name = after.get(..end)?;
            if name.is_empty() || EVENT_PREFIX.len() + end > self.max_event_bytes {
                return None;
            }
            event = Some(std::str::from_utf8(name).ok()?);
            start = EVENT_PREFIX.len() + end + 1;
        }
        let data_line = rest.get(start..)?.strip_prefix(DATA_PREFIX)?;
        let end = line_end(data_line)?;
        let data = data_line.get(..end)?;
        // The blank line, and the bound: the data line plus the pending event type.
        if data.is_empty()
            || data_line.get(end + 1) != Some(&b'\n')
            || DATA_PREFIX.len() + end + event.map_or(0, str::len) > self.max_event_bytes
        {
            return None;
        }
        let data_start = start + DATA_PREFIX.len();
        Some(RawEvent { block: rest.get(..data_start + end + 2)?, event, data, data_start })
    }
}

/// Offset of the LF that ends the line starting `bytes`; `None` when the line is not
/// complete or ends with CR.
#[inline]
fn line_end(bytes: &[u8]) -> Option<usize> {
    let end = find_eol(bytes)?;
    (bytes.get(end) == Some(&b'\n')).then_some(end)
}

/// Index of the first CR or LF, 8 bytes at a time (SWAR), the last few byte by byte.
#[inline]
fn find_eol(bytes: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    let mut offset = 0;
    for chunk in bytes.chunks_exact(8) {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let found = has_zero(w ^ (LO * u64::from(b'\n'))) | has_zero(w ^ (LO * u64::from(b'\r')));
        if found != 0 {
            // Exact for the lowest matching byte (false positives only above it).
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    bytes.get(offset..)?.iter().position(is_eol).map(|n| offset + n)
}

/// `retry` value: ASCII digits only, at least one. Values that overflow
/// `u64` are ignored like any other invalid value.
fn parse_retry(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Serialize an event back to wire form: optional `event:`/`id:`/`retry:` lines, one `data: ` line per data line, then a blank line. Always LF.
///
/// Data is split into lines at CR, LF and CRLF (decoded data only ever
/// contains LF). CR and LF are dropped from `event` and `id`, which cannot
/// contain line breaks on the wire. `event: Some("")` is written as an empty
/// `event:` field, which decodes as `None`.
pub fn encode_event(ev: &SseEvent, out: &mut Vec<u8>) {
    encode_event_with_data(ev, &ev.data, out);
}

/// [`encode_event`] of `ev` with `data` in place of its own (an event patched without
/// copying the rest of it).
pub fn encode_event_with_data(ev: &SseEvent, data: &str, out: &mut Vec<u8>) {
    if let Some(event) = &ev.event {
        write_field(out, b"event", event.as_bytes());
    }
    if let Some(id) = &ev.id {
        write_field(out, b"id", id.as_bytes());
    }
    if let Some(retry) = ev.retry {
        write_field(out, b"retry", retry.to_string().as_bytes());
    }
    let mut rest = data.as_bytes();
    loop {
        let Some(pos) = rest.iter().position(is_eol) else {
            write_data_line(out, rest);
            break;
        };
        write_data_line(out, rest.get(..pos).unwrap_or_default());
        let after = rest.get(pos..).unwrap_or_default();
        rest = if after.starts_with(b"\r\n") {
            after.get(2..).unwrap_or_default()
        } else {
            after.get(1..).unwrap_or_default()
        };
    }
    out.push(b'\n');
}

/// `name: value\n`, or `name:\n` for an empty value. Always writing the
/// space before a non-empty value preserves a value's own leading space.
fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.push(b':');
    if !value.is_empty() {
        out.push(b' ');
        out.extend(value.iter().filter(|b| !is_eol(b)));
    }
    out.push(b'\n');
}

fn write_data_line(out: &mut Vec<u8>, line: &[u8]) {
    out.extend_from_slice(b"data:");
    if !line.is_empty() {
        out.push(b' ');
        out.extend_from_slice(line);
    }
    out.push(b'\n');
}
