"""GLiNER span models in MLX: any label typed at run time, scored against every span of words.

    H       = encoder(ids)                      (projected to D when the encoder is wider/narrower)
    words   = H at each word's first token      [B, W, D] -> BiLSTM (uni-encoders)
    labels  = H at each label's <<ENT>> token   [B, C, D] (uni-encoder: the labels are a prompt)
            | mean of the label encoder's tokens  [C, D]  (bi-encoder: labels encoded on their own)
    span    = out(relu([start(words[s]); end(words[s + k])]))   for k < K   [B, W, K, D]
    logits  = span . prompt(labels)             [B, W, K, C];  sigmoid -> probability

The inputs' positions (word starts, <<ENT>> tokens) are computed by the pipeline (`zeroshot.py`).
"""

from __future__ import annotations

from typing import Optional

import mlx.core as mx
import mlx.nn as nn

from .. import architectures, family
from .config import LABEL_PREFIX, TEXT_PREFIX, ModelArgs

SPAN_CHUNK = 1024  # words whose spans are scored at once: bounds memory on long windows


def base_encoder(args) -> nn.Module:
    """The bare encoder of the family `args` belongs to."""
    module = family(args.model_type)
    return architectures(module)[module.HEADS["encoder"]](args)


class FFN(nn.Module):
    """GLiNER's projection block: Linear(n, 4m) -> ReLU -> Linear(4m, m)."""

    def __init__(self, dims: int, out: int):
        super().__init__()
        self.inner = nn.Linear(dims, 4 * out)
        self.outer = nn.Linear(4 * out, out)

    def __call__(self, x: mx.array) -> mx.array:
        return self.outer(nn.relu(self.inner(x)))


class BiLSTM(nn.Module):
    """A bidirectional LSTM over each row's first `lengths[b]` words, PyTorch's gate order
    (input, forget, cell, output) and parameter names; outputs past a row's length are zero."""

    def __init__(self, dims: int, layers: int):
        super().__init__()
        self.layers = layers
        hidden = dims // 2
        for layer in range(layers):
            for suffix in ("", "_reverse"):
                setattr(self, f"weight_ih_l{layer}{suffix}", mx.zeros((4 * hidden, dims)))
                setattr(self, f"weight_hh_l{layer}{suffix}", mx.zeros((4 * hidden, hidden)))
                setattr(self, f"bias_ih_l{layer}{suffix}", mx.zeros((4 * hidden,)))
                setattr(self, f"bias_hh_l{layer}{suffix}", mx.zeros((4 * hidden,)))

    def __call__(self, x: mx.array, lengths: mx.array) -> mx.array:
        valid = (mx.arange(x.shape[1])[None, :] < lengths[:, None])[..., None]
        for layer in range(self.layers):
            forward = self.direction(x, valid, f"l{layer}", reverse=False)
            backward = self.direction(x, valid, f"l{layer}_reverse", reverse=True)
            x = mx.where(valid, mx.concatenate([forward, backward], axis=-1), 0.0)
        return x

    def direction(self, x: mx.array, valid: mx.array, name: str, reverse: bool) -> mx.array:
        w_hh = getattr(self, f"weight_hh_{name}")
        gates_x = x @ getattr(self, f"weight_ih_{name}").T + getattr(self, f"bias_ih_{name}")
        gates_x = gates_x + getattr(self, f"bias_hh_{name}")
        B, W = x.shape[:2]
        h = c = mx.zeros((B, w_hh.shape[1]), dtype=x.dtype)
        out = [None] * W
        for t in reversed(range(W)) if reverse else range(W):
            i, f, g, o = mx.split(gates_x[:, t] + h @ w_hh.T, 4, axis=-1)
            c_next = mx.sigmoid(f) * c + mx.sigmoid(i) * mx.tanh(g)
            h_next = mx.sigmoid(o) * mx.tanh(c_next)
            if reverse:  # the backward pass starts at each row's last word, from a zero state
                c, h = mx.where(valid[:, t], c_next, 0.0), mx.where(valid[:, t], h_next, 0.0)
            else:
                c, h = c_next, h_next
            out[t] = h
        return mx.stack(out, axis=1)


