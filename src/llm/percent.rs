//! RFC 3986 percent-encoding, the one copy behind every upstream path the gateway builds
//! (Gemini's and Bedrock's model ids as one path segment) and SigV4's canonical request.
//! Upper-case hex, as the AWS SDKs send it and SigV4 requires.

/// `s` as one path segment: every byte that is not an RFC 3986 unreserved character
/// (`A-Z a-z 0-9 - . _ ~`) becomes `%XX`, `/`, `:`, `?` and `#` included, so a value can never
/// add segments, a query or a fragment.
pub fn encode_segment(s: &str) -> String {
    encode(s, false)
}

/// `s` as a path: like [`encode_segment`] but `/` stays (SigV4's canonical URI).
pub fn encode_path(s: &str) -> String {
    encode(s, true)
}

fn encode(s: &str, keep_slash: bool) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(DIGITS.get(usize::from(b >> 4)).copied().unwrap_or(b'0')));
            out.push(char::from(DIGITS.get(usize::from(b & 0x0f)).copied().unwrap_or(b'0')));
        }
    }
    out
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` sequences (a malformed `%` stays literal; `+` stays `+`; invalid UTF-8
/// becomes U+FFFD).
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            if let (Some(h), Some(l)) =
                (b.get(i + 1).copied().and_then(hex_val), b.get(i + 2).copied().and_then(hex_val))
            {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unreserved_bytes_stay_and_the_rest_is_upper_case_hex() {
        assert_eq!(encode_segment("Az09-._~"), "Az09-._~");
        assert_eq!(encode_segment("a/b:c?d#e f"), "a%2Fb%3Ac%3Fd%23e%20f");
        assert_eq!(encode_path("a/b:c"), "a/b%3Ac");
        assert_eq!(encode_segment("é"), "%C3%A9");
        assert_eq!(encode_segment("%2F"), "%252F", "encoding twice is SigV4's canonical form");
    }

    #[test]
    fn decoding_leaves_malformed_escapes_literal() {
        assert_eq!(decode("a%2Fb%3a+c"), "a/b:+c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%FF"), "\u{FFFD}");
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(s in any::<String>()) {
            prop_assert_eq!(decode(&encode_segment(&s)), s.clone());
            prop_assert_eq!(decode(&encode_path(&s)), s);
        }
    }
}
