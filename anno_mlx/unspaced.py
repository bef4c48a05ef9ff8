"""Scripts written without spaces between words, by code point range.

In these scripts a space cannot tell where a word begins, so each character is taken as a word
of its own: the tokenizer's word starts use every range, the CoNLL writer cuts kana and CJK
ideographs into single characters.
"""

from __future__ import annotations

from typing import Iterable

UNSPACED_SCRIPTS: dict[str, tuple[int, int]] = {
    "Thai and Lao": (0x0E00, 0x0EFF),
    "Myanmar": (0x1000, 0x109F),
    "Khmer": (0x1780, 0x17FF),
    "kana": (0x3040, 0x30FF),
    "CJK ideographs, extension A": (0x3400, 0x4DBF),
    "CJK ideographs": (0x4E00, 0x9FFF),
    "CJK compatibility ideographs": (0xF900, 0xFAFF),
    "half-width katakana": (0xFF66, 0xFF9F),
    "CJK ideographs, supplementary planes": (0x20000, 0x3134F),
}


def character_class(scripts: Iterable[str]) -> str:
    """The ranges of `scripts` as the inside of a regular expression's `[...]`."""
    return "".join(f"{chr(low)}-{chr(high)}" for low, high in (UNSPACED_SCRIPTS[name] for name in scripts))
