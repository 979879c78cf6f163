//! Headers handed from the gateway instance (body callback) to the applier instance
//! (header callback) through filter state: `name\0value\0` pairs.

/// Whether a plugin configuration selects the applier role (whitespace-insensitive).
pub fn is_applier_config(json: &[u8], expected: &str) -> bool {
    let squeeze = |b: &[u8]| -> Vec<u8> { b.iter().copied().filter(|c| !c.is_ascii_whitespace()).collect() };
    squeeze(json) == squeeze(expected.as_bytes())
}

pub fn encode(headers: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out
}

pub fn decode(encoded: &[u8]) -> Vec<(String, String)> {
    let mut parts = encoded.split(|&b| b == 0).map(|p| String::from_utf8_lossy(p).into_owned());
    let mut out = Vec::new();
    while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        if !name.is_empty() {
            out.push((name, value));
        }
    }
    out
}
