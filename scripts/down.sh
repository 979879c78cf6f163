#!/usr/bin/env bash
# Stop the demo stack started by scripts/up.sh (by the PIDs recorded in .run/).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
RUN_DIR="${DEMO_RUN_DIR:-.run}"  # as scripts/up.sh

stop_one() {
    local name="$1" pidfile="$2" needle="$3" pid i
    if ! pid_alive "$pidfile" "$needle"; then
        [[ -f "$pidfile" ]] && echo "down: $name not running"
        rm -f "$pidfile"
        return 0
    fi
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    echo "down: stopped $name (pid $pid)"
}

stop_one envoy "$RUN_DIR/envoy.pid" envoy
stop_one "fake provider" "$RUN_DIR/fake.pid" fake_provider.py
