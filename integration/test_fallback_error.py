"""Fallback on a provider's error *code* (`fallback.on_error`), through real Envoy 1.40.

Envoy decides its retries on the response headers, before the body that names the error, so
a 400 "context length exceeded" cannot be one of Envoy's retries. The per-attempt instance
holds such an error (the downstream instance pauses the response headers), reads the code
once the body is complete and dispatches the request to the chain's next untried target
itself (`dispatch_http_call`, translated for that target, with its credential or SigV4
signature); the answer replaces the held error in the client's dialect and is settled once,
at the price of the target that answered.

The first target is an Anthropic-dialect provider on fault_upstream.py answering 400 in its
dialect ("prompt is too long"); the second an OpenAI-dialect one (the same server) answering
normally (11 input, 48 output tokens) or with OpenAI's `context_length_exceeded`.
"""

from __future__ import annotations

import concurrent.futures
import time

import anthropic
import openai
import pytest

import fault_upstream
import harness
from test_fallback import (ANSWER_COST, BEDROCK_MODEL, KEY, PRICE_FIRST, PRICE_OK, access_lines, ask, cost_metric,
                           fallback_template, next_access_line, spent)

TRIGGER = {"on_error": ["context_length_exceeded"]}
HOP_TIMEOUT_MS = 500


def plugin_config() -> dict:
    providers = {
        "first": {"kind": "anthropic", "cluster": "c_first", "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}},
        "second": {"kind": "openai", "cluster": "c_second", "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"}},
        "bedrock": {"kind": "bedrock", "cluster": "c_bedrock", "region": "us-east-1",
                    "auth": {"type": "aws-sigv4", "access_key_env": "TEST_AWS_ACCESS_KEY_ID",
                             "secret_key_env": "TEST_AWS_SECRET_ACCESS_KEY"}},
    }

    def chain(first: str, second: str, cluster: str = "chain", provider: str = "second", **extra) -> dict:
        return {"targets": [{"provider": "first", "model": first}, {"provider": provider, "model": second}],
                "fallback": {"cluster": cluster, **extra}}

    models = {
        "ctx": chain("context_length", "ok", **TRIGGER),
        "ctx-all-fail": chain("context_length", "context_length", **TRIGGER),
        # A 400 that names no trigger goes to the client as it is.
        "ctx-bad-request": chain("bad_request", "ok", **TRIGGER),
        # Without `on_error`, a context-length error is the client's answer.
        "ctx-no-trigger": chain("context_length", "ok"),
        # The hop's target stalls past the hop's timeout: the held error is the answer.
        "ctx-hop-stalls": chain("context_length", "stall", on_error=["context_length_exceeded"],
                                on_error_timeout_ms=HOP_TIMEOUT_MS),
        # The hop's target fails: its error is the last one.
        "ctx-hop-500": chain("context_length", "server_500", **TRIGGER),
        # An error body too large to hold is passed on as it comes.
        "ctx-huge-error": chain("huge_error", "ok", **TRIGGER),
        # The hop to Bedrock is SigV4-signed over its translated body (the fake verifies it).
        "ctx-bedrock": chain("context_length", BEDROCK_MODEL, cluster="chain_bedrock", provider="bedrock", **TRIGGER),
    }
    return {
        "providers": providers,
        "models": models,
        "consumers": {"fb": {"api_keys": [harness_sha(KEY)], "plan": "usd"}},
        "plans": {"usd": {"limits": [{"name": "monthly", "window": "month", "usd": "5.00"}]}},
        "prices": {"context_length": PRICE_FIRST, "bad_request": PRICE_FIRST,
                   "huge_error": PRICE_FIRST, "stall": PRICE_OK, "server_500": PRICE_OK, "ok": PRICE_OK, BEDROCK_MODEL: PRICE_OK},
    }


