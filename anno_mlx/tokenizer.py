"""The checkpoint's own `tokenizer.json`, read with `tokenizers`, keeping character offsets."""

from __future__ import annotations

import functools
import stat
import unicodedata
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import tokenizers

from .errors import AnnoError
from .unspaced import UNSPACED_SCRIPTS

TOKENIZER_FILE = "tokenizer.json"


class Tokenizer:
    """A thin wrapper over `tokenizers.Tokenizer` that knows the model's padding id.

    Padding and truncation settings stored in tokenizer.json are switched off: the caller
    decides lengths (long documents are windowed, not cut).
    """

    def __init__(self, inner: tokenizers.Tokenizer, pad_token_id: Optional[int] = None):
        inner.no_padding()
        inner.no_truncation()
        self.inner = inner
        self.pad_token_id = pad_token_id if pad_token_id is not None else (self.special_ids()["pad"] or 0)

    @classmethod
    def from_file(cls, path: str | Path, pad_token_id: Optional[int] = None) -> "Tokenizer":
        try:
            inner = tokenizers.Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises its own exception type with varying texts
            raise AnnoError(f"{path} is not a readable tokenizer ({err})") from None
        return cls(inner, pad_token_id)

    @classmethod
    def from_folder(cls, folder: str | Path, pad_token_id: Optional[int] = None) -> "Tokenizer":
        path = Path(folder) / TOKENIZER_FILE
        if not path.is_file():
            raise AnnoError(
                f"{folder} has no {TOKENIZER_FILE}; convert the model with `python -m anno_mlx convert`"
            )
        check_model_file(path, Path(folder))
        return cls.from_file(path, pad_token_id)

    @property
    def max_id(self) -> int:
        """The largest id this tokenizer can produce: its vocabulary, added tokens and the ids its
        template inserts (a template may name ids that are in no vocabulary)."""
        prefix, suffix = self.special_tokens()
        return max([*self.inner.get_vocab(with_added_tokens=True).values(), *prefix, *suffix], default=-1)

    def check_fits(self, vocab_size: int, source: str | Path, unused: Sequence[str] = ()) -> None:
        """Ids beyond the model's embedding rows would read out of bounds (garbage entities on
        MLX, a crash on large ids): the tokenizer must belong to this model. `unused` tokens,
        which the caller never lets reach the model, are not counted."""
        skip = {self.inner.token_to_id(t) for t in unused} - {None}
        prefix, suffix = self.special_tokens()
        ids = [*self.inner.get_vocab(with_added_tokens=True).values(), *prefix, *suffix]
        largest = max((i for i in ids if i not in skip), default=-1)
        if largest >= vocab_size:
            raise AnnoError(
                f"the tokenizer of {source} produces ids up to {largest:,} but the model has {vocab_size:,} "
                f"token embeddings; the tokenizer belongs to another model, put the model's own {TOKENIZER_FILE} there"
            )

    def special_ids(self) -> dict[str, Optional[int]]:
        """Ids of the unk/cls/sep/pad/mask tokens under their BERT or SentencePiece names
        (None where the vocabulary has none); they differ from model to model."""
        ids = {}
        for name, tokens in SPECIAL_NAMES.items():
            found = (self.inner.token_to_id(t) for t in tokens)
            ids[name] = next((i for i in found if i is not None), None)
        return ids

    def encode(self, text: str, add_special_tokens: bool = True) -> tokenizers.Encoding:
        """Token ids and `offsets` (Python string indices into `text`) of one text."""
        return self.inner.encode(text, add_special_tokens=add_special_tokens)

    def _encode(self, text: str, add_special_tokens: bool) -> tokenizers.Encoding:
        try:
            return self.inner.encode(text, add_special_tokens=add_special_tokens)
        except Exception as err:  # tokenizers raises a bare Exception for a broken vocabulary
            raise AnnoError(
                f"the model's tokenizer cannot encode this text ({err}); its tokenizer.json is broken"
            ) from None

    def encode_batch(self, texts: list[str], add_special_tokens: bool = True) -> list[tokenizers.Encoding]:
        return self.inner.encode_batch(list(texts), add_special_tokens=add_special_tokens)

    def encode_words(self, words: Sequence[str]) -> list[list[int]]:
        """Token ids of each word, each tokenized on its own (pre-split input, no special
        tokens), as span models that score whole words read them."""
        if not words:
            return []
        try:
            encoding = self.inner.encode(list(words), is_pretokenized=True, add_special_tokens=False)
        except Exception as err:  # tokenizers raises a bare Exception for a broken vocabulary
            raise AnnoError(
                f"the model's tokenizer cannot encode this text ({err}); its tokenizer.json is broken"
            ) from None
        out: list[list[int]] = [[] for _ in words]
        for token, word in zip(encoding.ids, encoding.word_ids):
            if word is not None:
                out[word].append(token)
        return out

    @property
    def vocab_size(self) -> int:
        return self.inner.get_vocab_size()

    def special_tokens(self) -> tuple[list[int], list[int]]:
        """The ids the tokenizer's template puts before and after a single text
        (`[CLS]` / `[SEP]` for ModernBERT and BERT, `<s>` / `</s>` for others)."""
        probe = self._encode("a", add_special_tokens=True)
        content = [i for i, special in enumerate(probe.special_tokens_mask) if not special]
        if not content:
            return [], []
        return probe.ids[: content[0]], probe.ids[content[-1] + 1 :]

    def tokenize(self, text: str) -> "Tokens":
        """All tokens of a whole document, without special tokens, with character offsets into
        `text` and the tokens that begin a word (for word-level aggregation).

        The text is tokenized in its NFC form (see `nfc_with_offsets`), so decomposed accents
        ("Zu\u0308rich") give the tokens and words of the composed ones, while the offsets
        still index the text as given.

        Long texts are tokenized in pieces of about 50,000 characters (see `text_pieces`), so
        the tokens are the same as in one call while memory stays small: tokenizers' own
        encodings cost about 300 bytes per token.
        """
        normal, origin = nfc_with_offsets(text)
        ids, offsets, words = [], [], []
        next_word = 0
        for begin, piece in text_pieces(normal, PIECE_CHARS):
            encoding = self._encode(piece, add_special_tokens=False)
            ids.append(np.asarray(encoding.ids, dtype=np.int32))
            offsets.append(np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2) + begin)
            word = np.array([-1 if w is None else w for w in encoding.word_ids], dtype=np.int64)
            word[word >= 0] += next_word
            next_word = int(word.max()) + 1 if len(word) else next_word
            words.append(word)
        all_offsets = np.concatenate(offsets) if offsets else np.zeros((0, 2), np.int64)
        all_words = np.concatenate(words) if words else np.zeros(0, np.int64)
        content, starts = word_starts(normal, all_offsets, all_words)
        if origin is not None:
            all_offsets = origin[all_offsets]
        ids_array = np.concatenate(ids) if ids else np.zeros(0, np.int32)
        return Tokens(ids_array, all_offsets, starts, content)


