"""Entities written out for people and programs: table, JSON, JSON lines, CoNLL and HTML.

The HTML page is standalone (inline CSS, no scripts, no fonts from anywhere) so that it renders
complete offline; the CLI's `--format html` and the UI's export share it.
"""

from __future__ import annotations

import colorsys
import html
import json
import re
from typing import Sequence

from .entities import Entity

FORMATS = ("table", "json", "jsonl", "conll", "html")
# Words for CoNLL output: runs of letters/digits, single CJK/kana characters, single other symbols.
CONLL_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[^\w\s]", re.UNICODE)


def render(documents: Sequence[tuple[str, str, list[Entity]]], fmt: str) -> str:
    """`documents` are (source name, text, entities); returns the whole output."""
    return {"table": table, "json": as_json, "jsonl": as_jsonl, "conll": conll, "html": html_page}[fmt](documents)


def table(documents) -> str:
    many = len(documents) > 1
    rows = [(["source"] if many else []) + ["start", "end", "label", "score", "text"]]
    for source, _, entities in documents:
        for e in entities:
            rows.append(([source] if many else []) + [str(e.start), str(e.end), e.label, f"{e.score:.3f}", _one_line(e.text)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


def as_json(documents) -> str:
    """One document: a list of entity dicts (as the Hugging Face pipeline returns);
    several: a list of such lists, in input order."""
    lists = [[e.to_dict() for e in entities] for _, _, entities in documents]
    return json.dumps(lists[0] if len(lists) == 1 else lists, ensure_ascii=False, indent=2) + "\n"


def as_jsonl(documents) -> str:
    return "".join(
        json.dumps({"source": source, "entities": [e.to_dict() for e in entities]}, ensure_ascii=False) + "\n"
        for source, _, entities in documents
    )


def conll(documents) -> str:
    """Token, start offset, IOB2 tag per line; a `-DOCSTART-` line and a blank line per document."""
    out = []
    for source, text, entities in documents:
        out.append(f"-DOCSTART- {source}\n\n")
        for token, start, tag in conll_tokens(text, entities):
            out.append(f"{token}\t{start}\t{tag}\n")
        out.append("\n")
    return "".join(out)


def conll_tokens(text: str, entities: list[Entity]) -> list[tuple[str, int, str]]:
    rows, index, previous = [], 0, None
    for match in CONLL_TOKEN.finditer(text):
        start, end = match.span()
        while index < len(entities) and entities[index].end <= start:
            index += 1
        entity = entities[index] if index < len(entities) and entities[index].start < end else None
        if entity is None:
            tag = "O"
        else:
            tag = ("I-" if previous is entity else "B-") + entity.label
        rows.append((match.group(), start, tag))
        previous = entity
    return rows


def label_colours(labels: Sequence[str]) -> dict[str, str]:
    """A light, distinct background colour per label, the same for the same label set."""
    colours = {}
    for i, label in enumerate(sorted(set(labels))):
        r, g, b = colorsys.hls_to_rgb((i * 0.618034) % 1.0, 0.82, 0.75)
        colours[label] = f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"
    return colours


def highlight(text: str, entities: list[Entity], colours: dict[str, str]) -> str:
    """The text as HTML with each entity in a <mark> carrying its label and score."""
    parts, position = [], 0
    for e in entities:
        parts.append(html.escape(text[position : e.start]))
        parts.append(
            f'<mark class="entity" data-label="{html.escape(e.label)}" style="background:{colours[e.label]}" '
            f'title="{html.escape(e.label)} {e.score:.2f}">{html.escape(e.text)}'
            f'<span class="label">{html.escape(e.label)}</span></mark>'
        )
        position = e.end
    parts.append(html.escape(text[position:]))
    return "".join(parts)


def html_page(documents) -> str:
    labels = [e.label for _, _, entities in documents for e in entities]
    colours = label_colours(labels)
    legend = "".join(
        f'<span class="key" style="background:{colour}">{html.escape(label)}</span>' for label, colour in colours.items()
    )
    sections = "".join(
        f"<section><h2>{html.escape(source)}</h2><p class=\"count\">{len(entities)} entities</p>"
        f'<div class="doc">{highlight(text, entities, colours)}</div></section>'
        for source, text, entities in documents
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>anno-mlx entities</title>
<style>
body {{ font-family: -apple-system, system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
.doc {{ white-space: pre-wrap; line-height: 2; font-size: 1rem; }}
mark.entity {{ padding: 0.1em 0.25em; border-radius: 0.3em; }}
mark.entity .label {{ font-size: 0.65em; font-weight: 600; margin-left: 0.3em; opacity: 0.7; }}
.legend .key {{ display: inline-block; padding: 0.1em 0.5em; margin: 0 0.3em 0.3em 0; border-radius: 0.3em; font-size: 0.85em; }}
.count {{ color: #666; font-size: 0.9em; }}
</style></head>
<body><h1>Entities</h1><div class="legend">{legend}</div>{sections}</body></html>
"""


def _one_line(text: str) -> str:
    return " ".join(text.split())
