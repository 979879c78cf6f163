"""The side-by-side benchmark (run by bench/run.sh, i.e. `make bench`). Stdlib only.

Starts the upstreams (nginx with fixed bodies; the paced SSE server), then for every scenario
of bench/scenarios.py starts its target (Envoy from bench/envoy/*.tmpl, or LiteLLM), checks
one request, runs wrk, stops it; then the streaming and start-up measurements. Writes
bench/results/latest.json and latest.md and prints the tables.

Settings (environment):
  BENCH_DURATION=10 BENCH_WARMUP=2     seconds per measured / warm-up wrk run
  BENCH_CONNECTIONS=32 BENCH_THREADS=2 wrk load
  BENCH_LATENCY_DURATION=5             seconds of the 1-connection latency run (0: skip)
  BENCH_STREAM_REQUESTS=200            sequential requests per streaming target
  BENCH_STREAM_EVENTS=20 BENCH_STREAM_FIRST_MS=5 BENCH_STREAM_GAP_MS=2   paced upstream
  BENCH_LOAD_STREAM_EVENTS=50          content events in nginx's SSE body
  BENCH_STARTUP_RUNS=3                 Envoy starts per start-up configuration
  BENCH_ROUNDS=1                       rounds over all load scenarios, interleaved; each row
                                       reports the round with its median req/s (for a busy machine)
  BENCH_ONLY=a,b,c                     run only these load ids (streaming/start-up: same ids)
  BENCH_SKIP_LITELLM=1                 leave LiteLLM out
  BENCH_PROBE=1                        also price the module's kinds of host calls with
                                       bench/probe-filter (scenarios.PROBE)
  BENCH_ENVOY_CPU=1 BENCH_LOAD_CPU=0   cores for the proxy and for wrk + nginx
  BENCH_WASM_B=path/to/other.wasm      A/B: every load scenario with the module runs a twin
                                       `<id>-B` with this module instead, in the same rounds;
                                       a comma-separated list adds `<id>-B2`, `<id>-B3`...
                                       (interleaved), e.g. the main branch's build
  BENCH_NICE (bench/run.sh)            niceness of every process, default -20 as root
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "integration"))
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
import report  # noqa: E402
import scenarios  # noqa: E402
import sse_client  # noqa: E402
from streams import anthropic_stream, openai_stream  # noqa: E402

RUN = REPO / ".run" / "bench"
WASM = REPO / "target" / "wasm32-wasip1" / "release" / "llm_gateway.wasm"
NOOP_WASM = Path(os.environ.get("BENCH_NOOP_WASM", REPO / "target" / "bench-noop" /
                                "wasm32-wasip1" / "release" / "noop_filter.wasm"))
PROBE_WASM = NOOP_WASM.parent / "probe_filter.wasm"
WASM_RUN = RUN / "llm_gateway.wasm"  # the copy of WASM that a run measures
LITELLM = REPO / ".venv-bench" / "bin" / "litellm"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def env_num(name: str, default, cast=float):
    value = os.environ.get(name)
    return cast(value) if value not in (None, "") else default


S = {
    "duration_s": env_num("BENCH_DURATION", 10, int),
    "warmup_s": env_num("BENCH_WARMUP", 2, int),
    "connections": env_num("BENCH_CONNECTIONS", 32, int),
    "threads": env_num("BENCH_THREADS", 2, int),
    "latency_s": env_num("BENCH_LATENCY_DURATION", 5, int),
    "stream_requests": env_num("BENCH_STREAM_REQUESTS", 200, int),
    "stream_events": env_num("BENCH_STREAM_EVENTS", 20, int),
    "stream_first_ms": env_num("BENCH_STREAM_FIRST_MS", 5.0),
    "stream_gap_ms": env_num("BENCH_STREAM_GAP_MS", 2.0),
    "load_stream_events": env_num("BENCH_LOAD_STREAM_EVENTS", 50, int),
    "startup_runs": env_num("BENCH_STARTUP_RUNS", 3, int),
    "rounds": env_num("BENCH_ROUNDS", 1, int),
    "envoy_concurrency": 1,
    "envoy_cpu": env_num("BENCH_ENVOY_CPU", 1, int),
    "load_cpu": env_num("BENCH_LOAD_CPU", 0, int),
}
ONLY = {x.strip() for x in os.environ.get("BENCH_ONLY", "").split(",") if x.strip()}
SKIP_LITELLM = os.environ.get("BENCH_SKIP_LITELLM", "") not in ("", "0")
PROBE = os.environ.get("BENCH_PROBE", "") not in ("", "0")
# Modules B, B2, B3...: each scenario with the module has a twin per entry.
WASM_BS = [Path(p).resolve() for p in os.environ.get("BENCH_WASM_B", "").split(",") if p]
WASM_B = WASM_BS[0] if WASM_BS else None
# The copies of the B modules that a run measures.
WASM_B_RUNS = [RUN / f"llm_gateway_b{i + 1 if i else ''}.wasm" for i in range(len(WASM_BS))]
WASM_B_RUN = WASM_B_RUNS[0] if WASM_B_RUNS else None
CHAT_PATH = "/v1/chat/completions"
REJECTED = "Failed to configure base Wasm plugin"

NOTES: list[str] = []


def say(msg: str) -> None:
    print(f"bench: {msg}", flush=True)


# ----------------------------------------------------------------------------- processes


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process and all its descendants, in clock ticks (0 if gone)."""
    total = 0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        total = int(fields[11]) + int(fields[12])
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += cpu_ticks(int(child))
    except (OSError, ValueError, IndexError):
        pass
    return total


