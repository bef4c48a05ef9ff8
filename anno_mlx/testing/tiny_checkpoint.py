"""Tiny random ModernBERT checkpoints in the Hugging Face layout, made offline.

Tests, benchmarks and the README's walk-through need real checkpoints (real key names, real
`config.json`, a real `tokenizer.json`) but no hub: this builds them with transformers (the
reference implementation) and a tokenizer trained with `tokenizers`. Needs the `test` extra.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Optional

from anno_mlx.tokenizer import MODERNBERT_SPECIAL_TOKENS as SPECIAL_TOKENS

TOKENIZER_TEXT = (
    "Ada Lovelace worked with Charles Babbage in London on the Analytical Engine. "
    "Marie Curie was born in Warsaw and moved to Paris, where she studied at the Sorbonne. "
    "The United Nations met in New York; Apple and Microsoft reported results on Tuesday. "
    "Tokyo, Berlin, São Paulo and Lagos are large cities. 東京 と 大阪 は 日本 の 都市 です。 "
    "The quick brown fox jumps over the lazy dog, 1234567890 times!? (yes) — \"quoted\" 'text'."
)
LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


TOKENIZER_STYLES = ("bpe", "wordpiece", "unigram")


def make_tokenizer(style: str = "bpe", vocab_size: int = 300):
    """A tokenizer trained on a few sentences, with ModernBERT's special tokens and the
    `[CLS] $A [SEP]` template: `bpe` is byte-level BPE (ModernBERT's kind), `wordpiece` is
    BERT's (lower-casing, accent-stripping normaliser, `##` continuations), `unigram` is a
    SentencePiece-style Metaspace/Unigram one (the Japanese ModernBERT models' kind)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    from anno_mlx.tokenizer import add_template, train_bpe

    corpus = [TOKENIZER_TEXT] * 4
    if style == "bpe":
        return train_bpe(corpus, vocab_size)
    if style == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False
        )
    elif style == "unigram":
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.normalizer = normalizers.NFKC()
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, unk_token="[UNK]", show_progress=False
        )
    else:
        raise ValueError(f"unknown tokenizer style {style!r}; choose one of {TOKENIZER_STYLES}")
    tokenizer.train_from_iterator(corpus, trainer=trainer)
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
    import torch
    from transformers import (
        ModernBertConfig,
        ModernBertForMaskedLM,
        ModernBertForTokenClassification,
        ModernBertModel,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer(tokenizer_style)
    labels = labels or LABELS
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
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        **values,
    )
    model_class = {
        "token-classification": ModernBertForTokenClassification,
        "masked-lm": ModernBertForMaskedLM,
        "encoder": ModernBertModel,
    }[head]
    torch.manual_seed(seed)
    model = model_class(config).eval()
    with torch.no_grad():  # random norms and biases too, so that every weight matters
        for name, param in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "unk_token": "[UNK]",
                "cls_token": "[CLS]",
                "sep_token": "[SEP]",
                "pad_token": "[PAD]",
                "mask_token": "[MASK]",
                "model_max_length": values["max_position_embeddings"],
            },
            indent=2,
        )
    )
    config_path = out / "config.json"
    saved = json.loads(config_path.read_text())
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
    config_path.write_text(json.dumps(saved, indent=2))
    return out


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description="Save a tiny random ModernBERT checkpoint (Hugging Face layout)."
    )
    parser.add_argument("out", help="folder to write")
    parser.add_argument(
        "--head", default="token-classification", choices=["token-classification", "masked-lm", "encoder"]
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokenizer", default="bpe", choices=TOKENIZER_STYLES)
    args = parser.parse_args(argv)
    print(make_tiny_checkpoint(args.out, head=args.head, seed=args.seed, tokenizer_style=args.tokenizer))


if __name__ == "__main__":
    main()
