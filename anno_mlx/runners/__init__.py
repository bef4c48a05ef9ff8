"""What runs a model: one `Runner` type, and one registry of engines behind it.

A runner is built from the MLX model that `checkpoint.load_folder` reads (every folder layout
through one loader) and is called with token ids and an attention mask, returning float32
numpy; the pipeline, `Encoder`, training's evaluation and the benchmark hold a runner and never
ask which engine it is. Engines: MLX (Apple Silicon first, any CPU) and PyTorch (CUDA, CPU, MPS).
A new one (ONNX, Core ML) is a module here with a `Runner` subclass and one line in `RUNNERS`.

`auto` picks MLX on Apple Silicon, PyTorch on a machine with CUDA, and on other CPUs PyTorch
when it is installed: on a 2-core x86 Linux CPU, each timed in its own process, PyTorch ran
a ModernBERT-shaped model 3-4x faster than MLX's CPU backend (`python -m anno_mlx bench`
measures it on yours; docs/benchmarks.md).
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .._blas import preload_openblas
from ..errors import AnnoError

BACKENDS = ("auto", "mlx", "torch")
DEVICES = ("cpu", "cuda", "mps")
TORCH_HINT = (
    "PyTorch is not installed; install it with `pip install 'anno-mlx[torch]'` (or use --backend mlx)"
)


def apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class Backend:
    name: str  # "mlx" or "torch"
    device: str  # "cpu", "gpu" (MLX), "cuda", "mps"

    def __str__(self) -> str:
        return f"{'MLX' if self.name == 'mlx' else 'PyTorch'} on {self.device}"


def prepare_mlx() -> None:
    """Before MLX is first imported: on Linux, load the system OpenBLAS for MLX's CPU backend
    (`_blas`). Called only where MLX will compute, never in a process whose engine is PyTorch,
    whose own BLAS and threads it would slow down; once MLX is imported it changes nothing."""
    preload_openblas()


def prepare_torch() -> None:
    """Before PyTorch is first imported: its OpenMP threads wait passively between operations
    unless the user chose otherwise (`OMP_WAIT_POLICY`). Spinning threads lose their core to any
    other busy process and stall the rest; passively waiting ones kept PyTorch at 0.50-0.53 of its
    quiet speed beside one CPU-burning process on 2 cores instead of 0.25-0.38, and were not
    slower alone (docs/benchmarks.md)."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def choose(backend: str = "auto", device: Optional[str] = None) -> Backend:
    """Resolve `backend`/`device` to what will run, with a one-line error for what cannot."""
    if backend not in BACKENDS:
        raise AnnoError(f"backend {backend!r} is unknown; choose one of {', '.join(BACKENDS)}")
    if device is not None and device not in DEVICES:
        raise AnnoError(f"device {device!r} is unknown; choose one of {', '.join(DEVICES)}")
    if backend != "mlx":
        prepare_torch()
    if backend == "auto":
        if device in ("cuda", "mps") or (device is None and not apple_silicon() and torch_available()):
            backend = "torch"
        else:
            backend = "mlx"
    if backend == "mlx":
        prepare_mlx()
        import mlx.core as mx

        if device in ("cuda", "mps"):
            raise AnnoError(
                f"the MLX backend runs on the CPU or Apple's GPU, not {device}; use --backend torch"
            )
        return Backend("mlx", device or mx.default_device().type.name)
    if not torch_available():
        raise AnnoError(TORCH_HINT)
    import torch

    if device is None:
        device = (
            "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
        )
    if device == "cuda" and not torch.cuda.is_available():
        raise AnnoError("--device cuda was asked for, but PyTorch sees no CUDA device")
    if device == "mps" and not torch.backends.mps.is_available():
        raise AnnoError("--device mps was asked for, but PyTorch sees no MPS device")
    return Backend("torch", device)


class Runner:
    """Runs one model: token ids `[batch, length]` and an attention mask (None: nothing padded)
    in, with the sequence ids of packed rows for a model that takes them (`batching`), the
    model's output as float32 numpy out (label probabilities with `softmax`)."""

    name: str  # its key in RUNNERS
    model: Any  # the network it runs

    @classmethod
    def from_mlx(cls, mlx_model, device: str, dtype: Optional[str] = None) -> "Runner":
        raise NotImplementedError

    def describe(self) -> str:
        """What runs the model, for status lines: e.g. "MLX on gpu" or "PyTorch on cuda"."""
        raise NotImplementedError

    def __call__(
        self,
        ids: np.ndarray,
        mask: Optional[np.ndarray],
        softmax: bool = False,
        sequence_ids: Optional[np.ndarray] = None,
    ) -> np.ndarray:
        raise NotImplementedError

    def run(self, method: str = "__call__", **arrays: np.ndarray) -> np.ndarray:
        """A model method by name with named numpy inputs (span models take more than ids and a
        mask, and bi-encoders have `encode_labels`), float32 numpy out."""
        raise NotImplementedError

    @property
    def args(self):
        """The model's ModelArgs (sizes, labels, positions)."""
        return self.model.args


# backend name -> (module, class) of its runner, imported only when chosen.
RUNNERS = {
    "mlx": ("anno_mlx.runners.mlx_runner", "MLXRunner"),
    "torch": ("anno_mlx.runners.torch_runner", "TorchRunner"),
}


def runner_class(name: str) -> type[Runner]:
    module, cls = RUNNERS[name]
    return getattr(importlib.import_module(module), cls)


def make_runner(mlx_model, backend: Backend, dtype: Optional[str] = None) -> Runner:
    """The runner `backend` names for a loaded MLX model, in `dtype` where given."""
    return runner_class(backend.name).from_mlx(mlx_model, backend.device, dtype)


def runner_for(model) -> Runner:
    """A runner for a model already in memory (an MLX module, a PyTorch module, or a runner)."""
    if isinstance(model, Runner):
        return model
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return runner_class("torch")(model)
    return runner_class("mlx")(model)
