#!/usr/bin/env python3
"""Package a .wasm as a Wasm OCI image ("compat" variant) in an OCI image layout directory.

Usage: oci_image.py WASM OUT_DIR TAG

The image is what Istio (pilot-agent, `WasmPlugin.spec.url: oci://...`) and Envoy Gateway
(`EnvoyExtensionPolicy` `wasm.code.type: Image`) pull. Both fetchers (Istio
pkg/wasm/imagefetcher.go, Envoy Gateway internal/wasm/imagefetcher.go, the same code) try, in
order: a Docker schema-2 manifest; the *compat* variant (the LAST layer has media type
`application/vnd.oci.image.layer.v1.tar+gzip` and is a tar.gz holding `plugin.wasm`); the *oci*
variant (EXACTLY two layers, one `application/vnd.module.wasm.content.layer.v1+wasm`). A single
raw-wasm layer therefore matches neither, so we build the compat variant: one tar+gzip layer
holding `plugin.wasm`, with the annotation `module.wasm.image/variant=compat` the spec asks for.
Standard tools (skopeo, crane, docker registries) handle it like any image.

The output is reproducible: tar and gzip headers carry no timestamps, owners or host names, so
the same .wasm always gives the same manifest digest. Only the Python standard library is used.

Writes OUT_DIR/{oci-layout,index.json,blobs/sha256/*} (OUT_DIR is replaced) and prints one JSON
line: {"tag", "manifest_digest", "layer_digest", "wasm_sha256", "wasm_bytes", "image_bytes"}.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
PLUGIN_FILE_NAME = "plugin.wasm"
VARIANT_ANNOTATION = {"module.wasm.image/variant": "compat"}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def plugin_tar(wasm: bytes) -> bytes:
    """An uncompressed tar with the single regular file plugin.wasm (fixed metadata)."""
    info = tarfile.TarInfo(PLUGIN_FILE_NAME)
    info.size = len(wasm)
    info.mode = 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(wasm))
    return buf.getvalue()


def gzip_deterministic(data: bytes) -> bytes:
    """gzip with mtime 0 and no file name, so equal input gives equal bytes."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def canonical_json(value: dict) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def descriptor(media_type: str, blob: bytes, **extra) -> dict:
    return {"mediaType": media_type, "digest": "sha256:" + sha256_hex(blob), "size": len(blob), **extra}


def write_blob(blobs_dir: Path, blob: bytes) -> None:
    (blobs_dir / sha256_hex(blob)).write_bytes(blob)


def build_image(wasm: bytes, out_dir: Path, tag: str) -> dict:
    layer_tar = plugin_tar(wasm)
    layer = gzip_deterministic(layer_tar)
    # OCI image config: diff_ids are the digests of the UNcompressed layers. The platform is
    # informative only (a wasm module runs on any Envoy); the fetchers do not read it.
    config = canonical_json(
        {
            "architecture": "wasm",
            "os": "wasip1",
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha256_hex(layer_tar)]},
            "config": {},
        }
    )
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": descriptor(CONFIG_MEDIA_TYPE, config),
            "layers": [descriptor(LAYER_MEDIA_TYPE, layer)],
            "annotations": VARIANT_ANNOTATION,
        }
    )
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            descriptor(MANIFEST_MEDIA_TYPE, manifest, annotations={"org.opencontainers.image.ref.name": tag})
        ],
    }

    if out_dir.exists():
        shutil.rmtree(out_dir)
    blobs_dir = out_dir / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True)
    for blob in (layer, config, manifest):
        write_blob(blobs_dir, blob)
    (out_dir / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}) + "\n")
    (out_dir / "index.json").write_text(json.dumps(index, indent=2) + "\n")

    return {
        "tag": tag,
        "manifest_digest": "sha256:" + sha256_hex(manifest),
        "layer_digest": "sha256:" + sha256_hex(layer),
        "wasm_sha256": sha256_hex(wasm),
        "wasm_bytes": len(wasm),
        "image_bytes": len(layer) + len(config) + len(manifest),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    wasm_path, out_dir, tag = Path(argv[1]), Path(argv[2]), argv[3]
    wasm = wasm_path.read_bytes()
    if not wasm.startswith(b"\0asm"):
        print(f"error: {wasm_path} is not a wasm module (no \\0asm magic)", file=sys.stderr)
        return 1
    print(json.dumps(build_image(wasm, out_dir, tag)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
