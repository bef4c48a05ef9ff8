"""The model registry: which family package serves a `config.json`, and which class its head is.

A family is a package here with `config.py` (`ModelArgs`, framework-free), `mlx_model.py`
(`ARCHITECTURES`: class name -> MLX class) and `torch_model.py` (`from_mlx`: the PyTorch mirror),
each imported only when needed (reading a config loads no engine),
and in its `__init__` `HEADS` (generic head name -> class name) and `TASK_KEYS` (each task
head's key prefixes, which a checkpoint of another task lacks). Adding one is its package and
one line in `FAMILIES`.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any, Optional

from ..errors import AnnoError

if TYPE_CHECKING:
    import mlx.nn as nn

# config.json's model_type -> the family package that reads it.
FAMILIES = {
    "modernbert": "modernbert",
    "bert": "bert",
    "roberta": "roberta",
    "xlm-roberta": "roberta",
    "camembert": "roberta",
    "distilbert": "distilbert",
    "deberta-v2": "deberta_v2",
    "gliner": "gliner",  # span models for zero-shot NER, on an encoder of a family above
}
GENERIC_HEADS = ("encoder", "token-classification", "masked-lm")


def family(model_type: Any) -> ModuleType:
    """The family package for a `model_type`, with a one-line error for one we do not run."""
    name = FAMILIES.get(model_type) if isinstance(model_type, str) else None
    if name is None:
        raise AnnoError(
            f"model_type {model_type!r} is not supported; supported: {', '.join(sorted(FAMILIES))}"
        )
    return importlib.import_module(f"{__name__}.{name}")


def architectures(module: ModuleType) -> dict[str, type]:
    """A family's MLX classes by Hugging Face class name (this imports MLX)."""
    return importlib.import_module(f"{module.__name__}.mlx_model").ARCHITECTURES


def get_model_classes(config: dict[str, Any], head: Optional[str] = None) -> tuple[type["nn.Module"], type]:
    """The model class (from `architectures`, or `head` when given) and its ModelArgs class."""
    model_type = config.get("model_type")
    given = config.get("architectures")
    if not isinstance(model_type, str) or (
        given is not None and not (isinstance(given, list) and all(isinstance(a, str) for a in given))
    ):
        raise AnnoError("config.json needs model_type as a string and architectures as a list of class names")
    module = family(model_type)
    classes = architectures(module)
    if head is not None:
        if head not in module.HEADS and head not in classes:
            raise AnnoError(f"unknown head {head!r}; choose one of: {', '.join(GENERIC_HEADS)}")
        name = module.HEADS.get(head, head)
    else:
        names = [a for a in given or [] if a in classes]
        if given and not names:
            raise AnnoError(f"architecture {given[0]!r} is not supported; supported: {', '.join(classes)}")
        name = names[0] if names else module.HEADS["encoder"]
    return classes[name], module.ModelArgs


def torch_mirror(mlx_model: "nn.Module", dtype: Any, device: str):
    """The same model in PyTorch (its family's `torch_model.from_mlx`), with the MLX model's weights."""
    module = family(mlx_model.args.model_type)
    return importlib.import_module(f"{module.__name__}.torch_model").from_mlx(mlx_model, dtype, device)


def build_args(config: dict[str, Any], args_class: type) -> Any:
    """ModelArgs from a config dict, with bad values reported as one line."""
    try:
        return args_class.from_dict(config)
    except (TypeError, ValueError) as err:
        raise AnnoError(f"config.json is not a usable {config.get('model_type')} config: {err}") from None
