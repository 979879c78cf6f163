//! llm-gateway: an LLM gateway as one proxy-wasm module.
pub mod auth;
pub mod calendar;
pub mod config;
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
