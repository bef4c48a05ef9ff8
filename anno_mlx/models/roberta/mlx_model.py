"""RoBERTa (XLM-RoBERTa, CamemBERT) in MLX: BERT's encoder layers with RoBERTa's embeddings
and heads.

What differs from BERT: positions count real tokens only and start after the padding id
(`padding_idx + 1`, padding tokens get `padding_idx`); the encoder's keys sit under
`roberta.`; the masked-LM head is `lm_head` (dense -> exact gelu -> layer_norm -> decoder tied
to the word embeddings, plus `lm_head.bias`).
"""

from __future__ import annotations

from typing import Optional

import mlx.core as mx
import mlx.nn as nn

from ..bert import mlx_model as bert
from .config import ModelArgs


class Embeddings(bert.Embeddings):
    def __init__(self, args: ModelArgs):
        super().__init__(args)
        self.padding_idx = args.pad_token_id

    def position_ids(self, input_ids: mx.array) -> mx.array:
        """The count of non-padding tokens up to each one, after `padding_idx`; padding tokens
        get `padding_idx` itself. Left or right padding leaves real tokens' positions alone."""
        real = (input_ids != self.padding_idx).astype(mx.int32)
        return mx.cumsum(real, axis=1) * real + self.padding_idx


class RobertaModel(bert.BertModel):
    """The bare encoder: token ids -> last hidden states [B, L, H] (no pooler)."""

    embeddings_class = Embeddings
    prefix = "roberta."
    head_prefixes = ("lm_head.", "classifier.")


class RobertaForTokenClassification(nn.Module):
    """Encoder -> dropout -> classifier: logits [B, L, num_labels]."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.roberta = RobertaModel(args)
        self.dropout = nn.Dropout(args.classifier_dropout_rate)
        self.classifier = nn.Linear(args.hidden_size, args.num_labels)

    def __call__(self, input_ids: mx.array, attention_mask: Optional[mx.array] = None) -> mx.array:
        return self.classifier(self.dropout(self.roberta(input_ids, attention_mask)))

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        return bert.sanitize_keys(weights, "roberta.", own=("classifier.",), others=("lm_head.",))


class LMHead(nn.Module):
    """dense -> gelu (always the exact one, whatever hidden_act says) -> layer_norm -> decoder."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.hidden_size)
        self.layer_norm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)
        if args.tie_word_embeddings:
            self.bias = mx.zeros((args.vocab_size,))
        else:
            self.decoder = nn.Linear(args.hidden_size, args.vocab_size)

    def __call__(self, h: mx.array, word_embeddings: nn.Embedding) -> mx.array:
        h = self.layer_norm(nn.gelu(self.dense(h)))
        if "decoder" in self:
            return self.decoder(h)
        return word_embeddings.as_linear(h) + self.bias


class RobertaForMaskedLM(nn.Module):
    """Encoder -> lm_head: logits [B, L, vocab]."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.roberta = RobertaModel(args)
        self.lm_head = LMHead(args)

    def __call__(self, input_ids: mx.array, attention_mask: Optional[mx.array] = None) -> mx.array:
        return self.lm_head(self.roberta(input_ids, attention_mask), self.roberta.embeddings.word_embeddings)

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        weights = bert.sanitize_keys(weights, "roberta.", own=("lm_head.",), others=("classifier.",))
        return bert.tied_decoder(weights, "lm_head.", self.args.tie_word_embeddings)


# XLM-RoBERTa and CamemBERT checkpoints hold the same network under the same keys.
ARCHITECTURES = {
    "RobertaModel": RobertaModel,
    "RobertaForTokenClassification": RobertaForTokenClassification,
    "RobertaForMaskedLM": RobertaForMaskedLM,
    "XLMRobertaModel": RobertaModel,
    "XLMRobertaForTokenClassification": RobertaForTokenClassification,
    "XLMRobertaForMaskedLM": RobertaForMaskedLM,
    "CamembertModel": RobertaModel,
    "CamembertForTokenClassification": RobertaForTokenClassification,
    "CamembertForMaskedLM": RobertaForMaskedLM,
}
