"""RoBERTa in PyTorch, mirroring `mlx_model.py` (same module names, same math) on BERT's
PyTorch layers; weights come from the MLX model, as for every family."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..bert import torch_model as bert
from ..torch_weights import load_mlx_weights
from .config import ModelArgs


class Embeddings(bert.Embeddings):
    def __init__(self, args: ModelArgs):
        super().__init__(args)
        self.padding_idx = args.pad_token_id

    def position_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        real = (input_ids != self.padding_idx).long()
        return torch.cumsum(real, dim=1) * real + self.padding_idx


class RobertaModel(bert.BertModel):
    embeddings_class = Embeddings


class RobertaForTokenClassification(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.roberta = RobertaModel(args)
        self.dropout = nn.Dropout(args.classifier_dropout_rate)
        self.classifier = nn.Linear(args.hidden_size, args.num_labels)

    def forward(self, input_ids, attention_mask=None):
        return self.classifier(self.dropout(self.roberta(input_ids, attention_mask)))


class LMHead(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.hidden_size)
        self.layer_norm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)
        if args.tie_word_embeddings:
            self.bias = nn.Parameter(torch.zeros(args.vocab_size))
        else:
            self.decoder = nn.Linear(args.hidden_size, args.vocab_size)

    def forward(self, h: torch.Tensor, word_embeddings: nn.Embedding) -> torch.Tensor:
        h = self.layer_norm(F.gelu(self.dense(h)))
        if hasattr(self, "decoder"):
            return self.decoder(h)
        return F.linear(h, word_embeddings.weight, self.bias)


class RobertaForMaskedLM(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.roberta = RobertaModel(args)
        self.lm_head = LMHead(args)

    def forward(self, input_ids, attention_mask: Optional[torch.Tensor] = None):
        return self.lm_head(self.roberta(input_ids, attention_mask), self.roberta.embeddings.word_embeddings)


ARCHITECTURES = {
    "RobertaModel": RobertaModel,
    "RobertaForTokenClassification": RobertaForTokenClassification,
    "RobertaForMaskedLM": RobertaForMaskedLM,
}


def from_mlx(mlx_model, dtype: torch.dtype, device: str) -> nn.Module:
    """The same model in PyTorch, with the weights of an MLX model (quantized ones dequantized)."""
    return load_mlx_weights(ARCHITECTURES[type(mlx_model).__name__](mlx_model.args), mlx_model, dtype, device)
