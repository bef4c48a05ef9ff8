"""Zero-shot NER with GLiNER span models: the entity types are text given with each call.

    text ─ split_words ─> words with character offsets                                   prepare
         ─ plan_word_windows ─> windows of words that fit the encoder beside the labels
         ─ runner + models/gliner ─> span probabilities per window                         forward
         ─ each span from the window where it has the most context on both sides
         ─ decode_spans (threshold, flat or nested, multi-label) ─> entities               decode

A document longer than the model's context is read in overlapping windows of words; every span
is scored where it sits furthest from a window edge and decoded once over the whole document, so
none is cut at an edge or reported twice. The stages and options are `NER`'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .batching import length_batches
from .decode import apart
from .entities import Entity
from .errors import AnnoError
from .ner import NER, NEROptions, check_score, check_texts, progress_bar
from .runners import Runner, runner_for
from .tokenizer import Tokenizer, pad_rows

# GLiNER's word splitter: a run of word characters (joined by single - or _), or any other
# non-space character on its own.
WORD = re.compile(r"\w+(?:[-_]\w+)*|\S")
DEFAULT_THRESHOLD = 0.5
LABELS_TOKENIZER = "labels_tokenizer"
LABEL_CACHE = 32  # label sets whose bi-encoder vectors are kept


def split_words(text: str) -> np.ndarray:
    """[n, 2] character offsets of the words of `text`, as GLiNER splits them."""
    spans = [(m.start(), m.end()) for m in WORD.finditer(text)]
    return np.asarray(spans, dtype=np.int64).reshape(-1, 2)


def plan_word_windows(
    counts: Sequence[int], capacity: int, max_words: Optional[int], stride: Optional[int], min_overlap: int
) -> list[tuple[int, int]]:
    """[start, end) word ranges covering words whose token `counts` are given: each window holds
    at most `capacity` tokens (at least one word, however long) and `max_words` words, and
    shares `stride` words with the next (default a quarter of the window, never fewer than
    `min_overlap`, so that every span of up to `min_overlap + 1` words lies in a window)."""
    windows: list[tuple[int, int]] = []
    start, n = 0, len(counts)
    while True:
        end, used = start, 0
        while end < n and (max_words is None or end - start < max_words):
            if end > start and used + counts[end] > capacity:
                break
            used += counts[end]
            end += 1
        windows.append((start, end))
        if end >= n:
            return windows
        overlap = max((end - start) // 4 if stride is None else stride, min_overlap)
        start = max(start + 1, end - overlap)
        while (
            start < end
            and (  # the next window must reach past this one
                sum(counts[start : end + 1]) > capacity
                or (max_words is not None and end + 1 - start > max_words)
            )
        ):
            start += 1


def span_context(n_words: int, max_width: int) -> np.ndarray:
    """[n, K] for a window of `n_words`: min(words before, words after) of each span inside
    it, -1 for spans that run past its end."""
    s = np.arange(n_words)[:, None]
    last = s + np.arange(max_width)[None, :]
    return np.where(last < n_words, np.minimum(s, n_words - 1 - last), -1)


def decode_spans(
    probs: np.ndarray, threshold: float, nested: bool, multi_label: bool, parts: Sequence[int] = ()
) -> list[tuple[int, int, int, float]]:
    """(first word, last word, label index, probability) of the spans kept from `probs`
    [n, K, C]: those above `threshold` that lie in one part (`parts`: the words that begin a
    new table cell or paragraph, `decode.apart`), taken greedily by probability, each refused
    when it overlaps a kept one (nested: only when it crosses one) or, unless `multi_label`,
    when it is a kept span with another label. In document order."""
    n, K, _ = probs.shape
    ends = np.arange(n)[:, None] + np.arange(K)[None, :]
    part = np.zeros(n + K, dtype=np.int64)
    part[np.asarray(parts, dtype=np.int64)] = 1
    part = np.cumsum(part)
    valid = ((ends < n) & (part[ends] == part[:n, None]))[..., None]
    s, k, c = np.nonzero((probs > threshold) & valid)
    scores = probs[s, k, c]
    kept: list[tuple[int, int, int, float]] = []
    owner = np.full(n, -1, dtype=np.int64)  # flat: the kept span covering each word
    for i in np.argsort(-scores, kind="stable"):
        first, last = int(s[i]), int(s[i] + k[i])
        if nested:
            others = range(len(kept))
        else:
            covering = owner[first : last + 1]
            others = set(covering[covering >= 0].tolist())
        clash = False
        for j in others:
            a, b = kept[j][:2]
            if (a, b) == (first, last):
                clash = not multi_label
            else:
                clash = not nested or a < first <= b < last or first < a <= last < b
            if clash:
                break
        if clash:
            continue
        if not nested:
            owner[first : last + 1] = len(kept)
        kept.append((first, last, int(c[i]), float(scores[i])))
    return sorted(kept, key=lambda span: span[0])


@dataclass
class PreparedWords:
    """One text made ready for a span model (None fields for a blank text)."""

    text: str
    words: Optional[np.ndarray]  # [n, 2] character offsets
    word_tokens: Optional[list[list[int]]]
    windows: list[tuple[int, int]]

    @property
    def tokens(self) -> Optional[list[int]]:
        return None if self.word_tokens is None else [t for word in self.word_tokens for t in word]


class ZeroShotNER(NER):
    """Named-entity recognition with a GLiNER span model: any labels, given as text.

    >>> ner = NER.from_pretrained("path/to/gliner-model")
    >>> ner("Aspirin 300 mg was given on day 2.", labels=["drug", "dose"], threshold=0.4)

    Options are `NEROptions`: `labels` (required, in the constructor or the call) is the prompt,
    `threshold`, `nested` and `multi_label` decide which spans are entities, `max_length` is
    the encoder's tokens per window (labels included) and `stride` the words windows share.
    """

    def __init__(
        self,
        runner: Runner,
        tokenizer: Tokenizer,
        labels_tokenizer: Optional[Tokenizer] = None,
        *,
        name: str = "",
        **options,
    ):
        self.runner = runner_for(runner)
        self.args = self.runner.args
        self.tokenizer = tokenizer
        self.labels_tokenizer = labels_tokenizer
        self.name = name
        self.id2label: dict[int, str] = {}
        self.prefix, self.suffix = tokenizer.special_tokens()
        self.label_vectors: dict[tuple[str, ...], np.ndarray] = {}
        if self.args.bi_encoder:
            if labels_tokenizer is None:
                raise AnnoError(
                    f"{name or 'this bi-encoder'} has no {LABELS_TOKENIZER}/tokenizer.json; re-convert it"
                )
        else:
            self.ent_id = self._token_id(self.args.ent_token)
            self._token_id(self.args.sep_token)
            if self.args.class_token_index not in (-1, self.ent_id):
                raise AnnoError(
                    f"the tokenizer gives {self.args.ent_token} id {self.ent_id} but gliner_config.json says "
                    f"{self.args.class_token_index}; the tokenizer belongs to another model"
                )
        self.defaults = self.options(NEROptions(), **options)

    @classmethod
    def from_runner(cls, runner: Runner, tokenizer: Optional[Tokenizer], folder: Path, name: str, **options):
        """The pipeline for a loaded GLiNER model in `folder` (its tokenizers are read there)."""
        if tokenizer is None:
            raise AnnoError(f"{name} has no tokenizer.json; convert it with `python -m anno_mlx convert`")
        labels_tokenizer = None
        if runner.args.bi_encoder:
            labels_tokenizer = Tokenizer.from_folder(
                Path(folder) / LABELS_TOKENIZER, runner.args.labels_encoder.pad_token_id
            )
            labels_tokenizer.check_fits(runner.args.labels_encoder.vocab_size, folder)
        return cls(runner, tokenizer, labels_tokenizer, name=name, **options)

    def _token_id(self, token: str) -> int:
        found = self.tokenizer.inner.token_to_id(token)
        if found is None:
            raise AnnoError(
                f"the tokenizer of {self.name or 'this model'} lacks GLiNER's {token} token; re-convert it"
            )
        return found

    @property
    def entity_types(self) -> list[str]:
        return list(self.defaults.labels or ())

    def _check_labels(self, labels) -> Optional[tuple[str, ...]]:
        from .ner import label_set

        return label_set(labels)  # any text is a label

    def _span_options(self, chosen: NEROptions) -> dict:
        return {
            "threshold": DEFAULT_THRESHOLD
            if chosen.threshold is None
            else check_score("threshold", chosen.threshold),
            "nested": bool(chosen.nested),
            "multi_label": bool(chosen.multi_label),
            "one_type_per_name": False,  # each span keeps the label the span decoder gives it
        }

    def window_shape(self, options: NEROptions) -> tuple[int, int]:
        """(tokens per window with the labels and special tokens, words shared by neighbours;
        -1: a quarter of each window)."""
        for name in ("max_length", "stride"):
            value = getattr(options, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise AnnoError(f"{name} must be a whole number, not {value!r}")
        limit = self.args.max_length
        max_length = limit if options.max_length is None else options.max_length
        if not len(self.prefix) + len(self.suffix) < max_length <= limit:
            raise AnnoError(f"max_length {max_length} must be at most the model's {limit} positions")
        return max_length, -1 if options.stride is None else options.stride

    @property
    def max_words(self) -> Optional[int]:
        """Words per window: what the model was trained on; a ModernBERT encoder reads its whole
        context (8,192 tokens) instead."""
        return None if self.args.encoder.model_type == "modernbert" else self.args.max_len

    def prompt(self, labels: tuple[str, ...]) -> list[int]:
        """A uni-encoder's prompt: <<ENT>> label ... <<SEP>>, each label one pre-split word (none
        for a bi-encoder, whose labels are encoded on their own)."""
        if self.args.bi_encoder:
            return []
        words = [w for label in labels for w in (self.args.ent_token, label)] + [self.args.sep_token]
        return [t for word in self.tokenizer.encode_words(words) for t in word]

    def prepare(self, texts: Sequence[str], options: NEROptions) -> list[PreparedWords]:
        """Stage 1: each text checked, split into words, tokenized and cut into windows."""
        texts = check_texts(texts)
        labels = self._labels(options)
        max_length, stride = self.window_shape(options)
        prompt = self.prompt(labels)
        capacity = max_length - len(self.prefix) - len(self.suffix) - len(prompt)
        if capacity < 1:
            raise AnnoError(
                f"the labels take {len(prompt)} of the model's {max_length} tokens; give fewer or shorter labels"
            )
        prepared = []
        for text in texts:
            words = split_words(text)
            if not len(words):
                prepared.append(PreparedWords(text, None, None, []))
                continue
            tokens = self.tokenizer.encode_words([text[a:b] for a, b in words])
            windows = plan_word_windows(
                [len(t) for t in tokens],
                capacity,
                self.max_words,
                None if stride < 0 else stride,
                self.args.max_width - 1,
            )
            prepared.append(PreparedWords(text, words, [t[:capacity] for t in tokens], windows))
        return prepared

    def forward(
        self, prepared: list[PreparedWords], options: NEROptions, progress: bool = False
    ) -> list[Optional[np.ndarray]]:
        """Stage 2: span probabilities [n_words, K, n_labels] of each text (None when blank),
        each span from its best window. All texts' windows run together in length batches."""
        labels = self._labels(options)
        K = self.args.max_width
        head = [*self.prefix, *self.prompt(labels)]
        items = [(doc, w) for doc, p in enumerate(prepared) for w in range(len(p.windows))]
        rows = [
            [t for word in prepared[doc].word_tokens[slice(*prepared[doc].windows[w])] for t in word]
            for doc, w in items
        ]
        out = [
            None if p.words is None else np.zeros((len(p.words), K, len(labels)), np.float32)
            for p in prepared
        ]
        # Each span's best (context, -window) so far: the most context wins, the earlier window on ties.
        best = [None if p.words is None else np.full((len(p.words), K, 2), -(2**62)) for p in prepared]
        inputs = self._label_inputs(labels, head)
        bar = progress_bar(len(items), progress)
        for batch in length_batches([len(r) + len(head) for r in rows], options.batch_size):
            ids, mask = pad_rows(
                [np.array(head + rows[i] + self.suffix) for i in batch], self.tokenizer.pad_token_id
            )
            windows = [prepared[items[i][0]].windows[items[i][1]] for i in batch]
            lengths = np.array([end - start for start, end in windows])
            word_index = np.zeros((len(batch), lengths.max()), np.int64)
            for r, i in enumerate(batch):
                doc, w = items[i]
                start, end = prepared[doc].windows[w]
                sizes = [len(t) for t in prepared[doc].word_tokens[start:end]]
                word_index[r, : end - start] = len(head) + np.concatenate([[0], np.cumsum(sizes)[:-1]])
            logits = self.runner.run(
                input_ids=ids, attention_mask=mask, word_index=word_index, lengths=lengths, **inputs
            )
            if not np.isfinite(logits).all():
                raise AnnoError(
                    f"{self.name or 'the model'} computes NaN or infinite scores; its weights or config are broken"
                )
            probs = 1.0 / (1.0 + np.exp(-logits))
            for r, i in enumerate(batch):
                doc, w = items[i]
                start, end = prepared[doc].windows[w]
                rank = np.stack(np.broadcast_arrays(span_context(end - start, K), -w), axis=-1)
                so_far = best[doc][start:end]
                better = (rank[..., 0] > so_far[..., 0]) | (
                    (rank[..., 0] == so_far[..., 0]) & (rank[..., 1] > so_far[..., 1])
                )
                better &= rank[..., 0] >= 0
                out[doc][start:end][better] = probs[r, : end - start][better]
                so_far[better] = rank[better]
            bar.update(len(batch))
        bar.close()
        return out

    def decode(
        self, prepared: list[PreparedWords], probabilities: list[Optional[np.ndarray]], options: NEROptions
    ) -> list[list[Entity]]:
        """Stage 3: the entities of each text, by `threshold`, `nested` and `multi_label`."""
        labels = self._labels(options)
        found = []
        for p, probs in zip(prepared, probabilities):
            entities = []
            if probs is not None:
                parts = apart(p.text, p.words[:, 0], p.words[:, 1])
                for first, last, c, score in decode_spans(
                    probs, options.threshold, options.nested, options.multi_label, parts
                ):
                    start, end = int(p.words[first, 0]), int(p.words[last, 1])
                    entities.append(Entity(p.text[start:end], labels[c], start, end, score))
            found.append(entities)
        return found

    def _labels(self, options: NEROptions) -> tuple[str, ...]:
        if not options.labels:
            raise AnnoError(
                f"{self.name or 'this model'} is a zero-shot model: name the entity types to find, "
                f"e.g. labels=['person', 'company'] (CLI: --labels person,company)"
            )
        return tuple(options.labels)

    def _label_inputs(self, labels: tuple[str, ...], head: list[int]) -> dict[str, np.ndarray]:
        """The labels' part of the model's inputs: where each label's vector is in `head` (the
        special tokens and prompt every row starts with; uni-encoder), or the label vectors
        themselves (bi-encoder, kept per label set)."""
        if not self.args.bi_encoder:
            ent = np.flatnonzero(np.array(head) == self.ent_id)
            return {"label_index": ent + (0 if self.args.embed_ent_token else 1)}
        if labels not in self.label_vectors:
            encoded = self.labels_tokenizer.encode_batch(list(labels))
            ids, mask = pad_rows([np.array(e.ids) for e in encoded], self.labels_tokenizer.pad_token_id)
            if len(self.label_vectors) >= LABEL_CACHE:
                self.label_vectors.pop(next(iter(self.label_vectors)))
            self.label_vectors[labels] = self.runner.run("encode_labels", input_ids=ids, attention_mask=mask)
        return {"label_embeddings": self.label_vectors[labels]}
