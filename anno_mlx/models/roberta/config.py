"""RoBERTa's configuration (XLM-RoBERTa's and CamemBERT's too): BERT's `ModelArgs` with
RoBERTa's defaults and its positions, which start after the padding id. Framework-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..bert.config import ModelArgs as BertArgs
from ..checks import is_int


@dataclass
class ModelArgs(BertArgs):
    model_type: str = "roberta"
    vocab_size: int = 50265
    pad_token_id: Optional[int] = 1  # the other defaults are BERT's, as RobertaConfig has them

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "ModelArgs":
        """As BERT's, and `<s>`/`</s>` (bos/eos in RoBERTa configs) as the cls/sep ids where the
        config names no cls/sep."""
        config = dict(config)
        for name, fallback in (("cls_token_id", "bos_token_id"), ("sep_token_id", "eos_token_id")):
            if config.get(name) is None and is_int(config.get(fallback)):
                config[name] = config[fallback]
        return super().from_dict(config)

    def validate(self) -> None:
        super().validate()
        if self.pad_token_id is None:
            raise ValueError("pad_token_id is missing; RoBERTa numbers positions after the padding id")
        if self.max_length < 1:
            raise ValueError(
                f"max_position_embeddings {self.max_position_embeddings} leaves no position after "
                f"the padding id {self.pad_token_id}"
            )

    @property
    def max_length(self) -> int:
        """Positions run from pad_token_id + 1 to max_position_embeddings - 1 (514 -> 512)."""
        return self.max_position_embeddings - (self.pad_token_id or 0) - 1
