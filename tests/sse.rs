//! Tests for the incremental SSE decoder (`llm_gateway::stream::sse`).
// Tests may index, unwrap and panic freely.

use llm_gateway::stream::sse::{encode_event, SseDecoder, SseError, SseEvent};
use proptest::prelude::*;

const LIMIT: usize = 1 << 20;

/// Outcome of decoding a whole stream: the events delivered, and the error if any.
type Outcome = (Vec<SseEvent>, Option<SseError>);

/// Feed `chunks` in order, then `finish`. Stops at the first error.
fn decode_chunks<'a>(limit: usize, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut dec = SseDecoder::new(limit);
    let mut out = Vec::new();
    for chunk in chunks {
        let res = dec.feed(chunk, &mut out);
        assert!(dec.held_bytes() <= limit, "held {} > {limit}", dec.held_bytes());
        if let Err(e) = res {
            return (out, Some(e));
        }
    }
    let res = dec.finish(&mut out);
    assert_eq!(dec.held_bytes(), 0);
    (out, res.err())
}

fn decode(input: &[u8]) -> Vec<SseEvent> {
    let (events, err) = decode_chunks(LIMIT, [input]);
    assert_eq!(err, None);
    events
}

/// Decode `input` whole, split at every point into 2 chunks, at every pair of
/// points into 3 chunks (short inputs), and in 1-byte chunks; all must agree.
fn decode_every_split(limit: usize, input: &[u8]) -> Outcome {
    let whole = decode_chunks(limit, [input]);
    for i in 0..=input.len() {
        let (a, b) = input.split_at(i);
        assert_eq!(decode_chunks(limit, [a, b]), whole, "split at {i} of {input:?}");
    }
    if input.len() <= 80 {
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let chunks = [&input[..i], &input[i..j], &input[j..]];
                assert_eq!(decode_chunks(limit, chunks), whole, "split at {i},{j} of {input:?}");
            }
        }
    }
    assert_eq!(decode_chunks(limit, input.chunks(1)), whole, "1-byte chunks of {input:?}");
    // Empty chunks in between must change nothing (and not lose a pending CR).
    let with_empties = input.chunks(1).flat_map(|c| [&b""[..], c, &b""[..]]);
    assert_eq!(decode_chunks(limit, with_empties), whole, "with empty chunks");
    whole
}

/// Assert the expected events under every chunking.
fn check(input: &[u8], expected: &[SseEvent]) {
    let (events, err) = decode_every_split(LIMIT, input);
    assert_eq!(err, None);
    assert_eq!(events, expected, "input {:?}", String::from_utf8_lossy(input));
}

fn data(d: &str) -> SseEvent {
    SseEvent { data: d.to_owned(), ..SseEvent::default() }
}

fn typed(event: &str, d: &str) -> SseEvent {
    SseEvent { event: Some(event.to_owned()), data: d.to_owned(), ..SseEvent::default() }
}

const OPENAI_STREAM: &str = concat!(
    "data: {\"id\":\"chatcmpl-9x\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,",
    "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},",
    "\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-9x\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,",
    "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Héllo\"},",
    "\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-9x\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,",
    "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" wörld 👋\"},",
    "\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-9x\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,",
    "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,",
    "\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"id\":\"chatcmpl-9x\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,",
    "\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4,",
    "\"total_tokens\":13}}\n\n",
    "data: [DONE]\n\n",
);

const ANTHROPIC_STREAM: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",",
    "\"role\":\"assistant\",\"content\":[],\"model\":\"claude-3-5-sonnet-20241022\",",
    "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: ping\n",
    "data: {\"type\": \"ping\"}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi ✓\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\n",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},",
    "\"usage\":{\"output_tokens\":15}}\n\n",
    "event: message_stop\n",
    "data: {\"type\":\"message_stop\"}\n\n",
);

