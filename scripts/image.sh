#!/usr/bin/env bash
# Package the release .wasm as a Wasm OCI image (the "compat" variant Istio and Envoy Gateway
# pull: one tar+gzip layer holding plugin.wasm) in an OCI image layout directory.
# See scripts/oci_image.py for the format and why. Run scripts/build.sh first (make image does).
#   LLM_GATEWAY_WASM  the .wasm to package (default: the release build in CARGO_TARGET_DIR)
#   IMAGE_DIR         output layout directory (default: <target>/oci/llm-gateway; replaced)
#   IMAGE_TAG         tag inside the layout (default: the crate version from Cargo.toml)
# Push it with e.g.: skopeo copy oci:<IMAGE_DIR>:<IMAGE_TAG> docker://REGISTRY/llm-gateway:<IMAGE_TAG>
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

target_dir="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
wasm="${LLM_GATEWAY_WASM:-$target_dir/wasm32-wasip1/release/llm_gateway.wasm}"
out="${IMAGE_DIR:-$target_dir/oci/llm-gateway}"
tag="${IMAGE_TAG:-$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)}"

if [[ ! -f "$wasm" ]]; then
    echo "error: $wasm not found; run scripts/build.sh (or make build) first" >&2
    exit 1
fi
if [[ -z "$tag" ]]; then
    echo "error: no IMAGE_TAG and no version in Cargo.toml" >&2
    exit 1
fi

summary="$(python3 scripts/oci_image.py "$wasm" "$out" "$tag")"
echo "$summary"
echo "image: oci:$out:$tag"
