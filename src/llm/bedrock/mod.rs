//! AWS Bedrock Runtime, Converse and ConverseStream, provider side.
//!
//! - [`upstream_path`]: `POST /model/{modelId}/converse` or `/model/{modelId}/converse-stream`
//!   on `bedrock-runtime.{region}.amazonaws.com` ([`host`]); the model id (a base model id, an
//!   inference-profile id or an ARN) is percent-encoded as one path segment.
//! - [`encode_request`]: IR -> Converse body (`request.rs` lists every mapping and refusal).
//! - [`decode_response`] / [`decode_error`]: Converse body and `{"message"}` errors -> IR.
//! - [`StreamDecoder`]: the binary event stream (`crate::stream::eventstream`) -> IR events.
//! - [`sigv4`]: AWS Signature Version 4, pure (service signing name [`SIGNING_NAME`]).
//!
//! Usage: `inputTokens` excludes `cacheReadInputTokens` and `cacheWriteInputTokens`; the IR
//! `input` is their sum (see `wire::TokenUsage::to_ir`).
//!
//! # Authentication and the header-before-body constraint
//!
//! A SigV4 signature covers the SHA-256 of the body, but the gateway must set request headers
//! in the header callback, before it has the body (DESIGN.md §5). Findings:
//!
//! - `x-amz-content-sha256: UNSIGNED-PAYLOAD` is **not** an option for Bedrock Runtime. AWS
//!   models the operations that accept an unsigned body (`authtype: v4-unsigned-body`, e.g.
//!   S3, Lex `PostContent`); none of `bedrock-runtime`'s operations is so marked (botocore's
//!   model), botocore signs the body hash for them, and Envoy's `aws_request_signing` filter
//!   documents unsigned payloads as S3/ES/Glacier-only (envoyproxy/envoy#15846, which made the
//!   filter buffer and hash bodies "making the filter compatible with most AWS services").
//!   Non-S3 services hash the body they receive, so a signature over `UNSIGNED-PAYLOAD` does
//!   not match. (Not tried against live AWS from here.)
//! - Alternatives, best first:
//!   1. **Bedrock API keys**: `Authorization: Bearer <key>` (the model now lists
//!      `smithy.api#httpBearerAuth` next to SigV4). A plain header, known in the header
//!      callback: no body needed. Short- and long-term keys exist (`AWS_BEARER_TOKEN_BEDROCK`).
//!   2. **Envoy's native `envoy.filters.http.aws_request_signing` after our filter** in the
//!      chain: it buffers the (already rewritten) body, hashes and signs it, with credentials
//!      from the environment, IRSA or instance metadata. Our module then only rewrites path,
//!      host and body.
//!   3. `dispatch_http_call` from the body callback with fully signed headers ([`sigv4::sign`]
//!      with `sha256_hex(body)`), answering the client with the result: correct, but buffers
//!      the whole response (no streaming) and doubles the hop. Non-streaming only.
//!
//!   [`sigv4::sign`] takes the payload hash as a parameter so either way works once the body
//!   is known; it is tested against AWS's SigV4 test-suite vectors and botocore.

mod mapping;
mod request;
mod response;
pub mod sigv4;
mod stream;
mod wire;

pub use request::encode_request;
pub use response::{decode_error, decode_response};
pub use stream::StreamDecoder;

/// The provider name used in `TranslateError::Unsupported`.
pub const PROVIDER: &str = "bedrock";

/// SigV4 signing name of Bedrock Runtime (the endpoint prefix is `bedrock-runtime`).
pub const SIGNING_NAME: &str = "bedrock";

/// `content-type` of ConverseStream responses.
pub const EVENT_STREAM_CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// The Bedrock Runtime endpoint host of a region, e.g. `bedrock-runtime.us-east-1.amazonaws.com`.
pub fn host(region: &str) -> String {
    format!("bedrock-runtime.{region}.amazonaws.com")
}

/// The upstream `:path`: `/model/{modelId}/converse`, or `/model/{modelId}/converse-stream`
/// when streaming. The model id is one path segment: every byte that is not an RFC 3986
/// unreserved character (`A-Z a-z 0-9 - . _ ~`) is percent-encoded, `:` and `/` of ARNs
/// included (`arn%3Aaws%3Abedrock%3A...%2F...`), exactly as the AWS SDKs send it. Sign this
/// path with [`sigv4`], which encodes it a second time for the canonical request.
pub fn upstream_path(model_id: &str, stream: bool) -> String {
    let op = if stream { "converse-stream" } else { "converse" };
    format!("/model/{}/{op}", crate::llm::percent::encode_segment(model_id))
}

/// The upstream `:path` of an `InvokeModel` call (embeddings): `/model/{modelId}/invoke`, the
/// model id encoded as in [`upstream_path`].
pub fn invoke_path(model_id: &str) -> String {
    format!("/model/{}/invoke", crate::llm::percent::encode_segment(model_id))
}