/// Fixtures that end with a blank line, do not start with LF and have no BOM:
/// their concatenation decodes to the concatenation of their events.
fn fixtures() -> Vec<(&'static str, Vec<u8>, Vec<SseEvent>)> {
    let mut id_retry = typed("update", "x");
    id_retry.id = Some("42".into());
    id_retry.retry = Some(3000);
    vec![
        ("lf", b"data: a\n\ndata: b\n\n".to_vec(), vec![data("a"), data("b")]),
        ("cr", b"data: a\r\rdata: b\r\r".to_vec(), vec![data("a"), data("b")]),
        ("crlf", b"data: a\r\n\r\ndata: b\r\n\r\n".to_vec(), vec![data("a"), data("b")]),
        ("mixed endings", b"data: a\r\ndata: b\rdata: c\n\r\n".to_vec(), vec![data("a\nb\nc")]),
        ("comments", b": keep-alive\n:\ndata: a\n: in the middle\ndata: b\n\n".to_vec(), vec![data("a\nb")]),
        (
            "multi-line data",
            b"data: line1\ndata: line2\ndata:\ndata: line4\n\n".to_vec(),
            vec![data("line1\nline2\n\nline4")],
        ),
        ("event id retry", b"event: update\nid: 42\nretry: 3000\ndata: x\n\n".to_vec(), vec![id_retry]),
        (
            "field without colon",
            b"data\n\ndata\ndata\n\nevent\ndata: y\n\n".to_vec(),
            vec![data(""), data("\n"), data("y")],
        ),
        (
            "one space stripped",
            b"data:  two\ndata:nospace\ndata:\tx\nevent:   e\n\n".to_vec(),
            vec![typed("  e", " two\nnospace\n\tx")],
        ),
        ("empty data", b"data:\n\ndata: \n\n".to_vec(), vec![data(""), data("")]),
        (
            "no data not dispatched",
            b"event: e\n\nid: 7\n\nretry: 5\n\n: c\n\n\n\ndata: z\n\n".to_vec(),
            vec![data("z")],
        ),
        ("done sentinel", b"data: [DONE]\n\n".to_vec(), vec![data("[DONE]")]),
        ("utf8", "data: é€😀\n\ndata: ü\n\n".as_bytes().to_vec(), vec![data("é€😀"), data("ü")]),
        ("unknown fields", b"foo: bar\ndata: a\nDATA: b\ndata : c\n\n".to_vec(), vec![data("a")]),
        (
            "openai",
            OPENAI_STREAM.as_bytes().to_vec(),
            OPENAI_STREAM
                .split("\n\n")
                .filter(|s| !s.is_empty())
                .map(|s| data(s.strip_prefix("data: ").unwrap()))
                .collect(),
        ),
        (
            "anthropic",
            ANTHROPIC_STREAM.as_bytes().to_vec(),
            ANTHROPIC_STREAM
                .split("\n\n")
                .filter(|s| !s.is_empty())
                .map(|s| {
                    let (ev, d) = s.split_once('\n').unwrap();
                    typed(ev.strip_prefix("event: ").unwrap(), d.strip_prefix("data: ").unwrap())
                })
                .collect(),
        ),
    ]
}

#[test]
fn fixtures_under_every_chunking() {
    for (name, input, expected) in fixtures() {
        let (events, err) = decode_every_split(LIMIT, &input);
        assert_eq!(err, None, "{name}");
        assert_eq!(events, expected, "{name}");
    }
}

