"""ModernBERT in PyTorch, mirroring `mlx_model.py` (same module names, same math) for CUDA and
CPU machines. Weights come from the MLX model that `checkpoint.load_folder` builds, so both
backends read every folder layout through one loader. Attention uses PyTorch's fused
`scaled_dot_product_attention`; local layers attend under a dense window mask up to two blocks
and in bands beyond, as in the MLX model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..activations import torch_activation
from ..torch_weights import load_mlx_weights
from .config import LOCAL, ModelArgs


@dataclass
class Context:
    """What every layer of one forward pass shares, computed once per pass: the rotary tables
    for each base, the global key mask, and the local mask (dense, or in bands)."""

    rope: dict  # base -> (cos, sin), [L, head_dim] or, for packed rows, [B, 1, L, head_dim]; float32
    global_mask: Optional[torch.Tensor]  # [B, 1, 1, L] or [B, 1, L, L] (packed) bool; None: no padding
    local_mask: torch.Tensor  # [B or 1, 1, L, L] (dense) or [B * nb, 1, C, C + 2w] (banded) bool
    banded: bool
    block: int
    half_window: int


def rope_tables(L: int, D: int, base: float, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary embedding tables, rotate-half convention, positions 0..L-1, in float32."""
    inv_freq = 1.0 / (base ** (torch.arange(0, D, 2, device=device, dtype=torch.float32) / D))
    angles = torch.arange(L, device=device, dtype=torch.float32)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], -1)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    cos, sin = table
    D = x.shape[-1]
    x32 = x.float()
    half = torch.cat([-x32[..., D // 2 :], x32[..., : D // 2]], -1)
    return (x32 * cos + half * sin).to(x.dtype)


def make_context(
    args: ModelArgs,
    valid: Optional[torch.Tensor],
    B: int,
    L: int,
    device,
    sequence_ids: Optional[torch.Tensor] = None,
) -> Context:
    """Token i attends locally to keys j with |i - j| <= w: under a dense L x L mask up to two
    blocks of C = max(2w, 16) tokens, beyond that in blocks of C queries against their C + 2w
    neighbouring keys; a padded query that sees no real key attends to itself. With
    `sequence_ids` (packed rows, -1 for padding) a token sees only keys of its own sequence on
    both kinds of layer, and rotary positions restart with each sequence."""
    w = args.half_window
    C = max(2 * w, 16)
    banded = L > 2 * C
    bases = {args.local_rope_theta, args.global_rope_theta}
    rope = {base: rope_tables(L, args.head_dim, base, device) for base in bases}
    seq = None
    if sequence_ids is not None:
        seq = sequence_ids if valid is None else sequence_ids.masked_fill(~valid, -1)
        positions = sequence_positions(seq)
        rope = {base: (cos[positions][:, None], sin[positions][:, None]) for base, (cos, sin) in rope.items()}
    if seq is None:
        global_mask = None if valid is None else valid[:, None, None, :]
    else:
        global_mask = (seq[:, :, None] == seq[:, None, :])[:, None]  # padding (-1) sees only padding
    if not banded:
        position = torch.arange(L, device=device)
        window = (position[:, None] - position[None, :]).abs() <= w
        if seq is not None:
            local_mask = global_mask & window
        elif valid is None:
            local_mask = window[None, None]
        else:
            local_mask = (window & valid[:, None, None, :]) | torch.eye(L, dtype=torch.bool, device=device)
        return Context(rope, global_mask, local_mask, banded=False, block=C, half_window=w)
    nb = -(-L // C)
    qi = torch.arange(C, device=device)[:, None]
    kj = torch.arange(C + 2 * w, device=device)[None, :]
    band = (kj - qi >= 0) & (kj - qi <= 2 * w)
    if seq is None:
        key_valid = torch.ones(B, L, dtype=torch.bool, device=device) if valid is None else valid
        allowed = band_layout(key_valid, C, w, False)[:, :, None, :]  # [B, nb, 1, C+2w]
    else:
        queries = F.pad(seq, (0, nb * C - L), value=-1).view(B, nb, C)
        allowed = band_layout(seq, C, w, -1)[:, :, None, :] == queries[:, :, :, None]
    local_mask = ((allowed & band) | (kj - qi == w)).reshape(B * nb, 1, C, C + 2 * w)
    return Context(rope, global_mask, local_mask, banded=True, block=C, half_window=w)


def band_layout(keys: torch.Tensor, C: int, w: int, fill) -> torch.Tensor:
    """Per-key values [B, L] as each block of C queries sees its keys: [B, nb, C + 2w], `fill`
    beyond the row."""
    B, L = keys.shape
    nb = -(-L // C)
    keys = F.pad(keys, (w, (nb + 1) * C - L - w), value=fill).view(B, nb + 1, C)
    return torch.cat([keys[:, :nb], keys[:, 1:, : 2 * w]], dim=2)


def sequence_positions(sequence_ids: torch.Tensor) -> torch.Tensor:
    """Each token's position within its own sequence [B, L]: sequences are runs of equal ids."""
    B, L = sequence_ids.shape
    index = torch.arange(L, device=sequence_ids.device).expand(B, L)
    starts = torch.ones_like(sequence_ids, dtype=torch.bool)
    starts[:, 1:] = sequence_ids[:, 1:] != sequence_ids[:, :-1]
    return index - torch.where(starts, index, 0).cummax(dim=1).values


class Attention(nn.Module):
    def __init__(self, args: ModelArgs, layer_type: str):
        super().__init__()
        self.num_heads, self.head_dim = args.num_attention_heads, args.head_dim
        self.is_local = layer_type == LOCAL
        self.rope_base = args.local_rope_theta if self.is_local else args.global_rope_theta
        self.Wqkv = nn.Linear(args.hidden_size, 3 * args.hidden_size, bias=args.attention_bias)
        self.Wo = nn.Linear(args.hidden_size, args.hidden_size, bias=args.attention_bias)
        self.out_drop = nn.Dropout(args.attention_dropout)

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        B, L, _ = x.shape
        q, k, v = self.Wqkv(x).view(B, L, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        table = ctx.rope[self.rope_base]
        q, k = rotate(q, table), rotate(k, table)
        if self.is_local and ctx.banded:
            out = banded_attention(q, k, v, ctx)
        elif self.is_local:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=ctx.local_mask)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=ctx.global_mask)
        return self.out_drop(self.Wo(out.transpose(1, 2).reshape(B, L, -1)))


def banded_attention(q, k, v, ctx: Context) -> torch.Tensor:
    """Each block of C queries against its C + 2w neighbouring keys, under the band mask. The
    blocks go into the batch dimension, so that attention stays 4-D for the fused kernels."""
    B, H, L, D = q.shape
    C, w = ctx.block, ctx.half_window
    nb = -(-L // C)

    def keys(x):  # [B, H, L, D] -> [B * nb, H, C + 2w, D]
        x = F.pad(x, (0, 0, w, (nb + 1) * C - L - w)).view(B, H, nb + 1, C, D)
        x = torch.cat([x[:, :, :nb], x[:, :, 1:, : 2 * w]], dim=3)
        return x.transpose(1, 2).reshape(B * nb, H, C + 2 * w, D)

    queries = F.pad(q, (0, 0, 0, nb * C - L)).view(B, H, nb, C, D).transpose(1, 2).reshape(B * nb, H, C, D)
    out = F.scaled_dot_product_attention(queries, keys(k), keys(v), attn_mask=ctx.local_mask)
    return out.view(B, nb, H, C, D).transpose(1, 2).reshape(B, H, nb * C, D)[:, :, :L]


class MLP(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.Wi = nn.Linear(args.hidden_size, 2 * args.intermediate_size, bias=args.mlp_bias)
        self.Wo = nn.Linear(args.intermediate_size, args.hidden_size, bias=args.mlp_bias)
        self.act = torch_activation(args.hidden_activation)
        self.drop = nn.Dropout(args.mlp_dropout)

    def forward(self, x):
        inputs, gate = self.Wi(x).chunk(2, dim=-1)
        return self.Wo(self.drop(self.act(inputs) * gate))


class EncoderLayer(nn.Module):
    def __init__(self, args: ModelArgs, index: int):
        super().__init__()
        self.attn_norm = (
            nn.LayerNorm(args.hidden_size, eps=args.norm_eps, bias=args.norm_bias) if index else nn.Identity()
        )
        self.attn = Attention(args, args.layer_types[index])
        self.mlp_norm = nn.LayerNorm(args.hidden_size, eps=args.norm_eps, bias=args.norm_bias)
        self.mlp = MLP(args)

    def forward(self, h, ctx: Context):
        h = h + self.attn(self.attn_norm(h), ctx)
        return h + self.mlp(self.mlp_norm(h))


class Embeddings(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.hidden_size)
        self.norm = nn.LayerNorm(args.hidden_size, eps=args.norm_eps, bias=args.norm_bias)
        self.drop = nn.Dropout(args.embedding_dropout)

    def forward(self, ids):
        return self.drop(self.norm(self.tok_embeddings(ids)))


class ModernBertModel(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embeddings = Embeddings(args)
        self.layers = nn.ModuleList([EncoderLayer(args, i) for i in range(args.num_hidden_layers)])
        self.final_norm = nn.LayerNorm(args.hidden_size, eps=args.norm_eps, bias=args.norm_bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        sequence_ids: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        valid = None
        if attention_mask is not None and not bool(attention_mask.all()):
            valid = attention_mask.bool()
            if sequence_ids is None:  # an all-padding row attends to its padding
                valid = valid | ~valid.any(dim=1, keepdim=True)
        ctx = make_context(self.args, valid, *input_ids.shape, input_ids.device, sequence_ids)
        h = self.embeddings(input_ids)
        for layer in self.layers:
            h = layer(h, ctx)
        return self.final_norm(h)


class PredictionHead(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.hidden_size, bias=args.classifier_bias)
        self.act = torch_activation(args.classifier_activation)
        self.norm = nn.LayerNorm(args.hidden_size, eps=args.norm_eps, bias=args.norm_bias)

    def forward(self, x):
        return self.norm(self.act(self.dense(x)))


class ModernBertForTokenClassification(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.model = ModernBertModel(args)
        self.head = PredictionHead(args)
        self.drop = nn.Dropout(args.classifier_dropout)
        self.classifier = nn.Linear(args.hidden_size, args.num_labels)

    def forward(self, input_ids, attention_mask=None, sequence_ids=None):
        return self.classifier(self.drop(self.head(self.model(input_ids, attention_mask, sequence_ids))))


class ModernBertForMaskedLM(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.model = ModernBertModel(args)
        self.head = PredictionHead(args)
        self.decoder = nn.Linear(args.hidden_size, args.vocab_size, bias=args.decoder_bias)
        if args.tie_word_embeddings:
            self.decoder.weight = self.model.embeddings.tok_embeddings.weight

    def forward(self, input_ids, attention_mask=None, sequence_ids=None):
        return self.decoder(self.head(self.model(input_ids, attention_mask, sequence_ids)))


ARCHITECTURES = {
    "ModernBertModel": ModernBertModel,
    "ModernBertForTokenClassification": ModernBertForTokenClassification,
    "ModernBertForMaskedLM": ModernBertForMaskedLM,
}


def from_mlx(mlx_model, dtype: torch.dtype, device: str) -> nn.Module:
    """The same model in PyTorch, with the weights of an MLX model (quantized ones dequantized)."""
    model = ARCHITECTURES[type(mlx_model).__name__](mlx_model.args)
    tied = isinstance(model, ModernBertForMaskedLM) and model.args.tie_word_embeddings
    decoder = {"decoder.weight": "model.embeddings.tok_embeddings.weight"} if tied else {}
    return load_mlx_weights(model, mlx_model, dtype, device, tied=decoder, may_miss=("decoder.bias",))
