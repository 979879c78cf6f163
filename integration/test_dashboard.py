"""The Grafana dashboard (deploy/grafana/llm-gateway.json) against a real Prometheus (Debian
`prometheus`) scraping a real Envoy with the module every second: after a tour through the
official SDKs (chat, stream, Anthropic message, a 429 over budget, a guard rejection, a
provider 500), every panel query, with Grafana's variables substituted, returns data, and
every template variable lists values.

The tour runs twice with a scrape in between: Prometheus's rate() and increase() ignore a
series' first sample, so only a second round makes the counters *increase* under its eyes
(what a dashboard on a live gateway shows)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

import harness

DASHBOARD_PATH = harness.REPO_ROOT / "deploy" / "grafana" / "llm-gateway.json"
SCRAPE_INTERVAL_S = 1
# What Grafana would put in place of its variables: the consumer/model variables at "All"
# (their allValue, a regex), the rate interval at its floor for a 15 s scrape (4 x 15 s).
SUBSTITUTIONS = {"$__rate_interval": "1m", "$__range": "5m", "$consumer": ".*", "$model": ".*"}


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


CONFIG = {
    "providers": {
        "fake": {"kind": "openai", "cluster": "fake_openai", "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"}},
        "claude": {"kind": "anthropic", "cluster": "fake_openai", "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}},
    },
    "models": {"d-gpt": {"provider": "fake", "model": "gpt-4o-mini"},
               "d-claude": {"provider": "claude", "model": "claude-sonnet-4-5"}},
    "consumers": {"alice": {"api_keys": [digest("sk-alice")], "plan": "large"},
                  "bob": {"api_keys": [digest("sk-bob")], "plan": "tiny"}},
    "plans": {"large": {"limits": [{"name": "tpm", "window": "minute", "tokens": 1_000_000}]},
              # A few requests fit, then bob gets 429 for the rest of the minute.
              "tiny": {"limits": [{"name": "tpm", "window": "minute", "tokens": 60}]}},
    "prompts": {"guards": {"deny": [{"name": "no-secrets", "regex": "(?i)password\\s*:"}]}},
}


def load_dashboard() -> dict:
    return json.loads(DASHBOARD_PATH.read_text())


def panels(dashboard: dict) -> list[dict]:
    """Every panel, rows' nested panels included, rows themselves excluded."""
    out = []
    for p in dashboard["panels"]:
        if p.get("type") == "row":
            out.extend(p.get("panels", []))
        else:
            out.append(p)
    return out


def panel_targets(dashboard: dict) -> list[tuple[str, dict]]:
    return [(f"{p['title']} [{t['refId']}]", t) for p in panels(dashboard) for t in p.get("targets", [])]


def substitute(expr: str) -> str:
    expr = expr.replace("${datasource}", "")
    for var, value in SUBSTITUTIONS.items():
        expr = expr.replace(var, value).replace("${" + var[1:] + "}", value)
    assert "$" not in expr, f"a Grafana variable the test does not know is left in {expr!r}"
    return expr


# ------------------------------------------------------------------------- Prometheus


