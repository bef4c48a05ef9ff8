"""Load a system OpenBLAS before MLX on Linux (called by `runners.prepare_mlx`, never at import).

The `mlx[cpu]` wheel links a reference BLAS that is ~40x slower than OpenBLAS for matrix
products. MLX resolves its BLAS symbols when it is imported, so a library loaded earlier with
RTLD_GLOBAL wins. Without one (or on macOS, where MLX uses Accelerate) nothing changes.

OpenBLAS's worker threads spin for a while after each product before they sleep; beside another
busy process one of them loses its core and holds the others up. A short spin
(`OPENBLAS_THREAD_TIMEOUT=4`, 2^4 cycles, unless the user set it) kept MLX at 0.56-0.87 of its
quiet speed beside one CPU-burning process on 2 cores instead of 0.27-0.60, and no slower alone
(docs/benchmarks.md).
"""

from __future__ import annotations

import ctypes
import os
import sys

CANDIDATES = (
    "libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "libopenblas.so",
)

SPIN = "4"  # OpenBLAS's thread timeout: its threads spin 2^4 cycles, then sleep
loaded: str | None = None
attempted = False  # preload_openblas ran before MLX was imported


def preload_openblas() -> str | None:
    """Return the OpenBLAS that was loaded, or None. `ANNO_MLX_BLAS` names another library;
    `ANNO_MLX_BLAS=none` turns this off."""
    global loaded, attempted
    if loaded or not sys.platform.startswith("linux") or "mlx.core" in sys.modules:
        return loaded
    attempted = True
    choice = os.environ.get("ANNO_MLX_BLAS", "")
    if choice.lower() == "none":
        return None
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", SPIN)  # read when the library loads
    for name in (choice,) if choice else CANDIDATES:
        try:
            ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
        except OSError:
            continue
        loaded = name
        return name
    return None


def blas_description() -> str:
    """Which BLAS MLX's CPU backend uses in this process, and with how many threads."""
    if loaded:
        threads = _openblas_threads(loaded)
        spin = os.environ.get("OPENBLAS_THREAD_TIMEOUT", "")
        return f"OpenBLAS, {threads or '?'} threads, thread timeout {spin or 'default'}"
    if os.environ.get("ANNO_MLX_BLAS", "").lower() == "none":
        return "its bundled BLAS: ANNO_MLX_BLAS=none"
    if not attempted:
        return "its bundled BLAS: MLX was imported before anno-mlx could load OpenBLAS"
    return "its bundled BLAS, ~40x slower: install libopenblas0-pthread"


def _openblas_threads(name: str) -> int:
    try:
        return int(ctypes.CDLL(name).openblas_get_num_threads())
    except (OSError, AttributeError):
        return 0
