"""DistilBERT: the same numbers as transformers on every head and both backends, its own config
and key names, sinusoidal positions, conversion, windowed NER with exact offsets, training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
import torch
from mlx.utils import tree_flatten
from reference import padded_batch
from safetensors.torch import load_file, save_file
from synthetic import write_conll

from anno_mlx import NER, AnnoError, load
from anno_mlx.checkpoint import read_weights, training_model
from anno_mlx.cli import main
from anno_mlx.models.distilbert import ModelArgs
from anno_mlx.models.distilbert.mlx_model import (
    DistilBertModel,
    attention_with_dropout,
    key_mask,
    sinusoids,
)
from anno_mlx.runners import runner_for
from anno_mlx.testing.save import HEADS, transformers_class
from anno_mlx.testing.tiny_distilbert import make_tiny_distilbert
from anno_mlx.tokenizer import Tokenizer

TOLERANCE = 1e-4
# A second config: sinusoidal positions, ReLU, another width, depth and head count.
VARIANT = dict(dim=36, hidden_dim=50, n_layers=3, n_heads=3, sinusoidal_pos_embds=True, activation="relu")
QUANTIZABLE = dict(dim=64, hidden_dim=128, n_heads=4)
TEXT = (
    "Ada Lovelace worked with Charles Babbage in London. Marie Curie moved to Paris and São Paulo; "
    "東京 と 大阪 は 日本 の 都市 です。 Zoë Brontë visited Zürich, Kraków and Tokyo on Tuesday. "
) * 4


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """`made(head, **config)` -> a tiny checkpoint folder; identical requests share one."""
    folders: dict[str, Path] = {}

    def make(head: str = "token-classification", **config) -> Path:
        key = json.dumps([head, config], sort_keys=True)
        if key not in folders:
            folders[key] = make_tiny_distilbert(tmp_path_factory.mktemp("distilbert"), head=head, **config)
        return folders[key]

    return make


def reference(folder: Path, head: str, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    model = transformers_class("DistilBert", head).from_pretrained(
        str(folder), attn_implementation="eager", dtype=torch.float32
    )
    with torch.no_grad():
        out = model.eval()(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
    return (out.logits if head != "encoder" else out.last_hidden_state).numpy()


def batch(vocab: int, pad: int, seed: int = 0):
    # All 64 positions, long padding, a single token, and a row of padding alone (must stay finite).
    return padded_batch(np.random.default_rng(seed), [64, 9, 30, 1, 0], vocab, pad)


def assert_matches(folder: Path, head: str, load_head=None, seed: int = 0) -> None:
    """Both backends, through the real loader, against transformers on the same folder."""
    mlx_model, tokenizer = load(folder, head=load_head, backend="mlx")
    torch_model, _ = load(folder, head=load_head, backend="torch", device="cpu")
    ids, mask = batch(mlx_model.args.vocab_size, tokenizer.pad_token_id, seed)
    expected = reference(folder, head, ids, mask)
    real = mask.astype(bool)
    for model in (mlx_model, torch_model):
        got = runner_for(model)(ids, mask)
        assert got.shape == expected.shape and np.isfinite(got).all()
        assert np.abs(got - expected)[real].max() <= TOLERANCE


@pytest.mark.parametrize("config", [{}, VARIANT], ids=["learned", "sinusoidal-relu"])
@pytest.mark.parametrize("head", list(HEADS))
def test_matches_transformers_on_padded_batches(made, head, config):
    assert_matches(made(head, **config), head)


def test_untied_projector_and_heads_read_as_the_encoder(made):
    assert_matches(made("masked-lm", tie_word_embeddings=False, seed=3), "masked-lm")
    # A task checkpoint read as the bare encoder: `distilbert.*` keys, heads dropped.
    assert_matches(made("token-classification"), "encoder", load_head="encoder")
    assert_matches(made("masked-lm"), "encoder", load_head="encoder")


def test_config_names_and_common_properties():
    args = ModelArgs.from_dict(
        {
            "model_type": "distilbert",
            "dim": 48,
            "hidden_dim": 60,
            "n_layers": 3,
            "n_heads": 6,
            "vocab_size": 100,
            "max_position_embeddings": 40,
            "id2label": {"0": "O", "1": "B-PER"},
            "unknown_key": 1,
        }
    )
    assert (args.hidden_size, args.intermediate_size, args.num_hidden_layers, args.num_attention_heads) == (
        48,
        60,
        3,
        6,
    )
    assert args.norm_eps == 1e-12 and args.max_length == 40 and args.verify_length == 40
    assert args.layer_types == ["full_attention"] * 3 and args.num_labels == 2 and args.id2label[1] == "B-PER"
    assert args.pad_token_id == 0 and args.cls_token_id is None
    # transformers' DistilBertConfig also takes the common names for its own.
    aliased = ModelArgs.from_dict({"hidden_size": 40, "num_hidden_layers": 2, "num_attention_heads": 5})
    assert (aliased.dim, aliased.n_layers, aliased.n_heads) == (40, 2, 5)
    for bad, message in [
        ({"dim": 30, "n_heads": 4}, "dim 30 is not a multiple of n_heads 4"),
        ({"n_layers": 0}, "n_layers 0 is not a whole number"),
        ({"activation": "tanh"}, "activation 'tanh' is not supported"),
        ({"sinusoidal_pos_embds": "yes"}, "sinusoidal_pos_embds 'yes' is not true or false"),
        ({"attention_dropout": 1.0}, r"attention_dropout 1.0 is not a dropout rate"),
        ({"pad_token_id": 30522}, "pad_token_id 30522 is not a token id"),
        ({"max_position_embeddings": 2**17}, "above the 65,536"),
    ]:
        with pytest.raises(ValueError, match=message):
            ModelArgs.from_dict(bad)


def rewrite_weights(folder: Path, dst: Path, change) -> Path:
    """A copy of `folder` whose safetensors state dict went through `change`."""
    shutil.copytree(folder, dst)
    state = load_file(str(folder / "model.safetensors"))
    change(state)
    save_file(state, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def test_sinusoidal_positions_are_read_from_the_checkpoint_or_made(made, tmp_path):
    folder = made("token-classification", **VARIANT)
    stored = load_file(str(folder / "model.safetensors"))
    positions = "distilbert.embeddings.position_embeddings.weight"
    np.testing.assert_allclose(stored[positions].numpy(), sinusoids(64, VARIANT["dim"]), atol=1e-6)
    fresh = DistilBertModel(ModelArgs.from_dict(json.loads((folder / "config.json").read_text())))
    np.testing.assert_allclose(  # a fresh model starts from the same table as transformers' one
        np.array(fresh.embeddings.position_embeddings.weight), stored[positions].numpy(), atol=1e-6
    )
    # A stored table that is not the sinusoids is what runs, as in transformers.
    changed = rewrite_weights(
        folder, tmp_path / "changed", lambda s: s.__setitem__(positions, torch.randn_like(s[positions]))
    )
    assert_matches(changed, "token-classification")
    # A checkpoint without it gets the sinusoids, as transformers initialises them.
    missing = rewrite_weights(folder, tmp_path / "missing", lambda s: s.pop(positions))
    assert_matches(missing, "token-classification")
    learned = rewrite_weights(made("token-classification"), tmp_path / "learned", lambda s: s.pop(positions))
    with pytest.raises(AnnoError, match="lack 1 keys the model needs: distilbert.embeddings.position"):
        load(learned)


def test_key_layouts_bare_old_names_buffers_and_tied_copies(made, tmp_path):
    bare = made("encoder")
    assert not any(k.startswith("distilbert.") for k in load_file(str(bare / "model.safetensors")))
    model, _ = load(bare)
    assert type(model).__name__ == "DistilBertModel"

    def old_style(state):
        for key in [k for k in state if k.endswith(("LayerNorm.weight", "layer_norm.weight"))]:
            state[key.removesuffix("weight") + "gamma"] = state.pop(key)
            bias = key.removesuffix("weight") + "bias"
            state[key.removesuffix("weight") + "beta"] = state.pop(bias)
        state["distilbert.embeddings.position_ids"] = torch.arange(64)[None]
        state["vocab_projector.weight"] = state["distilbert.embeddings.word_embeddings.weight"].clone()

    old = rewrite_weights(made("masked-lm"), tmp_path / "old", old_style)
    mlx_model, tokenizer = load(old)
    new_model, _ = load(made("masked-lm"))
    ids, mask = batch(mlx_model.args.vocab_size, tokenizer.pad_token_id)
    np.testing.assert_array_equal(runner_for(mlx_model)(ids, mask), runner_for(new_model)(ids, mask))


def test_config_that_contradicts_the_weights_is_refused(made, tmp_path):
    for key, value, message in [
        ("n_layers", 3, "n_layers is 3 but the weights hold 2 layers"),
        (
            "max_position_embeddings",
            128,
            "max_position_embeddings is 128 but the position embeddings have 64",
        ),
        ("hidden_dim", 40, "hidden_dim is 40 but the feed-forward weights imply 37"),
        ("dim", 64, "dim is 64 but the weights' width is 32"),
    ]:
        folder = tmp_path / key
        shutil.copytree(made("token-classification"), folder)
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, key: value, "n_heads": 4}))
        with pytest.raises(AnnoError, match=message):
            load(folder)


def test_wordpiece_tokenizer_and_exact_offsets(made):
    tokenizer = Tokenizer.from_folder(made("token-classification"))
    cls_id, sep_id = tokenizer.inner.token_to_id("[CLS]"), tokenizer.inner.token_to_id("[SEP]")
    assert tokenizer.special_tokens() == ([cls_id], [sep_id]) and tokenizer.pad_token_id == 0
    tokens = tokenizer.tokenize(TEXT)
    pieces = [tokenizer.inner.id_to_token(int(i)) for i in tokens.ids]
    assert "São" in pieces and "東" in pieces  # cased, accents kept, one token per CJK character
    for piece, (start, end) in zip(pieces, tokens.offsets):
        if piece != "[UNK]":
            assert TEXT[start:end] == piece.removeprefix("##")


@pytest.mark.parametrize(
    "args", [["--dtype", "float16"], ["-q", "--q-bits", "8"], ["-q", "--q-group-size", "32"]]
)
def test_convert_and_load(made, tmp_path, capsys, args):
    src = made("token-classification", **QUANTIZABLE)
    dst = tmp_path / "out"
    assert main(["convert", str(src), "-o", str(dst), "--verify", *args]) == 0
    assert "verify: max |diff| vs transformers" in capsys.readouterr().out
    converted, tokenizer = load(dst, device="cpu")
    reference_model, _ = load(src)
    if "-q" in args:
        assert isinstance(converted.distilbert.transformer.layer[0].attention.q_lin, nn.QuantizedLinear)
    ids, mask = batch(converted.args.vocab_size, tokenizer.pad_token_id)
    want, got = runner_for(reference_model)(ids, mask), runner_for(converted)(ids, mask)
    real = mask.astype(bool)
    agreement = (want.argmax(-1) == got.argmax(-1))[real].mean()
    assert np.isfinite(got).all() and agreement >= (0.75 if "--q-group-size" in args else 0.95)
    torch_model, _ = load(dst, backend="torch", device="cpu")
    assert np.abs(runner_for(torch_model)(ids, mask) - got)[real].max() <= 1e-3


def test_quantized_masked_lm_projects_with_the_quantized_embeddings(made, tmp_path):
    src = made("masked-lm", **QUANTIZABLE)
    assert main(["convert", str(src), "-o", str(tmp_path / "q8"), "-q", "--q-bits", "8"]) == 0
    quantized, tokenizer = load(tmp_path / "q8")
    ids, mask = batch(quantized.args.vocab_size, tokenizer.pad_token_id)
    want = reference(src, "masked-lm", ids, mask)
    got = runner_for(quantized)(ids, mask)
    assert (want.argmax(-1) == got.argmax(-1))[mask.astype(bool)].mean() >= 0.9


def test_ner_windows_long_texts_with_exact_offsets_on_both_backends(made):
    folder = made("token-classification", seed=5)
    found = {}
    for backend in ("mlx", "torch"):
        ner = NER.from_pretrained(folder, backend=backend, device="cpu", batch_size=4)
        assert len(ner.tokenizer.tokenize(TEXT).ids) > 2 * ner.runner.args.max_length  # windows
        entities = ner(TEXT)
        assert entities, "a random classifier labels something"
        for e in entities:
            assert TEXT[e.start : e.end] == e.text and e.text == e.text.strip()
        found[backend] = entities
    assert [(e.start, e.end, e.label) for e in found["mlx"]] == [
        (e.start, e.end, e.label) for e in found["torch"]
    ]


@pytest.mark.parametrize("backend", ["mlx", "torch"])
def test_fine_tune_from_the_masked_lm_then_eval(made, tmp_path, capsys, backend):
    mlm = made("masked-lm")
    tokenizer = Tokenizer.from_folder(mlm)
    model, config = training_model(mlm, None, tokenizer, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    params, stored = dict(tree_flatten(model.parameters())), read_weights(mlm)
    for key, value in stored.items():
        if key.startswith("distilbert."):
            np.testing.assert_array_equal(np.array(params[key]), np.array(value))
    assert params["classifier.weight"].shape == (5, 32) and not any(k.startswith("vocab_") for k in params)
    assert config["architectures"] == ["DistilBertForTokenClassification"] and config["dim"] == 32

    train_file = write_conll(tmp_path / "train.conll", 40, seed=1)
    dev_file = write_conll(tmp_path / "dev.conll", 10, seed=2)
    out = tmp_path / "tuned"
    argv = ["train", "-m", str(mlm), "--train", str(train_file), "--dev", str(dev_file), "-o", str(out)]
    assert main([*argv, "--epochs", "1", "--lr", "1e-3", "--backend", backend, "--device", "cpu"]) == 0
    assert "dev F1" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["model_type"] == "distilbert"
    assert main(["eval", "--model", str(out), "--data", str(dev_file), "--json", "--backend", backend]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["strict"]["micro"]["f1"] <= 1.0


@pytest.mark.parametrize(
    "rates", [{}, {"dropout": 0.0, "attention_dropout": 0.5}, {"dropout": 0.0, "attention_dropout": 0.0}]
)
def test_dropout_only_while_training(made, rates):
    """Dropout (DistilBERT's default 0.1; on attention weights alone in the second case) draws
    masks in training mode on both backends, and is off in a loaded model."""
    folder = made("token-classification", **rates)
    for backend in ("mlx", "torch"):
        net, tokenizer = load(folder, backend=backend, device="cpu")
        ids, mask = batch(net.args.vocab_size, tokenizer.pad_token_id)
        real = mask.astype(bool)
        inference = runner_for(net)(ids, mask)
        net.train()
        first, second = runner_for(net)(ids, mask), runner_for(net)(ids, mask)
        if rates.get("attention_dropout") == 0.0:
            assert np.abs(first - inference)[real].max() <= 1e-5  # nothing to drop
        else:
            assert not np.allclose(first[real], second[real])
        net.eval()
        np.testing.assert_array_equal(inference, runner_for(net)(ids, mask))


def test_training_attention_is_the_fused_attention_before_dropout():
    """The attention that training runs to drop weights: without dropout, the fused kernel's
    numbers, padded keys masked, a row of padding alone finite."""
    rng = np.random.default_rng(0)
    q, k, v = (mx.array(rng.standard_normal((3, 2, 7, 8)).astype(np.float32)) for _ in range(3))
    mask = key_mask(mx.array([[1] * 7, [1] * 3 + [0] * 4, [0] * 7]))
    fused = mx.fast.scaled_dot_product_attention(q, k, v, scale=8**-0.5, mask=mask)
    ours = attention_with_dropout(q, k, v, 8**-0.5, mask, nn.Dropout(0.0))
    assert np.isfinite(np.array(ours)).all()
    np.testing.assert_allclose(np.array(ours), np.array(fused), atol=1e-5)
    dropped = nn.Dropout(0.5)
    assert not np.allclose(np.array(attention_with_dropout(q, k, v, 8**-0.5, mask, dropped)), np.array(fused))


def test_encoder_gives_the_base_models_hidden_states(made):
    from anno_mlx import Encoder

    folder = made("encoder")
    hidden, n = Encoder.from_pretrained(folder, backend="mlx").encode("Marie Curie moved to Paris.")
    ids = Tokenizer.from_folder(folder).encode("Marie Curie moved to Paris.").ids
    expected = reference(folder, "encoder", np.array([ids]), np.ones((1, len(ids)), dtype=np.int64))[0]
    assert n == len(ids) and np.abs(hidden - expected).max() <= TOLERANCE
