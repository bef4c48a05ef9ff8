"""Mappings between a model's entity types and a data set's, for scoring and for training.

A mapping is a set of `MODEL=DATA` pairs ("PERSON=PER,GPE=LOC,LOC=LOC") or a preset's name
(`conll`: OntoNotes' 18 types onto CoNLL-2003's PER/ORG/LOC/MISC). It is used both ways:

- scoring (`eval --map`): each predicted type is renamed to its data type (a type the mapping
  does not name keeps its name), and predictions of types the data does not annotate are left
  out and counted, since the data cannot say whether they are right;
- training on coarser data (`train --map`): a data type stands for any of the model types paired
  with it (CoNLL's LOC is GPE, LOC or FAC), and a word outside the data's entities may carry any
  model type that none of the data's types covers (CoNLL marks no dates, so an unmarked "Monday"
  may be DATE); the loss then sums the probability of every allowed label.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Optional, Sequence

from .errors import AnnoError

ANY = "|"  # joins the types a coarse gold span may be ("GPE|LOC|FAC")

PRESETS = {
    "conll": (
        "PERSON=PER,ORG=ORG,GPE=LOC,LOC=LOC,FAC=LOC,"
        "NORP=MISC,EVENT=MISC,WORK_OF_ART=MISC,PRODUCT=MISC,LAW=MISC,LANGUAGE=MISC"
    ),
}


@dataclass(frozen=True)
class LabelMap:
    pairs: tuple[tuple[str, str], ...]  # (model type, data type)

    @classmethod
    def parse(cls, spec: str) -> "LabelMap":
        """A preset's name or `MODEL=DATA` pairs separated by commas."""
        text = PRESETS.get(spec.strip().lower(), spec)
        pairs = []
        for item in text.split(","):
            if not item.strip():
                continue
            model_type, sep, data_type = (part.strip() for part in item.partition("="))
            if not sep or not model_type or not data_type:
                raise AnnoError(
                    f"--map item {item.strip()!r} is not MODEL=DATA; write e.g. PERSON=PER,GPE=LOC or a preset ({', '.join(PRESETS)})"
                )
            pairs.append((model_type, data_type))
        if not pairs:
            raise AnnoError(
                f"--map {spec!r} names no pair; write e.g. PERSON=PER,GPE=LOC or a preset ({', '.join(PRESETS)})"
            )
        return cls(tuple(dict.fromkeys(pairs)))

    def to_data(self) -> dict[str, str]:
        """Model type -> data type, for scoring; a model type must have one data type."""
        out: dict[str, str] = {}
        for model_type, data_type in self.pairs:
            if out.setdefault(model_type, data_type) != data_type:
                raise AnnoError(
                    f"--map pairs {model_type} with both {out[model_type]} and {data_type}; scoring needs one data type per model type"
                )
        return out

    def to_model(self, data_type: str) -> tuple[str, ...]:
        """The model types a data type stands for (itself when the mapping does not name it)."""
        return tuple(m for m, d in self.pairs if d == data_type) or (data_type,)


def rename_predictions(
    predicted: Sequence[Sequence[tuple]], mapping: LabelMap, data_types: Iterable[str]
) -> tuple[list[list[tuple]], dict[str, int]]:
    """Predicted (start, end, type) spans in the data's types, and how many predictions of each
    model type were left out because the data does not annotate what they map to."""
    to_data, annotated = mapping.to_data(), set(data_types)
    kept, dropped = [], {}
    for document in predicted:
        out = []
        for start, end, kind in document:
            target = to_data.get(kind, kind)
            if target in annotated:
                out.append((start, end, target))
            else:
                dropped[kind] = dropped.get(kind, 0) + 1
        kept.append(out)
    return kept, dropped


def coarse_examples(examples: list, mapping: LabelMap, model_types: Sequence[str]) -> list:
    """Examples in data types -> examples whose spans name every model type they may be
    (`GPE|LOC|FAC`) and whose `unannotated` lists the model types that no data type of the set
    covers (free on unmarked words)."""
    data_types = sorted({kind for example in examples for _, _, kind in example.spans})
    covered: set[str] = set()
    for data_type in data_types:
        targets = mapping.to_model(data_type)
        unknown = [t for t in targets if t not in model_types]
        if unknown:
            raise AnnoError(
                f"data type {data_type} maps to {', '.join(unknown)}, which the model does not have; fix --map"
            )
        covered.update(targets)
    free = tuple(t for t in model_types if t not in covered)
    return [
        replace(e, spans=[(a, b, ANY.join(mapping.to_model(k))) for a, b, k in e.spans], unannotated=free)
        for e in examples
    ]


def allowed_types(label: str) -> tuple[str, ...]:
    """The types a (possibly coarse) span label allows: `GPE|LOC` -> ("GPE", "LOC")."""
    return tuple(label.split(ANY))


def parse_optional(spec: Optional[str]) -> Optional[LabelMap]:
    return LabelMap.parse(spec) if spec else None
