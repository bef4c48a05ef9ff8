"""GLiNER span models in PyTorch, mirroring `mlx_model.py` (same module names, same math); the
encoders are their families' PyTorch mirrors and the LSTM is PyTorch's own over packed rows."""

from __future__ import annotations

import importlib
from typing import Optional

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .. import family
from ..torch_weights import load_mlx_weights
from .config import ModelArgs
from .mlx_model import SPAN_CHUNK


def base_encoder(args) -> nn.Module:
    module = family(args.model_type)
    torch_model = importlib.import_module(f"{module.__name__}.torch_model")
    return torch_model.ARCHITECTURES[module.HEADS["encoder"]](args)


class FFN(nn.Module):
    def __init__(self, dims: int, out: int):
        super().__init__()
        self.inner = nn.Linear(dims, 4 * out)
        self.outer = nn.Linear(4 * out, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(torch.relu(self.inner(x)))


class BiLSTM(nn.LSTM):
    def __init__(self, dims: int, layers: int):
        super().__init__(dims, dims // 2, num_layers=layers, bidirectional=True, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = super().forward(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]


class SpanMarker(nn.Module):
    def __init__(self, dims: int, max_width: int):
        super().__init__()
        self.max_width = max_width
        self.project_start = FFN(dims, dims)
        self.project_end = FFN(dims, dims)
        self.out_project = FFN(2 * dims, dims)

    def forward(self, words: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        start, end = self.project_start(words), self.project_end(words)
        B, W, D = words.shape
        K = self.max_width
        chunks = []
        for first in range(0, W, SPAN_CHUNK):
            s = torch.arange(first, min(W, first + SPAN_CHUNK), device=words.device)
            last = torch.clamp(s[:, None] + torch.arange(K, device=words.device)[None, :], max=W - 1)
            starts = start[:, s, None, :].expand(B, len(s), K, D)
            ends = end[:, last.reshape(-1)].reshape(B, len(s), K, D)
            span = self.out_project(torch.relu(torch.cat([starts, ends], dim=-1)))
            chunks.append(torch.einsum("bwkd,bcd->bwkc", span, labels))
        return torch.cat(chunks, dim=1)


class GLiNER(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        D = args.hidden_size
        self.encoder = base_encoder(args.encoder)
        if args.encoder.hidden_size != D:
            self.projection = nn.Linear(args.encoder.hidden_size, D)
        if args.bi_encoder:
            self.labels_encoder = base_encoder(args.labels_encoder)
            if args.labels_encoder.hidden_size != D:
                self.labels_projection = nn.Linear(args.labels_encoder.hidden_size, D)
        if args.uses_rnn:
            self.rnn = BiLSTM(D, args.num_rnn_layers)
        self.span_rep = SpanMarker(D, args.max_width)
        self.prompt_rep = FFN(D, D)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        word_index: torch.Tensor,
        lengths: torch.Tensor,
        label_index: Optional[torch.Tensor] = None,
        label_embeddings: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        h = self.encoder(input_ids, attention_mask)
        if hasattr(self, "projection"):
            h = self.projection(h)
        words = torch.gather(h, 1, word_index[..., None].expand(-1, -1, h.shape[-1]))
        if self.args.bi_encoder:
            labels = label_embeddings.to(h.dtype).expand(h.shape[0], *label_embeddings.shape)
        else:
            labels = h[:, label_index]
        if hasattr(self, "rnn"):
            words = self.rnn(words, lengths)
        return self.span_rep(words, self.prompt_rep(labels))

    def encode_labels(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.labels_encoder(input_ids, attention_mask)
        if hasattr(self, "labels_projection"):
            h = self.labels_projection(h)
        mask = attention_mask[..., None].to(h.dtype)
        return (h * mask).sum(dim=1) / torch.clamp(mask.sum(dim=1), min=1e-9)


ARCHITECTURES = {"GLiNER": GLiNER}


def from_mlx(mlx_model, dtype: torch.dtype, device: str) -> nn.Module:
    """The same model in PyTorch, with the weights of an MLX model (quantized ones dequantized)."""
    return load_mlx_weights(GLiNER(mlx_model.args), mlx_model, dtype, device)
