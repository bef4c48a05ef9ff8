"""The NER pipeline: text -> tokens -> windows -> model -> stitched probabilities -> entities."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from .backends import is_torch_model, run
from .decode import check_aggregation, decode
from .entities import Entity
from .errors import AnnoError
from .schemes import entity_types
from .tokenizer import Tokenizer, Tokens, pad_rows, unpaired_surrogate
from .windows import best_window, default_stride, plan_windows

TOKENS_PER_BATCH_ITEM = 512  # a batch holds batch_size short windows, or fewer long ones
DEFAULT_NAME = "default model (built in)"
DEFAULT_AGGREGATION = "first"  # the options' defaults, declared once for the library, CLI, API and UI
DEFAULT_BATCH_SIZE = 8


@dataclass
class Analysis:
    entities: list[Entity]
    n_tokens: int
    n_windows: int
    seconds: float  # for the whole call that produced it


class NER:
    """Named-entity recognition with a token-classification checkpoint.

    >>> ner = NER.from_pretrained("path/to/converted-model")
    >>> [e.to_dict() for e in ner("Marie Curie was born in Warsaw.")]
    """

    def __init__(
        self,
        model,
        tokenizer: Tokenizer,
        id2label: dict[int, str],
        *,
        max_length: Optional[int] = None,
        stride: Optional[int] = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        aggregation: str = DEFAULT_AGGREGATION,
        labels: Optional[Iterable[str]] = None,
        min_score: float = 0.0,
        name: str = "",
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.id2label = dict(id2label)
        self.name = name
        self.prefix, self.suffix = tokenizer.special_tokens()
        limit = model.args.max_position_embeddings
        self.max_length = limit if max_length is None else int(max_length)
        if not len(self.prefix) + len(self.suffix) < self.max_length <= limit:
            raise AnnoError(
                f"max_length {self.max_length} must be above {len(self.prefix) + len(self.suffix)} "
                f"and at most the model's {limit} positions"
            )
        self.capacity = self.max_length - len(self.prefix) - len(self.suffix)
        self.stride = default_stride(self.capacity) if stride is None else int(stride)
        plan_windows(self.capacity + 1, self.capacity, self.stride)  # validates the stride now
        if batch_size < 1:
            raise AnnoError(f"batch_size must be at least 1, not {batch_size}")
        self.batch_size = batch_size
        self.aggregation = check_aggregation(aggregation)
        self.labels = self._check_labels(labels)
        self.min_score = check_min_score(min_score)

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: Optional[str | Path] = None,
        backend: str = "auto",
        device: Optional[str] = None,
        dtype: Optional[str] = None,
        **options,
    ) -> "NER":
        """A converted folder, a Hugging Face folder or a hub id of a token-classification model
        (None: the embedded default model, see anno_mlx/default_model/MODEL_CARD.md), run by
        `backend` ("auto", "mlx" or "torch") on `device` (see `anno_mlx.backends`)."""
        from .loading import load

        model, tokenizer = load(path_or_id, backend=backend, device=device, dtype=dtype)
        if path_or_id is None:
            path_or_id = DEFAULT_NAME
        if not hasattr(model, "classifier"):
            raise AnnoError(
                f"{path_or_id} is not a token-classification model (it has no classifier head); "
                f"give an NER checkpoint, or fine-tune this one first"
            )
        if tokenizer is None:
            raise AnnoError(
                f"{path_or_id} has no tokenizer.json; convert it with `python -m anno_mlx convert`"
            )
        return cls(model, tokenizer, model.args.id2label, name=str(path_or_id), **options)

    @property
    def backend(self) -> str:
        """What runs the model, e.g. "MLX on gpu" or "PyTorch on cuda"."""
        if is_torch_model(self.model):
            return f"PyTorch on {next(self.model.parameters()).device.type}"
        import mlx.core as mx

        return f"MLX on {mx.default_device().type.name}"

    @property
    def entity_types(self) -> list[str]:
        return entity_types(self.id2label)

    def __call__(self, text: str, **options) -> list[Entity]:
        """Entities of one text; `options` override labels, min_score, aggregation, progress."""
        return self.batch([text], **options)[0]

    def batch(
        self,
        texts: Sequence[str],
        *,
        labels: Optional[Iterable[str]] = None,
        min_score: Optional[float] = None,
        aggregation: Optional[str] = None,
        progress: bool = False,
    ) -> list[list[Entity]]:
        """Entities of many texts. Windows of all texts are grouped by length, so short texts do
        not pay for long ones' padding; each result equals a one-at-a-time call."""
        keep = self.selection(labels, min_score)
        return [
            keep(result.entities)
            for result in self.analyze(texts, aggregation=aggregation, progress=progress)
        ]

    def selection(
        self, labels: Optional[Iterable[str]] = None, min_score: Optional[float] = None
    ) -> Callable[[list[Entity]], list[Entity]]:
        """The labels/min_score filter (defaults: this pipeline's), checked now, applied to
        `analyze` results by the returned function."""
        wanted = self._check_labels(labels) if labels is not None else self.labels
        threshold = self.min_score if min_score is None else check_min_score(min_score)
        return lambda entities: [
            e for e in entities if e.score >= threshold and (wanted is None or e.label in wanted)
        ]

    def analyze(
        self, texts: Sequence[str], *, aggregation: Optional[str] = None, progress: bool = False
    ) -> list["Analysis"]:
        """Every entity of each text, before the labels/min_score filters, with the token and
        window counts and the time taken (for status lines and benchmarks)."""
        started = time.perf_counter()
        texts = list(texts)
        for i, text in enumerate(texts):
            which = f"text {i}" if len(texts) > 1 else "the text"
            if not isinstance(text, str):
                raise AnnoError(f"{which} is a {type(text).__name__}, not a string")
            bad = unpaired_surrogate(text)
            if bad is not None:
                raise AnnoError(
                    f"{which} holds an unpaired surrogate (U+{ord(text[bad]):04X}) at index {bad}; it is not valid Unicode"
                )
        aggregation = check_aggregation(aggregation or self.aggregation)
        tokens = [self.tokenizer.tokenize(text) if text.strip() else None for text in texts]
        probs, plans = self._probabilities(tokens, progress)
        found = [
            [] if t is None else decode(text, t, p, self.id2label, aggregation)
            for text, t, p in zip(texts, tokens, probs)
        ]
        seconds = time.perf_counter() - started
        return [
            Analysis(entities, 0 if t is None else len(t), 0 if plan is None else len(plan), seconds)
            for entities, t, plan in zip(found, tokens, plans)
        ]

    def _probabilities(self, documents: list[Optional[Tokens]], progress: bool) -> tuple[list, list]:
        """Stitched label probabilities [n_tokens, n_labels] for each tokenized document, and
        each document's windows."""
        plans = [None if d is None else plan_windows(len(d), self.capacity, self.stride) for d in documents]
        items = [(doc, w) for doc, plan in enumerate(plans) if plan for w in range(len(plan))]
        items.sort(key=lambda item: -(plans[item[0]][item[1]][1] - plans[item[0]][item[1]][0]))
        keep = [
            None if plan is None else best_window(len(documents[i]), plan) for i, plan in enumerate(plans)
        ]
        out = [None if d is None else np.zeros((len(d), len(self.id2label)), np.float32) for d in documents]

        bar = _progress(len(items), progress)
        for batch in self._batches(items, plans):
            rows = []
            for doc, w in batch:
                start, end = plans[doc][w]
                rows.append(np.concatenate([self.prefix, documents[doc].ids[start:end], self.suffix]))
            batch_probs = self._forward(rows)
            for (doc, w), p in zip(batch, batch_probs):
                start, end = plans[doc][w]
                window_probs = p[len(self.prefix) : len(self.prefix) + end - start]
                mine = keep[doc][start:end] == w
                out[doc][start:end][mine] = window_probs[mine]
            bar.update(len(batch))
        bar.close()
        return out, plans

    def _batches(self, items, plans):
        budget = self.batch_size * TOKENS_PER_BATCH_ITEM
        batch: list = []
        for item in items:
            start, end = plans[item[0]][item[1]]
            width = max([end - start] + [plans[d][w][1] - plans[d][w][0] for d, w in batch])
            if batch and (len(batch) >= self.batch_size or (len(batch) + 1) * width > budget):
                yield batch
                batch = []
            batch.append(item)
        if batch:
            yield batch

    def _forward(self, rows: list[np.ndarray]) -> list[np.ndarray]:
        """Label probabilities for each row of token ids (special tokens included)."""
        ids, mask = pad_rows(rows, self.tokenizer.pad_token_id)
        probs = run(self.model, ids, None if mask.all() else mask, softmax=True)
        if not np.isfinite(probs).all():
            raise AnnoError(
                f"{self.name or 'the model'} computes NaN or infinite scores; its weights or config.json are broken"
            )
        return [probs[i, : len(r)] for i, r in enumerate(rows)]

    def _check_labels(self, labels: Optional[Iterable[str]]) -> Optional[set[str]]:
        wanted = label_set(labels)
        if wanted is None:
            return None
        unknown = sorted(wanted - set(self.entity_types))
        if unknown:
            raise AnnoError(
                f"label {', '.join(unknown)} is not one this model predicts; it predicts {', '.join(self.entity_types)}"
            )
        return wanted


def label_set(labels: Optional[Iterable[str] | str]) -> Optional[set[str]]:
    """The entity types asked for ("PER,ORG" or a list), None for all. Naming none is an error:
    an empty filter would silently drop every entity."""
    if labels is None:
        return None
    try:
        names = labels.split(",") if isinstance(labels, str) else list(labels)
    except TypeError:
        names = [labels]
    if not all(isinstance(name, str) for name in names):
        raise AnnoError(f"labels must be entity type names, e.g. PER,ORG, not {names!r}")
    wanted = {name.strip() for name in names if name.strip()}
    if not wanted:
        raise AnnoError(
            f"no labels given ({labels!r} names no entity type); name some, e.g. PER,ORG, or leave labels out for all"
        )
    return wanted


def check_min_score(min_score: float) -> float:
    """`min_score` as a float in [0, 1]; NaN, infinities and other numbers would silently keep
    every entity or none."""
    try:
        value = float(min_score)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise AnnoError(f"min_score must be a number from 0 to 1, not {min_score!r}")
    return value


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled or total <= 1, file=sys.stderr, unit="window", leave=False)
