"""A real rate-limit service for fleet-wide budgets: Kuadrant Limitador (built from
../shared/vendor/limitador by scripts/limitador.sh, cached outside the clone) on Redis
(Debian redis-server), both on free loopback ports.

    redis = Redis.start(workdir)
    rls = Limitador.start(workdir, redis, limits=[...])
    rls.used("llm-gateway")       # {consumer: tokens charged} read from Redis
    redis.restart(); rls.stop(); redis.stop()
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import harness

SCRIPT = harness.REPO_ROOT / "scripts" / "limitador.sh"


def limitador_binary() -> str:
    """Builds Limitador the first time (about 20 minutes on 2 cores), then prints the cached
    binary's path."""
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True)
    if done.returncode != 0:
        raise harness.HarnessError(f"scripts/limitador.sh failed:\n{done.stderr[-4000:]}")
    return done.stdout.strip().splitlines()[-1]


def wait_until(check, timeout: float, what: str, proc=None, log_path=None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            log = harness.tail(log_path) if log_path else ""
            raise harness.HarnessError(f"{what} did not start:\n{log}")
        time.sleep(0.05)


class Redis:
    """redis-server without persistence: a restart empties it, as a crashed cache would."""

    def __init__(self, workdir: Path, port: int):
        self.workdir, self.port = workdir, port
        self.url = f"redis://127.0.0.1:{port}"
        self.log_path = workdir / f"redis-{port}.log"
        self.proc = None

    @classmethod
    def start(cls, workdir: Path) -> "Redis":
        if shutil.which("redis-server") is None:
            raise harness.HarnessError("redis-server not found: run scripts/bootstrap.sh (Debian redis-server)")
        redis = cls(Path(workdir), harness.free_port())
        redis.run()
        return redis

    def run(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        wait_until(lambda: self.cli("PING") == "PONG", 10, "redis-server", self.proc, self.log_path)

    def cli(self, *args: str) -> str:
        done = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True,
                              timeout=5)
        return done.stdout.strip()

    def counter_values(self) -> list[int]:
        """Every integer value in the store (Limitador keeps one per counter)."""
        values = []
        for key in self.cli("--scan").splitlines():
            if self.cli("TYPE", key) == "string":
                raw = self.cli("GET", key)
                if raw.lstrip("-").isdigit():
                    values.append(int(raw))
        return values

    def stop(self) -> None:
        if self.proc is not None:
            harness.stop(self.proc)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.run()


class Limitador:
    """limitador-server with a limits file, its RLS (gRPC) port and its HTTP API port."""

    def __init__(self, proc, grpc_port: int, http_port: int, log_path: Path):
        self.proc, self.grpc_port, self.http_port, self.log_path = proc, grpc_port, http_port, log_path
        self.url = f"http://127.0.0.1:{http_port}"

    @classmethod
    def start(cls, workdir: Path, redis: Redis, limits: list[dict],
              storage: tuple[str, ...] = ("redis",)) -> "Limitador":
        workdir = Path(workdir)
        limits_path = workdir / "limits.yaml"
        limits_path.write_text(json.dumps(limits))  # JSON is YAML
        grpc_port, http_port = harness.free_port(), harness.free_port()
        log_path = workdir / "limitador.log"
        log = open(log_path, "ab")
        proc = subprocess.Popen(
            [limitador_binary(), "-b", "127.0.0.1", "-p", str(grpc_port), "-B", "127.0.0.1",
             "-P", str(http_port), str(limits_path), *storage, redis.url],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        server = cls(proc, grpc_port, http_port, log_path)
        wait_until(lambda: harness.http_get(server.url + "/status", timeout=0.5)[0] == 200, 30,
                   "limitador-server", proc, log_path)
        return server

    def counters(self, namespace: str) -> list[dict]:
        status, body = harness.http_get(f"{self.url}/counters/{namespace}", timeout=5)
        if status != 200:
            raise harness.HarnessError(f"GET /counters/{namespace}: {status} {body}")
        return json.loads(body)

    def stop(self) -> None:
        harness.stop(self.proc)
