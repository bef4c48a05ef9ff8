"""ModernBERT in MLX: the encoder and its token-classification and masked-LM heads.

The module tree mirrors the Hugging Face key names, so `sanitize()` only has to drop the
prefix of bare-encoder checkpoints and the tied decoder weight. The architecture, for a reader:
docs/architecture.md ("The model, for a reader").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import mlx.core as mx
import mlx.nn as nn

from ..activations import mlx_activation
from .config import LOCAL, ModelArgs


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
        if mask.rope is None:
            q = mx.fast.rope(q, self.head_dim, traditional=False, base=self.rope_base, scale=1.0, offset=0)
            k = mx.fast.rope(k, self.head_dim, traditional=False, base=self.rope_base, scale=1.0, offset=0)
        else:
            q, k = rotate(q, mask.rope[self.rope_base]), rotate(k, mask.rope[self.rope_base])
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
        self.act = mlx_activation(args.hidden_activation)
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
    """Boolean masks (True = may attend) shared by all layers of one forward pass, and the rotary
    tables of packed rows.

    No query row is ever fully masked: a padding query that would see no real key attends to
    itself, so softmax never sees an empty row and no NaN can leak into real tokens.
    """

    global_: Optional[mx.array]  # [B, 1, 1, L], [B, 1, L, L] (packed rows) or None when nothing is padded
    local: Optional[mx.array]  # [B, 1, L, L] (dense) or [B*nb, 1, C, C+2w] (banded)
    banded: bool
    block: int = 0
    half_window: int = 0
    positions: Optional[mx.array] = None  # packed rows: [B, L] within each sequence; None: 0..L-1
    rope: Optional[dict] = None  # packed rows: base -> (cos, sin) [B, 1, L, D/2] at `positions`


def make_masks(
    attention_mask: Optional[mx.array],
    B: int,
    L: int,
    half_window: int,
    sequence_ids: Optional[mx.array] = None,
) -> AttentionMasks:
    """Build the padding mask for global layers and the windowed mask for local layers.

    Sequences longer than two blocks use a banded layout for local layers: blocks of C queries
    attend to their C + 2w neighbouring keys only, instead of a dense L x L mask. With
    `sequence_ids` (packed rows, -1 for padding) a token also sees only keys of its own sequence,
    on both kinds of layer; every token sees itself, padding included.
    """
    if sequence_ids is not None:
        return packed_masks(attention_mask, sequence_ids, B, L, half_window)
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

    keys_valid = mx.ones((B, L), dtype=mx.bool_) if valid is None else valid
    keys, in_window, is_self = band_layout(keys_valid, block, w, False)
    local = (keys[:, :, None, :] & in_window) | is_self
    return AttentionMasks(global_mask, local.reshape(-1, 1, block, block + 2 * w), True, block, w)


def band_layout(keys: mx.array, block: int, w: int, fill) -> tuple[mx.array, mx.array, mx.array]:
    """Per-key values [B, L] laid out as each block of C queries sees its keys, [B, nb, C + 2w]
    (`fill` beyond the row), with the band [C, C + 2w] and where each query meets itself."""
    B, L = keys.shape
    nb = -(-L // block)
    # Key j of block b is position b*C - w + j; pad so every block sees C + 2w keys.
    padded = mx.pad(keys, [(0, 0), (w, (nb + 1) * block - L - w)], constant_values=fill)
    padded = padded.reshape(B, nb + 1, block)
    keys = mx.concatenate([padded[:, :nb], padded[:, 1:, : 2 * w]], axis=2)  # [B, nb, C+2w]
    qi = mx.arange(block)[:, None]
    kj = mx.arange(block + 2 * w)[None, :]
    in_window = (kj - qi >= 0) & (kj - qi <= 2 * w)  # |(qi) - (kj - w)| <= w
    return keys, in_window, kj - qi == w


def packed_masks(
    attention_mask: Optional[mx.array], sequence_ids: mx.array, B: int, L: int, half_window: int
) -> AttentionMasks:
    """`make_masks` for packed rows: block-diagonal global masks, band-and-same-sequence local
    masks, and rotary positions that restart at 0 with each sequence."""
    seq = sequence_ids.astype(mx.int32)
    if attention_mask is not None:
        seq = mx.where(attention_mask.astype(mx.bool_), seq, -1)
    same = seq[:, :, None] == seq[:, None, :]  # [B, L, L]; padding (-1) sees only padding
    positions = sequence_positions(seq)
    w = half_window
    block = max(2 * w, 16)
    if L <= 2 * block:
        pos = mx.arange(L)
        in_window = mx.abs(pos[:, None] - pos[None, :]) <= w
        return AttentionMasks(same[:, None], (same & in_window)[:, None], False, positions=positions)
    keys, in_window, is_self = band_layout(seq, block, w, -1)
    nb = keys.shape[1]
    queries = mx.pad(seq, [(0, 0), (0, nb * block - L)], constant_values=-1).reshape(B, nb, block)
    local = ((keys[:, :, None, :] == queries[:, :, :, None]) & in_window) | is_self
    local = local.reshape(-1, 1, block, block + 2 * w)
    return AttentionMasks(same[:, None], local, True, block, w, positions=positions)


def rope_table(positions: mx.array, dims: int, base: float) -> tuple[mx.array, mx.array]:
    """(cos, sin) [B, 1, L, dims/2] at each token's position, float32, with the frequencies
    computed as `mx.fast.rope` computes them (the same numbers on the CPU)."""
    half = dims // 2
    inv_freq = mx.exp(-mx.arange(half, dtype=mx.float32) * (math.log(base) / half))
    angles = mx.arange(positions.shape[1], dtype=mx.float32)[:, None] * inv_freq[None, :]
    angles = angles[positions][:, None]
    return mx.cos(angles), mx.sin(angles)


def rotate(x: mx.array, table: tuple[mx.array, mx.array]) -> mx.array:
    """Rotary embedding, rotate-half convention, at the positions `table` was made for."""
    cos, sin = table
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].astype(mx.float32), x[..., half:].astype(mx.float32)
    return mx.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


def sequence_positions(sequence_ids: mx.array) -> mx.array:
    """Each token's position within its own sequence [B, L]: sequences are runs of equal ids."""
    B, L = sequence_ids.shape
    index = mx.arange(L)
    starts = mx.concatenate(
        [mx.ones((B, 1), dtype=mx.bool_), sequence_ids[:, 1:] != sequence_ids[:, :-1]], axis=1
    )
    return index - mx.cummax(mx.where(starts, index, 0), axis=1)


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
    per_query = mask is not None and mask.shape[2] > 1  # packed rows: [B, 1, L, L]
    for start in range(0, L, QUERY_CHUNK):
        rows = mask[:, :, start : start + QUERY_CHUNK] if per_query else mask
        chunk = mx.fast.scaled_dot_product_attention(
            q[:, :, start : start + QUERY_CHUNK], k, v, scale=scale, mask=rows
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

    def __call__(
        self,
        input_ids: mx.array,
        attention_mask: Optional[mx.array] = None,
        sequence_ids: Optional[mx.array] = None,
    ) -> mx.array:
        """`sequence_ids` [B, L] packs several sequences into a row: the index of each token's
        sequence within its row (-1 for padding); each sequence is computed as if alone."""
        B, L = input_ids.shape
        masks = make_masks(attention_mask, B, L, self.args.half_window, sequence_ids)
        if masks.positions is not None:
            bases = {self.args.local_rope_theta, self.args.global_rope_theta}
            masks.rope = {base: rope_table(masks.positions, self.args.head_dim, base) for base in bases}
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
        self.act = mlx_activation(args.classifier_activation)
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

    def __call__(
        self,
        input_ids: mx.array,
        attention_mask: Optional[mx.array] = None,
        sequence_ids: Optional[mx.array] = None,
    ) -> mx.array:
        return self.classifier(self.drop(self.head(self.model(input_ids, attention_mask, sequence_ids))))


class ModernBertForMaskedLM(_TaskModel):
    """Encoder -> head -> decoder tied to the token embeddings, plus `decoder.bias`."""

    head_keys = ("decoder.",)

    def __init__(self, args: ModelArgs):
        super().__init__(args)
        if args.tie_word_embeddings:
            self.decoder = {"bias": mx.zeros((args.vocab_size,))} if args.decoder_bias else {}
        else:
            self.decoder = nn.Linear(args.hidden_size, args.vocab_size, bias=args.decoder_bias)

    def __call__(
        self,
        input_ids: mx.array,
        attention_mask: Optional[mx.array] = None,
        sequence_ids: Optional[mx.array] = None,
    ) -> mx.array:
        h = self.head(self.model(input_ids, attention_mask, sequence_ids))
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
