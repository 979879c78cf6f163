//! `application/vnd.amazon.eventstream` decoder/encoder against AWS's own test vectors
//! (aws/aws-sdk-js-v3 packages/eventstream-marshaller/src/TestVectors.fixture.ts, two
//! versions of `int32_header`), the CRC-32 check value, every header type, every split point
//! and random chunkings.

use llm_gateway::stream::eventstream::{
    crc32, encode_message, EventStreamDecoder, EventStreamError, HeaderValue, Message, MAX_FRAME,
};
use proptest::prelude::*;

mod common;
use common::same_at_every_split;

const FOO_BAR: &[u8] = b"{'foo':'bar'}";

fn decode_all(bytes: &[u8]) -> Result<Vec<Message>, EventStreamError> {
    let mut d = EventStreamDecoder::new(MAX_FRAME);
    let mut out = Vec::new();
    d.feed(bytes, &mut out)?;
    d.finish()?;
    Ok(out)
}

fn decode_chunks(chunks: &[&[u8]]) -> Result<Vec<Message>, EventStreamError> {
    let mut d = EventStreamDecoder::new(MAX_FRAME);
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c, &mut out)?;
    }
    d.finish()?;
    Ok(out)
}

fn positive_vectors() -> Vec<(&'static str, Vec<u8>, Message)> {
    vec![
        ("empty_message", vec![0, 0, 0, 16, 0, 0, 0, 0, 5, 194, 72, 235, 125, 152, 200, 255], Message::default()),
        (
            "int32_header (event-id)",
            [
                &[0, 0, 0, 43, 0, 0, 0, 14, 52, 139, 236, 123, 8][..],
                b"event-id",
                &[4, 0, 0, 160, 12],
                FOO_BAR,
                &[211, 137, 2, 133],
            ]
            .concat(),
            Message { headers: vec![("event-id".into(), HeaderValue::Int(0xa00c))], payload: FOO_BAR.to_vec() },
        ),
        (
            "int32_header (event-type)",
            [
                &[0, 0, 0, 45, 0, 0, 0, 16, 65, 196, 36, 184, 10][..],
                b"event-type",
                &[4, 0, 0, 160, 12],
                FOO_BAR,
                &[54, 244, 128, 160],
            ]
            .concat(),
            Message { headers: vec![("event-type".into(), HeaderValue::Int(40972))], payload: FOO_BAR.to_vec() },
        ),
        (
            "payload_no_headers",
            [&[0, 0, 0, 29, 0, 0, 0, 0, 253, 82, 140, 90][..], FOO_BAR, &[195, 101, 57, 54]].concat(),
            Message { headers: vec![], payload: FOO_BAR.to_vec() },
        ),
        (
            "payload_one_str_header",
            [
                &[0, 0, 0, 61, 0, 0, 0, 32, 7, 253, 131, 150, 12][..],
                b"content-type",
                &[7, 0, 16],
                b"application/json",
                FOO_BAR,
                &[141, 156, 8, 177],
            ]
            .concat(),
            Message {
                headers: vec![("content-type".into(), HeaderValue::String("application/json".into()))],
                payload: FOO_BAR.to_vec(),
            },
        ),
    ]
}

#[test]
fn crc32_check_value() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
    // The empty_message vector's prelude CRC.
    assert_eq!(crc32(&[0, 0, 0, 16, 0, 0, 0, 0]), u32::from_be_bytes([5, 194, 72, 235]));
}

#[test]
fn aws_positive_vectors_decode_and_reencode() {
    for (name, bytes, expected) in positive_vectors() {
        assert_eq!(decode_all(&bytes).unwrap(), vec![expected.clone()], "{name}");
        assert_eq!(encode_message(&expected.headers, &expected.payload).unwrap(), bytes, "{name}: encode");
        let fed = same_at_every_split(&bytes, |chunks| decode_chunks(chunks).unwrap());
        assert_eq!(fed, vec![expected], "{name}");
    }
}

