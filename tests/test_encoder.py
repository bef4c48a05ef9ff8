"""The encoder API: architecture detection, configs from names and files, `Encoder.encode`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import put_in_hub_cache
from reference import reference_output

from anno_mlx import AnnoError, Encoder, EncoderArchitecture, EncoderConfig
from anno_mlx.models.modernbert import GLOBAL, LOCAL


def test_modernbert_base_from_name():
    config = EncoderConfig.from_model_name("answerdotai/ModernBERT-base")
    assert config.architecture is EncoderArchitecture.MODERNBERT
    assert config.use_rope and config.global_rope_base == 160000.0 and config.local_rope_base == 10000.0
    assert config.local_window == 128 and config.max_position_embeddings == 8192
    assert (config.hidden_size, config.intermediate_size, config.num_layers, config.num_attention_heads) == (
        768,
        1152,
        22,
        12,
    )
    assert config.global_layers == list(range(0, 22, 3))
    assert (config.cls_token_id, config.sep_token_id, config.pad_token_id, config.mask_token_id) == (
        50281,
        50282,
        50283,
        50284,
    )


def test_modernbert_large_from_name():
    config = EncoderConfig.from_model_name("answerdotai/ModernBERT-large")
    assert (config.hidden_size, config.intermediate_size, config.num_layers, config.num_attention_heads) == (
        1024,
        2624,
        28,
        16,
    )


@pytest.mark.parametrize(
    "name, sizes",
    [
        ("sbintuitions/modernbert-ja-30m", (256, 1024, 10, 4)),
        ("sbintuitions/modernbert-ja-70m", (384, 1536, 13, 6)),
        ("sbintuitions/modernbert-ja-130m", (512, 2048, 19, 8)),
        ("sbintuitions/modernbert-ja-310m", (768, 3072, 25, 12)),
    ],
)
def test_japanese_modernberts_have_their_own_sizes_vocabulary_and_ids(name, sizes):
    config = EncoderConfig.from_model_name(name)
    assert config.architecture is EncoderArchitecture.MODERNBERT
    assert config.use_rope and config.local_window == 128 and config.max_length == 8192
    assert (
        config.hidden_size,
        config.intermediate_size,
        config.num_layers,
        config.num_attention_heads,
    ) == sizes
    assert config.vocab_size == 102400
    assert (config.cls_token_id, config.sep_token_id, config.pad_token_id) == (6, 4, 3)


def test_other_families_by_name_and_unknown_names_refused():
    bert = EncoderConfig.from_model_name("google-bert/bert-base-cased")
    assert bert.architecture is EncoderArchitecture.BERT and not bert.use_rope
    assert (bert.vocab_size, bert.max_length, bert.cls_token_id, bert.pad_token_id) == (28996, 512, 101, 0)
    assert EncoderConfig.from_model_name("bert-base-uncased").vocab_size == 30522
    roberta = EncoderConfig.from_model_name("roberta-base")
    assert roberta.architecture is EncoderArchitecture.ROBERTA
    assert (roberta.max_position_embeddings, roberta.max_length, roberta.pad_token_id) == (514, 512, 1)
    assert EncoderConfig.from_model_name("FacebookAI/xlm-roberta-base").vocab_size == 250002
    large = EncoderConfig.from_model_name("roberta-large")
    assert (large.hidden_size, large.num_layers, large.max_length) == (1024, 24, 512)
    assert EncoderConfig.from_model_name("distilbert-base-cased").num_layers == 6
    assert (
        EncoderConfig.from_model_name("microsoft/deberta-v3-base").architecture
        is EncoderArchitecture.DEBERTA_V2
    )
    for name in ("someone/gpt-thing", "llm-jp/llm-jp-modernbert-base", "sbintuitions/modernbert-ja-999m"):
        with pytest.raises(
            AnnoError, match=r"not a model anno-mlx knows by name; use EncoderConfig.from_pretrained"
        ):
            EncoderConfig.from_model_name(name)


@pytest.mark.parametrize("legacy", [True, False])
def test_from_pretrained_reads_config_and_special_ids(make_checkpoint, legacy):
    folder = make_checkpoint(
        head="masked-lm",
        legacy_keys=legacy,
        num_hidden_layers=4,
        global_attn_every_n_layers=2,
        global_rope_theta=1234.0,
    )
    config = EncoderConfig.from_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text())
    assert config.global_rope_base == 1234.0
    assert config.layer_types == (GLOBAL, LOCAL, GLOBAL, LOCAL)
    assert config.pad_token_id == saved["pad_token_id"] and config.cls_token_id == saved["cls_token_id"]
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    ids = {t["content"]: t["id"] for t in tokenizer["added_tokens"]}
    assert config.mask_token_id == ids["[MASK]"] and config.unk_token_id == ids["[UNK]"]


def test_encode_matches_transformers_hidden_states(make_checkpoint):
    folder = make_checkpoint(head="masked-lm")
    encoder = Encoder.from_pretrained(folder)
    text = "Ada Lovelace worked with Charles Babbage in London. " * 6
    embeddings, seq_len = encoder.encode(text)
    ids = encoder.tokenizer.encode(text).ids
    assert seq_len == len(ids) and embeddings.shape == (seq_len, encoder.config.hidden_size)
    expected = reference_output(folder, "encoder", np.array([ids]), np.ones((1, len(ids)), dtype=np.int64))[0]
    assert np.abs(embeddings - expected).max() <= 1e-4


def test_encode_batch_equals_one_at_a_time(make_checkpoint):
    encoder = Encoder.from_pretrained(make_checkpoint(head="encoder"), batch_size=2)
    texts = [
        "Paris.",
        "Marie Curie was born in Warsaw and moved to Paris. " * 5,
        "",
        "Tokyo and Berlin are cities.",
    ]
    batched = encoder.encode_batch(texts)
    for text, (embeddings, n) in zip(texts, batched):
        alone, m = encoder.encode(text)
        assert n == m
        np.testing.assert_allclose(embeddings, alone, atol=1e-5)


def test_too_long_text_is_refused_clearly(make_checkpoint):
    encoder = Encoder.from_pretrained(make_checkpoint(head="encoder", max_position_embeddings=64))
    with pytest.raises(AnnoError, match="more than the model's 64"):
        encoder.encode("word " * 200)


def test_from_architecture_loads_the_default_checkpoint_from_the_cache(make_checkpoint, isolated_home):
    put_in_hub_cache(make_checkpoint(head="masked-lm"), "answerdotai/ModernBERT-base", isolated_home / "hub")
    encoder = Encoder.from_architecture(EncoderArchitecture.MODERNBERT)
    embeddings, n = encoder.encode("Hello world")
    assert embeddings.shape == (n, encoder.config.hidden_size) and np.isfinite(embeddings).all()


def test_an_architecture_without_its_family_is_refused(monkeypatch):
    import anno_mlx.models as models

    monkeypatch.setattr(models, "FAMILIES", {"modernbert": "modernbert"})
    monkeypatch.setattr("anno_mlx.encoder.FAMILIES", models.FAMILIES)
    with pytest.raises(AnnoError, match="bert encoders are not supported yet; supported: modernbert"):
        Encoder.from_architecture(EncoderArchitecture.BERT)
