"""Tag schemes: how a label such as `B-PER` is read, checked and written.

A label is outside (`O`), a prefix, a separator (`-` or `_`) and an entity type (`B-PER`,
`I_ORG`), or a plain type with no prefix (`PER`). Every prefix has one of four roles: it begins
an entity (`BEGIN`), continues it (`INSIDE`), ends it (`END`) or is a whole entity by itself
(`SINGLE`). Schemes are read from the labels themselves (a model's `id2label`, a data file's
tags), so a prefix means the same in every scheme.

One rule reads every scheme, and for IOB it is the Hugging Face pipeline's: a unit whose label
is outside ends the current entity; `B-`/`S-`/`U-`, or a type change, starts a new one;
`I-`/`E-`/`L-` or a plain label of the same type continues it (so an `I-` after `O` starts an
entity, as IOB1 intends); `E-`/`L-`/`S-`/`U-` close it. Plain labels cannot separate two
adjacent entities of the same type.

What this tool writes (training labels, CoNLL output) is IOB2: `B-` on an entity's first unit,
`I-` on the units after it, `O` elsewhere.

To add a scheme, add one entry to `SCHEMES`: its name and each prefix with its role. Reading
(`parse_label`, `chunks`), checking data files (`valid_tag`) and decoding then accept it; a
prefix already used by another scheme must keep that scheme's role. Prefixes are read in any
case (`b-PER` is `B-PER`).
"""

from __future__ import annotations

from string import ascii_letters
from typing import Hashable, Iterable, Iterator, Optional, Sequence

BEGIN, INSIDE, END, SINGLE = "B", "I", "E", "S"  # the roles a prefix can have

SCHEMES: dict[str, dict[str, str]] = {
    "IOB2": {"B": BEGIN, "I": INSIDE},
    "IOB1": {"B": BEGIN, "I": INSIDE},
    "BIOES": {"B": BEGIN, "I": INSIDE, "E": END, "S": SINGLE},
    "BILOU": {"B": BEGIN, "I": INSIDE, "L": END, "U": SINGLE},
    "plain": {},
}
SEPARATORS = ("-", "_")
OUTSIDE = {"O", "OUTSIDE", "0"}  # read as outside in any case
OUTSIDE_TAG = "O"  # how outside is written

Parsed = tuple[Optional[str], Optional[str]]  # (role, type): (None, None) outside, role None when plain


def _roles(schemes: dict[str, dict[str, str]]) -> dict[str, str]:
    """Every prefix's role across the schemes: a tag does not name its scheme, so a prefix may
    have only one."""
    roles: dict[str, str] = {}
    for name, prefixes in schemes.items():
        for prefix, role in prefixes.items():
            if roles.setdefault(prefix, role) != role:
                raise ValueError(f"prefix {prefix} of {name} has role {role}, elsewhere {roles[prefix]}")
    return roles


PREFIXES = _roles(SCHEMES)  # prefix -> role, every scheme's
_IOB2_PREFIX = {role: prefix for prefix, role in SCHEMES["IOB2"].items()}


def parse_label(label: str) -> Parsed:
    """`B-PER` -> ("B", "PER"); `PER` -> (None, "PER"); `O` -> (None, None)."""
    if label.upper() in OUTSIDE:
        return None, None
    for separator in SEPARATORS:
        head, sep, tail = label.partition(separator)
        if sep and head.upper() in PREFIXES and tail:
            return PREFIXES[head.upper()], tail
    return None, label


def valid_tag(tag: str) -> bool:
    """Whether a data file's tag is `O`, a prefix in upper case, a separator and a type without
    whitespace (`B-PER`), or a plain type name: an ASCII letter, then letters, digits, `_`, `.`,
    `$` or `-` (`PER`, `WORK_OF_ART`), not starting like a prefixed tag (so `B-` is refused)."""
    if tag == OUTSIDE_TAG:
        return True
    for prefix in PREFIXES:
        if tag.startswith(prefix) and tag[len(prefix) : len(prefix) + 1] in SEPARATORS:
            kind = tag[len(prefix) + 1 :]
            return bool(kind) and not any(c.isspace() for c in kind)
    return tag != "" and tag[0] in ascii_letters and all(c.isalnum() or c in "_.$-" for c in tag[1:])


