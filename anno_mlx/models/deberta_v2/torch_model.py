"""DeBERTa-v2 in PyTorch, mirroring `mlx_model.py` (same module names, same math) for CUDA and
CPU machines. Weights come from the MLX model that `checkpoint.load_folder` builds, so both
backends read every folder layout through one loader; the relative positions come from the
same `positions.relative_index`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from ..activations import torch_activation
from ..torch_weights import load_mlx_weights
from .config import ModelArgs
from .positions import relative_index


class Embeddings(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.word_embeddings = nn.Embedding(args.vocab_size, args.embedding_size)
        self.position_embeddings = (
            nn.Embedding(args.max_position_embeddings, args.embedding_size)
            if args.position_biased_input
            else None
        )
        self.token_type_embeddings = (
            nn.Embedding(args.type_vocab_size, args.embedding_size) if args.type_vocab_size > 0 else None
        )
        self.embed_proj = (
            nn.Linear(args.embedding_size, args.hidden_size, bias=False)
            if args.embedding_size != args.hidden_size
            else None
        )
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)
        self.dropout = nn.Dropout(args.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor]) -> torch.Tensor:
        h = self.word_embeddings(input_ids)
        if self.position_embeddings is not None:
            h = h + self.position_embeddings(torch.arange(input_ids.shape[1], device=input_ids.device))
        if self.token_type_embeddings is not None:
            h = h + self.token_type_embeddings(torch.zeros_like(input_ids))
        if self.embed_proj is not None:
            h = self.embed_proj(h)
        h = self.LayerNorm(h)
        if attention_mask is not None:
            h = h * attention_mask[:, :, None].to(h.dtype)
        return self.dropout(h)


class DisentangledSelfAttention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.num_heads = args.num_attention_heads
        self.terms = tuple(t for t in ("c2p", "p2c") if t in args.pos_att_type)
        self.scale = (args.head_dim * args.scale_factor) ** -0.5
        self.relative = args.relative_attention
        self.share_att_key = args.share_att_key
        self.query_proj = nn.Linear(args.hidden_size, args.hidden_size)
        self.key_proj = nn.Linear(args.hidden_size, args.hidden_size)
        self.value_proj = nn.Linear(args.hidden_size, args.hidden_size)
        if self.relative and not self.share_att_key:
            if "c2p" in self.terms:
                self.pos_key_proj = nn.Linear(args.hidden_size, args.hidden_size)
            if "p2c" in self.terms:
                self.pos_query_proj = nn.Linear(args.hidden_size, args.hidden_size)
        self.pos_dropout = nn.Dropout(args.hidden_dropout_prob)
        self.dropout = nn.Dropout(args.attention_probs_dropout_prob)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, hidden] -> [B, heads, L, head_dim]"""
        B, L, _ = x.shape
        return x.view(B, L, self.num_heads, -1).transpose(1, 2)

    def forward(self, x, mask, rel_embeddings, index):
        B, L, _ = x.shape
        q, k, v = self.heads(self.query_proj(x)), self.heads(self.key_proj(x)), self.heads(self.value_proj(x))
        scores = (q @ k.transpose(-1, -2)) * self.scale
        if self.relative:
            scores = scores + self.position_scores(q, k, self.pos_dropout(rel_embeddings), index)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        probs = self.dropout(torch.softmax(scores.float(), dim=-1).to(v.dtype))
        return (probs @ v).transpose(1, 2).reshape(B, L, -1)

    def position_scores(self, q, k, rel, index):
        """c2p[i, j] = q_i . Pk[index[i, j]] and p2c[i, j] = k_j . Pq[index[i, j]], scaled."""
        B, H, L, _ = q.shape
        rel = rel[None]  # [1, 2 * span, hidden]
        scores = torch.zeros((1, 1, L, L), dtype=q.dtype, device=q.device)
        if "c2p" in self.terms:
            pos_key = self.heads(self.key_proj(rel) if self.share_att_key else self.pos_key_proj(rel))
            by_position = q @ pos_key.transpose(-1, -2)  # [B, heads, query, 2 * span]
            scores = scores + torch.gather(by_position, -1, index.expand(B, H, L, L))
        if "p2c" in self.terms:
            pos_query = self.heads(self.query_proj(rel) if self.share_att_key else self.pos_query_proj(rel))
            by_position = k @ pos_query.transpose(-1, -2)  # [B, heads, key, 2 * span]
            scores = scores + torch.gather(by_position, -1, index.T.expand(B, H, L, L)).transpose(-1, -2)
        return scores * self.scale


class SelfOutput(nn.Module):
    def __init__(self, args: ModelArgs, width: int):
        super().__init__()
        self.dense = nn.Linear(width, args.hidden_size)
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)
        self.dropout = nn.Dropout(args.hidden_dropout_prob)

    def forward(self, x, residual):
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.self = DisentangledSelfAttention(args)
        self.output = SelfOutput(args, args.hidden_size)

    def forward(self, h, mask, rel_embeddings, index):
        return self.output(self.self(h, mask, rel_embeddings, index), h)


