//! Provider and client wire formats.
pub mod anthropic;
pub mod bedrock;
pub mod dialect;
pub mod embeddings;
pub mod gemini;
pub mod ir;
pub mod openai_chat;
pub mod openai_responses;
pub mod percent;
pub mod sse_stream;
