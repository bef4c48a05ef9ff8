"""DeBERTa-v2/v3 against transformers in float32 on both backends, and through every command:
disentangled attention in each of its forms, embeddings, both masked-LM head layouts, convert,
NER windows with exact offsets, fine-tuning from the masked-LM checkpoint, and the encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers
from reference import padded_batch
from safetensors.torch import load_file, save_file
from synthetic import write_conll

from anno_mlx import NER, AnnoError, Encoder, load
from anno_mlx.cli import main
from anno_mlx.models.deberta_v2 import ModelArgs
from anno_mlx.models.deberta_v2.positions import relative_index
from anno_mlx.runners import runner_for
from anno_mlx.testing.tiny_deberta_v2 import make_tiny_deberta_v2

TOLERANCE = 1e-4
CLASSES = {
    "token-classification": transformers.DebertaV2ForTokenClassification,
    "masked-lm": transformers.DebertaV2ForMaskedLM,
    "encoder": transformers.DebertaV2Model,
}
HEADS = list(CLASSES)
# DeBERTa-v3 (the builder's defaults: log buckets, shared keys, normalised relative embeddings,
# no absolute positions), then what each other config changes.
V3: dict = {}
V2 = dict(  # separate position projections, absolute positions, token types, a narrower embedding
    share_att_key=False,
    position_biased_input=True,
    type_vocab_size=2,
    embedding_size=24,
    position_buckets=-1,
    max_relative_positions=48,  # shorter than the batch: distances beyond it are clamped
    norm_rel_ebd="none",
)
CONFIGS = {
    "v3": V3,
    "v2": V2,
    "c2p-only": dict(pos_att_type=["c2p"], share_att_key=False),
    "p2c-only-shared": dict(pos_att_type=["p2c"], num_attention_heads=2),
    "no-relative": dict(relative_attention=False, position_biased_input=True, num_hidden_layers=3),
    "string-terms": dict(pos_att_string=True, position_buckets=256, hidden_size=48, num_attention_heads=3),
}
MLM_LAYOUTS = {"not-legacy": dict(legacy=False), "untied": dict(tie_word_embeddings=False)}
# Every head on both main configs; the attention variants once, with the classifier.
PARITY = [(head, name) for head in HEADS for name in ("v3", "v2")] + [
    ("token-classification", name) for name in CONFIGS if name not in ("v3", "v2")
]
LENGTHS = [150, 9, 1]  # past half the buckets, mostly padding, a single token


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    made = {}

    def make(head: str, name: str, **config):
        if (head, name) not in made:
            made[head, name] = make_tiny_deberta_v2(tmp_path_factory.mktemp("deberta"), head=head, **config)
        return made[head, name]

    return make


def reference_output(folder, head: str, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    model = (
        CLASSES[head].from_pretrained(str(folder), attn_implementation="eager", dtype=torch.float32).eval()
    )
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
    return (out.logits if head != "encoder" else out.last_hidden_state).numpy()


def assert_matches_reference(folder, head: str, seed: int = 0) -> None:
    """Our MLX and PyTorch models against transformers on a padded batch (real tokens only)."""
    mlx_model, tokenizer = load(folder, backend="mlx")
    torch_model, _ = load(folder, backend="torch", device="cpu")
    ids, mask = padded_batch(
        np.random.default_rng(seed), LENGTHS, mlx_model.args.vocab_size, tokenizer.pad_token_id
    )
    expected = reference_output(folder, head, ids, mask)
    real = mask.astype(bool)
    for model in (mlx_model, torch_model):
        got = runner_for(model)(ids, mask)
        assert got.shape == expected.shape and np.isfinite(got).all()
        assert np.abs(got - expected)[real].max() <= TOLERANCE


@pytest.mark.parametrize("head,name", PARITY)
def test_matches_transformers_on_padded_batches(checkpoint, head, name):
    assert_matches_reference(checkpoint(head, name, **CONFIGS[name]), head)


@pytest.mark.parametrize("layout", list(MLM_LAYOUTS))
def test_both_masked_lm_layouts_and_an_untied_decoder_match(checkpoint, layout):
    assert_matches_reference(checkpoint("masked-lm", layout, **MLM_LAYOUTS[layout]), "masked-lm")


def test_scale_counts_the_position_terms_even_without_relative_attention():
    assert ModelArgs(hidden_size=32, num_attention_heads=4, pos_att_type=["p2c", "c2p"]).scale_factor == 3
    assert ModelArgs(hidden_size=32, num_attention_heads=4, pos_att_type=["c2p"]).scale_factor == 2
    assert ModelArgs(hidden_size=32, num_attention_heads=4).scale_factor == 1


@pytest.mark.parametrize(
    "buckets,max_relative,length", [(256, -1, 700), (256, 512, 300), (16, 64, 90), (-1, 40, 90)]
)
def test_relative_positions_are_the_reference_rows(buckets, max_relative, length):
    from transformers.models.deberta_v2.modeling_deberta_v2 import build_relative_position

    args = ModelArgs(
        hidden_size=32,
        num_attention_heads=4,
        relative_attention=True,
        position_buckets=buckets,
        max_relative_positions=max_relative,
    )
    span = args.attention_span
    positions = torch.zeros(1, length, 1)
    relative = build_relative_position(
        positions, positions, bucket_size=buckets, max_position=args.relative_span_limit
    )
    expected = torch.clamp(relative[0] + span, 0, 2 * span - 1).numpy()
    np.testing.assert_array_equal(relative_index(length, args), expected)


def test_a_mostly_padded_row_and_an_empty_row_stay_finite(checkpoint):
    folder = checkpoint("token-classification", "v3")
    for backend in ("mlx", "torch"):
        model, tokenizer = load(folder, backend=backend, device="cpu")
        run = runner_for(model)
        ids, mask = padded_batch(np.random.default_rng(3), [120, 2, 0], 100, tokenizer.pad_token_id)
        out = run(ids, mask)
        assert np.isfinite(out).all()
        np.testing.assert_allclose(out[0], run(ids[:1], mask[:1])[0], atol=1e-5)


def test_microsoft_checkpoint_keys_load(checkpoint, tmp_path):
    """The released checkpoints hold the masked-LM head as `lm_predictions.lm_head.*` under a
    legacy config, plus the replaced-token-detection head and unused absolute positions."""
    import shutil

    src = checkpoint("masked-lm", "v3")
    folder = tmp_path / "released"
    shutil.copytree(src, folder)
    state = load_file(folder / "model.safetensors")
    renamed = {}
    for key, value in state.items():
        key = key.replace("cls.predictions.transform.", "lm_predictions.lm_head.")
        renamed[key.replace("cls.predictions.bias", "lm_predictions.lm_head.bias")] = value
    renamed["mask_predictions.classifier.weight"] = torch.zeros(1, 32)
    renamed["deberta.embeddings.position_embeddings.weight"] = torch.zeros(512, 32)
    renamed["deberta.embeddings.position_ids"] = torch.arange(512)[None].float()
    save_file(renamed, folder / "model.safetensors", metadata={"format": "pt"})
    model, tokenizer = load(folder, backend="mlx")
    ids, mask = padded_batch(np.random.default_rng(1), LENGTHS, model.args.vocab_size, tokenizer.pad_token_id)
    expected = reference_output(src, "masked-lm", ids, mask)
    assert np.abs(runner_for(model)(ids, mask) - expected)[mask.astype(bool)].max() <= TOLERANCE


def test_the_convolution_layer_is_refused_in_one_line(tmp_path):
    folder = make_tiny_deberta_v2(tmp_path / "conv", conv_kernel_size=3)
    with pytest.raises(AnnoError, match="conv_kernel_size 3") as err:
        load(folder)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "options,tolerance",
    [
        (["--dtype", "float16"], 1e-2),
        (["-q", "--q-bits", "8", "--q-group-size", "32"], 0.1),
        (["-q", "--q-group-size", "32"], None),
    ],
    ids=["float16", "q8", "q4"],
)
def test_convert_then_load(checkpoint, tmp_path, options, tolerance):
    src = checkpoint("token-classification", "convertible", intermediate_size=64, initializer_range=0.02)
    assert main(["convert", str(src), "-o", str(tmp_path / "out"), *options]) == 0
    ids, mask = padded_batch(np.random.default_rng(2), [40, 12], 100, 0)
    expected = reference_output(src, "token-classification", ids, mask)
    for backend in ("mlx", "torch"):
        model, _ = load(tmp_path / "out", backend=backend, device="cpu")
        got = runner_for(model)(ids, mask)
        assert np.isfinite(got).all()
        if tolerance is not None:
            assert np.abs(got - expected)[mask.astype(bool)].max() <= tolerance


TEXT = (
    "Ada Lovelace moved to São Paulo, then to Zu\u0308rich and Kraków; 東京 と 大阪 は 日本 の 都市 です。 "
    "Marie  Curie met Niels Bohr in Copenhagen. "
)


def test_ner_windows_long_texts_with_exact_offsets(checkpoint):
    folder = checkpoint("token-classification", "short", max_position_embeddings=48, position_buckets=16)
    text = TEXT * 8  # several windows of 48 positions
    found = {}
    for backend in ("mlx", "torch"):
        entities = NER.from_pretrained(folder, backend=backend, device="cpu")(text)
        assert entities
        for e in entities:
            assert text[e.start : e.end] == e.text and e.text == e.text.strip()
        found[backend] = [(e.start, e.end, e.label) for e in entities]
    assert found["mlx"] == found["torch"]


@pytest.mark.parametrize("backend", ["mlx", "torch"])
def test_fine_tune_the_masked_lm_then_evaluate(checkpoint, tmp_path, capsys, backend):
    base = checkpoint("masked-lm", "v3")
    train = write_conll(tmp_path / "train.conll", 24, seed=1)
    dev = write_conll(tmp_path / "dev.conll", 8, seed=2)
    out = tmp_path / "tuned"
    argv = ["train", "--model", str(base), "--train", str(train), "--dev", str(dev), "-o", str(out)]
    assert main([*argv, "--epochs", "1", "--batch-size", "8", "--seed", "0", "--backend", backend]) == 0
    rel = "deberta.encoder.rel_embeddings.weight"  # learnt through both position terms
    assert not np.array_equal(
        load_file(base / "model.safetensors")[rel], load_file(out / "model.safetensors")[rel]
    )
    capsys.readouterr()
    assert main(["eval", "--model", str(out), "--data", str(dev), "--json"]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["strict"]["micro"]["f1"] <= 1.0
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["DebertaV2ForTokenClassification"]
    assert_matches_reference(out, "token-classification")  # transformers reads what we wrote


def test_encoder_hidden_states_match_the_base_model(checkpoint):
    folder = checkpoint("masked-lm", "v3")
    encoder = Encoder.from_pretrained(folder)
    embeddings, length = encoder.encode(TEXT)
    ids = encoder.tokenizer.encode(TEXT).ids
    expected = reference_output(folder, "encoder", np.array([ids]), np.ones((1, len(ids)), dtype=np.int64))[0]
    assert length == len(ids) and np.abs(embeddings - expected).max() <= TOLERANCE