PIECE_CHARS = 50_000


def text_pieces(text: str, size: int):
    """(start, piece) covering `text`, each about `size` characters, cut just before a space
    (U+0020) that precedes a non-space character: byte-level, BERT and Metaspace pre-tokenizers
    all split there, so each piece tokenizes as it would inside the whole. A stretch of `size`
    characters with no such space (unspaced scripts) is cut where it ends."""
    start = 0
    while len(text) - start > size:
        low = start + size // 2
        cut = start + size
        for i in range(start + size - 1, low, -1):
            if text[i] == " " and not text[i + 1].isspace():
                cut = i
                break
        yield start, text[start:cut]
        start = cut
    yield start, text[start:]


@dataclass
class Tokens:
    ids: np.ndarray  # [n] int32
    offsets: np.ndarray  # [n, 2] character offsets into the text
    word_start: np.ndarray  # [n] bool: the first content token of a word
    content: np.ndarray  # [n] bool: False for tokens that cover only whitespace

    def __len__(self) -> int:
        return len(self.ids)


MODERNBERT_SPECIAL_TOKENS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
SPECIAL_NAMES = {
    "unk": ("[UNK]", "<unk>"),
    "cls": ("[CLS]", "<cls>", "<s>"),
    "sep": ("[SEP]", "<sep>", "</s>"),
    "pad": ("[PAD]", "<pad>"),
    "mask": ("[MASK]", "<mask>"),
}


