"""Labelled data: CoNLL column files and JSONL with character offsets, read into one shape.

Every example becomes a text and its entity spans in character offsets, whatever the file
format; training and evaluation work on that. Malformed input is reported with file and line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from .errors import AnnoError
from .schemes import tag_spans, valid_tag
from .tokenizer import unpaired_surrogate

FORMATS = ("conll", "jsonl")
COLUMNS = re.compile(r"[ \t]+")


@dataclass
class Example:
    text: str
    spans: list[tuple[int, int, str]]  # (start, end, type), character offsets into text
    where: str = ""  # "file:line" where the example starts
    unannotated: tuple[str, ...] = ()  # types the text leaves unmarked (free on words outside spans)


def read_examples(path: str | Path, fmt: Optional[str] = None) -> list[Example]:
    """Examples from `path`; the format comes from `fmt`, else from the extension
    (.jsonl/.json: JSONL, anything else: CoNLL)."""
    path = Path(path)
    if not path.is_file():
        raise AnnoError(f"data file {path} does not exist")
    fmt = fmt or ("jsonl" if path.suffix.lower() in (".jsonl", ".json") else "conll")
    if fmt not in FORMATS:
        raise AnnoError(f"data format {fmt!r} is unknown; choose conll or jsonl")
    data = path.read_bytes()
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise AnnoError(
            f"{path}: not valid UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start})"
        ) from None
    examples = read_conll(content, str(path)) if fmt == "conll" else read_jsonl(content, str(path))
    if not examples:
        raise AnnoError(f"{path} holds no examples")
    return examples


def lines(content: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of a file's text: a UTF-8 byte order mark at the start is dropped
    (it would shift every offset on the first line), lines end at "\n" alone (a "\r" before it
    is dropped). U+2028, U+2029, U+0085 and form feeds stay inside lines, where `str.splitlines`
    would cut: they are valid inside JSON strings and CoNLL tokens."""
    for number, line in enumerate(content.removeprefix("\ufeff").split("\n"), start=1):
        yield number, line.removesuffix("\r")


def read_conll(content: str, name: str) -> list[Example]:
    """One example per sentence: tokens joined by single spaces; the tag is the last column.
    Columns are separated by spaces and tabs only (a token may hold other whitespace, such as
    a no-break space). `-DOCSTART-` lines and blank lines separate sentences; any of IOB1,
    IOB2, BIOES. A token that is empty or blank carries no text and is skipped."""
    examples: list[Example] = []
    words: list[str] = []
    tags: list[str] = []
    first_line = 0

    def flush() -> None:
        if words:
            examples.append(_from_tokens(words, tags, f"{name}:{first_line}"))
        words.clear()
        tags.clear()

    for number, line in lines(content):
        columns = COLUMNS.split(line.strip(" \t"))
        if not line.strip() or columns[0] == "-DOCSTART-":
            flush()
            continue
        if (
            len(columns) == 1
            and "\t" in line
            and not line.split("\t", 1)[0].strip()
            or not columns[0].strip()
        ):
            continue  # an empty or blank token (tweet corpora have them): no text to label
        if len(columns) < 2:
            raise AnnoError(
                f"{name}:{number}: expected a token and a tag separated by whitespace, found {line.strip()!r}"
            )
        tag = columns[-1]
        if not valid_tag(tag):
            raise AnnoError(
                f"{name}:{number}: tag {tag!r} is not O, a prefixed tag like B-PER, or a plain type"
            )
        if not words:
            first_line = number
        words.append(columns[0])
        tags.append(tag)
    flush()
    return examples


def _from_tokens(words: list[str], tags: list[str], where: str) -> Example:
    offsets, position = [], 0
    for word in words:
        offsets.append((position, position + len(word)))
        position += len(word) + 1
    spans = [(offsets[a][0], offsets[b - 1][1], kind) for a, b, kind in tag_spans(tags)]
    return Example(" ".join(words), spans, where)


def read_jsonl(content: str, name: str) -> list[Example]:
    """`{"text": ..., "entities": [{"start": s, "end": e, "label": l}, ...]}` per line. For
    training on coarse data a label may name several types (`"GPE|LOC|FAC"`: any of them), and
    `"unannotated": [types]` lists types the text does not mark (see `labelmap`)."""
    examples = []
    for number, line in lines(content):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise AnnoError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
        except RecursionError:
            raise AnnoError(f"{where}: JSON nested too deeply") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise AnnoError(f'{where}: expected an object with a "text" string')
        text, spans = record["text"], []
        bad = unpaired_surrogate(text)
        if bad is not None:
            raise AnnoError(
                f"{where}: the text holds an unpaired surrogate (U+{ord(text[bad]):04X}) at index {bad}"
            )
        entities = record.get("entities", [])
        if not isinstance(entities, list):
            raise AnnoError(f'{where}: "entities" must be a list')
        for i, entity in enumerate(entities):
            try:
                start, end, label = entity["start"], entity["end"], entity["label"]
            except (KeyError, TypeError):
                raise AnnoError(f'{where}: entity {i} needs integer "start", "end" and a "label"') from None
            if (
                not isinstance(label, str)
                or not label.strip()
                or not all(part.strip() for part in label.split("|"))
            ):
                raise AnnoError(
                    f'{where}: entity {i} "label" must be a type name (or names joined by |), not {json.dumps(label)}'
                )
            for field, value in (("start", start), ("end", end)):
                if type(value) is not int:  # not 0.9 read as 0, not true read as 1
                    raise AnnoError(
                        f'{where}: entity {i} "{field}" must be an integer character offset, not {json.dumps(value)}'
                    )
            if not 0 <= start < end <= len(text):
                raise AnnoError(
                    f"{where}: entity {i} [{start}, {end}) is outside the text of {len(text)} characters"
                )
            spans.append((start, end, label))
        free = record.get("unannotated", [])
        if not isinstance(free, list) or not all(isinstance(t, str) for t in free):
            raise AnnoError(f'{where}: "unannotated" must be a list of type names')
        spans.sort()
        for (a, b, _), (c, d, _) in zip(spans, spans[1:]):
            if c < b:
                raise AnnoError(
                    f"{where}: entities [{a}, {b}) and [{c}, {d}) overlap; nested entities are not supported"
                )
        examples.append(Example(text, spans, where, tuple(free)))
    return examples


def entity_types_of(examples: list[Example]) -> list[str]:
    return sorted({kind for example in examples for _, _, kind in example.spans})
