"""Model registry: pick the MLX class for a Hugging Face `config.json`."""

from __future__ import annotations

from typing import Any, Optional

import mlx.nn as nn

from ..errors import AnnoError
from . import modernbert

MODEL_TYPES = {"modernbert": modernbert}

# What users may ask for instead of a class name.
HEADS = {
    "encoder": "ModernBertModel",
    "token-classification": "ModernBertForTokenClassification",
    "masked-lm": "ModernBertForMaskedLM",
}


def get_model_classes(config: dict[str, Any], head: Optional[str] = None) -> tuple[type[nn.Module], type]:
    """The model class (from `architectures`, or `head` when given) and its ModelArgs class."""
    model_type = config.get("model_type")
    architectures = config.get("architectures")
    if not isinstance(model_type, str) or (
        architectures is not None
        and not (isinstance(architectures, list) and all(isinstance(a, str) for a in architectures))
    ):
        raise AnnoError("config.json needs model_type as a string and architectures as a list of class names")
    module = MODEL_TYPES.get(model_type)
    if module is None:
        raise AnnoError(
            f"model_type {model_type!r} is not supported; supported: {', '.join(sorted(MODEL_TYPES))}"
        )
    if head is not None:
        if head not in HEADS and head not in module.ARCHITECTURES:
            raise AnnoError(f"unknown head {head!r}; choose one of: {', '.join(HEADS)}")
        name = HEADS.get(head, head)
    else:
        names = [a for a in config.get("architectures") or [] if a in module.ARCHITECTURES]
        if config.get("architectures") and not names:
            raise AnnoError(
                f"architecture {config['architectures'][0]!r} is not supported; supported: "
                f"{', '.join(module.ARCHITECTURES)}"
            )
        name = names[0] if names else "ModernBertModel"
    return module.ARCHITECTURES[name], module.ModelArgs


def build_args(config: dict[str, Any], args_class: type) -> Any:
    """ModelArgs from a config dict, with bad values reported as one line."""
    try:
        return args_class.from_dict(config)
    except (TypeError, ValueError) as err:
        raise AnnoError(f"config.json is not a usable {config.get('model_type')} config: {err}") from None
