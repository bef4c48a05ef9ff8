"""The MLX model against transformers' ModernBERT in float32: max |diff| <= 1e-4 on real tokens."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import padded_batch, reference_output

from anno_mlx import load

TOLERANCE = 1e-4

# Unusual sizes, 1 to 7 layers, global every 1/2/3 layers, windows below and above the lengths.
CONFIGS = [
    dict(
        hidden_size=32,
        num_attention_heads=4,
        intermediate_size=48,
        num_hidden_layers=1,
        global_attn_every_n_layers=1,
        local_attention=16,
    ),
    dict(
        hidden_size=36,
        num_attention_heads=3,
        intermediate_size=37,
        num_hidden_layers=2,
        global_attn_every_n_layers=2,
        local_attention=8,
    ),
    dict(
        hidden_size=42,
        num_attention_heads=3,
        intermediate_size=51,
        num_hidden_layers=3,
        global_attn_every_n_layers=3,
        local_attention=32,
    ),
    dict(
        hidden_size=40,
        num_attention_heads=5,
        intermediate_size=64,
        num_hidden_layers=4,
        global_attn_every_n_layers=2,
        local_attention=512,
    ),
    dict(
        hidden_size=48,
        num_attention_heads=4,
        intermediate_size=40,
        num_hidden_layers=5,
        global_attn_every_n_layers=3,
        local_attention=4,
        bias=True,
    ),
    dict(
        hidden_size=24,
        num_attention_heads=2,
        intermediate_size=30,
        num_hidden_layers=7,
        global_attn_every_n_layers=3,
        local_attention=16,
        global_rope_theta=5000.0,
        local_rope_theta=500.0,
    ),
]
HEADS = ["token-classification", "masked-lm", "encoder"]


def ids_for(name: str) -> str:
    c = CONFIGS[int(name)]
    return f"h{c['hidden_size']}-l{c['num_hidden_layers']}-g{c['global_attn_every_n_layers']}-w{c['local_attention']}"


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("index", range(len(CONFIGS)), ids=[ids_for(str(i)) for i in range(len(CONFIGS))])
def test_matches_transformers_on_padded_batches(make_checkpoint, head, index):
    legacy = index % 2 == 0  # alternate the legacy and the transformers-5 config keys
    folder = make_checkpoint(head=head, legacy_keys=legacy, seed=index, **CONFIGS[index])
    model, tokenizer = load(folder)
    rng = np.random.default_rng(index)
    vocab = model.args.vocab_size
    window = CONFIGS[index]["local_attention"]
    # Longer than the window, heavy padding (more than half a window of pads), a 1-token row.
    lengths = [150, max(150 - window // 2 - 7, 2), 20, 1]
    ids, mask = padded_batch(rng, lengths, vocab, tokenizer.pad_token_id)
    expected = reference_output(folder, head, ids, mask)
    got = np.array(model(mx.array(ids), mx.array(mask)))
    assert got.shape == expected.shape
    assert np.isfinite(got).all()
    real = mask.astype(bool)
    assert np.abs(got - expected)[real].max() <= TOLERANCE


def test_sdpa_and_eager_references_agree_with_us(make_checkpoint):
    folder = make_checkpoint(head="token-classification", **CONFIGS[2])
    model, tokenizer = load(folder)
    ids, mask = padded_batch(
        np.random.default_rng(7), [300, 90], model.args.vocab_size, tokenizer.pad_token_id
    )
    got = np.array(model(mx.array(ids), mx.array(mask)))
    for attn in ("eager", "sdpa"):
        expected = reference_output(folder, "token-classification", ids, mask, attn=attn)
        assert np.abs(got - expected)[mask.astype(bool)].max() <= TOLERANCE


def test_all_padding_rows_stay_finite_and_do_not_touch_other_rows(make_checkpoint):
    folder = make_checkpoint(head="token-classification", **CONFIGS[5])  # local layers, window 16
    model, tokenizer = load(folder)
    # Row 2 has 195 pads: padded queries far from any real token see no real key on local layers.
    ids, mask = padded_batch(
        np.random.default_rng(3), [200, 0, 5], model.args.vocab_size, tokenizer.pad_token_id
    )
    out = np.array(model(mx.array(ids), mx.array(mask)))
    assert np.isfinite(out).all()
    alone = np.array(model(mx.array(ids[:1]), mx.array(mask[:1])))
    np.testing.assert_allclose(out[0], alone[0], atol=1e-5)


def test_without_mask_equals_all_ones_mask(make_checkpoint):
    folder = make_checkpoint(head="encoder", **CONFIGS[1])
    model, _ = load(folder)
    ids = mx.array(np.random.default_rng(0).integers(0, model.args.vocab_size, size=(2, 77)))
    np.testing.assert_allclose(
        np.array(model(ids)), np.array(model(ids, mx.ones(ids.shape, dtype=mx.int32))), atol=1e-6
    )


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=140), min_size=1, max_size=4),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
)
def test_any_lengths_and_padding_match_reference(make_checkpoint, lengths, seed):
    """Banded and dense local attention, any mix of lengths: always the reference's numbers."""
    folder = make_checkpoint(head="token-classification", **CONFIGS[5])
    model, tokenizer = load(folder)
    ids, mask = padded_batch(
        np.random.default_rng(seed), lengths, model.args.vocab_size, tokenizer.pad_token_id
    )
    expected = reference_output(folder, "token-classification", ids, mask)
    got = np.array(model(mx.array(ids), mx.array(mask)))
    assert np.abs(got - expected)[mask.astype(bool)].max() <= TOLERANCE


@pytest.mark.parametrize("length,half_window", [(10, 2), (40, 4), (300, 8), (1000, 64)])
def test_masks_leave_no_query_row_empty(length, half_window):
    """Backends differ on fully masked rows (NaN on some): ours never have one."""
    from anno_mlx.models.modernbert.mlx_model import make_masks

    attention_mask = mx.array(np.array([[1] * length, [1] * 3 + [0] * (length - 3), [0] * length]))
    masks = make_masks(attention_mask, 3, length, half_window)
    for mask in (masks.local, masks.global_):
        assert mx.all(mx.any(mask, axis=-1)).item()