def proc_status_kb(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def tree_status_kb(pid: int, field: str) -> int | None:
    """Sum of a /proc status field (VmHWM, VmRSS) over a process and its descendants."""
    own = proc_status_kb(pid, field)
    if own is None:
        return None
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                own += tree_status_kb(int(child), field) or 0
    except OSError:
        pass
    return own


def raise_autogroup(pid: int | str) -> None:
    """With the kernel's autogroup scheduling, a process's nice value only ranks it within
    its session; sessions share the CPU as equals. Give the session of `pid` our own nice
    value too (only when it is negative: bench/run.sh runs everything at nice -20 as root)."""
    level = os.nice(0)
    if level < 0:
        try:
            Path(f"/proc/{pid}/autogroup").write_text(str(level))
        except OSError:
            pass


def spawn(cmd: list[str], log: Path, cpu: int, env=None) -> subprocess.Popen:
    with open(log, "ab") as out:
        proc = subprocess.Popen(["taskset", "-c", str(cpu), *cmd], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(REPO),
                                start_new_session=True, env=env)
    raise_autogroup(proc.pid)
    return proc


def post(port: int, path: str, body: bytes, headers: dict, timeout: float = 30) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"content-type": "application/json",
                                                       **headers})
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    except OSError as err:
        return 0, str(err)
    finally:
        conn.close()


# ----------------------------------------------------------------------------- upstreams


