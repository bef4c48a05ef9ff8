"""The Gradio app: paste or upload a long document, see its entities highlighted.

Local first: it binds to 127.0.0.1 unless told otherwise, makes no share link, turns Gradio's
analytics off and uses system fonts, so the page renders complete with no network. The model
runs once per "Find entities" (and can be cancelled); the label and score filters re-render the
kept result. A zero-shot (GLiNER) model gets two more run controls, shown only for it: the entity
types to find, typed as text (its prompt), and its threshold. Users' documents leave no files
behind: an upload is deleted once read, and a run's downloads live in a per-session folder
removed with the session and at exit (see exports.py).
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

import asyncio
import atexit
import html
import logging
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import gradio as gr
from anno_mlx.ui.exports import SessionFolders
from gradio.utils import get_upload_folder

from anno_mlx.decode import AGGREGATIONS
from anno_mlx.entities import Entity
from anno_mlx.errors import AnnoError
from anno_mlx.hub import local_models
from anno_mlx.loading import DEFAULT_MODEL
from anno_mlx.ner import DEFAULT_AGGREGATION, DEFAULT_NAME, NER, label_set
from anno_mlx.pool import DEFAULT_MAX_MODELS, ModelPool
from anno_mlx.render import (
    HIGHLIGHT_CSS,
    highlighted_document,
    label_colours,
    legend,
    output_format,
    render_chunks,
)
from anno_mlx.zeroshot import DEFAULT_THRESHOLD, ZeroShotNER

log = logging.getLogger("anno_mlx.ui")

EXAMPLES_DIR = Path(__file__).parent / "examples"
TABLE_ROWS = 2000  # rows shown in the page's table; the downloads hold every entity
DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # largest document, pasted or uploaded (UTF-8 bytes)
CACHE_SWEEP = (
    3600,
    86400,
)  # Gradio removes its cached files (uploads, downloads) older than a day, and all at exit
NOT_A_MODEL = "**Not a model folder.** Type the folder of a converted model (config.json, tokenizer.json and weights), or a hub id."
CANCELLED = "**Cancelled.** Press **Find entities** to run again."
NO_ENTITY_TYPES = (
    "**No entity types given.** This model finds the types you name: type them in **Entity types**, "
    "comma-separated (e.g. person, company, drug)."
)
FONTS = ["-apple-system", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"]
MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
# The downloads of a run: output formats (render.py) and their buttons' words.
DOWNLOADS = {"json": "Entities (JSON)", "csv": "Entities (CSV)", "html": "Highlighted document (HTML)"}
# The highlighted document is styled as in the standalone page; the rest is this page's own.
CSS = (
    HIGHLIGHT_CSS
    + """
#document { max-height: 70vh; overflow-y: auto; padding: 0.5rem; }
.bars { display: grid; grid-template-columns: max-content 1fr max-content; gap: 0.3rem 0.6rem; align-items: center; }
.bars .bar { height: 0.9rem; border-radius: 0.2rem; }
"""
)


@dataclass
class Result:
    """One session's last analysis, kept so that filters need no new model run."""

    source: str
    text: str
    entities: list[Entity]
    labels: list[str]


def example_documents() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(EXAMPLES_DIR.glob("*.txt"))]


