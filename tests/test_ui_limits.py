"""The web app under hostile or heavy use: downloads written once per run into a per-session folder
that goes with the session, a bounded model cache keyed by folder, a model box that reveals
nothing about the server's files, size limits, and cancel."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import pytest
from servers import free_port

from anno_mlx import NER
from anno_mlx.pool import ModelPool

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Marie Curie was born in Warsaw and moved to Paris, where the Sorbonne hired her."
LIMIT = 2_000_000  # bytes; the long document below (1,000,000 characters) is under it


def wait_for(check, seconds: float = 120, what: str = "the condition"):
    """Poll `check()` until it returns something truthy (the app works in its own threads)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {seconds} s")


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def long_document() -> str:
    return ((ROOT / "ui" / "examples" / "04-long-dossier.txt").read_text() * 100)[:1_000_000]


@pytest.fixture(scope="module")
def gradio_dir(tmp_path_factory):
    """Gradio's upload/cache folder for this module's app, so files can be counted exactly."""
    folder = tmp_path_factory.mktemp("gradio")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def app(gradio_dir, converted_model):
    from anno_mlx.ui.app import launch

    port = free_port()
    app = launch(str(converted_model), port=port, block=False, max_bytes=LIMIT)
    app.test_url = f"http://127.0.0.1:{port}/"
    yield app
    app.close()


@pytest.fixture(scope="module")
def short_context(tmp_path_factory) -> Path:
    """A model with 64-token windows: a long document takes thousands of windows."""
    from anno_mlx.testing.tiny_checkpoint import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("ctx64"), max_position_embeddings=64, seed=4)


def local_page(browser, requests: list[str]):
    page = browser.new_page()
    page.on("request", lambda request: requests.append(request.url))
    return page


def assert_local(requests: list[str]) -> None:
    outside = [url for url in requests if not url.startswith(("http://127.0.0.1", "data:", "blob:"))]
    assert requests and outside == [], outside


def marks(page) -> list[tuple[str, str]]:
    return [
        tuple(m)
        for m in page.eval_on_selector_all(
            "#highlighted mark.entity", "els => els.map(e => [e.dataset.label, e.firstChild.textContent])"
        )
    ]


def run_document(page, text: str) -> None:
    page.locator("#input-text textarea").fill(text)
    page.locator("#run").click()
    page.wait_for_function(
        "() => document.querySelector('#highlighted #document') && document.querySelector('#status').innerText.includes('entities')",
        timeout=120_000,
    )


# -- the model cache -------------------------------------------------------------------------


def test_eight_spellings_of_one_folder_are_one_model(converted_model, tmp_path, monkeypatch):
    models = tmp_path / "models"
    shutil.copytree(converted_model, models / "model")
    (models / "other").mkdir()
    (models / "link").symlink_to(models / "model")
    monkeypatch.chdir(models)
    monkeypatch.setenv("HOME", str(models))
    spellings = [
        str(models / "model"),
        str(models / "model") + "/",
        f"{models}/./model",
        f"{models}/other/../model",
        "model",
        "./model/",
        str(models / "link"),
        "~/model",
    ]
    pool = ModelPool("mlx")
    loaded = [pool.get(spelling) for spelling in spellings]
    assert pool.loaded() == [(models / "model").resolve()]
    assert all(ner is loaded[0] for ner in loaded)


def test_the_cache_keeps_the_two_most_recently_used(make_checkpoint):
    a, b, c = (make_checkpoint(seed=seed) for seed in (21, 22, 23))
    pool = ModelPool("mlx")
    assert pool.max_models == 2
    first_a = pool.get(str(a))
    pool.get(str(b))
    assert pool.get(str(a)) is first_a  # a is now the most recently used
    pool.get(str(c))
    assert pool.loaded() == [a.resolve(), c.resolve()]  # b, the least recently used, went
    pool.get(str(b))  # loaded again on demand
    assert pool.loaded() == [c.resolve(), b.resolve()]
    assert pool.get(str(a)) is not first_a


def test_a_server_pool_holds_every_model_it_serves(make_checkpoint):
    from anno_mlx.errors import AnnoError

    names = {f"m{seed}": str(make_checkpoint(seed=seed)) for seed in (21, 22, 23)}
    pool = ModelPool("mlx", allowed=names, max_models=1)
    assert pool.max_models == 3
    served = [pool.get(name) for name in names]
    assert [pool.get(name) for name in names] == served and len(pool.loaded()) == 3
    with pytest.raises(AnnoError, match="not served here"):
        pool.get(str(make_checkpoint(seed=21)))  # a path, even of a served model, is not a name
    with pytest.raises(AnnoError):
        ModelPool("mlx", max_models=0)


# -- the model box ---------------------------------------------------------------------------