def nginx_string(body: bytes) -> str:
    """A body as an nginx single-quoted string (nginx would expand `$` variables)."""
    text = body.decode()
    if "$" in text or len(body) > 3500:
        raise ValueError("an nginx return body must be short (a config token) and without '$'")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def start_nginx(port: int) -> subprocess.Popen:
    prefix = RUN / "nginx"
    prefix.mkdir(parents=True, exist_ok=True)
    subs = {
        "PREFIX": str(prefix), "PORT": port,
        "OPENAI_JSON": nginx_string((BENCH / "bodies" / "upstream_chat_completion.json")
                                    .read_bytes().strip()),
        "ANTHROPIC_JSON": nginx_string((BENCH / "bodies" / "upstream_anthropic_message.json")
                                       .read_bytes().strip()),
    }
    bodies = prefix / "bodies"
    bodies.mkdir(exist_ok=True)
    (bodies / "openai.sse").write_bytes(b"".join(openai_stream(S["load_stream_events"])))
    (bodies / "anthropic.sse").write_bytes(b"".join(anthropic_stream(S["load_stream_events"])))
    conf = harness.render_envoy_config(BENCH / "nginx.conf.tmpl", str(prefix / "nginx.conf"), **subs)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = spawn([nginx, "-p", str(prefix), "-c", conf], prefix / "nginx.log", S["load_cpu"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, body = post(port, CHAT_PATH, b"{}", {}, timeout=1)
        if status == 200 and "chat.completion" in body:
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise harness.HarnessError(f"nginx did not start:\n{harness.tail(prefix / 'nginx.log')}\n"
                               f"{harness.tail(prefix / 'nginx-error.log')}")


def start_paced(port: int) -> subprocess.Popen:
    proc = spawn([sys.executable, str(BENCH / "paced_upstream.py"), "--port", str(port),
                  "--events", str(S["stream_events"]), "--first-ms", str(S["stream_first_ms"]),
                  "--gap-ms", str(S["stream_gap_ms"])], RUN / "paced.log", S["load_cpu"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, body = post(port, CHAT_PATH, b"{}", {}, timeout=2)
        if status == 200 and "[DONE]" in body:
            return proc
        time.sleep(0.05)
    raise harness.HarnessError(f"paced upstream did not start:\n{harness.tail(RUN / 'paced.log')}")


# ----------------------------------------------------------------------------- envoy


def _snippet(name: str, **subs) -> str:
    text = (BENCH / "envoy" / f"{name}.yaml.tmpl").read_text()
    for key, value in subs.items():
        text = text.replace("{{" + key + "}}", str(value))
    body = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return "\n".join(" " * 10 + line for line in body)


def render_envoy(sc: dict, upstream_port: int, tag: str) -> tuple[Path, int, int]:
    """Renders the Envoy config of a scenario; returns (path, listen port, admin port)."""
    parts = []
    for f in sc.get("filters", []):
        if f == "json_to_metadata":
            parts.append(_snippet("json_to_metadata"))
        elif f == "noop":
            parts.append(_snippet("wasm", NAME="noop", WASM_PATH=NOOP_WASM,
                                  PLUGIN_CONFIG_JSON='""', ENV_KEY_VALUES="{}"))
        elif f.startswith("gateway_b"):
            index = int(f.removeprefix("gateway_b") or "1") - 1
            parts.append(_snippet("wasm", NAME="llm_gateway", WASM_PATH=WASM_B_RUNS[index],
                                  PLUGIN_CONFIG_JSON=harness.plugin_config_scalar(sc["plugin"]),
                                  ENV_KEY_VALUES=json.dumps(scenarios.GATEWAY_ENV)))
        elif f == "probe":
            parts.append(_snippet("wasm", NAME="probe", WASM_PATH=PROBE_WASM,
                                  PLUGIN_CONFIG_JSON=harness.plugin_config_scalar(sc["plugin"]),
                                  ENV_KEY_VALUES="{}"))
        elif f == "gateway":
            parts.append(_snippet("wasm", NAME="llm_gateway", WASM_PATH=WASM_RUN,
                                  PLUGIN_CONFIG_JSON=harness.plugin_config_scalar(sc["plugin"]),
                                  ENV_KEY_VALUES=json.dumps(scenarios.GATEWAY_ENV)))
        else:
            raise ValueError(f"unknown filter {f!r} in scenario {sc['id']}")
    listen, admin = harness.free_port(), harness.free_port()
    path = RUN / f"envoy-{tag}.yaml"
    harness.render_envoy_config(BENCH / "envoy" / "bench.yaml.tmpl", str(path),
                                ADMIN_PORT=admin, LISTEN_PORT=listen, UPSTREAM_PORT=upstream_port,
                                HTTP_FILTERS="\n".join(parts))
    return path, listen, admin


class Target:
    """A started proxy: Envoy or LiteLLM."""

    def __init__(self, proc, port, log, ready_ms, kind, admin=None):
        self.proc, self.port, self.log, self.ready_ms = proc, port, log, ready_ms
        self.kind, self.admin = kind, admin

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        harness.stop(self.proc)


class Rejected(Exception):
    """Envoy refused the scenario's plugin config (the module's on_configure failed)."""


def start_envoy(sc: dict, upstream_port: int, tag: str, concurrency: int = 1,
                extra_args=()) -> Target:
    cfg, listen, admin = render_envoy(sc, upstream_port, tag)
    log = RUN / f"envoy-{tag}.log"
    log.unlink(missing_ok=True)
    cmd = [harness.envoy_binary(), "-c", str(cfg), "--base-id", str(harness.next_base_id()),
           "--concurrency", str(concurrency), *extra_args]
    t0 = time.monotonic()
    proc = spawn(cmd, log, S["envoy_cpu"])
    deadline = t0 + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log.read_text(errors="replace")
            if REJECTED in text:
                m = re.search(r"wasm log [^:]*: (.*)", text)
                raise Rejected(m.group(1).strip() if m else REJECTED)
            errors = [l for l in text.splitlines() if "[critical]" in l or "[error]" in l]
            raise harness.HarnessError(f"Envoy exited with {proc.returncode}: "
                                       f"{(errors or ['(no error line)'])[-1][-300:]}\n"
                                       f"{harness.tail(log)}")
        status, body = harness.http_get(f"http://127.0.0.1:{admin}/ready", timeout=0.5)
        if status == 200 and body.strip() == "LIVE":
            return Target(proc, listen, log, (time.monotonic() - t0) * 1e3, "envoy", admin)
        time.sleep(0.005)
    harness.stop(proc)
    raise harness.HarnessError(f"Envoy not LIVE after 60 s:\n{harness.tail(log)}")


# ----------------------------------------------------------------------------- litellm


class LiteLLM:
    """One LiteLLM proxy for the whole run (it takes seconds to start)."""

    def __init__(self, nginx_port: int, paced_port: int):
        self.nginx_port, self.paced_port = nginx_port, paced_port
        self.target: Target | None = None
        self.error: str | None = None

    def get(self) -> Target:
        if self.target or self.error:
            if self.error:
                raise harness.HarnessError(self.error)
            return self.target
        if not LITELLM.exists():
            self.error = f"{LITELLM.relative_to(REPO)} missing (run bench/run.sh)"
            raise harness.HarnessError(self.error)
        cfg = harness.render_envoy_config(BENCH / "litellm.yaml.tmpl", str(RUN / "litellm.yaml"),
                                          UPSTREAM_PORT=self.nginx_port, PACED_PORT=self.paced_port)
        port = harness.free_port()
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
               "LITELLM_TELEMETRY": "False", "DISABLE_ADMIN_UI": "True",
               "NO_DOCS": "True", "PYTHONUNBUFFERED": "1"}
        log = RUN / "litellm.log"
        t0 = time.monotonic()
        proc = spawn([str(LITELLM), "--config", cfg, "--host", "127.0.0.1", "--port", str(port),
                      "--num_workers", "1"], log, S["envoy_cpu"], env=env)
        deadline = t0 + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            status, _ = harness.http_get(f"http://127.0.0.1:{port}/health/liveliness", timeout=1)
            if status == 200:
                self.target = Target(proc, port, log, (time.monotonic() - t0) * 1e3, "litellm")
                return self.target
            time.sleep(0.1)
        harness.stop(proc)
        self.error = f"LiteLLM did not start (see {log.relative_to(REPO)}):\n{harness.tail(log)}"
        raise harness.HarnessError(self.error)

    def stop(self):
        if self.target:
            self.target.stop()


# ----------------------------------------------------------------------------- requests


def mint_jwt() -> str:
    def b64(obj) -> bytes:
        raw = obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    now = int(time.time())
    signing = b64({"alg": "HS256", "typ": "JWT", "kid": "bench"}) + b"." + b64(
        {"sub": "bench", "plan": "bench", "iss": "bench", "aud": "llm-gateway", "iat": now,
         "nbf": now - 60, "exp": now + 86400})
    sig = hmac.new(scenarios.JWT_SECRET.encode(), signing, hashlib.sha256).digest()
    return (signing + b"." + b64(sig)).decode()


JWT = mint_jwt()


def request_of(sc: dict, kind: str, model: str = "bench-gpt") -> tuple[bytes, dict]:
    body = json.loads((BENCH / "bodies" / "chat_request.json").read_text())
    body["model"] = model
    headers = {**scenarios.CLIENT_HEADERS, "x-llm-gateway-cluster": "upstream"}
    if kind == "chat_stream":
        body["stream"] = True
        headers["x-bench-stream"] = "1"
    for k, v in (sc.get("headers") or {}).items():
        headers[k] = v.replace("{JWT}", JWT)
    return json.dumps(body, ensure_ascii=False, separators=(", ", ": ")).encode(), headers


def wrk_script(tag: str, body: bytes, headers: dict) -> Path:
    body_path = RUN / f"body-{tag}.json"
    body_path.write_bytes(body)
    lines = ['wrk.method = "POST"',
             f"local f = assert(io.open({json.dumps(str(body_path))}, \"rb\"))",
             'wrk.body = f:read("*a")', "f:close()",
             'wrk.headers["content-type"] = "application/json"']
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path = RUN / f"wrk-{tag}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_wrk(port: int, script: Path, seconds: int, threads: int, conns: int) -> str:
    cmd = ["taskset", "-c", str(S["load_cpu"]), "wrk", f"-t{threads}", f"-c{conns}",
           f"-d{seconds}s", "--latency", "--timeout", "10s", "-s", str(script),
           f"http://127.0.0.1:{port}{CHAT_PATH}"]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    text = out.stdout.decode("utf-8", "replace")
    if out.returncode != 0:
        raise harness.HarnessError(f"wrk failed ({out.returncode}):\n{text}")
    return text


def children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# ----------------------------------------------------------------------------- phases


def run_load(sc: dict, ports: dict, litellm: LiteLLM, nginx: subprocess.Popen) -> dict:
    row = {"id": sc["id"], "title": sc["title"], "filters": sc.get("filters", []),
           "target": sc["target"]}
    say(f"[{sc['id']}] {sc['title']}")
    try:
        if sc["target"] == "envoy":
            target = start_envoy(sc, ports["nginx"], f"load-{sc['id']}", S["envoy_concurrency"])
        else:
            target = litellm.get()
    except Rejected as err:
        reason = f"not built yet: plugin config rejected by module ({err})"
        if not sc.get("needs"):
            return {**row, "status": "failed", "reason": reason}
        return {**row, "status": "skipped", "reason": reason}
    except harness.HarnessError as err:
        return {**row, "status": "failed", "reason": str(err).splitlines()[0]}
    row["ready_ms"] = target.ready_ms
    try:
        body, headers = request_of(sc, sc["request"])
        status, text = post(target.port, CHAT_PATH, body, headers)
        missing = [e for e in sc.get("expect", []) if e not in text]
        if status != 200 or missing:
            reason = f"smoke request: status {status}, body {text[:160]!r}"
            if sc.get("needs"):
                return {**row, "status": "skipped", "reason": f"not built yet: {reason}"}
            return {**row, "status": "failed", "reason": reason}
        script = wrk_script(sc["id"], body, headers)
        if S["latency_s"] > 0:
            row["low_load"] = report.parse_wrk(run_wrk(target.port, script, S["latency_s"], 1, 1))
        # LiteLLM answers its first requests slowly (lazy initialization): warm it up longer.
        warmup = max(S["warmup_s"], 5) if target.kind == "litellm" else S["warmup_s"]
        if warmup > 0:
            run_wrk(target.port, script, warmup, S["threads"], S["connections"])
        load0 = os.getloadavg()
        p0, n0, c0, t0 = cpu_ticks(target.pid), cpu_ticks(nginx.pid), children_cpu_s(), time.monotonic()
        text = run_wrk(target.port, script, S["duration_s"], S["threads"], S["connections"])
        p1, n1, c1, t1 = cpu_ticks(target.pid), cpu_ticks(nginx.pid), children_cpu_s(), time.monotonic()
        row.update(report.parse_wrk(text))
        row["wrk_output"] = text
        wall = t1 - t0
        proxy_s = (p1 - p0) / CLK_TCK
        row["proxy_cpu_pct"] = 100 * proxy_s / wall
        row["proxy_cpu_us_per_req"] = 1e6 * proxy_s / max(1, row["requests"])
        row["core0_cpu_pct"] = 100 * ((n1 - n0) / CLK_TCK + (c1 - c0)) / wall
        row["loadavg"] = [load0[0], os.getloadavg()[0]]
        row["vmhwm_kb"] = tree_status_kb(target.pid, "VmHWM")
        row["vmrss_kb"] = tree_status_kb(target.pid, "VmRSS")
        row["status"] = "ok"
        say(f"[{sc['id']}] {row['rps']:.0f} req/s, p50 {row['p50_ms']:.2f} ms, p99 "
            f"{row['p99_ms']:.2f} ms, proxy CPU {row['proxy_cpu_pct']:.0f} %, "
            f"{row['proxy_cpu_us_per_req']:.1f} us/req, core 0 {row['core0_cpu_pct']:.0f} %")
        if row["non2xx"] or row["socket_errors"]:
            say(f"[{sc['id']}] WARNING: {row['non2xx']} non-2xx, {row['socket_errors']} socket errors")
        return row
    finally:
        if target.kind == "envoy":
            target.stop()


def run_rounds(scs: list[dict], ports: dict, litellm: LiteLLM, nginx) -> list[dict]:
    """Runs the scenarios S["rounds"] times, interleaved; returns one row per scenario."""
    rounds: dict[str, list[dict]] = {}
    for rnd in range(S["rounds"]):
        if S["rounds"] > 1:
            say(f"round {rnd + 1} of {S['rounds']}")
        for sc in scs:
            if any(r["status"] != "ok" for r in rounds.get(sc["id"], [])):
                continue
            row = run_load(sc, ports, litellm, nginx)
            row["baseline_a"], row["baseline_b"] = sc.get("baseline_a"), sc.get("baseline_b")
            if row["status"] != "ok":
                say(f"[{sc['id']}] {row['status'].upper()}: {row['reason']}")
            rounds.setdefault(sc["id"], []).append(row)
    out = []
    for rows in rounds.values():
        # The round with the median throughput stands for the scenario; all are kept.
        ok = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: r["rps"])
        row = ok[(len(ok) - 1) // 2] if ok else rows[-1]
        row["rounds_rps"] = [r.get("rps") for r in rows]
        row["rounds_proxy_cpu_us_per_req"] = [r.get("proxy_cpu_us_per_req") for r in rows]
        out.append(row)
    return out


def run_stream(sc: dict, ports: dict, litellm: LiteLLM) -> dict:
    row = {"id": sc["id"], "title": sc["title"], "target": sc["target"]}
    say(f"[stream {sc['id']}] {sc['title']}")
    target = None
    model = "bench-gpt"
    try:
        if sc["target"] == "envoy":
            target = start_envoy(sc, ports["paced"], f"stream-{sc['id']}", S["envoy_concurrency"])
            port = target.port
        elif sc["target"] == "litellm":
            port = litellm.get().port
            model = "bench-gpt-paced"
        else:
            port = ports["paced"]
    except Rejected as err:
        return {**row, "status": "skipped", "reason": f"not built yet: plugin config rejected by module ({err})"}
    except harness.HarnessError as err:
        return {**row, "status": "failed", "reason": str(err).splitlines()[0]}
    try:
        body, headers = request_of(sc, "chat_stream", model)
        res = sse_client.run("127.0.0.1", port, CHAT_PATH, body, headers, S["stream_requests"])
        if not res["ttfe"]:
            return {**row, "status": "failed", "reason": f"no successful stream ({res['errors']} errors)"}
        for key in ("ttfb", "ttfe", "total"):
            for p in (50, 99):
                row[f"{key}_p{p}_ms"] = 1e3 * report.percentile(res[key], p)
        row["n"] = len(res["ttfe"])
        row["errors"] = res["errors"]
        row["status"] = "ok"
        say(f"[stream {sc['id']}] first event p50 {row['ttfe_p50_ms']:.2f} ms p99 "
            f"{row['ttfe_p99_ms']:.2f} ms; whole stream p50 {row['total_p50_ms']:.2f} ms")
        return row
    finally:
        if target is not None:
            target.stop()


LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}) (\d+) \[(\w+)\] (.*)$")


def parse_startup_log(text: str) -> dict:
    """Times from an Envoy log with --log-format '%Y-%m-%d %T.%f %t [%n] %v' and wasm:trace:
    compile_ms: 'Base Wasm created' -> the first '_initialize()' (module load + V8 compile);
    per_vm_ms: per worker thread, 'worker entering dispatch loop' -> its first
    'proxy_on_configure return' (VM clone, instantiate, _initialize, on_vm_start, on_configure);
    averaged over workers."""
    def ts(s):
        return datetime.datetime.strptime(s, "%Y-%m-%d %H:%M:%S.%f").timestamp()

    base = init = None
    worker_start: dict[str, float] = {}
    worker_done: dict[str, float] = {}
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        if not m:
            continue
        t, tid, msg = ts(m.group(1)), m.group(2), m.group(4)
        if base is None and "Base Wasm created" in msg:
            base = t
        elif base is not None and init is None and "[host->vm] _initialize()" in msg:
            init = t
        elif "worker entering dispatch loop" in msg:
            worker_start[tid] = t
        elif "proxy_on_configure return" in msg and tid in worker_start and tid not in worker_done:
            worker_done[tid] = t
    out: dict = {"workers_configured": len(worker_done)}
    if base is not None and init is not None:
        out["compile_ms"] = (init - base) * 1e3
    per_vm = [(worker_done[t] - worker_start[t]) * 1e3 for t in worker_done]
    if per_vm:
        out["per_vm_ms"] = sum(per_vm) / len(per_vm)
    return out


def run_startup(sc: dict, ports: dict) -> dict:
    wasm = any(f in ("noop", "gateway") for f in sc.get("filters", []))
    row = {"id": sc["id"], "filters": " + ".join(sc.get("filters", [])) or "router only"}
    say(f"[start-up {sc['id']}] {row['filters']}")
    samples: dict[str, list] = {}
    args = ("--log-format", "%Y-%m-%d %T.%f %t [%n] %v", "-l", "info",
            "--component-log-level", "wasm:trace,main:debug,config:debug")
    for conc in (1, 3):
        for i in range(S["startup_runs"]):
            try:
                target = start_envoy(sc, ports["nginx"], f"startup-{sc['id']}-{conc}-{i}", conc, args)
            except (Rejected, harness.HarnessError) as err:
                return {**row, "status": "failed", "reason": str(err).splitlines()[0]}
            try:
                parsed: dict = {}
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:  # worker VMs may finish after LIVE
                    parsed = parse_startup_log(target.log.read_text(errors="replace"))
                    if not wasm or parsed["workers_configured"] >= conc:
                        break
                    time.sleep(0.05)
                time.sleep(0.5)
                samples.setdefault(f"rss_kb_c{conc}", []).append(proc_status_kb(target.pid, "VmRSS"))
                if conc == 1:
                    samples.setdefault("ready_ms", []).append(target.ready_ms)
                for key in ("compile_ms", "per_vm_ms"):
                    if key in parsed:
                        samples.setdefault(f"{key}_c{conc}", []).append(parsed[key])
            finally:
                target.stop()
    row["status"] = "ok"
    row["ready_ms"] = report.median(samples.get("ready_ms", []))
    row["rss_kb_c1"] = report.median(samples.get("rss_kb_c1", []))
    row["rss_kb_c3"] = report.median(samples.get("rss_kb_c3", []))
    row["compile_ms"] = report.median(samples.get("compile_ms_c1", []) + samples.get("compile_ms_c3", []))
    # Per-VM time from the 1-worker starts only: with 3 workers the VMs start in parallel on
    # the one pinned core and each one's wall time includes the others'.
    row["per_vm_ms"] = report.median(samples.get("per_vm_ms_c1", []))
    row["samples"] = samples
    return row


# ----------------------------------------------------------------------------- main


def machine() -> dict:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return {"nproc": os.cpu_count(), "cpu_model": model, "mem_total_gib": mem_kb / 1024 / 1024,
            "kernel": os.uname().release}


def git_commit() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, check=False).stdout.decode().strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def derive(res: dict) -> None:
    by_id = {r["id"]: r for r in res["load"] if r["status"] == "ok"}
    for r in res["load"]:
        if r["status"] != "ok":
            continue
        a, b = by_id.get(r.get("baseline_a")), by_id.get(r.get("baseline_b"))
        r["ratio_a"] = r["rps"] / a["rps"] if a else None
        r["ratio_b"] = r["rps"] / b["rps"] if b else None
        lo, alo = r.get("low_load"), (a or {}).get("low_load")
        r["added_p50_us_low_load"] = (lo["p50_ms"] - alo["p50_ms"]) * 1e3 if lo and alo else None
    probe = {r["id"]: r for r in res.get("probe", []) if r["status"] == "ok"}
    for r in res.get("probe", []):
        base = probe.get("p-none")
        if r["status"] == "ok" and base:
            r["ratio_b"] = r["rps"] / base["rps"]
            r["added_cpu_us_per_req"] = r["proxy_cpu_us_per_req"] - base["proxy_cpu_us_per_req"]
    st = {r["id"]: r for r in res["streaming"] if r["status"] == "ok"}
    for r in res["streaming"]:
        if r["status"] == "ok" and "a" in st:
            r["ttfe_added_p50_us"] = (r["ttfe_p50_ms"] - st["a"]["ttfe_p50_ms"]) * 1e3
    su = {r["id"]: r for r in res["startup"] if r["status"] == "ok"}
    base = su.get("a")
    for r in res["startup"]:
        if r["status"] == "ok" and base and r is not base and all(
                x.get(k) for x in (r, base) for k in ("rss_kb_c1", "rss_kb_c3")):
            r["per_vm_rss_kb"] = ((r["rss_kb_c3"] - r["rss_kb_c1"]) -
                                  (base["rss_kb_c3"] - base["rss_kb_c1"])) / 2


