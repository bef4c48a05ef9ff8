"""Entities written out for people and programs: table, JSON, JSON lines, CoNLL, HTML and CSV.

Each output format is one entry of `FORMATS` (writer, file suffix, MIME type), so that the CLI's
`--format` and the web app's downloads offer the same formats written the same way. The HTML page
is standalone (inline CSS, no scripts, no fonts from anywhere) so that it renders complete offline;
its highlighted document, legend and their CSS are also what the web app shows.
"""

from __future__ import annotations

import colorsys
import csv
import html
import io
import itertools
import json
import re
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from .entities import Entity
from .errors import AnnoError
from .schemes import iob2_tags
from .unspaced import character_class

Documents = Sequence[tuple[str, str, list[Entity]]]  # (source name, text, entities) per document


@dataclass(frozen=True)
class Format:
    """An output format: its writer (documents -> pieces of text), file suffix and MIME type."""

    name: str
    write: Callable[[Documents], Iterator[str]]
    suffix: str
    mime: str


# Words for CoNLL output: runs of letters/digits, single kana and CJK ideographs, single other symbols.
_SINGLE = character_class(
    ("kana", "CJK ideographs, extension A", "CJK ideographs", "CJK compatibility ideographs")
)
CONLL_TOKEN = re.compile(rf"[{_SINGLE}]|[^\W{_SINGLE}]+|[^\w\s]", re.UNICODE)


def output_format(name: str) -> Format:
    """The registered format called `name`."""
    try:
        return FORMATS[name]
    except KeyError:
        raise AnnoError(f"unknown output format {name!r}; known: {', '.join(FORMATS)}") from None


def render(documents: Documents, fmt: str) -> str:
    """`documents` are (source name, text, entities); returns the whole output."""
    return "".join(render_chunks(documents, fmt))


def render_chunks(documents: Documents, fmt: str) -> Iterator[str]:
    """The output in pieces, so that a million entities are written without building one string."""
    return output_format(fmt).write(documents)


