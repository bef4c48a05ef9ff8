"""Long documents: overlapping windows over the token sequence, stitched back into one.

A document that fits the model's context goes through in one pass. A longer one is cut into
windows of `capacity` tokens that overlap by `stride` tokens; every token's prediction is taken
from the window in which it has the most context on both sides. Entities are decoded once, over
the stitched document, so none is cut at a window edge or reported twice.
"""

from __future__ import annotations

import numpy as np

from .errors import AnnoError


def default_stride(capacity: int) -> int:
    """Overlap between windows: a quarter of a window, at most 512 tokens."""
    return min(512, capacity // 4)


def check_windows(capacity: int, stride: int) -> None:
    """Windows of `capacity` text tokens overlapping by `stride` must advance through a document."""
    if capacity < 1:
        raise AnnoError(f"max_length leaves no room for text (capacity {capacity}); raise it")
    if not 0 <= stride < capacity:
        raise AnnoError(f"stride {stride} must be at least 0 and below the window's {capacity} text tokens")


def plan_windows(n_tokens: int, capacity: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) token ranges covering `n_tokens`, each at most `capacity` long."""
    check_windows(capacity, stride)
    if n_tokens <= capacity:
        return [(0, n_tokens)]
    step = capacity - stride
    starts = list(range(0, n_tokens - capacity, step)) + [n_tokens - capacity]
    return [(s, s + capacity) for s in starts]


def best_window(n_tokens: int, windows: list[tuple[int, int]]) -> np.ndarray:
    """For each token, the index of the window where min(left context, right context) is largest
    (the earlier window on ties)."""
    best = np.zeros(n_tokens, dtype=np.int64)
    best_context = np.full(n_tokens, -1, dtype=np.int64)
    for index, (start, end) in enumerate(windows):
        position = np.arange(start, end)
        context = np.minimum(position - start, end - 1 - position)
        better = context > best_context[start:end]
        best[start:end][better] = index
        best_context[start:end][better] = context[better]
    return best
