//! One fallback for every provider dialect: a non-2xx body that is not the provider's error
//! shape (a proxy's HTML page, plain text, nothing) becomes the same message whichever
//! provider sent it, row by row.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use llm_gateway::llm::dialect;
use llm_gateway::llm::ir::ProviderDialect;

const PROVIDERS: [ProviderDialect; 4] =
    [ProviderDialect::OpenAi, ProviderDialect::Anthropic, ProviderDialect::Gemini, ProviderDialect::Bedrock];

/// (status, body, the message every provider's decoder gives).
const ROWS: &[(u16, &str, &str)] = &[
    (502, "", "provider returned HTTP 502 with an empty body"),
    (503, "  \r\n ", "provider returned HTTP 503 with an empty body"),
    (502, "<html><body>Bad Gateway</body></html>", "provider returned HTTP 502 with a text/html body"),
    (502, "  <!DOCTYPE html><title>oops</title>", "provider returned HTTP 502 with a text/html body"),
    (500, "upstream connect error", "provider returned HTTP 500: upstream connect error"),
    (500, "line one\nline\ttwo", "provider returned HTTP 500: line one line two"),
];

#[test]
fn every_provider_describes_an_unreadable_error_body_alike() {
    for &(status, body, expected) in ROWS {
        for provider in PROVIDERS {
            let error = dialect::decode_error(provider, status, body.as_bytes());
            assert_eq!(error.message, expected, "{provider:?}, body {body:?}");
            assert_eq!(error.status, status, "{provider:?}, body {body:?}");
        }
    }
}

#[test]
fn long_plain_text_is_quoted_up_to_200_characters() {
    let body = "é".repeat(300);
    for provider in PROVIDERS {
        let error = dialect::decode_error(provider, 500, body.as_bytes());
        assert_eq!(error.message, format!("provider returned HTTP 500: {}...", "é".repeat(200)), "{provider:?}");
    }
    let exact = "a".repeat(200);
    for provider in PROVIDERS {
        let error = dialect::decode_error(provider, 500, exact.as_bytes());
        assert_eq!(error.message, format!("provider returned HTTP 500: {exact}"), "{provider:?}");
    }
}
