"""Every bad input gets one line naming the problem, through the real CLI, and no traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from anno_mlx.cli import main


def cli_error(capsys, *argv: str) -> str:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def hf_copy(make_checkpoint, tmp_path):
    """A writable copy of a tiny checkpoint to break."""
    src = make_checkpoint(head="token-classification")
    return Path(shutil.copytree(src, tmp_path / "src"))


def rewrite_weights(folder: Path, change) -> None:
    weights = load_file(folder / "model.safetensors")
    change(weights)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


def test_source_missing(capsys, tmp_path):
    line = cli_error(capsys, "convert", str(tmp_path / "nope"), "-o", str(tmp_path / "out"))
    assert "does not exist" in line


def test_no_weights(capsys, hf_copy, tmp_path):
    (hf_copy / "model.safetensors").unlink()
    line = cli_error(capsys, "convert", str(hf_copy), "-o", str(tmp_path / "out"))
    assert "no weights" in line and "model.safetensors" in line


def test_unsupported_model_type(capsys, hf_copy, tmp_path):
    config = json.loads((hf_copy / "config.json").read_text())
    config["model_type"] = "gpt2"
    (hf_copy / "config.json").write_text(json.dumps(config))
    line = cli_error(capsys, "convert", str(hf_copy), "-o", str(tmp_path / "out"))
    assert "'gpt2' is not supported" in line and "modernbert" in line


def test_missing_weight_key_is_named(capsys, hf_copy, tmp_path):
    rewrite_weights(hf_copy, lambda w: w.pop("model.layers.1.attn.Wo.weight"))
    line = cli_error(capsys, "convert", str(hf_copy), "-o", str(tmp_path / "out"))
    assert "lack 1 keys" in line and "model.layers.1.attn.Wo.weight" in line


def test_unexpected_weight_key_is_named(capsys, hf_copy, tmp_path):
    rewrite_weights(hf_copy, lambda w: w.update({"model.layers.0.extra.weight": np.zeros(3, np.float32)}))
    line = cli_error(capsys, "convert", str(hf_copy), "-o", str(tmp_path / "out"))
    assert "does not use" in line and "model.layers.0.extra.weight" in line


def test_config_sizes_checked_against_the_weights(capsys, hf_copy, tmp_path):
    config = json.loads((hf_copy / "config.json").read_text())
    config["intermediate_size"] = 50
    (hf_copy / "config.json").write_text(json.dumps(config))
    line = cli_error(capsys, "convert", str(hf_copy), "-o", str(tmp_path / "out"))
    assert "does not match its weights: intermediate_size is 50 but the MLP weights imply 48" in line


def test_wrong_shape_names_key_and_both_shapes(capsys, hf_copy, tmp_path):
    rewrite_weights(
        hf_copy, lambda w: w.update({"model.layers.1.attn.Wo.weight": np.zeros((32, 30), np.float32)})
    )
    line = cli_error(capsys, "convert", str(hf_copy), "-o", str(tmp_path / "out"))
    assert "model.layers.1.attn.Wo.weight" in line and "(32, 30)" in line and "(32, 32)" in line


def test_corrupt_safetensors(capsys, hf_copy, tmp_path):
    data = (hf_copy / "model.safetensors").read_bytes()
    (hf_copy / "model.safetensors").write_bytes(data[: len(data) // 2])
    line = cli_error(capsys, "convert", str(hf_copy), "-o", str(tmp_path / "out"))
    assert "not a readable safetensors file" in line


def test_group_size_that_does_not_divide(capsys, make_checkpoint, tmp_path):
    src = make_checkpoint(head="token-classification")  # intermediate 48
    line = cli_error(capsys, "convert", str(src), "-o", str(tmp_path / "out"), "-q", "--q-group-size", "32")
    assert "does not divide the input dimension 48" in line
    line = cli_error(capsys, "convert", str(src), "-o", str(tmp_path / "out"), "-q", "--q-group-size", "48")
    assert "not supported by MLX" in line
    assert not (tmp_path / "out").exists()


def test_cli_process_prints_one_line_and_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "anno_mlx", "convert", str(tmp_path / "missing"), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_the_commands():
    result = subprocess.run([sys.executable, "-m", "anno_mlx", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "convert" in result.stdout
