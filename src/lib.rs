//! llm-gateway: an LLM gateway as one proxy-wasm module.
// No host or network data may panic the module: the library denies these. Its #[cfg(test)]
// code may use them (clippy.toml); tests/ and benches/ are crates of their own.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
pub mod auth;
pub mod calendar;
pub mod config;
pub mod config_base;
pub mod engine;
pub mod header_map;
pub mod json_scan;
pub mod llm;
pub mod metrics;
pub mod prompt;
pub mod quota;
pub mod stream;
pub mod usage;

#[cfg(target_arch = "wasm32")]
mod filter;
