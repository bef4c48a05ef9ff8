"""`python -m anno_mlx ner` end to end on a converted_model tiny checkpoint; every format parsed back."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from anno_mlx import NER, AnnoError
from anno_mlx.cli import main
from anno_mlx.render import FORMATS, output_format

TEXT = "Ada Lovelace worked with Charles Babbage in London.\nMarie Curie moved to Paris; 東京と大阪。 Zoë & <b>tags</b>"
OTHER = "The United Nations met in New York on Tuesday."


@pytest.fixture(scope="module")
def expected(converted_model):
    ner = NER.from_pretrained(converted_model)
    return {TEXT: ner(TEXT), OTHER: ner(OTHER)}


@pytest.fixture
def files(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text(TEXT, encoding="utf-8")
    second.write_text(OTHER, encoding="utf-8")
    return first, second


def run(capsys, *argv) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def as_tuples(entities) -> list[tuple]:
    return [(e.start, e.end, e.label, e.text) for e in entities]


def test_json_is_the_pipeline_list(capsys, converted_model, expected, files):
    out = run(
        capsys, "ner", "--model", str(converted_model), "--format", "json", str(files[0])
    )  # FILE as TEXT
    assert out == run(
        capsys, "ner", "--file", str(files[0]), "--model", str(converted_model), "--format", "json"
    )
    entities = json.loads(out)
    assert [(d["start"], d["end"], d["entity_group"], d["word"]) for d in entities] == as_tuples(
        expected[TEXT]
    )
    assert all(TEXT[d["start"] : d["end"]] == d["text"] for d in entities)
    assert [d["score"] for d in entities] == pytest.approx([e.score for e in expected[TEXT]], abs=1e-6)


def test_json_for_several_inputs_is_a_list_of_lists(capsys, converted_model, expected, files):
    out = run(
        capsys,
        "ner",
        "-f",
        str(files[0]),
        "-f",
        str(files[1]),
        "-m",
        str(converted_model),
        "--format",
        "json",
    )
    lists = json.loads(out)
    assert [[(d["start"], d["end"], d["label"], d["text"]) for d in entities] for entities in lists] == [
        as_tuples(expected[TEXT]),
        as_tuples(expected[OTHER]),
    ]


def test_jsonl_one_line_per_document(capsys, converted_model, expected, files):
    out = run(
        capsys,
        "ner",
        "-f",
        str(files[0]),
        "-f",
        str(files[1]),
        "-m",
        str(converted_model),
        "--format",
        "jsonl",
    )
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["source"] for line in lines] == [str(files[0]), str(files[1])]
    assert [(d["start"], d["end"], d["label"], d["text"]) for d in lines[1]["entities"]] == as_tuples(
        expected[OTHER]
    )


def test_table_lists_every_entity(capsys, converted_model, expected):
    out = run(capsys, "ner", OTHER, "-m", str(converted_model))
    header, *rows = out.splitlines()
    assert header.split() == ["start", "end", "label", "score", "text"]
    parsed = [re.split(r"\s{2,}", row, maxsplit=4) for row in rows]
    assert [(int(r[0]), int(r[1]), r[2], r[4]) for r in parsed] == as_tuples(expected[OTHER])


def test_conll_tags_cover_the_entities(capsys, converted_model, expected, files):
    out = run(capsys, "ner", "-f", str(files[0]), "-m", str(converted_model), "--format", "conll")
    lines = out.splitlines()
    assert lines[0] == f"-DOCSTART- {files[0]}"
    rows = [line.split("\t") for line in lines[2:] if line]
    for token, start, _tag in rows:
        assert TEXT[int(start) : int(start) + len(token)] == token
    # Rebuild spans from B-/I- tags: each must lie over exactly one entity of that type.
    spans, current = [], None
    for token, start, tag in rows:
        start = int(start)
        if tag.startswith("B-"):
            current = [start, start + len(token), tag[2:]]
            spans.append(current)
        elif tag.startswith("I-"):
            current[1] = start + len(token)
        else:
            current = None
    assert len(spans) == len(expected[TEXT])
    for (a, b, label), e in zip(spans, expected[TEXT]):
        assert label == e.label and a < e.end and e.start < b


def test_csv_offsets_are_the_text_slices(capsys, converted_model, expected, files):
    one = list(
        csv.reader(io.StringIO(run(capsys, "ner", OTHER, "-m", str(converted_model), "--format", "csv")))
    )
    assert one[0] == ["text", "label", "score", "start", "end"]
    assert [(int(start), int(end), label, text) for text, label, _, start, end in one[1:]] == as_tuples(
        expected[OTHER]
    )
    out = run(
        capsys, "ner", "-f", str(files[0]), "-f", str(files[1]), "-m", str(converted_model), "--format", "csv"
    )
    header, *rows = csv.reader(io.StringIO(out))
    assert header == ["source", "text", "label", "score", "start", "end"]
    texts = {str(files[0]): TEXT, str(files[1]): OTHER}
    assert rows and all(
        texts[source][int(start) : int(end)] == text for source, text, _, _, start, end in rows
    )
    assert [(r[0], int(r[4]), int(r[5]), r[2], r[1]) for r in rows] == [
        (str(f), *entity) for f, text in zip(files, (TEXT, OTHER)) for entity in as_tuples(expected[text])
    ]


def test_every_format_has_a_suffix_and_type_and_unknown_ones_are_named():
    assert all(f.suffix.startswith(".") and "/" in f.mime for f in FORMATS.values())
    with pytest.raises(
        AnnoError, match="unknown output format 'xml'; known: table, json, jsonl, conll, html, csv"
    ):
        output_format("xml")


class Marks(HTMLParser):
    def __init__(self):
        super().__init__()
        self.marks, self.depth, self.in_label, self.external = [], 0, False, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if key in attrs:
                self.external.append(attrs[key])
        if tag == "mark":
            self.marks.append([attrs["data-label"], ""])
            self.depth += 1
        elif tag == "span" and self.depth:
            self.in_label = True

    def handle_endtag(self, tag):
        if tag == "mark":
            self.depth -= 1
        elif tag == "span":
            self.in_label = False

    def handle_data(self, data):
        if self.depth and not self.in_label:
            self.marks[-1][1] += data


def test_html_is_standalone_and_highlights_each_entity(capsys, converted_model, expected, files, tmp_path):
    out_file = tmp_path / "page.html"
    assert (
        main(
            ["ner", "-f", str(files[0]), "-m", str(converted_model), "--format", "html", "-o", str(out_file)]
        )
        == 0
    )
    page = out_file.read_text(encoding="utf-8")
    parser = Marks()
    parser.feed(page)
    assert [(label, text) for label, text in parser.marks] == [(e.label, e.text) for e in expected[TEXT]]
    assert parser.external == [] and "http" not in page, "nothing loaded from anywhere"
    assert "<b>" not in page and "</b>" not in page, "the document's own markup is escaped"


def test_stdin_and_labels_and_min_score(capsys, converted_model, expected, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(TEXT.encode("utf-8"))))
    out = run(
        capsys,
        "ner",
        "-",
        "-m",
        str(converted_model),
        "--format",
        "json",
        "--labels",
        "PER,LOC",
        "--min-score",
        "0.2",
    )
    got = [(d["start"], d["end"], d["label"], d["text"]) for d in json.loads(out)]
    assert got == as_tuples([e for e in expected[TEXT] if e.label in ("PER", "LOC") and e.score >= 0.2])


def test_other_encodings_with_encoding_flag(capsys, converted_model, tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("Zoë went to Paris.".encode("latin-1"))
    assert main(["ner", "-f", str(path), "-m", str(converted_model)]) == 2
    err = capsys.readouterr().err
    assert "is not valid utf-8" in err and "--encoding" in err
    out = run(
        capsys,
        "ner",
        "-f",
        str(path),
        "-m",
        str(converted_model),
        "--encoding",
        "latin-1",
        "--format",
        "json",
    )
    assert all("Zoë went to Paris."[d["start"] : d["end"]] == d["text"] for d in json.loads(out))


@pytest.mark.parametrize(
    "argv,message",
    [
        (["ner", "Paris", "--model", "no/such/model/folder"], "model no/such/model/folder does not exist"),
        (["ner", "--model", "MODEL"], "no input"),
        (["ner", "-f", "missing.txt", "-m", "MODEL"], "input file missing.txt does not exist"),
        (["ner", "-f", "BINARY", "-m", "MODEL"], "looks like a binary file"),
        (["ner", "Paris", "-m", "no/such-model"], "neither a local folder nor in the Hugging Face cache"),
        (["ner", "Paris", "-m", "MODEL", "--labels", "PERSON"], "not one this model predicts"),
        (["ner", "Paris", "-m", "MODEL", "--labels", ""], "no labels given ('' names no entity type)"),
        (["ner", "Paris", "-m", "MODEL", "--labels", " , ,"], "no labels given"),
        (
            ["ner", "Paris", "-m", "MODEL", "--min-score", "nan"],
            "min_score must be a number from 0 to 1, not nan",
        ),
        (
            ["ner", "Paris", "-m", "MODEL", "--min-score", "inf"],
            "min_score must be a number from 0 to 1, not inf",
        ),
        (
            ["ner", "Paris", "-m", "MODEL", "--min-score", "2"],
            "min_score must be a number from 0 to 1, not 2.0",
        ),
        (
            ["ner", "Paris", "-m", "MODEL", "--min-score", "-1"],
            "min_score must be a number from 0 to 1, not -1.0",
        ),
        (["ner", "\udcffParis", "-m", "MODEL"], "TEXT is not valid UTF-8 (byte 0xff at character 0)"),
        (["ner", "Paris \ud800", "-m", "MODEL"], "TEXT is not valid UTF-8 (U+D800 at character 6)"),
    ],
)
def test_bad_input_gets_one_line(capsys, converted_model, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "BINARY").write_bytes(b"\x00\x01\x02PK\x03\x04" * 100)
    argv = [str(converted_model) if a == "MODEL" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "Traceback" not in err


def test_cli_in_a_fresh_process(converted_model, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "anno_mlx", "ner", OTHER, "--model", str(converted_model), "--format", "json"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert all(OTHER[d["start"] : d["end"]] == d["text"] for d in json.loads(result.stdout))


def test_backend_option_gives_the_same_entities(capsys, converted_model, files):
    outputs = {}
    for backend in ("mlx", "torch"):
        out = run(
            capsys,
            "ner",
            "-f",
            str(files[0]),
            "-m",
            str(converted_model),
            "--format",
            "json",
            "--backend",
            backend,
            "--device",
            "cpu",
        )
        outputs[backend] = [(d["start"], d["end"], d["label"]) for d in json.loads(out)]
    assert outputs["mlx"] == outputs["torch"]
    assert main(["ner", "x", "-m", str(converted_model), "--backend", "mlx", "--device", "cuda"]) == 2
    assert "use --backend torch" in capsys.readouterr().err


def test_ner_without_a_model_uses_the_built_in_one():
    """The README's first command: a fresh interpreter, no --model, real entities."""
    import subprocess
    import sys

    text = "Marie Curie moved from Warsaw to Paris in 1891."
    out = subprocess.run(
        [sys.executable, "-m", "anno_mlx", "ner", "--format", "json", text],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = {(e["word"], e["entity_group"]) for e in json.loads(out)}
    assert {("Warsaw", "GPE"), ("Paris", "GPE"), ("1891", "DATE")} <= found, found


def test_one_type_per_name_can_be_turned_off(capsys):
    """`--no-one-type-per-name` gives each place its own reading, as the option does in Python."""
    text = (
        "Washington lost to Krajicek in the third set. Washington served for the match at 5-4. "
        '"I think he got a little tight," said Washington.'
    )
    ner = NER.from_pretrained()
    for flags, options in (
        ([], {}),
        (["--one-type-per-name"], {}),
        (["--no-one-type-per-name"], {"one_type_per_name": False}),
    ):
        out = json.loads(run(capsys, "ner", "--format", "json", *flags, text))
        assert [(d["start"], d["end"], d["label"]) for d in out] == [
            (e.start, e.end, e.label) for e in ner(text, **options)
        ]
    assert ner(text) != ner(text, one_type_per_name=False)


def test_closed_standard_input_is_one_line(converted_model, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)  # what Python gives a process started with `<&-`
    assert main(["ner", "-", "-m", str(converted_model)]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: standard input is closed; pipe text into `ner -`, or give TEXT or --file F"
    )
    shell = f"{sys.executable} -m anno_mlx ner - -m {converted_model} <&-"
    result = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=300)
    assert (
        result.returncode == 2
        and result.stderr.startswith("error: standard input is closed")
        and result.stderr.count("\n") == 1
    )


def test_a_file_name_that_is_not_utf8_is_read_and_shown(capsys, converted_model, tmp_path):
    """Bytes of a file name that are not UTF-8 reach Python as lone surrogates: the file is
    read, and its name is written with them escaped."""
    import os

    path = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(OTHER)
    out = tmp_path / "out.html"
    assert (
        main(["ner", "-f", path, "-f", path, "-m", str(converted_model), "--format", "html", "-o", str(out)])
        == 0
    )
    assert "caf\\udce9.txt" in out.read_text(encoding="utf-8")
