"""Token label probabilities -> entities with exact character spans.

Labels are read from `id2label` through `schemes` (IOB1, IOB2, BIOES, BILOU, plain), whose rule
says where entities begin and end; for IOB it is the Hugging Face pipeline's.

Each unit takes its most probable label, except where that breaks a rule. The first is where we
part from the pipeline: a continuation whose type differs from the open entity's (`B-ORG` then `I-PER`) would cut one name
in two halves of two types ("Aleksandr" ORG, "Misharin" PER). There the units of that entity get
the most probable labelling without a type change (`_consistent`), which may be one type for
both, or two entities when the model is surer of that. The same search keeps a hyphen that
joins two parts of a word ("Kai-shek", which a byte-level pre-tokenizer makes three words) off
an entity's edge: never "Chiang Kai-" or "-American"; an entity holds such a hyphen only
between two of its own units (the parts around it may still be two entities). For a
model trained on IOB2 tags (`strict_iob2`: one anno-mlx trained), an `I-` after `O` is repaired
the same way instead of beginning an entity, as IOB1 would have it. Two entities of one type
are never side by side on a line with only spaces between ("the" ORG, "Paris Opera House" ORG):
the same search makes them one, or drops the less likely.

An entity never runs across a tab, a page break or a blank line: a table's cells ("Satya
Nadella<TAB>Microsoft") and a document's paragraphs are decoded apart (`apart`), as if each were
its own text. A single line break does not stop an entity: text copied from a PDF breaks lines
inside names.

A name gets one type in a text (`one_type_per_name`, on by default): all the places a text
names "Magna" (the same words up to case and spacing) take the type with the most probability
summed over them. Read one place at a time, a small model calls a company ORG in nine places and
PER in the tenth; the document as a whole settles it. Only types change: every entity keeps its
span, and a name met once keeps the labelling it has alone.

Aggregation (the pipeline's names): `simple` groups tokens; `first`, `average` and `max` first
label whole words (by the first token's label, by the averaged probabilities, or by the most
confident token), so an entity never ends inside a word. An entity's score is the mean of its
units' scores, each the probability of the label it was given.
"""

from __future__ import annotations

import bisect
import unicodedata
from collections import Counter
from dataclasses import replace
from typing import Optional

import numpy as np

from .entities import Entity
from .errors import AnnoError
from .schemes import BEGIN, END, INSIDE, SINGLE, chunks, parse_label
from .tokenizer import WHITESPACE, Tokens, code_points

AGGREGATIONS = ("simple", "first", "average", "max")


def check_aggregation(aggregation: str) -> str:
    if aggregation not in AGGREGATIONS:
        raise AnnoError(f"aggregation {aggregation!r} is unknown; choose one of {', '.join(AGGREGATIONS)}")
    return aggregation


def decode(
    text: str,
    tokens: Tokens,
    probs: np.ndarray,
    id2label: dict[int, str],
    aggregation: str = "first",
    one_type_per_name: bool = True,
    strict_iob2: bool = False,
) -> list[Entity]:
    """Entities of `text` from per-token probabilities `probs` [n_tokens, n_labels]; with
    `strict_iob2` (a model trained on IOB2 tags, `schemes.trained_on_iob2`) an `I-` never begins
    an entity."""
    check_aggregation(aggregation)
    keep = np.flatnonzero(tokens.content)
    if len(keep) == 0:
        return []
    probs, offsets = probs[keep], tokens.offsets[keep]
    if aggregation == "simple":
        starts = np.arange(len(keep))
    else:
        starts = np.flatnonzero(tokens.word_start[keep])
        if len(starts) == 0 or starts[0] != 0:
            starts = np.concatenate([[0], starts])
    parsed = [parse_label(id2label[i]) for i in range(len(id2label))]
    rows = _unit_rows(probs, starts, aggregation)
    begins = offsets[starts, 0]
    ends = np.maximum.reduceat(offsets[:, 1], starts)
    gaps = _gaps(text, begins, ends)
    parts = _cell_starts(gaps)
    label_index = _consistent(
        rows, parsed, parts, joining_hyphens(text, begins, ends), _spaced(gaps), strict_iob2
    )
    scores = rows[np.arange(len(rows)), label_index]
    entities, units = _group(
        text, label_index.tolist(), scores.tolist(), begins.tolist(), ends.tolist(), parsed, parts.tolist()
    )
    return _one_type_per_name(entities, units, rows, parsed) if one_type_per_name else entities


