"""BERT in MLX: the encoder and its token-classification and masked-LM heads.

The module tree mirrors the Hugging Face key names (`bert.encoder.layer.N.attention.self.query`,
`cls.predictions.transform.dense`, ...), so `sanitize()` only adds or drops the `bert.` prefix
and drops what we never run (the pooler, another task's head, the tied decoder). The layers
are post-norm: LayerNorm(x + sublayer(x)). RoBERTa reuses everything here but the embeddings'
positions and the heads' key names.
"""

from __future__ import annotations

import re
from typing import Optional

import mlx.core as mx
import mlx.nn as nn

from ..activations import mlx_activation
from .config import ModelArgs


class Embeddings(nn.Module):
    """Word + token type (always type 0: we never pass sentence pairs) + position, then
    LayerNorm."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.word_embeddings = nn.Embedding(args.vocab_size, args.hidden_size)
        self.position_embeddings = nn.Embedding(args.max_position_embeddings, args.hidden_size)
        self.token_type_embeddings = nn.Embedding(args.type_vocab_size, args.hidden_size)
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)
        self.dropout = nn.Dropout(args.hidden_dropout_prob)

    def position_ids(self, input_ids: mx.array) -> mx.array:
        """Absolute positions 0..L-1, the same for every row."""
        return mx.arange(input_ids.shape[1])[None]

    def __call__(self, input_ids: mx.array) -> mx.array:
        h = self.word_embeddings(input_ids) + self.token_type_embeddings(mx.zeros_like(input_ids))
        h = h + self.position_embeddings(self.position_ids(input_ids))
        return self.dropout(self.LayerNorm(h))


class SelfAttention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.num_heads = args.num_attention_heads
        self.head_dim = args.head_dim
        self.scale = self.head_dim**-0.5
        self.query = nn.Linear(args.hidden_size, args.hidden_size)
        self.key = nn.Linear(args.hidden_size, args.hidden_size)
        self.value = nn.Linear(args.hidden_size, args.hidden_size)
        self.dropout_rate = args.attention_probs_dropout_prob
        self.dropout = nn.Dropout(args.attention_probs_dropout_prob)

    def __call__(self, x: mx.array, mask: Optional[mx.array]) -> mx.array:
        B, L, _ = x.shape
        q, k, v = (
            proj(x).reshape(B, L, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)
            for proj in (self.query, self.key, self.value)
        )
        if self.training and self.dropout_rate > 0:
            out = attention_with_dropout(q, k, v, self.scale, mask, self.dropout)
        else:
            out = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.scale, mask=mask)
        return out.transpose(0, 2, 1, 3).reshape(B, L, -1)


def attention_with_dropout(
    q: mx.array, k: mx.array, v: mx.array, scale: float, mask: Optional[mx.array], dropout: nn.Dropout
) -> mx.array:
    """Attention written out, for training: the reference drops attention weights, which the
    fused kernel cannot."""
    scores = (q * scale) @ k.transpose(0, 1, 3, 2)
    if mask is not None:
        scores = mx.where(mask, scores, mx.finfo(scores.dtype).min)
    return dropout(mx.softmax(scores, axis=-1, precise=True)) @ v


class SelfOutput(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.hidden_size)
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)
        self.dropout = nn.Dropout(args.hidden_dropout_prob)

    def __call__(self, h: mx.array, residual: mx.array) -> mx.array:
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.self = SelfAttention(args)
        self.output = SelfOutput(args)

    def __call__(self, h: mx.array, mask: Optional[mx.array]) -> mx.array:
        return self.output(self.self(h, mask), h)


class Intermediate(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.intermediate_size)
        self.act = mlx_activation(args.hidden_act)

    def __call__(self, h: mx.array) -> mx.array:
        return self.act(self.dense(h))


class Output(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.intermediate_size, args.hidden_size)
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)
        self.dropout = nn.Dropout(args.hidden_dropout_prob)

    def __call__(self, h: mx.array, residual: mx.array) -> mx.array:
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class Layer(nn.Module):
    """Post-norm: h = LN(h + attention(h)), then h = LN(h + MLP(h))."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.attention = Attention(args)
        self.intermediate = Intermediate(args)
        self.output = Output(args)

    def __call__(self, h: mx.array, mask: Optional[mx.array]) -> mx.array:
        h = self.attention(h, mask)
        return self.output(self.intermediate(h), h)


