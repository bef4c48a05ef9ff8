"""`python -m anno_mlx corpus`: entities of a whole corpus, one row per entity, resumable.

Input: a folder of .txt/.md files (id: the path inside the folder), a JSONL file of
`{"id", "text"}` lines (id: the line number when absent), or a Parquet file with a text column
(id: the row number when there is no id column). Output: a folder of shards
(`part-00000.parquet` or `.jsonl`, columns `doc_id, start, end, label, text, score`) and a
`_manifest.json` that lists each finished shard with the documents it covers and the documents
it skipped as bad. A shard is written to a temporary name and renamed, then the manifest is
replaced, so an interrupted run resumes after the last finished shard with no row lost or
written twice. `ray_corpus.py` runs the same per-document steps on Ray Data.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from .errors import AnnoError
from .ner import NER, label_set

COLUMNS = ("doc_id", "start", "end", "label", "text", "score")
TEXT_SUFFIXES = (".txt", ".md")
MANIFEST = "_manifest.json"
MANIFEST_VERSION = 1
DOCUMENTS_PER_SHARD = 1000
DOCUMENTS_PER_BATCH = 32
OUTPUT_FORMATS = ("parquet", "jsonl")
DOCUMENT_ERRORS = (AnnoError, TypeError, ValueError, UnicodeError)  # what a document's content can raise


@dataclass(frozen=True)
class Document:
    """A document of the corpus, or the reason it cannot be analysed (`error`)."""

    doc_id: str
    text: Optional[str] = None
    error: Optional[str] = None


# -- reading ---------------------------------------------------------------------------------


def input_kind(source: Path) -> str:
    """ "folder", "jsonl" or "parquet", from what `source` is."""
    if source.is_dir():
        return "folder"
    if not source.is_file():
        raise AnnoError(
            f"corpus input {source} does not exist; give a folder of .txt files, a .jsonl or a .parquet file"
        )
    suffix = source.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise AnnoError(f"corpus input {source} is not a folder, .jsonl or .parquet file; give one of those")


def folder_files(folder: Path) -> list[Path]:
    """The folder's text files, in a fixed order (sorted by path)."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES and p.is_file())


def file_id(name: str) -> str:
    """A file's path as an id; bytes that are not UTF-8 in the name are written as \\xNN."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def file_document(doc_id: str, data: bytes) -> Document:
    try:
        return checked_document(doc_id, data.decode("utf-8"))
    except UnicodeDecodeError as err:
        return Document(doc_id, error=f"not UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start})")


def jsonl_document(line: str, number: Optional[int]) -> Document:
    """One JSONL line. Without an "id" the id is "line N"; Ray's reader has no line numbers,
    so there a missing id is an error."""
    where = f"line {number}" if number is not None else f"line {line[:40]!r}"
    try:
        record = json.loads(line.removeprefix("\ufeff"))  # a byte order mark opens some files
    except json.JSONDecodeError as err:
        return Document(where, error=f"not JSON ({err.msg})")
    except RecursionError:
        return Document(where, error="JSON nested too deeply")
    if not isinstance(record, dict):
        return Document(where, error="not a JSON object")
    doc_id = record.get("id", where if number is not None else None)
    if doc_id is None or isinstance(doc_id, (dict, list, bool)):
        return Document(where, error='no usable "id" (a string or a number)')
    return checked_document(doc_id, record.get("text"))


def checked_document(doc_id: Any, text: Any) -> Document:
    """A document with a usable id (a string or a number, valid Unicode) and a string text."""
    if (
        doc_id is None
        or isinstance(doc_id, (dict, list, tuple, bool, bytes))
        or getattr(doc_id, "ndim", 0)
        or doc_id != doc_id
    ):
        return Document(repr(doc_id), error="no usable id (a string or a number)")
    doc_id = str(doc_id)
    if not doc_id.isprintable():  # also refuses lone surrogates (category Cs)
        return Document(
            doc_id.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace"),
            error="the id is not printable Unicode text",
        )
    if not isinstance(text, str):
        return Document(
            doc_id, error="no text" if text is None else f"text is a {type(text).__name__}, not a string"
        )
    return Document(doc_id, text)  # anything else wrong with the text, the pipeline reports (entity_rows)


def read_documents(
    source: Path, text_column: str = "text", id_column: str = "id"
) -> tuple[Iterator[Document], Optional[int]]:
    """The corpus's documents in a fixed order, and how many there are when cheap to know."""
    kind = input_kind(source)
    if kind == "folder":
        files = folder_files(source)
        if not files:
            raise AnnoError(f"{source} holds no .txt or .md files")
        return (file_document(file_id(p.relative_to(source).as_posix()), p.read_bytes()) for p in files), len(
            files
        )
    if kind == "jsonl":
        return _jsonl_documents(source), None
    parquet = parquet_file(source)
    names = parquet.schema_arrow.names
    if text_column not in names:
        raise AnnoError(
            f"{source} has no column {text_column!r} (it has {', '.join(names)}); pass --text-column"
        )
    ids = id_column if id_column in names else None
    return _parquet_documents(parquet, text_column, ids), parquet.metadata.num_rows


