#!/usr/bin/env bash
# Start the demo stack in the background: the fake OpenAI provider on 127.0.0.1:18080 and
# Envoy with envoy/demo.yaml on 127.0.0.1:10000 (admin 127.0.0.1:9901). Idempotent.
# State (PIDs, logs) lives in .run/. Stop it with scripts/down.sh.
# DEMO_LISTEN_PORT, DEMO_FAKE_PORT, DEMO_ADMIN_PORT, DEMO_RUN_DIR and DEMO_BASE_ID start a
# second stack beside it (integration/test_demo.py does, on free ports).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
RUN_DIR="${DEMO_RUN_DIR:-.run}"
mkdir -p "$RUN_DIR"

ENVOY="$(envoy_bin)"
# envoy/demo.yaml names the module relative to the repository root. LLM_GATEWAY_WASM selects
# another build (e.g. one made with its own CARGO_TARGET_DIR): then a copy of demo.yaml with
# that path is rendered into .run/demo.yaml and Envoy runs with the copy.
DEFAULT_WASM=target/wasm32-wasip1/release/llm_gateway.wasm
WASM="${LLM_GATEWAY_WASM:-$DEFAULT_WASM}"
CONFIG=envoy/demo.yaml
FAKE_PORT="${DEMO_FAKE_PORT:-18080}"
LISTEN_PORT="${DEMO_LISTEN_PORT:-10000}"
ADMIN_PORT="${DEMO_ADMIN_PORT:-9901}"
BASE_ID="${DEMO_BASE_ID:-7}"
ADMIN="http://127.0.0.1:$ADMIN_PORT"

if [[ ! -f "$WASM" ]]; then
    echo "error: $WASM is missing; run 'make build' first" >&2
    exit 1
fi
# Another build or other ports: Envoy runs a copy of demo.yaml rendered into the run dir.
if [[ "$WASM" != "$DEFAULT_WASM" || "$FAKE_PORT/$LISTEN_PORT/$ADMIN_PORT" != 18080/10000/9901 ]]; then
    WASM="$(cd "$(dirname "$WASM")" && pwd)/$(basename "$WASM")"
    demo="$(<envoy/demo.yaml)"
    for expected in "filename: $DEFAULT_WASM" "port_value: 18080}" "port_value: 10000}" "port_value: 9901}"; do
        if [[ "$demo" != *"$expected"* ]]; then
            echo "error: envoy/demo.yaml does not contain '$expected'; cannot render it" >&2
            exit 1
        fi
    done
    demo="${demo//"filename: $DEFAULT_WASM"/"filename: $WASM"}"
    demo="${demo//"port_value: 18080}"/"port_value: $FAKE_PORT}"}"
    demo="${demo//"port_value: 10000}"/"port_value: $LISTEN_PORT}"}"
    demo="${demo//"port_value: 9901}"/"port_value: $ADMIN_PORT}"}"
    printf '%s\n' "$demo" >"$RUN_DIR/demo.yaml"
    CONFIG="$RUN_DIR/demo.yaml"
fi

# --- fake provider ------------------------------------------------------------
if pid_alive "$RUN_DIR/fake.pid" fake_provider.py; then
    echo "up: fake provider already running (pid $(cat "$RUN_DIR/fake.pid"))"
else
    if port_in_use "$FAKE_PORT"; then
        echo "error: something else listens on 127.0.0.1:$FAKE_PORT" >&2
        exit 1
    fi
    (setsid nohup .venv/bin/python integration/fake_provider.py --port "$FAKE_PORT" \
        >"$RUN_DIR/fake.log" 2>&1 & echo $! >"$RUN_DIR/fake.pid")
    if ! wait_for_body "http://127.0.0.1:$FAKE_PORT/__fake/health" ok 10; then
        echo "error: fake provider did not become healthy; last lines of $RUN_DIR/fake.log:" >&2
        tail -n 50 "$RUN_DIR/fake.log" >&2 || true
        exit 1
    fi
    echo "up: fake provider on http://127.0.0.1:$FAKE_PORT (pid $(cat "$RUN_DIR/fake.pid"))"
fi

# --- envoy ----------------------------------------------------------------------
if pid_alive "$RUN_DIR/envoy.pid" envoy; then
    echo "up: envoy already running (pid $(cat "$RUN_DIR/envoy.pid")); 'make demo' restarts it"
    exit 0
fi
for port in "$ADMIN_PORT" "$LISTEN_PORT"; do
    if port_in_use "$port"; then
        echo "error: something else listens on 127.0.0.1:$port (another Envoy?)" >&2
        exit 1
    fi
done
echo "up: envoy -c $CONFIG (module $WASM)"
(setsid nohup "$ENVOY" -c "$CONFIG" --base-id "$BASE_ID" --concurrency 2 \
    --file-flush-interval-msec 100 >"$RUN_DIR/envoy.log" 2>&1 & echo $! >"$RUN_DIR/envoy.pid")
# V8 compiles the module before the listener opens (about 5 s, longer on a busy machine).
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
    if [[ "$(curl -s --max-time 1 "$ADMIN/ready" 2>/dev/null || true)" == LIVE* ]]; then
        echo "up: envoy on http://127.0.0.1:$LISTEN_PORT, admin $ADMIN (pid $(cat "$RUN_DIR/envoy.pid"))"
        echo "up: logs in $RUN_DIR/envoy.log (access log included), $RUN_DIR/fake.log; stop with scripts/down.sh"
        exit 0
    fi
    if ! pid_alive "$RUN_DIR/envoy.pid" envoy; then
        break
    fi
    sleep 0.1
done
echo "error: envoy did not become LIVE; last lines of $RUN_DIR/envoy.log:" >&2
tail -n 50 "$RUN_DIR/envoy.log" >&2 || true
if pid_alive "$RUN_DIR/envoy.pid" envoy; then
    kill "$(cat "$RUN_DIR/envoy.pid")" 2>/dev/null || true
fi
rm -f "$RUN_DIR/envoy.pid"
exit 1
