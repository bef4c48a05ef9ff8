"""Tiny random RoBERTa and XLM-RoBERTa checkpoints in the Hugging Face layout, made offline with
transformers and tokenizers of each kind: RoBERTa's byte-level BPE (no prefix space, the
`RobertaProcessing` post-processor that real roberta tokenizer.json files have) and XLM-R's
SentencePiece-style Unigram with Metaspace (`<s> $A </s>`). Both number `<s> <pad> </s> <unk>`
0 to 3, so padding is id 1. Needs the `test` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from anno_mlx.testing.save import label_fields, random_model, save_checkpoint, transformers_class
from anno_mlx.testing.tiny_bert import tiny_bert_config
from anno_mlx.testing.tiny_tokenizers import set_template, train, unigram_tokenizer

ROBERTA_SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
SPECIAL = dict(zip(("cls", "pad", "sep", "unk", "mask"), ROBERTA_SPECIAL_TOKENS))
KINDS = ("roberta", "xlm-roberta")


def make_bpe_tokenizer(vocab_size: int = 400):
    """roberta-base's kind: byte-level BPE without a prefix space, `<s> $A </s>` from
    `RobertaProcessing` (which trims the leading space off token offsets), `<mask>` that takes
    the space before it."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=ROBERTA_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    train(tokenizer, trainer)
    tokenizer.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    tokenizer.post_processor = processors.RobertaProcessing(
        ("</s>", tokenizer.token_to_id("</s>")),
        ("<s>", tokenizer.token_to_id("<s>")),
        trim_offsets=True,
        add_prefix_space=False,
    )
    return tokenizer


def make_unigram_tokenizer(vocab_size: int = 300):
    """xlm-roberta-base's kind: NFKC with runs of spaces folded, Metaspace words, a Unigram
    model, and `<s> $A </s>` (`<s> $A </s> </s> $B </s>` for pairs)."""
    from tokenizers import Regex, normalizers

    normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tokenizer = unigram_tokenizer(ROBERTA_SPECIAL_TOKENS, "<unk>", normalizer, vocab_size)
    return set_template(tokenizer, "<s>", "</s>", "<s> $A </s> </s> $B </s>")


def make_tiny_roberta(
    out_dir: str | Path,
    head: str = "token-classification",
    kind: str = "roberta",
    seed: int = 0,
    labels: Optional[list[str]] = None,
    **config_overrides: Any,
) -> Path:
    """Save a random RoBERTa (`kind` "roberta": byte-level BPE) or XLM-RoBERTa ("xlm-roberta":
    Unigram, `XLMRoberta*` classes and model_type) with `head` (token-classification, masked-lm
    or encoder) into `out_dir`; `config_overrides` are config values. Positions are sized as
    real checkpoints size them: max_position_embeddings = 2 + the longest input."""
    import transformers

    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {KINDS}")
    tokenizer = make_bpe_tokenizer() if kind == "roberta" else make_unigram_tokenizer()
    values = tiny_bert_config(max_position_embeddings=130, type_vocab_size=1, layer_norm_eps=1e-5)
    values.update(config_overrides)
    values.setdefault("vocab_size", tokenizer.get_vocab_size())
    prefix = "Roberta" if kind == "roberta" else "XLMRoberta"
    config = getattr(transformers, f"{prefix}Config")(
        pad_token_id=tokenizer.token_to_id("<pad>"),
        bos_token_id=tokenizer.token_to_id("<s>"),
        eos_token_id=tokenizer.token_to_id("</s>"),
        **label_fields(labels),
        **values,
    )
    model = random_model(transformers_class(prefix, head), config, seed)
    return save_checkpoint(out_dir, model, tokenizer, SPECIAL)
