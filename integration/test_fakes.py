"""What the Envoy tests take on trust from the fakes, checked on the fakes alone (no Envoy).

An Envoy test passes when the fake accepts what the module sent, so a fake that accepted
anything would make it prove nothing. These cases keep each fake refusing, like the real
API, what the module could get wrong: the provider credential in the wrong place or
missing, a SigV4 signature that does not cover the bytes sent (checked against the Rust
signer's golden request, tests/sigv4.rs), and the rules across messages that a translation
can break (tool calls and their results, roles, members an API does not know). The fakes'
answers need no test of their own: the Envoy tests assert them (the echo arithmetic), and
recorded answers are replayed byte for byte (test_replay.py).
"""

from __future__ import annotations

import json

import httpx
import pytest

import harness
from fake_dialects import anthropic, bedrock, gemini
from fake_provider import ApiError, validate_chat

FIXTURES = harness.REPO_ROOT / "tests" / "fixtures"
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def client(fake, fake_requests):
    with httpx.Client(base_url=fake.base_url, timeout=10) as c:
        yield c


@pytest.mark.parametrize(("path", "headers", "body", "status"), [
    ("/v1/chat/completions", {"x-api-key": "k"}, {"model": "m", "messages": USER}, 401),
    ("/openai/deployments/d/chat/completions?api-version=2024-10-21", {"authorization": "Bearer k"},
     {"messages": USER}, 401),
    ("/v1/messages", {"authorization": "Bearer k", "anthropic-version": "2023-06-01"},
     {"model": "m", "max_tokens": 5, "messages": USER}, 401),
    ("/v1beta/models/g:generateContent", {"authorization": "Bearer k"},
     {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, 403),
    ("/model/m/converse", {"authorization": "Bearer k"},
     {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}, 403),
], ids=["openai", "azure", "anthropic", "gemini", "bedrock"])
def test_each_fake_wants_its_own_credential(client, path, headers, body, status):
    assert client.post(path, headers=headers, json=body).status_code == status


def test_sigv4_is_verified_against_the_bytes_sent(client):
    signed = json.loads((FIXTURES / "bedrock/golden/sigv4_fake_request.json").read_text())
    headers = {**signed["headers"], "host": signed["signed_host"]}
    ok = client.post(signed["path"], headers=headers, content=signed["body"].encode())
    assert ok.status_code == 200, ok.text
    assert ok.json()["output"]["message"]["content"] == [{"text": "echo: signed by rust"}]
    tampered = client.post(signed["path"], headers=headers, content=signed["body"].replace("rust", "Rust").encode())
    assert tampered.status_code == 403
    assert tampered.headers["x-amzn-errortype"].startswith("InvalidSignatureException")
    # The model id segment once encoded instead of twice (the classic non-S3 mistake).
    once = client.post(signed["path"].replace("%3A", ":"), headers=headers, content=signed["body"].encode())
    assert once.status_code == 403


def anthropic_body(messages, **extra) -> dict:
    return {"model": "m", "max_tokens": 100, "messages": messages, **extra}


def bedrock_text(role: str, text: str) -> dict:
    return {"role": role, "content": [{"text": text}]}


TOOL_USE = {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]}
CALL = {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]}
ANSWER = {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}


@pytest.mark.parametrize(("validate", "body", "says"), [
    (validate_chat, {"model": "m", "messages": [{"role": "model", "content": "x"}]}, "Invalid value: 'model'"),
    (validate_chat, {"model": "m", "messages": USER, "stream_options": {"include_usage": True}}, "stream_options"),
    (anthropic.validate, anthropic_body([*USER, TOOL_USE, {"role": "user", "content": "no result"}]),
     "`tool_use` ids were found without `tool_result`"),
    (anthropic.validate, anthropic_body([{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t9", "content": "x"}]}]), "unexpected `tool_use_id`"),
    (anthropic.validate, anthropic_body(USER, seed=1), "seed: Extra inputs are not permitted"),
    (anthropic.validate, anthropic_body(USER, thinking={"type": "enabled", "budget_tokens": 4096}),
     "`max_tokens` must be greater than `thinking.budget_tokens`"),
    (gemini.validate, {"contents": [{"role": "user", "parts": [{"text": "x"}]}, CALL, ANSWER, ANSWER]},
     "number of function response parts"),
    (gemini.validate, {"contents": [{"role": "user", "parts": [{"text": "x"}]}],
                       "generationConfig": {"max_tokens": 5}}, 'Unknown name "max_tokens"'),
    (bedrock.validate, {"messages": [bedrock_text("user", "a"), {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]}, {"role": "user", "content": [
            {"toolResult": {"toolUseId": "t1", "content": [{"text": "r"}]}}]}]}, "toolConfig field must be defined"),
    (bedrock.validate, {"messages": [bedrock_text("user", "a"), bedrock_text("user", "b")]}, "must alternate"),
    (bedrock.validate, {"messages": [bedrock_text("user", " ")]}, "is blank"),
], ids=["openai-role", "openai-stream-options", "anthropic-unanswered-tool-use", "anthropic-stray-tool-result",
        "anthropic-unknown-member", "anthropic-thinking-budget", "gemini-function-responses",
        "gemini-unknown-member", "bedrock-tool-config", "bedrock-alternation", "bedrock-blank-text"])
def test_validators_refuse_what_a_translation_could_break(validate, body, says):
    errors = (ApiError, anthropic.AnthropicError, gemini.GeminiError, bedrock.BedrockError)
    with pytest.raises(errors) as refused:
        validate(body)
    assert says in str(refused.value)


def test_replay_serves_fixtures_only(client):
    headers = {"x-fake-replay": "anthropic/error_overloaded.json", "x-fake-replay-status": "529"}
    replayed = client.post("/v1/messages", headers=headers, json=anthropic_body(USER))
    assert replayed.status_code == 529
    assert replayed.content == (FIXTURES / "anthropic/error_overloaded.json").read_bytes()
    assert replayed.headers["content-type"] == "application/json"
    outside = client.post("/v1/messages", headers={"x-fake-replay": "../../Cargo.toml"}, json=anthropic_body(USER))
    assert outside.status_code == 404
    refused = client.post("/v1/messages", headers={"x-fake-replay": "anthropic/response_text.json"},
                          json=anthropic_body([*USER, TOOL_USE, {"role": "user", "content": "no result"}]))
    assert refused.status_code == 400 and "the API would refuse" in refused.text
