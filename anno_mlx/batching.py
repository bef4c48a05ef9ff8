"""Rows of different lengths grouped into model calls, so that padding costs little.

One rule for the NER pipeline and `Encoder`: rows sorted longest first go into a batch while it
holds fewer than `batch_size` rows, its padded size (rows x the widest) stays within
`token_budget`, and no row would be padded to more than twice its own length. A long document
therefore runs alone or with rows near its length, and short texts run together at their own width,
so a batch is never much slower than one call per text.

A model that takes packed rows (`supports_packing` on its ModelArgs: ModernBERT) gets short
sequences end to end in rows of at most `PACKED_ROW_TOKENS` (`pack_rows`), each computed as if
alone, so they pay no padding at all; those rows then go into calls by the rule above, the same
`batch_size * TOKENS_PER_ROW` tokens per call spread over as many rows as that holds. A sequence
longer than a row runs in a row of its own, so it never widens the rows short texts share.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Any, Optional, Sequence

import numpy as np

from .tokenizer import pad_rows

TOKENS_PER_ROW = 512  # the token budget per row of batch_size: batch_size short rows, or fewer long ones
# Tokens per packed row. Attention in a packed row costs (row length)^2 whatever its sequences,
# so rows stay short and a call spreads its token budget over more of them. On 2 shared CPU cores,
# 300 tweets packed took 0.55-0.58x the padded time in PyTorch with rows of 128 (0.41-0.60x at 512,
# by the load), and MLX, whose CPU attention is slow, 1.08x at 128 but 1.42x at 512
# (docs/benchmarks.md).
PACKED_ROW_TOKENS = 128

Row = list[tuple[int, int]]  # the items one row of a model call holds, each with its offset in the row


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


def pack_rows(widths: Sequence[int], row_tokens: int) -> list[Row]:
    """Items (by their widths) packed end to end into rows of at most `row_tokens`, best fit
    decreasing: longest first, each into the open row it fills most tightly, else a new row; an
    item wider than `row_tokens` fills a row alone. Deterministic: ties go to the earlier item
    and the earlier row."""
    rows: list[Row] = []
    used: list[int] = []
    room: list[tuple[int, int]] = []  # (tokens left, row) of rows that can still take an item
    for i in sorted(range(len(widths)), key=lambda i: (-widths[i], i)):
        at = bisect_left(room, (widths[i], -1))
        if at < len(room):
            _, r = room.pop(at)
        else:
            r = len(rows)
            rows.append([])
            used.append(0)
        rows[r].append((i, used[r]))
        used[r] += widths[i]
        if used[r] < row_tokens:
            insort(room, (row_tokens - used[r], r))
    return rows


def can_pack(args: Any) -> bool:
    """Whether a model (by its ModelArgs) takes packed rows (`sequence_ids`)."""
    return bool(getattr(args, "supports_packing", False))


def packs_by_default(runner: Any) -> bool:
    """Packed rows where they were measured faster: PyTorch ran 300 tweet-sized texts in 0.55-0.58
    of the padded time, but MLX's CPU backend in 1.08 of it (its attention costs the square of
    the row however many texts it holds; docs/benchmarks.md), so MLX keeps padded rows. Callers
    may set `packing` themselves (Apple's GPU is unmeasured)."""
    return can_pack(runner.args) and runner.name == "torch"


def packed_row_tokens(args: Any, batch_size: int) -> int:
    """Tokens per packed row for a model (its ModelArgs) and `batch_size`; 0 when the model
    cannot take packed rows."""
    if not can_pack(args):
        return 0
    return min(PACKED_ROW_TOKENS, batch_size * TOKENS_PER_ROW, args.max_length)


def model_calls(widths: Sequence[int], batch_size: int, row_tokens: int = 0) -> list[list[Row]]:
    """The model calls for items of these widths, each a list of rows: one item per row when
    `row_tokens` is 0, by `length_batches`; otherwise packed into rows of `row_tokens`
    (`pack_rows`) that go into calls by the same rule, with the same `batch_size * TOKENS_PER_ROW`
    tokens per call spread over as many rows as it holds."""
    if not row_tokens:
        return [[[(i, 0)] for i in batch] for batch in length_batches(widths, batch_size)]
    rows = pack_rows(widths, row_tokens)
    lengths = [offset + widths[i] for *_, (i, offset) in rows]
    budget = batch_size * TOKENS_PER_ROW
    return [
        [rows[r] for r in batch] for batch in length_batches(lengths, max(1, budget // row_tokens), budget)
    ]


def call_arrays(
    items: Sequence[np.ndarray], call: list[Row], pad_id: int
) -> tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    """(ids, attention mask, sequence ids) of one model call, int32, right-padded: the mask is
    None when nothing is padded, the sequence ids (each token's item within its row, -1 for
    padding) None when no row holds more than one item."""
    joined = [np.concatenate([items[i] for i, _ in row]) for row in call]  # offsets are contiguous
    ids, mask = pad_rows(joined, pad_id)
    sequence_ids = None
    if any(len(row) > 1 for row in call):
        numbered = [
            np.concatenate([np.full(len(items[i]), k) for k, (i, _) in enumerate(row)]) for row in call
        ]
        sequence_ids = pad_rows(numbered, -1)[0]
    return ids, None if mask.all() else mask, sequence_ids


def split_outputs(out: np.ndarray, call: list[Row], widths: Sequence[int]) -> list[tuple[int, np.ndarray]]:
    """(item, its rows of `out`) for every item of `call`, `out` being the model's [rows, L, ...]."""
    return [(i, out[r, offset : offset + widths[i]]) for r, row in enumerate(call) for i, offset in row]