#[test]
fn realistic_fixtures_shape() {
    let openai = decode(OPENAI_STREAM.as_bytes());
    assert_eq!(openai.len(), 6);
    assert_eq!(openai.last().unwrap().data, "[DONE]");
    for ev in &openai[..5] {
        let v: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
        assert_eq!(v["object"], "chat.completion.chunk");
    }
    let anthropic = decode(ANTHROPIC_STREAM.as_bytes());
    let types: Vec<_> = anthropic.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(
        types,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for ev in &anthropic {
        let v: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
        assert_eq!(v["type"].as_str(), ev.event.as_deref());
    }
}

#[test]
fn crlf_split_across_chunks_is_one_line_ending() {
    // CR ends the first chunk, LF starts the second: one line ending, so the
    // blank line comes only after the second CRLF.
    let mut dec = SseDecoder::new(LIMIT);
    let mut out = Vec::new();
    dec.feed(b"data: a\r", &mut out).unwrap();
    assert!(out.is_empty());
    dec.feed(b"\ndata: b\r", &mut out).unwrap();
    assert!(out.is_empty());
    dec.feed(b"\n", &mut out).unwrap();
    assert!(out.is_empty());
    dec.feed(b"\r", &mut out).unwrap();
    assert_eq!(out, [data("a\nb")]);
    dec.feed(b"\n", &mut out).unwrap();
    dec.finish(&mut out).unwrap();
    assert_eq!(out, [data("a\nb")]);

    // CR then CR across chunks is two line endings.
    check(b"data: a\r\rdata: b\r\r", &[data("a"), data("b")]);
    // A CR at the end of the stream is a line ending too.
    check(b"data: a\r", &[data("a")]);
}

#[test]
fn multibyte_char_split_at_every_position() {
    for ch in ["é", "€", "😀"] {
        let input = format!("data: {ch}\n\n");
        let bytes = input.as_bytes();
        let start = "data: ".len();
        for i in start..=start + ch.len() {
            let (a, b) = bytes.split_at(i);
            let (events, err) = decode_chunks(LIMIT, [a, b]);
            assert_eq!(err, None);
            assert_eq!(events, [data(ch)], "{ch} split at {i}");
        }
        // Every byte of the character in its own chunk.
        assert_eq!(decode_chunks(LIMIT, bytes.chunks(1)).0, [data(ch)]);
        check(bytes, &[data(ch)]);
    }
}

#[test]
fn invalid_utf8_is_replaced() {
    check(b"data: a\xFFb\xE2\x82\n\n", &[data("a\u{FFFD}b\u{FFFD}")]);
    // A truncated sequence before the colon does not swallow the colon.
    check(b"ev\xE2:x\ndata: ok\n\n", &[data("ok")]);
}

#[test]
fn bom_is_dropped_only_at_stream_start() {
    check(b"\xEF\xBB\xBFdata: a\n\n", &[data("a")]);
    check(b"\xEF\xBB\xBF\ndata: a\n\n", &[data("a")]);
    check(b"\xEF\xBB\xBFevent: e\ndata: a\n\n", &[typed("e", "a")]);
    // Later in the stream it is part of the field name: unknown field.
    check(b"data: a\n\n\xEF\xBB\xBFdata: b\n\n", &[data("a")]);
    // Only one BOM is dropped.
    check(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: b\n\ndata: c\n\n", &[data("c")]);
    // In a value it is kept.
    check("data: \u{FEFF}x\n\n".as_bytes(), &[data("\u{FEFF}x")]);
}

#[test]
fn event_fields() {
    // Empty event type is the default type.
    check(b"event:\ndata: a\n\n", &[data("a")]);
    // Last event type wins; event type is reset after dispatch.
    check(b"event: a\nevent: b\ndata: x\n\ndata: y\n\n", &[typed("b", "x"), data("y")]);
    // Event type is reset even by a blank line that dispatches nothing.
    check(b"event: a\n\ndata: y\n\n", &[data("y")]);
    // id: empty value is kept (it resets the last event id), NUL makes it ignored.
    let with_id = |id: &str, d: &str| SseEvent { id: Some(id.into()), ..data(d) };
    check(b"id:\ndata: a\n\n", &[with_id("", "a")]);
    check(b"id: 1\nid: 2\ndata: a\n\n", &[with_id("2", "a")]);
    check(b"id: 1\nid: x\0y\ndata: a\n\n", &[with_id("1", "a")]);
    check(b"id: x\0y\ndata: a\n\n", &[data("a")]);
    // id is reported only on the event where it was set.
    check(b"id: 1\ndata: a\n\ndata: b\n\n", &[with_id("1", "a"), data("b")]);
    // retry: digits only.
    let with_retry = |r: u64| SseEvent { retry: Some(r), ..data("a") };
    check(b"retry: 1000\ndata: a\n\n", &[with_retry(1000)]);
    check(b"retry: 0\ndata: a\n\n", &[with_retry(0)]);
    check(b"retry: 10\nretry: 1x\ndata: a\n\n", &[with_retry(10)]);
    for bad in ["retry: -1", "retry: 1.5", "retry:", "retry: +3", "retry:  5", "retry: 99999999999999999999999"] {
        check(format!("{bad}\ndata: a\n\n").as_bytes(), &[data("a")]);
    }
}

#[test]
fn finish_delivers_unterminated_event() {
    check(b"data: a", &[data("a")]);
    check(b"data: a\n", &[data("a")]);
    check(b"data: a\ndata: b", &[data("a\nb")]);
    check(b"event: e\ndata: a\r\n", &[typed("e", "a")]);
    check(b"data: [DONE]", &[data("[DONE]")]);
    check(b"data: a\n\ndata: b", &[data("a"), data("b")]);
    // Nothing pending: nothing delivered.
    check(b"", &[]);
    check(b"event: e\n", &[]);
    check(b": comment", &[]);
    check(b"id: 3", &[]);
}

#[test]
fn finish_resets_for_reuse() {
    let mut dec = SseDecoder::new(LIMIT);
    let mut out = Vec::new();
    dec.feed(b"\xEF\xBB\xBFevent: e\ndata: a", &mut out).unwrap();
    dec.finish(&mut out).unwrap();
    assert_eq!(dec.held_bytes(), 0);
    // New stream: BOM dropped again, no leftover event type.
    dec.feed(b"\xEF\xBB\xBFdata: b\n\n", &mut out).unwrap();
    dec.finish(&mut out).unwrap();
    assert_eq!(out, [typed("e", "a"), data("b")]);
}

#[test]
fn held_bytes_tracks_partial_line_and_pending_fields() {
    let mut dec = SseDecoder::new(LIMIT);
    let mut out = Vec::new();
    assert_eq!(dec.held_bytes(), 0);
    dec.feed(b"data: ab", &mut out).unwrap();
    assert_eq!(dec.held_bytes(), 8); // partial line
    dec.feed(b"c\nevent: xy\nid: 1\n", &mut out).unwrap();
    assert_eq!(dec.held_bytes(), "abc\n".len() + "xy".len() + "1".len());
    dec.feed(b"\n", &mut out).unwrap();
    assert_eq!(dec.held_bytes(), 0);
    assert_eq!(out.len(), 1);
}

#[test]
fn bound_is_enforced() {
    let err = SseError::EventTooLarge { limit: 16 };
    assert_eq!(err.to_string(), "SSE event exceeds 16 bytes");
    assert_eq!(SseError::EventTooLarge { limit: 1048576 }.to_string(), "SSE event exceeds 1048576 bytes");

    // One line exactly at the limit is fine, one byte more is not.
    let ok = b"data: 0123456789\n\n"; // 16-byte line
    assert_eq!(decode_every_split(16, ok), (vec![data("0123456789")], None));
    let too_big = b"data: 0123456789A\n\n";
    assert_eq!(decode_every_split(16, too_big), (vec![], Some(err.clone())));

    // Accumulated data lines count; earlier events are still delivered.
    let input = b"data: a\n\ndata: 0123\ndata: 4567\ndata: 89ab\n\ndata: z\n\n";
    assert_eq!(decode_every_split(16, input), (vec![data("a")], Some(err.clone())));

    // A long partial line fails as soon as it is held, without a newline.
    let mut dec = SseDecoder::new(16);
    let mut out = Vec::new();
    dec.feed(b"data: 01234", &mut out).unwrap();
    assert_eq!(dec.feed(b"56789ABCDEF", &mut out), Err(err.clone()));
    assert_eq!(dec.held_bytes(), 0);
    // The failure is sticky until finish, which resets the decoder.
    assert_eq!(dec.feed(b"\n\ndata: ok\n\n", &mut out), Err(err.clone()));
    assert_eq!(dec.finish(&mut out), Err(err.clone()));
    assert!(out.is_empty());
    dec.feed(b"data: ok\n\n", &mut out).unwrap();
    assert_eq!(out, [data("ok")]);

    // A huge comment line is also bounded (it would be held while partial).
    let mut comment = vec![b':'; 100];
    comment.extend_from_slice(b"\ndata: x\n\n");
    assert_eq!(decode_every_split(16, &comment), (vec![], Some(err.clone())));

    // Limit 0: only blank lines are acceptable.
    assert_eq!(decode_chunks(0, [&b"\n\r\n\r"[..]]), (vec![], None));
    assert_eq!(decode_chunks(0, [&b"\nx"[..]]), (vec![], Some(SseError::EventTooLarge { limit: 0 })));

    // A large event under a large limit.
    let big = format!("data: {}\n\n", "y".repeat(100_000));
    let (events, err) = decode_chunks(200_000, big.as_bytes().chunks(1000));
    assert_eq!(err, None);
    assert_eq!(events[0].data.len(), 100_000);
    let (events, err) = decode_chunks(50_000, big.as_bytes().chunks(1000));
    assert_eq!((events, err), (vec![], Some(SseError::EventTooLarge { limit: 50_000 })));
}

#[test]
fn encode_wire_form() {
    let mut out = Vec::new();
    encode_event(&data("[DONE]"), &mut out);
    assert_eq!(out, b"data: [DONE]\n\n");

    let ev = SseEvent { event: Some("delta".into()), data: "a\n\nb".into(), id: Some("7".into()), retry: Some(100) };
    out.clear();
    encode_event(&ev, &mut out);
    assert_eq!(out, b"event: delta\nid: 7\nretry: 100\ndata: a\ndata:\ndata: b\n\n");

    out.clear();
    encode_event(&data(""), &mut out);
    assert_eq!(out, b"data:\n\n");
    assert_eq!(decode(&out), [data("")]);

    // CR in data becomes a line break; CR/LF in event and id cannot break framing.
    out.clear();
    let nasty = SseEvent {
        event: Some("a\nb".into()),
        data: "x\r\ny\rz".into(),
        id: Some("1\r\ndata: injected".into()),
        retry: None,
    };
    encode_event(&nasty, &mut out);
    let back = decode(&out);
    assert_eq!(
        back,
        [SseEvent {
            event: Some("ab".into()),
            data: "x\ny\nz".into(),
            id: Some("1data: injected".into()),
            retry: None,
        }]
    );
}

#[test]
fn roundtrip_fixtures() {
    for (name, input, expected) in fixtures() {
        let mut wire = Vec::new();
        for ev in &expected {
            encode_event(ev, &mut wire);
        }
        assert_eq!(decode(&wire), expected, "{name}");
        // Re-decoding our own encoding of the decoded input is stable.
        let mut wire2 = Vec::new();
        for ev in &decode(&input) {
            encode_event(ev, &mut wire2);
        }
        assert_eq!(wire, wire2, "{name}");
    }
}

/// Strings without CR/LF (and optionally without NUL), any other char.
fn line_string(allow_nul: bool) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just(' '),
            Just(':'),
            Just('\u{FEFF}'),
            Just('é'),
            Just('😀'),
            any::<char>(),
            proptest::char::range('a', 'z'),
        ],
        0..12,
    )
    .prop_map(move |cs| cs.into_iter().filter(|c| !matches!(c, '\r' | '\n') && (allow_nul || *c != '\0')).collect())
}

