"""`corpus --ray`: the same documents, filters and rows as `corpus.py`, run on Ray Data.

Ray reads the input (`read_binary_files`, `read_text`, `read_parquet`), an actor pool runs
`map_batches` with one loaded model per actor, and `write_parquet` writes the entity rows; the
per-document steps (decoding, ids, bad documents, entity rows) are `corpus.py`'s own functions.
Without `--address` a local Ray is started; with one, the same command runs on that cluster
(every node must be able to load the model: the built-in one, a hub id, or a shared folder).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterable, Optional

from .corpus import (
    DOCUMENTS_PER_BATCH,
    MANIFEST_VERSION,
    Document,
    arrow_schema,
    checked_document,
    file_document,
    file_id,
    input_kind,
    jsonl_document,
    new_output,
    parquet_file,
    write_manifest,
)
from .errors import AnnoError
from .ner import DEFAULT_AGGREGATION, DEFAULT_BATCH_SIZE, NER, label_set


class Annotator:
    """One per Ray actor: loads the model once, turns a batch of input records into entity rows
    and error rows (an `error` column set, the other columns empty)."""

    def __init__(
        self,
        kind: str,
        root: str,
        model: Optional[str],
        backend: str,
        device: Optional[str],
        text_column: str,
        id_column: str,
        labels: Optional[list[str]],
        min_score: float,
        ner_options: dict,
    ):
        self.kind, self.root, self.text_column, self.id_column = kind, root, text_column, id_column
        self.ner = NER.from_pretrained(model, backend=backend, device=device, **ner_options)
        self.keep = self.ner.selection(labels, min_score)

    def documents(self, batch: dict) -> list[Document]:
        if self.kind == "folder":
            return [
                file_document(file_id(os.path.relpath(path, self.root).replace(os.sep, "/")), data)
                for path, data in zip(batch["path"], batch["bytes"])
            ]
        if self.kind == "jsonl":
            return [jsonl_document(line, None) for line in batch["text"]]
        return [checked_document(i, t) for i, t in zip(batch[self.id_column], batch[self.text_column])]

    def __call__(self, batch: dict):
        import pyarrow as pa

        from .corpus import entity_rows

        rows, errors, _ = entity_rows(self.ner, self.documents(batch), self.keep)
        table = pa.Table.from_pylist(rows, schema=arrow_schema())
        table = table.append_column("error", pa.nulls(len(rows), pa.string()))
        failed = pa.Table.from_pylist(
            [{"doc_id": e["doc_id"], "error": e["error"]} for e in errors],
            schema=arrow_schema().append(pa.field("error", pa.string())),
        )
        return pa.concat_tables([table, failed])


def run_ray(
    source: str | Path,
    output: str | Path,
    *,
    model: Optional[str],
    model_name: str,
    backend: str = "auto",
    device: Optional[str] = None,
    text_column: str = "text",
    id_column: str = "id",
    labels: Optional[Iterable[str]] = None,
    min_score: float = 0.0,
    aggregation: str = DEFAULT_AGGREGATION,
    max_length: Optional[int] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    one_type_per_name: Optional[bool] = None,
    address: Optional[str] = None,
    num_actors: Optional[int] = None,
    num_cpus: Optional[int] = None,
    threshold: Optional[float] = None,
    nested: Optional[bool] = None,
    multi_label: Optional[bool] = None,
) -> dict:
    """Entity rows of `source` as Parquet files under `output`, with a manifest; returns it."""
    try:
        import pyarrow.compute as pc
        import ray
    except ImportError:
        raise AnnoError("--ray needs Ray Data: pip install 'anno-mlx[ray]'") from None
    source, output = Path(source), Path(output)
    kind = input_kind(source)
    if num_actors is not None and num_actors < 1:
        raise AnnoError(f"--num-actors must be at least 1, not {num_actors}")
    labels = list(wanted) if (wanted := label_set(labels)) is not None else None
    settings = {
        "input": str(source.resolve()),
        "model": model_name,
        "format": "parquet",
        "text_column": text_column,
        "id_column": id_column,
        "labels": labels,
        "min_score": min_score,
        "aggregation": aggregation,
    }
    if kind == "parquet":
        names = parquet_file(source).schema_arrow.names
        if text_column not in names:
            raise AnnoError(
                f"{source} has no column {text_column!r} (it has {', '.join(names)}); pass --text-column"
            )
        if id_column not in names:
            raise AnnoError(
                f"{source} has no id column {id_column!r}; --ray needs one (pass --id-column), or run without --ray"
            )
    ner_options = {
        "aggregation": aggregation,
        "max_length": max_length,
        "batch_size": batch_size,
        "labels": labels,
        "one_type_per_name": one_type_per_name,
    }
    zero_shot = {"threshold": threshold, "nested": nested, "multi_label": multi_label}
    ner_options.update({name: value for name, value in zero_shot.items() if value is not None})
    checked = NER.from_pretrained(model, backend=backend, device=device, **ner_options)
    checked.selection(labels, min_score)  # errors here, not in an actor
    settings["one_type_per_name"] = checked.defaults.one_type_per_name
    if kind == "folder":
        undecodable = [
            p for p in source.rglob("*") if p.name != os.fsencode(p.name).decode("utf-8", "replace")
        ]
        if undecodable:
            raise AnnoError(
                f"{file_id(str(undecodable[0]))} has a name that is not UTF-8, which Ray's reader cannot list; rename it or run without --ray"
            )
    new_output(output)

    if address is None:  # a local Ray: one CPU per actor plus one for the read tasks, or they wait forever
        num_cpus = max(num_cpus or os.cpu_count() or 1, (num_actors or 1) + 1)
    ray.init(
        address=address,
        num_cpus=num_cpus if address is None else None,
        include_dashboard=False,
        ignore_reinit_error=True,
        log_to_driver=False,
        logging_level="ERROR",
    )
    num_actors = num_actors or max(1, int(ray.cluster_resources().get("CPU", 2)) - 1)
    ray.data.DataContext.get_current().enable_progress_bars = sys.stderr.isatty()
    if kind == "folder":
        ds = ray.data.read_binary_files(
            str(source.resolve()), include_paths=True, file_extensions=["txt", "md", "TXT", "MD"]
        )
    elif kind == "jsonl":
        ds = ray.data.read_text(str(source.resolve()))
    else:
        ds = ray.data.read_parquet(str(source.resolve())).select_columns([text_column, id_column])

    annotated = ds.map_batches(
        Annotator,
        fn_constructor_kwargs={
            "kind": kind,
            "root": str(source.resolve()),
            "model": model,
            "backend": backend,
            "device": device,
            "text_column": text_column,
            "id_column": id_column,
            "labels": labels,
            "min_score": min_score,
            "ner_options": ner_options,
        },
        batch_size=DOCUMENTS_PER_BATCH,
        concurrency=num_actors,
        num_cpus=1,
    ).materialize()
    errors = annotated.map_batches(
        lambda t: t.filter(pc.is_valid(t["error"])).select(["doc_id", "error"]), batch_format="pyarrow"
    )
    errors = errors.take_all()
    entities = annotated.map_batches(
        lambda t: t.filter(pc.is_null(t["error"])).drop_columns(["error"]), batch_format="pyarrow"
    )
    entities.write_parquet(str(output))
    for error in errors:
        print(f"skipped document {error['doc_id']}: {error['error']}", file=sys.stderr)
    shards = [{"file": p.name} for p in sorted(output.glob("*.parquet"))]
    manifest = {
        "version": MANIFEST_VERSION,
        "runner": "ray",
        "settings": settings,
        "shards": shards,
        "errors": errors,
        "complete": True,
    }
    write_manifest(output, manifest)
    return manifest
