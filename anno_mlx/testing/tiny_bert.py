"""Tiny random BERT checkpoints in the Hugging Face layout, made offline with transformers (the
reference implementation) and a cased WordPiece tokenizer trained with `tokenizers`, as BERT's
(`[CLS] $A [SEP]`, `[PAD]` first). `save_checkpoint` is shared with the RoBERTa builder. Needs
the `test` extra.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from anno_mlx.testing.tiny_checkpoint import LABELS, TOKENIZER_TEXT

BERT_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
HEADS = ("token-classification", "masked-lm", "encoder")


def make_wordpiece_tokenizer(vocab_size: int = 300):
    """BERT's kind of tokenizer, cased as bert-base-cased: a normaliser that keeps case and
    accents and splits CJK characters apart, `##` continuations, and `[CLS] $A [SEP]`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=BERT_SPECIAL_TOKENS, show_progress=False
    )
    tokenizer.train_from_iterator([TOKENIZER_TEXT] * 4, trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return tokenizer


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


def save_checkpoint(
    out: Path,
    model_classes: dict[str, type],
    config,
    head: str,
    tokenizer,
    special: dict[str, str],
    seed: int,
) -> Path:
    """Save a random model of `model_classes[head]` for `config` with `tokenizer` into `out`,
    exactly as transformers writes it. Biases and norms are randomised too, so that every
    weight matters. `special` names the tokenizer's unk/cls/sep/pad/mask tokens."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = model_classes[head](config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                **{f"{name}_token": token for name, token in special.items()},
                "model_max_length": config.max_position_embeddings,
            },
            indent=2,
        )
    )
    return out


def make_tiny_bert(
    out_dir: str | Path,
    head: str = "token-classification",
    seed: int = 0,
    labels: Optional[list[str]] = None,
    **config_overrides: Any,
) -> Path:
    """Save a random BERT (`head`: token-classification, masked-lm or encoder) with a WordPiece
    tokenizer into `out_dir`; `config_overrides` are BertConfig values."""
    from transformers import BertConfig, BertForMaskedLM, BertForTokenClassification, BertModel

    tokenizer = make_wordpiece_tokenizer()
    labels = labels or LABELS
    values = tiny_bert_config(**config_overrides)
    values.setdefault("vocab_size", tokenizer.get_vocab_size())
    config = BertConfig(
        pad_token_id=tokenizer.token_to_id("[PAD]"),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        **values,
    )
    classes = dict(zip(HEADS, (BertForTokenClassification, BertForMaskedLM, BertModel)))
    special = dict(zip(("pad", "unk", "cls", "sep", "mask"), BERT_SPECIAL_TOKENS))
    return save_checkpoint(Path(out_dir), classes, config, head, tokenizer, special, seed)