#[test]
fn aws_negative_vectors() {
    let one_str = positive_vectors().remove(4).1;
    let no_headers = positive_vectors().remove(3).1;
    // corrupted_headers: "content+type" -> message CRC mismatch.
    let mut corrupted_headers = one_str.clone();
    corrupted_headers[20] = b'+';
    assert!(matches!(decode_all(&corrupted_headers), Err(EventStreamError::MessageCrc { .. })));
    // corrupted_header_len: headers length 0x120 -> prelude CRC mismatch.
    let mut corrupted_header_len = one_str;
    corrupted_header_len[6] = 1;
    assert!(matches!(decode_all(&corrupted_header_len), Err(EventStreamError::PreludeCrc { .. })));
    // corrupted_length: total length 0x0100001d -> prelude CRC mismatch.
    let mut corrupted_length = no_headers.clone();
    corrupted_length[0] = 1;
    assert!(matches!(decode_all(&corrupted_length), Err(EventStreamError::PreludeCrc { .. })));
    // corrupted_payload: last payload byte '}' -> 141.
    let mut corrupted_payload = no_headers;
    corrupted_payload[24] = 141;
    assert!(matches!(decode_all(&corrupted_payload), Err(EventStreamError::MessageCrc { .. })));
}

fn all_header_types() -> Message {
    Message {
        headers: vec![
            ("true".into(), HeaderValue::Bool(true)),
            ("false".into(), HeaderValue::Bool(false)),
            ("byte".into(), HeaderValue::Byte(-7)),
            ("short".into(), HeaderValue::Short(-300)),
            ("int".into(), HeaderValue::Int(-70_000)),
            ("long".into(), HeaderValue::Long(-5_000_000_000)),
            ("bytes".into(), HeaderValue::Bytes(vec![0, 1, 2, 255])),
            (":event-type".into(), HeaderValue::String("contentBlockDelta".into())),
            ("ts".into(), HeaderValue::Timestamp(1_700_000_000_123)),
            ("uuid".into(), HeaderValue::Uuid(*b"0123456789abcdef")),
        ],
        payload: "{\"delta\":{\"text\":\"caf\u{e9}\"}}".as_bytes().to_vec(),
    }
}

#[test]
fn every_header_type_round_trips() {
    let msg = all_header_types();
    let bytes = encode_message(&msg.headers, &msg.payload).unwrap();
    let got = decode_all(&bytes).unwrap();
    assert_eq!(got, vec![msg]);
    assert_eq!(got[0].header_str(":event-type"), Some("contentBlockDelta"));
    assert_eq!(got[0].header_str("int"), None);
    assert_eq!(got[0].header("int"), Some(&HeaderValue::Int(-70_000)));
}

#[test]
fn oversized_frames_are_rejected_from_the_prelude() {
    // A valid prelude announcing 20 MiB: rejected after 12 bytes, nothing buffered.
    let total: u32 = 20 << 20;
    let mut prelude = total.to_be_bytes().to_vec();
    prelude.extend_from_slice(&0u32.to_be_bytes());
    let crc = crc32(&prelude);
    prelude.extend_from_slice(&crc.to_be_bytes());
    let mut d = EventStreamDecoder::new(MAX_FRAME);
    let mut out = Vec::new();
    assert_eq!(d.feed(&prelude[..5], &mut out), Ok(()));
    assert!(matches!(d.feed(&prelude[5..], &mut out), Err(EventStreamError::FrameTooLarge { .. })));
    assert_eq!(d.pending(), 0);
    // Every later feed and finish report the same error.
    assert!(matches!(d.feed(b"more", &mut out), Err(EventStreamError::FrameTooLarge { .. })));
    assert!(matches!(d.finish(), Err(EventStreamError::FrameTooLarge { .. })));

    // A smaller decoder limit applies too.
    let msg = encode_message(&[], &[b'x'; 100]).unwrap();
    let mut small = EventStreamDecoder::new(64);
    assert!(matches!(small.feed(&msg, &mut out), Err(EventStreamError::FrameTooLarge { limit: 64, .. })));
}