def with_b_twins(scs: list[dict]) -> list[dict]:
    """With BENCH_WASM_B: after each scenario with the module, its twin `<id>-B` running
    module B, so that A and B alternate within every round (the machine's drift hits both)."""
    if not WASM_B:
        return scs
    out = []
    for sc in scs:
        out.append(sc)
        if "gateway" in sc.get("filters", []):
            for i in range(len(WASM_BS)):
                tag = f"B{i + 1 if i else ''}"
                out.append({**sc, "id": f"{sc['id']}-{tag}", "title": f"{sc['title']} [module {tag}]",
                            "filters": [f"gateway_b{i + 1 if i else ''}" if f == "gateway" else f
                                        for f in sc["filters"]]})
    return out


def main() -> int:
    for path in (WASM, NOOP_WASM):
        if not path.exists():
            say(f"error: {path} is missing (bench/run.sh builds it)")
            return 1
    raise_autogroup("self")  # wrk and the streaming client run in this session
    if RUN.exists():
        shutil.rmtree(RUN)
    RUN.mkdir(parents=True)
    # Every scenario loads this copy of the release artifact, so a rebuild of target/ during
    # the run (e.g. by another `make build`) cannot mix two modules in one set of figures.
    shutil.copyfile(WASM, WASM_RUN)
    for wasm_b, wasm_b_run in zip(WASM_BS, WASM_B_RUNS):
        shutil.copyfile(wasm_b, wasm_b_run)
    envoy_version = subprocess.run([harness.envoy_binary(), "--version"], stdout=subprocess.PIPE,
                                   check=False).stdout.decode()
    m = re.search(r"version: \S+/([\d.]+)", envoy_version)
    res = {
        "meta": {
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": machine(),
            "envoy_version": m.group(1) if m else envoy_version.strip(),
            "commit": git_commit(),
            "wasm": {"path": str(WASM.relative_to(REPO)), "bytes": WASM_RUN.stat().st_size,
                     "sha256": hashlib.sha256(WASM_RUN.read_bytes()).hexdigest(),
                     "built": datetime.datetime.fromtimestamp(WASM.stat().st_mtime).astimezone()
                     .isoformat(timespec="seconds")},
            "noop_wasm": {"bytes": NOOP_WASM.stat().st_size},
            "wasm_b": ({"path": str(WASM_B), "bytes": WASM_B_RUN.stat().st_size,
                        "sha256": hashlib.sha256(WASM_B_RUN.read_bytes()).hexdigest()}
                       if WASM_B else None),
            "wasm_bs": [{"path": str(b), "bytes": r.stat().st_size,
                         "sha256": hashlib.sha256(r.read_bytes()).hexdigest()}
                        for b, r in zip(WASM_BS, WASM_B_RUNS)],
            "settings": S,
            "placement": (f"Envoy (--concurrency {S['envoy_concurrency']}: 1 worker thread; the "
                          f"main thread shares the core) and LiteLLM pinned to core "
                          f"{S['envoy_cpu']}; wrk (-t{S['threads']}), nginx (1 worker) and the "
                          f"streaming client/paced upstream pinned to core {S['load_cpu']}; "
                          f"loopback TCP, HTTP/1.1 everywhere; every process (and its "
                          f"scheduler autogroup) at nice {os.nice(0)}"),
            "loadavg_start": list(os.getloadavg()),
        },
        "load": [], "streaming": [], "startup": [],
    }
    say(f"load average {res['meta']['loadavg_start'][0]:.2f} (1 min); {res['meta']['placement']}")
    ports = {"nginx": harness.free_port(), "paced": harness.free_port()}
    nginx = start_nginx(ports["nginx"])
    paced = start_paced(ports["paced"])
    litellm = LiteLLM(ports["nginx"], ports["paced"])

    def wanted(sc):
        if sc.get("target") == "litellm" and SKIP_LITELLM:
            return False
        return not ONLY or sc["id"] in ONLY

    try:
        res["load"] = run_rounds(with_b_twins([sc for sc in scenarios.LOAD if wanted(sc)]), ports,
                                 litellm, nginx)
        for sc in scenarios.STREAM:
            if wanted(sc) or sc["target"] == "direct":
                row = run_stream(sc, ports, litellm)
                if row["status"] != "ok":
                    say(f"[stream {sc['id']}] {row['status'].upper()}: {row['reason']}")
                res["streaming"].append(row)
        if PROBE:
            if not PROBE_WASM.exists():
                say(f"error: {PROBE_WASM} is missing (bench/run.sh builds it)")
                return 1
            say("probe: pricing the module's kinds of host calls (bench/probe-filter)")
            res["probe"] = run_rounds(scenarios.PROBE, ports, litellm, nginx)
        load_by_id = {sc["id"]: sc for sc in scenarios.LOAD}
        for sid in scenarios.STARTUP:
            if not ONLY or sid in ONLY:
                res["startup"].append(run_startup(load_by_id[sid], ports))
    finally:
        litellm.stop()
        harness.stop(paced)
        harness.stop(nginx)
    if litellm.target:
        res["meta"]["litellm_ready_ms"] = litellm.target.ready_ms
    res["meta"]["loadavg_end"] = list(os.getloadavg())
    res["notes"] = NOTES
    derive(res)
    js, md = report.write(res, BENCH / "results")
    print()
    print(md.read_text())
    say(f"wrote {js.relative_to(REPO)} and {md.relative_to(REPO)}; logs and configs in "
        f"{RUN.relative_to(REPO)}/")
    failed = [r["id"] for r in res["load"] + res["streaming"] + res["startup"] + res.get("probe", [])
              if r["status"] == "failed"]
    if failed:
        say(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