def harness_sha(key: str) -> str:
    import hashlib
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture(scope="module")
def fe(wasm_path, tmp_path_factory):
    server = fault_upstream.start(harness.free_port())
    workdir = tmp_path_factory.mktemp("fallback_error")
    bedrock = harness.start_fake(harness.free_port(), str(workdir / "fake-bedrock.log"))
    config = plugin_config()
    template = fallback_template(workdir, {"role": "attempt", "gateway": config}, bedrock_port=bedrock.port)
    factory = harness.GatewayFactory(server.server_address[1], wasm_path, workdir)
    gw = factory.start(config, template=str(template), concurrency=2)
    yield gw
    log = gw.log_text()
    factory.stop_all()
    bedrock.stop()
    server.shutdown()
    for bad in ("panicked", "Plugin configured to fail", "wasm vm crash", "Function: proxy_on_"):
        assert bad not in log, f"Envoy log shows a wasm failure ({bad!r}):\n{log[-4000:]}"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_context_length_error_falls_back_to_the_next_provider(fe, client, stream):
    """Anthropic says "prompt is too long" (400); OpenAI answers through the module's hop.
    The client gets OpenAI's answer in its own dialect with exact usage, charged once at
    the answering target's price."""
    ask(fe, "openai", "ctx", False)  # the budget gauge exists and is settled
    before_spent = spent(fe)
    before_cost = cost_metric(fe, gen_ai_request_model="ctx")
    before_fallbacks = fe.metric("llm_gateway_fallbacks", gen_ai_request_model="ctx") or 0.0
    seen = len(access_lines(fe, "ctx"))
    text, usage = ask(fe, client, "ctx", stream)
    assert text == fault_upstream.TEXT
    assert usage == {"input": fault_upstream.INPUT_TOKENS, "output": fault_upstream.OUTPUT_TOKENS}
    line = next_access_line(fe, "ctx", seen)
    assert "attempts=first/context_length:400:fallback,second/ok:200:ok " in line, line
    assert "fallbacks=1 " in line and "provider=second " in line and "target=ok " in line, line
    assert f"cost_usd_micros={ANSWER_COST} " in line, line
    assert cost_metric(fe, gen_ai_request_model="ctx") - before_cost == ANSWER_COST
    assert (fe.metric("llm_gateway_fallbacks", gen_ai_request_model="ctx") or 0) - before_fallbacks == 1
    assert fe.metric("llm_gateway_attempts", gen_ai_provider_name="first", gen_ai_target_model="context_length",
                     http_status_code="400", llm_reason="fallback") >= 1
    assert spent(fe) - before_spent == ANSWER_COST


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_every_target_too_short_gives_the_last_error_in_the_clients_dialect(fe, client, stream):
    ask(fe, "openai", "ctx", False)
    before = spent(fe)
    seen = len(access_lines(fe, "ctx-all-fail"))
    if client == "openai":
        with pytest.raises(openai.BadRequestError) as info:
            ask(fe, client, "ctx-all-fail", stream)
        body = info.value.response.json()
        message = body["error"]["message"]
    else:
        with pytest.raises(anthropic.BadRequestError) as info:
            ask(fe, client, "ctx-all-fail", stream)
        body = info.value.response.json()
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error", body
        message = body["error"]["message"]
    # The second target's (OpenAI's) error, not the first's "prompt is too long".
    assert message.startswith("This model's maximum context length is 128000 tokens"), body
    assert info.value.status_code == 400
    line = next_access_line(fe, "ctx-all-fail", seen)
    assert "attempts=first/context_length:400:fallback,second/context_length:400:error " in line, line
    assert "fallbacks=1 " in line and "cost_usd_micros=- " in line, line
    ask(fe, "openai", "ctx", False)
    assert spent(fe) - before == ANSWER_COST  # only the later request was charged


@pytest.mark.parametrize("model", ["ctx-bad-request", "ctx-no-trigger"])
@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_an_error_without_a_trigger_code_is_the_answer(fe, client, model):
    seen = len(access_lines(fe, model))
    error = openai.BadRequestError if client == "openai" else anthropic.BadRequestError
    with pytest.raises(error) as info:
        ask(fe, client, model, False)
    assert info.value.status_code == 400
    fault = model.removeprefix("ctx-").replace("-", "_") if model == "ctx-bad-request" else "context_length"
    line = next_access_line(fe, model, seen)
    assert f"attempts=first/{fault}:400:error " in line and "fallbacks=0 " in line, line


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_the_hop_to_bedrock_is_signed(fe, client, stream):
    """The hop is a callout: its SigV4 signature is computed over the translated body and
    sent with it (the fake Bedrock verifies it); its answer (JSON or eventstream) is
    translated to the client's dialect."""
    seen = len(access_lines(fe, "ctx-bedrock"))
    text, usage = ask(fe, client, "ctx-bedrock", stream)
    assert text == "echo: tell me about fallbacks"
    assert usage == {"input": 4 + 2, "output": len(text.split())}
    line = next_access_line(fe, "ctx-bedrock", seen)
    assert f"attempts=first/context_length:400:fallback,bedrock/{BEDROCK_MODEL}:200:ok " in line, line
    assert f"cost_usd_micros={6 * 1 + 5 * 2} " in line, line