class Intermediate(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.intermediate_size)
        self.act = torch_activation(args.hidden_act)

    def forward(self, x):
        return self.act(self.dense(x))


class Layer(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.attention = Attention(args)
        self.intermediate = Intermediate(args)
        self.output = SelfOutput(args, args.intermediate_size)

    def forward(self, h, mask, rel_embeddings, index):
        h = self.attention(h, mask, rel_embeddings, index)
        return self.output(self.intermediate(h), h)


class Encoder(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.layer = nn.ModuleList([Layer(args) for _ in range(args.num_hidden_layers)])
        self.rel_embeddings = (
            nn.Embedding(2 * args.attention_span, args.hidden_size) if args.relative_attention else None
        )
        self.LayerNorm = (
            nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps) if args.rel_layer_norm else None
        )

    def forward(self, h, mask):
        rel_embeddings = index = None
        if self.rel_embeddings is not None:
            rel_embeddings = self.rel_embeddings.weight
            if self.LayerNorm is not None:
                rel_embeddings = self.LayerNorm(rel_embeddings)
            index = torch.from_numpy(relative_index(h.shape[1], self.args).astype(np.int64)).to(h.device)
        for layer in self.layer:
            h = layer(h, mask, rel_embeddings, index)
        return h


def key_mask(attention_mask: Optional[torch.Tensor], B: int, L: int, device) -> torch.Tensor:
    """[B, 1, 1, L] bool; a row with no real token attends to all of its padding (no NaN)."""
    if attention_mask is None:
        return torch.ones((B, 1, 1, L), dtype=torch.bool, device=device)
    valid = attention_mask.bool()
    valid = valid | ~valid.any(dim=1, keepdim=True)
    return valid[:, None, None, :]


class DebertaV2Model(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embeddings = Embeddings(args)
        self.encoder = Encoder(args)

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, L = input_ids.shape
        h = self.embeddings(input_ids, attention_mask)
        return self.encoder(h, key_mask(attention_mask, B, L, input_ids.device))


class DebertaV2ForTokenClassification(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.deberta = DebertaV2Model(args)
        self.dropout = nn.Dropout(args.hidden_dropout_prob)
        self.classifier = nn.Linear(args.hidden_size, args.num_labels)

    def forward(self, input_ids, attention_mask=None):
        return self.classifier(self.dropout(self.deberta(input_ids, attention_mask)))


class Transform(nn.Module):
    def __init__(self, args: ModelArgs, width: int):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, width)
        self.act = torch_activation(args.hidden_act)
        self.LayerNorm = nn.LayerNorm(width, eps=args.layer_norm_eps)

    def forward(self, x):
        return self.LayerNorm(self.act(self.dense(x)))


class LegacyPredictions(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.transform = Transform(args, args.embedding_size)
        if args.tie_word_embeddings:
            self.bias = nn.Parameter(torch.zeros(args.vocab_size))
            self.decoder = None
        else:
            self.decoder = nn.Linear(args.embedding_size, args.vocab_size)

    def forward(self, h, word_embeddings: nn.Embedding):
        h = self.transform(h)
        if self.decoder is not None:
            return self.decoder(h)
        return h @ word_embeddings.weight.T + self.bias


class LegacyMLMHead(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.predictions = LegacyPredictions(args)

    def forward(self, h, word_embeddings):
        return self.predictions(h, word_embeddings)


class LMHead(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.hidden_size)
        self.act = torch_activation(args.hidden_act)
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(args.vocab_size))

    def forward(self, h, word_embeddings: nn.Embedding):
        h = self.LayerNorm(self.act(self.dense(h)))
        return h @ word_embeddings.weight.T + self.bias


class MLMHead(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.lm_head = LMHead(args)

    def forward(self, h, word_embeddings):
        return self.lm_head(h, word_embeddings)


class DebertaV2ForMaskedLM(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.deberta = DebertaV2Model(args)
        if args.legacy:
            self.cls = LegacyMLMHead(args)
        else:
            self.lm_predictions = MLMHead(args)

    def forward(self, input_ids, attention_mask=None):
        h = self.deberta(input_ids, attention_mask)
        head = self.cls if self.args.legacy else self.lm_predictions
        return head(h, self.deberta.embeddings.word_embeddings)


ARCHITECTURES = {
    "DebertaV2Model": DebertaV2Model,
    "DebertaV2ForTokenClassification": DebertaV2ForTokenClassification,
    "DebertaV2ForMaskedLM": DebertaV2ForMaskedLM,
}


def from_mlx(mlx_model, dtype: torch.dtype, device: str) -> nn.Module:
    """The same model in PyTorch, with the weights of an MLX model (quantized ones dequantized)."""
    return load_mlx_weights(ARCHITECTURES[type(mlx_model).__name__](mlx_model.args), mlx_model, dtype, device)
