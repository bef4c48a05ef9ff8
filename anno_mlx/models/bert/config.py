"""BERT's configuration: `ModelArgs` from `config.json`, framework-free (no MLX, no PyTorch),
read by the MLX model, its PyTorch mirror, the loader and `EncoderConfig` alike. RoBERTa's
`ModelArgs` extends this one."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from ..activations import ACTIVATION_NAMES
from ..checks import is_int, is_number

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
TOKEN_IDS = ("pad_token_id", "cls_token_id", "sep_token_id", "mask_token_id", "unk_token_id")
MAX_SIZE = 2**31 - 1
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
        known = inspect.signature(cls).parameters
        values = {k: v for k, v in config.items() if k in known and v is not None}
        id2label = values.get("id2label", {})
        if not isinstance(id2label, dict) or not all(str(k).lstrip("-").isdigit() for k in id2label):
            raise ValueError("id2label must be an object of label ids to names")
        values["id2label"] = {int(k): v for k, v in id2label.items()}
        return cls(**values)  # validates every field

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Every field by type and range, before anything is allocated: a config.json is input
        like any other, and `num_hidden_layers: 100000` must not allocate gigabytes first."""
        for name in SIZES:
            value = getattr(self, name)
            if not is_int(value) or not 1 <= value <= MAX_SIZE:
                raise ValueError(f"{name} {value!r} is not a whole number from 1 to {MAX_SIZE:,}")
        if self.max_position_embeddings > MAX_POSITIONS:
            raise ValueError(
                f"max_position_embeddings {self.max_position_embeddings:,} is above the {MAX_POSITIONS:,} this model supports"
            )
        if not is_number(self.layer_norm_eps) or not 1e-12 <= float(self.layer_norm_eps) <= 1.0:
            raise ValueError(
                f"layer_norm_eps {self.layer_norm_eps!r} is not a positive number from 1e-12 to 1"
            )
        if not isinstance(self.tie_word_embeddings, bool):
            raise ValueError(f"tie_word_embeddings {self.tie_word_embeddings!r} is not true or false")
        if self.position_embedding_type not in POSITION_TYPES:
            raise ValueError(
                f"position_embedding_type {self.position_embedding_type!r} is not supported (supported: absolute)"
            )
        for name in TOKEN_IDS:
            value = getattr(self, name)
            if value is not None and (not is_int(value) or not 0 <= value < self.vocab_size):
                raise ValueError(f"{name} {value!r} is not a token id below vocab_size {self.vocab_size}")
        if not isinstance(self.id2label, dict) or not all(
            isinstance(v, str) and v.strip() for v in self.id2label.values()
        ):
            raise ValueError("id2label must map label ids to label names")
        if self.id2label and sorted(self.id2label) != list(range(len(self.id2label))):
            raise ValueError(f"id2label's ids must be 0 to {len(self.id2label) - 1}, one each")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        for name in DROPOUTS:
            value = getattr(self, name)
            if name == "classifier_dropout" and value is None:
                continue
            if not is_number(value) or not 0 <= float(value) < 1:
                raise ValueError(f"{name} {value!r} is not a dropout rate in [0, 1)")
        if self.hidden_act not in ACTIVATION_NAMES:
            raise ValueError(
                f"hidden_act {self.hidden_act!r} is not supported (supported: {', '.join(sorted(ACTIVATION_NAMES))})"
            )

    def size_mismatch(self, shapes: dict[str, tuple[int, ...]]) -> Optional[str]:
        """What config.json claims that the checkpoint's weight shapes contradict (None: all
        agree): layers, hidden size, vocabulary, positions and MLP width, read before anything
        is built. Only first dimensions are read, which quantization leaves as they are."""

        def rows(*suffixes: str) -> Optional[int]:
            return next((value[0] for key, value in shapes.items() if key.endswith(suffixes) and value), None)

        layers = {int(match.group(1)) for key in shapes if (match := LAYER_KEY.search(key))}
        if len(layers) != self.num_hidden_layers:
            return (
                f"num_hidden_layers is {self.num_hidden_layers:,} but the weights hold {len(layers)} layers"
            )
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
