//! The OpenAI stream passthrough's in-place reading: raw event framing
//! (`SseDecoder::next_raw`), borrowed top-level key scan (`json_scan::top_level_spans`),
//! decoded string lengths and the `choices` text count without serde, each checked against
//! what it replaces (`feed`, `top_level_members`, serde).
// Tests may index, unwrap and panic freely.

mod common;

use common::same_at_every_split;
use llm_gateway::json_scan::{self, decoded_string_len, top_level_members, top_level_spans};
use llm_gateway::llm::openai_chat::passthrough::{scanned_generated_bytes, serde_generated_bytes};
use llm_gateway::stream::sse::{encode_event, SseDecoder, SseError, SseEvent};
use proptest::prelude::*;

/// Decodes `chunks` with `next_raw`, a raw event turned into the event it stands for; also
/// checks that re-encoding that event gives the raw bytes back.
fn via_next_raw(limit: usize, chunks: &[&[u8]]) -> (Vec<SseEvent>, Option<SseError>, usize) {
    let mut dec = SseDecoder::new(limit);
    let mut out = Vec::new();
    let mut raw_count = 0;
    for chunk in chunks {
        let mut rest = *chunk;
        while !rest.is_empty() {
            match dec.next_raw(&mut rest, &mut out) {
                Ok(Some(raw)) => {
                    raw_count += 1;
                    let event = SseEvent {
                        event: raw.event.map(str::to_string),
                        data: String::from_utf8_lossy(raw.data).into_owned(),
                        id: None,
                        retry: None,
                    };
                    assert_eq!(&raw.block[raw.data_start..raw.data_start + raw.data.len()], raw.data);
                    if std::str::from_utf8(raw.data).is_ok() {
                        let mut encoded = Vec::new();
                        encode_event(&event, &mut encoded);
                        assert_eq!(encoded, raw.block, "a raw event re-encodes to itself");
                    }
                    out.push(event);
                }
                Ok(None) => {}
                Err(e) => return (out, Some(e), raw_count),
            }
            assert!(dec.held_bytes() <= limit);
        }
    }
    let err = dec.finish(&mut out).err();
    (out, err, raw_count)
}

fn via_feed(limit: usize, chunks: &[&[u8]]) -> (Vec<SseEvent>, Option<SseError>) {
    let mut dec = SseDecoder::new(limit);
    let mut out = Vec::new();
    for chunk in chunks {
        if let Err(e) = dec.feed(chunk, &mut out) {
            return (out, Some(e));
        }
    }
    let err = dec.finish(&mut out).err();
    (out, err)
}

const OPENAI: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"h\\u00e9\"}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\ndata: [DONE]\n\n";

#[test]
fn raw_events_are_the_events_feed_gives_at_every_split() {
    let mut variants: Vec<Vec<u8>> = vec![OPENAI.to_vec()];
    for odd in [
        &b"\xEF\xBB\xBF"[..],
        b": comment\n",
        b"data:x\n\n",
        b"data: a\r\n\r\n",
        b"data: a\r\r",
        b"data: a\ndata: b\n\n",
        b"id: 3\n",
        b"retry: 9\n",
        b"event:\n",
        b"event: x\n",
        b"data: \n\n",
        b"data: \xff\n\n",
        b"event: \xff\ndata: y\n\n",
        b"\n",
        b"data: unterminated",
    ] {
        let mut v = odd.to_vec();
        v.extend_from_slice(OPENAI);
        variants.push(v);
        let mut v = OPENAI.to_vec();
        v.extend_from_slice(odd);
        v.extend_from_slice(OPENAI);
        variants.push(v);
    }
    for input in &variants {
        for limit in [1 << 20, 70, 40, 8] {
            let whole = same_at_every_split(input, |chunks| via_feed(limit, chunks));
            same_at_every_split(input, |chunks| {
                let (events, err, _) = via_next_raw(limit, chunks);
                assert_eq!((events.clone(), err.clone()), whole, "next_raw vs feed, limit {limit}");
                (events, err)
            });
        }
    }
}

#[test]
fn events_in_the_encoders_form_are_read_raw() {
    let (events, err, raw) = via_next_raw(1 << 20, &[OPENAI]);
    assert_eq!(err, None);
    assert_eq!(events.len(), 4);
    assert_eq!(raw, 4, "every event of an OpenAI stream in one chunk is read in place");
    // Split inside the second event: that one is decoded, the others are read in place.
    let (events, _, raw) = via_next_raw(1 << 20, &[&OPENAI[..80], &OPENAI[80..]]);
    assert_eq!(events.len(), 4);
    assert_eq!(raw, 3);
    // Over the bound: refused exactly as `feed` refuses it.
    let (events, err, _) = via_next_raw(40, &[OPENAI]);
    assert_eq!(events, vec![]);
    assert_eq!(err, Some(SseError::EventTooLarge { limit: 40 }));
}

