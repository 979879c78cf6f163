//! Provider and client wire formats.
pub mod openai;
