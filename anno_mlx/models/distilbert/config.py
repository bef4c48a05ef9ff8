"""DistilBERT's configuration: `ModelArgs` from `config.json`, framework-free (no MLX, no PyTorch).

DistilBERT's config names its sizes `dim`, `hidden_dim`, `n_layers` and `n_heads`; the names
the rest of the package reads for every family (`hidden_size`, `intermediate_size`, ...) are
properties over them.
"""

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
    check_rates,
    check_sizes,
    check_token_ids,
    known_fields,
    layer_count_mismatch,
    read_id2label,
    weight_shape,
)

GLOBAL = "full_attention"
LAYER_KEY = re.compile(r"(?:^|\.)transformer\.layer\.(\d+)\.")
# The common names transformers' DistilBertConfig also accepts for its own ones.
ALIASES = {"hidden_size": "dim", "num_hidden_layers": "n_layers", "num_attention_heads": "n_heads"}

SIZES = ("vocab_size", "dim", "hidden_dim", "n_layers", "n_heads", "max_position_embeddings")
DROPOUTS = ("dropout", "attention_dropout")
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
        values = known_fields(cls, config)
        for common, own in ALIASES.items():
            if own not in values and config.get(common) is not None:
                values[own] = config[common]
        values["id2label"] = read_id2label(values.get("id2label", {}))
        return cls(**values)  # validates every field

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Every field by type and range, before anything is allocated."""
        check_sizes(self, SIZES)
        check_positions(self, MAX_POSITIONS)
        check_booleans(self, ("sinusoidal_pos_embds", "tie_word_embeddings"))
        check_token_ids(self)
        check_id2label(self.id2label)
        check_multiple(self, "dim", "n_heads")
        if self.sinusoidal_pos_embds and self.dim % 2:
            raise ValueError(f"dim {self.dim} must be even for sinusoidal position embeddings")
        check_rates(self, DROPOUTS)
        check_activations(self, ("activation",))

    def size_mismatch(self, shapes: dict[str, tuple[int, ...]]) -> Optional[str]:
        """What config.json claims that the checkpoint's weight shapes contradict (None: all
        agree): layers, width, vocabulary, positions and feed-forward width, before building."""
        if problem := layer_count_mismatch(shapes, LAYER_KEY, "n_layers", self.n_layers):
            return problem
        norm = weight_shape(shapes, "embeddings.LayerNorm.weight", "embeddings.LayerNorm.gamma")
        words = weight_shape(shapes, "embeddings.word_embeddings.weight")
        positions = weight_shape(shapes, "embeddings.position_embeddings.weight")
        lin1 = weight_shape(shapes, "layer.0.ffn.lin1.weight")
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