def pad_rows(rows: Sequence[np.ndarray], pad_id: int, multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Rows of token ids padded on the right to one width (rounded up to a multiple of
    `multiple`): (ids, attention mask), int32."""
    width = -(-max(len(r) for r in rows) // multiple) * multiple
    ids = np.full((len(rows), width), pad_id, dtype=np.int32)
    mask = np.zeros((len(rows), width), dtype=np.int32)
    for r, row in enumerate(rows):
        ids[r, : len(row)], mask[r, : len(row)] = row, 1
    return ids, mask


def train_bpe(texts, vocab_size: int) -> tokenizers.Tokenizer:
    """A byte-level BPE tokenizer (ModernBERT's kind) trained on `texts`, with ModernBERT's
    special tokens and its `[CLS] $A [SEP]` template; for models trained from scratch."""
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tokenizer = tokenizers.Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=MODERNBERT_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    add_template(tokenizer)
    return tokenizer


def add_template(tokenizer: tokenizers.Tokenizer) -> None:
    """`[CLS] $A [SEP]` (and `[CLS] $A [SEP] $B [SEP]` for pairs), as ModernBERT's tokenizer does."""
    from tokenizers import processors

    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )


# Python's str.isspace() characters, by code point.
WHITESPACE = np.array([c for c in range(0x3001) if chr(c).isspace()], dtype=np.uint32)


def code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


# Text in Unicode's stream-safe form has at most 30 combining marks in a row; CPython sorts a
# run of marks in quadratic time (100,000 take seconds), so longer runs are left as they are.
LONGEST_NORMALISED = 32


def nfc_with_offsets(text: str) -> tuple[str, Optional[np.ndarray]]:
    """The NFC form of `text` and, when it differs, where each of its positions lies in `text`
    (`len(nfc) + 1` indices, non-decreasing, the last `len(text)`); (text, None) when `text`
    is already NFC, which costs one check.

    The same words typed with composed or decomposed accents must give the same entities:
    tokenizers see "u" and U+0308 as two words. Only the stretches NFC changes are normalised,
    each from one composition boundary to the next (so they normalise independently); inside
    one, characters are placed by `_align`. Stretches longer than LONGEST_NORMALISED are kept.
    """
    if unicodedata.is_normalized("NFC", text):
        return text, None
    distinct, inverse = np.unique(code_points(text), return_inverse=True)
    flags = np.array([_nfc_flags(chr(c)) for c in distinct.tolist()], dtype=bool).reshape(-1, 2)
    boundary, changes = flags[inverse, 0], flags[inverse, 1]
    boundary[0] = True
    bounds = np.append(np.flatnonzero(boundary), len(text))
    segment = np.cumsum(boundary) - 1
    dirty = np.zeros(len(bounds) - 1, dtype=bool)
    dirty[segment[~boundary | changes]] = True
    dirty &= np.diff(bounds) <= LONGEST_NORMALISED
    starts, ends = bounds[:-1][dirty], bounds[1:][dirty]
    normals = [unicodedata.normalize("NFC", text[a:b]) for a, b in zip(starts.tolist(), ends.tolist())]
    clean = [text[a:b] for a, b in zip([0, *ends.tolist()], [*starts.tolist(), len(text)])]
    pieces = [*chain.from_iterable(zip(clean, normals)), clean[-1]]

    counts = np.where(dirty[segment], 0, 1)  # output characters per input position
    counts[starts] = [len(n) for n in normals]
    origin = np.repeat(np.arange(len(text)), counts)
    first = np.cumsum(counts) - counts  # each input position's first output position
    for a, b, normal in zip(starts.tolist(), ends.tolist(), normals):
        if len(normal) > 1:
            origin[first[a] : first[a] + len(normal)] += _align(text[a:b], normal)
    return "".join(pieces), np.append(origin, len(text))


def _align(original: str, normal: str) -> list[int]:
    """Where each character of `normal`, the NFC form of `original`, begins in `original`: one
    that starts with a base character (combining class 0) at the character of `original` that
    holds that base; a combining mark one past the character before it, but not past the next
    base (marks may have been reordered or composed: no position is exact for them)."""
    owners = [
        i
        for i, c in enumerate(original)
        for d in unicodedata.normalize("NFD", c)
        if not unicodedata.combining(d)
    ]
    owners.append(len(original))
    out: list[int] = []
    seen = 0  # base characters of `normal` passed so far
    for char in normal:
        decomposed = unicodedata.normalize("NFD", char)
        if not unicodedata.combining(decomposed[0]):
            out.append(owners[seen])
        else:
            out.append(min(out[-1] + 1 if out else 0, owners[seen]))
        seen += sum(not unicodedata.combining(d) for d in decomposed)
    return out


@functools.lru_cache(maxsize=None)
def _nfc_flags(char: str) -> tuple[bool, bool]:
    """(NFC may cut before `char`, NFC changes `char` alone)."""
    first = unicodedata.normalize("NFD", char)[0]
    cut = unicodedata.combining(first) == 0 and first not in _composes_backward()
    return cut, unicodedata.normalize("NFC", char) != char


@functools.lru_cache(maxsize=1)
def _composes_backward() -> frozenset[str]:
    """Characters canonical composition may join to the character before them: the second of
    every two-character canonical decomposition, and Hangul vowel and final jamo."""
    seconds = {chr(c) for c in chain(range(0x1161, 0x1176), range(0x11A8, 0x11C3))}
    for c in range(0x30000):
        parts = unicodedata.decomposition(chr(c)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            seconds.add(chr(int(parts[1], 16)))
    return frozenset(seconds)


LETTER, MARK, NUMBER = 1, 2, 4


@functools.lru_cache(maxsize=1)
def _char_classes() -> np.ndarray:
    """LETTER, MARK or NUMBER (Unicode categories L*, M*, N*) of every code point, 0 for the rest;
    the planes above 0x323FF hold none but plane 14's variation selectors (marks)."""
    table = np.zeros(0x110000, dtype=np.uint8)
    bits = {"L": LETTER, "M": MARK, "N": NUMBER}
    for c in chain(range(0x32400), range(0xE0000, 0xE1000)):
        table[c] = bits.get(unicodedata.category(chr(c))[0], 0)
    return table


def _glued(kind: np.ndarray) -> np.ndarray:
    """Positions (of characters of `_char_classes` kinds) that continue the word before them
    whatever the pre-tokenizer says: a combining mark, or a letter or digit right after one,
    where the mark sits on a letter or digit.
    Byte-level BPE splits "q\u0301r" (and Devanagari at every vowel sign) into three words."""
    mark, wordish = (kind & MARK) > 0, kind > 0
    if not mark.any():
        return np.zeros(len(kind), dtype=bool)
    positions = np.arange(len(kind))
    base = np.maximum.accumulate(
        np.where(mark, -1, positions)
    )  # the last non-mark at or before each position
    base_wordish = wordish[np.maximum(base, 0)] & (base >= 0)
    out = np.zeros(len(kind), dtype=bool)
    out[1:] = wordish[1:] & (mark[1:] | mark[:-1]) & base_wordish[:-1]
    return out


def word_starts(text: str, offsets: np.ndarray, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which tokens carry content and which of those begin a word.

    Whitespace-only tokens (a byte-level BPE's lone leading-space marker, newlines) carry no
    content: they never begin a word or vote for its label. A content token begins a word when
    the pre-tokenizer's word (`words`, -1 for none) changes, unless it is `_glued` to the
    character before it (combining marks), or when it begins a character of a script written
    without spaces (CJK, Thai, ...), where every character but a combining mark is a word.
    Pieces of one multi-byte character never begin a word.
    """
    n = len(offsets)
    if n == 0:
        return np.zeros(0, bool), np.zeros(0, bool)
    points = code_points(text)
    # Non-space characters before each position: a token has content if its span holds one.
    solid = np.concatenate([[0], np.cumsum(~np.isin(points, WHITESPACE))])
    a, b = offsets[:, 0], offsets[:, 1]
    content = solid[b] - solid[a] > 0
    unspaced = np.zeros(len(points) + 1, dtype=bool)
    for low, high in UNSPACED_SCRIPTS.values():
        unspaced[:-1] |= (points >= low) & (points <= high)
    kind = _char_classes()[points]
    joined = np.append(_glued(kind), False)
    mark = np.append((kind & MARK) > 0, False)

    starts = np.zeros(n, dtype=bool)
    kept = np.flatnonzero(content)
    if len(kept):
        here, before = kept[1:], kept[:-1]
        same_piece = (a[here] == a[before]) & (b[here] == b[before])
        at = a[here]
        in_unspaced = (unspaced[at] | unspaced[np.maximum(at - 1, 0)] & (at > 0)) & ~(joined[at] & mark[at])
        new_word = (words[here] != words[before]) & ~joined[at] | in_unspaced
        starts[kept[0]] = True
        starts[here] = new_word & ~same_piece
    return content, starts


def unpaired_surrogate(text: str) -> Optional[int]:
    """Index of the first lone surrogate in `text` (None: there is none). Such text is not valid
    Unicode: tokenizers refuses it, and JSON's "\\ud800" or undecodable bytes produce it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return err.start
    return None


def check_model_file(path: Path, folder: Path) -> None:
    """A file a model folder provides must be a plain file that stays inside the folder (a
    Hugging Face cache snapshot links into its repository's blobs/, which counts as inside)."""
    folder = folder.resolve()
    root = folder.parent.parent if folder.parent.name == "snapshots" else folder
    target = path.resolve()
    if root not in target.parents or not stat.S_ISREG(target.stat().st_mode):
        raise AnnoError(
            f"{path} is not a plain file inside {folder} (a link out of the folder, or a device); replace it with the real file"
        )
