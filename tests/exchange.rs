//! The whole exchange, natively, one table row per case: request headers -> request body ->
//! response headers -> response body (whole, or streamed in small chunks) -> finish, as the
//! proxy-wasm shell drives it in Envoy.
//!
//! A row names the client, the model (hence the provider kind, see `config()`), whether it
//! streams and the provider's answer (a file under tests/fixtures), then what must hold: the
//! headers and body members sent upstream, whether the body is SigV4-signed (the deferred
//! headers), the status and text (or error type) the client gets, and the usage, template
//! and budget in the record.
//!
//! To add a case, copy the row closest to it in `ROWS` (answers) or `REFUSALS` (the gateway
//! refusing by itself) and change what differs; `cargo test --test exchange` names the row
//! and the value that differ.

use llm_gateway::auth::api_key::digest;
use llm_gateway::config::ProviderKind;
use llm_gateway::engine::{BodyAction, Exchange, Gateway, HeaderOp, Record, RequestAction, RequestHead};
use llm_gateway::llm::bedrock::sigv4;
use llm_gateway::llm::ir::ProviderDialect;
use llm_gateway::quota::MemoryStore;
use llm_gateway::usage::UsageSource;
use serde_json::{json, Value};

/// 2026-11-27T12:30:00Z: the clock every exchange runs at.
const NOW_MS: u64 = 1_795_734_600_000;
/// The tokens a minute the `big` plan allows.
const BIG_PLAN_TOKENS: u64 = 1_000_000;

/// One provider of each kind the codecs cover, one model each (the model name says which);
/// `prompts` adds the prompt layer.
fn config(prompts: bool) -> Value {
    let key = |k: &str| hex(&digest(k));
    let mut config = json!({
        "providers": {
            "oa": {"kind": "openai", "cluster": "openai", "authority": "api.openai.com",
                   "auth": {"type": "bearer", "env": "KEY"}},
            "az": {"kind": "azure-openai", "cluster": "azure", "base_path": "/openai", "api_version": "2024-10-21",
                   "auth": {"type": "api-key", "env": "KEY"}},
            "vl": {"kind": "vllm", "cluster": "vllm", "base_path": "/api/v1", "auth": {"type": "none"}},
            "an": {"kind": "anthropic", "cluster": "anthropic", "auth": {"type": "api-key", "env": "KEY"}},
            "ge": {"kind": "gemini", "cluster": "gemini", "auth": {"type": "api-key", "env": "KEY"}},
            "br": {"kind": "bedrock", "cluster": "bedrock", "region": "us-east-1",
                   "auth": {"type": "aws-sigv4", "access_key_env": "AKID", "secret_key_env": "SECRET"}}
        },
        "models": {
            "gpt": {"provider": "oa", "model": "gpt-4o-mini"},
            "azure": {"provider": "az", "model": "my-deployment"},
            "local": {"provider": "vl", "model": "llama-3.1-8b"},
            "claude": {"provider": "an", "model": "claude-sonnet-4-5"},
            "gemini": {"provider": "ge", "model": "gemini-2.0-flash"},
            "bedrock": {"provider": "br", "model": "anthropic.claude-3-haiku-20240307-v1:0"},
            "forced": {"provider": "oa", "model": "gpt-4o-mini"},
            "forced-claude": {"provider": "an", "model": "claude-sonnet-4-5"}
        },
        "consumers": {
            "alice": {"api_keys": [key("sk-alice")], "plan": "big"},
            "bob": {"api_keys": [key("sk-bob")], "plan": "tiny"},
            "carol": {"api_keys": [key("sk-carol")], "plan": "big", "models": ["gpt"]}
        },
        "plans": {
            "big": {"limits": [{"name": "tpm", "window": "minute", "tokens": BIG_PLAN_TOKENS}]},
            "tiny": {"limits": [{"name": "tpm", "window": "minute", "tokens": 5}]}
        }
    });
    if prompts {
        config["prompts"] = json!({
            "templates": {
                "summarize": {
                    "model": "gpt",
                    "variables": {"text": {"type": "string"}},
                    "versions": {"1": {"messages": [{"role": "user", "content": "Summarize: {{text}}"}]}}
                },
                "house-style": {
                    "versions": {"a": {"messages": [{"role": "system", "content": "Answer like a pirate."}]}}
                }
            },
            "forced_templates": [
                {"match": {"model": "forced"}, "template": "house-style", "version": "a"},
                {"match": {"model": "forced-claude"}, "template": "house-style", "version": "a"}
            ],
            "prompt_apis": {"/v1/prompts/summarize": {"template": "summarize"}}
        });
    }
    config
}