class SpanMarker(nn.Module):
    """markerV0: a span is its first word's start vector and its last word's end vector."""

    def __init__(self, dims: int, max_width: int):
        super().__init__()
        self.max_width = max_width
        self.project_start = FFN(dims, dims)
        self.project_end = FFN(dims, dims)
        self.out_project = FFN(2 * dims, dims)

    def __call__(self, words: mx.array, labels: mx.array) -> mx.array:
        """Logits [B, W, K, C] of every span (start s, width k+1) for every label; spans that
        run past a row's words read its last word and are ignored by the caller."""
        start, end = self.project_start(words), self.project_end(words)
        B, W, D = words.shape
        K = self.max_width
        chunks = []
        for first in range(0, W, SPAN_CHUNK):
            s = mx.arange(first, min(W, first + SPAN_CHUNK))
            last = mx.minimum(s[:, None] + mx.arange(K)[None, :], W - 1)  # [w, K]
            starts = mx.broadcast_to(start[:, s, None, :], (B, len(s), K, D))
            ends = end[:, last.reshape(-1)].reshape(B, len(s), K, D)
            span = self.out_project(nn.relu(mx.concatenate([starts, ends], axis=-1)))
            chunks.append(mx.einsum("bwkd,bcd->bwkc", span, labels))
        return mx.concatenate(chunks, axis=1)


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

    def __call__(
        self,
        input_ids: mx.array,
        attention_mask: mx.array,
        word_index: mx.array,
        lengths: mx.array,
        label_index: Optional[mx.array] = None,
        label_embeddings: Optional[mx.array] = None,
    ) -> mx.array:
        """Span logits [B, W, K, C]. `word_index` [B, W]: each word's first token (any index
        past a row's `lengths`); uni-encoders take `label_index` [C] (each label's vector's
        token in the prompt every row starts with), bi-encoders `label_embeddings` [C, D] from `encode_labels`."""
        h = self.encoder(input_ids, attention_mask)
        if "projection" in self:
            h = self.projection(h)
        words = mx.take_along_axis(h, word_index[..., None], axis=1)
        if self.args.bi_encoder:
            labels = mx.broadcast_to(label_embeddings.astype(h.dtype), (h.shape[0], *label_embeddings.shape))
        else:
            labels = h[:, label_index]
        if "rnn" in self:
            words = self.rnn(words, lengths)
        return self.span_rep(words, self.prompt_rep(labels))

    def encode_labels(self, input_ids: mx.array, attention_mask: mx.array) -> mx.array:
        """A bi-encoder's label vectors [C, D]: the mean of each label's projected tokens,
        special tokens included. They depend on the labels only, so callers keep them."""
        h = self.labels_encoder(input_ids, attention_mask)
        if "labels_projection" in self:
            h = self.labels_projection(h)
        mask = attention_mask[..., None].astype(h.dtype)
        return (h * mask).sum(axis=1) / mx.maximum(mask.sum(axis=1), 1e-9)

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        """The `gliner` package's keys -> ours; the encoders' through their families'
        `sanitize`. A bi-encoder's LSTM (never run) and a uni-encoder's fuser (never called)
        are dropped."""
        weights = {k.removeprefix("_orig_mod."): v for k, v in weights.items()}
        if not any(k.startswith(TEXT_PREFIX) for k in weights):
            return weights  # a converted folder: our names already
        out = {}
        for prefix, name in ((TEXT_PREFIX, "encoder"), (LABEL_PREFIX, "labels_encoder")):
            part = {k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)}
            if part and name in self:
                out.update({f"{name}.{k}": v for k, v in self[name].sanitize(part).items()})
        renames = {
            "token_rep_layer.projection.": "projection.",
            "token_rep_layer.labels_projection.": "labels_projection.",
            "span_rep_layer.span_rep_layer.": "span_rep.",
            "prompt_rep_layer.": "prompt_rep.",
            "rnn.lstm.": "rnn.",
        }
        for key, value in weights.items():
            for old, new in renames.items():
                if key.startswith(old):
                    if new == "rnn." and not self.args.uses_rnn:
                        break
                    key = new + key[len(old) :]
                    out[key.replace(".0.", ".inner.").replace(".3.", ".outer.")] = value
                    break
        return out


ARCHITECTURES = {"GLiNER": GLiNER}
