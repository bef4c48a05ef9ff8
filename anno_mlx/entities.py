"""The entity a user gets back."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Entity:
    """A labelled span: `text == document[start:end]` (Python string indices) always holds."""

    text: str
    label: str
    start: int
    end: int
    score: float

    def to_dict(self) -> dict[str, Any]:
        """Our fields plus the Hugging Face pipeline's keys (`entity_group`, `word`)."""
        return {**asdict(self), "entity_group": self.label, "word": self.text}
