"""What a fallback costs, in real Envoy (`make bench-fallback`): bench/results/fallback.{md,json}.

Three routes of one Envoy (1 worker, the configuration of integration/test_fallback.py), each
answered by the same upstream (integration/fault_upstream.py: Anthropic's dialect on
/v1/messages, OpenAI's elsewhere; a new connection per response), an OpenAI client:

  today        a single target, Anthropic: the downstream instance translates (today's path)
  chain-ok     a fallback chain whose first target (Anthropic) answers: the per-attempt
               instance translates (the per-attempt design's happy path)
  chain-429    the first target answers 429, the second (OpenAI) answers: one fallback

Sequential requests (no concurrency: latency, not throughput), after a warm-up, the rows
interleaved in rounds. Envoy's CPU is
its process's user + system time over the run, per request (the upstream and the client are
other processes). The upstream is a Python server, so latencies include its own time; the
differences between rows are what the module and Envoy's retry add.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "integration"))

import fault_upstream  # noqa: E402
import harness  # noqa: E402
from test_fallback import KEY, fallback_template, plugin_config  # noqa: E402

REQUESTS = int(os.environ.get("BENCH_FALLBACK_REQUESTS", "1000"))
WARMUP = 10
ROUNDS = 5
ROWS = [("today", "today-ok"), ("chain-ok", "chain-ok"), ("chain-429", "chain-rate_limited_429")]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(gw, model: str, count: int) -> tuple[list[float], float]:
    """Latencies (ms) of `count` sequential requests, and Envoy's CPU seconds over them."""
    body = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "bench"}]}
    headers = {"authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=gw.base_url, headers=headers, timeout=10) as client:
        for _ in range(WARMUP):
            assert client.post("/v1/chat/completions", json=body).status_code == 200
        cpu0 = cpu_seconds(gw.proc.pid)
        latencies = []
        for _ in range(count):
            start = time.perf_counter()
            r = client.post("/v1/chat/completions", json=body)
            latencies.append((time.perf_counter() - start) * 1000)
            assert r.status_code == 200, r.text
        return latencies, cpu_seconds(gw.proc.pid) - cpu0


def run(gw) -> dict:
    """The rows interleaved in ROUNDS rounds, so that drift of a shared machine hits each alike."""
    latencies: dict[str, list[float]] = {name: [] for name, _ in ROWS}
    cpu = dict.fromkeys(latencies, 0.0)
    for _ in range(ROUNDS):
        for name, model in ROWS:
            more, seconds = measure(gw, model, REQUESTS // ROUNDS)
            latencies[name] += more
            cpu[name] += seconds
    out = {}
    for name, values in latencies.items():
        values.sort()
        out[name] = {
            "p50_ms": round(statistics.median(values), 3),
            "p90_ms": round(values[int(len(values) * 0.9)], 3),
            "envoy_cpu_us_per_request": round(cpu[name] / len(values) * 1e6, 1),
        }
    return out


def main() -> int:
    wasm = harness.WASM_PATH
    assert wasm.is_file(), f"{wasm} is missing: make build"
    server = fault_upstream.start(harness.free_port())
    workdir = Path(tempfile.mkdtemp(prefix="bench-fallback-"))
    config = plugin_config()
    config["providers"]["today"] = {"kind": "anthropic", "cluster": "fake_openai",
                                    "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}}
    config["models"]["today-ok"] = {"provider": "today", "model": "ok"}
    template = fallback_template(workdir, {"role": "attempt", "gateway": config})
    factory = harness.GatewayFactory(server.server_address[1], wasm, workdir)
    try:
        gw = factory.start(config, template=str(template), concurrency=1)
        results = run(gw)
    finally:
        factory.stop_all()
        server.shutdown()
    lines = [f"Fallback cost, {REQUESTS} sequential requests per row, Envoy 1 worker "
             f"(`make bench-fallback`, {time.strftime('%Y-%m-%d')})", "",
             "| row | p50 ms | p90 ms | Envoy CPU us/request |", "|---|---|---|---|"]
    for name, _ in ROWS:
        r = results[name]
        lines.append(f"| {name} | {r['p50_ms']} | {r['p90_ms']} | {r['envoy_cpu_us_per_request']} |")
    today, ok, fell = (results[n] for n, _ in ROWS)
    lines += ["", f"Per-attempt design on the happy path vs today: {ok['p50_ms'] - today['p50_ms']:+.3f} ms p50, "
              f"{ok['envoy_cpu_us_per_request'] - today['envoy_cpu_us_per_request']:+.1f} us CPU per request.",
              f"One fallback vs the chain's happy path: {fell['p50_ms'] - ok['p50_ms']:+.3f} ms p50, "
              f"{fell['envoy_cpu_us_per_request'] - ok['envoy_cpu_us_per_request']:+.1f} us CPU per request "
              "(retry back-off 1-2 ms, as configured in the route)."]
    out = REPO / "bench" / "results"
    (out / "fallback.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "fallback.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
