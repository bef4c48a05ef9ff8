"""Tiny random DistilBERT checkpoints in the Hugging Face layout, made offline.

Built with transformers' own DistilBERT classes (the reference implementation) and a cased
WordPiece tokenizer with the `[CLS] $A [SEP]` template, as distilbert-base-cased has. Needs the
`test` extra.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Optional

from anno_mlx.testing.tiny_checkpoint import LABELS, TOKENIZER_TEXT

# BERT's vocabulary order: [PAD] is id 0, DistilBERT's default pad_token_id.
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
HEADS = {
    "token-classification": "DistilBertForTokenClassification",
    "masked-lm": "DistilBertForMaskedLM",
    "encoder": "DistilBertModel",
}


def make_wordpiece_tokenizer(vocab_size: int = 400):
    """A cased WordPiece tokenizer (BERT's normaliser without lower-casing or accent stripping,
    CJK characters split one per word) trained on a few sentences."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    from anno_mlx.tokenizer import add_template

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False
    )
    tokenizer.train_from_iterator([TOKENIZER_TEXT] * 4, trainer=trainer)
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
    import torch
    import transformers

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = make_wordpiece_tokenizer()
    labels = labels or LABELS
    values = tiny_config(**config_overrides)
    values.setdefault("vocab_size", tokenizer.get_vocab_size())
    config = transformers.DistilBertConfig(
        pad_token_id=tokenizer.token_to_id("[PAD]"),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        **values,
    )
    torch.manual_seed(seed)
    model = getattr(transformers, HEADS[head])(config).eval()
    with torch.no_grad():  # random norms and biases too, so that every weight matters
        for name, param in model.named_parameters():
            if name.endswith("bias") or "norm" in name.lower():
                param.add_(torch.randn_like(param) * 0.1)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "DistilBertTokenizer",
                "do_lower_case": False,
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
    return out


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description="Save a tiny random DistilBERT checkpoint (Hugging Face layout)."
    )
    parser.add_argument("out", help="folder to write")
    parser.add_argument("--head", default="token-classification", choices=list(HEADS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(make_tiny_distilbert(args.out, head=args.head, seed=args.seed))


if __name__ == "__main__":
    main()
