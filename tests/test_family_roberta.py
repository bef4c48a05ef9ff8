"""RoBERTa, XLM-RoBERTa and CamemBERT against transformers: the three heads on both backends,
what RoBERTa does differently (positions after the padding id that skip padding, the longest
input, the `lm_head` keys and its fixed gelu, the XLM-R and CamemBERT class names, the BPE and
Unigram tokenizers), conversion, long documents, fine-tuning and the encoder API."""

from __future__ import annotations

import json

import mlx.core as mx
import numpy as np
import pytest
import torch
from family_checks import (
    TEXT,
    batch,
    check_convert,
    check_encoder,
    check_fine_tuning,
    check_long_document,
    check_parity,
    run_mlx,
    transformers_output,
)
from transformers.models.roberta.modeling_roberta import RobertaEmbeddings

from anno_mlx import NER, AnnoError, load
from anno_mlx.checkpoint import read_weights
from anno_mlx.models import roberta
from anno_mlx.models.roberta import mlx_model, torch_model
from anno_mlx.tokenizer import Tokenizer

QUANTIZABLE = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4)
HEADS = ["token-classification", "masked-lm", "encoder"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """`tiny(head=..., kind=..., **config)` -> a tiny RoBERTa or XLM-R folder, made once."""
    from anno_mlx.testing.tiny_roberta import make_tiny_roberta

    made = {}

    def make(**kwargs):
        key = json.dumps(kwargs, sort_keys=True)
        if key not in made:
            made[key] = make_tiny_roberta(tmp_path_factory.mktemp("roberta"), **kwargs)
        return made[key]

    return make


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("kind", ["roberta", "xlm-roberta"])
def test_matches_transformers_on_both_backends(tiny, head, kind):
    check_parity(tiny(head=head, kind=kind))


def test_lm_head_gelu_is_fixed_and_untied_decoder_reads(tiny):
    """The layers follow hidden_act, the masked-LM head always uses the exact gelu."""
    check_parity(tiny(head="masked-lm", hidden_act="relu"))
    folder = tiny(head="masked-lm", tie_word_embeddings=False, seed=3)
    assert "lm_head.decoder.weight" in read_weights(folder)
    check_parity(folder)


def test_masked_lm_keys_as_transformers_writes_them(tiny):
    keys = set(read_weights(tiny(head="masked-lm")))
    assert {"lm_head.dense.weight", "lm_head.layer_norm.weight", "lm_head.bias"} <= keys
    assert "roberta.embeddings.word_embeddings.weight" in keys
    assert not any(k.startswith("lm_head.decoder") for k in keys)


@pytest.mark.parametrize("pad", [1, 5])
def test_positions_start_after_padding_and_skip_it(pad):
    """As transformers numbers them: right padding, left padding and the padding id inside."""
    ids = np.array([[0, 7, 8, 9, 2, pad, pad], [pad, pad, 0, 7, 2, pad, pad], [0, pad, 8, 9, 9, 9, 2]])
    expected = RobertaEmbeddings.create_position_ids_from_input_ids(torch.tensor(ids), pad).numpy()
    args = roberta.ModelArgs(vocab_size=20, hidden_size=8, num_attention_heads=2, pad_token_id=pad)
    np.testing.assert_array_equal(np.array(mlx_model.Embeddings(args).position_ids(mx.array(ids))), expected)
    got = torch_model.Embeddings(args).position_ids(torch.tensor(ids))
    np.testing.assert_array_equal(got.numpy(), expected)
    assert expected[0].tolist() == [pad + 1, pad + 2, pad + 3, pad + 4, pad + 5, pad, pad]


def test_left_padding_leaves_real_tokens_alone(tiny):
    """Positions skip padding, so a left-padded row gives its unpadded outputs, as in transformers."""
    folder = tiny(head="token-classification")
    model, tokenizer = load(folder)
    ids, mask = batch(folder, (30, 30))
    left = np.full((1, 40), tokenizer.pad_token_id, ids.dtype)
    left[0, 10:] = np.where(ids[0] == tokenizer.pad_token_id, 4, ids[0])
    left_mask = (np.arange(40) >= 10)[None].astype(mask.dtype)
    got = run_mlx(model, left, left_mask)
    alone = run_mlx(model, left[:, 10:], left_mask[:, 10:])
    np.testing.assert_allclose(got[0, 10:], alone[0], atol=1e-5)
    expected = transformers_output(folder, left, left_mask)
    assert np.abs(got - expected)[left_mask.astype(bool)].max() <= 1e-4


def test_longest_input_is_positions_minus_padding_id(tiny):
    assert roberta.ModelArgs.from_dict({"max_position_embeddings": 514, "pad_token_id": 1}).max_length == 512
    args = roberta.ModelArgs.from_dict({"bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1})
    assert (args.cls_token_id, args.sep_token_id, args.pad_token_id) == (0, 2, 1)
    with pytest.raises(ValueError, match="pad_token_id is missing"):
        roberta.ModelArgs(pad_token_id=None)
    with pytest.raises(ValueError, match="leaves no position after the padding id 1"):
        roberta.ModelArgs(max_position_embeddings=2)
    folder = tiny(head="token-classification", max_position_embeddings=34)
    ner = NER.from_pretrained(folder, backend="mlx")
    assert ner.runner.args.max_length == 32 and ner.capacity == 30
    with pytest.raises(AnnoError, match="at most the model's 32 positions"):
        ner("Ada Lovelace", max_length=33)


def test_xlm_roberta_and_camembert_configs_map_to_the_same_classes(tiny, tmp_path):
    model, tokenizer = load(tiny(head="token-classification", kind="xlm-roberta"))
    assert type(model).__name__ == "RobertaForTokenClassification"
    assert model.args.model_type == "xlm-roberta"
    source = tiny(head="masked-lm")
    camembert = tmp_path / "camembert"
    camembert.mkdir()
    for name in ("model.safetensors", "tokenizer.json"):
        (camembert / name).write_bytes((source / name).read_bytes())
    config = json.loads((source / "config.json").read_text())
    config.update(model_type="camembert", architectures=["CamembertForMaskedLM"])
    (camembert / "config.json").write_text(json.dumps(config))
    check_parity(camembert)


@pytest.mark.parametrize("kind", ["roberta", "xlm-roberta"])
def test_tokenizers_wrap_text_in_s_and_end_s(tiny, kind):
    tokenizer = Tokenizer.from_folder(tiny(head="encoder", kind=kind))
    assert tokenizer.special_tokens() == ([0], [2]) and tokenizer.pad_token_id == 1
    tokens = tokenizer.tokenize(TEXT)
    assert all(0 <= a <= b <= len(TEXT) for a, b in tokens.offsets)


def test_convert_float16_and_quantized(tiny, tmp_path):
    check_convert(tiny(head="token-classification", **QUANTIZABLE), tmp_path)


@pytest.mark.parametrize("kind", ["roberta", "xlm-roberta"])
def test_long_document_offsets_on_both_backends(tiny, kind):
    check_long_document(tiny(head="token-classification", kind=kind, max_position_embeddings=34))


def test_fine_tune_from_masked_lm_then_eval(tiny, tmp_path):
    check_fine_tuning(tiny(head="masked-lm", kind="xlm-roberta"), tmp_path, backend="torch")


def test_encoder_api_gives_transformers_hidden_states(tiny):
    check_encoder(tiny(head="encoder"))
