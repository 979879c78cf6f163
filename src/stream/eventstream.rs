//! Incremental decoder (and a small encoder) for AWS event streams,
//! `application/vnd.amazon.eventstream`: the binary framing of Bedrock `ConverseStream`,
//! `InvokeModelWithResponseStream` and other AWS streaming APIs.
//!
//! One message on the wire (all integers big-endian):
//!
//! ```text
//! prelude   total_length u32 | headers_length u32 | prelude_crc u32 (CRC32 of the first 8 bytes)
//! headers   repeated: name_len u8 | name (UTF-8) | type u8 | value
//! payload   total_length - headers_length - 16 bytes
//! trailer   message_crc u32 (CRC32 of everything before it, prelude included)
//! ```
//!
//! Header value types: 0 bool true and 1 bool false (no value bytes), 2 byte (i8), 3 short
//! (i16), 4 integer (i32), 5 long (i64), 6 byte array (u16 length + bytes), 7 string (u16
//! length + UTF-8), 8 timestamp (i64 milliseconds since the epoch), 9 UUID (16 bytes).
//! The CRC is CRC-32/IEEE (the zlib/PNG one), computed here with a 1 KiB table built at
//! compile time.
//!
//! The decoder is bytes in, messages out: chunk boundaries are arbitrary, a message is
//! delivered as soon as its last byte arrives, and at most one partial message is held.
//! Limits: a message may not exceed the `max_frame` given to [`EventStreamDecoder::new`]
//! (AWS's own limit is 16 MiB, [`MAX_FRAME`]) and its header section may not exceed 128 KiB
//! ([`MAX_HEADERS`]); both are checked from the prelude, before the message is buffered.
//! Any error (bad CRC, bad lengths, unknown header type, invalid UTF-8) is final: the stream
//! cannot be resynchronised, so every later `feed` returns the same error.

use std::fmt;

/// AWS's maximum message size (16 MiB).
pub const MAX_FRAME: usize = 16 * 1024 * 1024;
/// AWS's maximum header section size (128 KiB).
pub const MAX_HEADERS: usize = 128 * 1024;
/// Prelude (12 bytes) + message CRC (4 bytes).
const OVERHEAD: usize = 16;
const PRELUDE: usize = 12;

/// A typed header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Bytes(Vec<u8>),
    String(String),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Vec<u8>,
}

impl Message {
    /// The value of the first header `name` if it is a string (names compare exactly; AWS
    /// header names such as `:event-type` are lower case).
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).and_then(|(_, v)| match v {
            HeaderValue::String(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// The value of the first header `name`, of any type.
    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// Why a stream was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventStreamError {
    /// The prelude CRC does not match.
    PreludeCrc { expected: u32, actual: u32 },
    /// The message CRC does not match.
    MessageCrc { expected: u32, actual: u32 },
    /// `total_length` is below 16, or leaves no room for the headers.
    BadLength { total: u32, headers: u32 },
    /// The message is larger than the decoder's `max_frame`.
    FrameTooLarge { total: u32, limit: usize },
    /// The header section is larger than [`MAX_HEADERS`].
    HeadersTooLarge { headers: u32 },
    /// A header is malformed (truncated, unknown type, invalid UTF-8, empty name).
    BadHeader(String),
    /// The stream ended inside a message (`pending` bytes of it were received).
    Truncated { pending: usize },
    /// Encoder only: a header name longer than 255 bytes or a value longer than 65535 bytes.
    TooLong(String),
}

impl fmt::Display for EventStreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventStreamError::PreludeCrc { expected, actual } => {
                write!(f, "event stream prelude CRC mismatch (expected {expected:08x}, got {actual:08x})")
            }
            EventStreamError::MessageCrc { expected, actual } => {
                write!(f, "event stream message CRC mismatch (expected {expected:08x}, got {actual:08x})")
            }
            EventStreamError::BadLength { total, headers } => {
                write!(f, "event stream message has invalid lengths (total {total}, headers {headers})")
            }
            EventStreamError::FrameTooLarge { total, limit } => {
                write!(f, "event stream message of {total} bytes exceeds the {limit}-byte limit")
            }
            EventStreamError::HeadersTooLarge { headers } => {
                write!(f, "event stream header section of {headers} bytes exceeds {MAX_HEADERS} bytes")
            }
            EventStreamError::BadHeader(why) => write!(f, "malformed event stream header: {why}"),
            EventStreamError::Truncated { pending } => {
                write!(f, "event stream ended inside a message ({pending} bytes pending)")
            }
            EventStreamError::TooLong(what) => write!(f, "cannot encode event stream message: {what}"),
        }
    }
}

impl std::error::Error for EventStreamError {}

// ----------------------------------------------------------------------------- CRC32

// `i < 256` by the loop condition; `get_mut` is not usable in a const fn.
#[allow(clippy::indexing_slicing)]
const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