class Encoder(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.layer = [Layer(args) for _ in range(args.num_hidden_layers)]

    def __call__(self, h: mx.array, mask: Optional[mx.array]) -> mx.array:
        for layer in self.layer:
            h = layer(h, mask)
        return h


def key_mask(attention_mask: Optional[mx.array]) -> Optional[mx.array]:
    """The boolean key mask [B, 1, 1, L] (True = may attend), None when nothing is padded. A
    row of padding only attends to all of its padding, so that it stays finite."""
    if attention_mask is None:
        return None
    valid = attention_mask.astype(mx.bool_)
    if mx.all(valid).item():
        return None
    valid = valid | ~mx.any(valid, axis=1, keepdims=True)
    return valid[:, None, None, :]


# Old checkpoints name LayerNorm parameters gamma and beta.
LEGACY_NORM = re.compile(r"\.(gamma|beta)$")
BUFFERS = ("position_ids", "token_type_ids")  # index buffers some checkpoints saved


def sanitize_keys(
    weights: dict[str, mx.array],
    prefix: str,
    bare: bool = False,
    own: tuple[str, ...] = (),
    others: tuple[str, ...] = (),
) -> dict[str, mx.array]:
    """Checkpoint keys as a model of this family names them. The encoder's keys go under
    `prefix` (e.g. "bert."), or without it when `bare` (a bare encoder, whose checkpoints have
    no prefix); keys starting with `own` (this head's) stay as they are; `others` (other
    heads'), the pooler and index buffers are dropped; LayerNorm gamma/beta become weight/bias."""
    out = {}
    for key, value in weights.items():
        key = LEGACY_NORM.sub(lambda m: ".weight" if m.group(1) == "gamma" else ".bias", key)
        if key.rsplit(".", 1)[-1] in BUFFERS:
            continue
        if own and key.startswith(own):
            out[key] = value
        elif not key.startswith(others):
            inner = key.removeprefix(prefix)
            if not inner.startswith("pooler."):
                out[inner if bare else prefix + inner] = value
    return out


class BertModel(nn.Module):
    """The bare encoder: token ids -> last hidden states [B, L, H] (no pooler)."""

    embeddings_class = Embeddings
    prefix = "bert."  # the encoder's keys in task checkpoints
    head_prefixes: tuple[str, ...] = ("cls.", "classifier.")

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embeddings = self.embeddings_class(args)
        self.encoder = Encoder(args)

    def __call__(self, input_ids: mx.array, attention_mask: Optional[mx.array] = None) -> mx.array:
        h = self.embeddings(input_ids)
        return self.encoder(h, key_mask(attention_mask))

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        """Accept bare-encoder keys or a task checkpoint's (its prefix and heads dropped)."""
        return sanitize_keys(weights, self.prefix, bare=True, others=self.head_prefixes)


class PredictionHeadTransform(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.hidden_size)
        self.act = mlx_activation(args.hidden_act)
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)

    def __call__(self, h: mx.array) -> mx.array:
        return self.LayerNorm(self.act(self.dense(h)))


class LMPredictionHead(nn.Module):
    """transform, then the decoder: tied to the word embeddings plus its own `bias`, or (untied)
    a Linear whose bias is the one used."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.transform = PredictionHeadTransform(args)
        if args.tie_word_embeddings:
            self.bias = mx.zeros((args.vocab_size,))
        else:
            self.decoder = nn.Linear(args.hidden_size, args.vocab_size)

    def __call__(self, h: mx.array, word_embeddings: nn.Embedding) -> mx.array:
        h = self.transform(h)
        if "decoder" in self:
            return self.decoder(h)
        return word_embeddings.as_linear(h) + self.bias


class MLMHead(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.predictions = LMPredictionHead(args)


class BertForTokenClassification(nn.Module):
    """Encoder -> dropout -> classifier: logits [B, L, num_labels]."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.bert = BertModel(args)
        self.dropout = nn.Dropout(args.classifier_dropout_rate)
        self.classifier = nn.Linear(args.hidden_size, args.num_labels)

    def __call__(self, input_ids: mx.array, attention_mask: Optional[mx.array] = None) -> mx.array:
        return self.classifier(self.dropout(self.bert(input_ids, attention_mask)))

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        return sanitize_keys(weights, "bert.", own=("classifier.",), others=("cls.",))


class BertForMaskedLM(nn.Module):
    """Encoder -> cls.predictions (transform, decoder tied to the word embeddings): logits
    [B, L, vocab]."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.bert = BertModel(args)
        self.cls = MLMHead(args)

    def __call__(self, input_ids: mx.array, attention_mask: Optional[mx.array] = None) -> mx.array:
        h = self.bert(input_ids, attention_mask)
        return self.cls.predictions(h, self.bert.embeddings.word_embeddings)

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        weights = sanitize_keys(weights, "bert.", own=("cls.predictions.",), others=("cls.", "classifier."))
        return tied_decoder(weights, "cls.predictions.", self.args.tie_word_embeddings)


def tied_decoder(weights: dict[str, mx.array], head: str, tied: bool) -> dict[str, mx.array]:
    """A masked-LM head's keys under `head` as the model holds them. Tied: the decoder weight is
    a copy of the word embeddings (dropped) and its bias is `bias`, which older checkpoints
    store only as `decoder.bias`. Untied: the decoder's own bias is the one used."""
    decoder_bias = weights.pop(f"{head}decoder.bias", None)
    if tied:
        weights.pop(f"{head}decoder.weight", None)
        if decoder_bias is not None:
            weights.setdefault(f"{head}bias", decoder_bias)
    else:
        weights.pop(f"{head}bias", None)
        if decoder_bias is not None:
            weights[f"{head}decoder.bias"] = decoder_bias
    return weights


ARCHITECTURES = {
    "BertModel": BertModel,
    "BertForTokenClassification": BertForTokenClassification,
    "BertForMaskedLM": BertForMaskedLM,
}
