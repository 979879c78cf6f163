"""Skipping a target whose key cools down, on the *first* attempt, through Envoy 1.40.

The module cannot skip a target itself (a local reply or reset from the upstream filter ends
the client's request), and Envoy's `retry_host_predicate`s act on retries only. What works:
Envoy's outlier detection on the target's cluster, fed by the attempt. Outlier detection
counts 5xx, never a 429; so an attempt whose target has no key left after a 429 (its only
key, or every key of its pool cooling down) shows the router a 503 instead (the attempt is
retried: the client never sees it). With `outlier_detection: {consecutive_5xx: 1}` on the
target's cluster, Envoy ejects its endpoint for `base_ejection_time`, for every worker, and
the aggregate cluster sends first attempts to the next priority.
"""

from __future__ import annotations

import time

import pytest

import fault_upstream
import harness
from test_fallback import KEY, access_lines, ask, fallback_template, next_access_line

EJECTION = "outlier_detection: {consecutive_5xx: 1, interval: 30s, base_ejection_time: 30s, max_ejection_percent: 100}"


def plugin_config() -> dict:
    import hashlib
    providers = {
        # Two keys: the first 429 leaves one; the second leaves none.
        "first": {"kind": "anthropic", "cluster": "c_first",
                  "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY", "pool": ["TEST_POOL_KEY_B"]}},
        "second": {"kind": "openai", "cluster": "c_second", "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"}},
    }
    chain = {"targets": [{"provider": "first", "model": "rate_limited_429"}, {"provider": "second", "model": "ok"}],
             "fallback": {"cluster": "chain"}}
    return {
        "providers": providers,
        "models": {"skip-429": chain},
        "consumers": {"fb": {"api_keys": [hashlib.sha256(KEY.encode()).hexdigest()]}},
    }


@pytest.fixture(scope="module")
def skipping(wasm_path, tmp_path_factory):
    server = fault_upstream.start(harness.free_port())
    workdir = tmp_path_factory.mktemp("fallback_skip")
    config = plugin_config()
    template = fallback_template(workdir, {"role": "attempt", "gateway": config})
    text = template.read_text()
    anchor = "  - name: c_first\n    type: STATIC\n    connect_timeout: 1s\n"
    assert anchor in text
    text = text.replace(anchor, anchor + f"    {EJECTION}\n")
    env_anchor = "                      TEST_OPENAI_KEY: sk-upstream-test-key\n"
    assert env_anchor in text
    template.write_text(text.replace(env_anchor, env_anchor + "                      TEST_POOL_KEY_B: sk-pool-b\n"))
    factory = harness.GatewayFactory(server.server_address[1], wasm_path, workdir)
    gw = factory.start(config, template=str(template), concurrency=2)
    yield gw
    log = gw.log_text()
    factory.stop_all()
    server.shutdown()
    for bad in ("panicked", "Plugin configured to fail", "wasm vm crash", "Function: proxy_on_"):
        assert bad not in log, f"Envoy log shows a wasm failure ({bad!r}):\n{log[-4000:]}"


def ejections(gw) -> float:
    return gw.metric("envoy_cluster_outlier_detection_ejections_enforced_total", envoy_cluster_name="c_first") or 0


def test_a_target_without_a_key_is_skipped_by_first_attempts(skipping):
    gw = skipping
    seen = len(access_lines(gw, "skip-429"))
    # A 429 with a key of the pool left: Envoy sees the 429, which outlier detection does
    # not count; the next request tries the target again (with its other key).
    for i in range(2):
        assert ask(gw, "openai", "skip-429", False)[0] == fault_upstream.TEXT
        line = next_access_line(gw, "skip-429", seen + i)
        # The attempt log keeps the provider's own status.
        assert "attempts=first/rate_limited_429:429:fallback,second/ok:200:ok " in line, line
        assert ejections(gw) == i, "ejected only once no key is left"
    # The ejection reaches every worker from the main thread: wait for it.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        seen = len(access_lines(gw, "skip-429"))
        ask(gw, "anthropic", "skip-429", False)
        if "attempts=second/ok:200:ok " in next_access_line(gw, "skip-429", seen):
            break
        time.sleep(0.1)
    seen = len(access_lines(gw, "skip-429"))
    for i in range(20):
        assert ask(gw, "openai" if i % 2 else "anthropic", "skip-429", bool(i % 3))[0] == fault_upstream.TEXT
    lines = [next_access_line(gw, "skip-429", seen + i) for i in range(20)]
    assert all("attempts=second/ok:200:ok " in l and "fallbacks=0 " in l for l in lines), lines
    assert ejections(gw) == 1
