"""DistilBERT in PyTorch, mirroring `mlx_model.py` (same module names, same math) for CUDA and
CPU machines. Weights come from the MLX model that `checkpoint.load_folder` builds, so both
backends read every folder layout through one loader.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..activations import torch_activation
from ..torch_weights import load_mlx_weights
from .config import ModelArgs


class Embeddings(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.word_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.position_embeddings = nn.Embedding(args.max_position_embeddings, args.dim)
        self.LayerNorm = nn.LayerNorm(args.dim, eps=args.norm_eps)
        self.dropout = nn.Dropout(args.dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        h = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(h))


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads = args.n_heads
        self.head_dim = args.head_dim
        self.q_lin = nn.Linear(args.dim, args.dim)
        self.k_lin = nn.Linear(args.dim, args.dim)
        self.v_lin = nn.Linear(args.dim, args.dim)
        self.out_lin = nn.Linear(args.dim, args.dim)
        self.dropout = nn.Dropout(args.attention_dropout)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        B, L, _ = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(B, L, self.n_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.q_lin(x)), heads(self.k_lin(x)), heads(self.v_lin(x))
        p = self.dropout.p if self.training else 0.0  # dropout on the attention weights
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.out_lin(out.transpose(1, 2).reshape(B, L, -1))


class FFN(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.lin1 = nn.Linear(args.dim, args.hidden_dim)
        self.lin2 = nn.Linear(args.hidden_dim, args.dim)
        self.act = torch_activation(args.activation)
        self.dropout = nn.Dropout(args.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.lin2(self.act(self.lin1(x))))


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.attention = MultiHeadSelfAttention(args)
        self.sa_layer_norm = nn.LayerNorm(args.dim, eps=args.norm_eps)
        self.ffn = FFN(args)
        self.output_layer_norm = nn.LayerNorm(args.dim, eps=args.norm_eps)

    def forward(self, h: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        h = self.sa_layer_norm(h + self.attention(h, mask))
        return self.output_layer_norm(h + self.ffn(h))


class Transformer(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.layer = nn.ModuleList([TransformerBlock(args) for _ in range(args.n_layers)])

    def forward(self, h: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        for block in self.layer:
            h = block(h, mask)
        return h


def key_mask(attention_mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """[B, 1, 1, L] bool keys each row may attend to (None: nothing padded); a row with no real
    token attends to all of its padding."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    valid = attention_mask.bool()
    valid = valid | ~valid.any(dim=1, keepdim=True)
    return valid[:, None, None, :]


class DistilBertModel(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embeddings = Embeddings(args)
        self.transformer = Transformer(args)

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.transformer(self.embeddings(input_ids), key_mask(attention_mask))


class DistilBertForTokenClassification(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.distilbert = DistilBertModel(args)
        self.dropout = nn.Dropout(args.dropout)
        self.classifier = nn.Linear(args.dim, args.num_labels)

    def forward(self, input_ids, attention_mask=None):
        return self.classifier(self.dropout(self.distilbert(input_ids, attention_mask)))


class DistilBertForMaskedLM(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.distilbert = DistilBertModel(args)
        self.vocab_transform = nn.Linear(args.dim, args.dim)
        self.act = torch_activation(args.activation)
        self.vocab_layer_norm = nn.LayerNorm(args.dim, eps=args.norm_eps)
        self.vocab_projector = nn.Linear(args.dim, args.vocab_size)
        if args.tie_word_embeddings:
            self.vocab_projector.weight = self.distilbert.embeddings.word_embeddings.weight

    def forward(self, input_ids, attention_mask=None):
        h = self.distilbert(input_ids, attention_mask)
        return self.vocab_projector(self.vocab_layer_norm(self.act(self.vocab_transform(h))))


ARCHITECTURES = {
    "DistilBertModel": DistilBertModel,
    "DistilBertForTokenClassification": DistilBertForTokenClassification,
    "DistilBertForMaskedLM": DistilBertForMaskedLM,
}


def from_mlx(mlx_model, dtype: torch.dtype, device: str) -> nn.Module:
    """The same model in PyTorch, with the weights of an MLX model (quantized ones dequantized)."""
    model = ARCHITECTURES[type(mlx_model).__name__](mlx_model.args)
    tied = isinstance(model, DistilBertForMaskedLM) and model.args.tie_word_embeddings
    projector = {"vocab_projector.weight": "distilbert.embeddings.word_embeddings.weight"} if tied else {}
    return load_mlx_weights(model, mlx_model, dtype, device, tied=projector)