/// Continues a CRC-32/IEEE over `data` (start with `crc32_update(0, ..)`).
pub fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        let idx = ((c ^ u32::from(b)) & 0xff) as u8;
        c = CRC_TABLE.get(usize::from(idx)).copied().unwrap_or(0) ^ (c >> 8);
    }
    !c
}

/// CRC-32/IEEE of `data` (`crc32(b"123456789") == 0xCBF43926`).
pub fn crc32(data: &[u8]) -> u32 {
    crc32_update(0, data)
}

// ----------------------------------------------------------------------------- decoder

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        v.copy_from_slice(s);
    }
    u32::from_be_bytes(v)
}

/// Incremental event-stream decoder. See the module docs.
#[derive(Debug)]
pub struct EventStreamDecoder {
    max_frame: usize,
    /// Bytes of the current partial message (its prelude first).
    buf: Vec<u8>,
    /// `total_length` of the current message once its prelude was validated.
    need: Option<usize>,
    failed: Option<EventStreamError>,
}

impl Default for EventStreamDecoder {
    fn default() -> Self {
        Self::new(MAX_FRAME)
    }
}

impl EventStreamDecoder {
    /// A decoder rejecting messages larger than `max_frame` bytes (clamped to at least 16
    /// and at most [`MAX_FRAME`]).
    pub fn new(max_frame: usize) -> Self {
        EventStreamDecoder {
            max_frame: max_frame.clamp(OVERHEAD, MAX_FRAME),
            buf: Vec::new(),
            need: None,
            failed: None,
        }
    }

    /// Feeds one chunk; complete messages are appended to `out` (also those completed
    /// before an error in the same chunk).
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<Message>) -> Result<(), EventStreamError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        while !chunk.is_empty() {
            // Fast path: nothing buffered and whole messages in the chunk: no copy.
            if self.buf.is_empty() && chunk.len() >= PRELUDE {
                let total = self.check_prelude(chunk)?;
                if chunk.len() >= total {
                    let (msg, rest) = chunk.split_at(total);
                    out.push(self.fail_on(parse_message(msg))?);
                    chunk = rest;
                    continue;
                }
            }
            let want = match self.need {
                Some(total) => total,
                None => PRELUDE,
            };
            let take = want.saturating_sub(self.buf.len()).min(chunk.len());
            let (head, rest) = chunk.split_at(take);
            self.buf.extend_from_slice(head);
            chunk = rest;
            if self.buf.len() < want {
                continue;
            }
            if self.need.is_none() {
                let checked = check_prelude(&self.buf, self.max_frame);
                let total = self.fail_on(checked)?;
                self.need = Some(total);
                self.buf.reserve(total.saturating_sub(self.buf.len()));
                continue;
            }
            let msg = parse_message(&self.buf);
            self.buf = Vec::new();
            self.need = None;
            out.push(self.fail_on(msg)?);
        }
        Ok(())
    }

    /// Call at the end of the stream: an error if a partial message is pending (or the
    /// stream had already failed).
    pub fn finish(&self) -> Result<(), EventStreamError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(EventStreamError::Truncated { pending: self.buf.len() })
        }
    }

    /// Bytes of the partial message currently held.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    fn fail_on<T>(&mut self, r: Result<T, EventStreamError>) -> Result<T, EventStreamError> {
        if let Err(e) = &r {
            self.failed = Some(e.clone());
            self.buf = Vec::new();
        }
        r
    }

    /// Validates a prelude (the first 12 bytes of `b`) and returns `total_length`.
    fn check_prelude(&mut self, b: &[u8]) -> Result<usize, EventStreamError> {
        let r = check_prelude(b, self.max_frame);
        self.fail_on(r)
    }
}

fn check_prelude(b: &[u8], max_frame: usize) -> Result<usize, EventStreamError> {
    let total = be_u32(b, 0);
    let headers = be_u32(b, 4);
    let expected = be_u32(b, 8);
    let actual = crc32(b.get(..8).unwrap_or_default());
    if expected != actual {
        return Err(EventStreamError::PreludeCrc { expected, actual });
    }
    let total_len = total as usize;
    if total_len < OVERHEAD || (headers as usize) > total_len - OVERHEAD {
        return Err(EventStreamError::BadLength { total, headers });
    }
    if total_len > max_frame {
        return Err(EventStreamError::FrameTooLarge { total, limit: max_frame });
    }
    if headers as usize > MAX_HEADERS {
        return Err(EventStreamError::HeadersTooLarge { headers });
    }
    Ok(total_len)
}

