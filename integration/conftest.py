"""Pytest fixtures for the integration tests: real Envoy + our .wasm + the fake provider.

Fixtures
    wasm_path        (session)  Path of the release .wasm; FAILS (not skips) if it is missing.
    fake             (session)  harness.FakeProvider on a free port: .port, .base_url,
                                .requests(), .clear()
    fake_requests    (function) clears the fake's recorded requests before the test; call it
                                for the list: fake_requests() -> [{method, path, query,
                                headers, body, raw}], also .last(), .clear(), .wait_for(n)
    gateway          (function) factory: gateway(plugin_config: dict | str, *, template=...,
                                concurrency=2) -> harness.Gateway, stopped at teardown.
                                A str plugin_config is used verbatim (to test bad JSON).
    shared_gateway   (session)  same factory, but one Envoy per distinct plugin config is
                                reused by all tests of the session (faster; do not use it
                                when a test asserts on metric totals or access-log counts
                                without taking a baseline first).
    envoy_rejects    (function) factory: envoy_rejects(plugin_config, *, mode="run" |
                                "validate") -> (exit_code, log_text) for a config the module
                                must reject.

harness.Gateway: .base_url ("http://127.0.0.1:<port>"), .port, .admin_port, .admin_url,
.access_log_path, .log_path, .config_path, .prometheus(), .gen_ai_metrics(),
.access_log_lines(min_lines=0, timeout=5), .log_text(), .log_tail(), .admin(path), .alive(),
.stop().

The test Envoy (integration/envoy.test.yaml.tmpl) routes to cluster `fake_openai` (the fake),
gives the VM the environment variable TEST_OPENAI_KEY=sk-upstream-test-key, and writes the
access log in the demo's format to .access_log_path.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def _failed(request) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


@pytest.fixture(scope="session")
def wasm_path() -> Path:
    path = harness.WASM_PATH
    assert path.is_file(), (
        f"{path} is missing: build it with `make build` "
        "(cargo build --release --target wasm32-wasip1)"
    )
    return path


@pytest.fixture(scope="session")
def fake(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("fake") / "fake.log"
    provider = harness.start_fake(harness.free_port(), str(log_path))
    yield provider
    provider.stop()


class RecordedRequests:
    """Callable view of the fake provider's recorded requests."""

    def __init__(self, fake: harness.FakeProvider):
        self._fake = fake

    def __call__(self) -> list[dict]:
        return self._fake.requests()

    def last(self) -> dict:
        reqs = self()
        assert reqs, "the fake provider received no request"
        return reqs[-1]

    def clear(self) -> None:
        self._fake.clear()

    def wait_for(self, n: int, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            reqs = self()
            if len(reqs) >= n or time.monotonic() >= deadline:
                return reqs
            time.sleep(0.05)


@pytest.fixture
def fake_requests(fake) -> RecordedRequests:
    fake.clear()
    return RecordedRequests(fake)


def _print_logs_on_failure(request, gateways):
    if not _failed(request):
        return
    for gw in gateways:
        print(f"\n--- Envoy log tail ({gw.log_path}) ---\n{gw.log_tail()}")
        print(f"--- access log ({gw.access_log_path}) ---")
        print("\n".join(gw.access_log_lines()[-20:]))


@pytest.fixture
def gateway(request, fake, fake_requests, wasm_path, tmp_path):
    factory = harness.GatewayFactory(fake.port, wasm_path, tmp_path / "envoy")
    yield factory
    gateways = list(factory.started)
    factory.stop_all()
    _print_logs_on_failure(request, gateways)


class _SharedGatewayFactory:
    def __init__(self, factory: harness.GatewayFactory):
        self._factory = factory
        self._cache: dict[str, harness.Gateway] = {}

    def __call__(self, plugin_config, **kwargs) -> harness.Gateway:
        key = json.dumps([plugin_config, sorted((k, str(v)) for k, v in kwargs.items())],
                         sort_keys=True)
        gw = self._cache.get(key)
        if gw is None or not gw.alive():
            gw = self._factory.start(plugin_config, **kwargs)
            self._cache[key] = gw
        return gw


@pytest.fixture(scope="session")
def shared_gateway(fake, wasm_path, tmp_path_factory):
    factory = harness.GatewayFactory(fake.port, wasm_path, tmp_path_factory.mktemp("envoy"))
    yield _SharedGatewayFactory(factory)
    factory.stop_all()


@pytest.fixture
def envoy_rejects(fake, wasm_path, tmp_path):
    factory = harness.GatewayFactory(fake.port, wasm_path, tmp_path / "envoy-reject")
    return factory.rejects