#[test]
fn bad_lengths_and_headers() {
    // Headers longer than the message.
    let mut prelude = 16u32.to_be_bytes().to_vec();
    prelude.extend_from_slice(&4u32.to_be_bytes());
    let crc = crc32(&prelude);
    prelude.extend_from_slice(&crc.to_be_bytes());
    assert!(matches!(decode_all(&prelude), Err(EventStreamError::BadLength { .. })));
    // Header section over 128 KiB.
    let mut prelude = (300_000u32).to_be_bytes().to_vec();
    prelude.extend_from_slice(&(200_000u32).to_be_bytes());
    let crc = crc32(&prelude);
    prelude.extend_from_slice(&crc.to_be_bytes());
    assert!(matches!(decode_all(&prelude), Err(EventStreamError::HeadersTooLarge { .. })));
    // Unknown header type 10, with valid CRCs.
    let mut body = Vec::new();
    let headers = [1u8, b'x', 10];
    let total = (16 + headers.len()) as u32;
    body.extend_from_slice(&total.to_be_bytes());
    body.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    let crc = crc32(&body);
    body.extend_from_slice(&crc.to_be_bytes());
    body.extend_from_slice(&headers);
    let crc = crc32(&body);
    body.extend_from_slice(&crc.to_be_bytes());
    assert!(matches!(decode_all(&body), Err(EventStreamError::BadHeader(m)) if m.contains("unknown header type 10")));
    // Encoder limits.
    assert!(matches!(
        encode_message(&[("n".repeat(256), HeaderValue::Bool(true))], b""),
        Err(EventStreamError::TooLong(_))
    ));
    assert!(matches!(
        encode_message(&[("big".into(), HeaderValue::Bytes(vec![0; 70_000]))], b""),
        Err(EventStreamError::TooLong(_))
    ));
}

#[test]
fn truncated_stream() {
    let msg = all_header_types();
    let bytes = encode_message(&msg.headers, &msg.payload).unwrap();
    for cut in 1..bytes.len() {
        let mut d = EventStreamDecoder::new(MAX_FRAME);
        let mut out = Vec::new();
        d.feed(&bytes[..cut], &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(d.finish(), Err(EventStreamError::Truncated { pending: cut }), "cut {cut}");
    }
}

#[test]
fn messages_before_an_error_in_the_same_chunk_are_delivered() {
    let good = encode_message(&[], b"one").unwrap();
    let mut bad = encode_message(&[], b"two").unwrap();
    let n = bad.len();
    bad[n - 1] ^= 1;
    let mut d = EventStreamDecoder::new(MAX_FRAME);
    let mut out = Vec::new();
    let r = d.feed(&[good.clone(), bad].concat(), &mut out);
    assert!(matches!(r, Err(EventStreamError::MessageCrc { .. })));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload, b"one");
}

fn stream_of(n: usize) -> (Vec<u8>, Vec<Message>) {
    let mut bytes = Vec::new();
    let mut msgs = Vec::new();
    for i in 0..n {
        let m = Message {
            headers: vec![
                (":event-type".into(), HeaderValue::String(format!("e{i}"))),
                ("n".into(), HeaderValue::Long(i as i64)),
            ],
            payload: format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(i * 7 % 50)).into_bytes(),
        };
        bytes.extend(encode_message(&m.headers, &m.payload).unwrap());
        msgs.push(m);
    }
    (bytes, msgs)
}

proptest! {
    #[test]
    fn random_chunking_gives_the_same_messages(cuts in proptest::collection::vec(0usize..2000, 0..30)) {
        let (bytes, msgs) = stream_of(12);
        let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut prev = 0;
        for p in points {
            chunks.push(&bytes[prev..p]);
            prev = p;
        }
        chunks.push(&bytes[prev..]);
        prop_assert_eq!(decode_chunks(&chunks).unwrap(), msgs);
    }
}
