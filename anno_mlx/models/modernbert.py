"""ModernBERT in MLX: the encoder and its token-classification and masked-LM heads.

The module tree mirrors the Hugging Face key names, so `sanitize()` only has to drop the
prefix of bare-encoder checkpoints and the tied decoder weight. The architecture, for a reader:
docs/architecture.md ("The model, for a reader").
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import mlx.core as mx
import mlx.nn as nn

GLOBAL = "full_attention"
LAYER_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.")
LOCAL = "sliding_attention"

ACTIVATIONS = {
    "gelu": nn.gelu,  # exact erf form, as in the reference
    "gelu_python": nn.gelu,
    "gelu_new": nn.gelu_approx,
    "gelu_pytorch_tanh": nn.gelu_approx,
    "silu": nn.silu,
    "swish": nn.silu,
    "relu": nn.relu,
}


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
            if not _is_int(value) or not 1 <= value <= MAX_SIZE:
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
            if not _is_number(value) or not low <= float(value) <= high:
                raise ValueError(f"{name} {value!r} is not a positive number from {low:g} to {high:g}")
        for name in BOOLEANS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} {getattr(self, name)!r} is not true or false")
        for name in ("pad_token_id", "cls_token_id", "sep_token_id", "mask_token_id", "unk_token_id"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or not 0 <= value < self.vocab_size):
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
            if getattr(self, name) not in ACTIVATIONS:
                raise ValueError(
                    f"{name} {getattr(self, name)!r} is not supported "
                    f"(supported: {', '.join(sorted(ACTIVATIONS))})"
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
    def half_window(self) -> int:
        """Token i sees key j on a local layer when |i - j| <= half_window."""
        return self.local_attention // 2


class Embeddings(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.hidden_size)
        self.norm = nn.LayerNorm(args.hidden_size, eps=args.norm_eps, bias=args.norm_bias)
        self.drop = nn.Dropout(args.embedding_dropout)

    def __call__(self, input_ids: mx.array) -> mx.array:
        return self.drop(self.norm(self.tok_embeddings(input_ids)))


class Attention(nn.Module):
    def __init__(self, args: ModelArgs, layer_type: str):
        super().__init__()
        self.num_heads = args.num_attention_heads
        self.head_dim = args.head_dim
        self.scale = self.head_dim**-0.5
        self.is_local = layer_type == LOCAL
        self.rope_base = args.local_rope_theta if self.is_local else args.global_rope_theta
        self.Wqkv = nn.Linear(args.hidden_size, 3 * args.hidden_size, bias=args.attention_bias)
        self.Wo = nn.Linear(args.hidden_size, args.hidden_size, bias=args.attention_bias)
        self.out_drop = nn.Dropout(args.attention_dropout)

    def __call__(self, x: mx.array, mask: "AttentionMasks") -> mx.array:
        B, L, _ = x.shape
        qkv = self.Wqkv(x).reshape(B, L, 3, self.num_heads, self.head_dim)
        q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # [B, heads, L, D]
        q = mx.fast.rope(q, self.head_dim, traditional=False, base=self.rope_base, scale=1.0, offset=0)
        k = mx.fast.rope(k, self.head_dim, traditional=False, base=self.rope_base, scale=1.0, offset=0)
        if self.is_local and mask.banded:
            out = banded_attention(q, k, v, self.scale, mask)
        elif self.is_local:
            out = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.scale, mask=mask.local)
        else:
            out = global_attention(q, k, v, self.scale, mask.global_)
        return self.out_drop(self.Wo(out.transpose(0, 2, 1, 3).reshape(B, L, -1)))


class MLP(nn.Module):
    """GeGLU: the first half of Wi's output is the input, the second the gate."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.Wi = nn.Linear(args.hidden_size, 2 * args.intermediate_size, bias=args.mlp_bias)
        self.Wo = nn.Linear(args.intermediate_size, args.hidden_size, bias=args.mlp_bias)
        self.act = ACTIVATIONS[args.hidden_activation]
        self.drop = nn.Dropout(args.mlp_dropout)

    def __call__(self, x: mx.array) -> mx.array:
        inputs, gate = mx.split(self.Wi(x), 2, axis=-1)
        return self.Wo(self.drop(self.act(inputs) * gate))


class EncoderLayer(nn.Module):
    def __init__(self, args: ModelArgs, index: int):
        super().__init__()
        # Layer 0 has no attention norm: the embeddings were just normalised.
        if index > 0:
            self.attn_norm = nn.LayerNorm(args.hidden_size, eps=args.norm_eps, bias=args.norm_bias)
        self.attn = Attention(args, args.layer_types[index])
        self.mlp_norm = nn.LayerNorm(args.hidden_size, eps=args.norm_eps, bias=args.norm_bias)
        self.mlp = MLP(args)

    def __call__(self, h: mx.array, mask: "AttentionMasks") -> mx.array:
        normed = self.attn_norm(h) if "attn_norm" in self else h
        h = h + self.attn(normed, mask)
        return h + self.mlp(self.mlp_norm(h))


