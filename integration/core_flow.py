"""A compact core flow of the gateway, run through any Envoy that carries the module (the
control-plane-shaped configs of test_mesh_delivery.py, each Envoy release of
test_envoy_versions.py): routing with the provider key, an OpenAI stream, an Anthropic SDK
message translated to an OpenAI provider, Bedrock signed by the second instance, an HTTP/2
request ending with trailers, a budget 429, and the metrics of all that on /stats/prometheus.
A handful of requests, so it stays cheap to run once per Envoy."""

from __future__ import annotations

import hashlib
import json
import time

import anthropic
import httpx
import openai

from h2client import h2_request
from test_gateway import metric_value, wait_metric

UPSTREAM_KEY = "sk-upstream-test-key"
ALICE = "sk-alice-mesh"
CAROL = "sk-carol-mesh"
MESSAGES = [{"role": "user", "content": "one two three"}]


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def config(target_model: str = "gpt-4o-mini", carol_tokens: int = 60) -> dict:
    """Alice has a daily budget far above what a test spends (a day window: no rollover resets
    it during a test); carol's is small, so a few requests reach her 429."""
    return {
        "providers": {
            "fake": {"kind": "openai", "cluster": "fake_openai",
                     "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"}},
            "br": {"kind": "bedrock", "cluster": "fake_openai", "region": "us-east-1",
                   "auth": {"type": "aws-sigv4", "access_key_env": "TEST_AWS_ACCESS_KEY_ID",
                            "secret_key_env": "TEST_AWS_SECRET_ACCESS_KEY"}},
        },
        "models": {
            "m-gpt": {"provider": "fake", "model": target_model},
            "m-bedrock": {"provider": "br", "model": "anthropic.claude-3-5-sonnet-20240620-v1:0"},
        },
        "consumers": {
            "alice": {"api_keys": [digest(ALICE)], "plan": "large"},
            "carol": {"api_keys": [digest(CAROL)], "plan": "tiny"},
        },
        "plans": {
            "large": {"limits": [{"name": "tpd", "window": "day", "tokens": 1_000_000}]},
            "tiny": {"limits": [{"name": "tpd", "window": "day", "tokens": carol_tokens}]},
        },
        "quota": {"clamp_max_tokens": True, "estimator": "upper-bound", "min_output_tokens": 1,
                  "default_max_output_tokens": 16},
    }


def openai_client(gw, key: str = ALICE) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=key, max_retries=0)


def chat_ok(gw, text: str = "one two three", key: str = ALICE, **headers) -> str:
    """One chat completion through the SDK; returns the model the provider answered with."""
    reply = openai_client(gw, key).chat.completions.create(
        model="m-gpt", messages=[{"role": "user", "content": text}], extra_headers=headers or None)
    assert reply.choices[0].message.content == f"echo: {text}"
    return reply.model


def stream_text(gw, text: str = "stream me please", **headers) -> tuple[str, str]:
    """(joined text, model) of a streamed chat completion through the SDK."""
    pieces, model = [], ""
    with openai_client(gw).chat.completions.create(
            model="m-gpt", messages=[{"role": "user", "content": text}], stream=True,
            extra_headers=headers or None) as stream:
        for chunk in stream:
            model = chunk.model or model
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
    return "".join(pieces), model


def carol_until_429(gw, attempts: int = 20) -> tuple[httpx.Response, int]:
    """Carol spends her tiny budget: (the 429, how many were admitted before it); fails if no
    429 comes."""
    statuses = []
    for _ in range(attempts):
        r = httpx.post(f"{gw.base_url}/v1/chat/completions", timeout=20,
                       headers={"authorization": f"Bearer {CAROL}"},
                       json={"model": "m-gpt", "messages": MESSAGES, "max_tokens": 5})
        statuses.append(r.status_code)
        if r.status_code == 429:
            return r, len(statuses) - 1
        assert r.status_code == 200, (r.status_code, r.text)
    raise AssertionError(f"no 429 for carol after {attempts} requests: {statuses}")


def run(gw, fake_requests) -> None:
    """The core flow; `fake_requests` is the conftest fixture (recorded upstream requests)."""
    fake_requests.clear()
    # Routing: the provider key replaces the client's, the body names the target model.
    assert chat_ok(gw) == "gpt-4o-mini"
    seen = fake_requests.last()
    assert seen["path"] == "/v1/chat/completions" and seen["body"]["model"] == "gpt-4o-mini"
    assert seen["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert ALICE not in json.dumps(seen["headers"])

    # An OpenAI stream, whole.
    text, model = stream_text(gw)
    assert (text, model) == ("echo: stream me please", "gpt-4o-mini")

    # The Anthropic SDK, translated to the OpenAI provider and back.
    msg = anthropic.Anthropic(base_url=gw.base_url, api_key=ALICE, max_retries=0).messages.create(
        model="m-gpt", max_tokens=20, messages=MESSAGES)
    assert msg.content[0].text == "echo: one two three" and msg.usage.output_tokens == 4
    assert fake_requests.last()["path"] == "/v1/chat/completions"

    # Bedrock: the body translated, SigV4 computed by the module, applied by the signer
    # instance after the buffer filter (the fake verifies the signature).
    reply = openai_client(gw).chat.completions.create(model="m-bedrock", messages=MESSAGES)
    assert reply.choices[0].message.content == "echo: one two three"
    bedrock = fake_requests.last()
    assert bedrock["path"].endswith("/converse")
    assert bedrock["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 ")

    # HTTP/2, the body in small frames, ended by a trailers frame.
    body = json.dumps({"model": "m-gpt", "messages": [{"role": "user", "content": "h2 trailers"}]})
    resp = h2_request(gw.port, "POST", "/v1/chat/completions",
                      {"content-type": "application/json", "authorization": f"Bearer {ALICE}"},
                      body.encode(), chunk=7, trailers={"x-trailer": "1"})
    assert resp.status == 200, resp.body
    assert resp.json()["choices"][0]["message"]["content"] == "echo: h2 trailers"

    # A budget 429 in the client's shape, never forwarded.
    before = len(fake_requests())
    refused, admitted = carol_until_429(gw)
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert int(refused.headers["retry-after"]) >= 1
    assert len(fake_requests()) == before + admitted, "the refused request reached the provider"

    # Metrics, with the labels the bootstrap's stats_tags extract.
    text = gw.prometheus()
    assert metric_value(text, "gen_ai_server_requests", gen_ai_request_model="m-gpt",
                        http_status_code="200") >= 4
    assert metric_value(text, "gen_ai_server_requests", gen_ai_request_model="m-bedrock",
                        http_status_code="200") >= 1
    assert metric_value(text, "gen_ai_server_requests", http_status_code="429") >= 1
    assert metric_value(text, "gen_ai_client_token_count", gen_ai_request_model="m-gpt",
                        gen_ai_token_type="output") > 0
    assert wait_metric(gw, "gen_ai_server_time_to_first_token_count", 1,
                       gen_ai_request_model="m-gpt") >= 1
    deadline = time.monotonic() + 5
    while metric_value(gw.prometheus(), "llm_gateway_budget_remaining", llm_consumer="carol") >= 60:
        assert time.monotonic() < deadline, "carol's remaining-budget gauge never went down"
        time.sleep(0.1)
