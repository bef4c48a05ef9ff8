"""The converter: dtypes, quantization, round trips, input layouts, atomic writes, hub ids."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
import torch
import transformers
from anno_mlx.convert import convert
from conftest import put_in_hub_cache
from reference import padded_batch, reference_output

from anno_mlx import AnnoError, load
from anno_mlx.checkpoint import load_folder

# 64-wide so that every weight splits into groups of 32 and 64.
QUANTIZABLE = dict(
    hidden_size=64, intermediate_size=128, num_attention_heads=4, num_hidden_layers=3, local_attention=16
)
# Documented in docs/conversion.md: largest logit difference from float32 on the tiny models.
HALF_TOLERANCE = {"float16": 1e-2, "bfloat16": 8e-2}


def batch(model, tokenizer, seed=0, lengths=(120, 41, 7)):
    return padded_batch(
        np.random.default_rng(seed), list(lengths), model.args.vocab_size, tokenizer.pad_token_id
    )


def run(model, ids, mask) -> np.ndarray:
    return np.array(model(mx.array(ids), mx.array(mask)).astype(mx.float32))


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_round_trip_gives_the_in_memory_models_logits(make_checkpoint, tmp_path):
    src = make_checkpoint(head="token-classification")
    before = tree_digest(src)
    convert(src, tmp_path / "out", log=lambda m: None)
    assert tree_digest(src) == before, "the source folder must not be modified"
    in_memory, _ = load_folder(src)
    converted, tokenizer = load(tmp_path / "out")
    ids, mask = batch(converted, tokenizer)
    np.testing.assert_array_equal(run(converted, ids, mask), run(in_memory, ids, mask))
    for name in ("config.json", "tokenizer.json", "model.safetensors", "model.safetensors.index.json"):
        assert (tmp_path / "out" / name).is_file()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_agrees_with_float32(make_checkpoint, tmp_path, dtype):
    src = make_checkpoint(head="token-classification")
    convert(src, tmp_path / dtype, dtype=dtype, log=lambda m: None)
    reference, tokenizer = load(src)
    half, _ = load(tmp_path / dtype, dtype=dtype)  # computed in half precision, as on Apple's GPU
    assert half.model.embeddings.tok_embeddings.weight.dtype == getattr(mx, dtype)
    # On MLX's CPU backend half-precision weights are computed in float32 by default (speed).
    on_cpu, _ = load(tmp_path / dtype, device="cpu")
    assert on_cpu.model.embeddings.tok_embeddings.weight.dtype == mx.float32
    ids, mask = batch(half, tokenizer)
    want, got = run(reference, ids, mask), run(half, ids, mask)
    real = mask.astype(bool)
    assert (want.argmax(-1) == got.argmax(-1))[real].mean() >= 0.99
    assert np.abs(want - got)[real].max() <= HALF_TOLERANCE[dtype]


@pytest.mark.parametrize("bits,group", [(4, 32), (4, 64), (8, 64)])
def test_quantized_models_load_and_run(make_checkpoint, tmp_path, bits, group):
    src = make_checkpoint(head="token-classification", **QUANTIZABLE)
    out = tmp_path / f"q{bits}"
    convert(src, out, quantize=True, q_bits=bits, q_group_size=group, log=lambda m: None)
    config = (out / "config.json").read_text()
    assert f'"bits": {bits}' in config and f'"group_size": {group}' in config
    reference, tokenizer = load(src)
    quantized, _ = load(out)
    assert isinstance(quantized.model.layers[0].attn.Wqkv, nn.QuantizedLinear)
    assert isinstance(quantized.classifier, nn.Linear) and not isinstance(
        quantized.classifier, nn.QuantizedLinear
    )
    ids, mask = batch(quantized, tokenizer)
    want, got = run(reference, ids, mask), run(quantized, ids, mask)
    real = mask.astype(bool)
    deviation = np.abs(want - got)[real].max()
    agreement = (want.argmax(-1) == got.argmax(-1))[real].mean()
    print(f"{bits}-bit, group {group}: max |diff| {deviation:.4f}, argmax agreement {agreement:.3f}")
    assert np.isfinite(got).all()
    assert agreement >= (0.97 if bits == 8 else 0.75)
    assert sum(p.stat().st_size for p in out.glob("*.safetensors")) < sum(
        p.stat().st_size for p in src.glob("*.safetensors")
    )


def test_quantized_masked_lm_uses_the_quantized_tied_embeddings(make_checkpoint, tmp_path):
    src = make_checkpoint(head="masked-lm", **QUANTIZABLE)
    convert(src, tmp_path / "q8", quantize=True, q_bits=8, q_group_size=32, log=lambda m: None)
    reference, tokenizer = load(src)
    quantized, _ = load(tmp_path / "q8")
    ids, mask = batch(quantized, tokenizer)
    want, got = run(reference, ids, mask), run(quantized, ids, mask)
    assert got.shape == want.shape
    assert (want.argmax(-1) == got.argmax(-1))[mask.astype(bool)].mean() >= 0.9


def test_sharded_safetensors_and_pytorch_bin_sources(make_checkpoint, tmp_path):
    src = make_checkpoint(head="token-classification", **QUANTIZABLE)
    hf = transformers.ModernBertForTokenClassification.from_pretrained(str(src))
    sharded = tmp_path / "sharded"
    hf.save_pretrained(sharded, max_shard_size="100KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    torch.save(hf.state_dict(), pickled / "pytorch_model.bin")
    for folder in (sharded, pickled):
        for name in ("config.json", "tokenizer.json"):
            shutil.copyfile(src / name, folder / name)
    reference, tokenizer = load(src)
    ids, mask = batch(reference, tokenizer)
    want = run(reference, ids, mask)
    for folder in (sharded, pickled):
        convert(folder, tmp_path / f"{folder.name}-mlx", log=lambda m: None)
        converted, _ = load(tmp_path / f"{folder.name}-mlx")
        np.testing.assert_allclose(run(converted, ids, mask), want, atol=1e-6)


def test_encoder_head_reads_a_masked_lm_checkpoint(make_checkpoint):
    src = make_checkpoint(head="masked-lm")
    encoder, tokenizer = load(src, head="encoder")
    ids, mask = batch(encoder, tokenizer)
    expected = reference_output(src, "encoder", ids, mask)
    assert np.abs(run(encoder, ids, mask) - expected)[mask.astype(bool)].max() <= 1e-4


def test_interrupted_conversion_leaves_no_output(make_checkpoint, tmp_path, monkeypatch):
    import mlx_lm.utils

    src = make_checkpoint(head="token-classification")
    real_save = mlx_lm.utils.save_model

    def save_then_die(path, model, **kwargs):
        real_save(path, model, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(mlx_lm.utils, "save_model", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        convert(src, tmp_path / "out", log=lambda m: None)
    assert list(tmp_path.iterdir()) == []

    # An existing output survives a failed --force replacement untouched.
    monkeypatch.setattr(mlx_lm.utils, "save_model", real_save)
    convert(src, tmp_path / "out", log=lambda m: None)
    before = tree_digest(tmp_path / "out")
    monkeypatch.setattr(mlx_lm.utils, "save_model", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        convert(src, tmp_path / "out", force=True, log=lambda m: None)
    assert tree_digest(tmp_path / "out") == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_overwrite_rules(make_checkpoint, tmp_path):
    src = make_checkpoint(head="token-classification")
    convert(src, tmp_path / "out", log=lambda m: None)
    with pytest.raises(AnnoError, match="already exists; pass --force"):
        convert(src, tmp_path / "out", log=lambda m: None)
    convert(src, tmp_path / "out", dtype="float16", force=True, log=lambda m: None)
    assert '"float16"' in (tmp_path / "out" / "config.json").read_text()
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    with pytest.raises(AnnoError, match="not a model folder"):
        convert(src, precious, force=True, log=lambda m: None)
    assert (precious / "notes.txt").read_text() == "mine"
    with pytest.raises(AnnoError, match="overlaps the source"):
        convert(src, src, force=True, log=lambda m: None)


def test_verify_reports_difference_from_transformers(make_checkpoint, tmp_path):
    src = make_checkpoint(head="token-classification")
    summary = convert(src, tmp_path / "out", verify=True, log=lambda m: None)
    assert summary["verify"]["reference"] == "transformers"
    assert summary["verify"]["max_abs_diff"] <= 1e-4
    assert summary["verify"]["argmax_agreement"] == 1.0


def test_hub_id_converts_once_from_the_cache_then_loads_offline(make_checkpoint, isolated_home, monkeypatch):
    src = make_checkpoint(head="token-classification")
    put_in_hub_cache(src, "someone/tiny-ner", isolated_home / "hub")
    model, tokenizer = load("someone/tiny-ner")
    target = isolated_home / "anno-mlx" / "models--someone--tiny-ner"
    assert (target / "model.safetensors").is_file()
    assert json.loads((target / "config.json").read_text())["anno_mlx"]["source"] == "someone/tiny-ner"

    import anno_mlx.convert.converter as converter

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("converted twice")

    monkeypatch.setattr(converter, "convert", no_second_conversion)
    again, _ = load("someone/tiny-ner")
    ids, mask = batch(model, tokenizer)
    np.testing.assert_array_equal(run(model, ids, mask), run(again, ids, mask))


def test_hub_id_missing_from_cache_offline_says_so(tmp_path):
    with pytest.raises(AnnoError, match="nor in the Hugging Face cache"):
        convert("someone/not-downloaded", tmp_path / "out", log=lambda m: None)
    with pytest.raises(AnnoError, match="nor in the Hugging Face cache"):
        load("someone/not-downloaded")
