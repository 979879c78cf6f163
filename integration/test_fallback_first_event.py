"""Fallback until a stream's first event, through real Envoy 1.40 (README "Fallback across
providers": a stream that dies before its first event).

With the module's watcher instance `{"role": "first-event"}` among the router's upstream
filters, after the attempt instance, the attempt holds a 200 stream's headers until the
watcher saw the first complete event: a reset or a stall before it is, for Envoy's router,
a reset or a per-try timeout before the response, which it retries on the next target.
"""

from __future__ import annotations

import hashlib

import pytest

import fault_upstream
import harness
from test_fallback import (ANSWER_COST, KEY, PRICE_FIRST, PRICE_OK, access_lines, ask, fallback_template,
                           next_access_line)

WATCHER = """\
              - name: llm_gateway_first_event
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
                  config:
                    name: llm_gateway_first_event
                    root_id: llm_gateway_first_event
                    vm_config: *llm_gateway_vm
                    configuration:
                      "@type": type.googleapis.com/google.protobuf.StringValue
                      value: '{"role": "first-event"}'
                    failure_policy: FAIL_RELOAD
"""
FIRST = ["dies_before_first_event", "stall_after_headers", "ok", "truncated"]


def plugin_config() -> dict:
    providers = {
        "first": {"kind": "anthropic", "cluster": "c_first", "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}},
        "second": {"kind": "openai", "cluster": "c_second", "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"}},
    }
    models = {f"fe-{mode}": {"targets": [{"provider": "first", "model": mode}, {"provider": "second", "model": "ok"}],
                             "fallback": {"cluster": "chain"}} for mode in FIRST}
    prices = {mode: PRICE_FIRST for mode in FIRST}
    prices["ok"] = PRICE_OK
    return {
        "providers": providers,
        "models": models,
        "consumers": {"fb": {"api_keys": [hashlib.sha256(KEY.encode()).hexdigest()], "plan": "usd"}},
        "plans": {"usd": {"limits": [{"name": "monthly", "window": "month", "usd": "5.00"}]}},
        "prices": prices,
    }


@pytest.fixture(scope="module")
def watched(wasm_path, tmp_path_factory):
    server = fault_upstream.start(harness.free_port())
    workdir = tmp_path_factory.mktemp("fallback_first_event")
    config = plugin_config()
    template = fallback_template(workdir, {"role": "attempt", "gateway": config})
    text = template.read_text()
    codec = "              - name: envoy.filters.http.upstream_codec\n"
    assert text.count(codec) == 1
    template.write_text(text.replace(codec, WATCHER + codec))
    factory = harness.GatewayFactory(server.server_address[1], wasm_path, workdir)
    gw = factory.start(config, template=str(template), concurrency=2)
    yield gw
    log = gw.log_text()
    factory.stop_all()
    server.shutdown()
    for bad in ("panicked", "Plugin configured to fail", "wasm vm crash", "Function: proxy_on_"):
        assert bad not in log, f"Envoy log shows a wasm failure ({bad!r}):\n{log[-4000:]}"


@pytest.mark.parametrize("client", ["openai", "anthropic"])
@pytest.mark.parametrize("fault", ["dies_before_first_event", "stall_after_headers"])
def test_a_stream_that_fails_before_its_first_event_falls_back(watched, fault, client):
    """200 headers, then a reset (or nothing past the 1 s per-try timeout) before any event:
    the next target answers the stream, in the client's dialect, charged at its price."""
    model = f"fe-{fault}"
    seen = len(access_lines(watched, model))
    text, usage = ask(watched, client, model, True)
    assert text == fault_upstream.TEXT
    assert usage == {"input": fault_upstream.INPUT_TOKENS, "output": fault_upstream.OUTPUT_TOKENS}
    line = next_access_line(watched, model, seen)
    assert f"attempts=first/{fault}:200:no_first_event,second/ok:200:ok " in line, line
    assert "fallbacks=1 " in line and f"cost_usd_micros={ANSWER_COST} " in line, line


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_a_healthy_stream_is_resumed_at_its_first_event(watched, client, stream):
    seen = len(access_lines(watched, "fe-ok"))
    text, usage = ask(watched, client, "fe-ok", stream)
    assert text == fault_upstream.TEXT
    assert usage == {"input": fault_upstream.INPUT_TOKENS, "output": fault_upstream.OUTPUT_TOKENS}
    line = next_access_line(watched, "fe-ok", seen)
    assert "attempts=first/ok:200:ok " in line and "fallbacks=0 " in line, line


def test_a_stream_cut_after_its_first_event_is_not_retried(watched):
    """Once an event reached the client's side, the stream is the answer: cut short, it ends
    with an error event in the client's dialect (as without the watcher)."""
    import httpx
    from test_faults import classify
    body = {"model": "fe-truncated", "max_tokens": 64, "messages": [{"role": "user", "content": "x"}], "stream": True}
    seen = len(access_lines(watched, "fe-truncated"))
    with httpx.stream("POST", f"{watched.base_url}/v1/messages", json=body, timeout=10,
                      headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"}) as r:
        status, content_type = r.status_code, r.headers.get("content-type", "")
        received = b"".join(r.iter_bytes())
    assert classify("anthropic", True, status, content_type, received) == "stream error event", received
    line = next_access_line(watched, "fe-truncated", seen)
    assert "attempts=first/truncated:200:ok " in line and "fallbacks=0 " in line, line


def test_concurrent_held_streams_each_resume_their_own_attempt(watched):
    """40 concurrent streams on both workers, half dying before their first event: each
    watcher resumes its own attempt (context ids are per VM), every client gets its answer."""
    import concurrent.futures
    jobs = [("openai" if i % 2 else "anthropic", "fe-dies_before_first_event" if i % 4 < 2 else "fe-ok")
            for i in range(40)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda j: ask(watched, j[0], j[1], True), jobs))
    assert all(text == fault_upstream.TEXT for text, _ in results)
    assert all(usage == {"input": fault_upstream.INPUT_TOKENS, "output": fault_upstream.OUTPUT_TOKENS}
               for _, usage in results)
