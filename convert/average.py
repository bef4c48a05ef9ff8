"""Models fine-tuned from one starting point -> the uniform average of their weights, one folder.

Runs that start from the same weights and differ in their data, its order or their length end
close together, and the average of their weights (a "model soup", Wortsman et al., ICML 2022)
usually scores better than each of them while it runs at the cost of one. It is only
meaningful for such runs: the folders must agree on everything but the weights (family, sizes,
labels, tokenizer files), so averaging unrelated models fails early with the first difference.
Quantized folders are refused: average the float models, then `convert` the result. The output
is written as `convert` writes (atomically, `--force` only over a folder anno-mlx wrote).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import mlx.core as mx
from anno_mlx.convert.converter import TOKENIZER_FILES, check_destination, model_tokenizers, resolve_source
from mlx.utils import tree_flatten

from anno_mlx.checkpoint import load_folder, read_config, save_folder
from anno_mlx.errors import AnnoError
from anno_mlx.tokenizer import check_model_file
from anno_mlx.zeroshot import LABELS_TOKENIZER

# What may differ between the folders: provenance and how the weights are stored.
BOOKKEEPING = ("anno_mlx", "_name_or_path", "transformers_version", "torch_dtype", "dtype")


def average(
    models: Sequence[str | Path],
    dst: str | Path,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write the element-wise mean of `models`' weights (two or more folders or hub ids) into
    the folder `dst`, in the first model's dtype, with its config and tokenizer files; the
    config records the sources and what each recorded of its training (or of its own average)."""
    if isinstance(models, (str, Path)):
        raise AnnoError("average takes a list of model folders, not one")
    if len(models) < 2:
        raise AnnoError("average needs two or more model folders")
    sources = [resolve_source(m) for m in models]
    if len({s.resolve() for s in sources}) < len(sources):
        raise AnnoError("average names one model folder twice; give each run once")
    dst = Path(dst).expanduser()
    for source in sources:
        check_destination(source, dst, force)
    configs = [read_config(s) for s in sources]
    for source, config in zip(sources, configs):
        if config.get("quantization") or config.get("quantization_config"):
            raise AnnoError(f"{source} is quantized; average the float models, then convert the result")
    for source, config in zip(sources[1:], configs[1:]):
        _check_same(sources[0], configs[0], source, config)

    model, config = load_folder(sources[0], full_check=True)
    first = dict(tree_flatten(model.parameters()))
    total = {key: value.astype(mx.float32) for key, value in first.items()}
    for source in sources[1:]:
        other, _ = load_folder(source, full_check=True)
        for key, value in tree_flatten(other.parameters()):
            total[key] = total[key] + value.astype(mx.float32)
    model.load_weights(
        [(key, (value / len(sources)).astype(first[key].dtype)) for key, value in total.items()]
    )
    mx.eval(model.parameters())

    per_model = ("trained", "averaged", "source")  # what belongs to one run, not to the mean
    recorded = {k: v for k, v in (config.get("anno_mlx") or {}).items() if k not in per_model}
    config["anno_mlx"] = {
        **recorded,
        "format": 1,
        "averaged": [{"source": str(m), **_history(c)} for m, c in zip(models, configs)],
    }
    with tempfile.TemporaryDirectory() as scratch:
        save_folder(model, config, dst, model_tokenizers(sources[0], Path(scratch), model.args))
    log(f"averaged {len(sources)} models -> {dst}")
    return {"output": str(dst), "models": [str(m) for m in models]}


def _history(config: dict[str, Any]) -> dict[str, Any]:
    """How a source was made, as it recorded it: its training run, or the runs it averages."""
    recorded = config.get("anno_mlx") if isinstance(config.get("anno_mlx"), dict) else {}
    return {k: recorded[k] for k in ("trained", "averaged") if k in recorded}


def _check_same(first: Path, first_config: dict, source: Path, config: dict) -> None:
    """One line naming the first setting or tokenizer file in which `source` differs from `first`."""
    for key in sorted((first_config.keys() | config.keys()) - set(BOOKKEEPING)):
        if first_config.get(key) != config.get(key):
            raise AnnoError(
                f"{source} differs from {first} in {key} ({config.get(key)!r}, not {first_config.get(key)!r}); "
                "average only runs of one model trained for the same labels"
            )
    for name in (*TOKENIZER_FILES, *(f"{LABELS_TOKENIZER}/{n}" for n in TOKENIZER_FILES)):
        a, b = first / name, source / name
        for path, folder in ((a, first), (b, source)):
            if path.exists():
                check_model_file(path, folder)  # a plain file inside its folder, before reading it
        if a.exists() != b.exists() or (a.exists() and not _same_content(a, b)):
            raise AnnoError(
                f"{source} and {first} have different {name} files; average only runs of one model with one tokenizer"
            )


def _same_content(a: Path, b: Path) -> bool:
    """Equal bytes, or for JSON equal data: one tokenizer saved compactly by one tool and indented
    by another is one tokenizer."""
    if a.read_bytes() == b.read_bytes():
        return True
    if a.suffix != ".json":
        return False
    try:
        return json.loads(a.read_text(encoding="utf-8")) == json.loads(b.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False