def test_the_model_box_reveals_nothing_about_the_servers_files(app, tmp_path):
    from anno_mlx.ui.app import NOT_A_MODEL
    from gradio_client import Client

    plain = tmp_path / "plain"
    plain.mkdir()
    (tmp_path / "file.txt").write_text("SECRET-FILE")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(
        json.dumps({"model_type": "SECRET-TYPE", "num_hidden_layers": "SECRET-LAYERS"})
    )
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.json").write_text('{"SECRET-KEY": ')
    client = Client(app.test_url, verbose=False)
    answers = {
        typed: client.predict(TEXT, "", typed, "first", api_name="/analyse")[1]
        for typed in [
            str(tmp_path / "missing"),
            str(plain),
            str(tmp_path / "file.txt"),
            str(broken),
            str(half),
            "nobody/no-such-model",
            "/etc",
        ]
    }
    assert set(answers.values()) == {NOT_A_MODEL}, answers  # a missing path reads like any other non-model
    assert not any("SECRET" in answer for answer in answers.values())
    # The same through the dropdown's free text: only the listed models get specific messages.
    assert client.predict(TEXT, str(broken), "", "first", api_name="/analyse")[1] == NOT_A_MODEL


# -- size limits -----------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "deberta_v2"])
def test_the_app_runs_every_model_family(app, tmp_path, family):
    """A BERT, RoBERTa, DistilBERT or DeBERTa checkpoint typed into the model box runs like the
    default one, in windows, and offers its own entity types as filters."""
    import importlib

    from gradio_client import Client

    make = getattr(importlib.import_module(f"anno_mlx.testing.tiny_{family}"), f"make_tiny_{family}")
    folder = make(tmp_path / family, seed=3)
    text = "Ada Lovelace met Charles Babbage in London. " * 80  # longer than 512 positions
    labels, status = Client(app.test_url, verbose=False).predict(
        text, "", str(folder), "first", api_name="/analyse"
    )
    assert "entities ·" in status and " windows · " in status, status  # windowed past 512 positions
    assert labels["value"] == ["PER", "ORG", "LOC", "MISC"]  # the model's types, offered as filters


