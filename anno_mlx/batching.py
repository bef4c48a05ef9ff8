"""Rows of different lengths grouped into model calls, so that padding costs little.

One rule for the NER pipeline and `Encoder`: rows sorted longest first go into a batch while it
holds fewer than `batch_size` rows, its padded size (rows x the widest) stays within
`token_budget`, and no row would be padded to more than twice its own length. A long document
therefore runs alone or with rows near its length, and short texts run together at their own width,
so a batch is never much slower than one call per text.
"""

from __future__ import annotations

from typing import Sequence

TOKENS_PER_ROW = 512  # the token budget per row of batch_size: batch_size short rows, or fewer long ones


def length_batches(
    widths: Sequence[int], batch_size: int, token_budget: int | None = None
) -> list[list[int]]:
    """Indices into `widths`, grouped into batches (longest rows first); `token_budget` defaults to
    `batch_size * TOKENS_PER_ROW`."""
    budget = batch_size * TOKENS_PER_ROW if token_budget is None else token_budget
    order = sorted(range(len(widths)), key=lambda i: -widths[i])
    batches: list[list[int]] = []
    batch: list[int] = []
    widest = 0
    for i in order:
        full = len(batch) >= batch_size or (len(batch) + 1) * widest > budget
        if batch and (full or 2 * widths[i] < widest):
            batches.append(batch)
            batch = []
        if not batch:
            widest = widths[i]
        batch.append(i)
    if batch:
        batches.append(batch)
    return batches
