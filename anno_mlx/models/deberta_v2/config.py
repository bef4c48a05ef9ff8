"""DeBERTa-v2's configuration (DeBERTa-v3 checkpoints use it too): `ModelArgs` from `config.json`,
framework-free (no MLX, no PyTorch), read by the MLX model, its PyTorch mirror, the loader and
conversion alike."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

from ..checks import (
    check_activations,
    check_booleans,
    check_id2label,
    check_multiple,
    check_ranges,
    check_rates,
    check_sizes,
    check_token_ids,
    is_int,
    known_fields,
    layer_count_mismatch,
    read_id2label,
    weight_shape,
)

LAYER_KEY = re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\.")
# The disentangled attention terms: content-to-position and position-to-content.
ATTENTION_TERMS = ("c2p", "p2c")
REL_NORMS = ("none", "layer_norm")

SIZES = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "max_position_embeddings",
    "embedding_size",
)
BOOLEANS = (
    "relative_attention",
    "position_biased_input",
    "share_att_key",
    "legacy",
    "tie_word_embeddings",
)
DROPOUTS = ("hidden_dropout_prob", "attention_probs_dropout_prob")
MAX_POSITIONS = 2**20
MAX_TOKEN_TYPES = 1024


@dataclass
class ModelArgs:
    """transformers' `DebertaV2Config` fields that shape the network, with its defaults (so that a
    `config.json` leaving one out means here what it means there)."""

    model_type: str = "deberta-v2"
    vocab_size: int = 128100
    hidden_size: int = 1536
    intermediate_size: int = 6144
    num_hidden_layers: int = 24
    num_attention_heads: int = 24
    max_position_embeddings: int = 512
    # The token embeddings' width; a projection (`embed_proj`) takes it to hidden_size when it
    # differs. None: hidden_size.
    embedding_size: Optional[int] = None
    type_vocab_size: int = 0
    layer_norm_eps: float = 1e-7
    hidden_act: str = "gelu"
    # Dropout rates, active only in training mode (`model.train()`); loaded models are in eval mode.
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    # Absolute position embeddings added to the tokens' (DeBERTa-v3: false, positions are relative only).
    position_biased_input: bool = True
    # Relative positions: attention adds the terms of `pos_att_type` from `rel_embeddings`.
    relative_attention: bool = False
    pos_att_type: list[str] = field(default_factory=list)
    # Distances up to position_buckets // 2 each have their own embedding, longer ones share
    # log-spaced buckets up to max_relative_positions; position_buckets <= 0: no buckets, and
    # max_relative_positions < 1: max_position_embeddings.
    max_relative_positions: int = -1
    position_buckets: int = -1
    # The position terms project the relative embeddings with the content projections
    # (true) or with their own pos_key_proj / pos_query_proj (false).
    share_att_key: bool = False
    norm_rel_ebd: str = "none"
    # The convolution after the first layer (DeBERTa-v2 xlarge/xxlarge): not supported.
    conv_kernel_size: int = 0
    # Masked-LM head layout: `cls.predictions.*` (true, transformers' default) or `lm_predictions.lm_head.*`.
    legacy: bool = True
    tie_word_embeddings: bool = True
    id2label: dict[int, str] = field(default_factory=dict)
    pad_token_id: Optional[int] = 0
    cls_token_id: Optional[int] = None
    sep_token_id: Optional[int] = None
    mask_token_id: Optional[int] = None
    unk_token_id: Optional[int] = None

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "ModelArgs":
        """`pos_att_type` may be a list or transformers' older "p2c|c2p" string."""
        values = known_fields(cls, config)
        terms = values.get("pos_att_type")
        if isinstance(terms, str):
            values["pos_att_type"] = [t.strip() for t in terms.lower().split("|") if t.strip()]
        values["id2label"] = read_id2label(values.get("id2label", {}))
        return cls(**values)  # validates every field

    def __post_init__(self):
        if self.embedding_size is None:
            self.embedding_size = self.hidden_size
        self.validate()

    def validate(self) -> None:
        """Every field by type and range, before anything is allocated: a config.json is input
        like any other, and `num_hidden_layers: 100000` must not allocate gigabytes first."""
        check_sizes(self, SIZES)
        for name in ("max_position_embeddings", "max_relative_positions", "position_buckets"):
            value = getattr(self, name)
            if not is_int(value) or value > MAX_POSITIONS:
                raise ValueError(f"{name} {value!r} is not a whole number up to {MAX_POSITIONS:,}")
        if not is_int(self.type_vocab_size) or not 0 <= self.type_vocab_size <= MAX_TOKEN_TYPES:
            raise ValueError(
                f"type_vocab_size {self.type_vocab_size!r} is not a whole number from 0 to {MAX_TOKEN_TYPES}"
            )
        if not is_int(self.conv_kernel_size):
            raise ValueError(f"conv_kernel_size {self.conv_kernel_size!r} is not a whole number")
        if self.conv_kernel_size > 0:
            raise ValueError(
                f"conv_kernel_size {self.conv_kernel_size} asks for the convolution layer (of DeBERTa-v2 "
                "xlarge/xxlarge), which is not supported"
            )
        check_ranges(self, {"layer_norm_eps": (1e-12, 1.0)})
        check_booleans(self, BOOLEANS)
        check_token_ids(self)
        if not isinstance(self.pos_att_type, list) or any(
            t not in ATTENTION_TERMS for t in self.pos_att_type
        ):
            raise ValueError(
                f"pos_att_type {self.pos_att_type!r} is not a list of {' and '.join(ATTENTION_TERMS)}"
            )
        if not isinstance(self.norm_rel_ebd, str) or any(
            part.strip() not in REL_NORMS for part in self.norm_rel_ebd.lower().split("|")
        ):
            raise ValueError(f"norm_rel_ebd {self.norm_rel_ebd!r} is not one of {', '.join(REL_NORMS)}")
        if self.relative_attention and self.position_buckets > 0:
            half = self.position_buckets // 2
            if half < 1 or self.relative_span_limit - 1 <= half:
                raise ValueError(
                    f"position_buckets {self.position_buckets} needs max_relative_positions above "
                    f"{half + 1} (it is {self.relative_span_limit})"
                )
        check_id2label(self.id2label)
        check_multiple(self, "hidden_size", "num_attention_heads")
        check_rates(self, DROPOUTS)
        check_activations(self, ("hidden_act",))

    def size_mismatch(self, shapes: dict[str, tuple[int, ...]]) -> Optional[str]:
        """What config.json claims that the checkpoint's weight shapes contradict (None: all
        agree): layers, hidden size, vocabulary and MLP width, read before anything is built."""
        if problem := layer_count_mismatch(shapes, LAYER_KEY, "num_hidden_layers", self.num_hidden_layers):
            return problem
        norm, embeddings, dense = (
            weight_shape(shapes, "embeddings.LayerNorm.weight"),
            weight_shape(shapes, "embeddings.word_embeddings.weight"),
            weight_shape(shapes, "layer.0.intermediate.dense.weight"),
        )
        if not norm or not embeddings or dense == ():
            return "the weights have no token embeddings (embeddings.word_embeddings.weight, embeddings.LayerNorm.weight)"
        if norm[0] != self.hidden_size:
            return f"hidden_size is {self.hidden_size:,} but the weights' width is {norm[0]:,}"
        if embeddings[0] != self.vocab_size:
            return f"vocab_size is {self.vocab_size:,} but the token embeddings have {embeddings[0]:,} rows"
        if dense is not None and dense[0] != self.intermediate_size:
            return f"intermediate_size is {self.intermediate_size:,} but the MLP weights imply {dense[0]:,}"
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
    def layer_types(self) -> list[str]:
        """Every layer attends to every token."""
        return ["full_attention"] * self.num_hidden_layers

    @property
    def relative_span_limit(self) -> int:
        """The longest relative distance before buckets (max_relative_positions, or the positions)."""
        return (
            self.max_relative_positions if self.max_relative_positions >= 1 else self.max_position_embeddings
        )

    @property
    def attention_span(self) -> int:
        """Relative embeddings per direction: `rel_embeddings` holds twice as many rows."""
        return self.position_buckets if self.position_buckets > 0 else self.relative_span_limit

    @property
    def scale_factor(self) -> int:
        """Scores are divided by sqrt(head_dim * this): one share for the content term and one
        for each position term, whether or not relative attention is on (as the reference does)."""
        return 1 + len(set(self.pos_att_type))

    @property
    def rel_layer_norm(self) -> bool:
        """The relative embeddings pass through `encoder.LayerNorm` before use."""
        return "layer_norm" in [part.strip() for part in self.norm_rel_ebd.lower().split("|")]

    @property
    def max_length(self) -> int:
        """The longest input, in tokens (special tokens included), the model takes."""
        return self.max_position_embeddings

    @property
    def verify_length(self) -> int:
        """A test input's length that exercises what this family does differently: distances
        beyond half the position buckets, which share log-spaced buckets."""
        return min(self.max_length, max(64, self.position_buckets + 8))