LINE_BREAKS = (0x0A, 0x0B, 0x85, 0x2028)  # and a CR not followed by LF; two of them make a blank line
CELL_BREAKS = (0x09, 0x0C, 0x2029)  # tab, form feed (a PDF's page break), paragraph separator


def _gaps(text: str, begins: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each unit (words, tokens: `begins`/`ends` their character spans) after the first, the
    whitespace between the last character of the unit before it that is not whitespace and its
    own first such character: (its line breaks, its cell breaks, its length)."""
    points = code_points(text)
    solid = np.flatnonzero(~np.isin(points, WHITESPACE))
    if len(solid) == 0 or len(begins) < 2:
        return (np.zeros(0, dtype=np.int64),) * 3
    lone_cr = (points == 0x0D) & (np.append(points[1:], 0) != 0x0A)
    lines = np.concatenate([[0], np.cumsum(np.isin(points, LINE_BREAKS) | lone_cr)])
    cells = np.concatenate([[0], np.cumsum(np.isin(points, CELL_BREAKS))])
    after_last = solid[np.maximum(np.searchsorted(solid, ends[:-1]) - 1, 0)] + 1  # unit u-1's content ends
    first = solid[np.minimum(np.searchsorted(solid, begins[1:]), len(solid) - 1)]  # unit u's content begins
    low = np.minimum(after_last, ends[:-1])
    high = np.maximum(first, low)
    return lines[high] - lines[low], cells[high] - cells[low], high - low


def apart(text: str, begins: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The indices of the units that begin a new table cell or paragraph: a tab, a page break, a
    paragraph separator, or two line breaks lie between them and the unit before (`_gaps`). No
    entity runs across one (here and in `zeroshot`)."""
    return _cell_starts(_gaps(text, begins, ends))


def _cell_starts(gaps: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    lines, cells, _ = gaps
    return np.flatnonzero((cells > 0) | (lines >= 2)) + 1


def _spaced(gaps: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """The indices of the units that only spaces part from the unit before, on one line (no line
    or cell break between them). Two entities of one type are never side by side (`_consistent`)."""
    lines, cells, width = gaps
    return np.flatnonzero((width > 0) & (lines == 0) & (cells == 0)) + 1


HYPHENS = ("-", "\u2010", "\u2011")  # hyphen-minus, hyphen, non-breaking hyphen


def joining_hyphens(text: str, begins: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The indices of the units that are one hyphen joining two parts of a word ("present-day",
    "Guinea-Bissau", "1996-08-30"): a letter or digit touches it on each side, and the units
    before and after touch it too. No entity begins or ends at one (`_consistent`)."""
    if len(begins) < 3:
        return np.zeros(0, dtype=np.int64)
    u = np.arange(1, len(begins) - 1)
    u = u[(ends[u] - begins[u] == 1) & (ends[u - 1] == begins[u]) & (begins[u + 1] == ends[u])]
    return np.array(
        [
            i
            for i in u.tolist()
            if text[begins[i]] in HYPHENS and text[begins[i] - 1].isalnum() and text[ends[i]].isalnum()
        ],
        dtype=np.int64,
    )


def _unit_rows(probs: np.ndarray, starts: np.ndarray, aggregation: str) -> np.ndarray:
    """The label probabilities of each unit; unit u holds tokens starts[u]:starts[u+1]."""
    if aggregation in ("simple", "first"):
        rows = probs[starts]
    elif aggregation == "average":
        counts = np.diff(np.append(starts, len(probs)))
        rows = np.add.reduceat(probs, starts, axis=0) / counts[:, None]
    else:  # max: the most confident token of each unit decides
        unit = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(probs))))
        order = np.lexsort((-probs.max(axis=1), unit))  # by unit, most confident first
        rows = probs[order[starts]]
    return rows


def _consistent(
    rows: np.ndarray,
    parsed,
    apart: np.ndarray,
    hyphens: np.ndarray,
    spaced: np.ndarray,
    strict_iob2: bool = False,
) -> np.ndarray:
    """The most probable label of each unit, except where that breaks a rule:
    - an entity does not change type in its middle (`B-ORG` then `I-PER`), so "Aleksandr
      Misharin" is one entity of one type, not two halves;
    - with `strict_iob2` (a model trained on IOB2 tags), a continuation (`I-`) follows only its
      own entity, never `O` or the start of a part: for such a model `O I-PER` is a mistake,
      not IOB1's way to begin a name;
    - an entity does not begin or end at a hyphen that joins two parts of a word (`hyphens`):
      "present-day" is a date or has none, never "present-"; "Paris" may end before "-based";
    - two entities of one type are not side by side with only spaces between (`spaced`): that
      is one name read as two, or one of them is none ("the" ORG, "Paris Opera House" ORG).
    Where a rule is broken, the run of units around it (from the entity's first unit to its
    last continuation) gets the most probable labelling that keeps all of them (Viterbi over
    log-probabilities, the units around it fixed), which may be one entity, two, or none.
    Sequences that keep the rules are left as they are. A unit in `apart` begins a new cell or
    paragraph: any label may follow there, and no run reaches across it."""
    labels = rows.argmax(axis=1)
    n = len(labels)
    _, kind = _label_kinds(parsed)
    named = kind >= 0
    opens = np.array([k is not None and p in (BEGIN, INSIDE) for p, k in parsed])  # entity stays open
    continues = np.array([k is not None and p in (INSIDE, END) for p, k in parsed])
    forbidden = opens[:, None] & continues[None, :] & (kind[:, None] != kind[None, :])
    holds = np.array([k is not None and p in (None, BEGIN, INSIDE) for p, k in parsed])  # plain labels too
    carries = np.array([k is not None and p in (None, INSIDE, END) for p, k in parsed])
    joined = holds[:, None] & carries[None, :] & (kind[:, None] == kind[None, :])
    if strict_iob2:
        forbidden = forbidden | (continues[None, :] & ~joined)
    into_hyphen = forbidden | (named[None, :] & ~joined)  # a named hyphen continues the unit before
    out_of_hyphen = forbidden | (named[:, None] & ~joined)  # and the unit after continues it
    starts = np.array([k is not None and p in (BEGIN, SINGLE) for p, k in parsed])  # a new entity
    closes = np.array([k is not None and p in (END, SINGLE) for p, k in parsed])  # the next one is new
    anew = (starts[None, :] | closes[:, None]) & named[:, None] & named[None, :]
    beside = forbidden | (anew & (kind[:, None] == kind[None, :]))
    to_hyphen, from_hyphen, after_space = (np.zeros(n + 1, bool) for _ in range(3))
    to_hyphen[hyphens], from_hyphen[hyphens + 1], after_space[spaced] = True, True, True

    def blocked(u: int) -> np.ndarray:
        """The forbidden transitions [label of unit u-1, label of unit u]."""
        if to_hyphen[u]:
            return into_hyphen
        return out_of_hyphen if from_hyphen[u] else beside if after_space[u] else forbidden

    broken = np.flatnonzero(forbidden[labels[:-1], labels[1:]]) + 1
    h, b = hyphens, spaced
    broken = np.union1d(
        broken,
        np.concatenate(
            [
                h[into_hyphen[labels[h - 1], labels[h]]],
                h[out_of_hyphen[labels[h], labels[h + 1]]] + 1,
                b[beside[labels[b - 1], labels[b]]],
            ]
        ).astype(np.int64),
    )
    broken = broken[~np.isin(broken, apart)]
    if strict_iob2:  # a part may not begin with a continuation either
        heads = np.concatenate([[0], apart]).astype(np.int64)
        broken = np.union1d(broken, heads[continues[labels[heads]]])
    if len(broken) == 0:
        return labels
    firsts = np.concatenate([[0], apart, [n]])  # each part's first unit, then the end
    runs: list[list[int]] = []
    for unit in broken.tolist():
        part = np.searchsorted(firsts, unit, side="right") - 1
        low, high = int(firsts[part]), int(firsts[part + 1])
        start, end = unit - 1, unit + 1
        if to_hyphen[unit]:
            end = unit + 2  # the hyphen's word part after it
        elif from_hyphen[unit]:
            start = unit - 2  # the word part before it
        while start > low and continues[labels[start]]:
            start -= 1
        while end < high and continues[labels[end]]:
            end += 1
        start = max(start, low)
        if runs and start <= runs[-1][1] and runs[-1][2] == low:
            runs[-1][0], runs[-1][1] = min(runs[-1][0], start), max(runs[-1][1], end)
        else:
            runs.append([start, end, low, high])
    log_rows = np.log(np.maximum(rows, 1e-30))
    for start, end, low, high in runs:
        score = (
            log_rows[start]
            + (np.where(continues, -np.inf, 0.0) if strict_iob2 and start == low else 0)
            + (np.where(blocked(start)[labels[start - 1]], -np.inf, 0.0) if start > low else 0)
        )
        back = np.zeros((end - start, rows.shape[1]), dtype=np.int64)
        for u in range(start + 1, end):
            total = score[:, None] + np.where(blocked(u), -np.inf, 0.0)
            back[u - start] = total.argmax(axis=0)
            score = total.max(axis=0) + log_rows[u]
        if end < high:  # the fixed unit after the run must be able to follow
            score = score + np.where(blocked(end)[:, labels[end]], -np.inf, 0.0)
        best = int(score.argmax())
        for u in range(end - 1, start - 1, -1):
            labels[u] = best
            best = int(back[u - start, best])
    return labels


def _label_kinds(parsed) -> tuple[list[str], np.ndarray]:
    """The entity types in label order, and each label's index among them (-1 for `O`)."""
    kinds = list(dict.fromkeys(k for _, k in parsed if k is not None))
    return kinds, np.array([kinds.index(k) if k is not None else -1 for _, k in parsed])


def _group(
    text: str,
    labels: list[int],
    scores: list[float],
    begins: list[int],
    ends: list[int],
    parsed,
    apart: list[int],
) -> tuple[list[Entity], list[tuple[int, int]]]:
    """Entities from the units' labels, and the units [first, end) of each; an entity that
    reaches a unit in `apart` ends before it, and that unit begins one (as it would at the start
    of a text)."""
    entities: list[Entity] = []
    units: list[tuple[int, int]] = []
    for first, last, kind in chunks([parsed[k] for k in labels]):
        inside = apart[bisect.bisect_right(apart, first) : bisect.bisect_left(apart, last)]
        for a, b in zip([first, *inside], [*inside, last]):
            entity = _make_entity(text, kind, sum(scores[a:b]) / (b - a), begins[a], max(ends[a:b]), entities)
            if entity is not None:
                entities.append(entity)
                units.append((a, b))
    return entities, units


def name_key(name: str) -> str:
    """A name as `one_type_per_name` compares names: case folded, blanks as one space."""
    return " ".join(name.casefold().split())


def _one_type_per_name(
    entities: list[Entity], units: list[tuple[int, int]], rows: np.ndarray, parsed
) -> list[Entity]:
    """Every entity of a name the text has more than once with the type that name has in the
    whole text: the type whose probability (its labels' summed, averaged over an entity's units)
    totals most over the name's entities (`name_key`). A name met once keeps its own labelling.
    An entity that changes type scores as if its units had the type's most probable labels,
    averaged over the name's entities, so the score stays a label's probability."""
    keys = [name_key(e.text) for e in entities]
    counts = Counter(keys)
    kinds, kind_of_label = _label_kinds(parsed)
    if max(counts.values(), default=0) < 2 or len(kinds) < 2:
        return entities
    of_kind = kind_of_label[:, None] == np.arange(len(kinds))[None, :]  # [labels, kinds]
    kind_mass = rows @ of_kind.astype(rows.dtype)  # [units, kinds]
    kind_best = np.stack([rows[:, of_kind[:, i]].max(axis=1) for i in range(len(kinds))], axis=1)
    mass: dict[str, np.ndarray] = {}
    best: dict[str, np.ndarray] = {}
    for key, (a, b) in zip(keys, units):
        if counts[key] > 1:
            mass[key] = mass.get(key, 0.0) + kind_mass[a:b].mean(axis=0)
            best[key] = best.get(key, 0.0) + kind_best[a:b].mean(axis=0)
    named = []
    for entity, key in zip(entities, keys):
        if key in mass:
            kind = int(mass[key].argmax())
            if kinds[kind] != entity.label:
                entity = replace(entity, label=kinds[kind], score=float(best[key][kind] / counts[key]))
        named.append(entity)
    return named


TRAILING_SEPARATORS = ",;:\u060c\u3001\uff0c\uff1b\uff1a"  # ASCII, Arabic comma, CJK/fullwidth


def _make_entity(
    text: str, kind: str, score: float, start: int, end: int, before: list[Entity]
) -> Optional[Entity]:
    """Trim whitespace and trailing separators (`,`, `;`, `:`, which a subword token can carry
    past an entity's last word, as in "40.1%,"), keep combining marks with their base
    character, never overlap the previous entity; None when nothing is left."""
    if before:
        start = max(start, before[-1].end)
    while end < len(text) and unicodedata.category(text[end]).startswith("M"):
        end += 1
    while start < end and (text[start].isspace() or unicodedata.category(text[start]).startswith("M")):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in TRAILING_SEPARATORS):
        end -= 1
    if start >= end:
        return None
    return Entity(text=text[start:end], label=kind, start=start, end=end, score=score)
