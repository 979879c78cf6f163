"""The module delivered the way Istio and Envoy Gateway deliver it, in real Envoy.

Istio (../shared/mesh-reference/istio/, the ECDS config dump): the wasm filter arrives by ECDS
(extension config discovery; here a file Envoy watches, rewritten atomically), its code a local
file (Istio's agent downloads the module and rewrites the resource to a local path), no
default_config. Envoy Gateway (../shared/mesh-reference/envoy-gateway/xds-wasm/wasm.*.yaml):
the wasm filter in the listener, `disabled: true`, switched on per route; the code fetched over
HTTP from `wasm_cluster` and checked by sha256. Both: json_to_metadata before the module, buffer
and the signer instance after it, routes matched on the header the module sets.

Measured with Envoy 1.40 (these tests assert it):
- a sha256 that does not match the fetched module: Envoy fetches it (1 + num_retries times),
  logs "Plugin configured to fail closed failed to load", the listener serves, and every request
  gets 503 (response code details `wasm_fail_stream`); nothing reaches a provider;
- an ECDS resource that is missing (no resource in the file) or rejected while no earlier
  version was accepted: every request gets 500 (Envoy's missing-config filter, empty response
  code details), `extension_config_discovery.http_filter.<name>.config_fail` counts the
  rejection; nothing reaches a provider;
- both replies have an empty body from Envoy; the templates' local_reply_config (a CEL filter on
  those details) gives them a JSON body in the client's error shape;
- hot reload: see test_hot_reload_* (ECDS) and test_envoy_gateway_shaped_reload_by_lds_* below.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

import core_flow
import ecds
import harness
from test_gateway import metric_value

EG_TEMPLATE = harness.INTEGRATION_DIR / "envoy.envoy-gateway.yaml.tmpl"
# ECDS resources are read while the listener initializes; past this Envoy serves without them
# (the missing-config filter answers 500).
INITIAL_FETCH_TIMEOUT = "15s"


def start_istio_shaped(factory, directory, plugin_config, code, **kw) -> harness.Gateway:
    files = ecds.EcdsFiles(directory)
    files.publish(plugin_config, code)
    gw = factory.start(plugin_config, template=ecds.ECDS_TEMPLATE, ECDS_DIR=directory,
                       INITIAL_FETCH_TIMEOUT=kw.pop("initial_fetch_timeout", INITIAL_FETCH_TIMEOUT),
                       WASM_HTTP_PORT=kw.pop("wasm_http_port", 9), timeout=60, **kw)
    gw.ecds = files
    return gw


def post_chat(gw, key=core_flow.ALICE, model="m-gpt", **headers) -> httpx.Response:
    return httpx.post(f"{gw.base_url}/v1/chat/completions", timeout=20,
                      headers={"authorization": f"Bearer {key}", **headers},
                      json={"model": model, "messages": core_flow.MESSAGES, "max_tokens": 5})


def chat_until(gw, stop: threading.Event, seen: list) -> None:
    """Chat requests back to back until `stop` (a new connection each, so each lands on the
    newest listener): (status, the model that answered or the error text) per request."""
    while not stop.is_set():
        r = post_chat(gw)
        seen.append((r.status_code, r.json().get("model", "") if r.status_code == 200 else r.text))


def post_messages(gw, key=core_flow.ALICE) -> httpx.Response:
    return httpx.post(f"{gw.base_url}/v1/messages", timeout=20, headers={"x-api-key": key},
                      json={"model": "m-gpt", "max_tokens": 5, "messages": core_flow.MESSAGES})


def assert_module_unavailable(r: httpx.Response, status: int, anthropic: bool = False) -> None:
    """Envoy's own answer when the module did not run (local_reply_config of the templates):
    the status Envoy chose, the body in the client's error shape."""
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    if anthropic:
        assert body["type"] == "error" and body["error"]["type"] == "api_error", body
    else:
        assert body["error"]["code"] == "gateway_module_unavailable", body
    assert "not forwarded" in body["error"]["message"]


@pytest.fixture(scope="module")
def istio_gw(fake, wasm_path, tmp_path_factory):
    """One Envoy for the module's tests below (the V8 compile costs seconds per start)."""
    work = tmp_path_factory.mktemp("istio-shaped")
    factory = harness.GatewayFactory(fake.port, wasm_path, work / "envoy")
    server = ecds.WasmServer(wasm_path.read_bytes())
    gw = start_istio_shaped(factory, work / "ecds", core_flow.config(), ecds.local_code(wasm_path),
                            wasm_http_port=server.port)
    gw.wasm_server = server
    yield gw
    factory.stop_all()
    server.stop()


