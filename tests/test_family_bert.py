"""BERT against transformers: its three heads on both backends, what BERT does differently
(absolute positions, token type 0, post-norm layers, the pooler and the MLM head's keys, bare
and old checkpoints), conversion, long documents, fine-tuning and the encoder API."""

from __future__ import annotations

import json

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
import torch
from family_checks import (
    batch,
    check_convert,
    check_encoder,
    check_fine_tuning,
    check_long_document,
    check_parity,
    run_mlx,
    transformers_output,
)
from safetensors.numpy import load_file, save_file

from anno_mlx import AnnoError, load
from anno_mlx.checkpoint import read_weights, training_model
from anno_mlx.models.bert.mlx_model import attention_with_dropout, key_mask
from anno_mlx.tokenizer import Tokenizer

# Sizes that quantize in groups of 32.
QUANTIZABLE = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4)


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """`bert(head=..., **config)` -> a tiny BERT folder; identical requests share one folder."""
    from anno_mlx.testing.tiny_bert import make_tiny_bert

    made = {}

    def make(**kwargs):
        key = json.dumps(kwargs, sort_keys=True)
        if key not in made:
            made[key] = make_tiny_bert(tmp_path_factory.mktemp("bert"), **kwargs)
        return made[key]

    return make


@pytest.mark.parametrize("head", ["token-classification", "masked-lm", "encoder"])
@pytest.mark.parametrize(
    "config",
    [{}, dict(hidden_size=36, num_attention_heads=3, num_hidden_layers=3, hidden_act="gelu_new")],
    ids=["bert-base-like", "tanh-gelu"],
)
def test_matches_transformers_on_both_backends(bert, head, config):
    check_parity(bert(head=head, **config))


def test_untied_decoder_matches_transformers(bert):
    folder = bert(head="masked-lm", tie_word_embeddings=False)
    assert "cls.predictions.decoder.weight" in read_weights(folder)
    check_parity(folder)


def test_positions_are_absolute_and_token_type_is_zero(bert):
    """Positions 0..L-1 whatever the padding (so a left-padded row differs from its unpadded
    self), and every token is of type 0."""
    folder = bert(head="encoder")
    model, _ = load(folder)
    ids, mask = batch(folder, (20, 20))
    positions = torch.arange(20)[None].expand(2, -1)
    expected = transformers_output(folder, ids, mask, position_ids=positions, token_type_ids=0 * positions)
    np.testing.assert_allclose(run_mlx(model, ids, mask), expected, atol=1e-4)
    left = np.concatenate([np.zeros((1, 5), ids.dtype), ids[:1]], axis=1)
    left_mask = np.concatenate([np.zeros((1, 5), mask.dtype), mask[:1]], axis=1)
    shifted = run_mlx(model, left, left_mask)[0, 5:]
    assert np.abs(shifted - run_mlx(model, ids[:1], mask[:1])[0]).max() > 1e-2


