"""Which engine runs the model: MLX (Apple Silicon first, any CPU) or PyTorch (CUDA, CPU, MPS).

`auto` picks MLX on Apple Silicon, PyTorch on a machine with CUDA, and on other CPUs PyTorch
when it is installed: on a 2-core x86 Linux CPU a ModernBERT-base forward pass of
512 tokens ran 2.2x faster in PyTorch (oneDNN) than in MLX's CPU backend
(`python -m anno_mlx bench` measures it on yours).
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import AnnoError

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


def choose(backend: str = "auto", device: Optional[str] = None) -> Backend:
    """Resolve `backend`/`device` to what will run, with a one-line error for what cannot."""
    if backend not in BACKENDS:
        raise AnnoError(f"backend {backend!r} is unknown; choose one of {', '.join(BACKENDS)}")
    if device is not None and device not in DEVICES:
        raise AnnoError(f"device {device!r} is unknown; choose one of {', '.join(DEVICES)}")
    if backend == "auto":
        if device in ("cuda", "mps") or (device is None and not apple_silicon() and torch_available()):
            backend = "torch"
        else:
            backend = "mlx"
    if backend == "mlx":
        import mlx.core as mx

        if device in ("cuda", "mps"):
            raise AnnoError(
                f"the MLX backend runs on the CPU or Apple's GPU, not {device}; use --backend torch"
            )
        if device == "cpu":
            mx.set_default_device(mx.cpu)
        return Backend("mlx", mx.default_device().type.name)
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


def to_backend(mlx_model, backend: Backend, dtype: Optional[str] = None):
    """The model for `backend`: the MLX model itself, or its PyTorch mirror (bfloat16 on CUDA
    unless `dtype` says otherwise, float32 elsewhere). On MLX's CPU backend, float16/bfloat16
    weights are computed in float32 unless `dtype` says otherwise: it has no fast half-precision
    matrix products (a float16 model ran ~10x slower than the same model in float32)."""
    if backend.name == "mlx":
        import mlx.core as mx
        import mlx.nn as nn

        quantized = any(isinstance(m, nn.QuantizedLinear) for _, m in mlx_model.named_modules())
        if dtype is None and backend.device == "cpu" and not quantized:
            dtype = "float32"
        if dtype is not None and not quantized:
            mlx_model.set_dtype(getattr(mx, dtype))
        # Read the weights now: arrays still lazy would belong to the loading thread's stream,
        # and a model must run on any thread (web servers, Ray actors).
        mx.eval(mlx_model.parameters())
        return mlx_model
    import torch

    from .models.modernbert_torch import from_mlx

    dtype = dtype or ("bfloat16" if backend.device == "cuda" else "float32")
    return from_mlx(mlx_model, getattr(torch, dtype), backend.device)


def is_torch_model(model) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def run(model, ids: np.ndarray, mask: Optional[np.ndarray], softmax: bool = False) -> np.ndarray:
    """The model's output (logits or hidden states; label probabilities with `softmax`) as
    float32 numpy, whichever backend the model belongs to."""
    if is_torch_model(model):
        import torch

        device = next(model.parameters()).device
        with torch.inference_mode():
            out = model(
                torch.from_numpy(ids.astype(np.int64)).to(device),
                None if mask is None else torch.from_numpy(mask.astype(np.int64)).to(device),
            ).float()
            return (torch.softmax(out, dim=-1) if softmax else out).cpu().numpy()
    import mlx.core as mx

    out = model(mx.array(ids), None if mask is None else mx.array(mask)).astype(mx.float32)
    return np.array(mx.softmax(out, axis=-1) if softmax else out)