def test_istio_shaped_ecds_local_code_serves_the_core_flow(istio_gw, fake_requests):
    assert ecds.ecds_stat(istio_gw, ecds.MODULE, "config_reload") == 1
    assert ecds.ecds_stat(istio_gw, ecds.SIGNER, "config_reload") == 1
    core_flow.run(istio_gw, fake_requests)


def test_envoy_gateway_shaped_remote_code_checked_by_sha256_serves_the_core_flow(
        gateway, fake_requests, wasm_path):
    server = ecds.WasmServer(wasm_path.read_bytes())
    try:
        gw = gateway(core_flow.config(), template=EG_TEMPLATE, timeout=60,
                     WASM_HTTP_PORT=server.port, WASM_SHA256=server.sha256)
        assert server.fetches and all(p == f"/{server.sha256}.wasm" for p in server.fetches)
        core_flow.run(gw, fake_requests)
        # A request the module refuses is answered by the module, never by the entry route.
        r = post_chat(gw, model="no-such-model")
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    finally:
        server.stop()


@pytest.mark.parametrize("shape", ["istio-ecds", "envoy-gateway"])
def test_a_wrong_sha256_fails_closed(shape, fake, fake_requests, wasm_path, tmp_path):
    """The module fetched over HTTP whose sha256 does not match: Envoy refuses it, and no request
    passes the chain without the module (whether the filter came by ECDS or in the listener)."""
    server = ecds.WasmServer(wasm_path.read_bytes())
    factory = harness.GatewayFactory(fake.port, wasm_path, tmp_path / "envoy")
    wrong = "0" * 64
    try:
        if shape == "istio-ecds":
            gw = start_istio_shaped(factory, tmp_path / "ecds", core_flow.config(),
                                    ecds.remote_code(server.port, wrong, name=server.sha256),
                                    wasm_http_port=server.port)
        else:
            gw = factory.start(core_flow.config(), template=EG_TEMPLATE, timeout=60,
                               WASM_HTTP_PORT=server.port, WASM_SHA256=wrong)
        assert server.fetches, "Envoy never fetched the module"
        for _ in range(3):
            assert_module_unavailable(post_chat(gw), 503)
        assert_module_unavailable(post_messages(gw), 503, anthropic=True)
        assert fake_requests() == []
        assert "Plugin configured to fail closed failed to load" in gw.log_text()
    finally:
        factory.stop_all()
        server.stop()


def test_a_missing_or_rejected_ecds_resource_fails_closed(fake, fake_requests, wasm_path, tmp_path):
    """No default_config: while Envoy has no accepted version of the module's resource, every
    request is refused (500, Envoy's missing-config filter), none reaches a provider."""
    factory = harness.GatewayFactory(fake.port, wasm_path, tmp_path / "envoy")
    directory = tmp_path / "ecds"
    files = ecds.EcdsFiles(directory)
    for name in (ecds.MODULE, ecds.SIGNER):  # files Envoy can watch, holding no resource
        (directory / f"{name}.json").write_text(json.dumps({"version_info": "0", "resources": []}))
    try:
        gw = factory.start(core_flow.config(), template=ecds.ECDS_TEMPLATE, ECDS_DIR=directory,
                           INITIAL_FETCH_TIMEOUT="1s", WASM_HTTP_PORT=9, timeout=60)
        assert_module_unavailable(post_chat(gw), 500)
        assert_module_unavailable(post_messages(gw), 500, anthropic=True)
        assert ecds.ecds_stat(gw, ecds.MODULE, "config_fail") >= 1
        # A plugin config the module rejects is rejected as an ECDS update: still refused.
        fails = ecds.ecds_stat(gw, ecds.MODULE, "config_fail")
        files.publish('{"providers": 5}', ecds.local_code(wasm_path))
        wait_until(lambda: ecds.ecds_stat(gw, ecds.MODULE, "config_fail") > fails, 30,
                   "Envoy never rejected the bad plugin config")
        assert_module_unavailable(post_chat(gw), 500)
        assert fake_requests() == []
    finally:
        factory.stop_all()


