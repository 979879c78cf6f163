"""llm-gateway in real Envoy, driven by the official openai SDK, against the fake provider."""

from __future__ import annotations

import re
import time

import httpx
import openai
import pytest

UPSTREAM_KEY = "sk-upstream-test-key"
CLIENT_KEY = "sk-client-placeholder"

CONFIG = {
    "providers": {
        "fake": {
            "kind": "openai",
            "cluster": "fake_openai",
            "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"},
        },
        "compat": {
            "kind": "openai-compatible",
            "cluster": "fake_openai",
            "base_path": "/compat/v1",
            "authority": "compat.example",
            "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"},
        },
    },
    "models": {
        "test-gpt": {"provider": "fake", "model": "gpt-4o-mini", "aliases": ["test-alias"]},
        "test-compat": {"provider": "compat", "model": "mistral-small"},
        "test-split": {
            "targets": [
                {"provider": "fake", "model": "split-a", "weight": 1},
                {"provider": "fake", "model": "split-b", "weight": 1},
            ]
        },
    },
}


@pytest.fixture
def gw(shared_gateway):
    return shared_gateway(CONFIG)


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=CLIENT_KEY, max_retries=0)


def metric_value(text: str, name: str, **labels) -> float:
    """Sum of the samples of `name` whose labels include all of `labels`."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)\{(.*)\} (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def wait_metric(gw, name: str, at_least: float, **labels) -> float:
    """Histograms reach /stats/prometheus at the next stats flush: poll."""
    deadline = time.monotonic() + 10
    while True:
        value = metric_value(gw.prometheus(), name, **labels)
        if value >= at_least or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_chat_completion_is_routed_with_the_provider_key(gw, fake_requests):
    reply = client(gw).chat.completions.create(
        model="test-gpt", messages=[{"role": "user", "content": "hello gateway"}]
    )
    assert reply.choices[0].message.content == "echo: hello gateway"
    assert reply.model == "gpt-4o-mini"
    # Fake provider's documented arithmetic: 2 words + 2 per message; 3 reply words.
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (4, 3)
    seen = fake_requests.last()
    assert seen["path"] == "/v1/chat/completions"
    assert seen["body"]["model"] == "gpt-4o-mini"
    assert seen["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert CLIENT_KEY not in str(seen["headers"])
    assert "stream_options" not in seen["body"]


def test_alias_and_openai_compatible_provider(gw, fake_requests):
    client(gw).chat.completions.create(model="test-alias", messages=[{"role": "user", "content": "a"}])
    assert fake_requests.last()["body"]["model"] == "gpt-4o-mini"
    client(gw).chat.completions.create(model="test-compat", messages=[{"role": "user", "content": "b"}])
    seen = fake_requests.last()
    assert seen["path"] == "/compat/v1/chat/completions"
    assert seen["body"]["model"] == "mistral-small"
    assert seen["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert seen["headers"]["host"] == "compat.example"


def test_stream_without_usage_looks_exactly_like_openai(gw, fake_requests):
    chunks = list(
        client(gw).chat.completions.create(
            model="test-gpt", stream=True, messages=[{"role": "user", "content": "one two three"}]
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks), "the usage-only chunk must not reach this client"
    assert fake_requests.last()["body"]["stream_options"] == {"include_usage": True}
    # On the wire too: no `usage` member at all, as OpenAI sends without include_usage.
    raw = httpx.post(
        f"{gw.base_url}/v1/chat/completions",
        json={"model": "test-gpt", "stream": True, "messages": [{"role": "user", "content": "x"}]},
    ).text
    assert '"usage"' not in raw
    assert raw.endswith("data: [DONE]\n\n")


def test_stream_with_usage_reports_it(gw, fake_requests):
    chunks = list(
        client(gw).chat.completions.create(
            model="test-gpt",
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "one two three"}],
        )
    )
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 4)
    assert fake_requests.last()["body"]["stream_options"] == {"include_usage": True}


def test_unknown_model_is_404_without_contacting_anyone(gw, fake_requests):
    with pytest.raises(openai.NotFoundError) as err:
        client(gw).chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "x"}])
    assert err.value.code == "model_not_found"
    assert "gpt-nope" in err.value.message
    assert fake_requests() == []


def test_model_in_a_header(gw, fake_requests):
    r = httpx.post(
        f"{gw.base_url}/v1/chat/completions",
        headers={"x-llm-model": "test-gpt"},
        json={"messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200, r.text
    seen = fake_requests.last()
    assert seen["body"]["model"] == "gpt-4o-mini"
    assert "x-llm-model" not in seen["headers"]


def test_bad_requests_get_openai_errors(gw, fake_requests):
    url = f"{gw.base_url}/v1/chat/completions"
    r = httpx.post(url, content=b'{"model": "test-gpt", "messages": [', headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(url, json={"messages": []})
    assert r.status_code == 400
    # OpenAI's own answer: "param" is null.
    assert r.json()["error"] == {"message": "you must provide a model parameter", "type": "invalid_request_error",
                                 "param": None, "code": None}
    r = httpx.post(f"{gw.base_url}/v1/files", json={"model": "test-gpt"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "unknown_url"
    assert fake_requests() == []


def test_provider_errors_reach_the_client(gw):
    c = client(gw).with_options(default_headers={"x-fake-status": "503"})
    with pytest.raises(openai.InternalServerError) as err:
        c.chat.completions.create(model="test-gpt", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 503
    text = gw.prometheus()
    assert metric_value(text, "gen_ai_server_requests", gen_ai_request_model="test-gpt", http_status_code="503") >= 1


def test_weighted_split_uses_both_targets(gw, fake_requests):
    c = client(gw)
    for _ in range(40):
        c.chat.completions.create(model="test-split", messages=[{"role": "user", "content": "x"}])
    models = [r["body"]["model"] for r in fake_requests()]
    assert len(models) == 40
    # 40 fair coin flips: both sides appear unless something is badly wrong (p = 2^-39).
    assert 0 < models.count("split-a") < 40
    text = gw.prometheus()
    for target in ("split-a", "split-b"):
        count = metric_value(text, "gen_ai_server_requests", gen_ai_request_model="test-split", gen_ai_target_model=target)
        assert count == models.count(target)


def test_metrics_and_access_log(gateway):
    gw = gateway(CONFIG)
    c = client(gw)
    c.chat.completions.create(model="test-gpt", messages=[{"role": "user", "content": "count me"}])
    list(c.chat.completions.create(model="test-gpt", stream=True, messages=[{"role": "user", "content": "and me"}]))
    labels = dict(gen_ai_provider_name="fake", gen_ai_request_model="test-gpt", gen_ai_target_model="gpt-4o-mini")
    text = gw.prometheus()
    assert metric_value(text, "gen_ai_server_requests", http_status_code="200", **labels) == 2
    # input: (2 words + 2) twice; output: "echo: count me" and "echo: and me" = 3 + 3.
    # Exact totals from the counter; the histogram's sum is Envoy's approximation.
    assert metric_value(text, "gen_ai_client_token_count", gen_ai_token_type="input", **labels) == 8
    assert metric_value(text, "gen_ai_client_token_count", gen_ai_token_type="output", **labels) == 6
    assert wait_metric(gw, "gen_ai_client_token_usage_count", 2, gen_ai_token_type="input", **labels) == 2
    assert metric_value(gw.prometheus(), "gen_ai_client_token_usage_sum", gen_ai_token_type="input", **labels) == pytest.approx(8, rel=0.05)
    assert wait_metric(gw, "gen_ai_server_request_duration_count", 2, **labels) == 2
    assert wait_metric(gw, "gen_ai_server_time_to_first_token_count", 1, **labels) == 1
    lines = gw.access_log_lines(min_lines=2)
    assert any("model=test-gpt provider=fake target=gpt-4o-mini input_tokens=4 output_tokens=3 total_tokens=7 usage=reported" in l for l in lines), lines


def test_abandoned_stream_is_still_counted(gateway):
    gw = gateway(CONFIG)
    headers = {"x-fake-words": "400", "x-fake-chunk-delay-ms": "10"}
    with httpx.stream(
        "POST",
        f"{gw.base_url}/v1/chat/completions",
        headers=headers,
        json={"model": "test-gpt", "stream": True, "messages": [{"role": "user", "content": "long"}]},
    ) as r:
        got = 0
        for line in r.iter_lines():
            got += line.startswith("data: ")
            if got >= 20:
                break
    # The client left after ~20 of 400 words: usage is an estimate of what was generated.
    labels = dict(gen_ai_request_model="test-gpt", gen_ai_token_type="output", usage_source="estimated")
    assert wait_metric(gw, "gen_ai_client_token_count", 5, **labels) >= 5
    output = metric_value(gw.prometheus(), "gen_ai_client_token_count", **labels)
    assert 5 <= output < 400


def test_bad_config_fails_with_its_path(envoy_rejects):
    bad = {
        "providers": CONFIG["providers"],
        "models": {"gpt": {"provider": "opnai", "model": "gpt-4o"}},
    }
    code, log = envoy_rejects(bad)
    assert code != 0
    assert 'models["gpt"].provider: no provider named "opnai"' in log
    code, log = envoy_rejects("{not json")
    assert code != 0
    assert "llm-gateway: invalid plugin configuration" in log


def test_embeddings_are_routed_and_metered(gw, fake_requests):
    result = client(gw).embeddings.create(model="test-gpt", input=["one two", "three"])
    assert len(result.data) == 2
    assert result.usage.prompt_tokens == 3
    seen = fake_requests.last()
    assert (seen["path"], seen["body"]["model"]) == ("/v1/embeddings", "gpt-4o-mini")
    labels = dict(gen_ai_operation_name="embeddings", gen_ai_request_model="test-gpt", gen_ai_token_type="input")
    assert metric_value(gw.prometheus(), "gen_ai_client_token_count", **labels) >= 3


def test_responses_api_passes_through_with_usage(gateway, fake_requests):
    gw = gateway(CONFIG)
    c = client(gw)
    response = c.responses.create(model="test-gpt", input="one two three")
    assert response.output_text == "echo: one two three"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (5, 4)
    assert fake_requests.last()["body"]["model"] == "gpt-4o-mini"
    with c.responses.stream(model="test-gpt", input="four five") as stream:
        final = stream.get_final_response()
    assert final.output_text == "echo: four five"
    labels = dict(gen_ai_operation_name="responses", gen_ai_request_model="test-gpt", usage_source="reported")
    text = gw.prometheus()
    # 5 + 4 input tokens, 4 + 3 output tokens over the two calls, read from the provider.
    assert metric_value(text, "gen_ai_client_token_count", gen_ai_token_type="input", **labels) == 9
    assert metric_value(text, "gen_ai_client_token_count", gen_ai_token_type="output", **labels) == 7


def test_models_are_listed(gw):
    ids = sorted(m.id for m in client(gw).models.list())
    assert ids == ["test-alias", "test-compat", "test-gpt", "test-split"]
