"""DeBERTa-v2 (and DeBERTa-v3) in MLX: the encoder and its token-classification and masked-LM heads.

A post-norm BERT-style encoder whose attention is disentangled: besides the content score
q_i . k_j, each pair gets a content-to-position score q_i . Pk[r(i, j)] and a
position-to-content score k_j . Pq[r(i, j)], where Pk and Pq project the relative-position
embeddings and r(i, j) is the (log-bucketed) distance's row (`positions.relative_index`). All
scores are divided by sqrt(head_dim * (1 + number of position terms)).

The module tree mirrors the Hugging Face key names (`deberta.encoder.layer.N.attention.self.*`),
so `sanitize()` only drops what the network does not use and maps the masked-LM head's two layouts.
"""

from __future__ import annotations

from typing import Optional

import mlx.core as mx
import mlx.nn as nn

from ...errors import AnnoError
from ..activations import mlx_activation
from .config import ModelArgs
from .positions import relative_index


class Embeddings(nn.Module):
    """Token (+ absolute position) (+ token type 0) embeddings, projected to hidden_size when
    narrower, normalised, and zeroed at padding."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.word_embeddings = nn.Embedding(args.vocab_size, args.embedding_size)
        if args.position_biased_input:
            self.position_embeddings = nn.Embedding(args.max_position_embeddings, args.embedding_size)
        if args.type_vocab_size > 0:
            self.token_type_embeddings = nn.Embedding(args.type_vocab_size, args.embedding_size)
        if args.embedding_size != args.hidden_size:
            self.embed_proj = nn.Linear(args.embedding_size, args.hidden_size, bias=False)
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)
        self.dropout = nn.Dropout(args.hidden_dropout_prob)

    def __call__(self, input_ids: mx.array, attention_mask: Optional[mx.array]) -> mx.array:
        h = self.word_embeddings(input_ids)
        if "position_embeddings" in self:
            h = h + self.position_embeddings(mx.arange(input_ids.shape[1]))
        if "token_type_embeddings" in self:
            h = h + self.token_type_embeddings(mx.zeros_like(input_ids))
        if "embed_proj" in self:
            h = self.embed_proj(h)
        h = self.LayerNorm(h)
        if attention_mask is not None:
            h = h * attention_mask[:, :, None].astype(h.dtype)
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

    def heads(self, x: mx.array) -> mx.array:
        """[B, L, hidden] -> [B, heads, L, head_dim]"""
        B, L, _ = x.shape
        return x.reshape(B, L, self.num_heads, -1).transpose(0, 2, 1, 3)

    def __call__(
        self, x: mx.array, mask: mx.array, rel_embeddings: Optional[mx.array], index: Optional[mx.array]
    ) -> mx.array:
        B, L, _ = x.shape
        q, k, v = self.heads(self.query_proj(x)), self.heads(self.key_proj(x)), self.heads(self.value_proj(x))
        scores = (q @ k.swapaxes(-1, -2)) * self.scale
        if self.relative:
            scores = scores + self.position_scores(q, k, self.pos_dropout(rel_embeddings), index)
        scores = mx.where(mask, scores, mx.finfo(scores.dtype).min)
        probs = self.dropout(mx.softmax(scores, axis=-1, precise=True))
        return (probs @ v).transpose(0, 2, 1, 3).reshape(B, L, -1)

    def position_scores(self, q: mx.array, k: mx.array, rel: mx.array, index: mx.array) -> mx.array:
        """c2p[i, j] = q_i . Pk[index[i, j]] and p2c[i, j] = k_j . Pq[index[i, j]], scaled."""
        B, H, L, _ = q.shape
        rel = rel[None]  # [1, 2 * span, hidden]
        terms = []
        if "c2p" in self.terms:
            pos_key = self.heads(self.key_proj(rel) if self.share_att_key else self.pos_key_proj(rel))
            by_position = q @ pos_key.swapaxes(-1, -2)  # [B, heads, query, 2 * span]
            terms.append(mx.take_along_axis(by_position, mx.broadcast_to(index, (B, H, L, L)), axis=-1))
        if "p2c" in self.terms:
            pos_query = self.heads(self.query_proj(rel) if self.share_att_key else self.pos_query_proj(rel))
            by_position = k @ pos_query.swapaxes(-1, -2)  # [B, heads, key, 2 * span]
            by_key = mx.take_along_axis(by_position, mx.broadcast_to(index.T, (B, H, L, L)), axis=-1)
            terms.append(by_key.swapaxes(-1, -2))
        return sum(terms, mx.zeros((1, 1, L, L), dtype=q.dtype)) * self.scale


class SelfOutput(nn.Module):
    """dense -> dropout -> LayerNorm(+ residual): the post-norm step after attention and after the MLP."""

    def __init__(self, args: ModelArgs, width: int):
        super().__init__()
        self.dense = nn.Linear(width, args.hidden_size)
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)
        self.dropout = nn.Dropout(args.hidden_dropout_prob)

    def __call__(self, x: mx.array, residual: mx.array) -> mx.array:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.self = DisentangledSelfAttention(args)
        self.output = SelfOutput(args, args.hidden_size)

    def __call__(self, h: mx.array, mask: mx.array, rel_embeddings, index) -> mx.array:
        return self.output(self.self(h, mask, rel_embeddings, index), h)


class Intermediate(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.intermediate_size)
        self.act = mlx_activation(args.hidden_act)

    def __call__(self, x: mx.array) -> mx.array:
        return self.act(self.dense(x))


class Layer(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.attention = Attention(args)
        self.intermediate = Intermediate(args)
        self.output = SelfOutput(args, args.intermediate_size)

    def __call__(self, h: mx.array, mask: mx.array, rel_embeddings, index) -> mx.array:
        h = self.attention(h, mask, rel_embeddings, index)
        return self.output(self.intermediate(h), h)


class Encoder(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.layer = [Layer(args) for _ in range(args.num_hidden_layers)]
        if args.relative_attention:
            self.rel_embeddings = nn.Embedding(2 * args.attention_span, args.hidden_size)
        if args.rel_layer_norm:
            self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)

    def __call__(self, h: mx.array, mask: mx.array) -> mx.array:
        rel_embeddings = index = None
        if self.args.relative_attention:
            rel_embeddings = self.rel_embeddings(mx.arange(2 * self.args.attention_span))
            if "LayerNorm" in self:
                rel_embeddings = self.LayerNorm(rel_embeddings)
            index = mx.array(relative_index(h.shape[1], self.args))
        for layer in self.layer:
            h = layer(h, mask, rel_embeddings, index)
        return h


def key_mask(attention_mask: Optional[mx.array], B: int, L: int) -> mx.array:
    """[B, 1, 1, L] bool: the keys each query may attend to. A row with no real token attends to
    all of its padding, so that softmax never sees an empty row and nothing turns NaN."""
    if attention_mask is None:
        return mx.ones((B, 1, 1, L), dtype=mx.bool_)
    valid = attention_mask.astype(mx.bool_)
    valid = valid | ~mx.any(valid, axis=1, keepdims=True)
    return valid[:, None, None, :]


# Weights of heads and tools that no model here uses: the sequence classifier's pooler and the
# replaced-token-detection head of DeBERTa-v3's pretraining checkpoints.
UNUSED_PREFIXES = ("pooler.", "mask_predictions.")
HEAD_PREFIXES = ("classifier.", "cls.", "lm_predictions.", *UNUSED_PREFIXES)


class DebertaV2Model(nn.Module):
    """The bare encoder: token ids -> last hidden states [B, L, H]."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embeddings = Embeddings(args)
        self.encoder = Encoder(args)

    def __call__(self, input_ids: mx.array, attention_mask: Optional[mx.array] = None) -> mx.array:
        B, L = input_ids.shape
        h = self.embeddings(input_ids, attention_mask)
        return self.encoder(h, key_mask(attention_mask, B, L))

    def encoder_weights(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        """The encoder's own keys, without a `deberta.` prefix: heads, the position-ids buffer
        and absolute position embeddings the config does not use are left out."""
        out = {}
        for key, value in weights.items():
            key = key[len("deberta.") :] if key.startswith("deberta.") else key
            if key.startswith(HEAD_PREFIXES) or key.endswith("position_ids"):
                continue
            if key.startswith("embeddings.position_embeddings.") and not self.args.position_biased_input:
                continue  # transformers ignores them too
            out[key] = value
        return out

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        """Accept bare-encoder keys or a task checkpoint's `deberta.*` keys (heads dropped)."""
        return self.encoder_weights(weights)


class _TaskModel(nn.Module):
    """Shared loading behaviour of the heads: the encoder under `deberta.`, the head at the top."""

    head_keys: tuple[str, ...] = ()

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.deberta = DebertaV2Model(args)

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        own = {k: v for k, v in weights.items() if k.startswith(self.head_keys)}
        encoder = self.deberta.encoder_weights({k: v for k, v in weights.items() if k not in own})
        return {**{f"deberta.{k}": v for k, v in encoder.items()}, **own}


class DebertaV2ForTokenClassification(_TaskModel):
    """Encoder -> dropout -> classifier: logits [B, L, num_labels]."""

    head_keys = ("classifier.",)

    def __init__(self, args: ModelArgs):
        super().__init__(args)
        self.dropout = nn.Dropout(args.hidden_dropout_prob)
        self.classifier = nn.Linear(args.hidden_size, args.num_labels)

    def __call__(self, input_ids: mx.array, attention_mask: Optional[mx.array] = None) -> mx.array:
        return self.classifier(self.dropout(self.deberta(input_ids, attention_mask)))


class Transform(nn.Module):
    """`cls.predictions.transform`: dense (to embedding_size) -> activation -> LayerNorm."""

    def __init__(self, args: ModelArgs, width: int):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, width)
        self.act = mlx_activation(args.hidden_act)
        self.LayerNorm = nn.LayerNorm(width, eps=args.layer_norm_eps)

    def __call__(self, x: mx.array) -> mx.array:
        return self.LayerNorm(self.act(self.dense(x)))


