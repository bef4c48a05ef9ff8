"""An MLX model's weights loaded into its family's PyTorch mirror, shared by every family's
`torch_model.from_mlx`. Imports torch: only the `torch_model` modules import it."""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import torch
from torch import nn


def load_mlx_weights(
    model: nn.Module,
    mlx_model,
    dtype: torch.dtype,
    device: str,
    tied: Optional[Mapping[str, str]] = None,
    may_miss: tuple[str, ...] = (),
) -> nn.Module:
    """`model` (built with the MLX model's args) with the MLX model's weights, quantized ones
    dequantized first, on `device` in `dtype` and in eval mode. The two trees hold the same
    keys but for `tied` ones (torch key -> the MLX key whose weight it shares: a tied decoder,
    which MLX holds only once) and `may_miss` ones (torch keys the MLX weights may lack)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.utils import dequantize_model

    mlx_model = dequantize_model(mlx_model)
    state = {
        key: torch.from_numpy(np.array(value.astype(mx.float32)))
        for key, value in tree_flatten(mlx_model.parameters())
    }
    for key, source in (tied or {}).items():
        state[key] = state[source]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [key for key in missing if key not in may_miss]:
        raise RuntimeError(f"torch model does not match: missing {missing}, unexpected {unexpected}")
    return model.to(device=device, dtype=dtype).eval()
