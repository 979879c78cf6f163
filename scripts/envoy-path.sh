#!/usr/bin/env bash
# Print the path of the real Envoy binary from .venv (installed by scripts/bootstrap.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
envoy_bin
