"""Hugging Face checkpoint (any family in `anno_mlx.models`) -> MLX folder, written atomically.

The result is an ordinary model folder: MLX safetensors (sharded with an index by mlx-lm's
`save_model`), `config.json` (with `quantization` when quantized) and the tokenizer files.
It is built in a hidden sibling folder and renamed into place, so an interrupted conversion
leaves no DST and `--force` never leaves a half-written one; `--force` replaces only an empty
folder or one anno-mlx wrote (`outputs.check_replaceable`).
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from anno_mlx.checkpoint import load_folder, read_config, save_folder
from anno_mlx.errors import AnnoError
from anno_mlx.hub import converted_dir, download, is_hub_id
from anno_mlx.models import family, get_model_classes
from anno_mlx.outputs import check_output_folder
from anno_mlx.tokenizer import Tokenizer, check_model_file
from anno_mlx.zeroshot import LABELS_TOKENIZER

DTYPES = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}
Q_BITS = (4, 8)
GROUP_SIZES = (32, 64, 128)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
)
NOT_QUANTIZED = ("classifier",)  # a few thousand weights that decide every label: keep exact


def resolve_source(src: str | Path) -> Path:
    """A local folder as given, or a hub id fetched through huggingface_hub's cache."""
    path = Path(src).expanduser()
    if path.exists():
        if not path.is_dir():
            raise AnnoError(f"{src} is a file; give the model folder that holds config.json and the weights")
        return path
    if is_hub_id(str(src)):
        return download(str(src))
    raise AnnoError(
        f"{src} does not exist; give a local model folder or a hub id like answerdotai/ModernBERT-base"
    )


def check_destination(src: Path, dst: Path, force: bool) -> None:
    """Before any work: refuse to overwrite without --force, never replace the source or a folder
    anno-mlx did not write, and fail now on a place that cannot be written."""
    src_r, dst_r = src.resolve(), dst.resolve()
    if dst_r == src_r or src_r in dst_r.parents or dst_r in src_r.parents:
        raise AnnoError(f"output {dst} overlaps the source {src}; choose another output folder")
    check_output_folder(dst, force)


def check_group_size(model: nn.Module, group_size: int) -> None:
    """Every weight that will be quantized must split into whole groups along its input dimension."""
    if group_size not in GROUP_SIZES:
        raise AnnoError(f"--q-group-size {group_size} is not supported by MLX; choose 32, 64 or 128")
    dims = {
        path: module.weight.shape[-1]
        for path, module in model.named_modules()
        if hasattr(module, "to_quantized") and not path.startswith(NOT_QUANTIZED)
    }
    for path, dim in sorted(dims.items()):
        if dim % group_size:
            fits = [g for g in GROUP_SIZES if all(d % g == 0 for d in dims.values())]
            hint = f"use --q-group-size {fits[-1]}" if fits else "no supported group size fits this model"
            raise AnnoError(
                f"--q-group-size {group_size} does not divide the input dimension {dim} of {path}; {hint}"
            )


def convert(
    src: str | Path,
    dst: str | Path,
    dtype: Optional[str] = None,
    quantize: bool = False,
    q_bits: int = 4,
    q_group_size: int = 64,
    force: bool = False,
    verify: bool = False,
    source_name: Optional[str] = None,
    log=print,
) -> dict[str, Any]:
    """Convert `src` (folder or hub id) into the MLX folder `dst`; returns a summary
    (and the verification figures when `verify`). `source_name` is recorded in config.json
    instead of `src` (the hub id of a downloaded snapshot)."""
    if dtype is not None and dtype not in DTYPES:
        raise AnnoError(f"--dtype {dtype} is not supported; choose one of {', '.join(DTYPES)}")
    if quantize and q_bits not in Q_BITS:
        raise AnnoError(f"--q-bits {q_bits} is not supported; choose 4 or 8")
    dst = Path(dst).expanduser()
    src_path = resolve_source(src)
    check_destination(src_path, dst, force)
    config = read_config(src_path)
    get_model_classes(config)
    if config.get("quantization") and (quantize or dtype):
        raise AnnoError(f"{src} is already quantized; convert from the original checkpoint instead")

    model, config = load_folder(src_path, full_check=True)
    if dtype is not None:
        model.set_dtype(DTYPES[dtype])
        config["torch_dtype" if "torch_dtype" in config else "dtype"] = dtype
    if quantize:
        from mlx_lm.utils import quantize_model

        check_group_size(model, q_group_size)
        with contextlib.redirect_stdout(io.StringIO()):  # mlx-lm prints its own [INFO] line
            model, config = quantize_model(
                model,
                config,
                q_group_size,
                q_bits,
                quant_predicate=lambda path, module: not path.startswith(NOT_QUANTIZED),
            )
    # Provenance: what an earlier step recorded (e.g. how `train` made the model) is kept.
    config["anno_mlx"] = {
        **(config.get("anno_mlx") or {}),
        "format": 1,
        "source": source_name or str(src),
        "dtype": dtype or "as-source",
    }

    with tempfile.TemporaryDirectory() as scratch:
        save_folder(model, config, dst, model_tokenizers(src_path, Path(scratch), model.args))
    summary: dict[str, Any] = {"output": str(dst), "size_mb": _folder_size(dst) / 2**20}
    log(f"converted {src} -> {dst} ({summary['size_mb']:.1f} MB)")
    if verify:
        summary["verify"] = verify_conversion(src_path, dst)
        log(format_verification(summary["verify"]))
    return summary


