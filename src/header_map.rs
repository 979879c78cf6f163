//! The proxy-wasm ABI's header-map encoding, both ways: a little-endian u32 pair count, then
//! each pair's key and value lengths (u32 each), then each key and value followed by a NUL.
//! Pure, so it is tested natively; the shell uses it to read all request headers in one host
//! call instead of one call per header.

/// Encodes pairs for the host (local replies).
pub fn encode(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&len32(pairs.len()).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&len32(k.len()).to_le_bytes());
        out.extend_from_slice(&len32(v.len()).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Decodes the host's encoding. Values that are not UTF-8 are decoded lossily (header values
/// may carry any byte); a malformed map yields the pairs before the damage.
pub fn decode(bytes: &[u8]) -> Vec<(String, String)> {
    let read_u32 = |at: usize| -> Option<usize> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(raw)).ok()
    };
    let Some(count) = read_u32(0) else { return Vec::new() };
    // Each pair needs 8 bytes of lengths: a count larger than the buffer allows is damage.
    let count = count.min(bytes.len() / 8);
    let mut data = 4 + count * 8;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let (Some(key_len), Some(value_len)) = (read_u32(4 + i * 8), read_u32(8 + i * 8)) else { break };
        let key_end = data.saturating_add(key_len);
        let value_start = key_end.saturating_add(1);
        let value_end = value_start.saturating_add(value_len);
        let (Some(key), Some(value)) = (bytes.get(data..key_end), bytes.get(value_start..value_end)) else { break };
        out.push((String::from_utf8_lossy(key).into_owned(), String::from_utf8_lossy(value).into_owned()));
        data = value_end.saturating_add(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn round_trips() {
        for list in [vec![], vec![(":path", "/v1/chat/completions"), ("x-empty", ""), ("authorization", "Bearer k")]] {
            let p = pairs(&list);
            assert_eq!(decode(&encode(&p)), p);
        }
    }

    #[test]
    fn damage_keeps_what_came_before_and_never_panics() {
        let full = encode(&pairs(&[("a", "1"), ("bb", "22")]));
        for cut in 0..full.len() {
            let got = decode(&full[..cut]);
            assert!(got.len() <= 2);
        }
        let mut huge = full.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let _ = decode(&huge);
        let mut lying = full;
        lying[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&lying).is_empty());
    }

    #[test]
    fn non_utf8_values_are_lossy() {
        let mut bytes = encode(&pairs(&[("k", "ab")]));
        let at = bytes.len() - 2;
        bytes[at] = 0xff;
        assert_eq!(decode(&bytes), pairs(&[("k", "a\u{fffd}")]));
    }
}
