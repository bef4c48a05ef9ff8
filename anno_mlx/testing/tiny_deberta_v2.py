"""Tiny random DeBERTa-v2/v3 checkpoints in the Hugging Face layout, made offline.

Built with transformers (the reference implementation) and a tokenizer of DeBERTa-v3's kind
(SentencePiece-style Unigram with a Metaspace pre-tokenizer and `[CLS] $A [SEP]`), trained with
`tokenizers` on a few sentences. Needs the `test` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from .save import (
    checkpoint_parser,
    label_fields,
    random_model,
    rewrite_config,
    save_checkpoint,
    transformers_class,
)
from .tiny_tokenizers import (
    BERT_PAIR,
    BRACKETED_SPECIAL,
    TOKENIZER_TEXT,
    set_template,
    unigram_tokenizer,
    with_whole_words,
)

# DeBERTa-v3's special tokens, in its vocabulary's order.
SPECIAL_TOKENS = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]


def make_tokenizer(vocab_size: int = 300, text: Optional[str] = None):
    """A Unigram tokenizer as DeBERTa-v3's `tokenizer.json` is built: strip, normalise (NFKC
    standing in for SentencePiece's compiled map), collapse runs of spaces, split on spaces
    with a `▁` prefix, and put `[CLS]` / `[SEP]` around a text. Trained on TOKENIZER_TEXT, or on
    `text` with its common words made whole pieces (`with_whole_words`)."""
    from tokenizers import Regex, normalizers

    normalizer = normalizers.Sequence(
        [normalizers.Strip(), normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tokenizer = unigram_tokenizer(SPECIAL_TOKENS, "[UNK]", normalizer, vocab_size, text or TOKENIZER_TEXT)
    if text is not None:
        tokenizer = with_whole_words(tokenizer, text)
    return set_template(tokenizer, "[CLS]", "[SEP]", BERT_PAIR)


def tiny_config(**overrides: Any) -> dict[str, Any]:
    """Config values for a tiny DeBERTa-v3 (relative positions in log buckets, shared attention
    keys, normalised relative embeddings, no absolute positions); `overrides` win."""
    config: dict[str, Any] = dict(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=512,
        relative_attention=True,
        position_buckets=32,
        max_relative_positions=-1,
        pos_att_type=["p2c", "c2p"],
        share_att_key=True,
        norm_rel_ebd="layer_norm",
        position_biased_input=False,
        type_vocab_size=0,
        hidden_act="gelu",
        # Weights large enough that attention is far from uniform and every score term matters.
        initializer_range=0.2,
    )
    config.update(overrides)
    return config


def make_tiny_deberta_v2(
    out_dir: str | Path,
    head: str = "token-classification",
    seed: int = 0,
    labels: Optional[list[str]] = None,
    pos_att_string: bool = False,
    tokenizer_text: Optional[str] = None,
    tokenizer_vocab: int = 300,
    **config_overrides: Any,
) -> Path:
    """Save a random DeBERTa-v2 (`head`: token-classification, masked-lm or encoder) with its
    tokenizer into `out_dir`, exactly as transformers writes it. `pos_att_string=True` writes
    `pos_att_type` as the "p2c|c2p" string that the released DeBERTa-v3 configs hold;
    `tokenizer_text` and `tokenizer_vocab` are `make_tokenizer`'s."""
    from transformers import DebertaV2Config

    tokenizer = make_tokenizer(tokenizer_vocab, tokenizer_text)
    values = tiny_config(**config_overrides)
    values.setdefault("vocab_size", tokenizer.get_vocab_size())
    config = DebertaV2Config(pad_token_id=tokenizer.token_to_id("[PAD]"), **label_fields(labels), **values)
    # The classifier drawn again with a wide spread, so that every weight matters.
    model = random_model(transformers_class("DebertaV2", head), config, seed, classifier_std=0.5)
    out = save_checkpoint(out_dir, model, tokenizer, BRACKETED_SPECIAL, "DebertaV2Tokenizer")
    if pos_att_string:
        rewrite_config(out, lambda saved: saved.update(pos_att_type="|".join(saved["pos_att_type"])))
    return out


def main(argv: Optional[list[str]] = None) -> None:
    args = checkpoint_parser("DeBERTa-v3").parse_args(argv)
    print(make_tiny_deberta_v2(args.out, head=args.head, seed=args.seed))


if __name__ == "__main__":
    main()
