"""`corpus`: rows equal to the pipeline's entities for every input kind, bad documents reported by
id, a killed run resumed with nothing lost or written twice, and the Ray run equal to the local one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from anno_mlx import NER
from anno_mlx.cli import main
from anno_mlx.corpus import read_manifest, read_output, run_corpus, skipped_documents

SENTENCES = [
    "Marie Curie was born in Warsaw and moved to Paris.",
    "Tim Cook said Apple will open an office in Berlin.",
    "The United Nations met in Geneva on Monday.",
    "Angela Merkel spoke in Brussels about the European Union.",
    "",
]


def document(i: int) -> str:
    if i == 7:  # U+2028 is a character of a JSON string, never a line break
        return "Ana Silva wrote from Oslo.\u2028Pedro Costa replied from Porto."
    return f"{SENTENCES[i % 5]} Report {i} was filed in Lisbon by Ana Silva." if i % 5 != 4 else ""


@pytest.fixture(scope="module")
def ner():
    return NER.from_pretrained(None, backend="mlx")


@pytest.fixture
def corpora(tmp_path):
    """The same 30 documents as a folder, a JSONL file and a Parquet file, plus bad ones."""
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    for i in range(30):
        (folder / ("sub" if i % 4 == 0 else "") / f"d{i:02d}.txt").write_text(document(i), encoding="utf-8")
    (folder / "latin1.txt").write_bytes("Zürich".encode("latin-1"))
    (folder / "notes.csv").write_text("not, a, document")
    lines = [json.dumps({"id": f"d{i:02d}", "text": document(i)}) for i in range(30)]
    lines[5:5] = [
        "{broken",
        json.dumps({"id": "n", "text": None}),
        json.dumps({"text": "Rome, without an id."}),
        '{"id": "s", "text": "Oslo \\udc00"}',
    ]
    (tmp_path / "docs.jsonl").write_text(
        "\ufeff" + "\n".join(lines) + "\n\n", encoding="utf-8"
    )  # with a byte order mark
    pq.write_table(
        pa.table({"id": [f"d{i:02d}" for i in range(30)], "text": [document(i) for i in range(30)]}),
        tmp_path / "docs.parquet",
    )
    return tmp_path


def expected_rows(ner, documents: dict[str, str]) -> list[dict]:
    rows = []
    for doc_id, text in documents.items():
        for e in ner(text):
            rows.append(
                {
                    "doc_id": doc_id,
                    "start": e.start,
                    "end": e.end,
                    "label": e.label,
                    "text": e.text,
                    "score": e.score,
                }
            )
    return rows


def comparable(rows: list[dict]) -> list[tuple]:
    """Rows sorted, the score last."""
    return sorted((r["doc_id"], r["start"], r["end"], r["label"], r["text"], r["score"]) for r in rows)


def assert_same_rows(got: list[dict], want: list[dict]) -> None:
    """The same entities, scores to 1e-5: a batch's padding or packing moves float32 scores in the
    last bits (compared within a tolerance, not rounded, which splits values near a boundary)."""
    got, want = comparable(got), comparable(want)
    assert [r[:-1] for r in got] == [r[:-1] for r in want]
    assert all(abs(a[-1] - b[-1]) <= 1e-5 for a, b in zip(got, want))


@pytest.mark.parametrize("kind", ["folder", "jsonl", "parquet"])
def test_rows_equal_the_pipeline(ner, corpora, kind):
    source = {
        "folder": corpora / "docs",
        "jsonl": corpora / "docs.jsonl",
        "parquet": corpora / "docs.parquet",
    }[kind]
    manifest = run_corpus(
        source, corpora / "out", ner, model_name="default", documents_per_shard=7, progress=False
    )
    names = {
        i: (f"sub/d{i:02d}.txt" if i % 4 == 0 else f"d{i:02d}.txt") if kind == "folder" else f"d{i:02d}"
        for i in range(30)
    }
    want = {names[i]: document(i) for i in range(30)}
    if kind == "jsonl":
        want["line 8"] = "Rome, without an id."
    rows = read_output(corpora / "out")
    assert_same_rows(rows, expected_rows(ner, want))
    assert all(want[r["doc_id"]][r["start"] : r["end"]] == r["text"] for r in rows)
    skipped = {e["doc_id"]: e["error"] for e in skipped_documents(manifest)}
    assert (
        skipped
        == {
            "folder": {"latin1.txt": "not UTF-8 (byte 0xfc at offset 1)"},
            "jsonl": {
                "line 6": "not JSON (Expecting property name enclosed in double quotes)",
                "n": "no text",
                "s": "the text holds an unpaired surrogate (U+DC00) at index 5; it is not valid Unicode",
            },
            "parquet": {},
        }[kind]
    )
    assert manifest["complete"] and sum(s["documents"] for s in manifest["shards"]) == len(want) + len(
        skipped
    )
    assert [s["file"] for s in manifest["shards"]] == [
        f"part-{i:05d}.parquet" for i in range(len(manifest["shards"]))
    ]


def test_jsonl_output_and_filters(ner, corpora):
    run_corpus(
        corpora / "docs.parquet",
        corpora / "out",
        ner,
        model_name="default",
        fmt="jsonl",
        labels="PERSON,GPE",
        min_score=0.6,
        progress=False,
    )
    rows = read_output(corpora / "out")
    assert rows and {r["label"] for r in rows} <= {"PERSON", "GPE"} and min(r["score"] for r in rows) >= 0.6
    first = (corpora / "out" / "part-00000.jsonl").read_text(encoding="utf-8").splitlines()[0]
    assert list(json.loads(first)) == ["doc_id", "start", "end", "label", "text", "score"]


def test_killed_run_resumes_without_loss_or_duplicates(ner, tmp_path):
    source = tmp_path / "many.jsonl"
    with open(source, "w", encoding="utf-8") as out:
        for i in range(400):
            out.write(json.dumps({"id": i, "text": document(i)}) + "\n")
    args = ["corpus", str(source), "-o", str(tmp_path / "out"), "--shard-size", "10", "--backend", "mlx"]
    process = subprocess.Popen(
        [sys.executable, "-m", "anno_mlx", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    manifest = tmp_path / "out" / "_manifest.json"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if manifest.is_file() and len(json.loads(manifest.read_text())["shards"]) >= 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted = read_manifest(tmp_path / "out")
    assert not interrupted["complete"] and 3 <= len(interrupted["shards"]) < 40
    (tmp_path / "out" / f"part-{len(interrupted['shards']):05d}.parquet").write_bytes(
        b"a shard the manifest never listed"
    )

    assert main([*args, "--resume"]) == 0
    resumed = read_manifest(tmp_path / "out")
    assert resumed["complete"] and [s["first_document"] for s in resumed["shards"]] == list(range(0, 400, 10))
    run_corpus(source, tmp_path / "whole", ner, model_name="default", documents_per_shard=10, progress=False)
    assert_same_rows(read_output(tmp_path / "out"), read_output(tmp_path / "whole"))
    assert len(read_output(tmp_path / "out")) == len(read_output(tmp_path / "whole"))


def test_user_mistakes_are_one_line(corpora, capsys):
    out = str(corpora / "out")
    cases = [
        (["corpus", str(corpora / "missing"), "-o", out], "does not exist"),
        (
            ["corpus", str(corpora / "docs" / "notes.csv"), "-o", out],
            "is not a folder, .jsonl or .parquet file",
        ),
        (
            ["corpus", str(corpora / "docs.parquet"), "-o", out, "--text-column", "body"],
            "has no column 'body' (it has id, text)",
        ),
        (
            ["corpus", str(corpora / "docs.jsonl"), "-o", str(corpora / "docs"), "--backend", "mlx"],
            "already exists and is not empty; choose a new folder",
        ),
        (
            ["corpus", str(corpora / "docs.jsonl"), "-o", out, "--resume", "--backend", "mlx"],
            "not a corpus output",
        ),
        (
            ["corpus", str(corpora / "docs.jsonl"), "-o", out, "--ray", "--resume"],
            "--ray writes Parquet and starts afresh",
        ),
        (["corpus", str(corpora / "docs.jsonl"), "-o", out, "--ray", "--labels", ""], "no labels given"),
        (
            ["corpus", str(corpora / "docs.jsonl"), "-o", out, "--min-score", "nan"],
            "min_score must be a number from 0 to 1",
        ),
        (
            [
                "corpus",
                str(corpora / "docs.parquet"),
                "-o",
                out,
                "--ray",
                "--labels",
                "NOPE",
                "--backend",
                "mlx",
            ],
            "NOPE is not one this model predicts",
        ),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert (
        main(["corpus", str(corpora / "docs.parquet"), "-o", out, "--backend", "mlx", "--shard-size", "100"])
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "corpus",
                str(corpora / "docs.parquet"),
                "-o",
                out,
                "--backend",
                "mlx",
                "--resume",
                "--min-score",
                "0.5",
            ]
        )
        == 2
    )
    assert "other settings than the first run (min_score)" in capsys.readouterr().err
    resume = ["corpus", str(corpora / "docs.parquet"), "-o", out, "--backend", "mlx", "--resume"]
    assert main([*resume, "--no-one-type-per-name"]) == 2
    assert "other settings than the first run (one_type_per_name)" in capsys.readouterr().err
    # A manifest from before the setting existed ran without the rule: it resumes without it.
    manifest_file = Path(out) / "_manifest.json"
    manifest = json.loads(manifest_file.read_text())
    del manifest["settings"]["one_type_per_name"]
    manifest_file.write_text(json.dumps(manifest))
    assert main(resume) == 2
    assert "other settings than the first run (one_type_per_name)" in capsys.readouterr().err
    assert main([*resume, "--no-one-type-per-name"]) == 0


@pytest.mark.parametrize("kind", ["folder", "parquet"])
def test_ray_run_equals_the_local_run(ner, corpora, kind):
    """A local Ray with two CPUs: read tasks, one model actor, write_parquet."""
    import ray

    from anno_mlx.ray_corpus import run_ray

    source = corpora / ("docs" if kind == "folder" else "docs.parquet")
    local = run_corpus(source, corpora / "local", ner, model_name="default", progress=False)
    try:
        manifest = run_ray(
            source, corpora / "ray", model=None, model_name="default", backend="mlx", num_actors=1, num_cpus=2
        )
    finally:
        ray.shutdown()
    assert manifest["runner"] == "ray" and manifest["shards"]
    assert_same_rows(read_output(corpora / "ray"), read_output(corpora / "local"))
    assert skipped_documents(manifest) == skipped_documents(local)


MANIFEST_EDITS = {
    "negative count": (lambda m: m["shards"][0].update(documents=-5), "has counts"),
    "a shard dropped": (lambda m: m["shards"].pop(1), "shard 1 names 'part-00002.jsonl'"),
    "a huge count": (
        lambda m: m["shards"][0].update(documents=1_000_000),
        "shard 1 starts at document 2, not 1000000",
    ),
    "another file": (
        lambda m: m["shards"][0].update(file="part-09999.jsonl"),
        "shard 0 names 'part-09999.jsonl'",
    ),
    "a file outside": (
        lambda m: m["shards"][0].update(file="../../victim.txt"),
        "shard 0 names '../../victim.txt'",
    ),
    "no shards": (lambda m: m.pop("shards"), "shards, settings or runner missing"),
    "settings a list": (lambda m: m.update(settings=[]), "shards, settings or runner missing"),
    "count a string": (lambda m: m["shards"][0].update(documents="2"), "has counts"),
    "a shard a string": (
        lambda m: m["shards"].__setitem__(0, "part-00000.jsonl"),
        "is not an object with a file",
    ),
    "a count past any input": (lambda m: m["shards"][3].update(documents=10**30), "has counts"),
    "more documents than the input": (
        lambda m: m["shards"][3].update(documents=50),
        "counts 56 documents but",
    ),
}


@pytest.mark.parametrize("case", list(MANIFEST_EDITS))
def test_a_damaged_manifest_is_refused_and_nothing_deleted(case, ner, tmp_path, capsys):
    source = tmp_path / "docs.jsonl"
    source.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": document(i)}) + "\n" for i in range(7)), encoding="utf-8"
    )
    run_corpus(
        source,
        tmp_path / "out",
        ner,
        model_name="default",
        fmt="jsonl",
        documents_per_shard=2,
        progress=False,
    )
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    edit, message = MANIFEST_EDITS[case]
    edit(manifest)
    (tmp_path / "out" / "_manifest.json").write_text(json.dumps(manifest))
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    capsys.readouterr()
    assert (
        main(
            [
                "corpus",
                str(source),
                "-o",
                str(tmp_path / "out"),
                "--format",
                "jsonl",
                "--shard-size",
                "2",
                "--resume",
                "--backend",
                "mlx",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "is damaged" in err and message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == files


def test_unusable_ids_are_reported_not_written(ner, tmp_path):
    source = tmp_path / "ids.jsonl"
    lines = [
        '{"id": "\\ud800", "text": "Ana lives in Paris."}',
        '{"id": null, "text": "Paris"}',
        '{"id": [1], "text": "Paris"}',
        '{"id": "ok", "text": "Ana Silva lives in Paris."}',
        "[" * 50_000 + "]" * 50_000,
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    manifest = run_corpus(source, tmp_path / "out", ner, model_name="default", progress=False)
    errors = {e["doc_id"]: e["error"] for e in skipped_documents(manifest)}
    assert errors == {
        "\\ud800": "the id is not printable Unicode text",
        "line 2": 'no usable "id" (a string or a number)',
        "line 3": 'no usable "id" (a string or a number)',
        "line 5": "JSON nested too deeply",
    }
    assert {r["doc_id"] for r in read_output(tmp_path / "out")} == {"ok"}


def test_a_file_name_that_is_not_utf8(ner, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "caf\udce9.txt").write_text("Ana Silva lives in Paris.", encoding="utf-8")
    run_corpus(folder, tmp_path / "out", ner, model_name="default", progress=False)
    assert {r["doc_id"] for r in read_output(tmp_path / "out")} == {"caf\\xe9.txt"}


def test_resume_deletes_only_its_own_leftovers(ner, tmp_path):
    source = tmp_path / "docs.jsonl"
    source.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": document(i)}) + "\n" for i in range(4)), encoding="utf-8"
    )
    out = tmp_path / "out"
    run_corpus(source, out, ner, model_name="default", fmt="jsonl", documents_per_shard=2, progress=False)
    (out / "part-notes.txt").write_text("mine")
    (out / "part-dir").mkdir()
    (out / "part-00007.jsonl").write_text("a shard of ours the manifest never listed")
    run_corpus(
        source,
        out,
        ner,
        model_name="default",
        fmt="jsonl",
        documents_per_shard=2,
        progress=False,
        resume=True,
    )
    assert (out / "part-notes.txt").read_text() == "mine" and (out / "part-dir").is_dir()
    assert not (out / "part-00007.jsonl").exists()


def test_parquet_ids_that_are_not_ids(ner, tmp_path):
    pq.write_table(
        pa.table({"id": [None, "ok", None], "text": ["Ana in Paris.", "Ana Silva lives in Paris.", "Rome"]}),
        tmp_path / "null.parquet",
    )
    pq.write_table(
        pa.table({"id": [[1, 2], [3]], "text": ["Ana in Paris.", "Rome"]}), tmp_path / "list.parquet"
    )
    null = run_corpus(tmp_path / "null.parquet", tmp_path / "a", ner, model_name="default", progress=False)
    assert [e["error"] for e in skipped_documents(null)] == ["no usable id (a string or a number)"] * 2
    assert {r["doc_id"] for r in read_output(tmp_path / "a")} == {"ok"}
    listed = run_corpus(tmp_path / "list.parquet", tmp_path / "b", ner, model_name="default", progress=False)
    assert len(skipped_documents(listed)) == 2 and read_output(tmp_path / "b") == []


def test_ray_refuses_file_names_its_reader_cannot_list(tmp_path, capsys):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "caf\udce9.txt").write_text("Paris")
    capsys.readouterr()
    assert main(["corpus", str(folder), "-o", str(tmp_path / "out"), "--ray", "--backend", "mlx"]) == 2
    err = capsys.readouterr().err
    assert "caf\\xe9.txt has a name that is not UTF-8" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_zero_shot_model_runs_a_corpus_with_its_labels_locally_and_on_ray(gliner_checkpoint, corpora):
    import ray

    from anno_mlx.ray_corpus import run_ray

    model = str(gliner_checkpoint("uni-modernbert"))
    labels = ["person", "city or country"]
    source = corpora / "docs"
    ner = NER.from_pretrained(model, backend="mlx", labels=labels, threshold=0.3)
    run_corpus(source, corpora / "local", ner, model_name="gliner", labels=labels, progress=False)
    try:
        run_ray(
            source,
            corpora / "ray",
            model=model,
            model_name="gliner",
            backend="mlx",
            num_actors=1,
            num_cpus=2,
            labels=labels,
            threshold=0.3,
        )
    finally:
        ray.shutdown()
    local = comparable(read_output(corpora / "local"))
    assert local and {row[3] for row in local} <= set(labels)
    assert_same_rows(read_output(corpora / "ray"), read_output(corpora / "local"))