def convert_hub_model(name: str) -> Path:
    """The converted folder of hub id `name`: converted on first use into `converted_dir(name)`
    from huggingface_hub's cache (downloading if allowed), read from there afterwards."""
    target = converted_dir(name)
    if not (target / "config.json").is_file():
        snapshot = download(name)
        print(f"first use of {name}: converting it into {target}", file=sys.stderr)
        convert(
            snapshot, target, force=target.exists(), source_name=name, log=lambda m: print(m, file=sys.stderr)
        )
    return target


def model_tokenizers(src: Path, scratch: Path, args: Any) -> dict[str, Path]:
    """The tokenizer files the output needs: the model's, and a bi-encoder GLiNER model's label
    tokenizer (in `labels_tokenizer/`, as the `gliner` package saves it)."""
    files = _tokenizer_files(src, scratch, args.vocab_size, getattr(args, "unused_tokens", ()))
    if getattr(args, "bi_encoder", False):
        labels = src / LABELS_TOKENIZER
        if not (labels / "tokenizer.json").is_file() and not (labels / "tokenizer_config.json").is_file():
            raise AnnoError(
                f"{src} has no {LABELS_TOKENIZER}/ folder for its label encoder; save the model with a "
                f"recent `gliner` package (it writes the label tokenizer there)"
            )
        (scratch / LABELS_TOKENIZER).mkdir()
        found = _tokenizer_files(labels, scratch / LABELS_TOKENIZER, args.labels_encoder.vocab_size)
        files.update({f"{LABELS_TOKENIZER}/{name}": path for name, path in found.items()})
    return files


def _tokenizer_files(
    src: Path, scratch: Path, vocab_size: int, unused: tuple[str, ...] = ()
) -> dict[str, Path]:
    """The source's tokenizer files, checked (plain files inside the folder; tokenizer.json
    readable and fitting the model's vocabulary) so that the output never carries a broken or
    foreign tokenizer. Older checkpoints ship only vocabulary files, from which transformers
    builds the fast tokenizer.json once."""
    files = {name: src / name for name in TOKENIZER_FILES if (src / name).exists()}
    for path in files.values():
        check_model_file(path, src)
    if "tokenizer.json" in files:
        Tokenizer.from_file(files["tokenizer.json"]).check_fits(vocab_size, src, unused)
        return files
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(src), trust_remote_code=False)
        tokenizer.backend_tokenizer.save(str(scratch / "tokenizer.json"))
    except Exception as err:
        print(
            f"warning: no tokenizer.json could be made for {src} ({err}); the model loads without a tokenizer",
            file=sys.stderr,
        )
        return files
    Tokenizer.from_file(scratch / "tokenizer.json").check_fits(vocab_size, src, unused)
    files["tokenizer.json"] = scratch / "tokenizer.json"
    return files


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def verify_conversion(src: Path, dst: Path, seed: int = 0) -> dict[str, Any]:
    """Reload `dst` and compare it on a padded random batch with the transformers reference
    (float32, eager attention) when torch and transformers are installed, else with `src`
    loaded by this package in float32."""
    converted, config = load_folder(dst)
    args = converted.args
    rng = np.random.default_rng(seed)
    length = min(args.verify_length, args.max_length)
    ids = rng.integers(0, args.vocab_size, size=(2, length))
    mask = np.ones_like(ids)
    mask[1, length // 3 :] = 0
    ours = np.array(converted(mx.array(ids), mx.array(mask)).astype(mx.float32))

    try:
        reference, name = _transformers_output(src, config, ids, mask), "transformers"
    except ImportError:
        source, _ = load_folder(src)
        source.set_dtype(mx.float32)
        reference, name = np.array(source(mx.array(ids), mx.array(mask))), "anno-mlx float32"
    real = mask.astype(bool)
    result = {
        "reference": name,
        "max_abs_diff": float(np.abs(ours - reference)[real].max()),
        "argmax_agreement": float((ours.argmax(-1) == reference.argmax(-1))[real].mean()),
    }
    return result


def _transformers_output(src: Path, config: dict, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()

    architecture = (config.get("architectures") or [family(config.get("model_type")).HEADS["encoder"]])[0]
    model_class = getattr(transformers, architecture)
    model = model_class.from_pretrained(str(src), attn_implementation="eager", dtype=torch.float32).eval()
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
    tensor = out.logits if hasattr(out, "logits") else out.last_hidden_state
    return tensor.float().numpy()


def format_verification(result: dict[str, Any]) -> str:
    return (
        f"verify: max |diff| vs {result['reference']} = {result['max_abs_diff']:.3g}, "
        f"argmax agreement {100 * result['argmax_agreement']:.2f}%"
    )
