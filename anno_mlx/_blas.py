"""Load a system OpenBLAS before MLX on Linux (called by `runners.prepare_mlx`, never at import).

The `mlx[cpu]` wheel links a reference BLAS that is ~40x slower than OpenBLAS for matrix
products. MLX resolves its BLAS symbols when it is imported, so a library loaded earlier with
RTLD_GLOBAL wins. Without one (or on macOS, where MLX uses Accelerate) nothing changes.
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
        return f"OpenBLAS, {threads} threads" if threads else "OpenBLAS"
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
