//! Incremental stream decoders.
pub mod eventstream;
pub mod sse;
