"""Embeddings for Gemini and Bedrock through real Envoy with the official `openai` SDK (issue 13,
"Gemini and Bedrock embeddings behind /v1/embeddings"): `client.embeddings.create` against the
fake Gemini (`batchEmbedContents`) and the fake Bedrock (`InvokeModel`, Titan and Cohere, SigV4
verified by the fake), the vectors back in OpenAI's shape (the SDK's default base64 and
`float`), usage reported or estimated, budgets held and settled, and what cannot be carried
refused with a 400 naming the field, nothing sent upstream."""

from __future__ import annotations

import hashlib
import math

import openai
import pytest

from fake_dialects._vectors import fake_vector
from test_gateway import wait_metric

CLIENT_KEY = "sk-embed-client"
PROVIDERS = {
    "ge": {"kind": "gemini", "cluster": "fake_openai", "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}},
    "br": {"kind": "bedrock", "cluster": "fake_openai", "region": "us-east-1",
           "auth": {"type": "aws-sigv4", "access_key_env": "TEST_AWS_ACCESS_KEY_ID",
                    "secret_key_env": "TEST_AWS_SECRET_ACCESS_KEY"}},
    "an": {"kind": "anthropic", "cluster": "fake_openai", "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}},
}
MODELS = {
    "e-gemini": ("ge", "gemini-embedding-001"),
    "e-titan": ("br", "amazon.titan-embed-text-v2:0"),
    "e-cohere": ("br", "cohere.embed-english-v3"),
    "e-cohere4": ("br", "us.cohere.embed-v4:0"),
    "e-bedrock-chat": ("br", "anthropic.claude-sonnet-4-5-20250929-v1:0"),
    "e-claude": ("an", "claude-sonnet-4-5"),
}
LIMIT = 1_000_000
CONFIG = {
    "providers": PROVIDERS,
    "models": {name: {"provider": p, "model": m} for name, (p, m) in MODELS.items()},
    "consumers": {"embedder": {"api_keys": [hashlib.sha256(CLIENT_KEY.encode()).hexdigest()], "plan": "p"}},
    "plans": {"p": {"limits": [{"name": "tpm", "window": "minute", "tokens": LIMIT}]}},
}


@pytest.fixture
def gw(shared_gateway):
    return shared_gateway(CONFIG)


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=CLIENT_KEY, max_retries=0)


def close(got, expected):
    """Vectors equal at f32 precision (base64 carries f32)."""
    assert len(got) == len(expected)
    assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(got, expected))


def test_gemini_embeddings_with_the_sdk_default_base64(gw, fake_requests):
    texts = ["What is the meaning of life?", "How does the brain work?"]
    fake_requests.clear()
    # The SDK asks for base64 unless told otherwise, and decodes it to floats.
    result = client(gw).embeddings.create(model="e-gemini", input=texts, dimensions=8)
    sent = fake_requests.last()
    assert sent["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent["body"] == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": t}]}, "outputDimensionality": 8}
        for t in texts]}
    assert [d.index for d in result.data] == [0, 1]
    for item, text in zip(result.data, texts):
        close(item.embedding, fake_vector(text, 8))
    # Gemini reports no tokens: the gateway's estimate (4 bytes a token), recorded as estimated.
    estimate = math.ceil(sum(len(t) for t in texts) / 4)
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (estimate, estimate)
    assert result.model == "gemini-embedding-001"
    labels = dict(gen_ai_request_model="e-gemini", gen_ai_operation_name="embeddings",
                  gen_ai_token_type="input", usage_source="estimated", llm_consumer="embedder")
    assert wait_metric(gw, "gen_ai_client_token_count", estimate, **labels) >= estimate


def test_titan_embeddings_signed_with_reported_usage_and_budget(gw, fake_requests):
    fake_requests.clear()
    raw = client(gw).embeddings.with_raw_response.create(
        model="e-titan", input="hello big world", dimensions=256, encoding_format="float")
    result = raw.parse()
    sent = fake_requests.last()
    # SigV4 over the translated body: the fake verified it (a bad signature is a 403 -> 502).
    assert sent["path"] == "/model/amazon.titan-embed-text-v2%3A0/invoke"
    assert sent["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert sent["body"] == {"inputText": "hello big world", "dimensions": 256}
    assert result.data[0].embedding == fake_vector("hello big world", 256)
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (3, 3)  # inputTextTokenCount
    # The request held budget like any embeddings request (the headers show the reservation).
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) < LIMIT
    labels = dict(gen_ai_request_model="e-titan", gen_ai_token_type="input", usage_source="reported")
    assert wait_metric(gw, "gen_ai_client_token_count", 3, **labels) >= 3


@pytest.mark.parametrize("model", ["e-cohere", "e-cohere4"])
def test_cohere_embeddings_count_bedrocks_token_header(gw, fake_requests, model):
    texts = ["hello world", "this is a test"]
    fake_requests.clear()
    result = client(gw).embeddings.create(model=model, input=texts)
    sent = fake_requests.last()
    assert sent["body"] == {"texts": texts, "input_type": "search_document"}
    size = 1024 if model == "e-cohere" else 1536
    for item, text in zip(result.data, texts):
        close(item.embedding, fake_vector(text, size))
    assert result.usage.prompt_tokens == 6  # X-Amzn-Bedrock-Input-Token-Count: words


@pytest.mark.parametrize("model, kwargs, param", [
    ("e-titan", {"input": ["one", "two"]}, "input"),            # Titan embeds one text per call
    ("e-gemini", {"input": [[1, 2, 3]]}, "input"),              # token ids
    ("e-cohere", {"input": "x", "user": "user-42"}, "user"),    # no field for it: not dropped
    ("e-cohere", {"input": "x", "dimensions": 256}, "dimensions"),  # v3 has a fixed size
    ("e-bedrock-chat", {"input": "x"}, "model"),                # not an embeddings model
    ("e-claude", {"input": "x"}, "model"),                      # Anthropic has no embeddings API
])
def test_what_cannot_be_carried_is_refused_naming_the_field(gw, fake_requests, model, kwargs, param):
    fake_requests.clear()
    with pytest.raises(openai.BadRequestError) as refused:
        client(gw).embeddings.create(model=model, **kwargs)
    assert refused.value.body["param"] == param, refused.value.body
    assert fake_requests() == [], "nothing reaches the provider"


def test_provider_errors_come_back_in_openai_shape(gw):
    with pytest.raises(openai.RateLimitError) as limited:
        client(gw).embeddings.create(model="e-gemini", input="x", extra_headers={"x-fake-status": "429"})
    assert "429" in limited.value.body["message"], limited.value.body