class LegacyPredictions(nn.Module):
    """`cls.predictions`: transform to embedding_size, then the token embeddings (tied) plus
    `bias`, or an own `decoder` when the config unties them."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.transform = Transform(args, args.embedding_size)
        if args.tie_word_embeddings:
            self.bias = mx.zeros((args.vocab_size,))
        else:
            self.decoder = nn.Linear(args.embedding_size, args.vocab_size)

    def __call__(self, h: mx.array, word_embeddings: nn.Module) -> mx.array:
        h = self.transform(h)
        if "decoder" in self:
            return self.decoder(h)
        return word_embeddings.as_linear(h) + self.bias


class LegacyMLMHead(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.predictions = LegacyPredictions(args)

    def __call__(self, h: mx.array, word_embeddings: nn.Module) -> mx.array:
        return self.predictions(h, word_embeddings)


class LMHead(nn.Module):
    """`lm_predictions.lm_head`: the transform, then the token embeddings plus `bias`."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.hidden_size)
        self.act = mlx_activation(args.hidden_act)
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)
        self.bias = mx.zeros((args.vocab_size,))

    def __call__(self, h: mx.array, word_embeddings: nn.Module) -> mx.array:
        h = self.LayerNorm(self.act(self.dense(h)))
        return word_embeddings.as_linear(h) + self.bias


