"""Checks for `config.json` values, shared by every family's `ModelArgs`: reading the fields a
family knows, and refusing a value before anything is allocated for it. Each raises ValueError
with a one-line message that names the field and its value."""

from __future__ import annotations

import inspect
import re
from typing import Any, Iterable, Mapping, Optional

from .activations import ACTIVATION_NAMES

# The largest size a field may claim (a signed 32-bit whole number).
MAX_SIZE = 2**31 - 1
TOKEN_IDS = ("pad_token_id", "cls_token_id", "sep_token_id", "mask_token_id", "unk_token_id")


def is_int(value: Any) -> bool:
    """A whole number; JSON's true/false are not numbers here."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def known_fields(cls: type, config: Mapping[str, Any]) -> dict[str, Any]:
    """The values of `config` that `cls` takes as arguments: unknown keys (another library's
    settings) are ignored, and null means the field's default."""
    known = inspect.signature(cls).parameters
    return {key: value for key, value in config.items() if key in known and value is not None}


def read_id2label(id2label: Any) -> dict[int, Any]:
    """`id2label` with whole-number keys: JSON writes them as strings."""
    if not isinstance(id2label, dict) or not all(str(k).lstrip("-").isdigit() for k in id2label):
        raise ValueError("id2label must be an object of label ids to names")
    return {int(k): v for k, v in id2label.items()}


def check_sizes(args: Any, names: Iterable[str]) -> None:
    """Sizes are whole numbers from 1 up: `num_hidden_layers: 100000` must fail here, not after
    gigabytes are allocated."""
    for name in names:
        value = getattr(args, name)
        if not is_int(value) or not 1 <= value <= MAX_SIZE:
            raise ValueError(f"{name} {value!r} is not a whole number from 1 to {MAX_SIZE:,}")


def check_positions(args: Any, maximum: int) -> None:
    """max_position_embeddings within what the family's position code handles."""
    if args.max_position_embeddings > maximum:
        raise ValueError(
            f"max_position_embeddings {args.max_position_embeddings:,} is above the {maximum:,} this model supports"
        )


def check_ranges(args: Any, ranges: Mapping[str, tuple[float, float]]) -> None:
    """Positive numbers (epsilons, rope thetas) within `ranges[name]`, both ends included."""
    for name, (low, high) in ranges.items():
        value = getattr(args, name)
        if not is_number(value) or not low <= float(value) <= high:
            raise ValueError(f"{name} {value!r} is not a positive number from {low:g} to {high:g}")


def check_booleans(args: Any, names: Iterable[str]) -> None:
    """Switches are JSON true or false, not 0/1 or strings."""
    for name in names:
        if not isinstance(getattr(args, name), bool):
            raise ValueError(f"{name} {getattr(args, name)!r} is not true or false")


def check_token_ids(args: Any, names: Iterable[str] = TOKEN_IDS) -> None:
    """Special token ids, where set, index the token embeddings."""
    for name in names:
        value = getattr(args, name)
        if value is not None and (not is_int(value) or not 0 <= value < args.vocab_size):
            raise ValueError(f"{name} {value!r} is not a token id below vocab_size {args.vocab_size}")


def check_id2label(id2label: Any) -> None:
    """Label names for the ids 0 to n - 1, one each: the classifier's rows."""
    if not isinstance(id2label, dict) or not all(isinstance(v, str) and v.strip() for v in id2label.values()):
        raise ValueError("id2label must map label ids to label names")
    if id2label and sorted(id2label) != list(range(len(id2label))):
        raise ValueError(f"id2label's ids must be 0 to {len(id2label) - 1}, one each")


def check_multiple(args: Any, name: str, divisor: str) -> None:
    """The width splits evenly into attention heads."""
    value, parts = getattr(args, name), getattr(args, divisor)
    if value % parts:
        raise ValueError(f"{name} {value} is not a multiple of {divisor} {parts}")


def check_rates(args: Any, names: Iterable[str], optional: Iterable[str] = ()) -> None:
    """Dropout rates in [0, 1); a name in `optional` may also be None (another field's rate
    then applies)."""
    optional = set(optional)
    for name in names:
        value = getattr(args, name)
        if value is None and name in optional:
            continue
        if not is_number(value) or not 0 <= float(value) < 1:
            raise ValueError(f"{name} {value!r} is not a dropout rate in [0, 1)")


def check_activations(args: Any, names: Iterable[str]) -> None:
    """Activations by a name that `activations` implements for both frameworks."""
    for name in names:
        if getattr(args, name) not in ACTIVATION_NAMES:
            raise ValueError(
                f"{name} {getattr(args, name)!r} is not supported "
                f"(supported: {', '.join(sorted(ACTIVATION_NAMES))})"
            )


def layer_count_mismatch(
    shapes: Mapping[str, tuple[int, ...]], layer_key: re.Pattern, name: str, count: int
) -> Optional[str]:
    """What is wrong when the weights hold another number of layers than `name` claims (the
    layer index is `layer_key`'s first group); None when they agree."""
    layers = {int(match.group(1)) for key in shapes if (match := layer_key.search(key))}
    if len(layers) != count:
        return f"{name} is {count:,} but the weights hold {len(layers)} layers"
    return None


def weight_shape(shapes: Mapping[str, tuple[int, ...]], *suffixes: str) -> Optional[tuple[int, ...]]:
    """The shape of the first weight whose key ends with one of `suffixes` (None: no such key)."""
    return next((value for key, value in shapes.items() if key.endswith(suffixes)), None)
