#!/usr/bin/env bash
# Build the release .wasm and print its size.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

cargo build --release --target wasm32-wasip1
wasm=target/wasm32-wasip1/release/llm_gateway.wasm
if [[ ! -f "$wasm" ]]; then
    echo "error: $wasm was not produced (is crate-type cdylib?)" >&2
    exit 1
fi
bytes="$(stat -c %s "$wasm")"
awk -v b="$bytes" -v f="$wasm" 'BEGIN { printf "wasm: %s %d bytes (%.1f KiB)\n", f, b, b / 1024 }'
