"""The PyTorch runner: CUDA, Apple's MPS or the CPU, with the family's PyTorch mirror of the model."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
import torch

from ..models import torch_mirror
from . import Runner


class TorchRunner(Runner):
    name = "torch"

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.device = next(model.parameters()).device

    @classmethod
    def from_mlx(cls, mlx_model, device: str, dtype: Optional[str] = None) -> "TorchRunner":
        """bfloat16 on CUDA unless `dtype` says otherwise, float32 elsewhere."""
        dtype = dtype or ("bfloat16" if device == "cuda" else "float32")
        return cls(torch_mirror(mlx_model, getattr(torch, dtype), device))

    def describe(self) -> str:
        if self.device.type != "cpu":
            return f"PyTorch on {self.device.type}"
        wait = os.environ.get("OMP_WAIT_POLICY", "active").lower()
        return f"PyTorch on cpu ({torch.get_num_threads()} threads, {wait} wait)"

    def __call__(
        self,
        ids: np.ndarray,
        mask: Optional[np.ndarray],
        softmax: bool = False,
        sequence_ids: Optional[np.ndarray] = None,
    ) -> np.ndarray:
        def tensor(array):
            return torch.from_numpy(array.astype(np.int64)).to(self.device)

        with torch.inference_mode():
            packed = {} if sequence_ids is None else {"sequence_ids": tensor(sequence_ids)}
            out = self.model(tensor(ids), None if mask is None else tensor(mask), **packed).float()
            return (torch.softmax(out, dim=-1) if softmax else out).cpu().numpy()

    def run(self, method: str = "__call__", **arrays: np.ndarray) -> np.ndarray:
        function = self.model if method == "__call__" else getattr(self.model, method)
        with torch.inference_mode():
            inputs = {
                name: torch.from_numpy(
                    value.astype(np.int64 if value.dtype.kind in "iub" else np.float32)
                ).to(self.device)
                for name, value in arrays.items()
            }
            return function(**inputs).float().cpu().numpy()
