//! OpenAI Chat Completions through the IR, both sides.
//!
//! Client side (an OpenAI client reaching a non-OpenAI provider): [`decode_request`],
//! [`encode_response`], [`encode_error`], [`StreamEncoder`].
//! Provider side (an Anthropic client reaching an OpenAI-kind provider): [`encode_request`]
//! (and [`encode_request_with`] for compatible servers), [`decode_response`],
//! [`decode_error`], [`StreamDecoder`].
//!
//! OpenAI -> OpenAI never comes here: the engine passes those bytes through and patches
//! them (`crate::llm::openai`).
//!
//! Reasoning text travels as `reasoning_content` (message field and stream delta), the
//! de-facto name used by DeepSeek, vLLM, SGLang and OpenRouter-compatible servers; OpenAI
//! itself does not return reasoning text on Chat Completions.

mod decode_messages;
mod decode_request;
mod decode_stream;
mod encode_request;
mod encode_stream;
mod response;
pub(crate) mod util;
mod wire;

pub use decode_request::decode_request;
pub use decode_stream::StreamDecoder;
pub use encode_request::{encode_request, encode_request_with, EncodeOptions};
pub use encode_stream::StreamEncoder;
pub use response::{decode_error, decode_response, encode_error, encode_response};
