"""Tiny random ModernBERT checkpoints in the Hugging Face layout, made offline.

Tests, benchmarks and the README's walk-through need real checkpoints (real key names, real
`config.json`, a real `tokenizer.json`) but no hub: this builds them with transformers (the
reference implementation) and a tokenizer trained with `tokenizers`. Needs the `test` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from anno_mlx.testing.save import (
    checkpoint_parser,
    label_fields,
    random_model,
    rewrite_config,
    save_checkpoint,
    transformers_class,
)
from anno_mlx.testing.tiny_tokenizers import (
    BRACKETED_SPECIAL,
    TOKENIZER_TEXT,
    unigram_tokenizer,
    wordpiece_tokenizer,
)
from anno_mlx.tokenizer import MODERNBERT_SPECIAL_TOKENS as SPECIAL_TOKENS

TOKENIZER_STYLES = ("bpe", "wordpiece", "unigram")


def make_tokenizer(style: str = "bpe", vocab_size: int = 300):
    """A tokenizer trained on a few sentences, with ModernBERT's special tokens and the
    `[CLS] $A [SEP]` template: `bpe` is byte-level BPE (ModernBERT's kind), `wordpiece` is
    BERT's (lower-casing, accent-stripping normaliser, `##` continuations), `unigram` is a
    SentencePiece-style Metaspace/Unigram one (the Japanese ModernBERT models' kind)."""
    from tokenizers import normalizers

    from anno_mlx.tokenizer import add_template, train_bpe

    if style == "bpe":
        return train_bpe([TOKENIZER_TEXT] * 4, vocab_size)
    if style == "wordpiece":
        tokenizer = wordpiece_tokenizer(SPECIAL_TOKENS, vocab_size, cased=False)
    elif style == "unigram":
        tokenizer = unigram_tokenizer(SPECIAL_TOKENS, "[UNK]", normalizers.NFKC(), vocab_size)
    else:
        raise ValueError(f"unknown tokenizer style {style!r}; choose one of {TOKENIZER_STYLES}")
    add_template(tokenizer)
    return tokenizer


def tiny_config(**overrides: Any) -> dict[str, Any]:
    """Config values for a tiny ModernBERT; `overrides` win."""
    config: dict[str, Any] = dict(
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        local_attention=16,
        global_attn_every_n_layers=3,
        max_position_embeddings=8192,
        global_rope_theta=160000.0,
        local_rope_theta=10000.0,
    )
    config.update(overrides)
    return config


def make_tiny_checkpoint(
    out_dir: str | Path,
    head: str = "token-classification",
    seed: int = 0,
    labels: Optional[list[str]] = None,
    legacy_keys: bool = True,
    bias: bool = False,
    tokenizer_style: str = "bpe",
    **config_overrides: Any,
) -> Path:
    """Save a random ModernBERT (`head`: token-classification, masked-lm or encoder) with its
    tokenizer into `out_dir`, exactly as transformers writes it.

    `legacy_keys=False` rewrites config.json with transformers-5 keys only (`layer_types`,
    `rope_parameters`); `bias=True` turns on every optional bias so that their keys are exercised;
    `tokenizer_style` is one of TOKENIZER_STYLES.
    """
    from transformers import ModernBertConfig

    tokenizer = make_tokenizer(tokenizer_style)
    values = tiny_config(**config_overrides)
    every = values.pop("global_attn_every_n_layers")
    values.setdefault("vocab_size", tokenizer.get_vocab_size())
    if bias:
        values.update(norm_bias=True, attention_bias=True, mlp_bias=True, classifier_bias=True)
    config = ModernBertConfig(
        global_attn_every_n_layers=every,
        pad_token_id=tokenizer.token_to_id("[PAD]"),
        cls_token_id=tokenizer.token_to_id("[CLS]"),
        sep_token_id=tokenizer.token_to_id("[SEP]"),
        bos_token_id=tokenizer.token_to_id("[CLS]"),
        eos_token_id=tokenizer.token_to_id("[SEP]"),
        **label_fields(labels),
        **values,
    )
    model = random_model(transformers_class("ModernBert", head), config, seed)
    out = save_checkpoint(out_dir, model, tokenizer, BRACKETED_SPECIAL)

    def one_key_style(saved: dict[str, Any]) -> None:
        """transformers writes both styles of rope and layer keys; a checkpoint has one."""
        if legacy_keys:
            rope = saved.pop("rope_parameters", None) or {}
            saved.pop("layer_types", None)
            saved["global_rope_theta"] = rope.get("full_attention", {}).get(
                "rope_theta", values["global_rope_theta"]
            )
            saved["local_rope_theta"] = rope.get("sliding_attention", {}).get(
                "rope_theta", values["local_rope_theta"]
            )
            saved["global_attn_every_n_layers"] = every
        else:
            for key in ("global_rope_theta", "local_rope_theta", "global_attn_every_n_layers"):
                saved.pop(key, None)
            assert "layer_types" in saved and "rope_parameters" in saved

    rewrite_config(out, one_key_style)
    return out


def main(argv: Optional[list[str]] = None) -> None:
    parser = checkpoint_parser("ModernBERT")
    parser.add_argument("--tokenizer", default="bpe", choices=TOKENIZER_STYLES)
    args = parser.parse_args(argv)
    print(make_tiny_checkpoint(args.out, head=args.head, seed=args.seed, tokenizer_style=args.tokenizer))


if __name__ == "__main__":
    main()
