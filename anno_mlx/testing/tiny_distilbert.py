"""Tiny random DistilBERT checkpoints in the Hugging Face layout, made offline.

Built with transformers' own DistilBERT classes (the reference implementation) and a cased
WordPiece tokenizer with the `[CLS] $A [SEP]` template, as distilbert-base-cased has. Needs the
`test` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from anno_mlx.testing.save import (
    checkpoint_parser,
    label_fields,
    random_model,
    save_checkpoint,
    transformers_class,
)
from anno_mlx.testing.tiny_tokenizers import BERT_SPECIAL_TOKENS, BRACKETED_SPECIAL, wordpiece_tokenizer


def make_wordpiece_tokenizer(vocab_size: int = 400):
    """A cased WordPiece tokenizer (BERT's normaliser without lower-casing or accent stripping,
    CJK characters split one per word) trained on a few sentences."""
    from anno_mlx.tokenizer import add_template

    tokenizer = wordpiece_tokenizer(BERT_SPECIAL_TOKENS, vocab_size, cased=True)
    add_template(tokenizer)
    return tokenizer


def tiny_config(**overrides: Any) -> dict[str, Any]:
    """DistilBertConfig values for a tiny model; `overrides` win."""
    config: dict[str, Any] = dict(dim=32, hidden_dim=37, n_layers=2, n_heads=4, max_position_embeddings=64)
    config.update(overrides)
    return config


def make_tiny_distilbert(
    out_dir: str | Path,
    head: str = "token-classification",
    seed: int = 0,
    labels: Optional[list[str]] = None,
    **config_overrides: Any,
) -> Path:
    """Save a random DistilBERT (`head`: token-classification, masked-lm or encoder) with its
    tokenizer into `out_dir`, exactly as transformers writes it; `config_overrides` are
    DistilBertConfig fields (e.g. `sinusoidal_pos_embds=True`, `activation="relu"`)."""
    import transformers

    tokenizer = make_wordpiece_tokenizer()
    values = tiny_config(**config_overrides)
    values.setdefault("vocab_size", tokenizer.get_vocab_size())
    config = transformers.DistilBertConfig(
        pad_token_id=tokenizer.token_to_id("[PAD]"), **label_fields(labels), **values
    )
    model = random_model(transformers_class("DistilBert", head), config, seed)
    return save_checkpoint(
        out_dir, model, tokenizer, BRACKETED_SPECIAL, "DistilBertTokenizer", do_lower_case=False
    )


def main(argv: Optional[list[str]] = None) -> None:
    args = checkpoint_parser("DistilBERT").parse_args(argv)
    print(make_tiny_distilbert(args.out, head=args.head, seed=args.seed))


if __name__ == "__main__":
    main()
