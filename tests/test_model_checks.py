"""The shared config checks (`models/checks.py`) and the MLX-to-PyTorch weight loading
(`models/torch_weights.py`) that every family calls, on small stand-ins for a family's args."""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Optional

import mlx.core as mx
import mlx.nn as mnn
import numpy as np
import pytest

from anno_mlx.models import checks


@dataclass
class Args:
    hidden_size: int = 32
    num_attention_heads: int = 4
    vocab_size: int = 100
    pad_token_id: Optional[int] = 0


def test_known_fields_drop_unknown_keys_and_nulls():
    assert checks.known_fields(Args, {"hidden_size": 8, "pad_token_id": None, "other": 1}) == {
        "hidden_size": 8
    }


def test_id2label_keys_become_whole_numbers():
    assert checks.read_id2label({"0": "O", "1": "B-PER"}) == {0: "O", 1: "B-PER"}
    with pytest.raises(ValueError, match="id2label must be an object of label ids to names"):
        checks.read_id2label({"x": "O"})
    with pytest.raises(ValueError, match="id2label's ids must be 0 to 1, one each"):
        checks.check_id2label({0: "O", 2: "B-PER"})
    with pytest.raises(ValueError, match="id2label must map label ids to label names"):
        checks.check_id2label({0: " "})


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: checks.check_sizes(Args(hidden_size=0), ["hidden_size"]),
            "hidden_size 0 is not a whole number from 1 to 2,147,483,647",
        ),
        (
            lambda: checks.check_sizes(Args(hidden_size=True), ["hidden_size"]),
            "hidden_size True is not a whole number",
        ),
        (
            lambda: checks.check_positions(SimpleNamespace(max_position_embeddings=5000), 4096),
            "max_position_embeddings 5,000 is above the 4,096 this model supports",
        ),
        (
            lambda: checks.check_ranges(SimpleNamespace(eps=2.0), {"eps": (1e-12, 1.0)}),
            "eps 2.0 is not a positive number from 1e-12 to 1",
        ),
        (lambda: checks.check_booleans(SimpleNamespace(tie=1), ["tie"]), "tie 1 is not true or false"),
        (
            lambda: checks.check_token_ids(Args(pad_token_id=100), ["pad_token_id"]),
            "pad_token_id 100 is not a token id below vocab_size 100",
        ),
        (
            lambda: checks.check_multiple(Args(hidden_size=30), "hidden_size", "num_attention_heads"),
            "hidden_size 30 is not a multiple of num_attention_heads 4",
        ),
        (
            lambda: checks.check_rates(SimpleNamespace(p="0.1"), ["p"]),
            "p '0.1' is not a dropout rate in [0, 1)",
        ),
        (lambda: checks.check_rates(SimpleNamespace(p=None), ["p"]), "p None is not a dropout rate"),
        (
            lambda: checks.check_activations(SimpleNamespace(act="mish"), ["act"]),
            "act 'mish' is not supported (supported: ",
        ),
    ],
)
def test_checks_name_the_field_and_value(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_checks_pass_what_they_allow():
    checks.check_sizes(Args(), ["hidden_size", "vocab_size"])
    checks.check_token_ids(Args(pad_token_id=None), ["pad_token_id"])
    checks.check_rates(SimpleNamespace(p=0.0, q=None), ["p", "q"], optional=["q"])
    checks.check_id2label({})


def test_size_mismatch_helpers():
    layer_key = re.compile(r"(?:^|\.)layer\.(\d+)\.")
    shapes = {"layer.0.w": (4, 4), "layer.1.w": (4, 4), "emb.weight": (10, 4)}
    assert checks.layer_count_mismatch(shapes, layer_key, "n_layers", 2) is None
    assert (
        checks.layer_count_mismatch(shapes, layer_key, "n_layers", 3)
        == "n_layers is 3 but the weights hold 2 layers"
    )
    assert checks.weight_shape(shapes, "x.weight", "emb.weight") == (10, 4)
    assert checks.weight_shape(shapes, "missing") is None


class Tied(mnn.Module):
    def __init__(self):
        super().__init__()
        self.embed = mnn.Linear(3, 2, bias=False)


def test_load_mlx_weights_ties_and_refuses_a_mismatch():
    torch = pytest.importorskip("torch")
    from anno_mlx.models.torch_weights import load_mlx_weights

    def mirror():
        model = torch.nn.Module()
        model.embed = torch.nn.Linear(3, 2, bias=False)
        model.decoder = torch.nn.Linear(3, 2)
        return model

    mlx_model = Tied()
    loaded = load_mlx_weights(
        mirror(),
        mlx_model,
        torch.float32,
        "cpu",
        tied={"decoder.weight": "embed.weight"},
        may_miss=("decoder.bias",),
    )
    expected = np.array(mlx_model.embed.weight.astype(mx.float32))
    assert np.array_equal(loaded.decoder.weight.detach().numpy(), expected) and not loaded.training
    with pytest.raises(RuntimeError, match="torch model does not match"):
        load_mlx_weights(mirror(), mlx_model, torch.float32, "cpu", tied={"decoder.weight": "embed.weight"})
