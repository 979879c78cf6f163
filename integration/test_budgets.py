"""Consumers and budgets through real Envoy with 2 workers: identity, 401/403/429 in each
client's dialect, budgets that hold under concurrency, charges that equal reported usage."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import re
import time

import anthropic
import httpx
import openai
import pytest

from test_gateway import metric_value, wait_metric


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


PROVIDERS = {
    "fake": {"kind": "openai", "cluster": "fake_openai", "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"}},
    "claude": {"kind": "anthropic", "cluster": "fake_openai", "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}},
}
MODELS = {"q-gpt": {"provider": "fake", "model": "gpt-4o-mini"},
          "q-claude": {"provider": "claude", "model": "claude-sonnet-4-5"}}


def config(tokens_per_minute: int) -> dict:
    return {
        "providers": PROVIDERS,
        "models": MODELS,
        "consumers": {
            "alice": {"api_keys": [digest("sk-alice")], "plan": "small"},
            "bob": {"api_keys": [digest("sk-bob")], "plan": "small", "models": ["q-gpt"]},
        },
        "plans": {"small": {"limits": [{"name": "tpm", "window": "minute", "tokens": tokens_per_minute}]}},
        # Upper-bound estimates and clamping: the budget can never be overspent.
        "quota": {"clamp_max_tokens": True, "estimator": "upper-bound", "min_output_tokens": 1,
                  "default_max_output_tokens": 64},
    }


def oa(gw, key="sk-alice", **headers):
    return openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=key, max_retries=0, default_headers=headers or None)


MESSAGES = [{"role": "user", "content": "one two three"}]


def test_identity_401_and_403_in_each_dialect(shared_gateway, fake_requests):
    gw = shared_gateway(config(100_000))
    with pytest.raises(openai.AuthenticationError):
        oa(gw, key="sk-wrong").chat.completions.create(model="q-gpt", messages=MESSAGES)
    r = httpx.post(f"{gw.base_url}/v1/chat/completions", json={"model": "q-gpt", "messages": MESSAGES})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    with pytest.raises(anthropic.AuthenticationError) as err:
        anthropic.Anthropic(base_url=gw.base_url, api_key="sk-wrong", max_retries=0).messages.create(
            model="q-claude", max_tokens=10, messages=MESSAGES)
    assert err.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(openai.PermissionDeniedError):
        oa(gw, key="sk-bob").chat.completions.create(model="q-claude", messages=MESSAGES)
    assert fake_requests() == [], "refused requests never reach the provider"
    # The right key works, in both dialects, and the client's key never reaches the provider.
    assert oa(gw, key="sk-bob").chat.completions.create(model="q-gpt", messages=MESSAGES).choices
    msg = anthropic.Anthropic(base_url=gw.base_url, api_key="sk-alice", max_retries=0).messages.create(
        model="q-claude", max_tokens=10, messages=MESSAGES)
    assert msg.content[0].text == "echo: one two three"
    assert all("sk-alice" not in str(r["headers"]) and "sk-bob" not in str(r["headers"]) for r in fake_requests())


def test_429_carries_retry_after_and_rate_limit_headers(gateway):
    gw = gateway(config(200))
    raw = oa(gw).chat.completions.with_raw_response.create(model="q-gpt", messages=MESSAGES, max_tokens=5)
    assert raw.headers["x-ratelimit-limit-tokens"] == "200"
    remaining = int(raw.headers["x-ratelimit-remaining-tokens"])
    assert 0 <= remaining < 200
    assert re.fullmatch(r"\d+m\d+s|\d+s|\d+ms", raw.headers["x-ratelimit-reset-tokens"])
    statuses = []
    for _ in range(40):
        r = httpx.post(f"{gw.base_url}/v1/chat/completions", headers={"authorization": "Bearer sk-alice"},
                       json={"model": "q-gpt", "messages": MESSAGES, "max_tokens": 5})
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            assert int(r.headers["x-ratelimit-remaining-tokens"]) < 200
            assert r.json()["error"]["type"] == "rate_limit_error"
            break
    assert 429 in statuses, statuses


def test_remaining_budget_gauge_follows_settlement(gateway):
    budget = 10_000
    gw = gateway(config(budget))
    spent = 0
    for words in ("5", "12", "3"):
        r = oa(gw).chat.completions.create(model="q-gpt", messages=MESSAGES, extra_headers={"x-fake-words": words})
        spent += r.usage.prompt_tokens + r.usage.completion_tokens
        # One request at a time: the gauge is what remains after this one settled (set as the
        # response ends, so poll briefly).
        deadline = time.monotonic() + 5
        while True:
            gauge = metric_value(gw.prometheus(), "llm_gateway_budget_remaining", llm_consumer="alice", llm_limit="tpm")
            if gauge == budget - spent or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert gauge == budget - spent


def test_concurrent_requests_never_overspend_and_charges_equal_usage(gateway):
    budget = 400
    gw = gateway(config(budget))
    seen_usage = []

    def call(i):
        try:
            r = oa(gw).chat.completions.create(model="q-gpt", messages=MESSAGES,
                                               extra_headers={"x-fake-words": "30"})
            return ("ok", r.usage.prompt_tokens + r.usage.completion_tokens)
        except openai.RateLimitError:
            return ("429", 0)

    # The limit is per calendar minute: a run that crossed into the next minute would rightly
    # get a second 400 tokens, so it starts well inside one minute and must end in it.
    if time.time() % 60 > 40:
        time.sleep(60.5 - time.time() % 60)
    window = int(time.time() // 60)
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, range(60)))
    assert int(time.time() // 60) == window, "the requests must all fall in one minute window"
    admitted = [tokens for status, tokens in results if status == "ok"]
    assert admitted, "some requests must be admitted"
    assert len(admitted) < 60, "the budget must refuse some"
    total = sum(admitted)
    assert total <= budget, f"spent {total} of a {budget} token budget"
    # What the gateway charged (its exact counter) equals what the provider reported.
    text = gw.prometheus()
    charged = sum(metric_value(text, "gen_ai_client_token_count", llm_consumer="alice", gen_ai_token_type=t)
                  for t in ("input", "output"))
    assert charged == total
    assert metric_value(text, "gen_ai_server_requests", llm_consumer="alice", http_status_code="429") == 60 - len(admitted)


def test_client_that_disconnects_mid_stream_is_still_charged(gateway):
    gw = gateway(config(100_000))
    with httpx.stream("POST", f"{gw.base_url}/v1/chat/completions",
                      headers={"authorization": "Bearer sk-alice", "x-fake-words": "300",
                               "x-fake-chunk-delay-ms": "10"},
                      json={"model": "q-gpt", "stream": True, "max_tokens": 300, "messages": MESSAGES}) as r:
        got = 0
        for line in r.iter_lines():
            got += line.startswith("data: ")
            if got >= 20:
                break
    labels = dict(llm_consumer="alice", gen_ai_token_type="output", usage_source="estimated")
    assert wait_metric(gw, "gen_ai_client_token_count", 5, **labels) >= 5
    lines = gw.access_log_lines(min_lines=1)
    assert any("consumer=alice" in line for line in lines), lines


def test_exact_counting_needs_the_tiktoken_build(envoy_rejects):
    # The default module has no BPE tables: asking for exact counts fails at load, by name.
    bad = config(1000)
    bad["quota"] = {**bad["quota"], "estimator": "exact"}
    code, log = envoy_rejects(bad)
    assert code != 0
    assert 'quota.estimator: "exact" needs exact token counting' in log


def test_a_reservation_that_is_never_settled_lapses_after_its_ttl(gateway):
    """Item 24: a reservation is held at most `quota.reservation_ttl_secs` (a VM that reloads
    mid-request never settles it). A stream kept in flight past the TTL stands in for such a
    request: its hold lapses while it runs, through the host's shared data, and its usage is
    still charged when it ends."""
    cfg = config(0)
    # Each request reserves its whole body (upper-bound: a token per byte, ~150) plus 200.
    cfg["plans"] = {"small": {"limits": [{"name": "monthly", "window": "month", "tokens": 500}]}}
    cfg["quota"] = {"clamp_max_tokens": False, "estimator": "upper-bound", "reservation_ttl_secs": 2}
    gw = gateway(cfg)
    body = {"model": "q-gpt", "messages": MESSAGES, "max_tokens": 200}
    headers = {"authorization": "Bearer sk-alice"}
    streamed = []

    def slow_stream():
        with httpx.stream("POST", f"{gw.base_url}/v1/chat/completions", timeout=30,
                          headers={**headers, "x-fake-words": "8", "x-fake-chunk-delay-ms": "700"},
                          json={**body, "stream": True, "stream_options": {"include_usage": True}}) as r:
            streamed.append(r.status_code)
            for line in r.iter_lines():
                streamed.append(line)

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        running = pool.submit(slow_stream)
        deadline = started + 5
        while not streamed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert streamed and streamed[0] == 200, streamed
        # The stream holds 300+ of the 500 tokens: another request of that size is refused...
        held = httpx.post(f"{gw.base_url}/v1/chat/completions", headers=headers, json=body, timeout=10)
        assert held.status_code == 429, held.text
        # ...until the hold lapses (TTL 2 s, rounded up by at most half a second), stream still running.
        time.sleep(max(0.0, started + 3.2 - time.monotonic()))
        assert not running.done(), "the stream must still be in flight"
        after = httpx.post(f"{gw.base_url}/v1/chat/completions", headers=headers, json=body, timeout=10)
        assert after.status_code == 200, after.text
        running.result(timeout=30)
    assert "data: [DONE]" in streamed, streamed[-3:]
    usages = [json.loads(line[len("data: "):])["usage"] for line in streamed[1:]
              if line.startswith("data: {") and json.loads(line[len("data: "):]).get("usage")]
    assert usages, streamed
    spent = usages[-1]["total_tokens"] + after.json()["usage"]["total_tokens"]
    # Both answers were charged, the lapsed stream's too, and nothing stays held: what remains
    # of the month is the budget minus what the provider reported.
    text = gw.wait_for_metrics(lambda t: metric_value(t, "llm_gateway_budget_remaining", llm_consumer="alice",
                                                      llm_limit="monthly") == 500 - spent)
    assert metric_value(text, "llm_gateway_budget_remaining", llm_consumer="alice", llm_limit="monthly") == 500 - spent
