"""The module delivered the way Istio and Envoy Gateway deliver it: an ECDS resource (here a file
Envoy watches, rewritten atomically) whose code is a local file (Istio's agent downloads the
module and rewrites the resource to a local path) or a remote HTTP URI checked by sha256 (Envoy
Gateway serves modules from its wasm cache). Stdlib only.

    server = WasmServer(wasm_bytes)                        # http://127.0.0.1:<port>/<sha>.wasm
    ecds = EcdsFiles(directory)
    ecds.publish(plugin_config, code=local_code(path))     # both resources, version 1
    ecds.publish(new_config, code=...)                     # version 2: Envoy hot-reloads it
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import harness

ECDS_TEMPLATE = harness.INTEGRATION_DIR / "envoy.ecds.yaml.tmpl"
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
# The two filters of the chain that come by ECDS (names of their config_discovery resources).
MODULE = "llm_gateway"
SIGNER = "llm_gateway_signer"
SIGNER_CONFIG = {"role": "apply-deferred-headers"}
VM_ENV = {
    "TEST_OPENAI_KEY": "sk-upstream-test-key",
    "TEST_AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "TEST_AWS_SECRET_ACCESS_KEY": "fake-secret",
}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def local_code(path) -> dict:
    """vm_config.code as Istio's agent leaves it: the module downloaded to a local file."""
    return {"local": {"filename": str(Path(path).resolve())}}


def remote_code(port: int, sha256: str, *, name: str | None = None) -> dict:
    """vm_config.code as Envoy Gateway writes it: fetched over HTTP from `wasm_cluster`, checked
    by sha256 (Envoy Gateway retries 10 times with a 1 s backoff; once here, to fail fast)."""
    return {"remote": {
        "http_uri": {"uri": f"http://127.0.0.1:{port}/{name or sha256}.wasm",
                     "cluster": "wasm_cluster", "timeout": "10s"},
        "sha256": sha256,
        "retry_policy": {"num_retries": 1,
                         "retry_back_off": {"base_interval": "0.1s", "max_interval": "0.2s"}},
    }}


def wasm_resource(name: str, plugin_config, code: dict) -> dict:
    """The TypedExtensionConfig of one wasm filter, in the shape of Istio's ECDS dump. Both
    instances share vm_id and vm_config, so Envoy runs them in one VM (the signer reads what the
    module deferred), as with the static configs."""
    text = plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config)
    return {
        "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
        "name": name,
        "typed_config": {
            "@type": WASM_TYPE,
            "config": {
                "name": name,
                "root_id": name,
                "vm_config": {
                    "vm_id": MODULE,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": code,
                    "environment_variables": {"key_values": VM_ENV},
                },
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                  "value": text},
                "failure_policy": "FAIL_RELOAD",
            },
        },
    }


class EcdsFiles:
    """The watched ECDS files of one Envoy: one DiscoveryResponse (a single resource) per file."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.version = 0

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def write(self, resource: dict) -> None:
        """Replace the file atomically: Envoy's file watcher reacts to a rename into place (an
        in-place write could also be read half-written)."""
        self.version += 1
        target = self.path(resource["name"])
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps({"version_info": str(self.version), "resources": [resource]}))
        os.rename(tmp, target)

    def publish(self, plugin_config, code: dict, *, signer: bool = True) -> None:
        """The module's resource (and, unless signer=False, the signer's) with this code."""
        self.write(wasm_resource(MODULE, plugin_config, code))
        if signer:
            self.write(wasm_resource(SIGNER, SIGNER_CONFIG, code))


class WasmServer:
    """Serves `wasm` at any path ending in .wasm on 127.0.0.1:<free port>, as Envoy Gateway's
    wasm cache does; counts the fetches."""

    def __init__(self, wasm: bytes):
        self.wasm = wasm
        self.sha256 = sha256_hex(wasm)
        self.fetches: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (stdlib name)
                server.fetches.append(self.path)
                if not self.path.endswith(".wasm"):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("content-type", "application/wasm")
                self.send_header("content-length", str(len(server.wasm)))
                self.end_headers()
                self.wfile.write(server.wasm)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def ecds_stat(gw: harness.Gateway, name: str, counter: str) -> int:
    """An ECDS counter of one resource from /stats, e.g. config_reload or config_fail.

    Envoy names them extension_config_discovery.<stat_prefix>.<resource>.<counter> (HTTP
    filters: stat prefix `http_filter`); summed over whatever prefix this version uses.
    The admin server shares Envoy's main thread with ECDS updates, which compile the module
    (seconds): hence the long timeout."""
    status, text = harness.http_get(f"{gw.admin_url}/stats", timeout=60)
    if status != 200:
        raise harness.HarnessError(f"admin /stats answered {status}")
    total = 0
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        if key.startswith("extension_config_discovery.") and key.endswith(f".{name}.{counter}"):
            total += int(value)
    return total
