"""Activation functions by their `config.json` names, for the MLX models and their PyTorch mirrors.

One table of names, so a config is checked the same way for every family and both frameworks;
each framework's functions are looked up only when a model of that framework is built.
"""

from __future__ import annotations

from typing import Callable

ACTIVATION_NAMES = ("gelu", "gelu_python", "gelu_new", "gelu_pytorch_tanh", "silu", "swish", "relu")
TANH_GELU = ("gelu_new", "gelu_pytorch_tanh")


def mlx_activation(name: str) -> Callable:
    """`gelu` is the exact erf form, as in the reference implementations."""
    import mlx.nn as nn

    if name in TANH_GELU:
        return nn.gelu_approx
    return {"gelu": nn.gelu, "gelu_python": nn.gelu, "silu": nn.silu, "swish": nn.silu, "relu": nn.relu}[name]


def torch_activation(name: str) -> Callable:
    import torch.nn.functional as F

    if name in TANH_GELU:
        return lambda x: F.gelu(x, approximate="tanh")
    return {"gelu": F.gelu, "gelu_python": F.gelu, "silu": F.silu, "swish": F.silu, "relu": F.relu}[name]
