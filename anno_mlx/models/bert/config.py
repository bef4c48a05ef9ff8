"""BERT's configuration: `ModelArgs` from `config.json`, framework-free (no MLX, no PyTorch),
read by the MLX model, its PyTorch mirror, the loader and `EncoderConfig` alike. RoBERTa's
`ModelArgs` extends this one."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

from ..checks import (
    check_activations,
    check_booleans,
    check_id2label,
    check_multiple,
    check_positions,
    check_ranges,
    check_rates,
    check_sizes,
    check_token_ids,
    known_fields,
    layer_count_mismatch,
    read_id2label,
)

GLOBAL = "full_attention"
LAYER_KEY = re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\.")

SIZES = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "max_position_embeddings",
    "type_vocab_size",
)
DROPOUTS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout")
MAX_POSITIONS = 2**20
# Only learned absolute positions: "relative_key" configs of old checkpoints need other weights.
POSITION_TYPES = ("absolute",)


@dataclass
class ModelArgs:
    model_type: str = "bert"
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    # Dropout rates, active only in training mode (`model.train()`); loaded models are put in
    # eval mode. attention_probs_dropout_prob drops attention weights; classifier_dropout None
    # means hidden_dropout_prob, as in the reference.
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    classifier_dropout: Optional[float] = None
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    position_embedding_type: str = "absolute"
    tie_word_embeddings: bool = True
    id2label: dict[int, str] = field(default_factory=dict)
    pad_token_id: Optional[int] = 0
    cls_token_id: Optional[int] = None
    sep_token_id: Optional[int] = None
    mask_token_id: Optional[int] = None
    unk_token_id: Optional[int] = None

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "ModelArgs":
        """The fields `config` holds (unknown keys ignored); decoder configs are refused, as
        the encoder attends both ways and has no cross-attention."""
        if config.get("is_decoder") or config.get("add_cross_attention"):
            raise ValueError("decoder configs (is_decoder, add_cross_attention) are not supported")
        values = known_fields(cls, config)
        values["id2label"] = read_id2label(values.get("id2label", {}))
        return cls(**values)  # validates every field

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Every field by type and range, before anything is allocated: a config.json is input
        like any other, and `num_hidden_layers: 100000` must not allocate gigabytes first."""
        check_sizes(self, SIZES)
        check_positions(self, MAX_POSITIONS)
        check_ranges(self, {"layer_norm_eps": (1e-12, 1.0)})
        check_booleans(self, ("tie_word_embeddings",))
        if self.position_embedding_type not in POSITION_TYPES:
            raise ValueError(
                f"position_embedding_type {self.position_embedding_type!r} is not supported (supported: absolute)"
            )
        check_token_ids(self)
        check_id2label(self.id2label)
        check_multiple(self, "hidden_size", "num_attention_heads")
        check_rates(self, DROPOUTS, optional=("classifier_dropout",))
        check_activations(self, ("hidden_act",))

    def size_mismatch(self, shapes: dict[str, tuple[int, ...]]) -> Optional[str]:
        """What config.json claims that the checkpoint's weight shapes contradict (None: all
        agree): layers, hidden size, vocabulary, positions and MLP width, read before anything
        is built. Only first dimensions are read, which quantization leaves as they are."""

        def rows(*suffixes: str) -> Optional[int]:
            return next((value[0] for key, value in shapes.items() if key.endswith(suffixes) and value), None)

        if problem := layer_count_mismatch(shapes, LAYER_KEY, "num_hidden_layers", self.num_hidden_layers):
            return problem
        norm = rows("embeddings.LayerNorm.weight", "embeddings.LayerNorm.gamma")
        words = rows("embeddings.word_embeddings.weight")
        positions = rows("embeddings.position_embeddings.weight")
        intermediate = rows("layer.0.intermediate.dense.weight")
        if norm is None or words is None or positions is None:
            return (
                "the weights have no embeddings (embeddings.word_embeddings, position_embeddings, LayerNorm)"
            )
        if norm != self.hidden_size:
            return f"hidden_size is {self.hidden_size:,} but the weights' width is {norm:,}"
        if words != self.vocab_size:
            return f"vocab_size is {self.vocab_size:,} but the word embeddings have {words:,} rows"
        if positions != self.max_position_embeddings:
            return f"max_position_embeddings is {self.max_position_embeddings:,} but the weights hold {positions:,}"
        if intermediate is not None and intermediate != self.intermediate_size:
            return (
                f"intermediate_size is {self.intermediate_size:,} but the MLP weights imply {intermediate:,}"
            )
        return None

    @property
    def num_labels(self) -> int:
        return len(self.id2label) or 2

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def norm_eps(self) -> float:
        return self.layer_norm_eps

    @property
    def classifier_dropout_rate(self) -> float:
        return self.hidden_dropout_prob if self.classifier_dropout is None else self.classifier_dropout

    @property
    def layer_types(self) -> list[str]:
        """Every layer attends to the whole sequence."""
        return [GLOBAL] * self.num_hidden_layers

    @property
    def max_length(self) -> int:
        """The longest input, in tokens (special tokens included), the model takes: positions
        0 to max_position_embeddings - 1."""
        return self.max_position_embeddings

    @property
    def verify_length(self) -> int:
        """A test input's length for conversion checks: long enough for padding to matter."""
        return min(128, self.max_length)
