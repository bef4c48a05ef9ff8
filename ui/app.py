"""The Gradio app: paste or upload a long document, see its entities highlighted.

Local first: it binds to 127.0.0.1 unless told otherwise, makes no share link, turns Gradio's
analytics off and uses system fonts, so the page renders complete with no network. The model
runs once per "Find entities"; the label and score filters re-render the kept result.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

import csv
import html
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import gradio as gr

from ..decode import AGGREGATIONS
from ..entities import Entity
from ..errors import AnnoError
from ..hub import models_dir
from ..loading import DEFAULT_MODEL
from ..ner import DEFAULT_NAME
from ..pool import ModelPool
from ..render import highlight, label_colours, render

EXAMPLES_DIR = Path(__file__).parent / "examples"
TABLE_ROWS = 2000  # rows shown in the page's table; the downloads hold every entity
FONTS = ["-apple-system", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"]
MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
CSS = """
#document { white-space: pre-wrap; line-height: 2; max-height: 70vh; overflow-y: auto; padding: 0.5rem; }
#document mark.entity { padding: 0.1em 0.25em; border-radius: 0.3em; }
#document mark.entity .label { font-size: 0.65em; font-weight: 600; margin-left: 0.3em; opacity: 0.7; }
.legend .key { display: inline-block; padding: 0.1em 0.5em; margin: 0 0.3em 0.3em 0; border-radius: 0.3em; font-size: 0.85em; }
.bars { display: grid; grid-template-columns: max-content 1fr max-content; gap: 0.3rem 0.6rem; align-items: center; }
.bars .bar { height: 0.9rem; border-radius: 0.2rem; }
"""


@dataclass
class Result:
    """One session's last analysis, kept so that filters need no new model run."""

    source: str
    text: str
    entities: list[Entity]
    labels: list[str]


def example_documents() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(EXAMPLES_DIR.glob("*.txt"))]


def local_models() -> list[str]:
    """Converted models in the model directory (those made from hub ids), by folder."""
    root = models_dir()
    if not root.is_dir():
        return []
    return sorted(str(p) for p in root.iterdir() if (p / "config.json").is_file() and (p / "tokenizer.json").is_file())


def read_upload(path: Optional[str]) -> tuple[str, str]:
    """(text, status) for an uploaded .txt/.md file; other encodings get a message, not an error."""
    if not path:
        return gr.skip(), ""
    name = Path(path).name
    if Path(path).suffix.lower() not in (".txt", ".md"):
        return gr.skip(), f"**{html.escape(name)}** is not a .txt or .md file."
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8"), f"Loaded **{html.escape(name)}** ({len(data):,} bytes)."
    except UnicodeDecodeError as err:
        return gr.skip(), (
            f"**{html.escape(name)}** is not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}). "
            "Save it as UTF-8 and upload it again."
        )


def legend_html(colours: dict[str, str]) -> str:
    return '<div class="legend">' + "".join(
        f'<span class="key" style="background:{c}">{html.escape(label)}</span>' for label, c in colours.items()
    ) + "</div>"


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


def write_exports(result: Result, entities: list[Entity]) -> tuple[str, str, str]:
    """JSON, CSV and standalone HTML (the CLI's --format html) of what is shown."""
    folder = Path(tempfile.mkdtemp(prefix="anno-mlx-ui-"))
    json_path, csv_path, html_path = folder / "entities.json", folder / "entities.csv", folder / "entities.html"
    json_path.write_text(json.dumps([e.to_dict() for e in entities], ensure_ascii=False, indent=2), encoding="utf-8")
    with open(csv_path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "label", "score", "start", "end"])
        writer.writerows([e.text, e.label, f"{e.score:.4f}", e.start, e.end] for e in entities)
    html_path.write_text(render([(result.source, result.text, entities)], "html"), encoding="utf-8")
    return str(json_path), str(csv_path), str(html_path)


def show(result: Optional[Result], labels: list[str], min_score: float):
    """Highlights, table, counts and downloads for the kept result under the current filters."""
    if result is None:
        empty = gr.DownloadButton(value=None, interactive=False)
        return "", [], "", empty, empty, empty
    shown = [e for e in result.entities if e.label in labels and e.score >= min_score]
    colours = label_colours(result.labels)
    document = legend_html(colours) + '<div id="document">' + "".join(highlight(result.text, shown, colours)) + "</div>"
    rows = [[e.text, e.label, round(e.score, 4), e.start, e.end] for e in shown[:TABLE_ROWS]]
    json_path, csv_path, html_path = write_exports(result, shown)
    return (
        document,
        rows,
        bars_html(shown, colours),
        gr.DownloadButton(value=json_path, interactive=True),
        gr.DownloadButton(value=csv_path, interactive=True),
        gr.DownloadButton(value=html_path, interactive=True),
    )


