"""Load a system OpenBLAS before MLX on Linux.

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


def preload_openblas() -> str | None:
    """Return the OpenBLAS that was loaded, or None. `ANNO_MLX_BLAS` names another library;
    `ANNO_MLX_BLAS=none` turns this off."""
    global loaded
    if loaded or not sys.platform.startswith("linux") or "mlx.core" in sys.modules:
        return loaded
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