/// Parses one complete message whose prelude was validated.
fn parse_message(b: &[u8]) -> Result<Message, EventStreamError> {
    let total = b.len();
    let body_end = total.saturating_sub(4);
    let expected = be_u32(b, body_end);
    let actual = crc32(b.get(..body_end).unwrap_or_default());
    if expected != actual {
        return Err(EventStreamError::MessageCrc { expected, actual });
    }
    let headers_len = be_u32(b, 4) as usize;
    let headers_end = PRELUDE + headers_len;
    let headers = parse_headers(b.get(PRELUDE..headers_end).unwrap_or_default())?;
    let payload = b.get(headers_end..body_end).unwrap_or_default().to_vec();
    Ok(Message { headers, payload })
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], EventStreamError> {
        let s = self
            .b
            .get(self.at..self.at.saturating_add(n))
            .ok_or_else(|| EventStreamError::BadHeader(format!("truncated {what}")))?;
        self.at += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], EventStreamError> {
        let mut v = [0u8; N];
        v.copy_from_slice(self.take(N, what)?);
        Ok(v)
    }
}

fn parse_headers(b: &[u8]) -> Result<Vec<(String, HeaderValue)>, EventStreamError> {
    let mut r = Reader { b, at: 0 };
    let mut out = Vec::new();
    while r.at < b.len() {
        let [name_len] = r.array::<1>("header name length")?;
        if name_len == 0 {
            return Err(EventStreamError::BadHeader("empty header name".into()));
        }
        let name = std::str::from_utf8(r.take(usize::from(name_len), "header name")?)
            .map_err(|_| EventStreamError::BadHeader("header name is not UTF-8".into()))?
            .to_owned();
        let [ty] = r.array::<1>("header type")?;
        let value = match ty {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes(r.array::<1>("byte header")?)),
            3 => HeaderValue::Short(i16::from_be_bytes(r.array::<2>("short header")?)),
            4 => HeaderValue::Int(i32::from_be_bytes(r.array::<4>("integer header")?)),
            5 => HeaderValue::Long(i64::from_be_bytes(r.array::<8>("long header")?)),
            6 | 7 => {
                let len = usize::from(u16::from_be_bytes(r.array::<2>("header value length")?));
                let raw = r.take(len, "header value")?;
                if ty == 6 {
                    HeaderValue::Bytes(raw.to_vec())
                } else {
                    let s = std::str::from_utf8(raw)
                        .map_err(|_| EventStreamError::BadHeader(format!("header {name:?} is not UTF-8")))?;
                    HeaderValue::String(s.to_owned())
                }
            }
            8 => HeaderValue::Timestamp(i64::from_be_bytes(r.array::<8>("timestamp header")?)),
            9 => HeaderValue::Uuid(r.array::<16>("uuid header")?),
            other => return Err(EventStreamError::BadHeader(format!("unknown header type {other}"))),
        };
        out.push((name, value));
    }
    Ok(out)
}

// ----------------------------------------------------------------------------- encoder

fn encode_header(out: &mut Vec<u8>, name: &str, value: &HeaderValue) -> Result<(), EventStreamError> {
    let name_len = u8::try_from(name.len())
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| EventStreamError::TooLong(format!("header name of {} bytes", name.len())))?;
    out.push(name_len);
    out.extend_from_slice(name.as_bytes());
    let var = |out: &mut Vec<u8>, ty: u8, raw: &[u8]| -> Result<(), EventStreamError> {
        let len = u16::try_from(raw.len())
            .map_err(|_| EventStreamError::TooLong(format!("header {name:?} value of {} bytes", raw.len())))?;
        out.push(ty);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(raw);
        Ok(())
    };
    match value {
        HeaderValue::Bool(true) => out.push(0),
        HeaderValue::Bool(false) => out.push(1),
        HeaderValue::Byte(v) => {
            out.push(2);
            out.extend_from_slice(&v.to_be_bytes());
        }
        HeaderValue::Short(v) => {
            out.push(3);
            out.extend_from_slice(&v.to_be_bytes());
        }
        HeaderValue::Int(v) => {
            out.push(4);
            out.extend_from_slice(&v.to_be_bytes());
        }
        HeaderValue::Long(v) => {
            out.push(5);
            out.extend_from_slice(&v.to_be_bytes());
        }
        HeaderValue::Bytes(v) => var(out, 6, v)?,
        HeaderValue::String(v) => var(out, 7, v.as_bytes())?,
        HeaderValue::Timestamp(v) => {
            out.push(8);
            out.extend_from_slice(&v.to_be_bytes());
        }
        HeaderValue::Uuid(v) => {
            out.push(9);
            out.extend_from_slice(v);
        }
    }
    Ok(())
}

/// Encodes one message (used by tests and benchmarks; the fake provider has its own
/// Python encoder).
pub fn encode_message(headers: &[(String, HeaderValue)], payload: &[u8]) -> Result<Vec<u8>, EventStreamError> {
    let mut hbuf = Vec::new();
    for (name, value) in headers {
        encode_header(&mut hbuf, name, value)?;
    }
    let total = OVERHEAD + hbuf.len() + payload.len();
    let (Ok(total32), Ok(headers32)) = (u32::try_from(total), u32::try_from(hbuf.len())) else {
        return Err(EventStreamError::TooLong(format!("message of {total} bytes")));
    };
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&total32.to_be_bytes());
    out.extend_from_slice(&headers32.to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&hbuf);
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    Ok(out)
}
