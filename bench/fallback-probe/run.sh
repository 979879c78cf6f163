#!/usr/bin/env bash
# The measurements behind README "Fallback across providers": the probe filter (src/lib.rs) runs
# downstream ("down") and as a router upstream HTTP filter (ROLE: "up", "uphold" pauses the
# response headers until a second upstream instance, "peek", nearer the codec, resumes it
# at the first event; "uplocal" resets the request from the upstream filter) in front of an
# aggregate cluster of three backends whose behaviour is MODE1..3 (backend.py: ok, 429,
# reset, stall, dies). Prints the client's view, each callback with its timing, and Envoy's
# retry counters. Usage: bench/fallback-probe/run.sh MODE1 MODE2 MODE3 [ROLE]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../../scripts/lib.sh"
ENVOY="$(envoy_bin)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/../../target/fallback-probe}"
(cd "$here" && cargo build --release --target wasm32-wasip1 -q)
work="$(mktemp -d)"
sed "s|PROBE_WASM|$CARGO_TARGET_DIR/wasm32-wasip1/release/fbprobe.wasm|g; s|value: \"up\"}|value: \"${4:-up}\"}|" \
    "$here/envoy.yaml" > "$work/envoy.yaml"
pids=()
python3 "$here/backend.py" 19101 "$1" & pids+=($!)
python3 "$here/backend.py" 19102 "$2" & pids+=($!)
python3 "$here/backend.py" 19103 "$3" & pids+=($!)
"$ENVOY" -c "$work/envoy.yaml" --base-id 7771 --concurrency 1 -l warn > "$work/envoy.log" 2>&1 & epid=$!
wait_for_body http://127.0.0.1:19901/ready LIVE 10
curl -sS -N -w '\n[status %{http_code} t=%{time_total}]\n' -H 'content-type: application/json' \
    -d '{"model":"x","stream":true}' 127.0.0.1:19000/v1/chat/completions || true
sleep 0.3
grep -o 'PROBE.*' "$work/envoy.log" || true
curl -s 127.0.0.1:19901/stats | grep -E 'upstream_rq_retry|upstream_rq_per_try_timeout' | grep -v ': 0' || true
kill "$epid" "${pids[@]}"
wait 2>/dev/null || true
rm -rf "$work"
