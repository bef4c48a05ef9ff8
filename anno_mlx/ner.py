"""The NER pipeline: text -> tokens -> windows -> model -> stitched probabilities -> entities -> filter."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, fields, replace
from numbers import Integral
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from .batching import Row, call_arrays, model_calls, packed_row_tokens, packs_by_default, split_outputs
from .decode import check_aggregation, decode
from .entities import Entity
from .errors import AnnoError
from .runners import Runner, runner_for
from .schemes import entity_types, trained_on_iob2
from .tokenizer import Tokenizer, Tokens, unpaired_surrogate
from .windows import best_window, check_windows, default_stride, plan_windows

DEFAULT_NAME = "default model (built in)"
DEFAULT_AGGREGATION = "first"  # the options' defaults, declared once for the library, CLI, API and UI
DEFAULT_BATCH_SIZE = 8


@dataclass(frozen=True)
class NEROptions:
    """What one call may choose. `NER.options(...)` checks a set of choices against the model and
    fills the rest from the pipeline's defaults, so every stage receives checked values."""

    labels: Optional[frozenset[str]] = None  # entity types to keep; None: all the model predicts
    min_score: float = 0.0  # entities scored below are dropped
    aggregation: str = DEFAULT_AGGREGATION  # how tokens become words (see decode.py)
    one_type_per_name: bool = True  # a repeated name has one type in a text (decode.py); zero-shot: off
    max_length: Optional[int] = None  # tokens per window with special tokens; None: the model's positions
    stride: Optional[int] = None  # tokens neighbouring windows share; None: windows.default_stride
    batch_size: int = DEFAULT_BATCH_SIZE  # windows per model call (fewer when long; packed: x 512 tokens)
    # Zero-shot (GLiNER) models only; None: their defaults (zeroshot.py).
    threshold: Optional[float] = None  # a span is an entity candidate above this probability (0.5)
    nested: Optional[bool] = None  # entities may lie inside others (False: no two share a word)
    multi_label: Optional[bool] = None  # one span may carry several labels


OPTION_NAMES = tuple(f.name for f in fields(NEROptions))
SPAN_OPTIONS = ("threshold", "nested", "multi_label")


