"""The OCI image of the module (`make image`), round-tripped through a real registry.

`scripts/image.sh` packages the built .wasm as a Wasm OCI image, "compat" variant (one
`application/vnd.oci.image.layer.v1.tar+gzip` layer holding `plugin.wasm`), the format Istio's
and Envoy Gateway's image fetchers accept (see scripts/oci_image.py for why this variant).

A real registry (Debian `docker-registry`, distribution 2.x) is started on a free loopback port
with its storage in a temp dir; the image is pushed with Debian `skopeo` and pulled back two
ways: with skopeo into a fresh OCI layout, and with plain HTTP the way the meshes' fetcher
(go-containerregistry) reads it: manifest by tag, its digest, the last layer, plugin.wasm inside.
Both tools are installed by scripts/bootstrap.sh; if one is missing the tests FAIL.

Not tested here: a mesh (istio-agent or Envoy Gateway) pulling the image.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import posixpath
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import harness

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REPOSITORY = "llm-gateway"
TAG = "roundtrip"
REGISTRY_READY_S = 15.0


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"`{name}` is not installed: run scripts/bootstrap.sh (it installs skopeo and docker-registry)"
    return path


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kwargs)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def build_image(wasm_path: Path, out_dir: Path, tag: str) -> dict:
    """Run the script `make image` runs; return its JSON summary line."""
    env = {**os.environ, "LLM_GATEWAY_WASM": str(wasm_path), "IMAGE_DIR": str(out_dir), "IMAGE_TAG": tag}
    proc = run(["bash", str(harness.REPO_ROOT / "scripts" / "image.sh")], env=env)
    summary = json.loads(proc.stdout.splitlines()[0])
    assert summary["tag"] == tag
    return summary


def layout_manifest(layout: Path, tag: str) -> tuple[str, bytes]:
    """(digest, raw manifest bytes) of the manifest tagged `tag` in an OCI image layout."""
    index = json.loads((layout / "index.json").read_text())
    entries = [m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    assert len(entries) == 1, f"tag {tag!r} not exactly once in {layout}/index.json: {index}"
    digest = entries[0]["digest"]
    return digest, layout_blob(layout, digest)


def layout_blob(layout: Path, digest: str) -> bytes:
    algorithm, hex_digest = digest.split(":", 1)
    assert algorithm == "sha256"
    blob = (layout / "blobs" / "sha256" / hex_digest).read_bytes()
    assert sha256_hex(blob) == hex_digest, f"blob {digest} in {layout} does not hash to its name"
    return blob


def plugin_wasm_from_compat_layer(manifest: dict, read_blob) -> bytes:
    """plugin.wasm the way Istio's / Envoy Gateway's extractOCIStandardImage finds it: the LAST
    layer must be OCI tar+gzip; the first tar entry whose base name is plugin.wasm."""
    layer = manifest["layers"][-1]
    assert layer["mediaType"] == OCI_LAYER_TAR_GZIP
    blob = read_blob(layer["digest"])
    assert len(blob) == layer["size"] and "sha256:" + sha256_hex(blob) == layer["digest"]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob)), mode="r:") as tar:
        for member in tar:
            if posixpath.basename(member.name) == "plugin.wasm":
                data = tar.extractfile(member)
                assert data is not None, "plugin.wasm is not a regular file"
                return data.read()
    raise AssertionError("plugin.wasm not found in the layer")


class Registry:
    """Debian's docker-registry serving on 127.0.0.1:<free port>, storage in a temp dir."""

    def __init__(self, workdir: Path):
        self.port = harness.free_port()
        self.host = f"127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "registry.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'storage'}\n"
            f"http:\n  addr: {self.host}\n"
        )
        self.log_path = workdir / "registry.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [tool("docker-registry"), "serve", str(config)], stdout=self._log, stderr=subprocess.STDOUT
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + REGISTRY_READY_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"docker-registry exited:\n{self.log_path.read_text()}"
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise AssertionError(f"docker-registry not ready on {self.host}:\n{self.log_path.read_text()}")

    def get(self, path: str, accept: str | None = None) -> tuple[bytes, dict]:
        req = urllib.request.Request(f"http://{self.host}/v2/{path}")
        if accept:
            req.add_header("Accept", accept)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.read(), dict(resp.headers)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture()
