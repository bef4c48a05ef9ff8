"""Packed rows: several sequences end to end in one row give each the numbers it gets alone (MLX and
PyTorch, every head, dense and banded local attention), and the pipeline and `Encoder` pack."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
import torch

from anno_mlx import NER, Encoder, load
from anno_mlx.batching import PACKED_ROW_TOKENS, call_arrays, model_calls, pack_rows, packed_row_tokens
from anno_mlx.models.modernbert.torch_model import from_mlx

TOLERANCE = 1e-5
# Local window 16 (half window 8, blocks of 16): a row of more than 32 tokens attends in bands.
CONFIG = dict(
    hidden_size=24,
    num_attention_heads=2,
    intermediate_size=30,
    num_hidden_layers=4,
    global_attn_every_n_layers=3,
    local_attention=16,
)
HEADS = ["token-classification", "masked-lm", "encoder"]
# Rows of sequence lengths, as packed: odd lengths, shorter than the band (1, 3, 5), longer than
# the banded layout's threshold (41, 77), several rows in one call, trailing padding in most.
LAYOUTS = {
    "short-dense": [[3, 5, 1, 7]],
    "odd-banded": [[7, 3, 41, 1, 13], [77, 5]],
    "three-rows": [[9, 11], [1, 1, 1], [33, 2, 17, 5]],
    "one-long": [[77], [20, 20, 21]],
}


def run_both(folder):
    """(MLX model, PyTorch mirror) of one checkpoint, float32."""
    model, _ = load(folder)
    return model, from_mlx(model, torch.float32, "cpu").eval()


def outputs(model, ids, mask=None, sequence_ids=None) -> np.ndarray:
    if isinstance(model, torch.nn.Module):
        with torch.inference_mode():
            args = [
                torch.from_numpy(a.astype(np.int64)) if a is not None else None for a in (mask, sequence_ids)
            ]
            return model(torch.from_numpy(ids.astype(np.int64)), *args).numpy()
    args = [None if a is None else mx.array(a) for a in (mask, sequence_ids)]
    return np.array(model(mx.array(ids), *args))


def packed_differences(model, rows: list[list[int]], vocab: int, pad_id: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    lengths = [n for row in rows for n in row]
    items = [rng.integers(5, vocab, n).astype(np.int32) for n in lengths]
    call, k = [], 0
    for row in rows:
        offsets = np.cumsum([0] + row[:-1]).tolist()
        call.append([(k + j, offset) for j, offset in enumerate(offsets)])
        k += len(row)
    ids, mask, sequence_ids = call_arrays(items, call, pad_id)
    assert sequence_ids is not None
    packed = outputs(model, ids, mask, sequence_ids)
    assert np.isfinite(packed).all()
    worst = 0.0
    for r, row in enumerate(call):
        for i, offset in row:
            alone = outputs(model, items[i][None])[0]
            worst = max(worst, float(np.abs(packed[r, offset : offset + len(items[i])] - alone).max()))
    return worst


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("head", HEADS)
def test_packed_rows_equal_each_sequence_alone(make_checkpoint, head, layout):
    folder = make_checkpoint(head=head, seed=3, **CONFIG)
    mlx_model, torch_model = run_both(folder)
    for model in (mlx_model, torch_model):
        worst = packed_differences(model, LAYOUTS[layout], mlx_model.args.vocab_size, 3, seed=len(layout))
        assert worst <= TOLERANCE, f"{type(model).__module__}: {worst}"


def test_packed_rows_past_the_query_chunk(make_checkpoint, monkeypatch):
    """Global attention in query chunks slices the per-query mask of packed rows."""
    from anno_mlx.models.modernbert import mlx_model as module

    monkeypatch.setattr(module, "QUERY_CHUNK", 16)
    model, _ = run_both(make_checkpoint(head="encoder", seed=3, **CONFIG))
    assert packed_differences(model, [[30, 41, 9], [50]], model.args.vocab_size, 3, seed=1) <= TOLERANCE


def test_without_sequence_ids_nothing_changes(make_checkpoint):
    """One sequence per row, as sequence ids or not, gives the same numbers."""
    model, torch_model = run_both(make_checkpoint(head="encoder", seed=3, **CONFIG))
    rng = np.random.default_rng(0)
    ids = rng.integers(5, model.args.vocab_size, (2, 50)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 30:] = 0
    for m in (model, torch_model):
        plain = outputs(m, ids, mask)
        packed = outputs(m, ids, mask, mask - 1)
        np.testing.assert_allclose(packed[mask == 1], plain[mask == 1], atol=TOLERANCE)


@pytest.mark.parametrize("length,half_window", [(10, 2), (40, 4), (300, 8)])
def test_packed_masks_leave_no_query_row_empty(length, half_window):
    from anno_mlx.models.modernbert.mlx_model import make_masks

    sequence_ids = np.full((2, length), -1)
    sequence_ids[0, :3], sequence_ids[0, 3 : length // 2] = 0, 1
    masks = make_masks(None, 2, length, half_window, mx.array(sequence_ids))
    for mask in (masks.local, masks.global_):
        assert mx.all(mx.any(mask, axis=-1)).item()
    assert masks.positions[0, :5].tolist() == [0, 1, 2, 0, 1]


@pytest.mark.parametrize("seed", range(5))
def test_pack_rows_places_every_item_once_within_the_row(seed):
    rng = np.random.default_rng(seed)
    widths = rng.integers(1, 700, rng.integers(1, 150)).tolist()
    rows = pack_rows(widths, 512)
    assert sorted(i for row in rows for i, _ in row) == list(range(len(widths)))
    for row in rows:
        offsets = [offset for _, offset in row]
        assert offsets == np.cumsum([0] + [widths[i] for i, _ in row[:-1]]).tolist(), "end to end"
        end = offsets[-1] + widths[row[-1][0]]
        assert end <= 512 or len(row) == 1, "only an item wider than a row fills one alone"
    assert pack_rows(widths, 512) == rows, "deterministic"


def test_a_long_window_runs_alone_and_short_ones_share_rows():
    calls = model_calls([4000] + [20] * 63, batch_size=8, row_tokens=512)
    assert calls[0] == [[(0, 0)]]
    rows = [row for call in calls[1:] for row in call]
    assert len(rows) == 3 and all(len(row) <= 25 for row in rows)
    assert model_calls([20] * 3, batch_size=8) == [[[(0, 0)], [(1, 0)], [(2, 0)]]]


def test_row_tokens_stay_within_the_model():
    class Args:
        supports_packing = True
        max_length = 8192

    class Short(Args):
        max_length = 64

    assert packed_row_tokens(Args, batch_size=8) == PACKED_ROW_TOKENS
    assert packed_row_tokens(Short, batch_size=8) == 64
    assert packed_row_tokens(object(), batch_size=8) == 0, "a model that cannot pack"


def entity_tuples(found):
    return [[(e.start, e.end, e.label) for e in entities] for entities in found]


@pytest.mark.parametrize("backend", ["mlx", "torch"])
def test_ner_entities_packed_equal_padded(backend):
    ner = NER.from_pretrained(None, backend=backend)
    assert ner.packing == (backend == "torch")  # packed by default where it measured faster
    ner.packing = True
    texts = [
        "Angela Merkel met Emmanuel Macron in Berlin on Tuesday.",
        "",
        "Apple and Microsoft shares fell after the Federal Reserve spoke in Washington.",
        "The United Nations warned of floods in Bangladesh. " * 60,
    ] + [f"Marie Curie moved from Warsaw to Paris in {1890 + i}." for i in range(20)]
    packed = ner.batch(texts, max_length=256, stride=32, min_score=0.0)
    ner.packing = False
    padded = ner.batch(texts, max_length=256, stride=32, min_score=0.0)
    assert entity_tuples(packed) == entity_tuples(padded)
    assert sum(map(len, packed)) > 10
    for a, b in zip(packed, padded):
        np.testing.assert_allclose([e.score for e in a], [e.score for e in b], atol=TOLERANCE)


def test_the_pipeline_packs_short_texts_into_few_calls(converted_model):
    ner = NER.from_pretrained(converted_model, backend="mlx")
    ner.packing = True
    calls: list[tuple[tuple[int, ...], bool]] = []
    run = ner.runner.__call__

    class Recording(type(ner.runner)):
        def __call__(self, ids, mask, softmax=False, sequence_ids=None):
            calls.append((ids.shape, sequence_ids is not None))
            return run(ids, mask, softmax, sequence_ids)

    ner.runner.__class__ = Recording
    texts = [f"Marie Curie visited Paris {i}." for i in range(40)]
    together = ner.batch(texts)
    assert len(calls) == 1 and calls[0][1] and calls[0][0][0] < 10
    for batched, text in zip(together, texts[:5]):
        alone = ner(text)
        assert [(e.start, e.end, e.label) for e in batched] == [(e.start, e.end, e.label) for e in alone]


@pytest.mark.parametrize("backend", ["mlx", "torch"])
def test_encode_batch_packed_equals_padded(make_checkpoint, backend):
    encoder = Encoder.from_pretrained(make_checkpoint(head="encoder"), backend=backend, batch_size=4)
    assert encoder.packing == (backend == "torch")
    encoder.packing = True
    texts = ["Paris.", "Marie Curie was born in Warsaw. " * 9, "", "Tokyo and Berlin are cities."] * 3
    packed = encoder.encode_batch(texts)
    encoder.packing = False
    padded = encoder.encode_batch(texts)
    for (a, n), (b, m) in zip(packed, padded):
        assert n == m and a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=TOLERANCE)
