"""A small synthetic NER task: names and cities from fixed lists inside random sentences."""

from __future__ import annotations

import json
import random
from pathlib import Path

FIRST = ["Anna", "Boris", "Chen", "Dara", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kemal", "Lena"]
LAST = ["Berg", "Costa", "Dumont", "Evans", "Fischer", "Garcia", "Haddad", "Ito", "Jensen", "Kowalski"]
CITIES = [
    "Oslo",
    "Lagos",
    "Lima",
    "Porto",
    "Quito",
    "Riga",
    "Sofia",
    "Tunis",
    "Vienna",
    "Zagreb",
    "New York",
    "Buenos Aires",
]
FILLER = "the a report said on Monday that visitors from far away often met in small cafes near old markets".split()
TEMPLATES = [
    "{per} moved to {loc} last year .",
    "In {loc} , {per} said the {w} was {w} .",
    "{w} {w} {per} and {per} met in {loc} .",
    "The {w} of {loc} welcomed {per} .",
    "{per} {w} {w} .",
    "{w} {w} in {loc} {w} .",
]


def sentence(rng: random.Random) -> list[tuple[str, str]]:
    """(token, IOB2 tag) pairs."""
    out: list[tuple[str, str]] = []
    for part in rng.choice(TEMPLATES).split():
        if part == "{per}":
            name = [rng.choice(FIRST)] + ([rng.choice(LAST)] if rng.random() < 0.6 else [])
            out += [(w, ("B-" if i == 0 else "I-") + "PER") for i, w in enumerate(name)]
        elif part == "{loc}":
            out += [(w, ("B-" if i == 0 else "I-") + "LOC") for i, w in enumerate(rng.choice(CITIES).split())]
        elif part == "{w}":
            out.append((rng.choice(FILLER), "O"))
        else:
            out.append((part, "O"))
    return out


def write_conll(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    lines = ["-DOCSTART- -X- O", ""]
    for _ in range(n):
        lines += [f"{token} {tag}" for token, tag in sentence(rng)] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_jsonl(path: Path, n: int, seed: int) -> Path:
    from anno_mlx.datasets import read_conll

    conll = write_conll(path.with_suffix(".conll"), n, seed)
    examples = read_conll(conll.read_text(encoding="utf-8"), str(conll))
    path.write_text(
        "".join(
            json.dumps(
                {"text": e.text, "entities": [{"start": a, "end": b, "label": t} for a, b, t in e.spans]}
            )
            + "\n"
            for e in examples
        ),
        encoding="utf-8",
    )
    return path