class Prometheus:
    """A real Prometheus on a free loopback port, scraping one Envoy's admin endpoint."""

    def __init__(self, workdir: Path, envoy_admin_port: int):
        binary = shutil.which("prometheus")
        assert binary, "prometheus is not installed: run `make bootstrap` (Debian package prometheus)"
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n"
            f"  scrape_interval: {SCRAPE_INTERVAL_S}s\n"
            f"  scrape_timeout: {SCRAPE_INTERVAL_S}s\n"
            "scrape_configs:\n"
            "- job_name: envoy\n"
            "  metrics_path: /stats/prometheus\n"
            "  static_configs:\n"
            f"  - targets: ['127.0.0.1:{envoy_admin_port}']\n")
        self.port = harness.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"prometheus exited:\n{harness.tail(self.log_path)}"
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready after {timeout}s:\n{harness.tail(self.log_path)}")

    def query(self, expr: str) -> list[dict]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", f"{expr!r}: {r.status_code} {body}"
        assert body["data"]["resultType"] == "vector", body
        return body["data"]["result"]

    def label_values(self, label: str, metric: str) -> list[str]:
        r = httpx.get(f"{self.url}/api/v1/label/{urllib.parse.quote(label)}/values",
                      params={"match[]": metric}, timeout=5)
        assert r.status_code == 200, r.text
        return r.json()["data"]

    def wait_for(self, predicate, what: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while True:
            got = predicate()
            if got or time.monotonic() >= deadline:
                assert got, f"prometheus: {what} not true after {timeout}s"
                return got
            time.sleep(0.25)

    def stop(self) -> None:
        harness.stop(self.proc)


# ------------------------------------------------------------------------- the tour


MESSAGES = [{"role": "user", "content": "one two three"}]


def tour(gw: harness.Gateway) -> dict[str, int]:
    """One round of traffic through the official SDKs; returns the status of each step."""
    alice = openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key="sk-alice", max_retries=0)
    statuses = {}
    reply = alice.chat.completions.create(model="d-gpt", messages=MESSAGES)
    statuses["chat"] = 200 if reply.choices[0].message.content else 0
    chunks = list(alice.chat.completions.create(model="d-gpt", messages=MESSAGES, stream=True,
                                                stream_options={"include_usage": True}))
    statuses["stream"] = 200 if any(c.usage for c in chunks) else 0
    message = anthropic.Anthropic(base_url=gw.base_url, api_key="sk-alice", max_retries=0).messages.create(
        model="d-claude", max_tokens=16, messages=MESSAGES)
    statuses["anthropic"] = 200 if message.content[0].text else 0
    bob = openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key="sk-bob", max_retries=0)
    statuses["over_budget"] = 0
    for _ in range(20):
        try:
            bob.chat.completions.create(model="d-gpt", messages=MESSAGES, max_tokens=16)
        except openai.RateLimitError:
            statuses["over_budget"] = 429
            break
    with pytest.raises(openai.BadRequestError) as blocked:
        alice.chat.completions.create(model="d-gpt", messages=[{"role": "user", "content": "password: hunter2"}])
    statuses["guard"] = blocked.value.status_code if blocked.value.code == "prompt_blocked" else 0
    with pytest.raises(openai.InternalServerError) as failed:
        alice.chat.completions.create(model="d-gpt", messages=MESSAGES, extra_headers={"x-fake-status": "500"})
    statuses["provider_error"] = failed.value.status_code
    return statuses


EXPECTED_STATUSES = {"chat": 200, "stream": 200, "anthropic": 200, "over_budget": 429, "guard": 400,
                     "provider_error": 500}


def envoy_request_total(gw: harness.Gateway) -> float:
    return harness.metric_value(gw.prometheus(), "gen_ai_server_requests") or 0


def scraped_request_total(prom: Prometheus) -> float:
    result = prom.query("sum(gen_ai_server_requests)")
    return float(result[0]["value"][1]) if result else 0


def has_positive_value(result: list[dict]) -> bool:
    values = [float(sample["value"][1]) for sample in result]
    return any(math.isfinite(v) and v > 0 for v in values)