/// The gateway of `config(prompts)`.
fn gateway(prompts: bool) -> Gateway {
    let env = |k: &str| match k {
        "KEY" => Some("sk-upstream".to_string()),
        "AKID" => Some("AKIDEXAMPLE".to_string()),
        "SECRET" => Some("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_string()),
        _ => None,
    };
    Gateway::from_json(config(prompts).to_string().as_bytes(), &env).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who calls, and so which API the request and the answer are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`, bearer key).
    OpenAi,
    /// Anthropic Messages (`POST /v1/messages`, `x-api-key`, `anthropic-version`).
    Anthropic,
    /// OpenAI Responses (`POST /v1/responses`, bearer key): translated for every provider
    /// but OpenAI itself.
    Responses,
    /// The published prompt `/v1/prompts/summarize`: the body is its variables.
    PromptApi,
}

/// What the client gets at the end.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// An answer: its text (whole or joined from the stream's deltas) and the usage in the
    /// record, (input, output) tokens as the provider reported them.
    Answer { text: &'static str, usage: (u64, u64) },
    /// An error in the client's shape: `error.type`, and words its message contains.
    Error { error_type: &'static str, message_has: &'static str },
}

/// One answered case: see the file's header.
#[derive(Debug, Clone, Copy)]
struct Row {
    name: &'static str,
    client: Client,
    model: &'static str,
    stream: bool,
    /// The provider's answer: status, content type, fixture under tests/fixtures.
    answer: (u16, &'static str, &'static str),
    /// Request headers set for the provider (`:path`, cluster, credentials...).
    upstream_headers: &'static [(&'static str, &'static str)],
    /// Members of the body sent upstream: JSON pointer, value as JSON text.
    upstream_body: &'static [(&'static str, &'static str)],
    /// The body is SigV4-signed: the signature waits in the deferred headers.
    signed: bool,
    /// The status the client gets (and the record reports).
    status: u16,
    expect: Expect,
    /// The template and version in the record.
    template: Option<(&'static str, &'static str)>,
    /// The gateway has the prompt layer configured (`prompts` in `config`): chat requests
    /// then go through the canonical request even when client and provider share an API.
    prompts: bool,
}

/// What most rows share; rows say what differs.
const BASE: Row = Row {
    name: "",
    client: Client::OpenAi,
    model: "gpt",
    stream: false,
    answer: OPENAI_JSON,
    upstream_headers: &[],
    upstream_body: &[],
    signed: false,
    status: 200,
    expect: Expect::Answer { text: "", usage: (0, 0) },
    template: None,
    prompts: false,
};

const OPENAI_JSON: (u16, &str, &str) = (200, "application/json", "openai/chat_completion.json");
const OPENAI_SSE: (u16, &str, &str) = (200, "text/event-stream", "openai/chat_stream_include_usage.sse");
const ANTHROPIC_JSON: (u16, &str, &str) = (200, "application/json", "anthropic/response_text.json");
const ANTHROPIC_SSE: (u16, &str, &str) = (200, "text/event-stream", "anthropic/stream_basic.sse");
const GEMINI_JSON: (u16, &str, &str) = (200, "application/json", "gemini/generate_content_text.json");
const GEMINI_SSE: (u16, &str, &str) = (200, "text/event-stream", "gemini/stream_text.sse");
const BEDROCK_JSON: (u16, &str, &str) = (200, "application/json", "bedrock/converse_text.json");
const BEDROCK_STREAM: (u16, &str, &str) =
    (200, "application/vnd.amazon.eventstream", "bedrock/stream_text.eventstream");

const OPENAI_TEXT: &str = "The image shows a wooden boardwalk path running through a lush green field or meadow.";
const OPENAI_STREAM_TEXT: &str = "Hello wörld";
const ANTHROPIC_TEXT: &str = "Hi! My name is Claude.";
const ANTHROPIC_STREAM_TEXT: &str = "Hello there!";
const GEMINI_TEXT: &str =
    "AI learns patterns from data to make predictions or decisions without being explicitly programmed for every case.";
const GEMINI_STREAM_TEXT: &str = "Hello! How can I help you today?";
const BEDROCK_TEXT: &str = "Here is a list of 3 pop songs by artists from the United Kingdom:\n\n1. \"Wannabe\" by Spice Girls\n2. \"Bitter Sweet Symphony\" by The Verve\n3. \"Don't Look Back in Anger\" by Oasis";
const BEDROCK_STREAM_TEXT: &str = "Title: A Song of Ice and Fire \u{2014} caf\u{e9} \u{1f3b5}";

const ROWS: &[Row] = &[
    // ------------------------------------------------------------ OpenAI client
    Row {
        name: "openai -> openai",
        upstream_headers: &[
            (":path", "/v1/chat/completions"),
            ("x-llm-gateway-cluster", "openai"),
            ("authorization", "Bearer sk-upstream"),
        ],
        upstream_body: &[("/model", r#""gpt-4o-mini""#), ("/messages/0/content", r#""Say hi""#)],
        expect: Expect::Answer { text: OPENAI_TEXT, usage: (1117, 46) },
        ..BASE
    },
    Row {
        name: "openai -> openai, stream",
        stream: true,
        answer: OPENAI_SSE,
        upstream_headers: &[(":path", "/v1/chat/completions"), ("authorization", "Bearer sk-upstream")],
        // The gateway asks for usage; the client, which did not, does not get the usage chunk.
        upstream_body: &[("/stream", "true"), ("/stream_options", r#"{"include_usage":true}"#)],
        expect: Expect::Answer { text: OPENAI_STREAM_TEXT, usage: (9, 12) },
        ..BASE
    },
    Row {
        name: "openai -> azure",
        model: "azure",
        upstream_headers: &[
            (":path", "/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21"),
            ("x-llm-gateway-cluster", "azure"),
            ("api-key", "sk-upstream"),
        ],
        upstream_body: &[("/model", r#""my-deployment""#)],
        expect: Expect::Answer { text: OPENAI_TEXT, usage: (1117, 46) },
        ..BASE
    },
    Row {
        name: "openai -> azure, stream",
        model: "azure",
        stream: true,
        answer: OPENAI_SSE,
        upstream_headers: &[(":path", "/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21")],
        upstream_body: &[("/stream_options/include_usage", "true")],
        expect: Expect::Answer { text: OPENAI_STREAM_TEXT, usage: (9, 12) },
        ..BASE
    },
    Row {
        name: "openai -> vllm",
        model: "local",
        upstream_headers: &[(":path", "/api/v1/chat/completions"), ("x-llm-gateway-cluster", "vllm")],
        // vLLM reads the output cap from `max_tokens` only.
        upstream_body: &[("/model", r#""llama-3.1-8b""#), ("/max_tokens", "100")],
        expect: Expect::Answer { text: OPENAI_TEXT, usage: (1117, 46) },
        ..BASE
    },
    Row {
        name: "openai -> vllm, stream",
        model: "local",
        stream: true,
        answer: OPENAI_SSE,
        upstream_headers: &[(":path", "/api/v1/chat/completions")],
        upstream_body: &[("/stream_options/include_usage", "true")],
        expect: Expect::Answer { text: OPENAI_STREAM_TEXT, usage: (9, 12) },
        ..BASE
    },
    Row {
        name: "openai -> anthropic",
        model: "claude",
        answer: ANTHROPIC_JSON,
        upstream_headers: &[
            (":path", "/v1/messages"),
            ("x-llm-gateway-cluster", "anthropic"),
            ("x-api-key", "sk-upstream"),
        ],
        upstream_body: &[
            ("/model", r#""claude-sonnet-4-5""#),
            ("/max_tokens", "100"),
            ("/messages/0/content/0/text", r#""Say hi""#),
        ],
        expect: Expect::Answer { text: ANTHROPIC_TEXT, usage: (6197, 503) },
        ..BASE
    },
    Row {
        name: "openai -> anthropic, stream",
        model: "claude",
        stream: true,
        answer: ANTHROPIC_SSE,
        upstream_headers: &[(":path", "/v1/messages")],
        upstream_body: &[("/stream", "true")],
        expect: Expect::Answer { text: ANTHROPIC_STREAM_TEXT, usage: (11, 6) },
        ..BASE
    },
    Row {
        name: "openai -> gemini",
        model: "gemini",
        answer: GEMINI_JSON,
        upstream_headers: &[
            (":path", "/v1beta/models/gemini-2.0-flash:generateContent"),
            ("x-llm-gateway-cluster", "gemini"),
            ("x-goog-api-key", "sk-upstream"),
        ],
        upstream_body: &[("/contents/0/parts/0/text", r#""Say hi""#), ("/generationConfig/maxOutputTokens", "100")],
        expect: Expect::Answer { text: GEMINI_TEXT, usage: (8, 19) },
        ..BASE
    },
    Row {
        name: "openai -> gemini, stream",
        model: "gemini",
        stream: true,
        answer: GEMINI_SSE,
        upstream_headers: &[(":path", "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse")],
        expect: Expect::Answer { text: GEMINI_STREAM_TEXT, usage: (1, 9) },
        ..BASE
    },
    Row {
        name: "openai -> bedrock",
        model: "bedrock",
        answer: BEDROCK_JSON,
        upstream_headers: &[
            (":path", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"),
            ("x-llm-gateway-cluster", "bedrock"),
        ],
        upstream_body: &[("/messages/0/content/0/text", r#""Say hi""#), ("/inferenceConfig/maxTokens", "100")],
        signed: true,
        expect: Expect::Answer { text: BEDROCK_TEXT, usage: (125, 60) },
        ..BASE
    },
    Row {
        name: "openai -> bedrock, stream",
        model: "bedrock",
        stream: true,
        answer: BEDROCK_STREAM,
        upstream_headers: &[(":path", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream")],
        signed: true,
        expect: Expect::Answer { text: BEDROCK_STREAM_TEXT, usage: (47, 20) },
        ..BASE
    },
    // ------------------------------------------------------------ Anthropic client
    Row {
        name: "anthropic -> anthropic",
        client: Client::Anthropic,
        model: "claude",
        answer: ANTHROPIC_JSON,
        upstream_headers: &[(":path", "/v1/messages"), ("x-api-key", "sk-upstream")],
        upstream_body: &[("/model", r#""claude-sonnet-4-5""#), ("/messages/0/content", r#""Say hi""#)],
        expect: Expect::Answer { text: ANTHROPIC_TEXT, usage: (6197, 503) },
        ..BASE
    },
    Row {
        name: "anthropic -> anthropic, stream",
        client: Client::Anthropic,
        model: "claude",
        stream: true,
        answer: ANTHROPIC_SSE,
        upstream_headers: &[(":path", "/v1/messages")],
        upstream_body: &[("/stream", "true")],
        expect: Expect::Answer { text: ANTHROPIC_STREAM_TEXT, usage: (11, 6) },
        ..BASE
    },
    Row {
        name: "anthropic -> openai",
        client: Client::Anthropic,
        upstream_headers: &[(":path", "/v1/chat/completions"), ("authorization", "Bearer sk-upstream")],
        upstream_body: &[
            ("/model", r#""gpt-4o-mini""#),
            ("/max_completion_tokens", "100"),
            ("/messages/0/content", r#""Say hi""#),
        ],
        expect: Expect::Answer { text: OPENAI_TEXT, usage: (1117, 46) },
        ..BASE
    },
    Row {
        name: "anthropic -> openai, stream",
        client: Client::Anthropic,
        stream: true,
        answer: OPENAI_SSE,
        upstream_body: &[("/stream", "true"), ("/stream_options/include_usage", "true")],
        expect: Expect::Answer { text: OPENAI_STREAM_TEXT, usage: (9, 12) },
        ..BASE
    },
    Row {
        name: "anthropic -> azure",
        client: Client::Anthropic,
        model: "azure",
        upstream_headers: &[
            (":path", "/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21"),
            ("api-key", "sk-upstream"),
        ],
        expect: Expect::Answer { text: OPENAI_TEXT, usage: (1117, 46) },
        ..BASE
    },
    Row {
        name: "anthropic -> vllm, stream",
        client: Client::Anthropic,
        model: "local",
        stream: true,
        answer: OPENAI_SSE,
        upstream_headers: &[(":path", "/api/v1/chat/completions")],
        upstream_body: &[("/model", r#""llama-3.1-8b""#), ("/max_tokens", "100")],
        expect: Expect::Answer { text: OPENAI_STREAM_TEXT, usage: (9, 12) },
        ..BASE
    },
    Row {
        name: "anthropic -> gemini",
        client: Client::Anthropic,
        model: "gemini",
        answer: GEMINI_JSON,
        upstream_headers: &[
            (":path", "/v1beta/models/gemini-2.0-flash:generateContent"),
            ("x-goog-api-key", "sk-upstream"),
        ],
        upstream_body: &[("/contents/0/parts/0/text", r#""Say hi""#)],
        expect: Expect::Answer { text: GEMINI_TEXT, usage: (8, 19) },
        ..BASE
    },
    Row {
        name: "anthropic -> gemini, stream",
        client: Client::Anthropic,
        model: "gemini",
        stream: true,
        answer: GEMINI_SSE,
        upstream_headers: &[(":path", "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse")],
        expect: Expect::Answer { text: GEMINI_STREAM_TEXT, usage: (1, 9) },
        ..BASE
    },
    Row {
        name: "anthropic -> bedrock",
        client: Client::Anthropic,
        model: "bedrock",
        answer: BEDROCK_JSON,
        upstream_headers: &[(":path", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse")],
        upstream_body: &[("/inferenceConfig/maxTokens", "100")],
        signed: true,
        expect: Expect::Answer { text: BEDROCK_TEXT, usage: (125, 60) },
        ..BASE
    },
    Row {
        name: "anthropic -> bedrock, stream",
        client: Client::Anthropic,
        model: "bedrock",
        stream: true,
        answer: BEDROCK_STREAM,
        upstream_headers: &[(":path", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream")],
        signed: true,
        expect: Expect::Answer { text: BEDROCK_STREAM_TEXT, usage: (47, 20) },
        ..BASE
    },
    // ------------------------------------------------------------ Responses API client
    Row {
        name: "responses -> azure (translated to chat completions)",
        client: Client::Responses,
        model: "azure",
        upstream_headers: &[(":path", "/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21")],
        upstream_body: &[("/messages/0/content", r#""Say hi""#), ("/max_completion_tokens", "100")],
        expect: Expect::Answer { text: OPENAI_TEXT, usage: (1117, 46) },
        ..BASE
    },
    Row {
        name: "responses -> anthropic, stream",
        client: Client::Responses,
        model: "claude",
        stream: true,
        answer: ANTHROPIC_SSE,
        upstream_headers: &[(":path", "/v1/messages")],
        upstream_body: &[("/max_tokens", "100"), ("/stream", "true")],
        expect: Expect::Answer { text: ANTHROPIC_STREAM_TEXT, usage: (11, 6) },
        ..BASE
    },
    Row {
        name: "responses -> gemini",
        client: Client::Responses,
        model: "gemini",
        answer: GEMINI_JSON,
        upstream_body: &[("/contents/0/parts/0/text", r#""Say hi""#)],
        expect: Expect::Answer { text: GEMINI_TEXT, usage: (8, 19) },
        ..BASE
    },
    Row {
        name: "responses -> bedrock, stream",
        client: Client::Responses,
        model: "bedrock",
        stream: true,
        answer: BEDROCK_STREAM,
        upstream_headers: &[(":path", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream")],
        signed: true,
        expect: Expect::Answer { text: BEDROCK_STREAM_TEXT, usage: (47, 20) },
        ..BASE
    },
    // ------------------------------------------------------------ provider errors
    Row {
        name: "openai -> openai refuses the gateway's key (401): a 502 that does not quote it",
        answer: (401, "application/json", "openai/error_invalid_api_key.json"),
        status: 502,
        expect: Expect::Error {
            error_type: "server_error",
            message_has: "rejected the gateway's credentials (HTTP 401)",
        },
        ..BASE
    },
    Row {
        name: "anthropic -> gemini refuses the gateway's key (403)",
        client: Client::Anthropic,
        model: "gemini",
        answer: (403, "application/json", "gemini/error_api_key_invalid.json"),
        status: 502,
        expect: Expect::Error { error_type: "api_error", message_has: "rejected the gateway's credentials (HTTP 403)" },
        ..BASE
    },
    Row {
        name: "openai -> gemini rate-limited (429), translated",
        model: "gemini",
        answer: (429, "application/json", "gemini/error_resource_exhausted.json"),
        status: 429,
        expect: Expect::Error { error_type: "rate_limit_error", message_has: "You exceeded your current quota" },
        ..BASE
    },
    Row {
        name: "anthropic -> bedrock throttled (429), translated",
        client: Client::Anthropic,
        model: "bedrock",
        answer: (429, "application/json", "bedrock/error_throttling.json"),
        signed: true,
        status: 429,
        expect: Expect::Error { error_type: "rate_limit_error", message_has: "" },
        ..BASE
    },
    Row {
        name: "anthropic -> anthropic overloaded (529), passed through",
        client: Client::Anthropic,
        model: "claude",
        answer: (529, "application/json", "anthropic/error_overloaded.json"),
        status: 529,
        expect: Expect::Error { error_type: "overloaded_error", message_has: "Overloaded" },
        ..BASE
    },
    Row {
        name: "openai -> anthropic HTML error page (502): JSON in the client's shape",
        model: "claude",
        answer: (502, "text/html", "anthropic/error_502.html"),
        status: 502,
        expect: Expect::Error { error_type: "server_error", message_has: "a non-JSON body" },
        ..BASE
    },
    // ------------------------------------------------------------ forced templates
    Row {
        name: "openai -> openai, forced template",
        model: "forced",
        upstream_body: &[("/messages/0/role", r#""system""#), ("/messages/0/content", r#""Answer like a pirate.""#)],
        expect: Expect::Answer { text: OPENAI_TEXT, usage: (1117, 46) },
        template: Some(("house-style", "a")),
        prompts: true,
        ..BASE
    },
    Row {
        name: "anthropic -> anthropic, forced template, stream",
        client: Client::Anthropic,
        model: "forced-claude",
        stream: true,
        answer: ANTHROPIC_SSE,
        upstream_body: &[("/system", r#""Answer like a pirate.""#), ("/messages/0/content/0/text", r#""Say hi""#)],
        expect: Expect::Answer { text: ANTHROPIC_STREAM_TEXT, usage: (11, 6) },
        template: Some(("house-style", "a")),
        prompts: true,
        ..BASE
    },
    // ------------------------------------------------------------ prompt API
    Row {
        name: "prompt api -> openai",
        client: Client::PromptApi,
        upstream_headers: &[(":path", "/v1/chat/completions"), ("x-envoy-original-path", "/v1/prompts/summarize")],
        upstream_body: &[("/model", r#""gpt-4o-mini""#), ("/messages/0/content", r#""Summarize: Envoy is a proxy.""#)],
        expect: Expect::Answer { text: OPENAI_TEXT, usage: (1117, 46) },
        template: Some(("summarize", "1")),
        prompts: true,
        ..BASE
    },
    Row {
        name: "prompt api -> openai, stream",
        client: Client::PromptApi,
        stream: true,
        answer: OPENAI_SSE,
        upstream_body: &[("/stream", "true"), ("/stream_options/include_usage", "true")],
        expect: Expect::Answer { text: OPENAI_STREAM_TEXT, usage: (9, 12) },
        template: Some(("summarize", "1")),
        prompts: true,
        ..BASE
    },
];

/// The request the client sends, in its API.
fn request_body(client: Client, model: &str, stream: bool) -> Value {
    match client {
        Client::OpenAi => json!({"model": model, "messages": [{"role": "user", "content": "Say hi"}],
                                 "max_tokens": 100, "stream": stream}),
        Client::Anthropic => json!({"model": model, "max_tokens": 100, "stream": stream,
                                    "messages": [{"role": "user", "content": "Say hi"}]}),
        Client::Responses => json!({"model": model, "input": "Say hi", "max_output_tokens": 100, "stream": stream}),
        Client::PromptApi => json!({"text": "Envoy is a proxy.", "stream": stream}),
    }
}

/// The request headers, as the shell reads them (Envoy's json_to_metadata gives the body's
/// `model` and `stream`).
fn request_head<'a>(client: Client, model: &'a str, stream: bool, key: &'a str) -> RequestHead<'a> {
    let head = RequestHead { method: "POST", body_stream: stream, ..RequestHead::default() };
    match client {
        Client::OpenAi => {
            RequestHead { path: "/v1/chat/completions", body_model: Some(model), authorization: Some(key), ..head }
        }
        Client::Anthropic => RequestHead {
            path: "/v1/messages",
            body_model: Some(model),
            x_api_key: Some(key.trim_start_matches("Bearer ")),
            anthropic_version: true,
            ..head
        },
        Client::Responses => {
            RequestHead { path: "/v1/responses", body_model: Some(model), authorization: Some(key), ..head }
        }
        Client::PromptApi => RequestHead { path: "/v1/prompts/summarize", authorization: Some(key), ..head },
    }
}

fn fixture(path: &str) -> Vec<u8> {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Everything an exchange produced, step by step.
struct Run {
    request_ops: Vec<HeaderOp>,
    upstream_body: Value,
    deferred_headers: Vec<(String, String)>,
    response_ops: Vec<HeaderOp>,
    client_body: Vec<u8>,
    record: Record,
}

/// Drives one row through the five steps, the answer fed in 17-byte chunks.
fn run(gw: &Gateway, row: &Row) -> Run {
    let store = MemoryStore::new();
    let head = request_head(row.client, row.model, row.stream, "Bearer sk-alice");
    let (mut exchange, action) = gw.on_request_headers(&head, 0, NOW_MS);
    let RequestAction::Forward(request_ops) = action else { panic!("{}: refused at headers: {action:?}", row.name) };
    assert!(exchange.awaits_body(), "{}: nothing may leave before the body is read", row.name);
    let body = request_body(row.client, row.model, row.stream).to_string();
    let upstream = match exchange.on_request_body(body.as_bytes(), NOW_MS, gw.quota(&store), gw.prompts()) {
        BodyAction::Replace(bytes) => bytes,
        other => panic!("{}: the body was not sent: {other:?}", row.name),
    };
    let upstream_body = serde_json::from_slice(&upstream).unwrap();
    let deferred_headers = exchange.deferred_headers().to_vec();
    let (status, content_type, file) = row.answer;
    let mut response_ops = exchange.on_response_headers(status, Some(content_type));
    response_ops.extend(exchange.budget_headers(NOW_MS + 5));
    let client_body = feed(&mut exchange, &fixture(file), 17);
    let record = exchange.finish(NOW_MS + 40, gw.quota(&store)).unwrap();
    assert!(exchange.finish(NOW_MS + 41, gw.quota(&store)).is_none(), "{}: one record", row.name);
    Run { request_ops, upstream_body, deferred_headers, response_ops, client_body, record }
}

/// The response body in `size`-byte chunks; what the client receives.
fn feed(exchange: &mut Exchange, body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let chunks: Vec<&[u8]> = body.chunks(size).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let end = i + 1 == chunks.len();
        match exchange.on_response_body(chunk, end, NOW_MS + 10 + i as u64) {
            BodyAction::Replace(bytes) => out.extend(bytes),
            BodyAction::Unchanged => out.extend_from_slice(chunk),
            BodyAction::Reply(reply) => panic!("a reply in the response body: {reply:?}"),
        }
    }
    out
}

fn header<'a>(ops: &'a [HeaderOp], name: &str) -> Option<&'a str> {
    ops.iter().rev().find_map(|op| match op {
        HeaderOp::Set(n, v) if n == name => Some(v.as_str()),
        _ => None,
    })
}

/// The `data:` payloads of an SSE body, as JSON (`[DONE]` as the string "[DONE]").
fn sse_data(body: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(body).unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| serde_json::from_str(data.trim()).unwrap_or_else(|_| Value::String(data.trim().to_string())))
        .collect()
}

/// The answer's text as the client reads it from its API's shape.
fn client_text(client: Client, stream: bool, body: &[u8]) -> String {
    if !stream {
        let value: Value = serde_json::from_slice(body).unwrap();
        let text = match client {
            Client::OpenAi => &value["choices"][0]["message"]["content"],
            Client::Anthropic => &value["content"][0]["text"],
            Client::Responses => &value["output"][0]["content"][0]["text"],
            Client::PromptApi => &value["output"],
        };
        return text.as_str().unwrap_or_else(|| panic!("no text in {value}")).to_string();
    }
    let events = sse_data(body);
    let delta = |event: &Value| -> Option<String> {
        let text = match client {
            Client::OpenAi => &event["choices"][0]["delta"]["content"],
            Client::Anthropic => &event["delta"]["text"],
            Client::Responses if event["type"] == "response.output_text.delta" => &event["delta"],
            Client::Responses => &Value::Null,
            Client::PromptApi => &event["delta"],
        };
        text.as_str().map(str::to_string)
    };
    events.iter().filter_map(delta).collect()
}

/// The output tokens the client is told of, where its API tells them: `None` for an OpenAI
/// stream whose client did not ask for usage (`stream_options.include_usage`).
fn client_output_tokens(client: Client, stream: bool, body: &[u8]) -> Option<u64> {
    if !stream {
        let value: Value = serde_json::from_slice(body).unwrap();
        let usage = &value["usage"];
        return match client {
            Client::OpenAi => usage["completion_tokens"].as_u64(),
            Client::Anthropic | Client::Responses | Client::PromptApi => usage["output_tokens"].as_u64(),
        };
    }
    let events = sse_data(body);
    match client {
        Client::OpenAi => {
            assert!(events.iter().all(|e| e["usage"].is_null()), "usage the client did not ask for");
            None
        }
        Client::Anthropic => {
            events.iter().rev().find(|e| e["type"] == "message_delta")?["usage"]["output_tokens"].as_u64()
        }
        Client::Responses => {
            let completed = events.iter().find(|e| e["type"] == "response.completed")?;
            completed["response"]["usage"]["output_tokens"].as_u64()
        }
        Client::PromptApi => events.last()?["usage"]["output_tokens"].as_u64(),
    }
}

/// The stream ends the way the client's API ends it.
fn assert_stream_closed(row: &Row, body: &[u8]) {
    let events = sse_data(body);
    let last = events.last().unwrap_or_else(|| panic!("{}: an empty stream", row.name));
    match row.client {
        Client::OpenAi => assert_eq!(last, "[DONE]", "{}", row.name),
        Client::Anthropic => assert_eq!(last["type"], "message_stop", "{}", row.name),
        Client::Responses => assert_eq!(last["type"], "response.completed", "{}", row.name),
        Client::PromptApi => assert_eq!(last["output_done"], true, "{}", row.name),
    }
}

fn check(gw: &Gateway, row: &Row, run: &Run) {
    let name = row.name;
    // Upstream: the client's credential never leaves; the provider's headers are set.
    assert_eq!(header(&run.request_ops, "authorization").filter(|v| v.contains("sk-alice")), None, "{name}");
    assert!(run.request_ops.contains(&HeaderOp::Remove("x-api-key".to_string())), "{name}");
    for (header_name, value) in row.upstream_headers {
        assert_eq!(header(&run.request_ops, header_name), Some(*value), "{name}: upstream header {header_name}");
    }
    for (pointer, value) in row.upstream_body {
        let expected: Value = serde_json::from_str(value).unwrap();
        assert_eq!(run.upstream_body.pointer(pointer), Some(&expected), "{name}: upstream body {pointer}");
    }
    check_signature(row, run);
    // An Anthropic SDK's own headers stay with Anthropic.
    let anthropic_headers_removed = run.request_ops.contains(&HeaderOp::Remove("anthropic-version".to_string()));
    let to_other_api = row.client == Client::Anthropic && provider_dialect(gw, row.model) != ProviderDialect::Anthropic;
    assert_eq!(anthropic_headers_removed, to_other_api, "{name}: anthropic-version");
    // The client: status, then text or error in its own shape.
    assert_eq!(run.record.status, row.status, "{name}: status");
    if row.status != row.answer.0 {
        assert_eq!(header(&run.response_ops, ":status"), Some(row.status.to_string().as_str()), "{name}");
    }
    match row.expect {
        Expect::Answer { text, usage } => {
            if row.stream {
                assert_eq!(
                    header(&run.response_ops, "content-type"),
                    Some("text/event-stream").filter(|_| translated(gw, row)),
                    "{name}"
                );
                assert_stream_closed(row, &run.client_body);
            }
            assert_eq!(client_text(row.client, row.stream, &run.client_body), text, "{name}: text");
            let told = client_output_tokens(row.client, row.stream, &run.client_body);
            let expected = Some(usage.1).filter(|_| !(row.stream && row.client == Client::OpenAi));
            assert_eq!(told, expected, "{name}: output tokens the client reads");
            let recorded = (run.record.usage.input, run.record.usage.output);
            assert_eq!(recorded, (Some(usage.0), Some(usage.1)), "{name}: usage");
            assert_eq!(run.record.usage.source, UsageSource::Reported, "{name}");
            // Settled at what was used: the budget left is the plan's minus the usage.
            let remaining = BIG_PLAN_TOKENS - usage.0 - usage.1;
            assert_eq!(run.record.budget_remaining, [("tpm".to_string(), remaining)], "{name}: budget");
        }
        Expect::Error { error_type, message_has } => {
            let body: Value = serde_json::from_slice(&run.client_body)
                .unwrap_or_else(|_| panic!("{name}: not JSON: {}", String::from_utf8_lossy(&run.client_body)));
            if row.client == Client::Anthropic {
                assert_eq!(body["type"], "error", "{name}: {body}");
            }
            assert_eq!(body["error"]["type"], error_type, "{name}: {body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(message_has), "{name}: {message}");
            // The gateway's key is never quoted back.
            assert!(!message.contains("sk-upstream"), "{name}: {message}");
            // Nothing was used: the reservation is released, not settled.
            assert_eq!(run.record.budget_remaining, [], "{name}: released");
            assert_eq!(run.record.usage.source, UsageSource::None, "{name}");
        }
    }
    let route = if row.client == Client::PromptApi { "gpt" } else { row.model };
    assert_eq!(run.record.model.as_deref(), Some(route), "{name}: record model");
    let target = &gw.config().lookup(route).unwrap().targets[0];
    assert_eq!(run.record.target_model.as_deref(), Some(target.model.as_str()), "{name}: record target");
    let provider = &gw.config().provider(target.provider).unwrap().name;
    assert_eq!(run.record.provider.as_ref(), Some(provider), "{name}: record provider");
    assert_eq!(run.record.consumer.as_deref(), Some("alice"), "{name}");
    assert_eq!(run.record.stream, row.stream, "{name}");
    let template = run.record.template.as_ref().map(|(t, v)| (t.as_str(), v.as_str()));
    assert_eq!(template, row.template, "{name}: template");
    assert_eq!(run.record.rejection, None, "{name}");
}

/// Bedrock's SigV4 signature covers the body, so it is computed after it and handed to
/// the header-applying instance (`Exchange::deferred_headers`); nothing else is deferred.
fn check_signature(row: &Row, run: &Run) {
    let name = row.name;
    if !row.signed {
        assert_eq!(run.deferred_headers, [], "{name}: nothing deferred");
        return;
    }
    let get = |key: &str| run.deferred_headers.iter().find(|(n, _)| n == key).map(|(_, v)| v.as_str());
    let amz_date = sigv4::amz_date(NOW_MS / 1000);
    assert_eq!(get("x-amz-date"), Some(amz_date.as_str()), "{name}");
    let scope = format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{}/us-east-1/bedrock/aws4_request", &amz_date[..8]);
    let authorization = get("authorization").unwrap_or_else(|| panic!("{name}: unsigned"));
    assert!(authorization.starts_with(&scope), "{name}: {authorization}");
    // No credential goes with the request headers themselves.
    assert_eq!(header(&run.request_ops, "authorization"), None, "{name}");
}

/// The kind of the provider behind `model`.
fn provider_kind(gw: &Gateway, model: &str) -> ProviderKind {
    let config = gw.config();
    let route = config.lookup(model).unwrap_or_else(|| panic!("no model {model} in config()"));
    config.provider(route.targets[0].provider).unwrap().kind
}

/// The API the provider behind `model` speaks.
fn provider_dialect(gw: &Gateway, model: &str) -> ProviderDialect {
    provider_kind(gw, model).dialect()
}

/// The client's API differs from the provider's: the answer is re-encoded (a prompt API's
/// always is: its shape is its own).
fn translated(gw: &Gateway, row: &Row) -> bool {
    let dialect = provider_dialect(gw, row.model);
    match row.client {
        Client::OpenAi => dialect != ProviderDialect::OpenAi,
        Client::Anthropic => dialect != ProviderDialect::Anthropic,
        // Only OpenAI itself serves the Responses API.
        Client::Responses => provider_kind(gw, row.model) != ProviderKind::OpenAi,
        Client::PromptApi => true,
    }
}

#[test]
fn every_row_through_the_whole_exchange() {
    let gateways = [gateway(false), gateway(true)];
    // Every row runs; the failures are listed together (each panic message names its row).
    let failed: Vec<&str> = ROWS
        .iter()
        .filter(|row| {
            let gw = &gateways[usize::from(row.prompts)];
            std::panic::catch_unwind(|| check(gw, row, &run(gw, row))).is_err()
        })
        .map(|row| row.name)
        .collect();
    assert!(failed.is_empty(), "{} of {} rows failed: {failed:#?}", failed.len(), ROWS.len());
}

/// The same answer, whatever the chunking: every split point of each stream fixture gives
/// the bytes the 17-byte feeding gave.
#[test]
fn streams_read_the_same_at_every_split() {
    let gateways = [gateway(false), gateway(true)];
    for row in ROWS.iter().filter(|r| r.stream && r.answer.0 == 200) {
        let gw = &gateways[usize::from(row.prompts)];
        let reference = run(gw, row).client_body;
        let answer = fixture(row.answer.2);
        for split in (1..answer.len()).step_by(answer.len() / 12 + 1) {
            let mut exchange = start_row(gw, row);
            let (a, b) = answer.split_at(split);
            let mut out = Vec::new();
            for (chunk, end) in [(a, false), (b, true)] {
                match exchange.on_response_body(chunk, end, NOW_MS + 20) {
                    BodyAction::Replace(bytes) => out.extend(bytes),
                    BodyAction::Unchanged => out.extend_from_slice(chunk),
                    BodyAction::Reply(reply) => panic!("{reply:?}"),
                }
            }
            assert_eq!(out, reference, "{}: split at {split}", row.name);
        }
    }
}

/// An exchange of `row` up to its response headers.
fn start_row(gw: &Gateway, row: &Row) -> Exchange {
    let head = request_head(row.client, row.model, row.stream, "Bearer sk-alice");
    let (mut exchange, _) = gw.on_request_headers(&head, 0, NOW_MS);
    let body = request_body(row.client, row.model, row.stream).to_string();
    exchange.on_request_body(body.as_bytes(), NOW_MS, None, gw.prompts());
    exchange.on_response_headers(row.answer.0, Some(row.answer.1));
    exchange
}

/// A request the gateway refuses by itself: nothing reaches a provider.
struct Refusal {
    name: &'static str,
    client: Client,
    model: &'static str,
    /// The client's credential (`Bearer ...`; an Anthropic client sends the key alone).
    key: &'static str,
    status: u16,
    /// `error.type` and `error.code` (OpenAI's shape; Anthropic's has no code).
    error_type: &'static str,
    code: &'static str,
    /// The rejection reason in the record.
    reason: &'static str,
    /// Words the error message contains.
    message_has: &'static str,
}

const REFUSALS: &[Refusal] = &[
    Refusal {
        name: "401: an unknown key",
        client: Client::OpenAi,
        model: "gpt",
        key: "Bearer sk-mallory",
        status: 401,
        error_type: "invalid_request_error",
        code: "invalid_api_key",
        reason: "unauthorized",
        message_has: "Incorrect API key provided.",
    },
    Refusal {
        name: "401: an unknown key, Anthropic's shape",
        client: Client::Anthropic,
        model: "claude",
        key: "sk-mallory",
        status: 401,
        error_type: "authentication_error",
        code: "",
        reason: "unauthorized",
        message_has: "Incorrect API key provided.",
    },
    Refusal {
        name: "403: a model the consumer may not use",
        client: Client::OpenAi,
        model: "claude",
        key: "Bearer sk-carol",
        status: 403,
        error_type: "invalid_request_error",
        code: "model_not_allowed",
        reason: "forbidden",
        message_has: r#"Consumer "carol" is not allowed to use model `claude`."#,
    },
    Refusal {
        name: "403: a model the consumer may not use, Anthropic's shape",
        client: Client::Anthropic,
        model: "claude",
        key: "sk-carol",
        status: 403,
        error_type: "permission_error",
        code: "",
        reason: "forbidden",
        message_has: r#"Consumer "carol" is not allowed to use model `claude`."#,
    },
    Refusal {
        name: "429: over the plan's token budget",
        client: Client::OpenAi,
        model: "gpt",
        key: "Bearer sk-bob",
        status: 429,
        error_type: "rate_limit_error",
        code: "rate_limit_exceeded",
        reason: "over_budget",
        message_has: "Request too large for limit 'tpm' (5 tokens per minute).",
    },
    Refusal {
        name: "429: over the plan's token budget, Anthropic's shape",
        client: Client::Anthropic,
        model: "bedrock",
        key: "sk-bob",
        status: 429,
        error_type: "rate_limit_error",
        code: "",
        reason: "over_budget",
        message_has: "Request too large for limit 'tpm' (5 tokens per minute).",
    },
];

#[test]
fn the_gateway_refuses_in_the_clients_shape() {
    let gw = gateway(false);
    let failed: Vec<&str> = REFUSALS
        .iter()
        .filter(|refusal| std::panic::catch_unwind(|| check_refusal(&gw, refusal)).is_err())
        .map(|refusal| refusal.name)
        .collect();
    assert!(failed.is_empty(), "{} of {} refusals failed: {failed:#?}", failed.len(), REFUSALS.len());
}

fn check_refusal(gw: &Gateway, refusal: &Refusal) {
    let name = refusal.name;
    let store = MemoryStore::new();
    let head = request_head(refusal.client, refusal.model, false, refusal.key);
    let (mut exchange, action) = gw.on_request_headers(&head, 0, NOW_MS);
    // Identity and model permission are decided at the headers; the budget with the body.
    let reply = match action {
        RequestAction::Reply(reply) => reply,
        RequestAction::Forward(_) => {
            let body = request_body(refusal.client, refusal.model, false).to_string();
            match exchange.on_request_body(body.as_bytes(), NOW_MS, gw.quota(&store), gw.prompts()) {
                BodyAction::Reply(reply) => reply,
                other => panic!("{name}: the request was sent: {other:?}"),
            }
        }
    };
    assert_eq!(reply.status, refusal.status, "{name}");
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"]["type"], refusal.error_type, "{name}: {body}");
    if !refusal.code.is_empty() {
        assert_eq!(body["error"]["code"], refusal.code, "{name}: {body}");
    }
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(refusal.message_has), "{name}: {message}");
    assert!(!exchange.awaits_body(), "{name}: nothing waits to be sent");
    let record = exchange.finish(NOW_MS + 5, gw.quota(&store)).unwrap();
    assert_eq!(record.status, refusal.status, "{name}");
    assert_eq!(record.rejection.as_ref().map(|r| r.0), Some(refusal.reason), "{name}");
    assert_eq!(record.usage.source, UsageSource::None, "{name}");
}