@dataclass
class Prepared:
    """One text made ready for the model: its tokens (None for a blank text) and its windows."""

    text: str
    tokens: Optional[Tokens]
    windows: list[tuple[int, int]]


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

    A call runs four stages, each a method: `prepare` (check, tokenize, plan windows), `forward`
    (batch the windows, run the model, stitch probabilities), `decode` (probabilities ->
    entities) and `select` (the labels/min_score filter). Options (`NEROptions`) given to the
    constructor are the defaults; any call may override them.
    """

    def __init__(
        self,
        runner: Runner,
        tokenizer: Tokenizer,
        id2label: dict[int, str],
        *,
        name: str = "",
        strict_iob2: bool = False,
        **options,
    ):
        self.runner = runner_for(runner)  # an MLX or PyTorch model in memory is wrapped in its runner
        self.tokenizer = tokenizer
        self.id2label = dict(id2label)
        self.name = name
        # Trained on IOB2 tags (`schemes.trained_on_iob2`): an I- never begins an entity (decode.py).
        self.strict_iob2 = strict_iob2
        self.prefix, self.suffix = tokenizer.special_tokens()
        # Short windows share rows end to end where the model takes packed rows (`batching`);
        # False sends one window per row, padded.
        self.packing = packs_by_default(self.runner)
        self.defaults = self.options(NEROptions(), **options)

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: Optional[str | Path] = None,
        backend: str = "auto",
        device: Optional[str] = None,
        dtype: Optional[str] = None,
        strict_iob2: Optional[bool] = None,
        **options,
    ) -> "NER":
        """A converted folder, a Hugging Face folder or a hub id of a token-classification model
        (None: the embedded default model, see anno_mlx/default_model/MODEL_CARD.md), run by
        `backend` ("auto", "mlx" or "torch") on `device` (see `anno_mlx.runners`); `options`
        are `NEROptions` fields. `strict_iob2` says the labels are IOB2 (decode.py); None reads
        it from config.json (`schemes.trained_on_iob2`)."""
        from .loading import load_runner, resolve_model

        runner, tokenizer = load_runner(path_or_id, backend=backend, device=device, dtype=dtype)
        from .checkpoint import read_config  # imports MLX: only once the backend has prepared it

        folder = resolve_model(path_or_id)
        if path_or_id is None:
            path_or_id = DEFAULT_NAME
        elif runner.args.model_type == "gliner":
            from .zeroshot import ZeroShotNER

            return ZeroShotNER.from_runner(runner, tokenizer, folder, str(path_or_id), **options)
        if not hasattr(runner.model, "classifier"):
            raise AnnoError(
                f"{path_or_id} is not a token-classification model (it has no classifier head); "
                f"give an NER checkpoint, or fine-tune this one first"
            )
        if tokenizer is None:
            raise AnnoError(
                f"{path_or_id} has no tokenizer.json; convert it with `python -m anno_mlx convert`"
            )
        strict = trained_on_iob2(read_config(folder)) if strict_iob2 is None else strict_iob2
        return cls(
            runner, tokenizer, runner.args.id2label, name=str(path_or_id), strict_iob2=strict, **options
        )

    def options(self, base: Optional[NEROptions] = None, **overrides) -> NEROptions:
        """`base` (default: this pipeline's defaults) with the `overrides` that are not None,
        every field checked against this model; the one place options are validated."""
        unknown = sorted(set(overrides) - set(OPTION_NAMES))
        if unknown:
            raise AnnoError(f"unknown option {', '.join(unknown)}; the options are {', '.join(OPTION_NAMES)}")
        chosen = replace(
            self.defaults if base is None else base, **{k: v for k, v in overrides.items() if v is not None}
        )
        if not isinstance(chosen.one_type_per_name, bool):
            raise AnnoError(f"one_type_per_name must be True or False, not {chosen.one_type_per_name!r}")
        if not isinstance(chosen.batch_size, Integral) or chosen.batch_size < 1:
            raise AnnoError(f"batch_size must be a whole number of at least 1, not {chosen.batch_size!r}")
        checked = replace(
            chosen,
            labels=self._check_labels(chosen.labels),
            min_score=check_score("min_score", chosen.min_score),
            aggregation=check_aggregation(chosen.aggregation),
            **self._span_options(chosen),
        )
        self.window_shape(checked)
        return checked

    def window_shape(self, options: NEROptions) -> tuple[int, int]:
        """(text tokens per window, tokens shared by neighbours) for `options`."""
        for name in ("max_length", "stride"):
            value = getattr(options, name)
            if value is not None and (not isinstance(value, Integral) or isinstance(value, bool)):
                raise AnnoError(f"{name} must be a whole number of tokens, not {value!r}")
        specials = len(self.prefix) + len(self.suffix)
        limit = self.runner.args.max_length
        max_length = limit if options.max_length is None else int(options.max_length)
        if not specials < max_length <= limit:
            raise AnnoError(
                f"max_length {max_length} must be above {specials} and at most the model's {limit} positions"
            )
        capacity = max_length - specials
        stride = default_stride(capacity) if options.stride is None else int(options.stride)
        check_windows(capacity, stride)
        return capacity, stride

    @property
    def capacity(self) -> int:
        """Text tokens per window by default."""
        return self.window_shape(self.defaults)[0]

    @property
    def stride(self) -> int:
        return self.window_shape(self.defaults)[1]

    @property
    def aggregation(self) -> str:
        return self.defaults.aggregation

    @property
    def model(self):
        """The network the runner runs (an MLX or PyTorch module)."""
        return self.runner.model

    @property
    def runs_on(self) -> str:
        """What runs the model, e.g. "MLX on gpu" or "PyTorch on cuda"."""
        return self.runner.describe()

    @property
    def entity_types(self) -> list[str]:
        return entity_types(self.id2label)

    def __call__(self, text: str, options: Optional[NEROptions] = None, **overrides) -> list[Entity]:
        """Entities of one text; `overrides` are `NEROptions` fields, or `progress`."""
        return self.batch([text], options, **overrides)[0]

    def batch(
        self,
        texts: Sequence[str],
        options: Optional[NEROptions] = None,
        *,
        progress: bool = False,
        **overrides,
    ) -> list[list[Entity]]:
        """Entities of many texts. Windows of all texts are grouped by length, so a batch of
        short texts runs short rows; each result equals a one-at-a-time call."""
        options = self.options(options, **overrides)
        _, found = self._decoded(texts, options, progress)
        return [self.select(entities, options) for entities in found]

    def analyze(
        self,
        texts: Sequence[str],
        options: Optional[NEROptions] = None,
        *,
        progress: bool = False,
        **overrides,
    ) -> list["Analysis"]:
        """Every entity of each text, before the labels/min_score filter, with the token and
        window counts and the time taken (for status lines and benchmarks)."""
        started = time.perf_counter()
        options = self.options(options, **overrides)
        prepared, found = self._decoded(texts, options, progress)
        seconds = time.perf_counter() - started
        return [
            Analysis(entities, 0 if p.tokens is None else len(p.tokens), len(p.windows), seconds)
            for entities, p in zip(found, prepared)
        ]

    def _decoded(
        self, texts: Sequence[str], options: NEROptions, progress: bool
    ) -> tuple[list[Prepared], list[list[Entity]]]:
        """Stages 1-3 with options already checked."""
        prepared = self.prepare(texts, options)
        return prepared, self.decode(prepared, self.forward(prepared, options, progress), options)

    def prepare(self, texts: Sequence[str], options: NEROptions) -> list[Prepared]:
        """Stage 1: each text checked, tokenized and cut into windows."""
        texts = check_texts(texts)
        capacity, stride = self.window_shape(options)
        prepared = []
        for text in texts:
            tokens = self.tokenizer.tokenize(text) if text.strip() else None
            windows = [] if tokens is None else plan_windows(len(tokens), capacity, stride)
            prepared.append(Prepared(text, tokens, windows))
        return prepared

    def forward(
        self, prepared: list[Prepared], options: NEROptions, progress: bool = False
    ) -> list[Optional[np.ndarray]]:
        """Stage 2: stitched label probabilities [n_tokens, n_labels] for each text (None for a
        blank one). All texts' windows run together (`batching`): packed end to end into shared
        rows where the model allows it, otherwise longest first in batches of similar width."""
        items = [(doc, w) for doc, p in enumerate(prepared) for w in range(len(p.windows))]
        rows = []
        for doc, w in items:
            start, end = prepared[doc].windows[w]
            rows.append(np.concatenate([self.prefix, prepared[doc].tokens.ids[start:end], self.suffix]))
        keep = [None if p.tokens is None else best_window(len(p.tokens), p.windows) for p in prepared]
        out = [
            None if p.tokens is None else np.zeros((len(p.tokens), len(self.id2label)), np.float32)
            for p in prepared
        ]
        bar = progress_bar(len(items), progress)
        row_tokens = packed_row_tokens(self.runner.args, options.batch_size) if self.packing else 0
        for call in model_calls([len(r) for r in rows], options.batch_size, row_tokens):
            for i, p in self._run(rows, call):
                doc, w = items[i]
                start, end = prepared[doc].windows[w]
                window_probs = p[len(self.prefix) : len(self.prefix) + end - start]
                mine = keep[doc][start:end] == w
                out[doc][start:end][mine] = window_probs[mine]
            bar.update(sum(len(row) for row in call))
        bar.close()
        return out

    def decode(
        self, prepared: list[Prepared], probabilities: list[Optional[np.ndarray]], options: NEROptions
    ) -> list[list[Entity]]:
        """Stage 3: the entities of each text, by `options.aggregation`."""
        return [
            []
            if p.tokens is None
            else decode(
                p.text,
                p.tokens,
                probs,
                self.id2label,
                options.aggregation,
                options.one_type_per_name,
                self.strict_iob2,
            )
            for p, probs in zip(prepared, probabilities)
        ]

    @staticmethod
    def select(entities: list[Entity], options: NEROptions) -> list[Entity]:
        """Stage 4: the entities of the wanted labels scored at least `min_score`."""
        return [
            e
            for e in entities
            if e.score >= options.min_score and (options.labels is None or e.label in options.labels)
        ]

    def selection(
        self, labels: Optional[Iterable[str]] = None, min_score: Optional[float] = None
    ) -> Callable[[list[Entity]], list[Entity]]:
        """Stage 4 with these labels/min_score (defaults: this pipeline's), checked now, for
        `analyze` results."""
        options = self.options(labels=labels, min_score=min_score)
        return lambda entities: self.select(entities, options)

    def _run(self, rows: list[np.ndarray], call: list[Row]) -> list[tuple[int, np.ndarray]]:
        """(index into `rows`, label probabilities) for each row of token ids (special tokens
        included) that one model call, laid out by `batching.model_calls`, holds."""
        ids, mask, sequence_ids = call_arrays(rows, call, self.tokenizer.pad_token_id)
        probs = self.runner(ids, mask, softmax=True, sequence_ids=sequence_ids)
        if not np.isfinite(probs).all():
            raise AnnoError(
                f"{self.name or 'the model'} computes NaN or infinite scores; its weights or config.json are broken"
            )
        return split_outputs(probs, call, [len(r) for r in rows])

    def _span_options(self, chosen: NEROptions) -> dict:
        """Zero-shot models' options, checked (`ZeroShotNER`); a token-classification model has none."""
        given = [name for name in SPAN_OPTIONS if getattr(chosen, name) is not None]
        if given:
            raise AnnoError(
                f"{given[0]} applies to zero-shot (GLiNER) models; this model's labels are fixed: "
                f"filter its entities with min_score and labels"
            )
        return {}

    def _check_labels(self, labels: Optional[Iterable[str]]) -> Optional[tuple[str, ...]]:
        wanted = label_set(labels)
        if wanted is None:
            return None
        unknown = [name for name in wanted if name not in self.entity_types]
        if unknown:
            raise AnnoError(
                f"label {', '.join(unknown)} is not one this model predicts; it predicts {', '.join(self.entity_types)}"
            )
        return wanted


def label_set(labels: Optional[Iterable[str] | str]) -> Optional[tuple[str, ...]]:
    """The entity types asked for ("PER,ORG" or a list), in order without repeats, None for
    all. Naming none is an error: an empty filter would silently drop every entity."""
    if labels is None:
        return None
    try:
        names = labels.split(",") if isinstance(labels, str) else list(labels)
    except TypeError:
        names = [labels]
    if not all(isinstance(name, str) for name in names):
        raise AnnoError(f"labels must be entity type names, e.g. PER,ORG, not {names!r}")
    wanted = tuple(dict.fromkeys(name.strip() for name in names if name.strip()))
    if not wanted:
        raise AnnoError(
            f"no labels given ({labels!r} names no entity type); name some, e.g. PER,ORG, or leave labels out for all"
        )
    return wanted


def check_score(name: str, value: float) -> float:
    """A probability option (`min_score`, `threshold`) as a float in [0, 1]; NaN, infinities and
    other numbers would silently keep every entity or none."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not 0.0 <= number <= 1.0:
        raise AnnoError(f"{name} must be a number from 0 to 1, not {value!r}")
    return number


def check_texts(texts: Sequence[str]) -> list[str]:
    """The texts as a list, each a valid Unicode string (one-line errors otherwise)."""
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
    return texts


def progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled or total <= 1, file=sys.stderr, unit="window", leave=False)