class MLMHead(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.lm_head = LMHead(args)

    def __call__(self, h: mx.array, word_embeddings: nn.Module) -> mx.array:
        return self.lm_head(h, word_embeddings)


# The masked-LM head's keys in the `legacy` layout and in the other (the original DeBERTa
# code's, which Microsoft's own checkpoints hold); the math is the same when embedding_size ==
# hidden_size.
LEGACY_HEAD_KEYS = {
    "cls.predictions.transform.dense.": "lm_predictions.lm_head.dense.",
    "cls.predictions.transform.LayerNorm.": "lm_predictions.lm_head.LayerNorm.",
    "cls.predictions.bias": "lm_predictions.lm_head.bias",
}


def head_key(key: str, legacy: bool) -> str:
    """`key` of either masked-LM head layout in the layout `legacy` names."""
    for old, new in LEGACY_HEAD_KEYS.items():
        source, target = (new, old) if legacy else (old, new)
        if key.startswith(source):
            return target + key[len(source) :]
    return key


class DebertaV2ForMaskedLM(_TaskModel):
    """Encoder -> transform -> token embeddings (tied) + bias: logits [B, L, vocab]."""

    head_keys = ("cls.", "lm_predictions.")

    def __init__(self, args: ModelArgs):
        super().__init__(args)
        if args.legacy:
            self.cls = LegacyMLMHead(args)
        elif args.embedding_size != args.hidden_size:
            raise AnnoError(
                "a masked-LM head with legacy false needs embedding_size equal to hidden_size; set legacy true"
            )
        else:
            self.lm_predictions = MLMHead(args)

    def __call__(self, input_ids: mx.array, attention_mask: Optional[mx.array] = None) -> mx.array:
        h = self.deberta(input_ids, attention_mask)
        head = self.cls if self.args.legacy else self.lm_predictions
        return head(h, self.deberta.embeddings.word_embeddings)

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        """Either head layout is read into the config's (the config's wins where a checkpoint
        holds both); the tied decoder (a copy of the token embeddings and of `bias`) is dropped."""
        weights = super().sanitize(weights)
        out = {}
        for key, value in weights.items():
            mapped = head_key(key, self.args.legacy)
            if mapped == key or mapped not in weights:
                out[mapped] = value
        if self.args.legacy and not self.args.tie_word_embeddings:
            out.pop("cls.predictions.bias", None)  # the untied decoder has its own bias
        else:
            out.pop("cls.predictions.decoder.weight", None)
            out.pop("cls.predictions.decoder.bias", None)
        return out


ARCHITECTURES = {
    "DebertaV2Model": DebertaV2Model,
    "DebertaV2ForTokenClassification": DebertaV2ForTokenClassification,
    "DebertaV2ForMaskedLM": DebertaV2ForMaskedLM,
}
