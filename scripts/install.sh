#!/usr/bin/env bash
# Install anno-mlx with its test extra on a fresh machine.
# On Debian/Ubuntu it also installs the system OpenBLAS that anno-mlx loads before MLX
# (the mlx[cpu] wheel's own BLAS is ~40x slower); on macOS MLX uses Accelerate and Metal.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(uname -s)" = "Linux" ] && command -v apt-get >/dev/null 2>&1; then
    if ! ldconfig -p 2>/dev/null | grep -q "libopenblas.so.0"; then
        SUDO=""
        [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libopenblas0-pthread >/dev/null
    fi
fi

python3 -m pip install -q -e ".[test]"