@pytest.fixture(scope="module")
def scraped(fake, wasm_path, tmp_path_factory):
    """(Prometheus, Gateway, tour statuses) after two tours, each seen by Prometheus."""
    workdir = tmp_path_factory.mktemp("dashboard")
    factory = harness.GatewayFactory(fake.port, wasm_path, workdir / "envoy")
    gw = factory.start(CONFIG)
    prom = None
    try:
        prom = Prometheus(workdir / "prometheus", gw.admin_port)
        prom.wait_for(lambda: prom.query('up{job="envoy"} == 1'), "Envoy scraped and up")
        rounds = []
        for _ in range(2):
            rounds.append(tour(gw))
            total = envoy_request_total(gw)
            prom.wait_for(lambda: scraped_request_total(prom) >= total, f"gen_ai_server_requests total {total} scraped")
        # Histograms reach /stats/prometheus at the next stats flush; give Prometheus one
        # more scrape, then poll until every panel query has data (or time out: the tests
        # below then name each empty one).
        time.sleep(2 * SCRAPE_INTERVAL_S)
        exprs = [substitute(t["expr"]) for _, t in panel_targets(load_dashboard())]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(has_positive_value(prom.query(e)) for e in exprs):
            time.sleep(0.5)
        yield prom, gw, rounds
    finally:
        if prom is not None:
            prom.stop()
        factory.stop_all()


# ------------------------------------------------------------------------- tests


def test_dashboard_is_a_grafana_model_on_a_datasource_variable():
    dashboard = load_dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels(dashboard):
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], f"panel {p['title']!r} has no query"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"]), p["title"]
    # The panels: requests, tokens and cost by consumer and model, TTFT, errors by
    # reason and status, remaining budgets.
    exprs = " ".join(t["expr"] for _, t in panel_targets(dashboard))
    for needle in ("gen_ai_server_requests", "gen_ai_client_token_count", "llm_gateway_cost_usd_micros",
                   "histogram_quantile(0.95, sum by (le, gen_ai_request_model) (rate(gen_ai_server_time_to_first_token_bucket",
                   "by (llm_reason)", "by (http_status_code)", "llm_gateway_budget_remaining",
                   "by (llm_consumer", "by (gen_ai_request_model"):
        assert needle in exprs, needle


def test_tour_produced_every_kind_of_traffic(scraped):
    _, _, rounds = scraped
    assert rounds == [EXPECTED_STATUSES, EXPECTED_STATUSES]


def test_every_metric_the_dashboard_reads_is_printed_by_envoy(scraped):
    """The names are what Envoy's /stats/prometheus prints (counters without `_total`,
    histograms as `_bucket`/`_sum`/`_count`)."""
    _, gw, _ = scraped
    printed = set(harness.parse_prometheus(gw.prometheus()))
    used = set()
    for _, target in panel_targets(load_dashboard()):
        used |= set(re.findall(r"\b((?:gen_ai|llm_gateway)_[a-z_]+)\s*\{", target["expr"]))
    assert used, "no metric found in the dashboard's queries"
    assert used <= printed, f"not printed by Envoy: {sorted(used - printed)}"


@pytest.mark.parametrize("name,target", panel_targets(load_dashboard()), ids=[n for n, _ in panel_targets(load_dashboard())])
def test_panel_query_returns_data(scraped, name, target):
    prom, _, _ = scraped
    expr = substitute(target["expr"])
    result = prom.query(expr)
    assert result, f"{name}: no data for {expr}"
    # Data a panel can draw: at least one finite, positive value (a rate() of counters that
    # did not move, or a quantile over empty buckets, would be 0 or NaN).
    assert has_positive_value(result), f"{name}: {expr} -> {result}"


def test_template_variables_list_the_toured_values(scraped):
    prom, _, _ = scraped
    expected = {"llm_consumer": {"alice", "bob"}, "gen_ai_request_model": {"d-gpt", "d-claude"}}
    query_vars = [v for v in load_dashboard()["templating"]["list"] if v["type"] == "query"]
    assert {v["name"] for v in query_vars} == {"consumer", "model"}
    for var in query_vars:
        # Grafana's label_values(metric, label) is Prometheus's /api/v1/label/<label>/values.
        match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", var["query"]["query"])
        assert match, var["query"]
        metric, label = match.groups()
        values = set(prom.label_values(label, metric))
        assert expected[label] <= values, (var["name"], values)
        assert var["allValue"] == ".*" and var["includeAll"]
