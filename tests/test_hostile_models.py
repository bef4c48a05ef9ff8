"""Hostile model folders and training settings: each case builds the bad input, runs the real CLI,
expects one line naming the problem (never a crash, a hang or a traceback) and checks that the
input was left as it was."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from anno_mlx.cli import main


def cli_error(capsys, *argv: str) -> str:
    capsys.readouterr()
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): (
            os.readlink(p)
            if p.is_symlink()
            else hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file()
            else ""
        )
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture
def model_copy(converted_model, tmp_path):
    """A writable copy of a converted tiny NER model (the layout `ner` loads)."""
    return Path(shutil.copytree(converted_model, tmp_path / "model"))


def edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if value is KeyError:
            config.pop(key, None)
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))


def edit_weights(folder: Path, change) -> None:
    weights = load_file(folder / "model.safetensors")
    change(weights)
    save_file(weights, folder / "model.safetensors", metadata={"format": "mlx"})


def bigger_tokenizer(folder: Path, extra: int) -> None:
    """The model's tokenizer plus `extra` added tokens: ids beyond the embedding rows."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.add_tokens([f"extra_token_{i}" for i in range(extra)])
    tokenizer.save(str(folder / "tokenizer.json"))


def break_nan(folder: Path) -> None:
    def change(w):
        key = next(k for k in w if k.endswith("Wqkv.weight"))
        w[key] = w[key].copy()
        w[key][3, 5] = np.nan

    edit_weights(folder, change)


def break_int(folder: Path) -> None:
    def change(w):
        key = next(k for k in w if k.endswith("Wo.weight"))
        w[key] = np.zeros(w[key].shape, np.int32)

    edit_weights(folder, change)


def stray_shard(folder: Path) -> None:
    weights = load_file(folder / "model.safetensors")
    save_file({k: np.zeros_like(v) for k, v in weights.items()}, folder / "model_old.safetensors")


def index_as_list(folder: Path) -> None:
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": ["model.safetensors"]}))


def index_outside(folder: Path) -> None:
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "../model/model.safetensors"}})
    )


def fifo_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    os.mkfifo(folder / "model.safetensors")


def tokenizer_link(folder: Path) -> None:
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.json").symlink_to("/etc/passwd")


def tokenizer_empty(folder: Path) -> None:
    (folder / "tokenizer.json").write_text("")


def template_ids(folder: Path, value: int) -> None:
    """The tokenizer's template inserts an id that is in no vocabulary."""
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    tokenizer["post_processor"]["special_tokens"]["[CLS]"]["ids"] = [value]
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))


def scalar_norm(folder: Path) -> None:
    edit_weights(
        folder,
        lambda w: w.update(
            {next(k for k in w if k.endswith("embeddings.norm.weight")): np.array(1.0, dtype=np.float32)}
        ),
    )


def index_nul(folder: Path) -> None:
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model.safetensors\u0000x"}})
    )


