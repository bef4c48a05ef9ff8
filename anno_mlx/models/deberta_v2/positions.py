"""DeBERTa's relative positions: which row of the relative embeddings query i uses for key j.

Computed once per sequence length in numpy, in float32 exactly as the reference computes its
log buckets, and shared by the MLX model and its PyTorch mirror, so that both pick the same rows.
"""

from __future__ import annotations

import functools

import numpy as np

from .config import ModelArgs


def log_buckets(distance: np.ndarray, buckets: int, max_position: int) -> np.ndarray:
    """Signed distances up to `buckets // 2` kept as they are; longer ones mapped to log-spaced
    buckets so that `max_position` lands on `buckets // 2 - 1` beyond the middle."""
    middle = buckets // 2
    sign = np.sign(distance)
    far = np.where(np.abs(distance) < middle, middle - 1, np.abs(distance)).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):  # near distances are not taken from here
        steps = np.log(far / np.float32(middle)) / np.log(np.float32((max_position - 1) / middle))
        log_position = np.ceil(steps * np.float32(middle - 1)) + np.float32(middle)
    bucketed = np.nan_to_num(log_position * sign).astype(np.int64)
    return np.where(np.abs(distance) <= middle, distance, bucketed)


@functools.lru_cache(maxsize=16)
def _relative_index(length: int, buckets: int, max_position: int, span: int) -> np.ndarray:
    distance = np.arange(length)[:, None] - np.arange(length)[None, :]  # query - key
    if buckets > 0:
        distance = log_buckets(distance, buckets, max_position)
    index = np.clip(distance + span, 0, 2 * span - 1).astype(np.int32)
    index.flags.writeable = False
    return index


def relative_index(length: int, args: ModelArgs) -> np.ndarray:
    """[length, length] int32: the relative embedding row (0 to 2 * attention_span - 1) for
    query i and key j, the same for the content-to-position and position-to-content terms."""
    return _relative_index(length, args.position_buckets, args.relative_span_limit, args.attention_span)