fn arb_event() -> impl Strategy<Value = SseEvent> {
    (
        proptest::option::of(line_string(true).prop_filter("non-empty", |s| !s.is_empty())),
        proptest::collection::vec(line_string(true), 1..5),
        proptest::option::of(line_string(false)),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(event, lines, id, retry)| SseEvent { event, data: lines.join("\n"), id, retry })
}

/// Split `input` at the given cut points (taken modulo its length).
fn chunk_at(input: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut prev = 0;
    for c in cuts {
        chunks.push(input[prev..c].to_vec());
        prev = c;
    }
    chunks.push(input[prev..].to_vec());
    chunks
}

proptest! {
    #[test]
    fn random_chunking_of_fixture_concatenations(
        picks in proptest::collection::vec(0usize..16, 1..6),
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        let fx = fixtures();
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for p in picks {
            let (_, bytes, events) = &fx[p % fx.len()];
            input.extend_from_slice(bytes);
            expected.extend(events.iter().cloned());
        }
        let chunks = chunk_at(&input, &cuts);
        let (events, err) = decode_chunks(LIMIT, chunks.iter().map(Vec::as_slice));
        prop_assert_eq!(err, None);
        prop_assert_eq!(events, expected);
    }

    #[test]
    fn random_bytes_never_panic_and_ignore_chunking(
        input in proptest::collection::vec(
            prop_oneof![
                Just(b'\n'), Just(b'\r'), Just(b':'), Just(b' '),
                Just(b'd'), Just(b'a'), Just(b't'), Just(b'e'), Just(b'v'), Just(b'n'),
                Just(b'i'), Just(b'r'), Just(b'y'), Just(b'0'), Just(0u8),
                Just(0xEF), Just(0xBB), Just(0xBF), Just(0xE2), Just(0x82), Just(0xAC),
                any::<u8>(),
            ],
            0..200,
        ),
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
        limit in prop_oneof![Just(LIMIT), 0usize..40],
    ) {
        let whole = decode_chunks(limit, [input.as_slice()]);
        let chunks = chunk_at(&input, &cuts);
        prop_assert_eq!(decode_chunks(limit, chunks.iter().map(Vec::as_slice)), whole.clone());
        prop_assert_eq!(decode_chunks(limit, input.chunks(1)), whole);
    }

    #[test]
    fn encode_then_decode_roundtrips(
        events in proptest::collection::vec(arb_event(), 1..5),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut wire = Vec::new();
        for ev in &events {
            encode_event(ev, &mut wire);
        }
        let chunks = chunk_at(&wire, &cuts);
        let (back, err) = decode_chunks(LIMIT, chunks.iter().map(Vec::as_slice));
        prop_assert_eq!(err, None);
        prop_assert_eq!(back, events);
    }
}

/// Found by fuzzing (fuzz/regressions/sse/crash-invalid-utf8-grows-past-the-limit): invalid
/// UTF-8 bytes decode to U+FFFD (3 bytes each), so a `data` line within the limit as raw
/// bytes held up to 3x the limit once decoded.
#[test]
fn invalid_utf8_counts_as_decoded_against_the_limit() {
    let mut input = b"data: ".to_vec();
    input.extend([0xff; 20]);
    input.extend(b"\n\n");
    // 20 raw bytes (26 with the field name) fit in 40; their 60 decoded bytes do not.
    let (events, err) = decode_every_split(40, &input);
    assert_eq!((events, err), (vec![], Some(SseError::EventTooLarge { limit: 40 })));
    // Within the limit once decoded: delivered.
    assert_eq!(decode_every_split(64, &input).0, vec![data(&"\u{fffd}".repeat(20))]);
}