def test_an_over_limit_document_gets_a_message_and_no_run(app, make_checkpoint):
    from gradio_client import Client

    fresh = make_checkpoint(seed=31)  # loaded only if the app ran the document
    client = Client(app.test_url, verbose=False)
    sessions = app.exports.sessions()
    for text in ["€" * (LIMIT // 3 + 1), "a" * (LIMIT + 1)]:  # over in UTF-8 bytes; over in characters
        labels, status = client.predict(text, "", str(fresh), "first", api_name="/analyse")
        assert status.startswith("**This document is too large**") and "2,000,000 bytes" in status, status
        assert labels["value"] == []
    assert fresh.resolve() not in app.pool.loaded()
    assert app.exports.sessions() == sessions
    _, status = client.predict("Paris " * 1000, "", str(fresh), "first", api_name="/analyse")
    assert "entities ·" in status  # under the limit it runs


def test_uploads_are_limited_and_not_kept(app, gradio_dir, tmp_path):
    from anno_mlx.ui.app import read_upload

    def uploaded(name: str, data: bytes) -> Path:
        folder = gradio_dir / "upload-test"
        folder.mkdir(exist_ok=True)
        (folder / name).write_bytes(data)
        return folder / name

    big = uploaded("big.txt", b"Paris " * 400)
    text, status = read_upload(str(big), max_bytes=1000)
    assert "too large" in status and not big.exists()
    good = uploaded("good.txt", "Zoë in Paris".encode())
    text, status = read_upload(str(good), max_bytes=1000)
    assert text == "Zoë in Paris" and not good.exists()
    outside = tmp_path / "outside.txt"  # never ours to delete
    outside.write_text("Paris")
    assert read_upload(str(outside), max_bytes=1000)[0] == "Paris" and outside.exists()


def test_gradio_refuses_an_over_limit_upload(app, browser, tmp_path):
    requests: list[str] = []
    page = local_page(browser, requests)
    page.goto(app.test_url)
    big = tmp_path / "big.txt"
    big.write_bytes(b"Paris " * (LIMIT // 6 + 10))
    page.locator("#upload input[type=file]").set_input_files(str(big))
    page.wait_for_function("() => document.body.innerText.includes('exceed the maximum allowed size')")
    assert page.locator("#input-text textarea").input_value() == ""
    page.close()
    assert_local(requests)


# -- downloads -------------------------------------------------------------------------------


def test_downloads_are_written_once_per_run_and_go_with_the_session(
    app, browser, gradio_dir, converted_model
):
    requests: list[str] = []
    before = set(app.exports.sessions())
    page = local_page(browser, requests)
    page.goto(app.test_url)
    run_document(page, TEXT)
    session, folder = wait_for(
        lambda: next(((s, f) for s, f in app.exports.sessions().items() if s not in before), None),
        what="a session folder",
    )
    wait_for(
        lambda: (
            {p.name for p in folder.rglob("*") if p.is_file()}
            == {"entities.json", "entities.csv", "entities.html"}
        ),
        what="the downloads",
    )
    assert folder.is_relative_to(gradio_dir)
    (exported,) = folder.glob("run-*/entities.json")
    want = NER.from_pretrained(converted_model)(TEXT)
    assert [(e["label"], e["text"]) for e in json.loads(exported.read_text())] == [
        (e.label, e.text) for e in want
    ]

    # Filters re-render the page and write nothing, anywhere under Gradio's folder.
    files = files_under(gradio_dir)
    label = want[0].label
    page.locator("#labels label", has_text=label).first.click()
    page.wait_for_function(
        "l => ![...document.querySelectorAll('#highlighted mark.entity')].some(m => m.dataset.label === l)",
        arg=label,
    )
    assert marks(page) == [(e.label, e.text) for e in want if e.label != label]
    page.locator("#min-score input[type=number]").fill("1")
    page.locator("#min-score input[type=number]").press("Tab")  # the slider's release event
    page.wait_for_function("() => document.querySelectorAll('#highlighted mark.entity').length === 0")
    assert files_under(gradio_dir) == files

    # A second run replaces the first one's files.
    run_document(page, "Tokyo and Osaka signed a treaty in Geneva.")
    wait_for(
        lambda: exported.parent.exists() is False and len(list(folder.glob("run-*/entities.json"))) == 1,
        what="the second run's downloads",
    )

    # Closing the tab ends the session: its folder goes.
    page.close()
    wait_for(
        lambda: session not in app.exports.sessions() and not folder.exists(),
        what="the session folder's removal",
    )
    assert not any(p.name.startswith("entities.") for p in gradio_dir.rglob("*"))
    assert_local(requests)


def test_closing_the_app_removes_every_download(converted_model, gradio_dir):
    from anno_mlx.ui.app import launch

    app = launch(str(converted_model), port=free_port(), block=False)
    try:
        run = app.exports.new_run("a client's session")  # clients never close their sessions
        (run / "entities.json").write_text("[]")
    finally:
        app.close()
    wait_for(lambda: not app.exports.root.exists(), what="the downloads' removal")


# -- cancel ----------------------------------------------------------------------------------


def test_a_client_can_cancel_a_long_run(app, short_context, caplog):
    from gradio_client import Client
    from gradio_client.utils import Status

    caplog.set_level(logging.INFO, logger="anno_mlx.ui")
    client = Client(app.test_url, verbose=False)
    job = client.submit(long_document(), "", str(short_context), "first", api_name="/analyse")
    wait_for(lambda: job.status().progress_data, what="the run's first windows")  # the model is running
    job.cancel()
    wait_for(
        lambda: any("analysis cancelled" in r.getMessage() for r in caplog.records), what="the worker's stop"
    )
    wait_for(lambda: job.status().code == Status.CANCELLED, what="the job's cancelled status")
    _, status = client.predict(TEXT, "", str(short_context), "first", api_name="/analyse")
    assert "entities ·" in status  # the model is free again


def test_the_cancel_button_stops_a_long_run(app, browser, short_context, converted_model, caplog):
    caplog.set_level(logging.INFO, logger="anno_mlx.ui")
    requests: list[str] = []
    page = local_page(browser, requests)
    page.goto(app.test_url)
    page.wait_for_selector("#input-text textarea")
    page.evaluate(
        "t => { const a = document.querySelector('#input-text textarea'); a.value = t;"
        " a.dispatchEvent(new Event('input', {bubbles: true})); }",
        long_document(),
    )
    page.get_by_label("…or a model folder or hub id").fill(str(short_context))
    page.locator("#run").click()
    page.wait_for_function(
        "() => document.body.innerText.includes('window') && document.body.innerText.includes('%')",
        timeout=120_000,
    )
    page.locator("#cancel").click()
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('Cancelled')")
    wait_for(
        lambda: any("analysis cancelled" in r.getMessage() for r in caplog.records), what="the worker's stop"
    )

    # The page stays usable: the next run goes through.
    page.get_by_label("…or a model folder or hub id").fill("")
    run_document(page, TEXT)
    assert marks(page) == [(e.label, e.text) for e in NER.from_pretrained(converted_model)(TEXT)]
    page.close()
    assert_local(requests)


def test_cli_size_and_model_limits():
    from anno_mlx.cli import build_parser, main

    args = build_parser().parse_args(["ui", "--max-size", "5", "--max-models", "3"])
    assert args.max_size == 5.0 and args.max_models == 3
    assert main(["ui", "--max-size", "0"]) == 2
    assert main(["ui", "--max-size", "nan"]) == 2
    assert main(["ui", "--max-models", "0"]) == 2
    assert os.environ.get("GRADIO_ANALYTICS_ENABLED") == "False"


def test_oversized_request_bodies_are_refused_unread():
    """Texts far over the limit sent to Gradio's API are refused before they are read, so no
    client can grow the server's memory with them."""
    import httpx
    from anno_mlx.ui.app import launch
    from servers import free_port

    port = free_port()
    app = launch(None, port=port, block=False, backend="mlx", max_bytes=1000)
    try:
        url = f"http://127.0.0.1:{port}/gradio_api/call/analyse"
        big = httpx.post(url, json={"data": ["Paris " * 400_000, None, "", "first"]})
        assert big.status_code == 413 and "documents may be up to --max-size" in big.json()["detail"]
        assert httpx.post(url, json={"data": ["Paris", None, "", "first"]}).status_code == 200
    finally:
        app.close()
