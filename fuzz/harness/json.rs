//! `json_scan` against serde_json: when serde_json reads a document as an object, the scanner
//! must accept it and agree member by member (keys unescaped the same, each value's bytes
//! parsing to serde_json's value); patches made with `set_member`/`remove_member` and
//! `apply_edits` must give JSON that serde_json reads with the new value.
//!
//! Duplicate top-level keys are the one known difference (issue 10, item 2): serde_json, like
//! Envoy's json_to_metadata and the providers, takes the last; the scanner lists every
//! member and `find` (so `set_member`) takes the first. The oracle states that difference
//! explicitly instead of hiding it: with duplicates the per-key checks compare the first
//! member, and a scanner that rejects duplicate keys (at any depth) is accepted too.

use llm_gateway::json_scan::{apply_edits, find, json_string, remove_member, set_member, top_level_members, Member};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;

/// The value the patch oracle writes (an escape, a non-ASCII character, nesting).
const NEW_VALUE: &[u8] = br#"{"fuzz":[1,"\u00e9\n",null]}"#;

pub fn json_scan(data: &[u8]) {
    let scanned = top_level_members(data);
    let pairs = serde_json::from_slice::<Pairs>(data);
    match (scanned, pairs) {
        (Ok(members), Ok(Pairs(pairs))) => {
            agree(data, &members, &pairs);
            patches_parse(data, &members, &pairs);
        }
        (Err(e), Ok(_)) => assert!(
            has_duplicate_keys(data),
            "the scanner rejects an object serde_json accepts ({e}): {:?}",
            String::from_utf8_lossy(data)
        ),
        (Ok(members), Err(e)) => {
            // serde_json's own limits, stricter than RFC 8259 and the scanner: a 128-deep
            // recursion limit and f64 range for numbers. Anything else is a disagreement.
            let message = e.to_string();
            assert!(
                message.contains("recursion limit exceeded") || message.contains("number out of range"),
                "the scanner accepts ({} members) what serde_json rejects ({message}): {:?}",
                members.len(),
                String::from_utf8_lossy(data)
            );
        }
        (Err(_), Err(_)) => {}
    }
}

/// Member by member, as serde_json reads them in order (duplicates kept).
fn agree(data: &[u8], members: &[Member], pairs: &[(String, Value)]) {
    assert_eq!(members.len(), pairs.len(), "member count: {:?}", String::from_utf8_lossy(data));
    for (m, (key, value)) in members.iter().zip(pairs) {
        assert_eq!(&m.key, key, "key unescaped differently");
        assert_eq!(data.get(m.span.start), Some(&b'"'), "a span starts at the key's quote");
        assert_eq!(m.span.end, m.value.end, "a span ends with its value");
        let raw = data.get(m.value.clone()).unwrap_or_default();
        let alone: Value = match serde_json::from_slice(raw) {
            Ok(v) => v,
            Err(e) => {
                panic!("member {key:?}: its value bytes are not JSON alone ({e}): {:?}", String::from_utf8_lossy(raw))
            }
        };
        assert_eq!(&alone, value, "member {key:?}: value differs");
    }
    // What the gateway reads (`find`) against what serde_json (and Envoy) read.
    let last_wins: serde_json::Map<String, Value> = pairs.iter().cloned().collect();
    for (key, value) in &last_wins {
        let first = find(members, key).and_then(|m| data.get(m.value.clone()));
        let first: Option<Value> = first.and_then(|raw| serde_json::from_slice(raw).ok());
        if is_duplicated(members, key) {
            // Known difference: the scanner's `find` gives the first of the duplicates.
            let first_pair = pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v);
            assert_eq!(first.as_ref(), first_pair, "find gives the first duplicate");
        } else {
            assert_eq!(first.as_ref(), Some(value), "find({key:?}) differs from serde_json");
        }
    }
}

fn is_duplicated(members: &[Member], key: &str) -> bool {
    members.iter().filter(|m| m.key == key).count() > 1
}

