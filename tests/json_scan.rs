use llm_gateway::json_scan::{
    apply_edits, find, inspect, json_string, remove_member, set_member, top_level_members, Edit, InspectError, Member,
    ScanError,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn members(doc: &str) -> Vec<Member> {
    top_level_members(doc.as_bytes()).unwrap_or_else(|e| panic!("{doc:?}: {e}"))
}

/// (key, value bytes) pairs.
fn pairs(doc: &str) -> Vec<(String, String)> {
    members(doc).into_iter().map(|m| (m.key, doc[m.value].to_string())).collect()
}

fn p(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn err(doc: &[u8]) -> ScanError {
    match top_level_members(doc) {
        Ok(m) => panic!("{:?} accepted: {m:?}", String::from_utf8_lossy(doc)),
        Err(e) => e,
    }
}

fn assert_err(doc: &[u8], offset: usize, message: &str) {
    let e = err(doc);
    assert_eq!((e.offset, e.message), (offset, message), "{:?}", String::from_utf8_lossy(doc));
}

fn parse(doc: &[u8]) -> Value {
    serde_json::from_slice(doc).unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(doc)))
}

// ---------------------------------------------------------------- scanning

#[test]
fn normal_body() {
    let doc =
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"temperature":0.5,"n":null}"#;
    let ms = members(doc);
    assert_eq!(
        pairs(doc),
        p(&[
            ("model", r#""gpt-4o""#),
            ("messages", r#"[{"role":"user","content":"hi"}]"#),
            ("stream", "true"),
            ("temperature", "0.5"),
            ("n", "null"),
        ])
    );
    assert_eq!(ms[0].span, 1..17);
    assert_eq!(&doc[ms[0].span.clone()], r#""model":"gpt-4o""#);
    assert_eq!(ms[0].value, 9..17);
}

#[test]
fn empty_objects() {
    assert!(members("{}").is_empty());
    assert!(members(" \t\r\n{ \n }\n ").is_empty());
}

#[test]
fn whitespace_everywhere() {
    let doc = " \n\t{ \r\n \"a\" \t : \n 1 , \"b\"\n:\n[ 1 , { \"c\" : [ ] } , { } ]\n,\"d\":\"x\"  }  \n";
    let ms = members(doc);
    assert_eq!(pairs(doc), p(&[("a", "1"), ("b", "[ 1 , { \"c\" : [ ] } , { } ]"), ("d", "\"x\"")]));
    assert_eq!(&doc[ms[0].span.clone()], "\"a\" \t : \n 1");
}

#[test]
fn escapes_in_keys() {
    let doc = r#"{"mo\u0064el":1,"a\"b":2,"\\\/\b\f\n\r\t":3,"\ud83d\ude00x":4,"é\u00e9":5}"#;
    let keys: Vec<String> = members(doc).into_iter().map(|m| m.key).collect();
    assert_eq!(keys, ["model", "a\"b", "\\/\u{8}\u{c}\n\r\t", "😀x", "éé"]);
    assert_eq!(find(&members(doc), "model").map(|m| &doc[m.value.clone()]), Some("1"));
}

#[test]
fn nested_values_and_tricky_strings() {
    let doc = r#"{"a":{"}":"]","x":[[[{"y":"\"}"}]]]},"b":"{[\"]}\\","c":[],"d":{},"e":-0.5e+10,"f":[true,false,null,"",0,1E3,-12.25e-3]}"#;
    assert_eq!(
        pairs(doc),
        p(&[
            ("a", r#"{"}":"]","x":[[[{"y":"\"}"}]]]}"#),
            ("b", r#""{[\"]}\\""#),
            ("c", "[]"),
            ("d", "{}"),
            ("e", "-0.5e+10"),
            ("f", r#"[true,false,null,"",0,1E3,-12.25e-3]"#),
        ])
    );
}

#[test]
fn duplicate_keys_all_returned_find_first() {
    let doc = r#"{"a":1,"b":2,"a":3}"#;
    assert_eq!(pairs(doc), p(&[("a", "1"), ("b", "2"), ("a", "3")]));
    let ms = members(doc);
    assert_eq!(find(&ms, "a").unwrap().value, 5..6);
    assert!(find(&ms, "z").is_none());
}

#[test]
fn unicode_and_del_in_strings() {
    let doc = "{\"k\":\"日本語 \u{7f} 😀\",\"日\":\"\"}";
    assert_eq!(pairs(doc), p(&[("k", "\"日本語 \u{7f} 😀\""), ("日", "\"\"")]));
}

#[test]
fn string_special_bytes_at_every_position() {
    // Exercises the 8-bytes-at-a-time string scan around chunk boundaries.
    for len in 0..40 {
        for at in 0..=len {
            let body = |inner: &[u8]| {
                let mut s = vec![b'a'; len];
                s.splice(at..at, inner.iter().copied());
                let mut doc = b"{\"k\":\"".to_vec();
                doc.extend_from_slice(&s);
                doc.extend_from_slice(b"\"}");
                doc
            };
            let ok = body(b"\\\"\\u00e9\xc3\xa9\x7f");
            let ms = top_level_members(&ok).unwrap();
            assert_eq!(parse(&ok[ms[0].value.clone()]), parse(&ok)["k"]);
            let start = 6 + at;
            assert_err(&body(b"\n"), start, "control character in string");
            assert_err(&body(b"\xff"), start, "invalid UTF-8 in string");
            assert_err(&body(b"\xc3"), start, "invalid UTF-8 in string");
            assert_err(&body(b"\\x"), start, "invalid escape");
            let mut truncated = body(b"");
            truncated.truncate(truncated.len() - 2);
            assert_err(&truncated, truncated.len(), "unexpected end of input");
        }
    }
}

#[test]
fn display() {
    let e = ScanError { offset: 37, message: "expected ',' or '}'" };
    assert_eq!(e.to_string(), "invalid JSON at byte 37: expected ',' or '}'");
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert!(boxed.to_string().contains("byte 37"));
}

// ---------------------------------------------------------------- errors

#[test]
fn error_not_an_object() {
    for doc in [&b"[1]"[..], b"", b"   ", b"\"s\"", b"1", b"null", b"x{}"] {
        assert_eq!(err(doc).message, "expected a JSON object");
    }
    assert_err(b"  [ ]", 2, "expected a JSON object");
}

#[test]
fn error_trailing_comma() {
    assert_err(br#"{"a":1,}"#, 6, "trailing comma");
    assert_err(br#"{"a":1 , }"#, 7, "trailing comma");
    assert_err(br#"{"a":[1,]}"#, 7, "trailing comma");
    assert_err(br#"{"a":{"b":1,}}"#, 11, "trailing comma");
    assert_err(br#"{,}"#, 1, "expected a string key");
    assert_err(br#"{"a":[,]}"#, 6, "expected a value");
}

#[test]
fn error_missing_colon_and_separators() {
    assert_err(br#"{"a" 1}"#, 5, "expected ':'");
    assert_err(br#"{"a":{"b" 1}}"#, 10, "expected ':'");
    assert_err(br#"{"a":1 "b":2}"#, 7, "expected ',' or '}'");
    assert_err(br#"{"a":[1 2]}"#, 8, "expected ',' or ']'");
    assert_err(br#"{"a":{"b":1]}"#, 11, "expected ',' or '}'");
    assert_err(br#"{"a":[1}}"#, 7, "expected ',' or ']'");
    assert_err(br#"{a:1}"#, 1, "expected a string key");
    assert_err(br#"{'a':1}"#, 1, "expected a string key");
    assert_err(br#"{"a":}"#, 5, "expected a value");
    assert_err(br#"{"a"::1}"#, 5, "expected a value");
}

#[test]
fn error_comments() {
    assert_err(b"{/*c*/}", 1, "expected a string key");
    assert_err(b"{\"a\":1 // c\n}", 7, "expected ',' or '}'");
}

#[test]
fn error_bad_escapes() {
    assert_err(br#"{"a\x":1}"#, 3, "invalid escape");
    assert_err(br#"{"a":"\'"}"#, 6, "invalid escape");
    assert_err(br#"{"a":"\u12G4"}"#, 10, "invalid \\u escape");
    assert_err(br#"{"a":"\u12"}"#, 10, "invalid \\u escape");
    assert_err(br#"{"a":"\ud800"}"#, 6, "lone surrogate in \\u escape");
    assert_err(br#"{"a":"\udc00"}"#, 6, "lone surrogate in \\u escape");
    assert_err(br#"{"a":"\ud800\u0041"}"#, 6, "lone surrogate in \\u escape");
    assert_err(br#"{"a":"\ud800\n"}"#, 6, "lone surrogate in \\u escape");
    assert_err(br#"{"\ud800":1}"#, 2, "lone surrogate in \\u escape");
}

#[test]
fn error_control_chars() {
    assert_err(b"{\"a\":\"x\ny\"}", 7, "control character in string");
    assert_err(b"{\"a\tb\":1}", 3, "control character in string");
    assert_err(b"{\"a\":\"\x00\"}", 6, "control character in string");
    assert_err(b"{\"a\":\"\x1f\"}", 6, "control character in string");
    // Form feed and vertical tab are not JSON whitespace.
    assert_err(b"{\x0c}", 1, "expected a string key");
}

#[test]
fn error_bad_numbers() {
    assert_err(br#"{"a":01}"#, 6, "leading zeros are not allowed");
    assert_err(br#"{"a":-00}"#, 7, "leading zeros are not allowed");
    assert_err(br#"{"a":1.}"#, 7, "expected a digit after '.'");
    assert_err(br#"{"a":.5}"#, 5, "expected a value");
    assert_err(br#"{"a":-}"#, 6, "expected a digit");
    assert_err(br#"{"a":-a}"#, 6, "expected a digit");
    assert_err(br#"{"a":+1}"#, 5, "expected a value");
    assert_err(br#"{"a":1e}"#, 7, "expected a digit in the exponent");
    assert_err(br#"{"a":1e+}"#, 8, "expected a digit in the exponent");
    assert_err(br#"{"a":1.5.2}"#, 8, "expected ',' or '}'");
    assert_err(br#"{"a":0x10}"#, 6, "expected ',' or '}'");
    assert_err(br#"{"a":NaN}"#, 5, "expected a value");
    assert_err(br#"{"a":[Infinity]}"#, 6, "expected a value");
}

#[test]
fn error_bad_literals() {
    assert_err(br#"{"a":tru}"#, 8, "invalid literal");
    assert_err(br#"{"a":nul"#, 8, "unexpected end of input");
    assert_err(br#"{"a":True}"#, 5, "expected a value");
    assert_err(br#"{"a":falsey}"#, 10, "expected ',' or '}'");
}

#[test]
fn error_truncated() {
    let full = br#"{"a":[1,{"b":"c\u00e9"}],"d":true}"#;
    for len in 0..full.len() {
        let e = err(&full[..len]);
        if len == 0 {
            assert_eq!(e.message, "expected a JSON object");
        } else {
            assert_eq!(e, ScanError { offset: len, message: "unexpected end of input" }, "prefix {len}");
        }
    }
    assert_err(br#"{"a":"\"#, 7, "unexpected end of input");
}

#[test]
fn error_depth() {
    let nested = |depth: usize| {
        // `depth` containers in total, the top-level object included.
        let inner = depth - 1;
        format!("{{\"a\":{}{}}}", "[".repeat(inner), "]".repeat(inner))
    };
    assert_eq!(members(&nested(128)).len(), 1);
    // The 129th container opens at byte 5 + 127.
    assert_err(nested(129).as_bytes(), 132, "nesting too deep");
    let objects = |depth: usize| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    assert_eq!(members(&objects(128)).len(), 1);
    assert_err(objects(129).as_bytes(), 128 * 5, "nesting too deep");
    // Huge depth is rejected quickly, without recursion.
    let deep = format!("{{\"a\":{}", "[".repeat(1_000_000));
    assert_err(deep.as_bytes(), 132, "nesting too deep");
}

#[test]
fn error_trailing_garbage() {
    assert_err(b"{} x", 3, "trailing characters after the object");
    assert_err(b"{}{}", 2, "trailing characters after the object");
    assert_err(b"{\"a\":1}}", 7, "trailing characters after the object");
    assert_err(b"{}\x00", 2, "trailing characters after the object");
    assert!(top_level_members(b"{} \r\n\t").is_ok());
}

#[test]
fn error_invalid_utf8() {
    assert_err(b"{\"a\":\"ab\xff\"}", 8, "invalid UTF-8 in string");
    assert_err(b"{\"\xc3\":1}", 2, "invalid UTF-8 in string");
    // Overlong encoding and encoded surrogate.
    assert_err(b"{\"a\":\"\xc0\xaf\"}", 6, "invalid UTF-8 in string");
    assert_err(b"{\"a\":\"x\xed\xa0\x80\"}", 7, "invalid UTF-8 in string");
    // Bytes outside strings are never valid JSON anyway.
    assert_err(b"{\xc3\xa9:1}", 1, "expected a string key");
    assert_err(b"\xef\xbb\xbf{}", 0, "expected a JSON object");
}

// ---------------------------------------------------------------- edits

fn edit_set(doc: &str, key: &str, raw: &str) -> String {
    let ms = members(doc);
    let e = set_member(doc.as_bytes(), &ms, key, raw.as_bytes());
    String::from_utf8(apply_edits(doc.as_bytes(), &[e])).unwrap()
}

fn edit_remove(doc: &str, key: &str) -> String {
    let ms = members(doc);
    let m = find(&ms, key).unwrap();
    let e = remove_member(doc.as_bytes(), &ms, m);
    let out = String::from_utf8(apply_edits(doc.as_bytes(), &[e])).unwrap();
    top_level_members(out.as_bytes()).unwrap();
    out
}

#[test]
fn set_member_replace() {
    let doc = r#"{"model": "a", "x": 1}"#;
    assert_eq!(edit_set(doc, "model", r#""gpt-4o""#), r#"{"model": "gpt-4o", "x": 1}"#);
    assert_eq!(edit_set(doc, "x", r#"{"y":[]}"#), r#"{"model": "a", "x": {"y":[]}}"#);
    let ms = members(doc);
    let e = set_member(doc.as_bytes(), &ms, "model", b"1");
    assert_eq!(e, Edit { range: 10..13, replacement: b"1".to_vec() });
}

#[test]
fn set_member_replaces_first_duplicate() {
    assert_eq!(edit_set(r#"{"a":1,"a":2}"#, "a", "3"), r#"{"a":3,"a":2}"#);
}

#[test]
fn set_member_insert() {
    assert_eq!(edit_set("{}", "k", "1"), r#"{"k":1}"#);
    assert_eq!(edit_set("  { }\n", "k", "1"), "  {\"k\":1 }\n");
    assert_eq!(edit_set(r#"{"a":1}"#, "k", "true"), r#"{"k":true,"a":1}"#);
    assert_eq!(
        edit_set("{\n  \"a\": 1\n}", "stream_options", r#"{"include_usage":true}"#),
        "{\"stream_options\":{\"include_usage\":true},\n  \"a\": 1\n}"
    );
    // Keys are escaped.
    let out = edit_set(r#"{"a":1}"#, "q\"\\\n\u{1}é", "2");
    assert_eq!(out, "{\"q\\\"\\\\\\n\\u0001é\":2,\"a\":1}");
    assert_eq!(parse(out.as_bytes()), json!({"q\"\\\n\u{1}é": 2, "a": 1}));
    // Matching is on the unescaped key.
    assert_eq!(edit_set(r#"{"mo\u0064el":"x"}"#, "model", "1"), r#"{"mo\u0064el":1}"#);
}

#[test]
fn remove_member_positions() {
    let doc = r#"{"a":1, "b":[2], "c":{"d":3}}"#;
    assert_eq!(edit_remove(doc, "a"), r#"{"b":[2], "c":{"d":3}}"#);
    assert_eq!(edit_remove(doc, "b"), r#"{"a":1, "c":{"d":3}}"#);
    assert_eq!(edit_remove(doc, "c"), r#"{"a":1, "b":[2]}"#);
    assert_eq!(edit_remove(r#"{ "only" : 1 }"#, "only"), "{  }");
    assert_eq!(edit_remove(r#"{"a":1 , "b":2}"#, "b"), r#"{"a":1}"#);
    let pretty = "{\n  \"a\": 1,\n  \"usage\": null\n}";
    assert_eq!(edit_remove(pretty, "usage"), "{\n  \"a\": 1\n}");
    assert_eq!(edit_remove(pretty, "a"), "{\n  \"usage\": null\n}");
}

#[test]
fn remove_member_not_from_members_slice() {
    // A member whose span is not in `members` falls back to scanning `doc`.
    let doc = r#"{"a":1 , "b":2, "c":3}"#;
    let ms = members(doc);
    for (i, expected) in [r#"{"b":2, "c":3}"#, r#"{"a":1 , "c":3}"#, r#"{"a":1 , "b":2}"#].iter().enumerate() {
        let e = remove_member(doc.as_bytes(), &[], &ms[i]);
        assert_eq!(String::from_utf8(apply_edits(doc.as_bytes(), &[e])).unwrap(), *expected);
    }
    let only = r#"{"a":1}"#;
    let e = remove_member(only.as_bytes(), &[], &members(only)[0]);
    assert_eq!(apply_edits(only.as_bytes(), &[e]), b"{}");
}

#[test]
fn apply_multiple_edits() {
    let doc = r#"{"model":"a","stream":true,"usage":null,"x":1}"#;
    let ms = members(doc);
    let d = doc.as_bytes();
    let edits = vec![
        remove_member(d, &ms, find(&ms, "usage").unwrap()),
        set_member(d, &ms, "stream_options", br#"{"include_usage":true}"#),
        set_member(d, &ms, "model", br#""b""#),
    ];
    let out = apply_edits(d, &edits);
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        r#"{"stream_options":{"include_usage":true},"model":"b","stream":true,"x":1}"#
    );
    // Order of the given edits does not matter.
    let mut reversed = edits.clone();
    reversed.reverse();
    assert_eq!(apply_edits(d, &reversed), out);
}

#[test]
fn apply_edits_edge_cases() {
    let doc = b"abcdef";
    assert_eq!(apply_edits(doc, &[]), doc);
    let e = |r: std::ops::Range<usize>, s: &str| Edit { range: r, replacement: s.as_bytes().to_vec() };
    assert_eq!(apply_edits(doc, &[e(6..6, "!"), e(0..0, "<")]), b"<abcdef!");
    // An insertion sorts before a replacement starting at the same offset.
    assert_eq!(apply_edits(doc, &[e(2..4, "X"), e(2..2, "+")]), b"ab+Xef");
    assert_eq!(apply_edits(doc, &[e(0..6, "")]), b"");
    // Out-of-range and overlapping edits do not panic.
    assert_eq!(apply_edits(doc, &[e(4..100, "Z")]), b"abcdZ");
    assert_eq!(apply_edits(doc, &[e(50..60, "Z")]), b"abcdefZ");
    assert_eq!(apply_edits(doc, &[e(1..4, "X"), e(2..5, "Y")]), b"aXYf");
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = e(4..2, "R");
    assert_eq!(apply_edits(doc, &[backwards]), b"abcdRef");
}

#[test]
fn json_string_escaping() {
    assert_eq!(json_string(""), b"\"\"");
    assert_eq!(json_string("model"), b"\"model\"");
    assert_eq!(
        json_string("a\"b\\c\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}é😀/"),
        "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0000\\u001f\u{7f}é😀/\"".as_bytes()
    );
}

// ---------------------------------------------------------------- properties

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[a-z\"\\\\{}\\[\\],:\n\t\u{0}-\u{1f} ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(prop_oneof![any::<String>(), "[a-z_]{1,6}", "[\"\\\\\n\u{1}é]{0,3}"], arb_value(), 0..8)
        .prop_map(|m| m.into_iter().collect())
}

fn serializations(obj: &Map<String, Value>) -> [Vec<u8>; 2] {
    [serde_json::to_vec(obj).unwrap(), serde_json::to_vec_pretty(obj).unwrap()]
}

/// serde_json accepts `doc` as a JSON object. Numbers that overflow `f64`
/// (`1e400`) are valid JSON grammar but rejected by serde_json; ignored here.
fn serde_object(doc: &[u8]) -> Option<bool> {
    match serde_json::from_slice::<Value>(doc) {
        Ok(v) => Some(v.is_object()),
        Err(e) if e.to_string().contains("number out of range") => None,
        Err(_) => Some(false),
    }
}

fn json_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let alphabet: Vec<u8> = b"{}[]\":,  \n\t0123456789-+.eEtrufalsn\\u/bDdcC8\x01\x7f\xc3\xa9\xff\xed\xa0".to_vec();
    prop::collection::vec(prop::sample::select(alphabet), 0..48)
}

/// A valid object document with one random byte-level mutation.
fn mutated_docs() -> impl Strategy<Value = Vec<u8>> {
    (arb_object(), any::<bool>(), any::<prop::sample::Index>(), 0u8..3, any::<u8>()).prop_map(
        |(obj, pretty, idx, op, byte)| {
            let mut doc = serializations(&obj)[usize::from(pretty)].clone();
            let i = idx.index(doc.len() + 1);
            let picks = b"{}[]\":, \\u0-.e\x00\xff";
            let pick = picks[usize::from(byte) % picks.len()];
            match op {
                0 if i < doc.len() => {
                    doc.remove(i);
                }
                1 if i < doc.len() => doc[i] = pick,
                _ => doc.insert(i, pick),
            }
            doc
        },
    )
}

fn check_agrees_with_serde(doc: &[u8]) -> Result<(), TestCaseError> {
    let ours = top_level_members(doc);
    match serde_object(doc) {
        Some(true) => prop_assert!(ours.is_ok(), "{:?}: {:?}", String::from_utf8_lossy(doc), ours),
        Some(false) => prop_assert!(ours.is_err(), "{:?} accepted", String::from_utf8_lossy(doc)),
        None => {}
    }
    if let Ok(ms) = ours {
        for m in &ms {
            prop_assert!(m.span.start < m.value.start && m.value.end == m.span.end);
            prop_assert!(m.value.end <= doc.len());
        }
    }
    Ok(())
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Do not write regression files into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn prop_members_match_serde(obj in arb_object()) {
        for doc in serializations(&obj) {
            let ms = top_level_members(&doc).unwrap();
            let keys: Vec<&String> = ms.iter().map(|m| &m.key).collect();
            let expected: Vec<&String> = obj.keys().collect();
            prop_assert_eq!(keys, expected);
            // Compare against serde's own parse of the text (float parsing
            // round trips are not guaranteed without `float_roundtrip`).
            let whole = parse(&doc);
            for m in &ms {
                prop_assert_eq!(&parse(&doc[m.value.clone()]), &whole[&m.key]);
                let span = &doc[m.span.clone()];
                let member = [b"{".as_slice(), span, b"}"].concat();
                prop_assert_eq!(&parse(&member)[&m.key], &whole[&m.key]);
            }
        }
    }

    #[test]
    fn prop_set_member(obj in arb_object(), key in prop_oneof![any::<String>(), "[a-z]{1,2}"], value in arb_value()) {
        for doc in serializations(&obj) {
            let ms = top_level_members(&doc).unwrap();
            let raw = serde_json::to_vec(&value).unwrap();
            let out = apply_edits(&doc, &[set_member(&doc, &ms, &key, &raw)]);
            prop_assert!(top_level_members(&out).is_ok());
            let mut expected = parse(&doc);
            expected[&key] = parse(&raw);
            prop_assert_eq!(parse(&out), expected);
        }
    }

    #[test]
    fn prop_remove_member(obj in arb_object(), idx in any::<prop::sample::Index>()) {
        prop_assume!(!obj.is_empty());
        for doc in serializations(&obj) {
            let ms = top_level_members(&doc).unwrap();
            let m = &ms[idx.index(ms.len())];
            let out = apply_edits(&doc, &[remove_member(&doc, &ms, m)]);
            prop_assert!(top_level_members(&out).is_ok());
            let mut expected = parse(&doc);
            expected.as_object_mut().unwrap().remove(&m.key);
            prop_assert_eq!(parse(&out), expected);
            // The doc-scanning fallback produces the same edit.
            prop_assert_eq!(remove_member(&doc, &[], m), remove_member(&doc, &ms, m));
        }
    }

    #[test]
    fn prop_set_and_remove_together(obj in arb_object(), value in arb_value(), idx in any::<prop::sample::Index>()) {
        prop_assume!(obj.len() >= 2);
        let doc = serde_json::to_vec_pretty(&obj).unwrap();
        let ms = top_level_members(&doc).unwrap();
        let i = idx.index(ms.len());
        let removed = &ms[i];
        let kept = &ms[(i + 1) % ms.len()];
        let raw = serde_json::to_vec(&value).unwrap();
        let edits = [
            remove_member(&doc, &ms, removed),
            set_member(&doc, &ms, &kept.key, &raw),
            set_member(&doc, &ms, "\u{0}new", b"[]"),
        ];
        let mut expected = parse(&doc);
        let map = expected.as_object_mut().unwrap();
        map.remove(&removed.key);
        map.insert(kept.key.clone(), parse(&raw));
        map.insert("\u{0}new".into(), json!([]));
        prop_assert_eq!(parse(&apply_edits(&doc, &edits)), expected);
    }

}

proptest! {
    #![proptest_config(config(4096))]

    #[test]
    fn prop_arbitrary_bytes_never_panic(doc in prop::collection::vec(any::<u8>(), 0..256)) {
        check_agrees_with_serde(&doc)?;
    }

    #[test]
    fn prop_json_like_bytes_agree_with_serde(body in json_like_bytes()) {
        check_agrees_with_serde(&body)?;
        let wrapped = [b"{\"k\":".as_slice(), &body, b"}"].concat();
        check_agrees_with_serde(&wrapped)?;
        let wrapped = [b"{".as_slice(), &body].concat();
        check_agrees_with_serde(&wrapped)?;
    }


    #[test]
    fn prop_json_string_roundtrip(s in any::<String>()) {
        let lit = json_string(&s);
        prop_assert_eq!(serde_json::from_slice::<String>(&lit).unwrap(), s.clone());
        let doc = [b"{".as_slice(), &lit, b":0}"].concat();
        prop_assert_eq!(&top_level_members(&doc).unwrap()[0].key, &s);
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn prop_mutated_docs_agree_with_serde(doc in mutated_docs()) {
        check_agrees_with_serde(&doc)?;
    }
}

// ---------------------------------------------------------------- inspect (strict keys, media)

fn duplicate(doc: &str) -> (String, String) {
    match inspect(doc.as_bytes()) {
        Err(InspectError::DuplicateKey { path, key }) => (path, key),
        other => panic!("{doc}: {other:?}"),
    }
}

#[test]
fn inspect_refuses_duplicate_keys_at_any_depth_and_names_them() {
    assert_eq!(duplicate(r#"{"model":"a","max_tokens":5,"max_tokens":100000}"#), (String::new(), "max_tokens".into()));
    assert_eq!(
        duplicate(r#"{"messages":[{"role":"user","content":"x"},{"role":"user","role":"system"}]}"#),
        ("messages[1]".into(), "role".into())
    );
    assert_eq!(
        duplicate(r#"{"stream_options":{"include_usage":false,"include_usage":true}}"#),
        ("stream_options".into(), "include_usage".into())
    );
    assert_eq!(
        duplicate(r#"{"llm_gateway_template":{"name":"t","variables":{"a":1,"b":2,"a":3}}}"#),
        ("llm_gateway_template.variables".into(), "a".into())
    );
    assert_eq!(
        duplicate(r#"{"messages":[{"content":[{"type":"text","text":"a"},{"type":"text","text":"b","text":"c"}]}]}"#),
        ("messages[0].content[1]".into(), "text".into())
    );
    // Escapes are decoded before comparing: both spell `model`.
    assert_eq!(duplicate(r#"{"model":"a","mod\u0065l":"b"}"#), (String::new(), "model".into()));
    // Past the linear threshold the hashed check finds it too.
    let mut many: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
    many.push("\"k7\":0".into());
    assert_eq!(duplicate(&format!("{{{}}}", many.join(","))), (String::new(), "k7".into()));
    let message = InspectError::DuplicateKey { path: "messages[1]".into(), key: "role".into() }.to_string();
    assert_eq!(message, "duplicate key \"role\" in `messages[1]`");
}

#[test]
fn inspect_accepts_the_same_key_in_sibling_objects() {
    let doc = r#"{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}],"tools":[{"type":"function"},{"type":"function"}]}"#;
    let facts = inspect(doc.as_bytes()).unwrap();
    assert_eq!(facts.members, members(doc));
    assert_eq!(facts.media, 0);
}

#[test]
fn inspect_counts_each_media_part_once() {
    let openai = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"see"},{"type":"image_url","image_url":{"url":"https://x/a.png","detail":"high"}},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}"#;
    assert_eq!(inspect(openai.as_bytes()).unwrap().media, 2);
    let anthropic = r#"{"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://x"}},{"type":"document","source":{"type":"base64","data":"AA"}}]}]}"#;
    assert_eq!(inspect(anthropic.as_bytes()).unwrap().media, 2);
    let responses = r#"{"input":[{"role":"user","content":[{"type":"input_image","image_url":"https://x"},{"type":"input_text","text":"hi"}]}]}"#;
    assert_eq!(inspect(responses.as_bytes()).unwrap().media, 1);
    let gemini = r#"{"contents":[{"parts":[{"inlineData":{"mimeType":"image/png","data":"AA"}},{"fileData":{"fileUri":"gs://x"}}]}]}"#;
    assert_eq!(inspect(gemini.as_bytes()).unwrap().media, 2);
    // An escaped spelling is still an image (the provider decodes it).
    let escaped = r#"{"messages":[{"content":[{"type":"image\u005furl","image_url":{"url":"u"}}]}]}"#;
    assert_eq!(inspect(escaped.as_bytes()).unwrap().media, 1);
    // Text that mentions an image is not one.
    let text = r#"{"messages":[{"content":"\"type\":\"image_url\"","type":"text"}]}"#;
    assert_eq!(inspect(text.as_bytes()).unwrap().media, 0);
}

#[test]
fn inspect_rejects_what_top_level_members_rejects() {
    for doc in [&b"[1]"[..], b"{\"a\":1,}", b"{\"a\":[1,]}", b"{\"a\":1} x", b"{\"a\":\"\\ud800\"}", b"{"] {
        let expected = top_level_members(doc).unwrap_err();
        assert_eq!(inspect(doc), Err(InspectError::Syntax(expected)), "{:?}", String::from_utf8_lossy(doc));
    }
    // 128 containers with the top-level object are allowed, 129 are not.
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(128), "]".repeat(128));
    let expected = top_level_members(deep.as_bytes()).unwrap_err();
    assert_eq!(inspect(deep.as_bytes()), Err(InspectError::Syntax(expected)));
    let ok = format!("{{\"a\":{}{}}}", "[".repeat(127), "]".repeat(127));
    assert_eq!(inspect(ok.as_bytes()).unwrap().members, members(&ok));
}

/// Whether serde_json's `Value` (which keeps the last of duplicate keys) would see a
/// duplicate anywhere: re-serializing loses members exactly then.
fn has_duplicates(doc: &[u8]) -> bool {
    fn count(v: &Value) -> usize {
        match v {
            Value::Object(m) => m.len() + m.values().map(count).sum::<usize>(),
            Value::Array(a) => a.iter().map(count).sum(),
            _ => 0,
        }
    }
    let keys_in_text = |doc: &[u8]| {
        // Count keys with a strict scan of our own: every ':' outside strings is one key.
        let mut n = 0;
        let mut in_string = false;
        let mut escaped = false;
        for &b in doc {
            match (in_string, escaped, b) {
                (true, true, _) => escaped = false,
                (true, false, b'\\') => escaped = true,
                (true, false, b'"') => in_string = false,
                (false, _, b'"') => in_string = true,
                (false, _, b':') => n += 1,
                _ => {}
            }
        }
        n
    };
    let v: Value = serde_json::from_slice(doc).unwrap();
    count(&v) != keys_in_text(doc)
}

proptest! {
    #![proptest_config(config(1024))]

    /// Agrees with `top_level_members` on validity and members, and with serde_json on
    /// whether a document holds a duplicate key somewhere.
    #[test]
    fn prop_inspect_agrees_with_scanner_and_serde(doc in mutated_docs()) {
        match (top_level_members(&doc), inspect(&doc)) {
            (Err(a), Err(InspectError::Syntax(b))) => prop_assert_eq!(a, b),
            // Both refuse; inspect stops at a duplicate met before a later syntax error.
            (Err(_), Err(InspectError::DuplicateKey { .. })) => {}
            (Err(a), Ok(_)) => prop_assert!(false, "scanner {a:?}, inspect accepted it"),
            (Ok(_), Err(InspectError::Syntax(b))) => prop_assert!(false, "inspect refused valid JSON: {b:?}"),
            (Ok(m), Err(InspectError::DuplicateKey { .. })) => {
                prop_assert!(has_duplicates(&doc), "no duplicate in {:?} ({m:?})", String::from_utf8_lossy(&doc));
            }
            (Ok(m), Ok(facts)) => {
                prop_assert_eq!(facts.members, m);
                if serde_object(&doc) == Some(true) {
                    prop_assert!(!has_duplicates(&doc));
                }
            }
        }
    }
}

// ------------------------------------- inspect vs an independent serde oracle on duplicates

/// An independent duplicate-key check: a serde visitor over the document that collects each
/// object's keys (serde unescapes them) and fails on the first repeat.
struct DupCheck;

impl<'de> serde::Deserialize<'de> for DupCheck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DupVisitor)
    }
}

struct DupVisitor;

impl<'de> serde::de::Visitor<'de> for DupVisitor {
    type Value = DupCheck;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<DupCheck, E> {
        Ok(DupCheck)
    }
    fn visit_i64<E>(self, _: i64) -> Result<DupCheck, E> {
        Ok(DupCheck)
    }
    fn visit_u64<E>(self, _: u64) -> Result<DupCheck, E> {
        Ok(DupCheck)
    }
    fn visit_f64<E>(self, _: f64) -> Result<DupCheck, E> {
        Ok(DupCheck)
    }
    fn visit_str<E>(self, _: &str) -> Result<DupCheck, E> {
        Ok(DupCheck)
    }
    fn visit_unit<E>(self) -> Result<DupCheck, E> {
        Ok(DupCheck)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<DupCheck, A::Error> {
        while seq.next_element::<DupCheck>()?.is_some() {}
        Ok(DupCheck)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<DupCheck, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("DUPLICATE {key}")));
            }
            map.next_value::<DupCheck>()?;
        }
        Ok(DupCheck)
    }
}

/// A JSON text whose objects draw keys from a tiny set, spelled plainly or escaped, so that
/// repeats (and repeats hidden by escapes) are common.
fn dup_prone_json() -> impl Strategy<Value = String> {
    let key =
        prop::sample::select(vec![r#""a""#, r#""\u0061""#, r#""b""#, r#""\u0062""#, r#""é""#, r#""\u00e9""#, r#""c""#]);
    let leaf = prop_oneof![Just("1".to_string()), Just("null".to_string()), Just(r#""x""#.to_string())];
    leaf.prop_recursive(4, 40, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec((key.clone(), inner), 0..4).prop_map(|members| {
                let members: Vec<String> = members.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

proptest! {
    #![proptest_config(config(2048))]

    /// `inspect` refuses exactly the documents with a repeated key somewhere, and names the
    /// first repeat.
    #[test]
    fn prop_inspect_finds_exactly_the_duplicates_serde_finds(inner in dup_prone_json()) {
        let doc = format!(r#"{{"wrap":{inner}}}"#);
        let oracle = serde_json::from_str::<DupCheck>(&doc).err().map(|e| e.to_string());
        match (inspect(doc.as_bytes()), oracle) {
            (Ok(_), None) => {}
            (Err(InspectError::DuplicateKey { key, .. }), Some(message)) => {
                // Both read in document order: the first repeat they meet is the same key.
                prop_assert!(message.contains(&format!("DUPLICATE {key} ")), "{doc}: {key} vs {message}");
            }
            (ours, theirs) => prop_assert!(false, "{doc}: inspect {ours:?}, serde {theirs:?}"),
        }
    }
}

/// The generator above does produce both kinds of documents (the property is not vacuous).
#[test]
fn dup_prone_json_yields_duplicates_and_clean_documents() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut dups, mut clean) = (0, 0);
    for _ in 0..500 {
        let inner = dup_prone_json().new_tree(&mut runner).unwrap().current();
        match inspect(format!(r#"{{"wrap":{inner}}}"#).as_bytes()) {
            Err(InspectError::DuplicateKey { .. }) => dups += 1,
            Ok(_) => clean += 1,
            Err(e) => panic!("{inner}: {e}"),
        }
    }
    assert!(dups > 50 && clean > 50, "{dups} with duplicates, {clean} without");
}

/// Found by fuzzing (fuzz/regressions/json_scan/crash-two-insertions-into-empty-object): the
/// engine inserts `model` and a clamped `max_completion_tokens` into a body of `{}`; both
/// land right after `{` and must be joined by a comma.
#[test]
fn several_members_inserted_into_an_empty_object_stay_valid_json() {
    for doc in ["{}", "{\n    }\n     "] {
        let m = members(doc);
        let edits = [
            set_member(doc.as_bytes(), &m, "model", br#""gpt""#),
            set_member(doc.as_bytes(), &m, "max_completion_tokens", b"5"),
            set_member(doc.as_bytes(), &m, "stream_options", br#"{"include_usage":true}"#),
        ];
        let out = apply_edits(doc.as_bytes(), &edits);
        let v: Value =
            serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
        assert_eq!(v, json!({"model": "gpt", "max_completion_tokens": 5, "stream_options": {"include_usage": true}}));
    }
    // Into a non-empty object the inserted members carry their own commas: none is added.
    let doc = br#"{"a":1}"#;
    let m = top_level_members(doc).unwrap();
    let out = apply_edits(doc, &[set_member(doc, &m, "x", b"1"), set_member(doc, &m, "y", b"2")]);
    assert_eq!(out, br#"{"x":1,"y":2,"a":1}"#);
}