proptest! {
    #[test]
    fn next_raw_matches_feed_on_random_bytes(
        pieces in proptest::collection::vec(
            prop_oneof![
                Just(&b"data: "[..]), Just(&b"event: "[..]), Just(&b"\n"[..]), Just(&b"\r"[..]),
                Just(&b"\n\n"[..]), Just(&b"{\"a\":1}"[..]), Just(&b"x"[..]), Just(&b":"[..]),
                Just(&b" "[..]), Just(&b"id: 1\n"[..]), Just(&b"\xff"[..]), Just(&b"\xEF\xBB\xBF"[..]),
                Just(&b"data:"[..]), Just(&b"retry: 5\n"[..]),
            ],
            0..40,
        ),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        limit in prop_oneof![Just(1usize << 20), 1usize..64],
    ) {
        let input: Vec<u8> = pieces.concat();
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        at.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for c in at.into_iter().chain([input.len()]) {
            chunks.push(&input[start..c]);
            start = c;
        }
        let (events, err, _) = via_next_raw(limit, &chunks);
        prop_assert_eq!((events, err), via_feed(limit, &chunks));
    }

    #[test]
    fn decoded_length_is_serdes(text in any::<String>(), ascii_escapes in any::<bool>()) {
        // serde escapes only what it must; the \u forms are written by hand.
        let token = if ascii_escapes {
            let mut t = String::from("\"");
            for c in text.chars() {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    t.push_str(&format!("\\u{u:04x}"));
                }
            }
            t.push('"');
            t
        } else {
            serde_json::to_string(&text).unwrap()
        };
        json_scan::top_level_members(format!("{{\"k\":{token}}}").as_bytes()).unwrap();
        let parsed: String = serde_json::from_str(&token).unwrap();
        prop_assert_eq!(decoded_string_len(token.as_bytes()), Some(parsed.len()));
    }
}

