"""Tokenizers of each family's kind, trained offline on a few sentences for the tiny test
checkpoints: the steps every builder shares (the corpus, WordPiece and Unigram models, the
`[CLS] $A [SEP]`-style templates). Needs the `test` extra."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any

TOKENIZER_TEXT = (
    "Ada Lovelace worked with Charles Babbage in London on the Analytical Engine. "
    "Marie Curie was born in Warsaw and moved to Paris, where she studied at the Sorbonne. "
    "The United Nations met in New York; Apple and Microsoft reported results on Tuesday. "
    "Tokyo, Berlin, São Paulo and Lagos are large cities. 東京 と 大阪 は 日本 の 都市 です。 "
    "The quick brown fox jumps over the lazy dog, 1234567890 times!? (yes) — \"quoted\" 'text'."
)
# BERT's vocabulary order: [PAD] is id 0, the default pad_token_id of BERT and DistilBERT.
BERT_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# The bracketed special tokens by role, as tokenizer_config.json names them (`unk_token`, ...).
BRACKETED_SPECIAL = {"unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "mask": "[MASK]"}
# BERT's pair template: the second text has token type 1.
BERT_PAIR = "[CLS] $A [SEP] $B:1 [SEP]:1"


def train(tokenizer: Any, trainer: Any, text: str = TOKENIZER_TEXT) -> Any:
    """`tokenizer` trained with `trainer` on `text` (repeated, so that merges recur)."""
    tokenizer.train_from_iterator([text] * 4, trainer=trainer)
    return tokenizer


def wordpiece_tokenizer(special_tokens: list[str], vocab_size: int, cased: bool) -> Any:
    """BERT's kind, without a template: its normaliser (cased: case and accents kept;
    uncased: lower-cased, accents stripped; CJK characters split apart either way), `##`
    continuations.

    The trainer numbers the `##` continuations in the order it meets them in a hash map, which
    changes from process to process and so breaks ties between merges differently; giving it the
    characters and then their continuations up front, each sorted, makes the vocabulary the same
    in every process."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    def empty(model: Any) -> Any:
        tokenizer = Tokenizer(model)
        tokenizer.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=not cased, lowercase=not cased
        )
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        return tokenizer

    tokenizer = empty(models.WordPiece(unk_token="[UNK]"))
    words = tokenizer.pre_tokenizer.pre_tokenize_str(tokenizer.normalizer.normalize_str(TOKENIZER_TEXT))
    characters = sorted({char for word, _ in words for char in word})
    continuations = sorted({"##" + char for word, _ in words for char in word[1:]})
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=special_tokens + characters + continuations, show_progress=False
    )
    train(tokenizer, trainer)
    # The characters and continuations were special tokens for the training only: a tokenizer on
    # the same vocabulary whose special tokens are the real ones.
    trained = empty(models.WordPiece(vocab=tokenizer.get_vocab(), unk_token="[UNK]"))
    trained.add_special_tokens(special_tokens)
    return trained


def unigram_tokenizer(
    special_tokens: list[str], unk_token: str, normalizer: Any, vocab_size: int, text: str = TOKENIZER_TEXT
) -> Any:
    """SentencePiece's kind (XLM-R's, DeBERTa-v3's, the Japanese ModernBERT models'), without a
    template, trained on `text`: `normalizer`, words split on spaces with a `▁` prefix, a Unigram
    model. The pieces are the same in every process but their scores and order are not: the
    trainer sums over a hash map's order, and no setting fixes it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=special_tokens, unk_token=unk_token, show_progress=False
    )
    return train(tokenizer, trainer, text)


def with_whole_words(tokenizer: Any, text: str) -> Any:
    """A Unigram `tokenizer` given a `▁word` piece, scored by its frequency, for every word or
    punctuation mark of `text` that is not capitalised or occurs more than once: as in a large
    vocabulary, common words become one token and rare names stay in pieces. (A trainer run on
    a few thousand words stops far short of that and splits most words.)"""
    from tokenizers import Tokenizer

    counts = Counter(re.findall(r"\w+|[^\w\s]", text))
    total = sum(counts.values())
    state = json.loads(tokenizer.to_str())
    pieces = {piece: score for piece, score in state["model"]["vocab"]}
    for word, count in sorted(counts.items()):
        if count > 1 or not word[0].isupper():
            pieces["▁" + word] = max(pieces.get("▁" + word, -math.inf), math.log(count / total))
    state["model"]["vocab"] = [[piece, score] for piece, score in pieces.items()]
    return Tokenizer.from_str(json.dumps(state))


def set_template(tokenizer: Any, cls: str, sep: str, pair: str) -> Any:
    """`cls $A sep` around one text, `pair` around two (it names only `cls` and `sep`)."""
    from tokenizers import processors

    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=pair,
        special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))],
    )
    return tokenizer