def read_upload(path: Optional[str], max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[str, str]:
    """(text, status) for an uploaded .txt/.md file; other files, other encodings and files over
    `max_bytes` get a message, not an error. The uploaded copy is deleted once read."""
    if not path:
        return gr.skip(), ""
    name = html.escape(Path(path).name)
    try:
        size = Path(path).stat().st_size
        if Path(path).suffix.lower() not in (".txt", ".md"):
            return gr.skip(), f"**{name}** is not a .txt or .md file."
        if size > max_bytes:
            return gr.skip(), too_large(size, max_bytes)
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return gr.skip(), f"**{name}** is gone from the server; upload it again."
    finally:
        forget_upload(path)
    try:
        return data.decode("utf-8"), f"Loaded **{name}** ({len(data):,} bytes)."
    except UnicodeDecodeError as err:
        return gr.skip(), (
            f"**{name}** is not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}). "
            "Save it as UTF-8 and upload it again."
        )


def forget_upload(path: str) -> None:
    """Delete Gradio's copy of an upload (only ever a file inside its upload folder)."""
    file, uploads = Path(path).resolve(), Path(get_upload_folder()).resolve()
    if uploads in file.parents and file.is_file():
        file.unlink(missing_ok=True)
        try:
            file.parent.rmdir()  # Gradio's folder for it, when nothing else is inside
        except OSError:
            pass


def bars_html(entities: list[Entity], colours: dict[str, str]) -> str:
    counts: dict[str, int] = {}
    for e in entities:
        counts[e.label] = counts.get(e.label, 0) + 1
    if not counts:
        return "<p>No entities to count.</p>"
    top = max(counts.values())
    rows = "".join(
        f'<span>{html.escape(label)}</span><div class="bar" style="width:{100 * n / top:.1f}%;background:{colours[label]}"></div><span>{n}</span>'
        for label, n in sorted(counts.items(), key=lambda item: -item[1])
    )
    return f'<div class="bars" id="counts">{rows}</div>'


def write_exports(result: Result, folder: Path) -> tuple[str, ...]:
    """Every entity of the run in each of DOWNLOADS' formats, written as the CLI's --format writes
    them; the files' paths, in DOWNLOADS' order."""
    paths = []
    for name in DOWNLOADS:
        path = folder / f"entities{output_format(name).suffix}"
        with open(path, "w", newline="", encoding="utf-8") as out:  # CSV's own line ends kept
            out.writelines(render_chunks([(result.source, result.text, result.entities)], name))
        paths.append(str(path))
    return tuple(paths)


def show(result: Optional[Result], labels: list[str], min_score: float):
    """Highlights, table and counts for the kept result under the current filters (no files:
    filters change often, and the downloads were written once, by the run)."""
    if result is None:
        return "", [], ""
    shown = [e for e in result.entities if e.label in labels and e.score >= min_score]
    colours = label_colours(result.labels)
    document = legend(colours) + "".join(highlighted_document(result.text, shown, colours, "document"))
    rows = [[e.text, e.label, round(e.score, 4), e.start, e.end] for e in shown[:TABLE_ROWS]]
    return document, rows, bars_html(shown, colours)


def megabytes(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


def too_large(size: int, limit: int) -> str:
    shown, most = megabytes(size), megabytes(limit)
    if shown == most:  # just over: megabytes would read as equal
        shown, most = f"{size:,} bytes", f"{limit:,} bytes"
    return (
        f"**This document is too large** ({shown}; this app takes up to {most}). "
        "Split it into parts, or start the app with a larger `--max-size`."
    )


def text_size(text: str, limit: int) -> int:
    """UTF-8 size of `text`, or its length when that alone is over `limit` (no big copy made)."""
    return len(text) if len(text) > limit else len(text.encode("utf-8", "surrogatepass"))


class Cancelled(Exception):
    """Raised on the model's thread, at its next batch, once the user cancelled the run."""


def stop_on_cancel(progress: gr.Progress, cancelled: threading.Event) -> None:
    """Make the run raise `Cancelled` at its next batch once `cancelled` is set.

    The model reports each batch through tqdm, which Gradio routes to this run's `progress`
    (track_tqdm); the model's loop has no other hook, so the check rides on that report."""
    update = progress.update

    def checked(n: float = 1):
        if cancelled.is_set():
            raise Cancelled()
        return update(n)

    progress.update = checked


def typed_labels(text: Optional[str]) -> tuple[str, ...]:
    """The entity types typed in the label box ("person, company, drug"), in order without repeats;
    () when it names none."""
    try:
        return label_set(text or None) or ()
    except AnnoError:  # only commas and spaces
        return ()


def run_options(
    ner: NER,
    aggregation: str,
    entity_types: Optional[str],
    threshold: float,
    one_type_per_name: bool = True,
) -> Optional[dict]:
    """The options of one run: a zero-shot model's prompt and threshold come from their boxes (None
    when the box names no type), which a fixed-label model ignores (it shows neither); the
    one-type-per-name box is a fixed-label model's (a zero-shot one does not show it)."""
    if not isinstance(ner, ZeroShotNER):
        return {"aggregation": aggregation, "one_type_per_name": bool(one_type_per_name)}
    prompt = typed_labels(entity_types)
    return {"aggregation": aggregation, "labels": prompt, "threshold": threshold} if prompt else None


def analyse_unless_cancelled(ner: NER, text: str, options: dict, cancelled: threading.Event):
    """The model's run, on the pool's thread; a cancelled run stops and frees the model for the next."""
    try:
        if cancelled.is_set():
            raise Cancelled()
        return ner.analyze([text], progress=True, **options)
    except Cancelled:
        log.info("analysis cancelled; the model is free for the next run")
        raise


def build_app(
    default_model: Optional[str] = None,
    backend: str = "auto",
    device: Optional[str] = None,
    pool: Optional[ModelPool] = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> gr.Blocks:
    """The page. With a `pool` restricted to named models (the API server's), the model list is
    those names and the free-path box is hidden. Documents over `max_bytes` (UTF-8) are refused.
    The app's `exports` (SessionFolders) and `pool` are attributes of the returned Blocks."""
    pool = pool or ModelPool(backend, device)
    built_in = str(DEFAULT_MODEL)
    if pool.allowed is not None:
        models = [(name, name) for name in pool.allowed]
        default_model = default_model or models[0][1]
    else:
        models = [(DEFAULT_NAME, built_in)] + [(str(m), str(m)) for m in local_models()]
        if default_model and default_model not in [value for _, value in models]:
            models.insert(0, (default_model, default_model))
    known = {value for _, value in models}
    exports = SessionFolders(Path(get_upload_folder()))
    atexit.register(exports.close_all)

    def load_error(name: str, err: Exception) -> str:
        """A model from the list gets its own message; any other name gets one neutral answer,
        which says nothing about what exists on this computer or what a file holds."""
        if name in known or pool.allowed is not None:
            detail = str(err) if isinstance(err, AnnoError) else f"{type(err).__name__}: {err}"
            return f"**Could not load the model:** {html.escape(detail)}"
        log.warning("model box: %r did not load: %s: %s", name, type(err).__name__, err)
        return NOT_A_MODEL

    def chosen(model_choice: Optional[str], model_path: str) -> str:
        return (model_path or "").strip() or (model_choice or "")

    async def zero_shot_controls(model_choice: Optional[str], model_path: str):
        """The entity-type box and threshold slider, shown when the chosen model is zero-shot. It is
        loaded to find out (as a run would load it); one that does not load shows neither, and a
        run reports why."""
        name, zero_shot = chosen(model_choice, model_path), False
        if name:
            try:
                zero_shot = isinstance(await asyncio.wrap_future(pool.submit(pool.get, name)), ZeroShotNER)
            except Exception:
                pass
        return gr.Textbox(visible=zero_shot), gr.Slider(visible=zero_shot), gr.Checkbox(visible=not zero_shot)

    async def analyse(
        text: str,
        model_choice: Optional[str],
        model_path: str,
        aggregation: str,
        entity_types: Optional[str] = None,
        threshold: float = DEFAULT_THRESHOLD,
        one_type_per_name: bool = True,
        progress=gr.Progress(track_tqdm=True),
    ):
        none = gr.CheckboxGroup(choices=[], value=[])
        name = chosen(model_choice, model_path)
        if not text or not text.strip():
            return None, none, "Paste a document or upload a .txt or .md file, then press **Find entities**."
        if (size := text_size(text, max_bytes)) > max_bytes:
            return None, none, too_large(size, max_bytes)
        if not name:
            return None, none, "**No model chosen.** Pick a model or type a model folder or hub id."
        try:
            ner = await asyncio.wrap_future(pool.submit(pool.get, name))
        except Exception as err:  # a broken model folder must not take the page down
            return None, none, load_error(name, err)
        options = run_options(ner, aggregation, entity_types, threshold, one_type_per_name)
        if options is None:
            return None, none, NO_ENTITY_TYPES
        cancelled = threading.Event()
        stop_on_cancel(progress, cancelled)
        try:
            (analysis,) = await asyncio.wrap_future(
                pool.submit(analyse_unless_cancelled, ner, text, options, cancelled)
            )
        except asyncio.CancelledError:  # the Cancel button (or a client's cancel)
            cancelled.set()
            raise
        except AnnoError as err:
            return None, none, f"**Could not analyse the document:** {html.escape(str(err))}"
        except Exception as err:
            log.exception("the model failed on a document")
            return (
                None,
                none,
                f"**The model failed on this document** ({type(err).__name__}); the server's log has the details.",
            )
        labels = list(options.get("labels") or ner.entity_types)  # a zero-shot model's: the prompt
        status = (
            f"{len(analysis.entities):,} entities · {analysis.n_tokens:,} tokens · {analysis.n_windows} "
            f"window{'s' if analysis.n_windows != 1 else ''} · {analysis.seconds:.2f} s · "
            f"{ner.runs_on} · model `{html.escape(DEFAULT_NAME if name == built_in else name)}`"
        )
        result = Result(source="document", text=text, entities=analysis.entities, labels=labels)
        return result, gr.CheckboxGroup(choices=labels, value=labels), status

    def export(result: Optional[Result], request: gr.Request):
        """Downloads of the run, written once into the session's folder."""
        if result is None:
            exports.clear(request.session_hash)
            return (gr.DownloadButton(value=None, interactive=False),) * len(DOWNLOADS)
        paths = write_exports(result, exports.new_run(request.session_hash))
        return tuple(gr.DownloadButton(value=path, interactive=True) for path in paths)

    def read(path: Optional[str]) -> tuple[str, str]:
        return read_upload(path, max_bytes)

    def end_session(request: gr.Request) -> None:
        exports.close(request.session_hash)

    with gr.Blocks(title="anno-mlx", delete_cache=CACHE_SWEEP) as app:
        gr.Markdown(
            "# anno-mlx\nNamed entities in long documents, found on this computer with ModernBERT on MLX."
        )
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=3):
                text = gr.Textbox(
                    label="Document",
                    lines=14,
                    max_lines=30,
                    placeholder="Paste a document here…",
                    elem_id="input-text",
                )
                upload = gr.File(
                    label=f"…or upload a .txt or .md file (up to {megabytes(max_bytes)})",
                    file_types=[".txt", ".md"],
                    type="filepath",
                    elem_id="upload",
                )
            with gr.Column(scale=1):
                model = gr.Dropdown(
                    choices=models, value=default_model or built_in, label="Model", allow_custom_value=True
                )
                model_path = gr.Textbox(
                    label="…or a model folder or hub id",
                    placeholder="~/models/my-ner-mlx",
                    visible=pool.allowed is None,
                )
                aggregation = gr.Dropdown(
                    choices=list(AGGREGATIONS), value=DEFAULT_AGGREGATION, label="Subword aggregation"
                )
                one_type = gr.Checkbox(
                    value=True,
                    label="One type per name",
                    info="a name keeps one type throughout the document",
                    elem_id="one-type-per-name",
                )
                # Zero-shot models only; each browser session keeps its own typed types, hidden or not.
                entity_types = gr.Textbox(
                    label="Entity types (comma-separated)",
                    placeholder="person, company, drug",
                    visible=False,
                    elem_id="entity-types",
                )
                threshold = gr.Slider(
                    0.0,
                    1.0,
                    value=DEFAULT_THRESHOLD,
                    step=0.01,
                    label="Threshold",
                    visible=False,
                    elem_id="threshold",
                )
                with gr.Row():
                    run = gr.Button("Find entities", variant="primary", elem_id="run")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
                labels = gr.CheckboxGroup(choices=[], value=[], label="Show labels", elem_id="labels")
                min_score = gr.Slider(
                    0.0, 1.0, value=0.0, step=0.01, label="Minimum score", elem_id="min-score"
                )
        gr.Examples(examples=[[doc] for doc in example_documents()], inputs=[text], label="Examples")
        status = gr.Markdown("Paste a document, then press **Find entities**.", elem_id="status")
        document = gr.HTML(elem_id="highlighted")
        with gr.Row():
            table = gr.Dataframe(
                headers=["text", "label", "score", "start", "end"],
                datatype=["str", "str", "number", "number", "number"],
                interactive=False,
                label=f"Entities (the first {TABLE_ROWS:,} shown are listed; downloads hold every entity found)",
                elem_id="entity-table",
            )
            counts = gr.HTML(label="Entities per label")
        with gr.Row():
            downloads = [
                gr.DownloadButton(words, interactive=False, elem_id=f"download-{name}")
                for name, words in DOWNLOADS.items()
            ]

        view = [document, table, counts]
        upload.upload(read, inputs=upload, outputs=[text, status])
        for event in (app.load, model.change, model_path.submit, model_path.blur):
            event(
                zero_shot_controls,
                inputs=[model, model_path],
                outputs=[entity_types, threshold, one_type],
                api_name=False,
                show_progress="hidden",
            )
        running = run.click(
            analyse,
            inputs=[text, model, model_path, aggregation, entity_types, threshold, one_type],
            outputs=[state, labels, status],
            api_name="analyse",
        )
        viewing = running.then(show, inputs=[state, labels, min_score], outputs=view)
        exporting = viewing.then(export, inputs=[state], outputs=downloads)
        cancel.click(
            lambda: CANCELLED,
            outputs=status,
            cancels=[running, viewing, exporting],
            api_name=False,
            show_progress="hidden",
        )
        labels.input(show, inputs=[state, labels, min_score], outputs=view, api_name=False)
        min_score.release(show, inputs=[state, labels, min_score], outputs=view, api_name=False)
        app.unload(end_session)
    app.exports, app.pool = exports, pool
    return app


def launch(
    model: Optional[str] = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    block: bool = True,
    backend: str = "auto",
    device: Optional[str] = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_models: int = DEFAULT_MAX_MODELS,
):
    """Start the app; returns the Gradio app (for tests, with block=False). Documents (pasted or
    uploaded) over `max_bytes` are refused; at most `max_models` models stay loaded."""
    if max_bytes < 1:
        raise AnnoError(f"the size limit must be at least 1 byte, not {max_bytes}")
    from starlette.middleware import Middleware

    from anno_mlx.serve import BodyLimit

    app = build_app(
        model, backend, device, pool=ModelPool(backend, device, max_models=max_models), max_bytes=max_bytes
    )
    app.queue(default_concurrency_limit=1)  # one model run at a time; each session keeps its own result
    if block:
        print(f"anno-mlx UI: http://{host}:{port}  (Ctrl+C to stop)", flush=True)
    app.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        ssr_mode=False,
        prevent_thread_lock=not block,
        quiet=True,
        max_file_size=max_bytes,
        # Request bodies beyond twice the document limit (JSON may escape characters) are refused
        # before they are read, so no client can grow the server's memory with oversized texts.
        app_kwargs={
            "lifespan": remove_on_shutdown(app.exports),
            "middleware": [
                Middleware(BodyLimit, limit=2 * max_bytes + 2**20, hint="documents may be up to --max-size")
            ],
        },
        theme=gr.themes.Base(font=FONTS, font_mono=MONO),
        css=CSS,
    )
    return app


def remove_on_shutdown(exports: SessionFolders):
    """A server lifespan that removes every session's downloads when the server stops."""

    @asynccontextmanager
    async def lifespan(_app):
        try:
            yield
        finally:
            exports.close_all()

    return lifespan