def build_app(
    default_model: Optional[str] = None, backend: str = "auto", device: Optional[str] = None, pool: Optional[ModelPool] = None
) -> gr.Blocks:
    """The page. With a `pool` restricted to named models (the API server's), the model list is
    those names and the free-path box is hidden."""
    pool = pool or ModelPool(backend, device)
    built_in = str(DEFAULT_MODEL)
    if pool.allowed is not None:
        models = [(name, name) for name in pool.allowed]
        default_model = default_model or models[0][1]
    else:
        models = [(DEFAULT_NAME, built_in)] + [(m, m) for m in local_models()]
        if default_model and default_model not in [value for _, value in models]:
            models.insert(0, (default_model, default_model))

    def analyse(text: str, model_choice: Optional[str], model_path: str, aggregation: str, progress=gr.Progress(track_tqdm=True)):
        name = (model_path or "").strip() or (model_choice or "")
        if not text or not text.strip():
            return None, gr.CheckboxGroup(choices=[], value=[]), "Paste a document or upload a .txt or .md file, then press **Find entities**."
        if not name:
            return None, gr.CheckboxGroup(choices=[], value=[]), "**No model chosen.** Pick a model or type a model folder or hub id."
        try:
            ner = pool.get(name)
        except AnnoError as err:
            return None, gr.CheckboxGroup(choices=[], value=[]), f"**Could not load the model:** {html.escape(str(err))}"
        except Exception as err:  # a broken model folder must not take the page down
            return None, gr.CheckboxGroup(choices=[], value=[]), f"**Could not load the model:** {type(err).__name__}: {html.escape(str(err))}"
        (analysis,) = pool.call(ner.analyze, [text], aggregation=aggregation, progress=True)
        labels = ner.entity_types
        status = (
            f"{len(analysis.entities):,} entities · {analysis.n_tokens:,} tokens · {analysis.n_windows} "
            f"window{'s' if analysis.n_windows != 1 else ''} · {analysis.seconds:.2f} s · "
            f"{ner.backend} · model `{html.escape(DEFAULT_NAME if name == built_in else name)}`"
        )
        result = Result(source="document", text=text, entities=analysis.entities, labels=labels)
        return result, gr.CheckboxGroup(choices=labels, value=labels), status

    with gr.Blocks(title="anno-mlx") as app:
        gr.Markdown("# anno-mlx\nNamed entities in long documents, found on this computer with ModernBERT on MLX.")
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=3):
                text = gr.Textbox(label="Document", lines=14, max_lines=30, placeholder="Paste a document here…", elem_id="input-text")
                upload = gr.File(label="…or upload a .txt or .md file", file_types=[".txt", ".md"], type="filepath", elem_id="upload")
            with gr.Column(scale=1):
                model = gr.Dropdown(choices=models, value=default_model or built_in, label="Model", allow_custom_value=True)
                model_path = gr.Textbox(
                    label="…or a model folder or hub id", placeholder="~/models/my-ner-mlx", visible=pool.allowed is None
                )
                aggregation = gr.Dropdown(choices=list(AGGREGATIONS), value="first", label="Subword aggregation")
                run = gr.Button("Find entities", variant="primary", elem_id="run")
                labels = gr.CheckboxGroup(choices=[], value=[], label="Show labels", elem_id="labels")
                min_score = gr.Slider(0.0, 1.0, value=0.0, step=0.01, label="Minimum score", elem_id="min-score")
        gr.Examples(examples=[[doc] for doc in example_documents()], inputs=[text], label="Examples")
        status = gr.Markdown("Paste a document, then press **Find entities**.", elem_id="status")
        document = gr.HTML(elem_id="highlighted")
        with gr.Row():
            table = gr.Dataframe(
                headers=["text", "label", "score", "start", "end"],
                datatype=["str", "str", "number", "number", "number"],
                interactive=False,
                label=f"Entities (the first {TABLE_ROWS:,} are listed; downloads hold all)",
                elem_id="entity-table",
            )
            counts = gr.HTML(label="Entities per label")
        with gr.Row():
            json_file = gr.DownloadButton("Entities (JSON)", interactive=False)
            csv_file = gr.DownloadButton("Entities (CSV)", interactive=False)
            html_file = gr.DownloadButton("Highlighted document (HTML)", interactive=False)

        view = [document, table, counts, json_file, csv_file, html_file]
        upload.upload(read_upload, inputs=upload, outputs=[text, status])
        run.click(analyse, inputs=[text, model, model_path, aggregation], outputs=[state, labels, status], api_name="analyse").then(
            show, inputs=[state, labels, min_score], outputs=view
        )
        labels.input(show, inputs=[state, labels, min_score], outputs=view, api_name=False)
        min_score.release(show, inputs=[state, labels, min_score], outputs=view, api_name=False)
    return app


def launch(
    model: Optional[str] = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    block: bool = True,
    backend: str = "auto",
    device: Optional[str] = None,
):
    """Start the app; returns the Gradio app (for tests, with block=False)."""
    app = build_app(model, backend, device)
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
        theme=gr.themes.Base(font=FONTS, font_mono=MONO),
        css=CSS,
    )
    return app
