"""ModernBERT's configuration: `ModelArgs` from `config.json`, framework-free (no MLX, no PyTorch),
read by the MLX model, its PyTorch mirror, the loader and `EncoderConfig` alike."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

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
    weight_shape,
)

GLOBAL = "full_attention"
LAYER_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.")
LOCAL = "sliding_attention"

SIZES = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "max_position_embeddings",
    "local_attention",
    "global_attn_every_n_layers",
)
BOOLEANS = (
    "norm_bias",
    "attention_bias",
    "mlp_bias",
    "classifier_bias",
    "decoder_bias",
    "tie_word_embeddings",
)
RANGES = {"norm_eps": (1e-12, 1.0), "global_rope_theta": (1.0, 1e12), "local_rope_theta": (1.0, 1e12)}
DROPOUTS = ("embedding_dropout", "attention_dropout", "mlp_dropout", "classifier_dropout")
MAX_POSITIONS = 2**20


@dataclass
class ModelArgs:
    # The models take `sequence_ids`: several sequences packed into one row (`batching`).
    supports_packing: ClassVar[bool] = True

    model_type: str = "modernbert"
    vocab_size: int = 50368
    hidden_size: int = 768
    intermediate_size: int = 1152
    num_hidden_layers: int = 22
    num_attention_heads: int = 12
    max_position_embeddings: int = 8192
    norm_eps: float = 1e-5
    norm_bias: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    classifier_bias: bool = False
    decoder_bias: bool = True
    tie_word_embeddings: bool = True
    # Dropout rates, active only in training mode (`model.train()`); loaded models are put in
    # eval mode. attention_dropout drops attention outputs (after Wo), not attention weights.
    embedding_dropout: float = 0.0
    attention_dropout: float = 0.0
    mlp_dropout: float = 0.0
    classifier_dropout: float = 0.0
    hidden_activation: str = "gelu"
    classifier_activation: str = "gelu"
    local_attention: int = 128
    global_rope_theta: float = 160000.0
    local_rope_theta: float = 10000.0
    global_attn_every_n_layers: int = 3
    layer_types: Optional[list[str]] = None
    id2label: dict[int, str] = field(default_factory=dict)
    pad_token_id: Optional[int] = 50283
    cls_token_id: Optional[int] = 50281
    sep_token_id: Optional[int] = 50282
    mask_token_id: Optional[int] = None
    unk_token_id: Optional[int] = None

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "ModelArgs":
        """Read both config styles: legacy `*_rope_theta`/`global_attn_every_n_layers` and
        transformers-5 `layer_types`/`rope_parameters`."""
        values = known_fields(cls, config)
        rope = config.get("rope_parameters") or {}
        if not isinstance(rope, dict):
            raise ValueError("rope_parameters must be an object")
        if isinstance(rope.get(GLOBAL), dict) and "rope_theta" in rope[GLOBAL]:
            values["global_rope_theta"] = rope[GLOBAL]["rope_theta"]
        if isinstance(rope.get(LOCAL), dict) and "rope_theta" in rope[LOCAL]:
            values["local_rope_theta"] = rope[LOCAL]["rope_theta"]
        values["id2label"] = read_id2label(values.get("id2label", {}))
        args = cls(**values)  # validates every field
        if args.layer_types is None:
            n = args.global_attn_every_n_layers
            args.layer_types = [GLOBAL if i % n == 0 else LOCAL for i in range(args.num_hidden_layers)]
        return args

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Every field by type and range, before anything is allocated: a config.json is input
        like any other, and `num_hidden_layers: 100000` must not allocate gigabytes first."""
        check_sizes(self, SIZES)
        check_positions(self, MAX_POSITIONS)
        check_ranges(self, RANGES)
        check_booleans(self, BOOLEANS)
        check_token_ids(self)
        if self.layer_types is not None:
            if not isinstance(self.layer_types, list) or any(
                t not in (GLOBAL, LOCAL) for t in self.layer_types
            ):
                raise ValueError(f"layer_types must be a list of {GLOBAL!r} and {LOCAL!r}")
            if len(self.layer_types) != self.num_hidden_layers:
                raise ValueError(
                    f"layer_types has {len(self.layer_types)} entries for {self.num_hidden_layers} layers"
                )
        check_id2label(self.id2label)
        check_multiple(self, "hidden_size", "num_attention_heads")
        check_rates(self, DROPOUTS)
        check_activations(self, ("hidden_activation", "classifier_activation"))

    def size_mismatch(self, shapes: dict[str, tuple[int, ...]]) -> Optional[str]:
        """What config.json claims that the checkpoint's weight shapes contradict (None: all
        agree): layers, hidden size, vocabulary and MLP width, read before anything is built."""
        if problem := layer_count_mismatch(shapes, LAYER_KEY, "num_hidden_layers", self.num_hidden_layers):
            return problem
        norm, embeddings, wi = (
            weight_shape(shapes, "embeddings.norm.weight"),
            weight_shape(shapes, "embeddings.tok_embeddings.weight"),
            weight_shape(shapes, "layers.0.mlp.Wi.weight"),
        )
        if not norm or not embeddings or wi == ():
            return "the weights have no token embeddings (embeddings.tok_embeddings.weight, embeddings.norm.weight)"
        if norm[0] != self.hidden_size:
            return f"hidden_size is {self.hidden_size:,} but the weights' width is {norm[0]:,}"
        if embeddings[0] != self.vocab_size:
            return f"vocab_size is {self.vocab_size:,} but the token embeddings have {embeddings[0]:,} rows"
        if wi is not None and wi[0] != 2 * self.intermediate_size:
            return f"intermediate_size is {self.intermediate_size:,} but the MLP weights imply {wi[0] // 2:,}"
        return None

    @property
    def num_labels(self) -> int:
        return len(self.id2label) or 2

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def max_length(self) -> int:
        """The longest input, in tokens (special tokens included), the model takes."""
        return self.max_position_embeddings

    @property
    def verify_length(self) -> int:
        """A test input's length that exercises what this family does differently: here, longer
        than a local window on both sides, with padding."""
        return 2 * self.local_attention + 37

    @property
    def half_window(self) -> int:
        """Token i sees key j on a local layer when |i - j| <= half_window."""
        return self.local_attention // 2
