"""Type checks for `config.json` values, shared by every family's `ModelArgs.validate`."""

from __future__ import annotations

from typing import Any


def is_int(value: Any) -> bool:
    """A whole number; JSON's true/false are not numbers here."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
