"""Token estimators in Envoy: what `quota.estimator` costs (BENCHMARKS.md, "Token estimators").

    .venv/bin/python bench/estimators.py            # builds both modules, measures, prints
    nice -n -20 taskset -c 0 .venv/bin/python bench/estimators.py   # as root, like bench/run.sh

Builds two release modules (default features, and `--features tiktoken`) into
$ESTIMATORS_TARGET_DIR (default target/estimators), unless ESTIMATORS_WASM_DEFAULT and
ESTIMATORS_WASM_TIKTOKEN name ready-made ones. Then, for each variant (module x estimator),
with nginx as the provider (bench/nginx.conf.tmpl, a fixed chat completion) and one consumer
(API key) whose day budget is far too large to be reached:

  - .wasm size;
  - start-up: Envoy start to /ready LIVE, --concurrency 1 (median of ESTIMATORS_STARTS);
  - memory: Envoy RSS at LIVE and after the requests below, with --concurrency 1 and 3; the
    per-VM figure is (RSS c3 - RSS c1) / 2 after load (each worker has its own VM; the two
    main-thread VMs exist in both), the first-request figure RSS(after) - RSS(LIVE) at c1;
  - first request (tables built lazily: its latency includes the BPE init) vs the median of
    the next ESTIMATORS_SEQUENTIAL sequential requests, on one connection, ~2 KB prompt;
  - per-request cost with a ~2 KB and a ~20 KB prompt (system + user message of English prose):
    wrk at 1 connection (p50) and at ESTIMATORS_CONNECTIONS connections (req/s, p50), and
    Envoy CPU time per request under load;
  - the input the module reserved for the 2 KB request (limit - remaining - max_tokens, from
    the first response's x-ratelimit-remaining-tokens): shows which estimator ran.

Variant "auto-near" sends max_tokens above the whole budget, so every request is clamped and
`auto` counts exactly on every request (its worst case); each request then holds the rest of
the budget while in flight, so that variant runs one connection at a time.

Settings (environment): ESTIMATORS_DURATION=8, ESTIMATORS_LATENCY_DURATION=4,
ESTIMATORS_WARMUP=2, ESTIMATORS_CONNECTIONS=16, ESTIMATORS_STARTS=3, ESTIMATORS_SEQUENTIAL=20,
ESTIMATORS_ONLY=id,id (variant ids), BENCH_ENVOY_CPU=1 BENCH_LOAD_CPU=0 (as bench/bench.py).
Writes bench/results/estimators.json and .md. Stdlib only.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO / "integration"))

import bench  # noqa: E402  (helpers: nginx, Envoy rendering and start, wrk, /proc)
import harness  # noqa: E402
import report  # noqa: E402
import scenarios  # noqa: E402


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


S = {
    "duration_s": env_int("ESTIMATORS_DURATION", 8),
    "latency_s": env_int("ESTIMATORS_LATENCY_DURATION", 4),
    "warmup_s": env_int("ESTIMATORS_WARMUP", 2),
    "connections": env_int("ESTIMATORS_CONNECTIONS", 16),
    "starts": env_int("ESTIMATORS_STARTS", 3),
    "sequential": env_int("ESTIMATORS_SEQUENTIAL", 20),
}
ONLY = {x.strip() for x in os.environ.get("ESTIMATORS_ONLY", "").split(",") if x.strip()}
RUN = REPO / ".run" / "estimators"
TARGET = Path(os.environ.get("ESTIMATORS_TARGET_DIR", REPO / "target" / "estimators"))
CLIENT_KEY = "sk-bench-client"  # what scenarios.CLIENT_HEADERS sends
BUDGET = 10**15
MAX_TOKENS = 256
UPSTREAM_MODEL = "gpt-4o-mini"  # o200k_base

VARIANTS = [
    {"id": "fast", "build": "default", "estimator": "fast"},
    {"id": "upper-bound", "build": "default", "estimator": "upper-bound"},
    {"id": "tt-fast", "build": "tiktoken", "estimator": "fast"},
    {"id": "exact", "build": "tiktoken", "estimator": "exact"},
    {"id": "auto", "build": "tiktoken", "estimator": "auto"},
    {"id": "auto-near", "build": "tiktoken", "estimator": "auto", "max_tokens": 10**16,
     "sequential_only": True},
]


def say(msg: str) -> None:
    print(f"estimators: {msg}", flush=True)


# ----------------------------------------------------------------------------- modules


def build(features: list[str]) -> Path:
    cmd = ["cargo", "build", "--release", "--target", "wasm32-wasip1", *features]
    say(" ".join(cmd) + f"  (CARGO_TARGET_DIR={TARGET})")
    subprocess.run(cmd, cwd=REPO, check=True, env={**os.environ, "CARGO_TARGET_DIR": str(TARGET)})
    return TARGET / "wasm32-wasip1" / "release" / "llm_gateway.wasm"


def modules() -> dict[str, Path]:
    RUN.mkdir(parents=True, exist_ok=True)
    given = {"default": os.environ.get("ESTIMATORS_WASM_DEFAULT"),
             "tiktoken": os.environ.get("ESTIMATORS_WASM_TIKTOKEN")}
    out = {}
    for name, features in (("default", []), ("tiktoken", ["--features", "tiktoken"])):
        src = Path(given[name]) if given[name] else build(features)
        dst = RUN / f"llm_gateway-{name}.wasm"  # a copy: later builds do not change the run
        dst.write_bytes(src.read_bytes())
        out[name] = dst
    return out


# ----------------------------------------------------------------------------- requests


def plugin(estimator: str) -> dict:
    digest = hashlib.sha256(CLIENT_KEY.encode()).hexdigest()
    return {
        "providers": {"bench-openai": scenarios.OPENAI_PROVIDER},
        "models": {"bench-gpt": {"provider": "bench-openai", "model": UPSTREAM_MODEL}},
        "consumers": {"bench": {"api_keys": [digest], "plan": "bench"}},
        "plans": {"bench": {"limits": [{"name": "tpd", "window": "day", "tokens": BUDGET}]}},
        "quota": {"estimator": estimator},
    }


def prose(n: int) -> str:
    """About n bytes of English prose (this repository's README, repeated as needed)."""
    text = (REPO / "README.md").read_text()
    out = ""
    while len(out.encode()) < n:
        out += text
    return out.encode()[:n].decode("utf-8", "ignore")


def chat_body(size: int, max_tokens: int) -> bytes:
    base = json.loads((BENCH / "bodies" / "chat_request.json").read_text())
    system = base["messages"][0]["content"]
    user = prose(max(64, size - len(system) - 160))
    body = {"model": "bench-gpt", "max_tokens": max_tokens,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]}
    return json.dumps(body, ensure_ascii=False).encode()