BROKEN_MODELS = {
    "template id 10**9 (segfaulted)": (lambda f: template_ids(f, 10**9), "produces ids up to 1,000,000,000"),
    "template id just beyond": (lambda f: template_ids(f, 5000), "produces ids up to 5,000"),
    "model_type a list": (lambda f: edit_config(f, model_type=[1]), "needs model_type as a string"),
    "architectures a number": (
        lambda f: edit_config(f, architectures=1),
        "architectures as a list of class names",
    ),
    "id2label ids with a gap": (
        lambda f: edit_config(f, id2label={**{str(i): f"L{i}" for i in range(8)}, "100": "X"}),
        "id2label's ids must be 0 to 8",
    ),
    "id2label empty name": (
        lambda f: edit_config(f, id2label={str(i): ("" if i == 0 else f"L{i}") for i in range(9)}),
        "id2label must map label ids to label names",
    ),
    "rope base 1e308": (
        lambda f: edit_config(f, global_rope_theta=1e308),
        "global_rope_theta 1e+308 is not a positive number from 1 to 1e+12",
    ),
    "0-d norm weight": (scalar_norm, "the weights have no token embeddings"),
    "NUL in a shard name": (index_nul, "must map weights to shard file names inside"),
    "tokenizer ids beyond the embeddings": (lambda f: bigger_tokenizer(f, 600), "produces ids up to"),
    "tokenizer far beyond the embeddings": (
        lambda f: bigger_tokenizer(f, 5000),
        "the tokenizer belongs to another model",
    ),
    "100,000 layers": (
        lambda f: edit_config(f, num_hidden_layers=100_000),
        "num_hidden_layers is 100,000 but the weights hold 3 layers",
    ),
    "zero heads": (
        lambda f: edit_config(f, num_attention_heads=0),
        "num_attention_heads 0 is not a whole number",
    ),
    "norm_eps a string": (lambda f: edit_config(f, norm_eps="x"), "norm_eps 'x' is not a positive number"),
    "short layer_types": (
        lambda f: edit_config(f, layer_types=["full_attention"]),
        "layer_types has 1 entries for 3 layers",
    ),
    "layer_types a string": (
        lambda f: edit_config(f, layer_types="full_attention"),
        "layer_types must be a list",
    ),
    "size over 2**31": (
        lambda f: edit_config(f, hidden_size=2**31),
        "hidden_size 2147483648 is not a whole number",
    ),
    "negative hidden size": (
        lambda f: edit_config(f, hidden_size=-32),
        "hidden_size -32 is not a whole number",
    ),
    "pad id a string": (lambda f: edit_config(f, pad_token_id="x"), "pad_token_id 'x' is not a token id"),
    "positions 1e9 (float)": (
        lambda f: edit_config(f, max_position_embeddings=1e9),
        "max_position_embeddings 1000000000.0 is not a whole number",
    ),
    "positions 10**9": (
        lambda f: edit_config(f, max_position_embeddings=10**9),
        "is above the 1,048,576 this model supports",
    ),
    "malformed quantization": (
        lambda f: edit_config(f, quantization={"bits": "four"}),
        "malformed quantization entry",
    ),
    "id2label a list": (lambda f: edit_config(f, id2label=["PER"]), "id2label must be an object"),
    "NaN weight": (break_nan, "holds NaN or infinite values"),
    "int32 weight": (break_int, "is int32, not floating point"),
    "stray shard, no index": (
        lambda f: (stray_shard(f), (f / "model.safetensors.index.json").unlink()),
        "holds model.safetensors, model_old.safetensors but no model.safetensors.index.json",
    ),
    "weight_map a list": (index_as_list, "is not a valid weight index"),
    "weight_map out of the folder": (index_outside, "must map weights to shard file names inside"),
    "FIFO for weights": (fifo_weights, "not plain files"),
    "tokenizer.json links to /etc/passwd": (tokenizer_link, "is not a plain file inside"),
    "empty tokenizer.json": (tokenizer_empty, "is not a readable tokenizer"),
}


@pytest.mark.parametrize("case", list(BROKEN_MODELS))
def test_broken_model_folder_is_one_line_and_untouched(case, model_copy, capsys, tmp_path):
    breaks, message = BROKEN_MODELS[case]
    breaks(model_copy)
    before = fingerprint(model_copy)
    line = cli_error(capsys, "ner", "Marie Curie lives in Paris.", "-m", str(model_copy), "--backend", "mlx")
    assert message in line, line
    line = cli_error(capsys, "convert", str(model_copy), "-o", str(tmp_path / "out"))
    assert message in line, line
    assert not (tmp_path / "out").exists()
    assert fingerprint(model_copy) == before


def test_a_stray_shard_beside_an_index_is_never_read(model_copy, converted_model, capsys):
    text = "Marie Curie lives in Paris with Pierre."
    assert main(["ner", text, "-m", str(converted_model), "--format", "json", "--backend", "mlx"]) == 0
    clean = capsys.readouterr().out
    stray_shard(model_copy)
    assert main(["ner", text, "-m", str(model_copy), "--format", "json", "--backend", "mlx"]) == 0
    assert capsys.readouterr().out == clean


def test_a_million_layers_fail_before_any_allocation(model_copy):
    """Under a 3 GB address-space limit (10^6 layers would need ~55 GB) the error still comes."""
    edit_config(model_copy, num_hidden_layers=1_000_000)
    script = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30)); "
        "from anno_mlx.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "ner", "Paris", "-m", str(model_copy), "--backend", "mlx"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "ANNO_MLX_BLAS": "none"},
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: config.json in " + str(model_copy) + " does not match its weights: "
        "num_hidden_layers is 1,000,000 but the weights hold 3 layers; re-download or re-convert the model"
    ]


