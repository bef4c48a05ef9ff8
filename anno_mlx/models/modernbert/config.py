"""ModernBERT's configuration: `ModelArgs` from `config.json`, framework-free (no MLX, no PyTorch),
read by the MLX model, its PyTorch mirror, the loader and `EncoderConfig` alike."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from ..activations import ACTIVATION_NAMES
from ..checks import is_int, is_number

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
MAX_SIZE = 2**31 - 1
MAX_POSITIONS = 2**20


@dataclass
class ModelArgs:
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
        known = inspect.signature(cls).parameters
        values = {k: v for k, v in config.items() if k in known and v is not None}
        rope = config.get("rope_parameters") or {}
        if not isinstance(rope, dict):
            raise ValueError("rope_parameters must be an object")
        if isinstance(rope.get(GLOBAL), dict) and "rope_theta" in rope[GLOBAL]:
            values["global_rope_theta"] = rope[GLOBAL]["rope_theta"]
        if isinstance(rope.get(LOCAL), dict) and "rope_theta" in rope[LOCAL]:
            values["local_rope_theta"] = rope[LOCAL]["rope_theta"]
        id2label = values.get("id2label", {})
        if not isinstance(id2label, dict) or not all(str(k).lstrip("-").isdigit() for k in id2label):
            raise ValueError("id2label must be an object of label ids to names")
        values["id2label"] = {int(k): v for k, v in id2label.items()}
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
        for name in SIZES:
            value = getattr(self, name)
            if not is_int(value) or not 1 <= value <= MAX_SIZE:
                raise ValueError(f"{name} {value!r} is not a whole number from 1 to {MAX_SIZE:,}")
        if self.max_position_embeddings > MAX_POSITIONS:
            raise ValueError(
                f"max_position_embeddings {self.max_position_embeddings:,} is above the {MAX_POSITIONS:,} this model supports"
            )
        for name, (low, high) in {
            "norm_eps": (1e-12, 1.0),
            "global_rope_theta": (1.0, 1e12),
            "local_rope_theta": (1.0, 1e12),
        }.items():
            value = getattr(self, name)
            if not is_number(value) or not low <= float(value) <= high:
                raise ValueError(f"{name} {value!r} is not a positive number from {low:g} to {high:g}")
        for name in BOOLEANS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} {getattr(self, name)!r} is not true or false")
        for name in ("pad_token_id", "cls_token_id", "sep_token_id", "mask_token_id", "unk_token_id"):
            value = getattr(self, name)
            if value is not None and (not is_int(value) or not 0 <= value < self.vocab_size):
                raise ValueError(f"{name} {value!r} is not a token id below vocab_size {self.vocab_size}")
        if self.layer_types is not None:
            if not isinstance(self.layer_types, list) or any(
                t not in (GLOBAL, LOCAL) for t in self.layer_types
            ):
                raise ValueError(f"layer_types must be a list of {GLOBAL!r} and {LOCAL!r}")
            if len(self.layer_types) != self.num_hidden_layers:
                raise ValueError(
                    f"layer_types has {len(self.layer_types)} entries for {self.num_hidden_layers} layers"
                )
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
        for name in ("embedding_dropout", "attention_dropout", "mlp_dropout", "classifier_dropout"):
            if not 0 <= float(getattr(self, name)) < 1:
                raise ValueError(f"{name} {getattr(self, name)!r} is not a dropout rate in [0, 1)")
        for name in ("hidden_activation", "classifier_activation"):
            if getattr(self, name) not in ACTIVATION_NAMES:
                raise ValueError(
                    f"{name} {getattr(self, name)!r} is not supported "
                    f"(supported: {', '.join(sorted(ACTIVATION_NAMES))})"
                )

    def size_mismatch(self, shapes: dict[str, tuple[int, ...]]) -> Optional[str]:
        """What config.json claims that the checkpoint's weight shapes contradict (None: all
        agree): layers, hidden size, vocabulary and MLP width, read before anything is built."""

        def shape(suffix: str) -> Optional[tuple[int, ...]]:
            return next((value for key, value in shapes.items() if key.endswith(suffix)), None)

        layers = {int(match.group(1)) for key in shapes if (match := LAYER_KEY.search(key))}
        if len(layers) != self.num_hidden_layers:
            return (
                f"num_hidden_layers is {self.num_hidden_layers:,} but the weights hold {len(layers)} layers"
            )
        norm, embeddings, wi = (
            shape("embeddings.norm.weight"),
            shape("embeddings.tok_embeddings.weight"),
            shape("layers.0.mlp.Wi.weight"),
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
