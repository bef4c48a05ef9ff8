"""Shared fixtures: tiny random checkpoints (made with transformers) and an offline hub."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

# The tests run MLX and PyTorch in one process: MLX gets its fast BLAS before any test module
# imports it (a library process does this when it chooses the MLX backend).
from anno_mlx.runners import prepare_mlx  # noqa: E402

prepare_mlx()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test sees its own empty hub cache and converted-model folder."""
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("ANNO_MLX_HOME", str(home / "anno-mlx"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    return home


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory):
    """`make_checkpoint(head=..., **config)` -> folder; identical requests share one folder."""
    from anno_mlx.testing.tiny_checkpoint import make_tiny_checkpoint

    made: dict[str, Path] = {}

    def make(**kwargs) -> Path:
        key = json.dumps(kwargs, sort_keys=True)
        if key not in made:
            made[key] = make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), **kwargs)
        return made[key]

    return make


@pytest.fixture(scope="session")
def gliner_checkpoint(tmp_path_factory):
    """`gliner_checkpoint(kind, **options)` -> a tiny GLiNER folder built by the gliner package in
    its own environment (`anno_mlx.testing.tiny_gliner.build`); identical requests share one folder."""
    from anno_mlx.testing.tiny_gliner import build

    made: dict[str, Path] = {}

    def make(kind: str, **options) -> Path:
        key = json.dumps([kind, options], sort_keys=True)
        if key not in made:
            made[key] = build(kind, tmp_path_factory.mktemp("gliner") / "model", **options)
        return made[key]

    return make


def put_in_hub_cache(folder: Path, repo_id: str, hub_cache: Path) -> Path:
    """Lay `folder` out as huggingface_hub's cache holds a downloaded repo, so that
    `snapshot_download` finds it with HF_HUB_OFFLINE=1."""
    repo = hub_cache / ("models--" + repo_id.replace("/", "--"))
    revision = "0" * 40
    snapshot = repo / "snapshots" / revision
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


@pytest.fixture(scope="session")
def converted_model(tmp_path_factory) -> Path:
    """A tiny NER checkpoint converted through the CLI, as a user would do it."""
    from anno_mlx.cli import main
    from anno_mlx.testing.tiny_checkpoint import make_tiny_checkpoint

    src = make_tiny_checkpoint(tmp_path_factory.mktemp("hf"), seed=11)
    out = tmp_path_factory.mktemp("mlx") / "model"
    assert main(["convert", str(src), "-o", str(out)]) == 0
    return out


CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (no browser is downloaded)."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is not installed (scripts/install.sh installs it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()
