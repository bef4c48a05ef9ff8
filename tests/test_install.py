"""Packaging and start-up: import names, the CLI entry point, the OpenBLAS preload."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_only_under_anno_mlx(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("anno_mlx-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"anno_mlx"}
    assert "anno_mlx/convert/converter.py" in names and "anno_mlx/ui/__init__.py" in names
    # The embedded default model ships inside the package, within its 30 MB budget.
    model = {
        n: i.file_size
        for n, i in ((i.filename, i) for i in zipfile.ZipFile(wheel).infolist())
        if n.startswith("anno_mlx/default_model/")
    }
    assert {
        f"anno_mlx/default_model/{f}"
        for f in ("config.json", "model.safetensors", "tokenizer.json", "MODEL_CARD.md")
    } <= set(model)
    assert sum(model.values()) <= 30_000_000


def blas_libraries(env_value: str | None) -> str:
    code = (
        "import anno_mlx, mlx.core as mx; "
        "a = mx.ones((64, 64)); mx.eval(a @ a); "
        "print(open('/proc/self/maps').read())"
    )
    env = dict(__import__("os").environ)
    if env_value is not None:
        env["ANNO_MLX_BLAS"] = env_value
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the preload exists for Linux only")
def test_openblas_is_loaded_before_mlx_and_can_be_turned_off():
    import ctypes.util

    if ctypes.util.find_library("openblas") is None:
        pytest.fail("no system OpenBLAS: install libopenblas0-pthread (scripts/install.sh does)")
    assert "libopenblas" in blas_libraries(None)
    assert "libopenblas" not in blas_libraries("none")  # still works, only slower
