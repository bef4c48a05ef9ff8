#!/usr/bin/env bash
# Install anno-mlx with its test extra on a fresh machine, and the GLiNER reference environment.
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

# The GLiNER parity tests' reference, the `gliner` package, pins an older transformers: it gets its
# own environment, which reuses this Python's packages (torch among them) and overrides transformers.
python3 -m venv --system-site-packages .venv-gliner
if ! .venv-gliner/bin/python -c "import gliner, sys; sys.exit(gliner.__version__ != '0.2.29')" 2>/dev/null; then
    .venv-gliner/bin/pip install -q "transformers>=4.51,<5.17" "gliner==0.2.29"
fi