def test_a_fifo_never_hangs(model_copy):
    fifo_weights(model_copy)
    done = subprocess.run(
        [sys.executable, "-m", "anno_mlx", "ner", "Paris", "-m", str(model_copy), "--backend", "mlx"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 2 and "lists shards that are not plain files" in done.stderr


@pytest.mark.parametrize("name", ["a/..", "a/b/c", "org/-name", "org/name.", "org/na--me", "a" * 200])
def test_impossible_hub_ids_are_one_line(name, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = cli_error(capsys, "ner", "Paris", "-m", name)
    assert "does not exist; give a model folder or a hub id" in line


# -- training settings ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def train_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.conll"
    path.write_text("Marie B-PER\nCurie I-PER\nlives O\nin O\nParis B-LOC\n. O\n\n" * 4, encoding="utf-8")
    return path


BAD_SETTINGS = {
    "--lr nan": (["--lr", "nan"], "--lr nan must be a finite number above 0"),
    "--lr 0": (["--lr", "0"], "--lr 0.0 must be a finite number above 0"),
    "--epochs 0": (["--epochs", "0"], "--epochs 0 must be a whole number of at least 1"),
    "--batch-size 0": (["--batch-size", "0"], "--batch-size 0 must be a whole number of at least 1"),
    "--max-length 2": (["--max-length", "2"], "--max-length 2 must be a whole number of at least 8"),
    "--warmup 1": (["--warmup", "1"], "--warmup 1.0 must be a finite number in [0, 1)"),
    "--max-grad-norm inf": (
        ["--max-grad-norm", "inf"],
        "--max-grad-norm inf must be a finite number above 0",
    ),
}


def train_command(model: Path, data: Path, out: Path) -> list[str]:
    return ["train", "-m", str(model), "--train", str(data), "-o", str(out), "--backend", "mlx"]


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_bad_training_settings(case, converted_model, train_data, tmp_path, capsys):
    extra, message = BAD_SETTINGS[case]
    line = cli_error(capsys, *train_command(converted_model, train_data, tmp_path / "out"), *extra)
    assert message in line
    assert not (tmp_path / "out").exists()


def test_damaged_or_finished_resume_state(converted_model, train_data, tmp_path, capsys):
    out = tmp_path / "out"
    args = [*train_command(converted_model, train_data, out), "--epochs", "2", "--batch-size", "4"]
    state = tmp_path / "out.state"
    state.mkdir()
    for content, message in [
        ("{not json", "is damaged"),
        ('{"epoch": "one", "best": {}}', "is damaged"),
        ('{"best": {"figure": 1, "epoch": 1}}', "is damaged"),
        ("[1, 2]", "is damaged"),
        (
            '{"epoch": 2, "best": {"figure": 1, "epoch": 2}, "backend": "mlx"}',
            "has already done 2 epochs; --epochs 2 leaves nothing",
        ),
        (
            '{"epoch": 1, "best": {"figure": 1, "epoch": 1}, "backend": "mlx"}',
            "is damaged",
        ),  # no optimizer state file
    ]:
        (state / "state.json").write_text(content)
        (state / "tokenizer.json").write_bytes((converted_model / "tokenizer.json").read_bytes())
        line = cli_error(capsys, *args, "--resume")
        assert message in line, (content, line)
        assert (state / "state.json").read_text() == content  # the state is left for the user


# -- command line and data -------------------------------------------------------------------


def test_option_mistakes_are_one_line(capsys):
    for argv in (
        ["ner", "x", "--backend", "foo"],
        ["corpus", "x"],
        ["serve", "--port", "abc"],
        ["ner", "x", "--min-score", "-inf"],
    ):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        err = capsys.readouterr().err
        assert (
            stop.value.code == 2
            and len(err.strip().splitlines()) == 1
            and err.startswith("error: ")
            and "--help" in err
        ), err


def test_odd_codecs_and_empty_output(capsys, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("Marie Curie lives in Paris.")
    assert "cannot be read as punycode" in cli_error(capsys, "ner", "-f", str(text), "--encoding", "punycode")
    assert "-o needs a file name" in cli_error(capsys, "ner", "Paris", "-o", "")


def test_a_closed_pipe_ends_quietly(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("Marie Curie moved from Warsaw to Paris. " * 200)
    done = subprocess.run(
        f"{sys.executable} -m anno_mlx ner -f {text} --format json --backend mlx | head -c 11",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.stdout == '[\n  {"text"' and "Traceback" not in done.stderr, done.stderr


BAD_DATA = {
    "nested 100,000 deep": ("[" * 100_000 + "]" * 100_000, "JSON nested too deeply"),
    "entities a number": ('{"text": "Paris", "entities": 5}', '"entities" must be a list'),
    "unpaired surrogate": (
        '{"text": "Paris \\ud800", "entities": []}',
        "the text holds an unpaired surrogate (U+D800) at index 6",
    ),
    "label null": (
        '{"text": "Paris", "entities": [{"start": 0, "end": 5, "label": null}]}',
        '"label" must be a type name',
    ),
    "label |": (
        '{"text": "Paris", "entities": [{"start": 0, "end": 5, "label": "|"}]}',
        '"label" must be a type name',
    ),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_jsonl_data_for_eval_and_train(case, converted_model, tmp_path, capsys):
    line, message = BAD_DATA[case]
    data = tmp_path / "data.jsonl"
    data.write_text(line + "\n", encoding="utf-8")
    assert message in cli_error(
        capsys, "eval", "--data", str(data), "-m", str(converted_model), "--backend", "mlx"
    )
    assert message in cli_error(
        capsys,
        "train",
        "--train",
        str(data),
        "-m",
        str(converted_model),
        "-o",
        str(tmp_path / "out"),
        "--backend",
        "mlx",
    )
    assert f"{data}:1" in cli_error(
        capsys, "eval", "--data", str(data), "-m", str(converted_model), "--backend", "mlx"
    )
