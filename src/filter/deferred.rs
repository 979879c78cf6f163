//! Headers handed from the gateway instance (body callback) to the applier instance
//! (header callback) through filter state, in the ABI's header-map encoding
//! (`crate::header_map`).

/// Whether a plugin configuration selects the applier role (whitespace-insensitive).
pub fn is_applier_config(json: &[u8], expected: &str) -> bool {
    let squeeze = |b: &[u8]| -> Vec<u8> { b.iter().copied().filter(|c| !c.is_ascii_whitespace()).collect() };
    squeeze(json) == squeeze(expected.as_bytes())
}