/// Set, insert and remove members the way the engine does, and read the result back.
fn patches_parse(data: &[u8], members: &[Member], pairs: &[(String, Value)]) {
    let new_value: Value = serde_json::from_slice(NEW_VALUE).unwrap_or_default();
    let mut keys: Vec<&str> = members.iter().take(4).map(|m| m.key.as_str()).collect();
    keys.extend(["model", "stream_options", "a key \"with\" escapes\u{1}\u{e9}"]);
    for key in keys {
        let out = apply_edits(data, &[set_member(data, members, key, NEW_VALUE)]);
        let map = reparse(&out, "set_member");
        if !is_duplicated(members, key) {
            assert_eq!(map.get(key), Some(&new_value), "set_member({key:?}) not read back");
        }
        let again = top_level_members(&out);
        let again = again.unwrap_or_else(|e| panic!("patched document rejected by the scanner: {e}"));
        let found = find(&again, key).and_then(|m| out.get(m.value.clone()));
        assert_eq!(found, Some(NEW_VALUE), "the scanner does not find the value set");
        let expected =
            pairs.iter().map(|(k, _)| k).collect::<HashSet<_>>().len() + usize::from(find(members, key).is_none());
        assert_eq!(map.len(), expected, "set_member({key:?}) changed other members");
    }
    for m in members.iter().take(8) {
        let out = apply_edits(data, &[remove_member(data, members, m)]);
        let map = reparse(&out, "remove_member");
        if !is_duplicated(members, &m.key) {
            assert!(!map.contains_key(&m.key), "remove_member({:?}) left it", m.key);
        }
        let again = top_level_members(&out).map(|v| v.len()).unwrap_or_default();
        assert_eq!(again + 1, members.len(), "remove_member removes exactly one member");
    }
    // The engine's combination: model replaced, stream_options set, `stream` removed.
    let mut edits = vec![set_member(data, members, "model", br#""patched-model""#)];
    edits.push(set_member(data, members, "stream_options", br#"{"include_usage":true}"#));
    if let Some(stream) = find(members, "stream") {
        edits.push(remove_member(data, members, stream));
    }
    // Absent keys make two insertions at the same offset: still one valid object.
    reparse(&apply_edits(data, &edits), "several edits");
    for m in members.iter().take(4) {
        let quoted = json_string(&m.key);
        let back: Result<String, _> = serde_json::from_slice(&quoted);
        assert_eq!(back.ok().as_deref(), Some(m.key.as_str()), "json_string round trip");
    }
}

fn reparse(out: &[u8], what: &str) -> serde_json::Map<String, Value> {
    match serde_json::from_slice::<Value>(out) {
        Ok(Value::Object(map)) => map,
        Ok(other) => panic!("{what} produced a non-object: {other}"),
        // A patch cannot make a document deeper or its numbers larger.
        Err(e) => panic!("{what} produced invalid JSON ({e}): {:?}", String::from_utf8_lossy(out)),
    }
}

/// A top-level object as serde_json reads it, every member kept in document order.
struct Pairs(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut out = Vec::new();
                while let Some(pair) = map.next_entry::<String, Value>()? {
                    out.push(pair);
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Whether any object in the document, at any depth, repeats a key.
fn has_duplicate_keys(data: &[u8]) -> bool {
    serde_json::from_slice::<Dups>(data).is_ok_and(|d| d.0)
}

struct Dups(bool);

impl<'de> Deserialize<'de> for Dups {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Dups;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Dups, A::Error> {
                let mut seen = HashSet::new();
                let mut dup = false;
                while let Some(key) = map.next_key::<String>()? {
                    dup |= !seen.insert(key);
                    dup |= map.next_value::<Dups>()?.0;
                }
                Ok(Dups(dup))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Dups, A::Error> {
                let mut dup = false;
                while let Some(d) = seq.next_element::<Dups>()? {
                    dup |= d.0;
                }
                Ok(Dups(dup))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Dups, E> {
                Ok(Dups(false))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Dups, E> {
                Ok(Dups(false))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Dups, E> {
                Ok(Dups(false))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Dups, E> {
                Ok(Dups(false))
            }
            fn visit_str<E>(self, _: &str) -> Result<Dups, E> {
                Ok(Dups(false))
            }
            fn visit_unit<E>(self) -> Result<Dups, E> {
                Ok(Dups(false))
            }
        }
        d.deserialize_any(V)
    }
}
