"""Tiny random DeBERTa-v2/v3 checkpoints in the Hugging Face layout, made offline.

Built with transformers (the reference implementation) and a tokenizer of DeBERTa-v3's kind
(SentencePiece-style Unigram with a Metaspace pre-tokenizer and `[CLS] $A [SEP]`), trained with
`tokenizers` on a few sentences. Needs the `test` extra.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Optional

from .tiny_checkpoint import LABELS, TOKENIZER_TEXT

# DeBERTa-v3's special tokens, in its vocabulary's order.
SPECIAL_TOKENS = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
HEADS = ("token-classification", "masked-lm", "encoder")


def make_tokenizer(vocab_size: int = 300):
    """A Unigram tokenizer as DeBERTa-v3's `tokenizer.json` is built: strip, normalise (NFKC
    standing in for SentencePiece's compiled map), collapse runs of spaces, split on spaces
    with a `▁` prefix, and put `[CLS]` / `[SEP]` around a text."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Strip(), normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, unk_token="[UNK]", show_progress=False
    )
    tokenizer.train_from_iterator([TOKENIZER_TEXT] * 4, trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return tokenizer


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
    **config_overrides: Any,
) -> Path:
    """Save a random DeBERTa-v2 (`head`: token-classification, masked-lm or encoder) with its
    tokenizer into `out_dir`, exactly as transformers writes it. `pos_att_string=True` writes
    `pos_att_type` as the "p2c|c2p" string that the released DeBERTa-v3 configs hold."""
    import torch
    from transformers import (
        DebertaV2Config,
        DebertaV2ForMaskedLM,
        DebertaV2ForTokenClassification,
        DebertaV2Model,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer()
    labels = labels or LABELS
    values = tiny_config(**config_overrides)
    values.setdefault("vocab_size", tokenizer.get_vocab_size())
    config = DebertaV2Config(
        pad_token_id=tokenizer.token_to_id("[PAD]"),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        **values,
    )
    model_class = {
        "token-classification": DebertaV2ForTokenClassification,
        "masked-lm": DebertaV2ForMaskedLM,
        "encoder": DebertaV2Model,
    }[head]
    torch.manual_seed(seed)
    model = model_class(config).eval()
    with torch.no_grad():  # random norms, biases and classifier too, so that every weight matters
        for name, param in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                param.add_(torch.randn_like(param) * 0.1)
            if name.startswith("classifier."):
                param.normal_(0.0, 0.5)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "DebertaV2Tokenizer",
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
    if pos_att_string:
        path = out / "config.json"
        saved = json.loads(path.read_text())
        saved["pos_att_type"] = "|".join(saved["pos_att_type"])
        path.write_text(json.dumps(saved, indent=2))
    return out


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description="Save a tiny random DeBERTa-v3 checkpoint (Hugging Face layout)."
    )
    parser.add_argument("out", help="folder to write")
    parser.add_argument("--head", default="token-classification", choices=HEADS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(make_tiny_deberta_v2(args.out, head=args.head, seed=args.seed))


if __name__ == "__main__":
    main()
