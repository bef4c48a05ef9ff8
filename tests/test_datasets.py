"""Readers for labelled data: CoNLL (IOB1, IOB2, BIOES) and JSONL; errors name file and line."""

from __future__ import annotations

import pytest

from anno_mlx import AnnoError
from anno_mlx.datasets import read_examples

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
"""


def test_conll_iob2(tmp_path):
    path = tmp_path / "train.conll"
    path.write_text(CONLL)
    first, second = read_examples(path)
    assert first.text == "EU rejects German call ."
    assert [(first.text[a:b], t) for a, b, t in first.spans] == [("EU", "ORG"), ("German", "MISC")]
    assert [(second.text[a:b], t) for a, b, t in second.spans] == [("Peter Blackburn", "PER")]
    assert first.where == f"{path}:3"


def test_conll_iob1_and_bioes(tmp_path):
    iob1 = tmp_path / "iob1.txt"
    iob1.write_text("New I-LOC\nYork I-LOC\nand O\nParis I-LOC\nLyon B-LOC\n")
    (example,) = read_examples(iob1)
    assert [example.text[a:b] for a, b, _ in example.spans] == ["New York", "Paris", "Lyon"]
    bioes = tmp_path / "bioes.txt"
    bioes.write_text("New\tB-LOC\nYork\tE-LOC\nParis\tS-LOC\nLyon\tS-LOC\n")
    (example,) = read_examples(bioes)
    assert [example.text[a:b] for a, b, _ in example.spans] == ["New York", "Paris", "Lyon"]


def test_jsonl(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(
        '{"text": "Zoë lives in Paris.", "entities": [{"start": 13, "end": 18, "label": "LOC"}, {"start": 0, "end": 3, "label": "PER"}]}\n\n'
    )
    (example,) = read_examples(path)
    assert [(example.text[a:b], t) for a, b, t in example.spans] == [("Zoë", "PER"), ("Paris", "LOC")]


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("a.conll", "EU B-ORG\nrejects\n", "a.conll:2: expected a token and a tag"),
        ("a.conll", "EU B-ORG\nrejects B-\n", "a.conll:2: tag 'B-' is not O"),
        ("a.jsonl", '{"text": "x"}\n{"text": 3}\n', "a.jsonl:2: expected an object"),
        (
            "a.jsonl",
            '{"text": "abc", "entities": [{"start": 1, "end": 9, "label": "X"}]}\n',
            "a.jsonl:1: entity 0 [1, 9) is outside",
        ),
        (
            "a.jsonl",
            '{"text": "abc", "entities": [{"start": 1, "label": "X"}]}\n',
            'a.jsonl:1: entity 0 needs integer "start"',
        ),
        (
            "a.jsonl",
            '{"text": "abcdef", "entities": [{"start": 0, "end": 3, "label": "X"}, {"start": 2, "end": 5, "label": "Y"}]}\n',
            "overlap",
        ),
        ("a.jsonl", '{"text": "abc"\n', "a.jsonl:1: not valid JSON"),
        ("a.conll", "\n\n", "holds no examples"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(AnnoError, match=message.replace("[", r"\[").replace(")", r"\)")):
        read_examples(path)


def test_not_utf8_and_missing(tmp_path):
    path = tmp_path / "latin.conll"
    path.write_bytes("Zoë B-PER\n".encode("latin-1"))
    with pytest.raises(AnnoError, match="not valid UTF-8"):
        read_examples(path)
    with pytest.raises(AnnoError, match="does not exist"):
        read_examples(tmp_path / "nope.conll")


def test_conll_blank_tokens_are_skipped(tmp_path):
    """The Broad Twitter Corpus has tokens that are empty or a space before the tab."""
    path = tmp_path / "tweets.conll"
    path.write_text("Off\tO\n\tO\n \tO\nto\tO\nLeeds\tB-LOC\n\nx\n")
    with pytest.raises(AnnoError, match=r":7: expected a token and a tag"):
        read_examples(path)
    path.write_text("Off\tO\n\tO\n \tO\nto\tO\nLeeds\tB-LOC\n")
    (example,) = read_examples(path)
    assert example.text == "Off to Leeds" and example.spans == [(7, 12, "LOC")]


def test_lines_end_at_newline_only(tmp_path):
    """U+2028, U+2029, U+0085 and form feeds are characters of a line, not line ends: JSON
    strings may hold the first three raw, and a CoNLL token any of them."""
    path = tmp_path / "data.jsonl"
    odd = "a\u2028b\u2029c\x85d"
    path.write_text(
        '{"text": "%s Paris", "entities": [{"start": 8, "end": 13, "label": "LOC"}]}\r\n{"text": "x"}\n'
        % odd,
        newline="",
    )
    first, second = read_examples(path)
    assert first.text == odd + " Paris" and first.spans == [(8, 13, "LOC")] and second.where.endswith(":2")
    conll = tmp_path / "data.conll"
    conll.write_text("Zoe\x0cy B-PER\r\nin O\r\nNew\u2028York B-LOC\n\nOslo B-LOC\n", newline="")
    first, second = read_examples(conll)
    assert first.text == "Zoe\x0cy in New\u2028York" and second.where.endswith(":5")
    assert [first.text[a:b] for a, b, _ in first.spans] == ["Zoe\x0cy", "New\u2028York"]


@pytest.mark.parametrize("name", ["data.conll", "data.jsonl"])
def test_a_byte_order_mark_is_not_text(tmp_path, name):
    conll, jsonl = (
        "Paris B-LOC\nis O\n",
        '{"text": "Paris is", "entities": [{"start": 0, "end": 5, "label": "LOC"}]}\n',
    )
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + (conll if name.endswith("conll") else jsonl).encode())
    (example,) = read_examples(path)
    assert example.text == "Paris is" and example.spans == [(0, 5, "LOC")]


@pytest.mark.parametrize("value", ["0.9", "1.0", "true", "false", '"1"', "null"])
def test_jsonl_offsets_are_integers(tmp_path, value):
    path = tmp_path / "data.jsonl"
    path.write_text(
        '{"text": "x"}\n{"text": "Paris", "entities": [{"start": %s, "end": 5, "label": "LOC"}]}\n' % value
    )
    with pytest.raises(AnnoError) as caught:
        read_examples(path)
    assert str(caught.value) == f'{path}:2: entity 0 "start" must be an integer character offset, not {value}'
