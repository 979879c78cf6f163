//! Headers decided in the body callback (a SigV4 signature) handed to the module's second,
//! header-applying instance placed after Envoy's buffer filter: through filter state
//! (`DEFERRED_HEADERS`), in the ABI's header-map encoding (`crate::header_map`).

use crate::engine::HeaderOp;

/// The filter state carrying the deferred headers.
pub const DEFERRED_HEADERS: &str = "llm_deferred_headers";

/// The plugin configuration of the applier instance.
pub const APPLIER_CONFIG: &str = r#"{"role": "apply-deferred-headers"}"#;

/// What clears the state: an earlier attempt's signature must not reach the next target.
pub const CLEARED: &[u8] = b"";

/// Whether a plugin configuration is `expected` (a role configuration), whitespace-insensitive.
pub fn is_role_config(json: &[u8], expected: &str) -> bool {
    let squeeze = |b: &[u8]| -> Vec<u8> { b.iter().copied().filter(|c| !c.is_ascii_whitespace()).collect() };
    squeeze(json) == squeeze(expected.as_bytes())
}

/// The filter-state value for the headers an exchange deferred; `None` when it deferred none
/// (no host call then).
pub fn encode(deferred: &[(String, String)]) -> Option<Vec<u8>> {
    (!deferred.is_empty()).then(|| crate::header_map::encode(deferred))
}

/// The applier's ops for the filter-state value it read (nothing for a cleared or
/// undecodable one).
pub fn applier_ops(state: &[u8]) -> Vec<HeaderOp> {
    crate::header_map::decode(state).into_iter().map(|(name, value)| HeaderOp::Set(name, value)).collect()
}
