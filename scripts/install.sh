#!/usr/bin/env bash
# Install anno-mlx with its test extra on a fresh machine.
# On Debian/Ubuntu it also installs the system OpenBLAS that anno-mlx loads before MLX
# (the mlx[cpu] wheel's own BLAS is ~40x slower) and Chromium for the UI test; on macOS MLX
# uses Accelerate and Metal, and the browser test needs a `chromium` on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(uname -s)" = "Linux" ] && command -v apt-get >/dev/null 2>&1; then
    # OpenBLAS for MLX on the CPU; Debian's Chromium for the UI's browser test (Playwright
    # drives it; no browser is downloaded).
    missing=""
    ldconfig -p 2>/dev/null | grep -q "libopenblas.so.0" || missing="$missing libopenblas0-pthread"
    command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
    if [ -n "$missing" ]; then
        SUDO=""
        [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
    fi
fi

python3 -m pip install -q -e ".[test]"
