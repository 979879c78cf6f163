//! Google Gemini API (`generativelanguage.googleapis.com`, `v1beta`), provider side.
//!
//! - [`upstream_path`]: `{base}/models/{model}:generateContent` or
//!   `{base}/models/{model}:streamGenerateContent?alt=sse`. The engine sets the
//!   `x-goog-api-key` header.
//! - [`encode_request`]: IR -> `GenerateContentRequest` (see `request.rs` for every mapping
//!   decision and what is refused).
//! - [`decode_response`] / [`decode_error`]: `GenerateContentResponse` and Google's error
//!   shape `{"error":{"code","message","status"}}` -> IR (see `response.rs`).
//! - [`StreamDecoder`]: `alt=sse` streams, where every `data:` event is a whole
//!   `GenerateContentResponse` chunk with incremental parts and cumulative usage, and the
//!   stream simply ends after the chunk carrying `finishReason` (no `[DONE]`).
//!
//! Gemini has no tool-call ids: decoded function calls get `call_<n>` (n counts the calls of
//! one response from 0) unless the part carries its own `functionCall.id`. Requests send no
//! ids back (Gemini matches a `functionResponse` to its call by name and order), so the
//! generated ids only need to be unique within one response.

mod mapping;
mod request;
mod response;
mod stream;
mod wire;

pub use request::encode_request;
pub use response::{decode_error, decode_response};
pub use stream::StreamDecoder;

/// The provider name used in `TranslateError::Unsupported`.
pub const PROVIDER: &str = "gemini";

/// Default API version path.
pub const DEFAULT_BASE_PATH: &str = "/v1beta";

/// The upstream `:path` for one call: `{base}/models/{model}:generateContent`, or
/// `{base}/models/{model}:streamGenerateContent?alt=sse` when streaming.
///
/// `base_path` defaults to `/v1beta` when empty; a trailing `/` is ignored. A leading
/// `models/` in the model id (the form the API returns in `name`) is dropped; everything else
/// that is not an RFC 3986 unreserved character is percent-encoded, so a model id can never
/// inject path segments, a query or a fragment (`a/b` becomes `a%2Fb`).
pub fn upstream_path(base_path: &str, model: &str, stream: bool) -> String {
    let base = base_path.trim_end_matches('/');
    let base = if base.is_empty() { DEFAULT_BASE_PATH } else { base };
    let model = model.strip_prefix("models/").unwrap_or(model);
    let mut path = String::with_capacity(base.len() + model.len() + 48);
    path.push_str(base);
    path.push_str("/models/");
    path.push_str(&crate::llm::percent::encode_segment(model));
    path.push_str(if stream { ":streamGenerateContent?alt=sse" } else { ":generateContent" });
    path
}

/// The upstream `:path` of an embeddings call: `{base}/models/{model}:batchEmbedContents`
/// (the model id encoded as in [`upstream_path`]).
pub fn batch_embed_path(base_path: &str, model: &str) -> String {
    let path = upstream_path(base_path, model, false);
    let model_path = path.strip_suffix(":generateContent").unwrap_or(&path);
    format!("{model_path}:batchEmbedContents")
}