def test_config_reads_bert_names_and_refuses_what_it_cannot_run(bert, tmp_path):
    model, _ = load(bert(head="token-classification"))
    args = model.args
    assert (args.norm_eps, args.max_length, args.layer_types) == (1e-12, 128, ["full_attention"] * 2)
    assert args.hidden_act == "gelu" and args.pad_token_id == 0
    for change, message in (
        (
            {"position_embedding_type": "relative_key"},
            "position_embedding_type 'relative_key' is not supported",
        ),
        ({"is_decoder": True}, "decoder configs"),
        ({"hidden_act": "mish"}, "hidden_act 'mish' is not supported"),
        ({"max_position_embeddings": 64}, "max_position_embeddings is 64 but the weights hold 128"),
    ):
        folder = tmp_path / next(iter(change))
        folder.mkdir()
        source = bert(head="token-classification")
        for name in ("model.safetensors", "tokenizer.json"):
            (folder / name).write_bytes((source / name).read_bytes())
        config = json.loads((source / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(AnnoError, match=message):
            load(folder)


def test_masked_lm_keys_as_transformers_writes_them(bert):
    """transformers 5 stores the tied decoder as `cls.predictions.bias` alone; the pooler of a
    bare BertModel checkpoint is dropped."""
    keys = set(read_weights(bert(head="masked-lm")))
    assert {"bert.embeddings.word_embeddings.weight", "cls.predictions.bias"} <= keys
    assert "bert.encoder.layer.0.attention.self.query.weight" in keys
    assert not any(k.startswith("cls.predictions.decoder") for k in keys)
    bare = set(read_weights(bert(head="encoder")))
    assert "embeddings.word_embeddings.weight" in bare and "pooler.dense.weight" in bare


def test_old_checkpoint_layouts_give_the_same_logits(bert, tmp_path):
    """gamma/beta LayerNorm names, saved index buffers, the decoder stored as weight and
    bias, the pooler and the next-sentence head of a pre-training checkpoint: all read."""
    source = bert(head="masked-lm")
    weights = load_file(str(source / "model.safetensors"))
    old = {}
    for key, value in weights.items():
        if key.endswith("LayerNorm.weight"):
            key = key.replace("LayerNorm.weight", "LayerNorm.gamma")
        elif key.endswith("LayerNorm.bias"):
            key = key.replace("LayerNorm.bias", "LayerNorm.beta")
        old[key] = value
    old["cls.predictions.decoder.bias"] = old.pop("cls.predictions.bias")
    old["cls.predictions.decoder.weight"] = weights["bert.embeddings.word_embeddings.weight"]
    old["bert.embeddings.position_ids"] = np.arange(128, dtype=np.int64)[None]
    old["bert.pooler.dense.weight"] = np.zeros((32, 32), np.float32)
    old["cls.seq_relationship.weight"] = np.zeros((2, 32), np.float32)
    folder = tmp_path / "old"
    folder.mkdir()
    save_file(old, str(folder / "model.safetensors"))
    for name in ("config.json", "tokenizer.json"):
        (folder / name).write_bytes((source / name).read_bytes())
    ids, mask = batch(source)
    np.testing.assert_array_equal(run_mlx(load(folder)[0], ids, mask), run_mlx(load(source)[0], ids, mask))


def test_bare_checkpoint_starts_a_token_classifier(bert):
    """A BertModel checkpoint has no `bert.` prefix: training puts its encoder under one."""
    folder = bert(head="encoder")
    model, config = training_model(folder, None, Tokenizer.from_folder(folder), ["O", "B-PER", "I-PER"])
    assert config["architectures"] == ["BertForTokenClassification"]
    stored = read_weights(folder)["embeddings.word_embeddings.weight"]
    np.testing.assert_array_equal(np.array(model.bert.embeddings.word_embeddings.weight), np.array(stored))


def test_convert_float16_and_quantized(bert, tmp_path):
    check_convert(bert(head="token-classification", **QUANTIZABLE), tmp_path)


def test_long_document_offsets_on_both_backends(bert):
    check_long_document(bert(head="token-classification", max_position_embeddings=32))


def test_fine_tune_from_masked_lm_then_eval(bert, tmp_path):
    check_fine_tuning(bert(head="masked-lm"), tmp_path, backend="mlx")


def test_encoder_api_gives_transformers_hidden_states(bert):
    check_encoder(bert(head="encoder"))


def test_attention_written_out_for_training_equals_the_fused_kernel():
    """Training with attention dropout takes the written-out path; without dropping it is the
    same attention."""
    q, k, v = (
        mx.array(np.random.default_rng(i).normal(size=(2, 3, 7, 8)).astype(np.float32)) for i in range(3)
    )
    mask = key_mask(mx.array([[1] * 7, [1] * 4 + [0] * 3]))
    fused = mx.fast.scaled_dot_product_attention(q, k, v, scale=8**-0.5, mask=mask)
    written = attention_with_dropout(q, k, v, 8**-0.5, mask, nn.Dropout(0.0))
    np.testing.assert_allclose(np.array(written), np.array(fused), atol=1e-5)
