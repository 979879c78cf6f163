//! OpenAI Responses API (`/v1/responses`), a client dialect.
//!
//! To OpenAI itself the gateway passes it through and only reads usage, from a response
//! object and from its stream, which reports it on `response.completed`,
//! `response.incomplete` and `response.failed` ([`passthrough`]).
//!
//! To every other provider it is translated through the IR like Chat Completions and
//! Messages: [`decode_request`] (input items, instructions, function tools, reasoning,
//! `text.format`; stateful features refused), [`encode_response`] (the `response` object),
//! [`encode_error`] and [`StreamEncoder`] (the typed SSE events).

mod mapping;
pub mod passthrough;
mod request;
mod response;
mod stream;
mod wire;

pub use passthrough::{event_text_bytes, event_usage, response_usage};
pub use request::decode_request;
pub use response::{encode_error, encode_response};
pub use stream::StreamEncoder;
