"""Tiny random BERT checkpoints in the Hugging Face layout, made offline with transformers (the
reference implementation) and a cased WordPiece tokenizer trained with `tokenizers`, as BERT's
(`[CLS] $A [SEP]`, `[PAD]` first). `tiny_bert_config` is shared with the RoBERTa builder. Needs
the `test` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from anno_mlx.testing.save import label_fields, random_model, save_checkpoint, transformers_class
from anno_mlx.testing.tiny_tokenizers import BERT_PAIR, BERT_SPECIAL_TOKENS, set_template, wordpiece_tokenizer


def make_wordpiece_tokenizer(vocab_size: int = 300):
    """BERT's kind of tokenizer, cased as bert-base-cased: a normaliser that keeps case and
    accents and splits CJK characters apart, `##` continuations, and `[CLS] $A [SEP]`."""
    tokenizer = wordpiece_tokenizer(BERT_SPECIAL_TOKENS, vocab_size, cased=True)
    return set_template(tokenizer, "[CLS]", "[SEP]", BERT_PAIR)


def tiny_bert_config(**overrides: Any) -> dict[str, Any]:
    """Config values for a tiny BERT; `overrides` win."""
    config: dict[str, Any] = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=128,
    )
    config.update(overrides)
    return config


def make_tiny_bert(
    out_dir: str | Path,
    head: str = "token-classification",
    seed: int = 0,
    labels: Optional[list[str]] = None,
    **config_overrides: Any,
) -> Path:
    """Save a random BERT (`head`: token-classification, masked-lm or encoder) with a WordPiece
    tokenizer into `out_dir`; `config_overrides` are BertConfig values."""
    from transformers import BertConfig

    tokenizer = make_wordpiece_tokenizer()
    values = tiny_bert_config(**config_overrides)
    values.setdefault("vocab_size", tokenizer.get_vocab_size())
    config = BertConfig(pad_token_id=tokenizer.token_to_id("[PAD]"), **label_fields(labels), **values)
    model = random_model(transformers_class("Bert", head), config, seed)
    special = dict(zip(("pad", "unk", "cls", "sep", "mask"), BERT_SPECIAL_TOKENS))
    return save_checkpoint(out_dir, model, tokenizer, special)