def wait_until(predicate, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, message
        time.sleep(0.1)


def remaining_tokens(response) -> int:
    assert response.status_code == 200, (response.status_code, response.text)
    return int(response.headers["x-ratelimit-remaining-tokens"])


def test_hot_reload_through_ecds_while_traffic_flows(istio_gw, fake_requests, wasm_path):
    """A new plugin config by ECDS under load: no request fails, a stream in flight finishes on
    the old config, the new config serves afterwards, budgets (shared data) and counters (Envoy
    stats) carry on from where they were."""
    gw = istio_gw
    alice_before = remaining_tokens(post_chat(gw))
    counted_before = metric_value(gw.prometheus(), "gen_ai_server_requests",
                                  gen_ai_request_model="m-gpt", http_status_code="200")
    reloads = ecds.ecds_stat(gw, ecds.MODULE, "config_reload")

    stop = threading.Event()
    seen: list[tuple[int, str]] = []  # (status, model the provider answered with)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        # 8 chunks 700 ms apart (~5 s): the stream spans the reload (~0.15 s) even on a busy host.
        slow = pool.submit(core_flow.stream_text, gw, "a slow stream that spans the reload",
                           **{"x-fake-chunk-delay-ms": "700"})
        load = pool.submit(chat_until, gw, stop, seen)
        time.sleep(0.6)
        reload_started = time.monotonic()
        gw.ecds.publish(core_flow.config(target_model="gpt-4o"), ecds.local_code(wasm_path),
                        signer=False)
        wait_until(lambda: ecds.ecds_stat(gw, ecds.MODULE, "config_reload") > reloads, 30,
                   "Envoy did not apply the new ECDS resource")
        wait_until(lambda: seen and seen[-1][1] == "gpt-4o", 30,
                   "the new config never served")
        reload_seconds = time.monotonic() - reload_started
        assert not slow.done(), "the stream ended before the reload: make it slower"
        text, model = slow.result(timeout=30)
        time.sleep(0.3)
        stop.set()
        load.result(timeout=30)

    print(f"reload applied and serving after {reload_seconds:.2f}s; {len(seen)} requests "
          "during the reload")
    assert (text, model) == ("echo: a slow stream that spans the reload", "gpt-4o-mini")
    assert all(status == 200 for status, _ in seen), [s for s in seen if s[0] != 200]
    models = [m for _, m in seen]
    first_new = models.index("gpt-4o")
    assert set(models[:first_new]) <= {"gpt-4o-mini"} and set(models[first_new:]) == {"gpt-4o"}
    assert first_new > 0, "no request ran on the old config: the test saw no reload"

    # Budgets live in shared data, which the reload keeps: alice's spend carries on.
    alice_after = remaining_tokens(post_chat(gw))
    assert alice_after < alice_before - len(seen), (alice_before, alice_after, len(seen))
    # Envoy's stats outlive the plugin's root contexts: the counter carries on too.
    counted_after = metric_value(gw.prometheus(), "gen_ai_server_requests",
                                 gen_ai_request_model="m-gpt", http_status_code="200")
    assert counted_after >= counted_before + len(seen) + 2, (counted_before, counted_after)


def test_hot_reload_refuses_a_bad_config_and_the_old_one_keeps_serving(istio_gw, fake_requests,
                                                                      wasm_path):
    gw = istio_gw
    serving = core_flow.chat_ok(gw)  # the model the accepted config routes m-gpt to
    fails = ecds.ecds_stat(gw, ecds.MODULE, "config_fail")
    bad = core_flow.config()
    bad["models"]["m-gpt"]["provider"] = "no-such-provider"  # valid JSON the module refuses
    gw.ecds.publish(bad, ecds.local_code(wasm_path), signer=False)
    wait_until(lambda: ecds.ecds_stat(gw, ecds.MODULE, "config_fail") > fails, 30,
               "Envoy did not count the rejected ECDS update in config_fail")
    # (Envoy 1.40 also counts it in config_reload; config_fail and the log tell the truth.)
    log = gw.log_text()
    assert "no-such-provider" in log, "the module's reason is not in Envoy's log"
    assert "config update rejected: Unable to create Wasm plugin llm_gateway" in log
    for _ in range(3):
        assert core_flow.chat_ok(gw) == serving
    text, model = core_flow.stream_text(gw)
    assert (text, model) == ("echo: stream me please", serving)


# ----------------------------------------------------------------------------- shape check
# The templates above claim the control planes' shape; this keeps them honest against the
# configuration Istio and Envoy Gateway generate (../shared/mesh-reference next to the
# repository, or LLM_GATEWAY_MESH_REFERENCE).

REFERENCE = Path(os.environ.get("LLM_GATEWAY_MESH_REFERENCE")
                 or harness.REPO_ROOT.parent / "shared" / "mesh-reference")


def snake(key: str) -> str:
    """Envoy accepts both; the references use camelCase (Envoy Gateway) or snake_case."""
    return key if key.startswith("@") else re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def snake_keys(value):
    if isinstance(value, dict):
        return {snake(k): snake_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snake_keys(v) for v in value]
    return value


def reference(relative: str):
    path = REFERENCE / relative
    assert path.is_file(), (f"{path} is missing: the mesh reference data (../shared/mesh-reference "
                            "next to the repository, or LLM_GATEWAY_MESH_REFERENCE) is required")
    text = path.read_text()
    return snake_keys(json.loads(text) if path.suffix == ".json" else yaml.safe_load(text))


def http_filters(listener: dict) -> list[dict]:
    chain = listener.get("default_filter_chain") or listener["filter_chains"][0]
    return chain["filters"][0]["typed_config"]["http_filters"]


def test_istio_shaped_resource_matches_istios_ecds_dump(wasm_path):
    dump = reference("istio/istioctl_pkg_writer_envoy_configdump_testdata_ecds_configdump.json")
    theirs = [f["ecds_filter"] for c in dump["configs"] for f in c["ecds_filters"]
              if f["ecds_filter"].get("typed_config", {}).get("@type") == ecds.WASM_TYPE]
    assert theirs, "no wasm filter in Istio's ECDS dump"
    ours = ecds.wasm_resource(ecds.MODULE, core_flow.config(), ecds.local_code(wasm_path))
    for resource in theirs:
        assert resource["@type"] == ours["@type"]
        config, mine = resource["typed_config"]["config"], ours["typed_config"]["config"]
        assert config["name"] == resource["name"] and mine["name"] == ours["name"]
        assert set(config["vm_config"]["code"]) == set(mine["vm_config"]["code"]) == {"local"}
        assert config["vm_config"]["runtime"] == mine["vm_config"]["runtime"]
        assert set(config["vm_config"]["environment_variables"]) <= {"key_values", "host_env_keys"}
    # Our listener takes the filter by config_discovery, with no default config (fail closed).
    rendered = yaml.safe_load(Path(harness.render_envoy_config(
        ecds.ECDS_TEMPLATE, ECDS_DIR="/x", LISTEN_PORT=1, ADMIN_PORT=2, FAKE_PORT=3,
        ACCESS_LOG_PATH="/dev/null", INITIAL_FETCH_TIMEOUT="1s", WASM_HTTP_PORT=4)).read_text())
    names = [f["name"] for f in http_filters(rendered["static_resources"]["listeners"][0])]
    assert names == ["envoy.filters.http.header_mutation",
                     "envoy.filters.http.json_to_metadata", ecds.MODULE,
                     "envoy.filters.http.buffer", ecds.SIGNER, "envoy.filters.http.router"]
    for f in http_filters(rendered["static_resources"]["listeners"][0])[2:5:2]:
        assert f["config_discovery"]["type_urls"] == [ecds.WASM_TYPE]
        assert "default_config" not in f["config_discovery"]


def test_envoy_gateway_shaped_listener_matches_envoy_gateways_output():
    theirs_listener = reference("envoy-gateway/xds-wasm/wasm.listeners.yaml")[0]
    theirs_routes = reference("envoy-gateway/xds-wasm/wasm.routes.yaml")[0]
    rendered = yaml.safe_load(Path(harness.render_envoy_config(
        EG_TEMPLATE, LISTEN_PORT=1, ADMIN_PORT=2, FAKE_PORT=3, ACCESS_LOG_PATH="/dev/null",
        PLUGIN_CONFIG_JSON='"{}"', WASM_HTTP_PORT=4, WASM_SHA256="ab" * 32)).read_text())
    ours_listener = rendered["static_resources"]["listeners"][0]

    def wasm_filters(listener):
        return [f for f in http_filters(listener) if f["name"].startswith("envoy.filters.http.wasm/")]

    theirs, ours = wasm_filters(theirs_listener), wasm_filters(ours_listener)
    assert theirs and len(ours) == 2
    for f in theirs + ours:
        assert f["disabled"] is True
        assert f["name"].startswith("envoy.filters.http.wasm/envoyextensionpolicy/")
        remote = f["typed_config"]["config"]["vm_config"]["code"]["remote"]
        assert remote["http_uri"]["cluster"] == "wasm_cluster" and len(remote["sha256"]) == 64
        assert remote["http_uri"]["uri"].endswith(".wasm")
        assert set(remote) == {"http_uri", "retry_policy", "sha256"}

    # Each route switches the filters on with an empty FilterConfig, as Envoy Gateway does.
    def enabling(route):
        return {name: cfg for name, cfg in route.get("typed_per_filter_config", {}).items()
                if cfg.get("@type") == "type.googleapis.com/envoy.config.route.v3.FilterConfig"}

    their_cfgs = [c for r in theirs_routes["virtual_hosts"][0]["routes"] for c in enabling(r).values()]
    assert their_cfgs and all(c == {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
                                    "config": {}} for c in their_cfgs)
    our_routes = (ours_listener["filter_chains"][0]["filters"][0]["typed_config"]
                  ["route_config"]["virtual_hosts"][0]["routes"])
    for route in our_routes:
        assert set(enabling(route)) == {f["name"] for f in ours}
        assert all(c["config"] == {} for c in enabling(route).values())



def test_an_ecds_update_to_remote_code_skips_the_module_and_the_route_match_stays_closed(
        istio_gw, fake_requests, wasm_path):
    """Measured hazard (Envoy 1.40): an ECDS *update* whose code is remote and not in Envoy's
    cache is accepted (config_reload), nothing is fetched ("Wasm remote code fetch is unstable"
    in the log), and the module silently never runs: fail OPEN. What keeps the chain closed is
    the routing: routes match only the header the module sets, and a client-sent copy of it is
    removed before anything runs. (Runs last on this Envoy: it leaves the module skipped.)"""
    gw = istio_gw
    reloads = ecds.ecds_stat(gw, ecds.MODULE, "config_reload")
    gw.ecds.publish(core_flow.config(), ecds.remote_code(gw.wasm_server.port, gw.wasm_server.sha256),
                    signer=False)
    wait_until(lambda: ecds.ecds_stat(gw, ecds.MODULE, "config_reload") > reloads, 30,
               "Envoy did not take the remote-code update")
    time.sleep(1)
    assert gw.wasm_server.fetches == [], "Envoy fetched remote code after startup: update this test"
    assert "Wasm remote code fetch is unstable" in gw.log_text()
    # A client forging the routing header, with a key of its own: not routed anywhere.
    r = post_chat(gw, key="sk-not-a-consumer", **{"x-llm-gateway-cluster": "fake_openai"})
    assert r.status_code == 404 and r.content == b"", (r.status_code, r.text)
    time.sleep(0.3)  # the access log is flushed every 100 ms
    assert gw.access_log_lines()[-1].endswith("details=route_not_found"), "the module ran"
    assert fake_requests() == [], "a request passed without the module"


# ----------------------------------------------------------------------------- Envoy Gateway reload
# Envoy Gateway changes a wasm extension by pushing a new listener (LDS), not by ECDS: the new
# listener warms (remote code fetched and checked before it serves), new connections go to it,
# the old one drains. Here LDS is a file Envoy watches.


class LdsGateway:
    """The Envoy Gateway-shaped config with its listener delivered by a watched LDS file."""

    def __init__(self, work: Path, fake_port: int, server: ecds.WasmServer):
        self.work, self.server = work, server
        self.subs = {"LISTEN_PORT": harness.free_port(), "ADMIN_PORT": harness.free_port(),
                     "FAKE_PORT": fake_port, "ACCESS_LOG_PATH": str(work / "access.log"),
                     "WASM_HTTP_PORT": server.port}
        self.version = 0
        self.gw: harness.Gateway | None = None

    def publish(self, plugin_config, sha256: str | None = None) -> dict:
        """Render the template for this plugin config and replace the LDS file atomically;
        returns the rest of the bootstrap."""
        path = harness.render_envoy_config(
            EG_TEMPLATE, str(self.work / "rendered.yaml"), **self.subs,
            PLUGIN_CONFIG_JSON=harness.plugin_config_scalar(plugin_config),
            WASM_SHA256=sha256 or self.server.sha256)
        bootstrap = yaml.safe_load(Path(path).read_text())
        listener = bootstrap["static_resources"].pop("listeners")[0]
        listener["@type"] = "type.googleapis.com/envoy.config.listener.v3.Listener"
        self.version += 1
        tmp = self.work / ".lds.json.tmp"
        tmp.write_text(json.dumps({"version_info": str(self.version), "resources": [listener]}))
        os.rename(tmp, self.work / "lds.json")
        return bootstrap

    def start(self, plugin_config) -> harness.Gateway:
        bootstrap = self.publish(plugin_config)
        bootstrap["dynamic_resources"] = {"lds_config": {
            "path_config_source": {"path": str(self.work / "lds.json")},
            "resource_api_version": "V3"}}
        config = self.work / "bootstrap.yaml"
        config.write_text(yaml.safe_dump(bootstrap))
        log = self.work / "envoy.log"
        proc = harness.start_envoy(config, harness.next_base_id(), self.subs["ADMIN_PORT"], log,
                                   timeout=60)
        self.gw = harness.Gateway(proc, self.subs["LISTEN_PORT"], self.subs["ADMIN_PORT"], config,
                                  self.subs["ACCESS_LOG_PATH"], log, 0)
        return self.gw

    def lds_stat(self, name: str) -> int:
        status, text = harness.http_get(f"{self.gw.admin_url}/stats?filter=listener_manager",
                                        timeout=60)
        assert status == 200
        return sum(int(v) for k, _, v in (line.partition(": ") for line in text.splitlines())
                   if k == f"listener_manager.{name}")


def test_envoy_gateway_shaped_reload_by_lds_while_traffic_flows(fake, fake_requests, wasm_path,
                                                                tmp_path):
    server = ecds.WasmServer(wasm_path.read_bytes())
    lds = LdsGateway(tmp_path, fake.port, server)
    try:
        gw = lds.start(core_flow.config())
        alice_before = remaining_tokens(post_chat(gw))
        stop = threading.Event()
        seen: list[tuple[int, str]] = []

        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            slow = pool.submit(core_flow.stream_text, gw, "a slow stream that spans the reload",
                               **{"x-fake-chunk-delay-ms": "700"})
            load = pool.submit(chat_until, gw, stop, seen)
            time.sleep(0.6)
            lds.publish(core_flow.config(target_model="gpt-4o"))
            wait_until(lambda: seen and seen[-1][1] == "gpt-4o", 30, "the new listener never served")
            assert not slow.done(), "the stream ended before the reload: make it slower"
            text, model = slow.result(timeout=30)
            stop.set()
            load.result(timeout=30)
        assert (text, model) == ("echo: a slow stream that spans the reload", "gpt-4o-mini")
        assert all(status == 200 for status, _ in seen), [s for s in seen if s[0] != 200]
        assert remaining_tokens(post_chat(gw)) < alice_before - len(seen)

        # A plugin config the module refuses: the listener update is rejected, the old serves.
        rejected = lds.lds_stat("lds.update_rejected")
        bad = core_flow.config(target_model="gpt-4o")
        bad["models"]["m-gpt"]["provider"] = "no-such-provider"
        lds.publish(bad)
        wait_until(lambda: lds.lds_stat("lds.update_rejected") > rejected, 60,
                   "Envoy did not reject the listener with the bad plugin config")
        for _ in range(3):
            assert core_flow.chat_ok(gw) == "gpt-4o"

        # A wrong sha256 in a listener update (measured on 1.40): the update is ACCEPTED, the
        # new listener fetches, refuses the code and serves 503 to every new connection. Fail
        # closed, but unlike a refused plugin config the old listener does not keep serving.
        # (Envoy Gateway checks the sha256 itself when it fills its wasm cache.)
        success = lds.lds_stat("lds.update_success")
        fetches = len(server.fetches)
        lds.publish(core_flow.config(target_model="gpt-4o"), sha256="0" * 64)
        wait_until(lambda: lds.lds_stat("lds.update_success") > success, 60,
                   "Envoy did not take the listener with the wrong sha256")
        wait_until(lambda: post_chat(gw).status_code == 503, 30, "the new listener never served")
        assert len(server.fetches) > fetches
        before = len(fake_requests())
        assert_module_unavailable(post_chat(gw), 503)
        assert len(fake_requests()) == before
    finally:
        if lds.gw is not None:
            lds.gw.stop()
        server.stop()
