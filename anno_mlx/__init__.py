"""anno-mlx: named-entity recognition with ModernBERT on MLX.

Importing the package loads no engine: MLX (and, on Linux, the system OpenBLAS it should use) or
PyTorch is loaded when a model is given a backend (`runners.choose`), so a process that runs
PyTorch never carries MLX's BLAS, and MLX gets the fast BLAS only if it was not imported first.
"""

from __future__ import annotations

import importlib
from typing import Any

from .entities import Entity
from .errors import AnnoError

__version__ = "0.1.0"
# Public names -> the module that defines them, imported on first use.
_LAZY = {
    "NER": "ner",
    "NEROptions": "ner",
    "Encoder": "encoder",
    "EncoderArchitecture": "encoder",
    "EncoderConfig": "encoder",
    "load": "loading",
}
__all__ = [
    "NER",
    "NEROptions",
    "AnnoError",
    "Encoder",
    "EncoderArchitecture",
    "EncoderConfig",
    "Entity",
    "load",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
