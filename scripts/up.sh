#!/usr/bin/env bash
# Start the demo stack in the background: the fake OpenAI provider on 127.0.0.1:18080 and
# Envoy with envoy/demo.yaml on 127.0.0.1:10000 (admin 127.0.0.1:9901). Idempotent.
# State (PIDs, logs) lives in .run/. Stop it with scripts/down.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
mkdir -p .run

ENVOY="$(envoy_bin)"
# envoy/demo.yaml names the module relative to the repository root. LLM_GATEWAY_WASM selects
# another build (e.g. one made with its own CARGO_TARGET_DIR): then a copy of demo.yaml with
# that path is rendered into .run/demo.yaml and Envoy runs with the copy.
DEFAULT_WASM=target/wasm32-wasip1/release/llm_gateway.wasm
WASM="${LLM_GATEWAY_WASM:-$DEFAULT_WASM}"
CONFIG=envoy/demo.yaml
FAKE_PORT=18080
LISTEN_PORT=10000
ADMIN=http://127.0.0.1:9901

if [[ ! -f "$WASM" ]]; then
    echo "error: $WASM is missing; run 'make build' first" >&2
    exit 1
fi
if [[ "$WASM" != "$DEFAULT_WASM" ]]; then
    WASM="$(cd "$(dirname "$WASM")" && pwd)/$(basename "$WASM")"
    demo="$(<envoy/demo.yaml)"
    if [[ "$demo" != *"filename: $DEFAULT_WASM"* ]]; then
        echo "error: envoy/demo.yaml does not name $DEFAULT_WASM; cannot substitute LLM_GATEWAY_WASM" >&2
        exit 1
    fi
    printf '%s\n' "${demo//"filename: $DEFAULT_WASM"/"filename: $WASM"}" >.run/demo.yaml
    CONFIG=.run/demo.yaml
fi

# --- fake provider ------------------------------------------------------------
if pid_alive .run/fake.pid fake_provider.py; then
    echo "up: fake provider already running (pid $(cat .run/fake.pid))"
else
    if port_in_use "$FAKE_PORT"; then
        echo "error: something else listens on 127.0.0.1:$FAKE_PORT" >&2
        exit 1
    fi
    (setsid nohup .venv/bin/python integration/fake_provider.py --port "$FAKE_PORT" \
        >.run/fake.log 2>&1 & echo $! >.run/fake.pid)
    if ! wait_for_body "http://127.0.0.1:$FAKE_PORT/__fake/health" ok 10; then
        echo "error: fake provider did not become healthy; last lines of .run/fake.log:" >&2
        tail -n 50 .run/fake.log >&2 || true
        exit 1
    fi
    echo "up: fake provider on http://127.0.0.1:$FAKE_PORT (pid $(cat .run/fake.pid))"
fi

# --- envoy ----------------------------------------------------------------------
if pid_alive .run/envoy.pid envoy; then
    echo "up: envoy already running (pid $(cat .run/envoy.pid)); 'make demo' restarts it"
    exit 0
fi
for port in 9901 "$LISTEN_PORT"; do
    if port_in_use "$port"; then
        echo "error: something else listens on 127.0.0.1:$port (another Envoy?)" >&2
        exit 1
    fi
done
echo "up: envoy -c $CONFIG (module $WASM)"
(setsid nohup "$ENVOY" -c "$CONFIG" --base-id 7 --concurrency 2 \
    --file-flush-interval-msec 100 >.run/envoy.log 2>&1 & echo $! >.run/envoy.pid)
# V8 compiles the module before the listener opens (about 5 s, longer on a busy machine).
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
    if [[ "$(curl -s --max-time 1 "$ADMIN/ready" 2>/dev/null || true)" == LIVE* ]]; then
        echo "up: envoy on http://127.0.0.1:10000, admin $ADMIN (pid $(cat .run/envoy.pid))"
        echo "up: logs in .run/envoy.log (access log included), .run/fake.log; stop with scripts/down.sh"
        exit 0
    fi
    if ! pid_alive .run/envoy.pid envoy; then
        break
    fi
    sleep 0.1
done
echo "error: envoy did not become LIVE; last lines of .run/envoy.log:" >&2
tail -n 50 .run/envoy.log >&2 || true
if pid_alive .run/envoy.pid envoy; then
    kill "$(cat .run/envoy.pid)" 2>/dev/null || true
fi
rm -f .run/envoy.pid
exit 1
