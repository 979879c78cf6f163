#!/usr/bin/env bash
# Build Kuadrant Limitador (the real rate-limit service behind fleet-wide budgets) from the
# vendored source in ../shared/vendor/limitador and print the path of limitador-server.
#
# The build lives outside the clone, in $LLM_GATEWAY_CACHE (default ~/.cache/llm-gateway):
# the first build compiles RocksDB's C++ (about 20 minutes on 2 cores); later runs only
# compare the source's fingerprint and print the cached binary. ../shared is read-only in
# CI, so the source is copied into the cache before building.
#
# Needs protoc and libclang (Debian protobuf-compiler, libclang-dev; scripts/bootstrap.sh).
# Release profile without LTO and with parallel codegen: the vendored workspace asks for
# lto + codegen-units=1, which doubles the link time for a test service.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

src="${LIMITADOR_SRC:-$REPO_ROOT/../shared/vendor/limitador}"
cache="${LLM_GATEWAY_CACHE:-$HOME/.cache/llm-gateway}/limitador"
bin="$cache/target/release/limitador-server"

if [[ ! -f "$src/limitador-server/Cargo.toml" ]]; then
    echo "error: Limitador source not found at $src (expected ../shared/vendor/limitador)" >&2
    exit 1
fi

fingerprint="$(cd "$src" && find . -type f -not -path './target/*' -print0 | sort -z \
    | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
if [[ -x "$bin" && "$(cat "$cache/fingerprint" 2>/dev/null || true)" == "$fingerprint" ]]; then
    printf '%s\n' "$bin"
    exit 0
fi

echo "limitador: building limitador-server into $cache (first time: ~20 min)" >&2
mkdir -p "$cache/src"
rm -f "$cache/fingerprint"
# Mirror the source (deleting files removed upstream); the target directory stays.
cp -a "$src/." "$cache/src/"
chmod -R u+w "$cache/src"
(
    cd "$cache/src"
    CARGO_TARGET_DIR="$cache/target" \
        CARGO_PROFILE_RELEASE_LTO=false \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        cargo build --release --locked -p limitador-server >&2
)
echo "$fingerprint" >"$cache/fingerprint"
printf '%s\n' "$bin"
