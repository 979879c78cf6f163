//! Header ops that change nothing are no host call: a removal of an absent header, a set to
//! the value the header already has.

use crate::engine::{HeaderOp, UNTRUSTED_REQUEST_HEADERS};

/// A header's value in a map as read from the host (names are lower-case in Envoy; compared
/// case-insensitively all the same).
pub fn header_in<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The ops of `ops` that change something, in order. `headers` is the map as read, kept up
/// to date as the ops apply, so a later op sees the earlier ones.
pub fn changes(headers: &mut Vec<(String, String)>, ops: Vec<HeaderOp>) -> Vec<HeaderOp> {
    let mut kept = Vec::with_capacity(ops.len());
    for op in ops {
        match &op {
            HeaderOp::Remove(name) if header_in(headers, name).is_none() => continue,
            HeaderOp::Set(name, value) if header_in(headers, name) == Some(value.as_str()) => continue,
            HeaderOp::Remove(name) => headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name)),
            HeaderOp::Set(name, value) => {
                headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
                headers.push((name.clone(), value.clone()));
            }
        }
        kept.push(op);
    }
    kept
}

/// Takes the headers a client may not set (`UNTRUSTED_REQUEST_HEADERS`) out of `headers`,
/// the copy the callback decides with, and returns their removals for the request.
pub fn remove_untrusted(headers: &mut Vec<(String, String)>) -> Vec<HeaderOp> {
    let mut removals = Vec::new();
    headers.retain(|(name, _)| {
        let untrusted = UNTRUSTED_REQUEST_HEADERS.iter().any(|u| name.eq_ignore_ascii_case(u));
        if untrusted {
            removals.push(HeaderOp::Remove(name.clone()));
        }
        !untrusted
    });
    removals
}
