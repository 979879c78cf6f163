//! The SSE and AWS eventstream decoders: every chunking of the input gives the same events
//! and the same error as one feed, and what they decode re-encodes to the same events.

use super::{chunkings, selector};
use llm_gateway::stream::eventstream::{crc32, encode_message, EventStreamDecoder, EventStreamError, Message};
use llm_gateway::stream::sse::{encode_event, SseDecoder, SseError, SseEvent};

/// Event limits: the default-sized one, and a small one so the size error is reached.
const SSE_LIMITS: [usize; 2] = [1 << 20, 48];

pub fn sse(data: &[u8]) {
    for limit in SSE_LIMITS {
        let whole = decode_sse(limit, &[data]);
        for chunks in chunkings(data) {
            assert_eq!(decode_sse(limit, &chunks), whole, "SSE split {:?} differs from one feed", lens(&chunks));
            // Read with `next_raw` (what the OpenAI passthrough does): the same events.
            assert_eq!(decode_sse_raw(limit, &chunks), whole, "SSE next_raw split {:?} differs", lens(&chunks));
        }
        if let (events, Ok(())) = &whole {
            // Decoded events re-encode to the same events.
            let mut wire = Vec::new();
            for ev in events {
                encode_event(ev, &mut wire);
            }
            let again = decode_sse(usize::MAX, &[&wire]);
            assert_eq!(&again.0, events, "SSE encode -> decode: {:?}", String::from_utf8_lossy(&wire));
            assert_eq!(again.1, Ok(()));
        }
    }
}

fn lens(chunks: &[&[u8]]) -> Vec<usize> {
    chunks.iter().map(|c| c.len()).collect()
}

/// Events delivered, and the stream's first error (from `feed` or `finish`).
fn decode_sse(limit: usize, chunks: &[&[u8]]) -> (Vec<SseEvent>, Result<(), SseError>) {
    let mut decoder = SseDecoder::new(limit);
    let mut events = Vec::new();
    for chunk in chunks {
        if let Err(e) = decoder.feed(chunk, &mut events) {
            // Sticky: a later feed must report the same error and deliver nothing.
            let before = events.len();
            assert_eq!(decoder.feed(b"data: x\n\n", &mut events), Err(e.clone()), "SSE error is sticky");
            assert_eq!(events.len(), before, "nothing after an SSE error");
            let _ = decoder.finish(&mut events);
            assert_eq!(events.len(), before, "nothing from finish after an SSE error");
            return (events, Err(e));
        }
        assert!(decoder.held_bytes() <= limit, "SSE holds {} bytes over its limit {limit}", decoder.held_bytes());
    }
    let end = decoder.finish(&mut events);
    (events, end)
}

/// [`decode_sse`] through `SseDecoder::next_raw`, each raw event taken as the event it
/// stands for (and, when UTF-8, re-encoding to its own bytes).
fn decode_sse_raw(limit: usize, chunks: &[&[u8]]) -> (Vec<SseEvent>, Result<(), SseError>) {
    let mut decoder = SseDecoder::new(limit);
    let mut events = Vec::new();
    for chunk in chunks {
        let mut rest = *chunk;
        while !rest.is_empty() {
            match decoder.next_raw(&mut rest, &mut events) {
                Ok(Some(raw)) => {
                    let event = SseEvent {
                        event: raw.event.map(str::to_string),
                        data: String::from_utf8_lossy(raw.data).into_owned(),
                        id: None,
                        retry: None,
                    };
                    if std::str::from_utf8(raw.data).is_ok() {
                        let mut wire = Vec::new();
                        encode_event(&event, &mut wire);
                        assert_eq!(wire, raw.block, "a raw SSE event re-encodes to its own bytes");
                    }
                    events.push(event);
                }
                Ok(None) => {}
                Err(e) => return (events, Err(e)),
            }
            assert!(decoder.held_bytes() <= limit, "SSE holds {} bytes over its limit {limit}", decoder.held_bytes());
        }
    }
    let end = decoder.finish(&mut events);
    (events, end)
}

/// Frame limits: the default, and a small one so the size error is reached.
const FRAME_LIMITS: [usize; 2] = [llm_gateway::stream::eventstream::MAX_FRAME, 64];

/// Selector bit 0: rewrite both CRCs of every frame first, so the fuzzer gets past them
/// and into header and payload parsing.
pub fn eventstream(data: &[u8]) {
    let (sel, rest) = selector(data);
    let fixed;
    let data = if sel & 1 == 1 {
        fixed = fix_crcs(rest);
        fixed.as_slice()
    } else {
        rest
    };
    for limit in FRAME_LIMITS {
        let whole = decode_eventstream(limit, &[data]);
        for chunks in chunkings(data) {
            assert_eq!(
                decode_eventstream(limit, &chunks),
                whole,
                "eventstream split {:?} differs from one feed",
                lens(&chunks)
            );
        }
        // Every decoded message re-encodes to exactly its bytes on the wire.
        let mut wire = Vec::new();
        for m in &whole.0 {
            match encode_message(&m.headers, &m.payload) {
                Ok(bytes) => wire.extend_from_slice(&bytes),
                Err(e) => panic!("a decoded message does not re-encode: {e}"),
            }
        }
        assert_eq!(data.get(..wire.len()), Some(wire.as_slice()), "eventstream re-encoding differs from the input");
    }
}

/// Messages delivered, and the stream's first error (from `feed` or `finish`).
fn decode_eventstream(limit: usize, chunks: &[&[u8]]) -> (Vec<Message>, Result<(), EventStreamError>) {
    let mut decoder = EventStreamDecoder::new(limit);
    let mut messages = Vec::new();
    for chunk in chunks {
        if let Err(e) = decoder.feed(chunk, &mut messages) {
            assert_eq!(decoder.finish(), Err(e.clone()), "eventstream error is sticky");
            return (messages, Err(e));
        }
    }
    let end = decoder.finish();
    (messages, end)
}

/// The input with each frame's prelude and message CRC recomputed (frames as their
/// `total_length` fields lay them out; a trailing partial frame is left as is).
pub(crate) fn fix_crcs(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut pos = 0usize;
    while let Some(prelude) = out.get(pos..pos + 8) {
        let mut total = [0u8; 4];
        total.copy_from_slice(prelude.get(..4).unwrap_or(&[0; 4]));
        let total = u32::from_be_bytes(total) as usize;
        let Some(end) = pos.checked_add(total).filter(|&e| total >= 16 && e <= out.len()) else { break };
        let prelude_crc = crc32(prelude).to_be_bytes();
        if let Some(slot) = out.get_mut(pos + 8..pos + 12) {
            slot.copy_from_slice(&prelude_crc);
        }
        let message_crc = crc32(out.get(pos..end - 4).unwrap_or_default()).to_be_bytes();
        if let Some(slot) = out.get_mut(end - 4..end) {
            slot.copy_from_slice(&message_crc);
        }
        pos = end;
    }
    out
}
