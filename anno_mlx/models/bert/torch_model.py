"""BERT in PyTorch, mirroring `mlx_model.py` (same module names, same math) for CUDA and CPU
machines. Weights come from the MLX model that `checkpoint.load_folder` builds, so both backends
read every folder layout through one loader. RoBERTa's mirror reuses these layers.
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
        self.word_embeddings = nn.Embedding(args.vocab_size, args.hidden_size)
        self.position_embeddings = nn.Embedding(args.max_position_embeddings, args.hidden_size)
        self.token_type_embeddings = nn.Embedding(args.type_vocab_size, args.hidden_size)
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)
        self.dropout = nn.Dropout(args.hidden_dropout_prob)

    def position_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        return torch.arange(input_ids.shape[1], device=input_ids.device)[None]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        h = self.word_embeddings(input_ids) + self.token_type_embeddings(torch.zeros_like(input_ids))
        h = h + self.position_embeddings(self.position_ids(input_ids))
        return self.dropout(self.LayerNorm(h))


class SelfAttention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.num_heads, self.head_dim = args.num_attention_heads, args.head_dim
        self.query = nn.Linear(args.hidden_size, args.hidden_size)
        self.key = nn.Linear(args.hidden_size, args.hidden_size)
        self.value = nn.Linear(args.hidden_size, args.hidden_size)
        self.dropout = nn.Dropout(args.attention_probs_dropout_prob)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        B, L, _ = x.shape
        q, k, v = (
            proj(x).view(B, L, self.num_heads, self.head_dim).transpose(1, 2)
            for proj in (self.query, self.key, self.value)
        )
        # The fused kernel drops attention weights, as the reference does.
        p = self.dropout.p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return out.transpose(1, 2).reshape(B, L, -1)


class SelfOutput(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.hidden_size)
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)
        self.dropout = nn.Dropout(args.hidden_dropout_prob)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.self = SelfAttention(args)
        self.output = SelfOutput(args)

    def forward(self, h: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        return self.output(self.self(h, mask), h)


class Intermediate(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.intermediate_size)
        self.act = torch_activation(args.hidden_act)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(h))


class Output(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.intermediate_size, args.hidden_size)
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)
        self.dropout = nn.Dropout(args.hidden_dropout_prob)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class Layer(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.attention = Attention(args)
        self.intermediate = Intermediate(args)
        self.output = Output(args)

    def forward(self, h: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        h = self.attention(h, mask)
        return self.output(self.intermediate(h), h)


class Encoder(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.layer = nn.ModuleList([Layer(args) for _ in range(args.num_hidden_layers)])

    def forward(self, h: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        for layer in self.layer:
            h = layer(h, mask)
        return h


def key_mask(attention_mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """As in the MLX model: boolean [B, 1, 1, L], None when nothing is padded, and a row of
    padding only attends to all of its padding."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    valid = attention_mask.bool()
    valid = valid | ~valid.any(dim=1, keepdim=True)
    return valid[:, None, None, :]


class BertModel(nn.Module):
    embeddings_class = Embeddings

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embeddings = self.embeddings_class(args)
        self.encoder = Encoder(args)

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.embeddings(input_ids)
        return self.encoder(h, key_mask(attention_mask))


class PredictionHeadTransform(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.hidden_size)
        self.act = torch_activation(args.hidden_act)
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.act(self.dense(h)))


class LMPredictionHead(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.transform = PredictionHeadTransform(args)
        if args.tie_word_embeddings:
            self.bias = nn.Parameter(torch.zeros(args.vocab_size))
        else:
            self.decoder = nn.Linear(args.hidden_size, args.vocab_size)

    def forward(self, h: torch.Tensor, word_embeddings: nn.Embedding) -> torch.Tensor:
        h = self.transform(h)
        if hasattr(self, "decoder"):
            return self.decoder(h)
        return F.linear(h, word_embeddings.weight, self.bias)


class MLMHead(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.predictions = LMPredictionHead(args)


class BertForTokenClassification(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.bert = BertModel(args)
        self.dropout = nn.Dropout(args.classifier_dropout_rate)
        self.classifier = nn.Linear(args.hidden_size, args.num_labels)

    def forward(self, input_ids, attention_mask=None):
        return self.classifier(self.dropout(self.bert(input_ids, attention_mask)))


class BertForMaskedLM(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.bert = BertModel(args)
        self.cls = MLMHead(args)

    def forward(self, input_ids, attention_mask=None):
        h = self.bert(input_ids, attention_mask)
        return self.cls.predictions(h, self.bert.embeddings.word_embeddings)


ARCHITECTURES = {
    "BertModel": BertModel,
    "BertForTokenClassification": BertForTokenClassification,
    "BertForMaskedLM": BertForMaskedLM,
}


def from_mlx(mlx_model, dtype: torch.dtype, device: str) -> nn.Module:
    """The same model in PyTorch, with the weights of an MLX model (quantized ones dequantized)."""
    return load_mlx_weights(ARCHITECTURES[type(mlx_model).__name__](mlx_model.args), mlx_model, dtype, device)
