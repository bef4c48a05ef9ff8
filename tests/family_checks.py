"""Checks every added model family passes, given a folder its tiny builder made: parity with
transformers on both backends, conversion, long documents, fine-tuning and the encoder API."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import torch
import transformers
from reference import padded_batch
from synthetic import write_conll

from anno_mlx import NER, Encoder, load
from anno_mlx.cli import main
from anno_mlx.runners import runner_for

TOLERANCE = 1e-4
# A long row, a row with long padding, a row of padding only, a one-token row.
LENGTHS = (60, 9, 0, 1)
# Accents (composed and not), CJK, emoji (with a zero-width joiner), a hyphenated name.
TEXT = (
    "Zoë Ångström met José in São Paulo 🎉 and 東京 with Müller-Lüdenscheidt; "
    "👩\u200d🔬 Ada Lovelace worked with Charles Babbage in London, then Zu\u0308rich. "
)


def transformers_output(folder: Path, ids: np.ndarray, mask: np.ndarray, **inputs) -> np.ndarray:
    """The class config.json names, from transformers, in float32 with eager attention."""
    config = json.loads((Path(folder) / "config.json").read_text())
    model_class = getattr(transformers, config["architectures"][0])
    model = model_class.from_pretrained(str(folder), attn_implementation="eager", dtype=torch.float32).eval()
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), **inputs)
    return (out.logits if hasattr(out, "logits") else out.last_hidden_state).numpy()


def both_backends(folder: Path, **kwargs) -> dict:
    """The folder loaded by our real loader on MLX and on PyTorch (CPU), as runners."""
    return {
        "mlx": runner_for(load(folder, backend="mlx", **kwargs)[0]),
        "torch": runner_for(load(folder, backend="torch", device="cpu", **kwargs)[0]),
    }


def batch(folder: Path, lengths=LENGTHS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    model, tokenizer = load(folder)
    return padded_batch(
        np.random.default_rng(seed), list(lengths), model.args.vocab_size, tokenizer.pad_token_id
    )


def check_parity(folder: Path, lengths=LENGTHS, seed: int = 0) -> None:
    """Both backends within TOLERANCE of transformers on real tokens, finite everywhere."""
    ids, mask = batch(folder, lengths, seed)
    expected = transformers_output(folder, ids, mask)
    real = mask.astype(bool)
    for name, runner in both_backends(folder).items():
        got = runner(ids, mask)
        assert got.shape == expected.shape, name
        assert np.isfinite(got).all(), name
        assert np.abs(got - expected)[real].max() <= TOLERANCE, name


def check_convert(src: Path, out: Path) -> None:
    """`convert` through the CLI in float16 and 8- and 4-bit, each loaded back on both backends."""
    ids, mask = batch(src, (40, 13))
    real = mask.astype(bool)
    want = runner_for(load(src)[0])(ids, mask)
    options = {
        "f16": ["--dtype", "float16"],
        "q8": ["-q", "--q-bits", "8", "--q-group-size", "32"],
        "q4": ["-q", "--q-bits", "4", "--q-group-size", "32", "--verify"],
    }
    least_agreement = {"f16": 0.99, "q8": 0.9, "q4": 0.5}
    for name, flags in options.items():
        assert main(["convert", str(src), "-o", str(out / name), *flags]) == 0
        config = json.loads((out / name / "config.json").read_text())
        assert config["anno_mlx"]["dtype"] == ("float16" if name == "f16" else "as-source")
        assert ("quantization" in config) == (name != "f16")
        outputs = {backend: runner(ids, mask) for backend, runner in both_backends(out / name).items()}
        for got in outputs.values():
            assert got.shape == want.shape and np.isfinite(got).all()
        agreement = (want.argmax(-1) == outputs["mlx"].argmax(-1))[real].mean()
        assert agreement >= least_agreement[name], name
        # The same (dequantized) weights on both backends.
        assert np.abs(outputs["mlx"] - outputs["torch"])[real].max() <= 1e-2, name


def check_long_document(folder: Path) -> None:
    """A text many windows long: exact entity offsets, the same entities on both backends."""
    text = TEXT * 12
    found = {}
    for backend in ("mlx", "torch"):
        ner = NER.from_pretrained(folder, backend=backend, device="cpu")
        tokens = len(ner.tokenizer.tokenize(text))
        assert tokens > 3 * ner.runner.args.max_length
        found[backend] = ner(text)
        assert found[backend], "a random classifier finds some entities"
        assert all(text[e.start : e.end] == e.text for e in found[backend])
    assert [(e.start, e.end, e.label) for e in found["mlx"]] == [
        (e.start, e.end, e.label) for e in found["torch"]
    ]


def check_fine_tuning(mlm: Path, tmp: Path, backend: str) -> None:
    """`train` a token classifier from the family's masked-LM checkpoint for one epoch, then `eval`."""
    train_file, dev_file = (
        write_conll(tmp / "train.conll", 48, seed=1),
        write_conll(tmp / "dev.conll", 16, seed=2),
    )
    out = tmp / "tuned"
    argv = ["train", "--model", str(mlm), "--train", str(train_file), "--dev", str(dev_file), "-o", str(out)]
    assert main([*argv, "--epochs", "1", "--batch-size", "16", "--lr", "1e-3", "--backend", backend]) == 0
    config = json.loads((out / "config.json").read_text())
    source = json.loads((mlm / "config.json").read_text())
    assert config["model_type"] == source["model_type"]
    assert NER.from_pretrained(out, backend="mlx").entity_types == ["LOC", "PER"]
    assert main(["eval", "--model", str(out), "--data", str(dev_file), "--json"]) == 0


def check_encoder(folder: Path) -> None:
    """`Encoder.encode` gives the transformers base model's last hidden state, special tokens included."""
    encoder = Encoder.from_pretrained(folder, backend="mlx")
    hidden, n = encoder.encode(TEXT)
    ids = np.asarray(encoder.tokenizer.encode(TEXT).ids)[None]
    expected = transformers_output(folder, ids, np.ones_like(ids))[0]
    assert n == ids.shape[1]
    assert np.abs(np.asarray(hidden) - expected).max() <= TOLERANCE


def run_mlx(model, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.array(model(mx.array(ids), mx.array(mask)))
