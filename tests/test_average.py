"""`average`: the weight average of runs of one model, and what it refuses."""

from __future__ import annotations

import json

import mlx.core as mx
import numpy as np
import pytest
from anno_mlx.convert import average, convert
from mlx.utils import tree_flatten

from anno_mlx import NER, AnnoError
from anno_mlx.checkpoint import load_folder
from anno_mlx.cli import main


def weights(folder) -> dict[str, np.ndarray]:
    model, _ = load_folder(folder)
    return {k: np.array(v.astype(mx.float32)) for k, v in tree_flatten(model.parameters())}


def test_average_is_the_mean_of_every_weight_and_loads_as_a_model(make_checkpoint, tmp_path):
    runs = [make_checkpoint(seed=seed) for seed in (1, 2, 3)]
    out = tmp_path / "soup"
    assert main(["average", *map(str, runs), "-o", str(out)]) == 0
    got, each = weights(out), [weights(r) for r in runs]
    assert got.keys() == each[0].keys()
    for key, value in got.items():
        np.testing.assert_allclose(value, sum(w[key] for w in each) / 3, rtol=1e-6, atol=1e-7)
    assert not np.allclose(got["classifier.weight"], each[0]["classifier.weight"])
    config = json.loads((out / "config.json").read_text())
    assert [a["source"] for a in config["anno_mlx"]["averaged"]] == [str(r) for r in runs]
    assert (out / "tokenizer.json").read_bytes() == (runs[0] / "tokenizer.json").read_bytes()
    text = "Ada Lovelace met Charles Babbage in London."
    assert all(text[e.start : e.end] == e.text for e in NER.from_pretrained(out, min_score=0)(text))


def test_average_keeps_the_first_models_dtype_and_records_training(make_checkpoint, tmp_path):
    halves = []
    for seed in (1, 2):
        halves.append(tmp_path / f"half{seed}")
        convert(make_checkpoint(seed=seed), halves[-1], dtype="float16", log=lambda _: None)
    config = json.loads((halves[0] / "config.json").read_text())
    config["anno_mlx"]["trained"] = {"epoch": 3, "dev_f1": 0.5}  # as `train` records it
    (halves[0] / "config.json").write_text(json.dumps(config))
    average(halves, tmp_path / "soup", log=lambda _: None)
    model, saved = load_folder(tmp_path / "soup")
    assert all(v.dtype == mx.float16 for _, v in tree_flatten(model.parameters()))
    assert saved["anno_mlx"]["averaged"][0]["trained"] == {"epoch": 3, "dev_f1": 0.5}
    assert "trained" not in saved["anno_mlx"] and "trained" not in saved["anno_mlx"]["averaged"][1]
    assert "source" not in saved["anno_mlx"]  # the mean has many sources, listed under "averaged"
    average([tmp_path / "soup", halves[1]], tmp_path / "soup of soups", log=lambda _: None)
    nested = load_folder(tmp_path / "soup of soups")[1]["anno_mlx"]["averaged"][0]
    assert [run["source"] for run in nested["averaged"]] == [str(h) for h in halves]


QUANTIZABLE = dict(  # every weight splits into groups of 32
    hidden_size=64, intermediate_size=128, num_attention_heads=4, num_hidden_layers=3, local_attention=16
)


def test_average_refuses_what_is_not_runs_of_one_model(make_checkpoint, tmp_path, capsys):
    a, b = make_checkpoint(seed=1, **QUANTIZABLE), make_checkpoint(seed=2, **QUANTIZABLE)
    other_labels = make_checkpoint(seed=2, labels=["O", "B-X", "I-X"], **QUANTIZABLE)
    deeper = make_checkpoint(seed=2, **{**QUANTIZABLE, "num_hidden_layers": 4})
    quantized = tmp_path / "q"
    convert(a, quantized, quantize=True, q_group_size=32, log=lambda _: None)
    cases = [
        ([a], "two or more model folders"),
        ([a, a], "names one model folder twice"),
        ([a, other_labels], "differs from .* in id2label"),
        ([a, deeper], "differs from .* in num_hidden_layers"),
        ([a, quantized], "is quantized; average the float models"),
        ([a, tmp_path / "missing"], "does not exist"),
    ]
    for models, message in cases:
        with pytest.raises(AnnoError, match=message):
            average(models, tmp_path / "out", log=lambda _: None)
    assert not (tmp_path / "out").exists()

    retokenized = tmp_path / "retokenized"
    retokenized.mkdir()
    for f in b.iterdir():
        (retokenized / f.name).write_bytes(f.read_bytes())
    tokenizer = json.loads((b / "tokenizer.json").read_text())
    tokenizer["normalizer"] = {"type": "Lowercase"}
    (retokenized / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(AnnoError, match="different tokenizer.json files"):
        average([a, retokenized], tmp_path / "out", log=lambda _: None)

    indented = json.dumps(json.loads((b / "tokenizer.json").read_text()), indent=2)
    (retokenized / "tokenizer.json").write_text(indented)  # the same tokenizer, written otherwise
    average([a, retokenized], tmp_path / "reformatted", log=lambda _: None)
    assert (tmp_path / "reformatted" / "model.safetensors").exists()

    (retokenized / "tokenizer.json").unlink()
    (retokenized / "tokenizer.json").mkdir()  # not a file: refused before it is read
    with pytest.raises(AnnoError, match="is not a plain file inside"):
        average([a, retokenized], tmp_path / "out", log=lambda _: None)
    with pytest.raises(AnnoError, match="takes a list of model folders"):
        average(str(a), tmp_path / "out", log=lambda _: None)

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert main(["average", str(a), str(b), "-o", str(tmp_path / "taken")]) == 2
    assert main(["average", str(a), str(b), "-o", str(a / "inside")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
