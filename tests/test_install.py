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


def process_maps(code: str, env_value: str | None = None) -> str:
    """The shared libraries a fresh process has mapped after running `code`."""
    env = dict(__import__("os").environ)
    if env_value is not None:
        env["ANNO_MLX_BLAS"] = env_value
    return subprocess.run(
        [sys.executable, "-c", code + "; print(open('/proc/self/maps').read())"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout


MLX_RUN = "from anno_mlx.runners import choose; choose('mlx'); import mlx.core as mx; a = mx.ones((64, 64)); mx.eval(a @ a)"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the preload exists for Linux only")
def test_openblas_is_loaded_for_mlx_only_and_can_be_turned_off():
    import ctypes.util

    if ctypes.util.find_library("openblas") is None:
        pytest.fail("no system OpenBLAS: install libopenblas0-pthread (scripts/install.sh does)")
    assert "libopenblas" in process_maps(MLX_RUN)
    assert "libopenblas" not in process_maps(MLX_RUN, "none")  # still works, only slower
    # A PyTorch-backend process never loads it: its threads would fight PyTorch's.
    torch_run = (
        "from anno_mlx import NER; NER.from_pretrained(backend='torch')('Marie Curie was born in Warsaw.')"
    )
    maps = process_maps(torch_run)
    assert "libtorch" in maps and "libopenblas" not in maps


def test_importing_the_package_loads_no_engine():
    code = "import sys, anno_mlx, anno_mlx.cli, anno_mlx.ner; print(sorted({m.split('.')[0] for m in sys.modules} & {'mlx', 'torch'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def status_line(backend: str, variable: str, value: str | None) -> str:
    """What a fresh process's pipeline says runs it, with `variable` unset or set to `value`."""
    env = {k: v for k, v in __import__("os").environ.items() if k != variable}
    if value is not None:
        env[variable] = value
    code = f"from anno_mlx import NER; print(NER.from_pretrained(backend={backend!r}).runs_on)"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout


def test_pytorch_threads_wait_passively_unless_the_user_chose():
    assert status_line("torch", "OMP_WAIT_POLICY", None).strip().endswith("passive wait)")
    assert status_line("torch", "OMP_WAIT_POLICY", "active").strip().endswith("active wait)")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the preload exists for Linux only")
def test_openblas_threads_spin_briefly_unless_the_user_chose():
    assert status_line("mlx", "OPENBLAS_THREAD_TIMEOUT", None).strip().endswith("thread timeout 4)")
    assert status_line("mlx", "OPENBLAS_THREAD_TIMEOUT", "12").strip().endswith("thread timeout 12)")