@dataclass
class AttentionMasks:
    """Boolean masks (True = may attend) shared by all layers of one forward pass.

    No query row is ever fully masked: a padding query that would see no real key attends to
    itself, so softmax never sees an empty row and no NaN can leak into real tokens.
    """

    global_: Optional[mx.array]  # [B, 1, 1, L] or None when nothing is padded
    local: Optional[mx.array]  # [B, 1, L, L] (dense) or [B*nb, 1, C, C+2w] (banded)
    banded: bool
    block: int = 0
    half_window: int = 0


def make_masks(attention_mask: Optional[mx.array], B: int, L: int, half_window: int) -> AttentionMasks:
    """Build the padding mask for global layers and the windowed mask for local layers.

    Sequences longer than two blocks use a banded layout for local layers: blocks of C queries
    attend to their C + 2w neighbouring keys only, instead of a dense L x L mask.
    """
    valid = None if attention_mask is None else attention_mask.astype(mx.bool_)
    if valid is not None:
        # A row with no real token at all attends to its padding so it stays finite.
        empty = ~mx.any(valid, axis=1, keepdims=True)
        valid = valid | empty
    global_mask = None
    if valid is not None and not mx.all(valid).item():
        global_mask = valid[:, None, None, :]

    w = half_window
    block = max(2 * w, 16)
    if L <= 2 * block:
        pos = mx.arange(L)
        in_window = mx.abs(pos[:, None] - pos[None, :]) <= w
        local = in_window[None, None]
        if valid is not None:
            local = (local & valid[:, None, None, :]) | mx.eye(L, dtype=mx.bool_)[None, None]
        return AttentionMasks(global_mask, local, banded=False)

    nb = -(-L // block)
    keys_valid = mx.ones((B, L), dtype=mx.bool_) if valid is None else valid
    # Key j of block b is position b*C - w + j; pad so every block sees C + 2w keys.
    padded = mx.pad(keys_valid, [(0, 0), (w, (nb + 1) * block - L - w)], constant_values=False)
    padded = padded.reshape(B, nb + 1, block)
    keys = mx.concatenate([padded[:, :nb], padded[:, 1:, : 2 * w]], axis=2)  # [B, nb, C+2w]
    qi = mx.arange(block)[:, None]
    kj = mx.arange(block + 2 * w)[None, :]
    in_window = (kj - qi >= 0) & (kj - qi <= 2 * w)  # |(qi) - (kj - w)| <= w
    is_self = kj - qi == w
    local = (keys[:, :, None, :] & in_window) | is_self
    local = local.reshape(B * nb, 1, block, block + 2 * w)
    return AttentionMasks(global_mask, local, banded=True, block=block, half_window=w)


def banded_attention(q: mx.array, k: mx.array, v: mx.array, scale: float, masks: AttentionMasks) -> mx.array:
    """Sliding-window attention in blocks: O(L * (C + 2w)) work instead of O(L^2)."""
    B, H, L, D = q.shape
    C, w = masks.block, masks.half_window
    nb = -(-L // C)

    def blocks_of_queries(x):
        x = mx.pad(x, [(0, 0), (0, 0), (0, nb * C - L), (0, 0)])
        return x.reshape(B, H, nb, C, D).transpose(0, 2, 1, 3, 4).reshape(B * nb, H, C, D)

    def blocks_of_keys(x):
        x = mx.pad(x, [(0, 0), (0, 0), (w, (nb + 1) * C - L - w), (0, 0)])
        x = x.reshape(B, H, nb + 1, C, D)
        x = mx.concatenate([x[:, :, :nb], x[:, :, 1:, : 2 * w]], axis=3)  # [B, H, nb, C+2w, D]
        return x.transpose(0, 2, 1, 3, 4).reshape(B * nb, H, C + 2 * w, D)

    out = mx.fast.scaled_dot_product_attention(
        blocks_of_queries(q), blocks_of_keys(k), blocks_of_keys(v), scale=scale, mask=masks.local
    )
    out = out.reshape(B, nb, H, C, D).transpose(0, 2, 1, 3, 4).reshape(B, H, nb * C, D)
    return out[:, :, :L]


QUERY_CHUNK = 1024


def global_attention(
    q: mx.array, k: mx.array, v: mx.array, scale: float, mask: Optional[mx.array]
) -> mx.array:
    """Full attention, in chunks of queries on long sequences so that the score matrix held at
    once is [B, heads, 1024, L] rather than [B, heads, L, L] (3 GiB at 8,192 tokens) on backends
    that materialise it. Each chunk is exact: softmax runs over all keys."""
    L = q.shape[2]
    if L <= 2 * QUERY_CHUNK:
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=mask)
    chunks = []
    for start in range(0, L, QUERY_CHUNK):
        chunk = mx.fast.scaled_dot_product_attention(
            q[:, :, start : start + QUERY_CHUNK], k, v, scale=scale, mask=mask
        )
        chunks.append(mx.eval(chunk) or chunk)
    return mx.concatenate(chunks, axis=2)


class ModernBertModel(nn.Module):
    """The bare encoder: token ids -> last hidden states [B, L, H]."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embeddings = Embeddings(args)
        self.layers = [EncoderLayer(args, i) for i in range(args.num_hidden_layers)]
        self.final_norm = nn.LayerNorm(args.hidden_size, eps=args.norm_eps, bias=args.norm_bias)

    def __call__(self, input_ids: mx.array, attention_mask: Optional[mx.array] = None) -> mx.array:
        B, L = input_ids.shape
        masks = make_masks(attention_mask, B, L, self.args.half_window)
        h = self.embeddings(input_ids)
        for layer in self.layers:
            h = layer(h, masks)
        return self.final_norm(h)

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        """Accept bare-encoder keys or a task checkpoint's `model.*` keys (heads dropped)."""
        out = {}
        for key, value in weights.items():
            if key.startswith("model."):
                out[key[len("model.") :]] = value
            elif not key.startswith(HEAD_PREFIXES):
                out[key] = value
        return out


HEAD_PREFIXES = ("head.", "classifier.", "decoder.")


class PredictionHead(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.hidden_size, bias=args.classifier_bias)
        self.act = ACTIVATIONS[args.classifier_activation]
        self.norm = nn.LayerNorm(args.hidden_size, eps=args.norm_eps, bias=args.norm_bias)

    def __call__(self, x: mx.array) -> mx.array:
        return self.norm(self.act(self.dense(x)))


class _TaskModel(nn.Module):
    """Shared loading behaviour of the heads: encoder under `model.`, heads at the top."""

    head_keys: tuple[str, ...] = ()

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.model = ModernBertModel(args)
        self.head = PredictionHead(args)

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        out = {}
        for key, value in weights.items():
            if key.startswith(("head.", "model.")) or key.startswith(self.head_keys):
                out[key] = value
            elif key.startswith(HEAD_PREFIXES):
                continue  # another task's head: not part of this model
            else:
                out[f"model.{key}"] = value
        return out


class ModernBertForTokenClassification(_TaskModel):
    """Encoder -> head -> classifier (with bias): logits [B, L, num_labels]."""

    head_keys = ("classifier.",)

    def __init__(self, args: ModelArgs):
        super().__init__(args)
        self.drop = nn.Dropout(args.classifier_dropout)
        self.classifier = nn.Linear(args.hidden_size, args.num_labels, bias=True)

    def __call__(self, input_ids: mx.array, attention_mask: Optional[mx.array] = None) -> mx.array:
        return self.classifier(self.drop(self.head(self.model(input_ids, attention_mask))))


class ModernBertForMaskedLM(_TaskModel):
    """Encoder -> head -> decoder tied to the token embeddings, plus `decoder.bias`."""

    head_keys = ("decoder.",)

    def __init__(self, args: ModelArgs):
        super().__init__(args)
        if args.tie_word_embeddings:
            self.decoder = {"bias": mx.zeros((args.vocab_size,))} if args.decoder_bias else {}
        else:
            self.decoder = nn.Linear(args.hidden_size, args.vocab_size, bias=args.decoder_bias)

    def __call__(self, input_ids: mx.array, attention_mask: Optional[mx.array] = None) -> mx.array:
        h = self.head(self.model(input_ids, attention_mask))
        if isinstance(self.decoder, nn.Linear):
            return self.decoder(h)
        logits = self.model.embeddings.tok_embeddings.as_linear(h)
        return logits + self.decoder["bias"] if "bias" in self.decoder else logits

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        weights = super().sanitize(weights)
        if self.args.tie_word_embeddings:
            weights.pop("decoder.weight", None)  # a copy of the token embeddings
        return weights


ARCHITECTURES = {
    "ModernBertModel": ModernBertModel,
    "ModernBertForTokenClassification": ModernBertForTokenClassification,
    "ModernBertForMaskedLM": ModernBertForMaskedLM,
}
