"""What a training run may be told (`TrainSettings`), its defaults and their checks."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

from ..errors import AnnoError

# Defaults where a setting is left unset (None): fine-tuning a trained encoder wants a small
# learning rate and few epochs; a fresh model learns nothing useful in that budget.
FINE_TUNE_DEFAULTS = {"learning_rate": 5e-5, "epochs": 3}
FRESH_DEFAULTS = {"learning_rate": 1e-3, "epochs": 10}


@dataclass
class TrainSettings:
    epochs: Optional[int] = None  # see FINE_TUNE_DEFAULTS / FRESH_DEFAULTS
    batch_size: int = 16
    learning_rate: Optional[float] = None
    warmup: float = 0.1  # share of all steps spent warming up
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_length: int = 512
    seed: int = 0
    vocab_size: int = 8000  # for a tokenizer trained on the data
    mask_rate: float = 0.3  # masked-LM: share of tokens hidden

    def resolved(self, fresh: bool) -> "TrainSettings":
        """These settings with the unset ones filled in for a fresh model or a fine-tune,
        checked: a NaN learning rate or zero epochs would save a broken model or none at all."""
        defaults = FRESH_DEFAULTS if fresh else FINE_TUNE_DEFAULTS
        settings = replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})
        settings.check()
        return settings

    def check(self) -> None:
        whole = {"epochs": 1, "batch_size": 1, "max_length": 8, "vocab_size": 100}
        for name, least in whole.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise AnnoError(
                    f"--{name.replace('_', '-')} {value!r} must be a whole number of at least {least}"
                )
        ranges = {
            "learning_rate": (0, None),
            "weight_decay": (0, None),
            "max_grad_norm": (0, None),
            "warmup": (0, 1),
        }
        for name, (low, high) in ranges.items():
            value = float(getattr(self, name))
            if (
                not math.isfinite(value)
                or value < low
                or (name in ("learning_rate", "max_grad_norm") and value == 0)
                or (high is not None and value >= high)
            ):
                flag = "--lr" if name == "learning_rate" else f"--{name.replace('_', '-')}"
                bounds = (
                    f"in [{low}, {high})"
                    if high is not None
                    else ("above 0" if name in ("learning_rate", "max_grad_norm") else "at least 0")
                )
                raise AnnoError(f"{flag} {getattr(self, name)!r} must be a finite number {bounds}")