#[test]
fn decoded_lengths_of_escapes() {
    for (token, len) in [
        (r#""""#, 0),
        (r#""abc""#, 3),
        (r#""a\"b\\c\/d\b\f\n\r\t""#, 12),
        (r#""\u0041\u00e9\u20ac\ud83d\ude00""#, 1 + 2 + 3 + 4),
        ("\"h\u{e9}llo \u{1F600}\"", 11),
    ] {
        let parsed: String = serde_json::from_str(token).unwrap();
        assert_eq!(parsed.len(), len, "{token}");
        assert_eq!(decoded_string_len(token.as_bytes()), Some(len), "{token}");
    }
    assert_eq!(decoded_string_len(b"abc"), None);
}

#[test]
fn spans_are_the_members_without_their_keys_copied() {
    for doc in [
        &br#"{}"#[..],
        br#" { "a" : 1 , "b":[1,{"c":2}],"a":null } "#,
        br#"{"\u0075sage":null,"usage":{"x":[[[]]]},"k\"ey":"v"}"#,
        br#"{"a":1,}"#,
        br#"{"a":"\ud800"}"#,
        br#"[1]"#,
        b"{\"a\":\"\xff\"}",
    ] {
        let mut spans = Vec::new();
        let depth = top_level_spans(doc, &mut spans);
        match top_level_members(doc) {
            Ok(members) => {
                assert!(depth.is_ok());
                assert_eq!(members.len(), spans.len());
                for (m, s) in members.iter().zip(&spans) {
                    assert_eq!((&m.span, &m.value), (&s.span, &s.value));
                    assert!(s.key_is(doc, &m.key), "{:?}", m.key);
                    assert!(!s.key_is(doc, "nope"));
                }
            }
            Err(e) => assert_eq!(depth, Err(e)),
        }
    }
    let mut spans = Vec::new();
    assert_eq!(top_level_spans(br#"{"a":1,"b":[[{"c":[]}]]}"#, &mut spans), Ok(3));
    top_level_spans(br#"{"a":1,"b":2}"#, &mut spans).unwrap();
    assert_eq!(json_scan::find_span(br#"{"a":1,"b":2}"#, &spans, "b").map(|m| m.value.clone()), Some(11..12));
}

/// `choices` values: the usual shapes (the scan answers) and the unusual (serde answers).
const CHOICES: &[(&str, bool)] = &[
    (r#"[]"#, true),
    (
        r#"[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]"#,
        true,
    ),
    (r#"[{"index":0,"delta":{"content":" idle"},"logprobs":null,"finish_reason":null}]"#, true),
    (
        r#"[{"delta":{"content":"a\"b\\n\u00e9\ud83d\ude00","reasoning_content":"r","refusal":"no"}},{"delta":{"content":"x"}}]"#,
        true,
    ),
    (r#"[ { "delta" : { "content" : "spaced" , "x" : [ 1 , { } ] } } ]"#, true),
    (
        r#"[{"delta":{"tool_calls":[{"index":0,"id":"t","function":{"name":"get","arguments":"{\"a\":1}"}},{"function":null},{}]}}]"#,
        true,
    ),
    (r#"[{"delta":null},{"delta":{}},{}]"#, true),
    (r#"[{"delta":{"content":"\"usage\":null"},"usage":null}]"#, true),
    (r#"[{"delta":{"content":"a","content":"b"}}]"#, false),
    (r#"[{"delta":{"content":"a"},"delta":{}}]"#, false),
    (r#"[{"delta":{"content":5}}]"#, false),
    (r#"[{"delta":["x"]}]"#, false),
    (r#"[["x"]]"#, false),
    (r#"[null]"#, false),
    (r#"null"#, false),
    (r#"{"delta":{}}"#, false),
    (r#"[{"d\u0065lta":{"content":"x"}}]"#, false),
    (r#"[{"delta":{"con\u0074ent":"x"}}]"#, false),
    (r#"[{"delta":{"tool_calls":[{"function":{"name":"a","name":"b"}}]}}]"#, false),
    (r#"[{"delta":{"tool_calls":[1]}}]"#, false),
    (r#"[{"delta":{"tool_calls":{}}}]"#, false),
];

#[test]
fn the_choices_scan_counts_what_serde_counts() {
    for (choices, usual) in CHOICES {
        let doc = format!("{{\"choices\":{choices}}}");
        let mut spans = Vec::new();
        let depth = top_level_spans(doc.as_bytes(), &mut spans).unwrap();
        let scanned = scanned_generated_bytes(choices.as_bytes(), depth);
        assert_eq!(scanned.is_some(), *usual, "{choices}");
        if let Some(n) = scanned {
            assert_eq!(n, serde_generated_bytes(choices.as_bytes()), "{choices}");
        }
    }
    // Deep nesting is left to serde (whose depth limit decides).
    let deep = format!("[{{\"delta\":{{\"content\":\"x\",\"deep\":{}1{}}}}}]", "[".repeat(100), "]".repeat(100));
    assert_eq!(scanned_generated_bytes(deep.as_bytes(), 102), None);
    assert_eq!(serde_generated_bytes(deep.as_bytes()), 1);
}

proptest! {
    /// Random `choices` from pieces of the usual and unusual shapes: whenever the scan
    /// answers, serde answers the same.
    #[test]
    fn the_choices_scan_agrees_with_serde_on_random_shapes(
        picks in proptest::collection::vec((0usize..12, 0usize..10, any::<String>()), 0..6),
    ) {
        let mut choices = String::from("[");
        for (i, (shape, field, text)) in picks.iter().enumerate() {
            if i > 0 {
                choices.push(',');
            }
            let s = serde_json::to_string(text).unwrap();
            let field = ["content", "reasoning_content", "refusal", "role", "name", "arguments", "content", "x", "delta", "function"][*field];
            choices.push_str(&match shape {
                0 => format!(r#"{{"delta":{{"{field}":{s}}}}}"#),
                1 => format!(r#"{{"delta":{{"{field}":{s},"{field}":null}}}}"#),
                2 => format!(r#"{{"delta":{{"tool_calls":[{{"function":{{"{field}":{s}}}}}]}}}}"#),
                3 => format!(r#"{{"index":0,"delta":{{"content":{s},"tool_calls":null}},"finish_reason":null}}"#),
                4 => format!(r#"{{"delta":{{"{field}":[{s}]}}}}"#),
                5 => format!(r#"{{"{field}":{{"content":{s}}}}}"#),
                6 => format!(r#"{{"delta":{{"tool_calls":[{{"{field}":{{"name":{s},"arguments":{s}}}}}]}}}}"#),
                7 => "null".to_string(),
                8 => format!(r#"{{"delta":{{"content":{s}}},"delta":null}}"#),
                9 => format!(r#"{{"delta":{{"{field}":{{"{field}":{s}}}}}}}"#),
                10 => format!(r#"{{"delta":{{"{field}":1}}}}"#),
                _ => format!(r#"{{"delta":{{"refusal":{s},"content":{s}}}}}"#),
            });
        }
        choices.push(']');
        let doc = format!("{{\"choices\":{choices}}}");
        let mut spans = Vec::new();
        let depth = top_level_spans(doc.as_bytes(), &mut spans).unwrap();
        if let Some(n) = scanned_generated_bytes(choices.as_bytes(), depth) {
            prop_assert_eq!(n, serde_generated_bytes(choices.as_bytes()), "{}", choices);
        }
    }
}