def table(documents) -> Iterator[str]:
    many = len(documents) > 1
    rows = [(["source"] if many else []) + ["start", "end", "label", "score", "text"]]
    for source, _, entities in documents:
        for e in entities:
            rows.append(
                ([source] if many else [])
                + [str(e.start), str(e.end), e.label, f"{e.score:.3f}", _one_line(e.text)]
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        yield "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n"


def as_json(documents) -> Iterator[str]:
    """One document: a list of entity dicts (as the Hugging Face pipeline returns);
    several: a list of such lists, in input order."""
    single = len(documents) == 1
    yield "" if single else "[\n"
    for d, (_, _, entities) in enumerate(documents):
        yield "[" if entities else "[]"
        for i, e in enumerate(entities):
            yield ("\n  " if i == 0 else ",\n  ") + json.dumps(e.to_dict(), ensure_ascii=False)
        yield ("\n]" if entities else "") + ("" if single or d == len(documents) - 1 else ",") + "\n"
    yield "" if single else "]\n"


def as_jsonl(documents) -> Iterator[str]:
    for source, _, entities in documents:
        yield '{"source": ' + json.dumps(source, ensure_ascii=False) + ', "entities": ['
        for i, e in enumerate(entities):
            yield (", " if i else "") + json.dumps(e.to_dict(), ensure_ascii=False)
        yield "]}\n"


def conll(documents) -> Iterator[str]:
    """Token, start offset, IOB2 tag per line; a `-DOCSTART-` line and a blank line per document."""
    for source, text, entities in documents:
        yield f"-DOCSTART- {source}\n\n"
        for token, start, tag in conll_tokens(text, entities):
            yield f"{token}\t{start}\t{tag}\n"
        yield "\n"


def conll_tokens(text: str, entities: list[Entity]) -> Iterator[tuple[str, int, str]]:
    """(token, start, IOB2 tag) of each CoNLL token of `text`; a token overlapping an entity
    belongs to it. Streams: one token is held at a time."""

    def owners(matches) -> Iterator:
        index = 0
        for match in matches:
            start, end = match.span()
            while index < len(entities) and entities[index].end <= start:
                index += 1
            inside = index < len(entities) and entities[index].start < end
            yield (index, entities[index].label) if inside else None

    matches, to_tag = itertools.tee(CONLL_TOKEN.finditer(text))
    for match, tag in zip(matches, iob2_tags(owners(to_tag))):
        yield match.group(), match.start(), tag


def as_csv(documents) -> Iterator[str]:
    """Text, label, score, start, end per entity (a leading source column for several documents),
    quoted as spreadsheets read it."""
    many = len(documents) > 1
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(row: list) -> str:
        writer.writerow(row)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line((["source"] if many else []) + ["text", "label", "score", "start", "end"])
    for source, _, entities in documents:
        for e in entities:
            yield line(([source] if many else []) + [e.text, e.label, f"{e.score:.4f}", e.start, e.end])


# HTML: the highlighted document, its legend and their CSS, shared by the standalone page and the web app.
def label_colours(labels: Sequence[str]) -> dict[str, str]:
    """A light, distinct background colour per label, the same for the same label set."""
    colours = {}
    for i, label in enumerate(sorted(set(labels))):
        r, g, b = colorsys.hls_to_rgb((i * 0.618034) % 1.0, 0.82, 0.75)
        colours[label] = f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"
    return colours


HIGHLIGHT_CSS = """
.doc { white-space: pre-wrap; line-height: 2; }
.doc mark.entity { padding: 0.1em 0.25em; border-radius: 0.3em; }
.doc mark.entity .label { font-size: 0.65em; font-weight: 600; margin-left: 0.3em; opacity: 0.7; }
.legend .key { display: inline-block; padding: 0.1em 0.5em; margin: 0 0.3em 0.3em 0; border-radius: 0.3em; font-size: 0.85em; }
"""
PAGE_CSS = """body { font-family: -apple-system, system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
.doc { font-size: 1rem; }
.count { color: #666; font-size: 0.9em; }
"""


def highlight(text: str, entities: list[Entity], colours: dict[str, str]) -> Iterator[str]:
    """The text as HTML with each entity in a <mark> carrying its label and score."""
    position = 0
    for e in entities:
        yield html.escape(text[position : e.start])
        yield (
            f'<mark class="entity" data-label="{html.escape(e.label)}" style="background:{colours[e.label]}" '
            f'title="{html.escape(e.label)} {e.score:.2f}">{html.escape(e.text)}'
            f'<span class="label">{html.escape(e.label)}</span></mark>'
        )
        position = e.end
    yield html.escape(text[position:])


def highlighted_document(
    text: str, entities: list[Entity], colours: dict[str, str], element_id: str = ""
) -> Iterator[str]:
    """The highlighted text in its `doc` block (styled by HIGHLIGHT_CSS)."""
    yield '<div class="doc"' + (f' id="{html.escape(element_id)}"' if element_id else "") + ">"
    yield from highlight(text, entities, colours)
    yield "</div>"


def legend(colours: dict[str, str]) -> str:
    """One key per label, in its colour."""
    keys = "".join(
        f'<span class="key" style="background:{colour}">{html.escape(label)}</span>'
        for label, colour in colours.items()
    )
    return f'<div class="legend">{keys}</div>'


def html_page(documents) -> Iterator[str]:
    colours = label_colours({e.label for _, _, entities in documents for e in entities})
    yield f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>anno-mlx entities</title>
<style>{HIGHLIGHT_CSS}{PAGE_CSS}</style></head>
<body><h1>Entities</h1>{legend(colours)}"""
    for source, text, entities in documents:
        yield f'<section><h2>{html.escape(source)}</h2><p class="count">{len(entities)} entities</p>'
        yield from highlighted_document(text, entities, colours)
        yield "</section>"
    yield "</body></html>\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())


# Every output format, by the name `--format` and the web app's downloads use.
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("table", table, ".txt", "text/plain"),
        Format("json", as_json, ".json", "application/json"),
        Format("jsonl", as_jsonl, ".jsonl", "application/x-ndjson"),
        Format("conll", conll, ".conll", "text/plain"),
        Format("html", html_page, ".html", "text/html"),
        Format("csv", as_csv, ".csv", "text/csv"),
    )
}
