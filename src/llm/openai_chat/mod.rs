//! OpenAI Chat Completions through the IR, both sides.
//!
//! Client side (an OpenAI client reaching a non-OpenAI provider): [`decode_request`],
//! [`encode_response`], [`encode_error`], [`StreamEncoder`].
//! Provider side (an Anthropic client reaching an OpenAI-kind provider): [`encode_request`]
//! (and [`encode_request_with`] for compatible servers), [`decode_response`],
//! [`decode_error`], [`StreamDecoder`].
//!
//! OpenAI -> OpenAI never comes here: the engine passes those bytes through and patches
//! them ([`passthrough`]).
//!
//! Reasoning text travels as `reasoning_content` (message field and stream delta), the
//! de-facto name used by DeepSeek, vLLM, SGLang and OpenRouter-compatible servers; OpenAI
//! itself does not return reasoning text on Chat Completions.
//!
//! Mapping: `finish_reason`, `usage` and the error `type`/`code` per kind are tables in
//! `mapping.rs` (each row tested there). Files: `wire.rs` (serde types), `request/`
//! (`decode.rs` + `messages.rs`, `encode.rs`, `fields.rs`: members read with OpenAI's own
//! messages, shared with the Responses API), `response.rs`, `stream/` (`decode.rs`,
//! `encode.rs`), `passthrough.rs` (what the engine reads from untranslated answers).

pub(crate) mod mapping;
pub mod passthrough;
mod response;
mod wire;
mod request {
    pub mod decode;
    pub mod encode;
    pub mod fields;
    mod messages;
}
/// Shared with the Responses API's decoder.
pub(crate) use request::fields;
mod stream {
    pub mod decode;
    pub mod encode;
}

pub use request::decode::decode_request;
pub use request::encode::{encode_request, encode_request_with, EncodeOptions};
pub use response::{decode_error, decode_response, encode_error, encode_response};
pub use stream::decode::StreamDecoder;
pub use stream::encode::StreamEncoder;
