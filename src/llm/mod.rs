//! Provider and client wire formats.
pub mod anthropic;
pub mod bedrock;
pub mod dialect;
pub mod embeddings;
pub mod gemini;
pub mod ir;
pub mod openai_chat;
/// The engine's name for what it reads from untranslated OpenAI answers.
pub use openai_chat::passthrough as openai;
pub mod openai_responses;
pub mod sse_stream;