def registry(tmp_path):
    reg = Registry(tmp_path / "registry")
    yield reg
    reg.stop()


@pytest.fixture()
def skopeo(tmp_path):
    """skopeo with an explicit accept-anything signature policy (the host's policy.json is not
    ours to rely on); plain HTTP to the loopback registry."""
    binary = tool("skopeo")
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))

    def skopeo_run(*args: str) -> subprocess.CompletedProcess:
        return run([binary, "--policy", str(policy), *args])

    return skopeo_run


def test_image_layout_is_the_compat_variant_holding_the_built_wasm(wasm_path, tmp_path):
    wasm = wasm_path.read_bytes()
    layout = tmp_path / "layout"
    summary = build_image(wasm_path, layout, TAG)

    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    digest, raw = layout_manifest(layout, TAG)
    assert digest == summary["manifest_digest"]
    manifest = json.loads(raw)
    assert manifest["mediaType"] == OCI_MANIFEST
    assert len(manifest["layers"]) == 1, "compat variant: exactly one layer"
    assert manifest["annotations"] == {"module.wasm.image/variant": "compat"}
    config = json.loads(layout_blob(layout, manifest["config"]["digest"]))
    layer_tar = gzip.decompress(layout_blob(layout, manifest["layers"][0]["digest"]))
    assert config["rootfs"]["diff_ids"] == ["sha256:" + sha256_hex(layer_tar)]

    plugin = plugin_wasm_from_compat_layer(manifest, lambda d: layout_blob(layout, d))
    assert sha256_hex(plugin) == sha256_hex(wasm) == summary["wasm_sha256"]


def test_image_is_reproducible(wasm_path, tmp_path):
    first = build_image(wasm_path, tmp_path / "a", TAG)
    second = build_image(wasm_path, tmp_path / "b", TAG)
    assert first["manifest_digest"] == second["manifest_digest"]


def test_push_to_registry_and_pull_back_keeps_digest_and_plugin_bytes(wasm_path, tmp_path, registry, skopeo):
    wasm_sha = sha256_hex(wasm_path.read_bytes())
    layout = tmp_path / "layout"
    summary = build_image(wasm_path, layout, TAG)
    pushed_digest = summary["manifest_digest"]
    remote = f"docker://{registry.host}/{REPOSITORY}"

    # Push. --preserve-digests: fail rather than let skopeo rewrite the manifest.
    digestfile = tmp_path / "pushed.digest"
    skopeo(
        "copy", "--preserve-digests", "--dest-tls-verify=false", "--digestfile", str(digestfile),
        f"oci:{layout}:{TAG}", f"{remote}:{TAG}",
    )
    assert digestfile.read_text().strip() == pushed_digest

    # Pull back with skopeo by tag: the raw manifest hashes to the pushed digest...
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"{remote}:{TAG}").stdout.encode()
    assert "sha256:" + sha256_hex(raw) == pushed_digest
    # ...and a copy by digest into a fresh layout holds the same plugin.wasm bytes.
    pulled = tmp_path / "pulled"
    skopeo(
        "copy", "--preserve-digests", "--src-tls-verify=false",
        f"{remote}@{pushed_digest}", f"oci:{pulled}:{TAG}",
    )
    pulled_digest, pulled_raw = layout_manifest(pulled, TAG)
    assert pulled_digest == pushed_digest
    plugin = plugin_wasm_from_compat_layer(json.loads(pulled_raw), lambda d: layout_blob(pulled, d))
    assert sha256_hex(plugin) == wasm_sha

    # Pull back over the registry's HTTP API, as the meshes' fetcher does (no skopeo involved).
    body, headers = registry.get(f"{REPOSITORY}/manifests/{TAG}", accept=OCI_MANIFEST)
    assert headers.get("Docker-Content-Digest") == pushed_digest
    assert headers.get("Content-Type") == OCI_MANIFEST
    assert "sha256:" + sha256_hex(body) == pushed_digest

    def registry_blob(digest: str) -> bytes:
        return registry.get(f"{REPOSITORY}/blobs/{digest}")[0]

    plugin = plugin_wasm_from_compat_layer(json.loads(body), registry_blob)
    assert sha256_hex(plugin) == wasm_sha
