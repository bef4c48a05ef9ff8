"""DistilBERT's configuration: `ModelArgs` from `config.json`, framework-free (no MLX, no PyTorch).

DistilBERT's config names its sizes `dim`, `hidden_dim`, `n_layers` and `n_heads`; the names
the rest of the package reads for every family (`hidden_size`, `intermediate_size`, ...) are
properties over them.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from ..activations import ACTIVATION_NAMES
from ..checks import is_int, is_number

GLOBAL = "full_attention"
LAYER_KEY = re.compile(r"(?:^|\.)transformer\.layer\.(\d+)\.")
# The common names transformers' DistilBertConfig also accepts for its own ones.
ALIASES = {"hidden_size": "dim", "num_hidden_layers": "n_layers", "num_attention_heads": "n_heads"}

SIZES = ("vocab_size", "dim", "hidden_dim", "n_layers", "n_heads", "max_position_embeddings")
DROPOUTS = ("dropout", "attention_dropout")
MAX_SIZE = 2**31 - 1
# Learned (or sinusoidal) absolute positions: far beyond any released checkpoint's 512.
MAX_POSITIONS = 2**16
# Every LayerNorm of DistilBERT uses this epsilon; the config does not name it.
NORM_EPS = 1e-12

# The masked-LM head's key prefixes (what a token-classification checkpoint lacks).
MLM_KEYS = ("vocab_transform.", "vocab_layer_norm.", "vocab_projector.")


@dataclass
class ModelArgs:
    model_type: str = "distilbert"
    vocab_size: int = 30522
    dim: int = 768
    hidden_dim: int = 3072
    n_layers: int = 6
    n_heads: int = 12
    max_position_embeddings: int = 512
    # True: the position table was initialised as fixed sinusoids. Checkpoints store it all the
    # same, and the stored table is what runs (as in transformers); one that lacks it gets the
    # sinusoids.
    sinusoidal_pos_embds: bool = False
    activation: str = "gelu"
    tie_word_embeddings: bool = True
    # Dropout rates, active only in training mode: `dropout` after the embeddings, after each
    # feed-forward block and before the classifier; `attention_dropout` on attention weights.
    dropout: float = 0.1
    attention_dropout: float = 0.1
    id2label: dict[int, str] = field(default_factory=dict)
    pad_token_id: Optional[int] = 0
    cls_token_id: Optional[int] = None
    sep_token_id: Optional[int] = None
    mask_token_id: Optional[int] = None
    unk_token_id: Optional[int] = None

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "ModelArgs":
        """Unknown keys are ignored; `hidden_size`-style names count where DistilBERT's own are absent."""
        known = inspect.signature(cls).parameters
        values = {k: v for k, v in config.items() if k in known and v is not None}
        for common, own in ALIASES.items():
            if own not in values and config.get(common) is not None:
                values[own] = config[common]
        id2label = values.get("id2label", {})
        if not isinstance(id2label, dict) or not all(str(k).lstrip("-").isdigit() for k in id2label):
            raise ValueError("id2label must be an object of label ids to names")
        values["id2label"] = {int(k): v for k, v in id2label.items()}
        return cls(**values)  # validates every field

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Every field by type and range, before anything is allocated."""
        for name in SIZES:
            value = getattr(self, name)
            if not is_int(value) or not 1 <= value <= MAX_SIZE:
                raise ValueError(f"{name} {value!r} is not a whole number from 1 to {MAX_SIZE:,}")
        if self.max_position_embeddings > MAX_POSITIONS:
            raise ValueError(
                f"max_position_embeddings {self.max_position_embeddings:,} is above the {MAX_POSITIONS:,} this model supports"
            )
        for name in ("sinusoidal_pos_embds", "tie_word_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} {getattr(self, name)!r} is not true or false")
        for name in ("pad_token_id", "cls_token_id", "sep_token_id", "mask_token_id", "unk_token_id"):
            value = getattr(self, name)
            if value is not None and (not is_int(value) or not 0 <= value < self.vocab_size):
                raise ValueError(f"{name} {value!r} is not a token id below vocab_size {self.vocab_size}")
        if not isinstance(self.id2label, dict) or not all(
            isinstance(v, str) and v.strip() for v in self.id2label.values()
        ):
            raise ValueError("id2label must map label ids to label names")
        if self.id2label and sorted(self.id2label) != list(range(len(self.id2label))):
            raise ValueError(f"id2label's ids must be 0 to {len(self.id2label) - 1}, one each")
        if self.dim % self.n_heads:
            raise ValueError(f"dim {self.dim} is not a multiple of n_heads {self.n_heads}")
        if self.sinusoidal_pos_embds and self.dim % 2:
            raise ValueError(f"dim {self.dim} must be even for sinusoidal position embeddings")
        for name in DROPOUTS:
            value = getattr(self, name)
            if not is_number(value) or not 0 <= float(value) < 1:
                raise ValueError(f"{name} {value!r} is not a dropout rate in [0, 1)")
        if self.activation not in ACTIVATION_NAMES:
            raise ValueError(
                f"activation {self.activation!r} is not supported "
                f"(supported: {', '.join(sorted(ACTIVATION_NAMES))})"
            )

    def size_mismatch(self, shapes: dict[str, tuple[int, ...]]) -> Optional[str]:
        """What config.json claims that the checkpoint's weight shapes contradict (None: all
        agree): layers, width, vocabulary, positions and feed-forward width, before building."""

        def shape(*suffixes: str) -> Optional[tuple[int, ...]]:
            return next((v for k, v in shapes.items() if k.endswith(suffixes)), None)

        layers = {int(match.group(1)) for key in shapes if (match := LAYER_KEY.search(key))}
        if len(layers) != self.n_layers:
            return f"n_layers is {self.n_layers:,} but the weights hold {len(layers)} layers"
        norm = shape("embeddings.LayerNorm.weight", "embeddings.LayerNorm.gamma")
        words = shape("embeddings.word_embeddings.weight")
        positions = shape("embeddings.position_embeddings.weight")
        lin1 = shape("layer.0.ffn.lin1.weight")
        if not norm or not words:
            return "the weights have no token embeddings (embeddings.word_embeddings.weight, embeddings.LayerNorm.weight)"
        if norm[0] != self.dim:
            return f"dim is {self.dim:,} but the weights' width is {norm[0]:,}"
        if words[0] != self.vocab_size:
            return f"vocab_size is {self.vocab_size:,} but the token embeddings have {words[0]:,} rows"
        if positions is not None and positions[0] != self.max_position_embeddings:
            return (
                f"max_position_embeddings is {self.max_position_embeddings:,} "
                f"but the position embeddings have {positions[0]:,} rows"
            )
        if lin1 is not None and lin1[0] != self.hidden_dim:
            return f"hidden_dim is {self.hidden_dim:,} but the feed-forward weights imply {lin1[0]:,}"
        return None

    @property
    def hidden_size(self) -> int:
        return self.dim

    @property
    def intermediate_size(self) -> int:
        return self.hidden_dim

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layers

    @property
    def num_attention_heads(self) -> int:
        return self.n_heads

    @property
    def norm_eps(self) -> float:
        return NORM_EPS

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def num_labels(self) -> int:
        return len(self.id2label) or 2

    @property
    def layer_types(self) -> list[str]:
        """Every layer attends to the whole input."""
        return [GLOBAL] * self.n_layers

    @property
    def max_length(self) -> int:
        """The longest input, in tokens (special tokens included): one learned position each."""
        return self.max_position_embeddings

    @property
    def verify_length(self) -> int:
        return min(64, self.max_length)
