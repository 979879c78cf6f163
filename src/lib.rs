//! llm-gateway: an LLM gateway as one proxy-wasm module.
//!
//! The proxy-wasm shell (`filter`, wasm32 only) moves bytes and applies effects; every
//! decision is made here, natively testable, and returned as data. One plugin's
//! configuration becomes a [`Gateway`](engine::Gateway); each request is an
//! [`Exchange`](engine::Exchange) that goes through five steps, one per host callback:
//!
//! 1. **Request headers** -> [`Gateway::on_request_headers`](engine::Gateway::on_request_headers):
//!    endpoint, model, identity ([`auth`]) and target, decided as one value (`Routed`, in
//!    `engine/route.rs`) from which the exchange is built; the answer is a
//!    [`RequestAction`](engine::RequestAction): header changes, or a local reply in the
//!    client's API shape.
//! 2. **Request body** -> [`Exchange::on_request_body`](engine::Exchange::on_request_body):
//!    the whole body is read strictly ([`json_scan`]), checked against the route, budgeted
//!    ([`quota`]), screened by the prompt layer ([`prompt`]), then patched in place or
//!    translated through the canonical request ([`llm::ir`]) into the provider's dialect.
//! 3. **Response headers** -> [`Exchange::on_response`](engine::Exchange::on_response): the
//!    status and content type choose how the body is read (`Exchange::plan`, in
//!    `engine/exchange/response.rs`, returns a `BodyPlan`: passthrough, held JSON, observed
//!    or translated stream, or a gateway error in the client's dialect).
//! 4. **Response body** -> [`Exchange::on_response_body`](engine::Exchange::on_response_body):
//!    each chunk goes through that reader ([`stream`] decoders, [`llm`] encoders), which
//!    counts usage ([`usage`]) as it passes.
//! 5. **End** -> [`Exchange::finish`](engine::Exchange::finish): the budget is settled to
//!    what was used and the [`Record`](engine::Record) feeds the metrics and the access log
//!    ([`metrics`]).
//!
//! `tests/exchange.rs` drives all five steps natively, one table row per case.
// No host or network data may panic the module: the library denies these. Its #[cfg(test)]
// code may use them (clippy.toml); tests/ and benches/ are crates of their own.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
pub mod auth;
pub mod calendar;
pub mod config;
pub mod config_base;
pub mod effects;
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
