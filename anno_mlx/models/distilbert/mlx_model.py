"""DistilBERT in MLX: the encoder and its token-classification and masked-LM heads.

A post-norm Transformer over word plus learned position embeddings, with no token types and
no pooler. The module tree mirrors the Hugging Face key names (`distilbert.embeddings...`,
`distilbert.transformer.layer.N...`), so `sanitize()` only adds or drops the `distilbert.`
prefix, drops other tasks' heads and the tied projector, and renames old LayerNorm keys.
"""

from __future__ import annotations

from typing import Optional

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ..activations import mlx_activation
from .config import MLM_KEYS, ModelArgs

ENCODER_PREFIX = "distilbert."
# Heads of every DistilBERT task, ours or not: none is part of the encoder.
HEAD_PREFIXES = ("classifier.", "pre_classifier.", "qa_outputs.", *MLM_KEYS)
POSITIONS_KEY = "embeddings.position_embeddings.weight"


def sinusoids(positions: int, dim: int) -> np.ndarray:
    """The fixed position table: sin on even features, cos on odd ones, wavelengths up to 10,000."""
    angles = np.arange(positions)[:, None] / np.power(10000.0, 2 * (np.arange(dim) // 2) / dim)[None, :]
    table = np.empty((positions, dim), dtype=np.float32)
    table[:, 0::2] = np.sin(angles[:, 0::2])
    table[:, 1::2] = np.cos(angles[:, 1::2])
    return table


class Embeddings(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.word_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.position_embeddings = nn.Embedding(args.max_position_embeddings, args.dim)
        if args.sinusoidal_pos_embds:  # where a fresh model starts, as in transformers
            self.position_embeddings.weight = mx.array(sinusoids(args.max_position_embeddings, args.dim))
        self.LayerNorm = nn.LayerNorm(args.dim, eps=args.norm_eps)
        self.dropout = nn.Dropout(args.dropout)

    def __call__(self, input_ids: mx.array) -> mx.array:
        positions = mx.arange(input_ids.shape[1])
        h = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(h))


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads = args.n_heads
        self.head_dim = args.head_dim
        self.scale = self.head_dim**-0.5
        self.q_lin = nn.Linear(args.dim, args.dim)
        self.k_lin = nn.Linear(args.dim, args.dim)
        self.v_lin = nn.Linear(args.dim, args.dim)
        self.out_lin = nn.Linear(args.dim, args.dim)
        self.dropout = nn.Dropout(args.attention_dropout)
        self.drops_weights = args.attention_dropout > 0

    def __call__(self, x: mx.array, mask: Optional[mx.array]) -> mx.array:
        B, L, _ = x.shape

        def heads(t: mx.array) -> mx.array:  # [B, L, dim] -> [B, heads, L, head_dim]
            return t.reshape(B, L, self.n_heads, self.head_dim).transpose(0, 2, 1, 3)

        q, k, v = heads(self.q_lin(x)), heads(self.k_lin(x)), heads(self.v_lin(x))
        if self.training and self.drops_weights:
            out = attention_with_dropout(q, k, v, self.scale, mask, self.dropout)
        else:
            out = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.scale, mask=mask)
        return self.out_lin(out.transpose(0, 2, 1, 3).reshape(B, L, -1))


def attention_with_dropout(
    q: mx.array, k: mx.array, v: mx.array, scale: float, mask: Optional[mx.array], dropout: nn.Dropout
) -> mx.array:
    """Attention whose weights go through `dropout`, for training: the fused kernel has none."""
    scores = (q * scale) @ k.transpose(0, 1, 3, 2)
    if mask is not None:
        scores = mx.where(mask, scores, mx.finfo(scores.dtype).min)
    return dropout(mx.softmax(scores, axis=-1, precise=True)) @ v


class FFN(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.lin1 = nn.Linear(args.dim, args.hidden_dim)
        self.lin2 = nn.Linear(args.hidden_dim, args.dim)
        self.act = mlx_activation(args.activation)
        self.dropout = nn.Dropout(args.dropout)

    def __call__(self, x: mx.array) -> mx.array:
        return self.dropout(self.lin2(self.act(self.lin1(x))))


class TransformerBlock(nn.Module):
    """Post-norm: each sub-layer's output is added to its input, then normalised."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.attention = MultiHeadSelfAttention(args)
        self.sa_layer_norm = nn.LayerNorm(args.dim, eps=args.norm_eps)
        self.ffn = FFN(args)
        self.output_layer_norm = nn.LayerNorm(args.dim, eps=args.norm_eps)

    def __call__(self, h: mx.array, mask: Optional[mx.array]) -> mx.array:
        h = self.sa_layer_norm(h + self.attention(h, mask))
        return self.output_layer_norm(h + self.ffn(h))


class Transformer(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.layer = [TransformerBlock(args) for _ in range(args.n_layers)]

    def __call__(self, h: mx.array, mask: Optional[mx.array]) -> mx.array:
        for block in self.layer:
            h = block(h, mask)
        return h


def key_mask(attention_mask: Optional[mx.array]) -> Optional[mx.array]:
    """Which keys each row may attend to, [B, 1, 1, L] (None when nothing is padded). A row with
    no real token attends to all of its padding, so that it stays finite."""
    if attention_mask is None:
        return None
    valid = attention_mask.astype(mx.bool_)
    valid = valid | ~mx.any(valid, axis=1, keepdims=True)
    return None if mx.all(valid).item() else valid[:, None, None, :]


def renamed(weights: dict[str, mx.array], encoder: "DistilBertModel", prefix: str) -> dict[str, mx.array]:
    """Keys in today's names: old `gamma`/`beta` LayerNorm keys renamed, `position_ids` buffers
    dropped, and, for sinusoidal position embeddings a checkpoint lacks, the encoder's own
    sinusoid table (what transformers starts them from). `prefix` is where the encoder's keys are."""
    out = {}
    for key, value in weights.items():
        if key.endswith("position_ids"):
            continue
        if key.endswith(".gamma"):
            key = key[: -len("gamma")] + "weight"
        elif key.endswith(".beta"):
            key = key[: -len("beta")] + "bias"
        out[key] = value
    positions = prefix + POSITIONS_KEY
    words = out.get(prefix + "embeddings.word_embeddings.weight")
    if encoder.args.sinusoidal_pos_embds and positions not in out and words is not None:
        out[positions] = encoder.embeddings.position_embeddings.weight.astype(words.dtype)
    return out


class DistilBertModel(nn.Module):
    """The bare encoder: token ids -> last hidden states [B, L, dim]."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embeddings = Embeddings(args)
        self.transformer = Transformer(args)

    def __call__(self, input_ids: mx.array, attention_mask: Optional[mx.array] = None) -> mx.array:
        return self.transformer(self.embeddings(input_ids), key_mask(attention_mask))

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        """Accept bare-encoder keys or a task checkpoint's `distilbert.*` keys (heads dropped)."""
        out = {
            key.removeprefix(ENCODER_PREFIX): value
            for key, value in weights.items()
            if not key.startswith(HEAD_PREFIXES)
        }
        return renamed(out, self, "")


class _TaskModel(nn.Module):
    """Shared loading behaviour of the heads: encoder under `distilbert.`, heads at the top."""

    head_keys: tuple[str, ...] = ()

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.distilbert = DistilBertModel(args)

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        out = {}
        for key, value in weights.items():
            if key.startswith((ENCODER_PREFIX, *self.head_keys)):
                out[key] = value
            elif key.startswith(HEAD_PREFIXES):
                continue  # another task's head: not part of this model
            else:
                out[ENCODER_PREFIX + key] = value
        return renamed(out, self.distilbert, ENCODER_PREFIX)


class DistilBertForTokenClassification(_TaskModel):
    """Encoder -> dropout -> classifier: logits [B, L, num_labels]."""

    head_keys = ("classifier.",)

    def __init__(self, args: ModelArgs):
        super().__init__(args)
        self.dropout = nn.Dropout(args.dropout)
        self.classifier = nn.Linear(args.dim, args.num_labels)

    def __call__(self, input_ids: mx.array, attention_mask: Optional[mx.array] = None) -> mx.array:
        return self.classifier(self.dropout(self.distilbert(input_ids, attention_mask)))


class DistilBertForMaskedLM(_TaskModel):
    """Encoder -> vocab_transform -> activation -> vocab_layer_norm -> vocab_projector, whose
    weight is the word embeddings (unless untied) and whose bias is its own."""

    head_keys = MLM_KEYS

    def __init__(self, args: ModelArgs):
        super().__init__(args)
        self.vocab_transform = nn.Linear(args.dim, args.dim)
        self.act = mlx_activation(args.activation)
        self.vocab_layer_norm = nn.LayerNorm(args.dim, eps=args.norm_eps)
        if args.tie_word_embeddings:
            self.vocab_projector = {"bias": mx.zeros((args.vocab_size,))}
        else:
            self.vocab_projector = nn.Linear(args.dim, args.vocab_size)

    def __call__(self, input_ids: mx.array, attention_mask: Optional[mx.array] = None) -> mx.array:
        h = self.distilbert(input_ids, attention_mask)
        h = self.vocab_layer_norm(self.act(self.vocab_transform(h)))
        if isinstance(self.vocab_projector, nn.Linear):
            return self.vocab_projector(h)
        return self.distilbert.embeddings.word_embeddings.as_linear(h) + self.vocab_projector["bias"]

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        weights = super().sanitize(weights)
        if self.args.tie_word_embeddings:
            weights.pop("vocab_projector.weight", None)  # a copy of the word embeddings
        return weights


ARCHITECTURES = {
    "DistilBertModel": DistilBertModel,
    "DistilBertForTokenClassification": DistilBertForTokenClassification,
    "DistilBertForMaskedLM": DistilBertForMaskedLM,
}
