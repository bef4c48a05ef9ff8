"""The MLX runner: Apple's GPU through Metal, or the CPU."""

from __future__ import annotations

import sys
from typing import Optional

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .._blas import blas_description
from . import Runner


class MLXRunner(Runner):
    """Runs an MLX model on its own device, set per call (MLX's process-wide default is left alone)."""

    name = "mlx"

    def __init__(self, model: nn.Module, device: Optional[str] = None):
        self.model = model
        self.device = mx.Device(mx.gpu if device == "gpu" else mx.cpu) if device else mx.default_device()

    @classmethod
    def from_mlx(cls, mlx_model: nn.Module, device: str, dtype: Optional[str] = None) -> "MLXRunner":
        """On MLX's CPU backend float16/bfloat16 weights are computed in float32 unless `dtype`
        says otherwise: it has no fast half-precision matrix products (a float16 model ran ~10x
        slower than the same model in float32)."""
        quantized = any(isinstance(m, nn.QuantizedLinear) for _, m in mlx_model.named_modules())
        if dtype is None and device == "cpu" and not quantized:
            dtype = "float32"
        if dtype is not None and not quantized:
            mlx_model.set_dtype(getattr(mx, dtype))
        # Read the weights now: arrays still lazy would belong to the loading thread's stream,
        # and a model must run on any thread (web servers, Ray actors).
        mx.eval(mlx_model.parameters())
        return cls(mlx_model, device)

    def describe(self) -> str:
        """On the CPU, which BLAS MLX's matrix products run on."""
        if self.device.type.name != "cpu" or not sys.platform.startswith("linux"):
            return f"MLX on {self.device.type.name}"
        return f"MLX on cpu ({blas_description()})"

    def __call__(
        self,
        ids: np.ndarray,
        mask: Optional[np.ndarray],
        softmax: bool = False,
        sequence_ids: Optional[np.ndarray] = None,
    ) -> np.ndarray:
        with mx.stream(self.device):
            packed = {} if sequence_ids is None else {"sequence_ids": mx.array(sequence_ids)}
            out = self.model(mx.array(ids), None if mask is None else mx.array(mask), **packed)
            out = out.astype(mx.float32)
            return np.array(mx.softmax(out, axis=-1) if softmax else out)

    def run(self, method: str = "__call__", **arrays: np.ndarray) -> np.ndarray:
        with mx.stream(self.device):
            function = self.model if method == "__call__" else getattr(self.model, method)
            out = function(**{name: mx.array(value) for name, value in arrays.items()})
            return np.array(out.astype(mx.float32))