HEADERS = {**scenarios.CLIENT_HEADERS, "x-llm-gateway-cluster": "upstream"}


def post(port: int, body: bytes) -> tuple[int, dict, float]:
    """(status, headers, seconds) of one request on a new connection."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", bench.CHAT_PATH, body=body,
                     headers={"content-type": "application/json", **HEADERS})
        resp = conn.getresponse()
        resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, time.perf_counter() - t0
    finally:
        conn.close()


def post_on(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, dict, float]:
    t0 = time.perf_counter()
    conn.request("POST", bench.CHAT_PATH, body=body,
                 headers={"content-type": "application/json", **HEADERS})
    resp = conn.getresponse()
    resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, time.perf_counter() - t0


# ----------------------------------------------------------------------------- envoy


def start(variant: dict, wasm: Path, nginx_port: int, tag: str, concurrency: int) -> bench.Target:
    bench.WASM_RUN = wasm
    sc = {"id": variant["id"], "filters": ["json_to_metadata", "gateway"],
          "plugin": plugin(variant["estimator"])}
    return bench.start_envoy(sc, nginx_port, tag, concurrency)


def rss_kb(target: bench.Target) -> int | None:
    return bench.proc_status_kb(target.pid, "VmRSS")


def load(target: bench.Target, body: bytes, tag: str, seconds: int, conns: int) -> dict:
    script = bench.wrk_script(tag, body, HEADERS)
    c0, t0 = bench.cpu_ticks(target.pid), time.monotonic()
    out = report.parse_wrk(bench.run_wrk(target.port, script, seconds, min(2, conns), conns))
    c1, t1 = bench.cpu_ticks(target.pid), time.monotonic()
    out["envoy_cpu_us_per_req"] = 1e6 * (c1 - c0) / bench.CLK_TCK / max(1, out["requests"])
    out["envoy_cpu_pct"] = 100 * (c1 - c0) / bench.CLK_TCK / (t1 - t0)
    return out


def measure(variant: dict, wasm: Path, nginx_port: int) -> dict:
    vid = variant["id"]
    max_tokens = variant.get("max_tokens", MAX_TOKENS)
    small, large = chat_body(2048, max_tokens), chat_body(20480, max_tokens)
    row: dict = {"id": vid, "build": variant["build"], "estimator": variant["estimator"],
                 "wasm_bytes": wasm.stat().st_size, "body_bytes": [len(small), len(large)]}
    say(f"[{vid}] {variant['build']} module, estimator {variant['estimator']}")

    # Start-up and the first requests, one worker.
    ready, first, later, rss_live, rss_after, reserved = [], [], [], [], [], None
    for i in range(S["starts"]):
        target = start(variant, wasm, nginx_port, f"{vid}-c1-{i}", 1)
        try:
            ready.append(target.ready_ms)
            time.sleep(0.5)
            rss_live.append(rss_kb(target))
            conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
            status, headers, secs = post_on(conn, small)
            if status != 200:
                raise harness.HarnessError(f"{vid}: first request answered {status}")
            first.append(secs * 1e3)
            remaining = headers.get("x-ratelimit-remaining-tokens")
            if remaining is not None and reserved is None and max_tokens < BUDGET:
                reserved = BUDGET - int(remaining) - max_tokens
            times = [post_on(conn, small)[2] * 1e3 for _ in range(S["sequential"])]
            conn.close()
            later.append(statistics.median(times))
            rss_after.append(rss_kb(target))
        finally:
            target.stop()
    row.update(ready_ms=report.median(ready), first_ms=report.median(first),
               later_p50_ms=report.median(later), rss_start_kb_c1=report.median(rss_live),
               rss_first_kb_c1=report.median(rss_after), reserved_input_2k=reserved)
    row["first_request_rss_kb"] = row["rss_first_kb_c1"] - row["rss_start_kb_c1"]

    # Load, one worker (Envoy pinned to one core). auto-near holds the whole budget per
    # request, so concurrent requests would be refused: one connection only there.
    target = start(variant, wasm, nginx_port, f"{vid}-load", 1)
    try:
        for name, body in (("2k", small), ("20k", large)):
            status, _, _ = post(target.port, body)
            if status != 200:
                raise harness.HarnessError(f"{vid}: {name} request answered {status}")
            tag = f"{vid}-{name}"
            row[f"low_{name}"] = load(target, body, tag, S["latency_s"], 1)
            if variant.get("sequential_only"):
                continue
            if S["warmup_s"]:
                load(target, body, tag, S["warmup_s"], S["connections"])
            row[f"load_{name}"] = load(target, body, tag, S["duration_s"], S["connections"])
    finally:
        target.stop()

    # Memory with one and with three workers, each VM having served requests (24 connections
    # reach every worker).
    for conc in (1, 3):
        target = start(variant, wasm, nginx_port, f"{vid}-mem-c{conc}", conc)
        try:
            time.sleep(0.5)
            row[f"rss_live_kb_c{conc}"] = rss_kb(target)
            load(target, small, f"{vid}-mem", 3, 24)
            row[f"rss_loaded_kb_c{conc}"] = rss_kb(target)
        finally:
            target.stop()
    row["per_vm_live_kb"] = (row["rss_live_kb_c3"] - row["rss_live_kb_c1"]) / 2
    row["per_vm_loaded_kb"] = (row["rss_loaded_kb_c3"] - row["rss_loaded_kb_c1"]) / 2
    row["status"] = "ok"
    return row


# ----------------------------------------------------------------------------- report


def mib(kb) -> str:
    return "–" if kb is None else f"{kb / 1024:.1f}"


def render(res: dict) -> str:
    rows = [r for r in res["rows"] if r.get("status") == "ok"]
    lines = [
        "# Token estimators in Envoy (bench/estimators.py)",
        "",
        f"{res['date']}, Envoy {res['envoy']}, {res['machine']['nproc']} cores "
        f"({res['machine']['cpu_model']}); Envoy pinned to core {bench.S['envoy_cpu']}, wrk and "
        f"nginx to core {bench.S['load_cpu']}; {S['duration_s']} s per load run, "
        f"{S['connections']} connections; bodies {rows[0]['body_bytes'] if rows else '?'} bytes.",
        "",
        "| variant | module | .wasm bytes | LIVE ms (c1) | RSS MiB at LIVE c1 / c3 | per-VM MiB at LIVE / after load "
        "| 1st request RSS MiB | 1st request ms | next p50 ms | input reserved (2 KB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['id']} | {r['build']} | {r['wasm_bytes']:,} | {r['ready_ms']:.0f} | "
            f"{mib(r['rss_live_kb_c1'])} / {mib(r['rss_live_kb_c3'])} | "
            f"{mib(r['per_vm_live_kb'])} / {mib(r['per_vm_loaded_kb'])} | {mib(r['first_request_rss_kb'])} | "
            f"{r['first_ms']:.1f} | {r['later_p50_ms']:.2f} | {r['reserved_input_2k']} |")
    lines += ["", "Per request: one connection (p50 ms, Envoy CPU us per request), then "
              f"{S['connections']} connections (req/s, p50 ms, Envoy CPU us per request).", "",
              "| variant | 2 KB p50 @1 | CPU @1 | req/s | p50 | CPU "
              "| 20 KB p50 @1 | CPU @1 | req/s | p50 | CPU |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        cells = []
        for name in ("2k", "20k"):
            lo, ld = r[f"low_{name}"], r.get(f"load_{name}")
            cells += [f"{lo['p50_ms']:.2f}", f"{lo['envoy_cpu_us_per_req']:.0f}"]
            if ld:
                cells += [f"{ld['rps']:.0f}", f"{ld['p50_ms']:.2f}", f"{ld['envoy_cpu_us_per_req']:.0f}"]
            else:  # one connection at a time only
                cells += ["–", "–", "–"]
        lines.append(f"| {r['id']} | " + " | ".join(cells) + " |")
    failed = [r for r in res["rows"] if r.get("status") != "ok"]
    for r in failed:
        lines.append(f"\n{r['id']}: {r.get('status')}: {r.get('reason')}")
    return "\n".join(lines) + "\n"


def envoy_version() -> str:
    out = subprocess.run([harness.envoy_binary(), "--version"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, check=False).stdout.decode()
    for word in out.split():
        if word.count("/") >= 2 and word[0].isalnum():
            return word.split("/")[1]
    return out.strip()[:60]


def main() -> int:
    bench.RUN = RUN
    RUN.mkdir(parents=True, exist_ok=True)
    wasm = modules()
    nginx_port = harness.free_port()
    nginx = bench.start_nginx(nginx_port)
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "settings": S,
           "machine": bench.machine(), "envoy": envoy_version(), "commit": bench.git_commit(),
           "rows": []}
    try:
        for variant in VARIANTS:
            if ONLY and variant["id"] not in ONLY:
                continue
            try:
                res["rows"].append(measure(variant, wasm[variant["build"]], nginx_port))
            except (harness.HarnessError, bench.Rejected, ValueError, OSError) as err:
                say(f"[{variant['id']}] failed: {err}")
                res["rows"].append({"id": variant["id"], "status": "failed",
                                    "reason": str(err).splitlines()[0]})
    finally:
        harness.stop(nginx)
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / "estimators.json").write_text(json.dumps(res, indent=1) + "\n")
    text = render(res)
    (out / "estimators.md").write_text(text)
    print(text)
    return 0 if all(r.get("status") == "ok" for r in res["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