def entity_types(id2label: dict[int, str]) -> list[str]:
    """The entity types a model can predict, in label order."""
    types: list[str] = []
    for label in id2label.values():
        kind = parse_label(label)[1]
        if kind is not None and kind not in types:
            types.append(kind)
    return types


def chunks(units: Sequence[Parsed]) -> Iterator[tuple[int, int, str]]:
    """(first, end, type) of each entity in a sequence of parsed labels (`parse_label` pairs),
    by the rule in this module's docstring; `end` is exclusive. The decoder, the metrics and
    the data readers all read label sequences through this one function."""
    kind: Optional[str] = None  # the open entity's type
    first, closed = 0, False
    for i, (prefix, unit_kind) in enumerate(units):
        if unit_kind is None:
            if kind is not None:
                yield first, i, kind
            kind = None
            continue
        if kind is None or closed or unit_kind != kind or prefix in (BEGIN, SINGLE):
            if kind is not None:
                yield first, i, kind
            kind, first, closed = unit_kind, i, False
        if prefix in (END, SINGLE):
            closed = True
    if kind is not None:
        yield first, len(units), kind


def tag_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """Entities of a tag sequence (`["B-PER", "I-PER", "O"]` -> `[(0, 2, "PER")]`)."""
    return list(chunks([parse_label(tag) for tag in tags]))


def write_tag(role: Optional[str], kind: Optional[str]) -> str:
    """A role (BEGIN or INSIDE) and type as IOB2 writes them: (BEGIN, "PER") -> `B-PER`; `O`
    when `kind` is None."""
    return OUTSIDE_TAG if kind is None else f"{_IOB2_PREFIX[role]}{SEPARATORS[0]}{kind}"


def iob2_labels(types: Sequence[str]) -> list[str]:
    """The labels of a model trained on `types`: `O`, then each type's `B-` and `I-`."""
    return [OUTSIDE_TAG] + [write_tag(role, kind) for kind in types for role in (BEGIN, INSIDE)]


def iob2_tags(owners: Iterable[Optional[tuple[Hashable, str]]]) -> Iterator[str]:
    """The IOB2 tag of each unit, from the entity it belongs to, given as (any key that tells
    entities apart, type), or None outside: `B-` where a unit's entity differs from the unit
    before's, `I-` where it is the same. Streams, so a writer never holds a document's tags."""
    previous: Optional[Hashable] = None
    for owner in owners:
        if owner is None:
            previous = None
            yield OUTSIDE_TAG
            continue
        key, kind = owner
        yield write_tag(INSIDE if previous is not None and key == previous else BEGIN, kind)
        previous = key


def trained_on_iob2(config: dict) -> bool:
    """Whether a model's config.json says anno-mlx trained it for NER (`train`, or an average of
    such runs, averages of averages included) and its labels are `O`, `B-` and `I-` ones: they
    were then taught as IOB2 (`iob2_tags`), so an `I-` after `O` is the model's mistake, not
    IOB1's way to begin an entity. A model from elsewhere may use either, and its labels do not
    say which."""
    labels = config.get("id2label")
    if not isinstance(labels, dict) or not labels:
        return False
    parsed = [parse_label(str(label)) for label in labels.values()]
    if not all(role in (BEGIN, INSIDE) or (role, kind) == (None, None) for role, kind in parsed):
        return False
    return _trained_for_ner(config.get("anno_mlx"))


def _trained_for_ner(provenance) -> bool:
    """A provenance block (`train`'s `trained`, or `average`'s `averaged` list of its sources'
    blocks) that holds only NER training."""
    if not isinstance(provenance, dict):
        return False
    if "averaged" in provenance:
        runs = provenance["averaged"]
        return isinstance(runs, list) and len(runs) > 0 and all(_trained_for_ner(run) for run in runs)
    trained = provenance.get("trained")
    return isinstance(trained, dict) and trained.get("objective", "ner") == "ner"  # recorded since masked LM