@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_a_hop_is_bounded_by_its_timeout(fe, client):
    """The hop's target sends nothing for 3 s; after `on_error_timeout_ms` (0.5 s) Envoy ends
    the callout with its own 504, which is then the last error: the client gets it in its
    dialect (as when the last target of Envoy's retries times out)."""
    seen = len(access_lines(fe, "ctx-hop-stalls"))
    started = time.monotonic()
    error = openai.APIStatusError if client == "openai" else anthropic.APIStatusError
    with pytest.raises(error) as info:
        ask(fe, client, "ctx-hop-stalls", False)
    elapsed = time.monotonic() - started
    assert HOP_TIMEOUT_MS / 1000 <= elapsed < fault_upstream.STALL_SECONDS - 1, elapsed
    assert info.value.status_code == 504
    body = info.value.response.json()
    assert body["error"]["message"].startswith("llm-gateway: provider `second` failed with HTTP 504"), body
    if client == "anthropic":
        assert body["type"] == "error", body
    line = next_access_line(fe, "ctx-hop-stalls", seen)
    assert "attempts=first/context_length:400:fallback,second/stall:504:error " in line, line
    assert "cost_usd_micros=- " in line, line


@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_a_failing_hop_gives_its_error(fe, client):
    seen = len(access_lines(fe, "ctx-hop-500"))
    error = openai.InternalServerError if client == "openai" else anthropic.InternalServerError
    with pytest.raises(error) as info:
        ask(fe, client, "ctx-hop-500", True)
    assert info.value.status_code == 500
    assert info.value.response.json()["error"]["message"].startswith("The server had an error")
    line = next_access_line(fe, "ctx-hop-500", seen)
    assert "attempts=first/context_length:400:fallback,second/server_500:500:error " in line, line


def test_an_error_too_large_to_hold_passes_on(fe):
    seen = len(access_lines(fe, "ctx-huge-error"))
    with pytest.raises(anthropic.BadRequestError) as info:
        ask(fe, "anthropic", "ctx-huge-error", False)
    assert info.value.response.json()["error"]["message"].endswith("prompt is too long")
    line = next_access_line(fe, "ctx-huge-error", seen)
    assert "attempts=first/huge_error:400:error " in line and "fallbacks=0 " in line, line


def test_concurrent_hops_are_charged_once_each(fe):
    ask(fe, "openai", "ctx", False)
    before = spent(fe)
    jobs = [("openai" if i % 2 else "anthropic", "ctx", bool(i % 4 < 2)) for i in range(40)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda j: ask(fe, *j), jobs))
    assert all(text == fault_upstream.TEXT for text, _ in results)
    ask(fe, "openai", "ctx", False)  # settles after every concurrent request
    assert spent(fe) - before == ANSWER_COST * (len(jobs) + 1)


@pytest.fixture(scope="module")
def swapped(wasm_path, tmp_path_factory):
    """The same chain with the dialects swapped: the first target speaks OpenAI (its 400 is
    `code: context_length_exceeded`), the hop goes to an Anthropic-dialect target (its key
    header and `anthropic-version` set on the callout)."""
    server = fault_upstream.start(harness.free_port())
    workdir = tmp_path_factory.mktemp("fallback_error_swapped")
    config = plugin_config()
    config["providers"]["first"] = {"kind": "openai", "cluster": "c_first",
                                    "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"}}
    config["providers"]["second"] = {"kind": "anthropic", "cluster": "c_second",
                                     "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}}
    template = fallback_template(workdir, {"role": "attempt", "gateway": config})
    factory = harness.GatewayFactory(server.server_address[1], wasm_path, workdir)
    gw = factory.start(config, template=str(template), concurrency=2)
    yield gw
    factory.stop_all()
    server.shutdown()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_openai_context_length_falls_back_to_anthropic(swapped, client, stream):
    seen = len(access_lines(swapped, "ctx"))
    text, usage = ask(swapped, client, "ctx", stream)
    assert text == fault_upstream.TEXT
    assert usage == {"input": fault_upstream.INPUT_TOKENS, "output": fault_upstream.OUTPUT_TOKENS}
    line = next_access_line(swapped, "ctx", seen)
    assert "attempts=first/context_length:400:fallback,second/ok:200:ok " in line, line
    assert f"cost_usd_micros={ANSWER_COST} " in line, line
