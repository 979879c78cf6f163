//! Incremental stream decoders.
pub mod sse;
