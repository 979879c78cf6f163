//! The fuzz targets' logic, one plain function per target, shared by the libFuzzer binaries
//! (fuzz/fuzz_targets/, nightly, `make fuzz`) and by tests/fuzz_regressions.rs, which replays
//! every committed input in fuzz/regressions/<target>/ on stable in `cargo test`.
//!
//! Each function must return normally for every input: a panic is a finding. Besides "no
//! panic", the targets check oracles where one exists: json_scan against serde_json, every
//! chunking of a stream against one feed, and decode -> encode -> decode round trips.
//! Oracle failures are reported with `assert!`/`panic!`, which is how libFuzzer sees them.
#![allow(clippy::panic)]

mod auth;
mod codecs;
mod config;
mod engine;
mod json;
mod streams;

pub use auth::auth;
pub use codecs::{request_codecs, response_codecs, stream_codecs};
pub use config::{config, template};
pub use engine::engine;
pub use json::json_scan;
pub use streams::{eventstream, sse};

/// A target: runs one input; returns normally or panics with the finding.
pub type Target = fn(&[u8]);

/// Every target, by the name of its binary and of its fuzz/regressions/ folder.
pub const TARGETS: [(&str, Target); 10] = [
    ("json_scan", json_scan),
    ("sse", sse),
    ("eventstream", eventstream),
    ("request_codecs", request_codecs),
    ("response_codecs", response_codecs),
    ("stream_codecs", stream_codecs),
    ("auth", auth),
    ("config", config),
    ("template", template),
    ("engine", engine),
];

/// Separates the parts of a multi-part input (e.g. request body and response body). Never
/// part of valid JSON outside a string, so a JSON seed followed by it splits where meant.
pub const SEP: &[u8] = b"\n@@\n";

/// The input before the first [`SEP`] and the rest (empty when there is none).
pub(crate) fn split_parts(data: &[u8]) -> (&[u8], &[u8]) {
    match data.windows(SEP.len()).position(|w| w == SEP) {
        Some(at) => {
            let (head, tail) = data.split_at(at);
            (head, tail.get(SEP.len()..).unwrap_or_default())
        }
        None => (data, &[]),
    }
}

/// The first byte (a selector, 0 for empty input) and the rest.
pub(crate) fn selector(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&first, rest)) => (first, rest),
        None => (0, &[]),
    }
}

/// Where to cut an input of `len` bytes in two: every point up to `exhaustive` bytes (what
/// the fuzzer mostly generates), else `spread + 1` evenly spread points.
pub(crate) fn split_points(len: usize, exhaustive: usize, spread: usize) -> Vec<usize> {
    if len <= exhaustive {
        (0..=len).collect()
    } else {
        (0..=spread).map(|i| len * i / spread).collect()
    }
}

/// The chunkings every stream oracle compares against one feed: each cut in two (every
/// cut for inputs up to 256 bytes), one byte at a time, and three-byte chunks.
pub(crate) fn chunkings(data: &[u8]) -> Vec<Vec<&[u8]>> {
    chunkings_with(data, 256, 32)
}

/// [`chunkings`] with fewer cuts, for targets whose decoding is expensive.
pub(crate) fn chunkings_with(data: &[u8], exhaustive: usize, spread: usize) -> Vec<Vec<&[u8]>> {
    let mut all: Vec<Vec<&[u8]>> = split_points(data.len(), exhaustive, spread)
        .into_iter()
        .map(|at| {
            let (a, b) = data.split_at(at);
            vec![a, b]
        })
        .collect();
    all.push(data.chunks(1).collect());
    all.push(data.chunks(3).collect());
    all
}

/// JSON equality where numbers that differ only in the last bits of a float count as equal:
/// serde_json (without `float_roundtrip`) may parse a printed f64 one ulp off.
pub(crate) fn json_close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            _ if x == y => true,
            (Some(x), Some(y)) => (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_close(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_close(v, w)))
        }
        _ => a == b,
    }
}

/// Parses bytes the gateway produced as JSON; they must be JSON.
pub(crate) fn must_parse(what: &str, bytes: &[u8]) -> serde_json::Value {
    match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => panic!("{what} is not JSON ({e}): {}", String::from_utf8_lossy(bytes)),
    }
}