def _jsonl_documents(source: Path) -> Iterator[Document]:
    with open(source, "rb") as lines:
        for number, raw in enumerate(lines, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield Document(f"line {number}", error=f"not UTF-8 (byte 0x{raw[err.start]:02x})")
                continue
            if line.strip():
                yield jsonl_document(line, number)


def fingerprint(source: Path, total: Optional[int]) -> dict:
    """What must not change between a run and its resume: a file's size and time, a folder's
    number of text files."""
    if source.is_dir():
        return {"files": total}
    stat = source.stat()
    return {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _parquet_documents(parquet, text_column: str, id_column: Optional[str]) -> Iterator[Document]:
    columns = [text_column] + ([id_column] if id_column else [])
    row = 0
    for batch in parquet.iter_batches(columns=columns, batch_size=1024):
        texts = batch.column(text_column).to_pylist()
        ids = batch.column(id_column).to_pylist() if id_column else range(row, row + len(texts))
        for doc_id, text in zip(ids, texts):
            yield checked_document(doc_id, text)
        row += len(texts)


def parquet_file(source: Path):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(source)
    except Exception as err:  # pyarrow raises its own error types for unreadable files
        raise AnnoError(f"{source} is not a readable Parquet file ({str(err).splitlines()[0]})") from None


# -- analysing -------------------------------------------------------------------------------


def entity_rows(ner: NER, documents: list[Document], keep) -> tuple[list[dict], list[dict], int]:
    """Rows for the good documents, error records for the bad ones, and the tokens analysed.
    A batch that a document's content makes fail is retried one document at a time, so the bad
    one is reported by its id and the rest still count; any other failure (the model, memory)
    stops the run, since it is not the document's fault."""
    good = [d for d in documents if d.error is None]
    errors = [{"doc_id": d.doc_id, "error": d.error} for d in documents if d.error is not None]
    try:
        analyses = ner.analyze([d.text for d in good])
    except DOCUMENT_ERRORS:
        analyses = []
        for d in list(good):
            try:
                analyses.extend(ner.analyze([d.text]))
            except DOCUMENT_ERRORS as err:
                good.remove(d)
                errors.append(
                    {
                        "doc_id": d.doc_id,
                        "error": str(err) if isinstance(err, AnnoError) else f"{type(err).__name__}: {err}",
                    }
                )
    rows = [
        {
            "doc_id": d.doc_id,
            "start": e.start,
            "end": e.end,
            "label": e.label,
            "text": e.text,
            "score": e.score,
        }
        for d, analysis in zip(good, analyses)
        for e in keep(analysis.entities)
    ]
    return rows, errors, sum(a.n_tokens for a in analyses)


# -- writing ---------------------------------------------------------------------------------


def write_shard(path: Path, rows: list[dict], fmt: str) -> None:
    """Rows to `path` through a new temporary file in the same folder and a rename."""
    with _replacing(path) as tmp:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema()), tmp)
        else:
            with open(tmp, "w", encoding="utf-8") as out:
                out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary file beside `path`, created exclusively (never one planted there), renamed
    onto `path` when the block ends, removed when it fails."""
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        yield Path(name)
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)


def arrow_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("doc_id", pa.string()),
            ("start", pa.int64()),
            ("end", pa.int64()),
            ("label", pa.string()),
            ("text", pa.string()),
            ("score", pa.float64()),
        ]
    )


def write_manifest(output: Path, manifest: dict) -> None:
    with _replacing(output / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_manifest(output: Path) -> dict:
    try:
        manifest = json.loads((output / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise AnnoError(
            f"{output} has no readable {MANIFEST}: it is not a corpus output; choose a new -o folder"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION:
        raise AnnoError(f"{output}/{MANIFEST} is not one this version writes; choose a new -o folder")
    problem = manifest_problem(manifest)
    if problem:
        raise AnnoError(
            f"{output}/{MANIFEST} is damaged ({problem}); its rows cannot be trusted, start again in a new -o folder"
        )
    return manifest


SHARD_NAME = re.compile(r"^part-\d{5}\.(parquet|jsonl)$")
TEMP_NAME = re.compile(r"^\.(part-\d{5}\.(parquet|jsonl)|_manifest\.json)\..+\.tmp$")
MAX_COUNT = 10**15
RAY_SHARD_NAME = re.compile(r"^[\w.-]+\.parquet$")


def manifest_problem(manifest: dict) -> Optional[str]:
    """What is wrong with a manifest read back (None: nothing): every shard a plain file name of
    ours, local shards contiguous from document 0 with whole, non-negative counts — a hand-edited
    count would make a resumed run skip or repeat documents."""
    shards, settings = manifest.get("shards"), manifest.get("settings")
    if (
        not isinstance(shards, list)
        or not isinstance(settings, dict)
        or manifest.get("runner") not in ("local", "ray")
    ):
        return "shards, settings or runner missing"
    expected_first = 0
    for number, shard in enumerate(shards):
        if not isinstance(shard, dict) or not isinstance(shard.get("file"), str):
            return f"shard {number} is not an object with a file"
        if manifest["runner"] == "ray":
            if not RAY_SHARD_NAME.match(shard["file"]):
                return f"shard {number} names {shard['file']!r}"
            continue
        counts = [shard.get(key) for key in ("first_document", "documents", "rows")]
        if shard["file"] != f"part-{number:05d}.{settings.get('format')}" or not SHARD_NAME.match(
            shard["file"]
        ):
            return f"shard {number} names {shard['file']!r}"
        if (
            not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < MAX_COUNT for c in counts)
            or counts[1] == 0
        ):
            return f"shard {number} has counts {counts}"
        if counts[0] != expected_first:
            return f"shard {number} starts at document {counts[0]}, not {expected_first}"
        if not isinstance(shard.get("errors"), list):
            return f"shard {number} has no list of skipped documents"
        expected_first += counts[1]
    return None


def read_output(output: str | Path) -> list[dict]:
    """Every entity row of a finished or interrupted corpus output, in shard order."""
    output = Path(output)
    manifest = read_manifest(output)
    rows: list[dict] = []
    for shard in manifest["shards"]:
        path = output / shard["file"]
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            rows.extend(pq.read_table(path).to_pylist())
        else:
            with open(path, encoding="utf-8") as lines:
                rows.extend(json.loads(line) for line in lines)
    return rows


# -- the run ---------------------------------------------------------------------------------


def run_corpus(
    source: str | Path,
    output: str | Path,
    ner: NER,
    *,
    model_name: str,
    fmt: str = "parquet",
    text_column: str = "text",
    id_column: str = "id",
    labels: Optional[Iterable[str]] = None,
    min_score: float = 0.0,
    resume: bool = False,
    documents_per_shard: int = DOCUMENTS_PER_SHARD,
    progress: bool = True,
) -> dict:
    """Analyse every document of `source` into shards under `output`; returns the manifest."""
    source, output = Path(source), Path(output)
    if fmt not in OUTPUT_FORMATS:
        raise AnnoError(f"--format {fmt} is not one of {', '.join(OUTPUT_FORMATS)}")
    if documents_per_shard < 1:
        raise AnnoError("documents per shard must be at least 1")
    keep = ner.selection(labels, min_score)
    documents, total = read_documents(source, text_column, id_column)
    settings = {
        "input": str(source.resolve()),
        "input_fingerprint": fingerprint(source, total),
        "model": model_name,
        "format": fmt,
        "text_column": text_column,
        "id_column": id_column,
        "labels": sorted(wanted) if (wanted := label_set(labels)) is not None else None,
        "min_score": min_score,
        "aggregation": ner.aggregation,
        "one_type_per_name": ner.defaults.one_type_per_name,
    }
    manifest = _start(output, settings, resume)
    done = sum(shard["documents"] for shard in manifest["shards"])
    documents = iter(documents)
    present = sum(1 for _ in itertools.islice(documents, done))  # the documents finished shards cover
    if present < done:
        raise AnnoError(
            f"{output}/{MANIFEST} is damaged (it counts {done:,} documents but {source} holds {present:,}); start again in a new -o folder"
        )
    bar = _progress(total, progress, done)
    tokens = 0
    for shard in _chunks(documents, documents_per_shard):
        rows: list[dict] = []
        errors: list[dict] = []
        for batch in _chunks(shard, DOCUMENTS_PER_BATCH):
            batch_rows, batch_errors, n_tokens = entity_rows(ner, batch, keep)
            rows += batch_rows
            errors += batch_errors
            tokens += n_tokens
            bar.update(len(batch))
            bar.set_postfix(tokens=f"{tokens:,}", refresh=False)
        name = f"part-{len(manifest['shards']):05d}.{fmt}"
        write_shard(output / name, rows, fmt)
        manifest["shards"].append(
            {
                "file": name,
                "first_document": done,
                "documents": len(shard),
                "rows": len(rows),
                "errors": errors,
            }
        )
        write_manifest(output, manifest)
        done += len(shard)
        for error in errors:
            bar.write(f"skipped document {error['doc_id']}: {error['error']}", file=sys.stderr)
    bar.close()
    manifest["complete"] = True
    write_manifest(output, manifest)
    return manifest


# Settings a manifest written before they existed ran with.
UNRECORDED = {"one_type_per_name": False}


def _start(output: Path, settings: dict, resume: bool) -> dict:
    """A fresh output folder and manifest, or the one to resume (same input and settings),
    with any shard a killed run wrote after its last manifest removed."""
    if resume:
        manifest = read_manifest(output)
        earlier = {**UNRECORDED, **manifest["settings"]}
        changed = [key for key, value in settings.items() if earlier.get(key) != value]
        if changed:
            raise AnnoError(
                f"--resume with other settings than the first run ({', '.join(changed)}); use the same ones or a new -o folder"
            )
        listed = {shard["file"] for shard in manifest["shards"]}
        missing = sorted(name for name in listed if not (output / name).is_file())
        if missing:
            raise AnnoError(
                f"{output} lacks shards its {MANIFEST} lists ({', '.join(missing[:3])}); start again in a new -o folder"
            )
        for path in output.iterdir():  # only names this runner writes, and only plain files
            ours = SHARD_NAME.match(path.name) and path.name not in listed or TEMP_NAME.match(path.name)
            if ours and path.is_file() and not path.is_symlink():
                path.unlink()
        manifest["complete"] = False
        return manifest
    new_output(output)
    manifest = {
        "version": MANIFEST_VERSION,
        "runner": "local",
        "settings": settings,
        "shards": [],
        "complete": False,
    }
    write_manifest(output, manifest)
    return manifest


def new_output(output: Path) -> None:
    """Create the output folder; an existing one must be empty (a finished or interrupted run
    is never overwritten)."""
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        hint = "pass --resume to continue it" if (output / MANIFEST).is_file() else "choose a new folder"
        raise AnnoError(f"output {output} already exists and is not empty; {hint}")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise AnnoError(f"cannot create {output}: {err.strerror}") from None


def skipped_documents(manifest: dict) -> list[dict]:
    """The documents a run reported as bad, `{"doc_id", "error"}` each."""
    return manifest.get("errors", []) + [
        error for shard in manifest["shards"] for error in shard.get("errors", [])
    ]


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _progress(total: Optional[int], enabled: bool, done: int):
    from tqdm import tqdm

    return tqdm(
        total=total, initial=done, disable=not enabled, file=sys.stderr, unit="doc", dynamic_ncols=True
    )
