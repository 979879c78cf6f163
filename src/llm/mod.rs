//! Provider and client wire formats.
pub mod ir;
pub mod openai;
