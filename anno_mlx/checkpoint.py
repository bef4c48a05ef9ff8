"""Read a model folder (Hugging Face or converted) into an MLX model.

One path for both layouts: read `config.json`, read the weights (single or sharded safetensors,
or `pytorch_model.bin` with `weights_only=True`), let the model class `sanitize()` the keys,
check them against the model, rebuild quantized layers, load. A model to train goes the same
way, with the head it is trained for left new where the folder has none (`training_model`).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from .errors import AnnoError
from .hub import hub_config, is_hub_id
from .models import build_args, family, get_model_classes
from .outputs import check_replaceable, recover, replace_folder, staging_folder, write_marker
from .tokenizer import Tokenizer

SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_WEIGHTS = "pytorch_model.bin"
TORCH_INDEX = "pytorch_model.bin.index.json"
GLINER_CONFIG = "gliner_config.json"
MAX_CONFIG_BYTES = 16 * 1024 * 1024
SAMPLE = 65536  # values per array checked for NaN/inf when loading (all of them when converting)


def regular_file(path: Path) -> bool:
    """A plain file (a FIFO named model.safetensors would hang the reader; a device never ends)."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def read_config(folder: Path) -> dict[str, Any]:
    """config.json, or a GLiNER model's gliner_config.json (see `gliner_config`)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file() and (folder / GLINER_CONFIG).is_file():
        return gliner_config(read_json(folder / GLINER_CONFIG))
    path = folder / "config.json"
    if not path.is_file():
        raise AnnoError(f"{folder} has no config.json; give a Hugging Face model folder or a converted one")
    return read_json(path)


def read_json(path: Path) -> dict[str, Any]:
    """A model's JSON config, refused in one line when it is not a plain, small JSON object."""
    if not regular_file(path) or path.stat().st_size > MAX_CONFIG_BYTES:
        raise AnnoError(
            f"{path} is not a plain JSON file of reasonable size; re-download or re-convert the model"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AnnoError(f"{path} is not valid JSON ({err}); re-download or re-convert the model") from None
    if not isinstance(config, dict):
        raise AnnoError(f"{path} does not hold a JSON object; re-download or re-convert the model")
    return config


def gliner_config(config: dict[str, Any]) -> dict[str, Any]:
    """A `gliner` package config as our registry reads it (model_type "gliner"). An upload that
    does not embed its encoders' configs names them by hub id, as the package reads them: those
    are fetched (or read from the cache) once, and the text encoder takes GLiNER's vocabulary
    size (its embeddings were resized for the label tokens)."""
    config = {**config, "model_type": "gliner", "architectures": ["GLiNER"]}
    for field, name in (("encoder_config", "model_name"), ("labels_encoder_config", "labels_encoder")):
        if config.get(name) and not isinstance(config.get(field), dict) and is_hub_id(str(config[name])):
            config[field] = hub_config(str(config[name]))
            if (
                field == "encoder_config"
                and isinstance(config.get("vocab_size"), int)
                and config["vocab_size"] > 0
            ):
                config[field]["vocab_size"] = config["vocab_size"]
    encoder = config.get("encoder_config")
    if isinstance(encoder, dict) and "pad_token_id" not in config:
        config["pad_token_id"] = encoder.get("pad_token_id")
    return config


def weight_files(folder: Path) -> list[Path]:
    """The files that hold the weights, exactly as the layout names them: the shards an index
    lists, else `model.safetensors`, else `pytorch_model.bin`. Other `model*.safetensors` files
    are never merged in: a stray `model_old.safetensors` would silently override weights."""
    folder = Path(folder)
    for index_name in (SAFETENSORS_INDEX, TORCH_INDEX):
        index = folder / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
                names = sorted(set(weight_map.values()))
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                raise AnnoError(
                    f"{index} is not a valid weight index ({type(err).__name__}: {err}); re-download the model"
                ) from None
            if not names or not all(
                isinstance(n, str) and "\x00" not in n and n == Path(n).name and not n.startswith(".")
                for n in names
            ):
                raise AnnoError(
                    f"{index} must map weights to shard file names inside {folder}; re-download the model"
                )
            files = [folder / n for n in names]
            missing = [f.name for f in files if not regular_file(f)]
            if missing:
                raise AnnoError(
                    f"{index} lists shards that are not plain files in {folder}: {', '.join(missing)}"
                )
            return files
    single = folder / "model.safetensors"
    others = sorted(p.name for p in folder.glob("model*.safetensors") if p != single)
    if single.exists() or others:
        if not single.exists() or others:
            listed = ", ".join(([single.name] if single.exists() else []) + others)
            raise AnnoError(
                f"{folder} holds {listed} but no {SAFETENSORS_INDEX}; keep only model.safetensors, or add the index that names the shards"
            )
        if not regular_file(single):
            raise AnnoError(f"{single} is not a plain file; re-download or re-convert the model")
        return [single]
    if (folder / TORCH_WEIGHTS).exists():
        if not regular_file(folder / TORCH_WEIGHTS):
            raise AnnoError(f"{folder / TORCH_WEIGHTS} is not a plain file; re-download the model")
        return [folder / TORCH_WEIGHTS]
    raise AnnoError(
        f"no weights in {folder}: expected model.safetensors, sharded safetensors with "
        f"{SAFETENSORS_INDEX}, or {TORCH_WEIGHTS}"
    )


def read_weights(folder: Path) -> dict[str, mx.array]:
    weights: dict[str, mx.array] = {}
    for path in weight_files(folder):
        part = _read_torch(path) if path.suffix == ".bin" else _read_safetensors(path)
        repeated = sorted(part.keys() & weights.keys())
        if repeated:
            raise AnnoError(
                f"{path} repeats weights of another shard ({', '.join(repeated[:3])}); re-download the model"
            )
        weights.update(part)
    return weights


def check_values(
    weights: dict[str, mx.array], source: Path, quantized: bool, sample: Optional[int] = SAMPLE
) -> None:
    """Weights must be floating point (quantized layers' packed integers aside) and finite:
    a NaN anywhere makes every score NaN and the pipeline silently finds nothing. `sample`
    checks that many evenly spread values per array (loading); None checks all (conversion)."""
    for key, value in weights.items():
        packed = quantized and value.dtype == mx.uint32 and f"{key.rsplit('.', 1)[0]}.scales" in weights
        if packed:
            continue
        if not mx.issubdtype(value.dtype, mx.floating):
            dtype = str(value.dtype).removeprefix("mlx.core.")
            raise AnnoError(
                f"weight {key} in {source} is {dtype}, not floating point; convert from a float checkpoint"
            )
        flat = value.reshape(-1)
        if sample is not None and flat.size > sample:
            flat = flat[:: flat.size // sample]
        if not mx.all(mx.isfinite(flat)).item():
            raise AnnoError(
                f"weight {key} in {source} holds NaN or infinite values; the checkpoint is broken, re-download or retrain it"
            )


def _read_safetensors(path: Path) -> dict[str, mx.array]:
    try:
        return mx.load(str(path))
    except Exception as err:  # MLX raises RuntimeError/ValueError with varying texts
        raise AnnoError(
            f"{path} is not a readable safetensors file ({err}); re-download or re-convert it"
        ) from None


def _read_torch(path: Path) -> dict[str, mx.array]:
    try:
        import torch
    except ImportError:
        raise AnnoError(
            f"{path} is a PyTorch checkpoint; reading it needs torch (pip install 'anno-mlx[torch]')"
        ) from None
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise AnnoError(f"{path} is not a readable PyTorch weights file ({err})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise AnnoError(f"{path} does not hold a state dict")
    out = {}
    for key, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            continue
        dtype = {torch.bfloat16: mx.bfloat16, torch.float16: mx.float16}.get(tensor.dtype)
        array = mx.array(tensor.detach().float().numpy() if dtype is not None else tensor.detach().numpy())
        out[key] = array.astype(dtype) if dtype is not None else array
    return out


def check_weights(
    model: nn.Module, weights: dict[str, mx.array], source: Path, may_lack: tuple[str, ...] = ()
) -> None:
    """Name the missing, unexpected and mis-shaped keys in one line each; keys starting with
    `may_lack` may be missing (a new classifier the caller initialises)."""
    expected = dict(tree_flatten(model.parameters()))
    unexpected = sorted(weights.keys() - expected.keys())
    missing = sorted(k for k in expected.keys() - weights.keys() if not k.startswith(may_lack))

    def names(keys: list[str]) -> str:
        return ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")

    if missing:
        raise AnnoError(f"weights in {source} lack {len(missing)} keys the model needs: {names(missing)}")
    if unexpected:
        raise AnnoError(
            f"weights in {source} have {len(unexpected)} keys the model does not use: {names(unexpected)}"
        )
    for key, value in expected.items():
        if key in weights and weights[key].shape != value.shape:
            raise AnnoError(
                f"weight {key} in {source} has shape {tuple(weights[key].shape)}, "
                f"but config.json implies {tuple(value.shape)}"
            )


def check_quantization(quantization: Any, source: Path) -> Optional[dict]:
    if not quantization:
        return None
    if (
        not isinstance(quantization, dict)
        or quantization.get("group_size") not in (32, 64, 128)
        or quantization.get("bits") not in (2, 3, 4, 5, 6, 8)
    ):
        raise AnnoError(
            f"config.json in {source} has a malformed quantization entry {quantization!r}; re-convert the model"
        )
    return quantization


def check_sizes(args: Any, weights: dict[str, mx.array], source: Path) -> None:
    """The sizes config.json claims against the shapes the weights have, before the model is
    built: a config that claims 100,000 layers is refused, not allocated."""
    problem = args.size_mismatch({key: tuple(value.shape) for key, value in weights.items()})
    if problem:
        raise AnnoError(
            f"config.json in {source} does not match its weights: {problem}; re-download or re-convert the model"
        )


def build_model(
    config: dict[str, Any],
    weights: dict[str, mx.array],
    source: Path,
    head: Optional[str] = None,
    full_check: bool = False,
    may_lack: tuple[str, ...] = (),
) -> nn.Module:
    """Instantiate the model for `config`, quantize it as recorded there, and load `weights`,
    checked first: sizes before anything is built, then dtypes and finite values (all of them
    with `full_check`) of the keys `sanitize()` keeps, so that an integer index buffer an old
    checkpoint saved is dropped, not refused. Keys starting with `may_lack` may be missing and
    keep their fresh initial values."""
    model_class, args_class = get_model_classes(config, head)
    args = build_args(config, args_class)
    quantization = check_quantization(config.get("quantization"), source)
    check_sizes(args, weights, source)
    model = model_class(args)
    weights = model.sanitize(weights)
    check_values(weights, source, quantized=bool(quantization), sample=None if full_check else SAMPLE)
    if quantization:
        nn.quantize(
            model,
            group_size=quantization["group_size"],
            bits=quantization["bits"],
            class_predicate=lambda path, module: f"{path}.scales" in weights,
        )
    check_weights(model, weights, source, may_lack)
    model.load_weights(list(weights.items()), strict=not may_lack)  # check_weights did the strict part
    model.eval()
    mx.eval(model.parameters())
    return model


def load_folder(
    folder: Path, head: Optional[str] = None, full_check: bool = False
) -> tuple[nn.Module, dict[str, Any]]:
    """Model and config from a local folder, either layout."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AnnoError(f"model folder {folder} does not exist")
    config = read_config(folder)
    model_class, args_class = get_model_classes(
        config, head
    )  # an unsupported model fails before reading gigabytes
    build_args(config, args_class)  # so does a malformed config
    return build_model(config, read_weights(folder), folder, head, full_check), config


def config_labels(config: dict[str, Any]) -> dict[int, str]:
    """A config's id2label with whole-number ids (JSON object keys are strings); {} when none."""
    return {int(k): v for k, v in (config.get("id2label") or {}).items()}


def training_model(
    base: Optional[Path], config_file: Optional[Path], tokenizer: Tokenizer, labels: Optional[list[str]]
) -> tuple[nn.Module, dict[str, Any]]:
    """A float32 model to train, and the config its output folder gets: token classification
    for `labels`, masked LM when `labels` is None. From `base` (a converted or Hugging Face
    masked-LM or token-classification folder) it keeps the encoder and prediction head, and the
    classifier only when the labels are the same; a head `base` lacks starts from the current
    MLX seed. Without `base`, a fresh model from the ModelArgs in `config_file`, sized to the
    tokenizer."""
    given = read_config(base) if base is not None else _fresh_config(config_file, tokenizer)
    if base is not None and given.get("quantization"):
        raise AnnoError(f"{base} is quantized; fine-tune from a float checkpoint")
    heads = family(given.get("model_type"))
    config = dict(given)
    id2label = dict(enumerate(labels)) if labels is not None else None
    if id2label is not None:
        config.update(
            architectures=[heads.HEADS["token-classification"]],
            id2label={str(i): label for i, label in id2label.items()},
            label2id={label: i for i, label in id2label.items()},
        )
    else:
        config["architectures"] = [heads.HEADS["masked-lm"]]
        for key in ("id2label", "label2id", "num_labels"):
            config.pop(key, None)
    config.pop("quantization", None)
    config.pop("quantization_config", None)
    model_class, args_class = get_model_classes(config)
    try:
        args = args_class.from_dict(config)
    except (TypeError, ValueError) as err:
        raise AnnoError(f"the model config is not usable: {err}") from None
    if base is None:
        model = model_class(args)
    else:
        weights = read_weights(base)
        classifier = heads.TASK_KEYS["token-classification"]
        if config_labels(given) != id2label:  # another label set: a new classifier
            weights = {k: v for k, v in weights.items() if not k.startswith(classifier)}
        new_heads = tuple(prefix for keys in heads.TASK_KEYS.values() for prefix in keys)
        model = build_model(config, weights, base, may_lack=new_heads)
    # Written out in full, so that the output folder describes the model without our defaults.
    config.update(
        {
            k: v
            for k, v in asdict(args).items()
            if k != "id2label" and (id2label is not None or k != "num_labels")
        }
    )
    model.set_dtype(mx.float32)
    return model, config


def _fresh_config(config_file: Optional[Path], tokenizer: Tokenizer) -> dict[str, Any]:
    """The --config file's model settings, with the tokenizer's vocabulary size and special ids."""
    try:
        config = json.loads(Path(config_file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise AnnoError(f"--config {config_file} is not a readable JSON file ({err})") from None
    config.setdefault("model_type", "modernbert")
    config["vocab_size"] = tokenizer.vocab_size
    config.update({f"{name}_token_id": i for name, i in tokenizer.special_ids().items() if i is not None})
    return config


def save_folder(model: nn.Module, config: dict[str, Any], dst: Path, files: dict[str, Path]) -> None:
    """Write a model folder atomically: weights (mlx-lm's sharded `save_model`), config.json,
    `files` (name -> source path, e.g. the tokenizer) and our marker go into a hidden sibling
    that is renamed into place, so an interrupted write leaves no `dst` and a replaced `dst` is
    never half-new. Only an empty folder or one anno-mlx wrote is ever replaced (see `outputs`)."""
    from mlx_lm.utils import save_config, save_model

    dst = Path(dst)
    recover(dst)
    if os.path.lexists(dst):
        check_replaceable(dst)  # callers check before any work; this guards every later write too
    with staging_folder(dst) as staging:
        try:
            save_model(staging, model)
            save_config(dict(config), staging / "config.json")
            for name, source in files.items():
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, staging / name)
            write_marker(staging, "model", os.listdir(staging))  # last: a marked staging folder is complete
        except OSError as err:
            raise AnnoError(
                f"cannot write {dst}: {err.strerror or err}; check the free space and permissions"
            ) from None
        replace_folder(staging, dst)
