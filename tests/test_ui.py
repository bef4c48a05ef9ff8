"""The Gradio app: in-process through gradio_client, and in Debian's Chromium through Playwright,
with every network request recorded (none may leave 127.0.0.1)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from servers import free_port

from anno_mlx import NER

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
TEXT = "Marie Curie was born in Warsaw and moved to Paris, where the Sorbonne hired her."
OTHER = "Tokyo and Osaka signed a treaty with the United Nations in Geneva."


@pytest.fixture(scope="module")
def server(converted_model):
    from anno_mlx.ui.app import launch

    port = free_port()
    app = launch(str(converted_model), port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    app.close()


def expected(model, text):
    return [(e.label, e.text) for e in NER.from_pretrained(model)(text)]


def test_client_runs_the_model_and_reports_status(server, converted_model):
    from gradio_client import Client

    client = Client(server, verbose=False)
    labels, status = client.predict(TEXT, str(converted_model), "", "first", api_name="/analyse")
    n = len(expected(converted_model, TEXT))
    assert labels["value"] == ["PER", "ORG", "LOC", "MISC"]  # all shown after a run
    assert [choice[0] for choice in labels["choices"]] == labels["value"]
    assert (
        status.startswith(f"{n} entities")
        and "1 window" in status
        and (" on cpu" in status or " on gpu" in status)
    )
    _, status = client.predict(
        TEXT, str(converted_model), "", "first", "", 0.5, False, api_name="/analyse"
    )  # the one-type-per-name box unticked
    alone = NER.from_pretrained(converted_model)(TEXT, one_type_per_name=False)
    assert status.startswith(f"{len(alone)} entities")


def test_client_friendly_messages(server, converted_model, tmp_path):
    from gradio_client import Client

    client = Client(server, verbose=False)
    _, status = client.predict("   ", str(converted_model), "", "first", api_name="/analyse")
    assert "Paste a document" in status
    _, status = client.predict(
        TEXT, str(converted_model), str(tmp_path / "no-model"), "first", api_name="/analyse"
    )
    assert status.startswith("**Not a model folder.**")  # the same for every path: see test_ui_limits.py
    assert "Traceback" not in status


PROMPT = "person, city, university"


def test_the_entity_type_box_is_a_zero_shot_models_prompt(gliner_checkpoint, converted_model):
    from anno_mlx.ui.app import run_options, typed_labels

    assert typed_labels(" person, company ,, drug, person ") == ("person", "company", "drug")
    assert typed_labels("") == typed_labels(None) == typed_labels(" , ,") == ()
    zero_shot = NER.from_pretrained(gliner_checkpoint("uni-modernbert"), backend="mlx")
    fixed = NER.from_pretrained(converted_model, backend="mlx")
    assert run_options(zero_shot, "first", PROMPT, 0.3) == {
        "aggregation": "first",
        "labels": ("person", "city", "university"),
        "threshold": 0.3,
    }
    assert run_options(zero_shot, "first", " , ", 0.3) is None  # the page says to type some
    assert run_options(fixed, "first", PROMPT, 0.3) == {  # the prompt boxes are hidden, ignored
        "aggregation": "first",
        "one_type_per_name": True,
    }
    assert run_options(fixed, "max", None, 0.3, False) == {"aggregation": "max", "one_type_per_name": False}
    assert run_options(zero_shot, "first", PROMPT, 0.3, False) == run_options(zero_shot, "first", PROMPT, 0.3)


def test_client_runs_a_zero_shot_model_with_typed_labels(server, gliner_checkpoint):
    from gradio_client import Client

    folder = str(gliner_checkpoint("uni-modernbert"))
    client = Client(server, verbose=False)
    labels, status = client.predict(TEXT, "", folder, "first", PROMPT, 0.4, api_name="/analyse")
    found = NER.from_pretrained(folder)(TEXT, labels=PROMPT, threshold=0.4)
    assert labels["value"] == ["person", "city", "university"]  # the typed labels are the filters
    assert status.startswith(f"{len(found)} entities") and found
    labels, status = client.predict(TEXT, "", folder, "first", " ,", 0.4, api_name="/analyse")
    assert status.startswith("**No entity types given.**") and labels["value"] == []
    assert "\n" not in status and "Traceback" not in status


def test_binds_to_loopback_only(server):
    assert server.startswith("http://127.0.0.1:")
    port = int(server.rstrip("/").rsplit(":", 1)[1])
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        address = [a for a in socket.gethostbyname_ex(socket.gethostname())[2] if not a.startswith("127.")]
    if address:  # the same port on another interface is not served
        with socket.socket() as s:
            s.settimeout(1)
            assert s.connect_ex((address[0], port)) != 0


def marks(page) -> list[tuple[str, str]]:
    return page.eval_on_selector_all(
        "#highlighted mark.entity", "els => els.map(e => [e.dataset.label, e.firstChild.textContent])"
    )


def run_document(page, text: str) -> None:
    page.locator("#input-text textarea").fill(text)
    page.locator("#run").click()
    page.wait_for_function(
        "t => document.querySelector('#highlighted #document') && document.querySelector('#status').innerText.includes('entities')",
        arg=text,
        timeout=60_000,
    )


def test_browser_highlights_filters_and_stays_local(browser, server, converted_model, tmp_path):
    requests: list[str] = []
    context = browser.new_context()
    context.on("request", lambda request: requests.append(request.url))
    page = context.new_page()
    page.goto(server)
    run_document(page, TEXT)
    want = expected(converted_model, TEXT)
    assert [tuple(m) for m in marks(page)] == want

    # Unticking a label hides its highlights without running the model again.
    label = want[0][0]
    status_before = page.locator("#status").inner_text()
    page.locator("#labels label", has_text=label).first.click()
    page.wait_for_function(
        "l => ![...document.querySelectorAll('#highlighted mark.entity')].some(m => m.dataset.label === l)",
        arg=label,
    )
    assert [tuple(m) for m in marks(page)] == [m for m in want if m[0] != label]
    assert page.locator("#status").inner_text() == status_before

    # A second browser session keeps its own result.
    other = context.browser.new_context().new_page()
    other.on("request", lambda request: requests.append(request.url))
    other.goto(server)
    run_document(other, OTHER)
    assert [tuple(m) for m in marks(other)] == expected(converted_model, OTHER)
    assert [tuple(m) for m in marks(page)] == [m for m in want if m[0] != label]

    # Uploads: a non-UTF-8 file gets a message in the page.
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Zoë à Paris".encode("latin-1"))
    page.locator("#upload input[type=file]").set_input_files(str(latin))
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('not UTF-8')")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui.png"), full_page=True)
    outside = [url for url in requests if not url.startswith(("http://127.0.0.1", "data:", "blob:"))]
    assert requests and outside == [], outside


def test_browser_runs_a_zero_shot_model(browser, server, gliner_checkpoint):
    """A GLiNER folder typed into the model box shows the entity-type box and threshold; the typed
    types are the prompt, the legend and the filters, and stay typed while another model is chosen."""
    folder = str(gliner_checkpoint("uni-modernbert"))
    requests: list[str] = []
    page = browser.new_page()
    page.on("request", lambda request: requests.append(request.url))
    page.goto(server)
    path_box = page.get_by_label("…or a model folder or hub id")
    path_box.fill(folder)
    path_box.press("Tab")  # the model is loaded to find out what it is
    page.wait_for_selector("#entity-types textarea", timeout=60_000)
    assert page.locator("#threshold").is_visible()

    # No types typed: the page says so in one line.
    page.locator("#input-text textarea").fill(TEXT)
    page.locator("#run").click()
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('No entity types')")
    assert "Traceback" not in page.content()

    page.locator("#entity-types textarea").fill(PROMPT)
    run_document(page, TEXT)
    want = [(e.label, e.text) for e in NER.from_pretrained(folder)(TEXT, labels=PROMPT)]
    assert want and [tuple(m) for m in marks(page)] == want
    legend = page.eval_on_selector_all("#highlighted .legend .key", "els => els.map(e => e.textContent)")
    assert legend == sorted(["person", "city", "university"])
    label = want[0][0]
    page.locator("#labels label", has_text=label).first.click()
    page.wait_for_function(
        "l => ![...document.querySelectorAll('#highlighted mark.entity')].some(m => m.dataset.label === l)",
        arg=label,
    )
    assert [tuple(m) for m in marks(page)] == [m for m in want if m[0] != label]
    assert page.locator("#download-json").is_enabled()

    # A fixed-label model hides both controls; back on the zero-shot model the types are still there.
    path_box.fill("")
    path_box.press("Tab")
    page.wait_for_selector("#entity-types textarea", state="detached")
    assert not page.locator("#threshold").is_visible()
    path_box.fill(folder)
    path_box.press("Tab")
    page.wait_for_selector("#entity-types textarea", timeout=60_000)
    assert page.locator("#entity-types textarea").input_value() == PROMPT
    page.close()
    outside = [url for url in requests if not url.startswith(("http://127.0.0.1", "data:", "blob:"))]
    assert requests and outside == [], outside


def test_browser_shows_model_errors_in_the_page(browser, server, tmp_path):
    page = browser.new_page()
    page.goto(server)
    page.locator("#input-text textarea").fill(TEXT)
    page.get_by_label("…or a model folder or hub id").fill(str(tmp_path / "missing-model"))
    page.locator("#run").click()
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('Not a model folder')")
    assert "Traceback" not in page.content()


def test_browser_runs_a_million_characters_without_freezing(browser, server, tmp_path_factory):
    """A 1,000,000-character paste runs in windows while the page stays responsive and shows progress."""
    import time

    from anno_mlx.testing.tiny_checkpoint import make_tiny_checkpoint

    short = make_tiny_checkpoint(tmp_path_factory.mktemp("ctx64"), max_position_embeddings=64, seed=4)
    text = ((ROOT / "ui" / "examples" / "04-long-dossier.txt").read_text() * 100)[:1_000_000]
    page = browser.new_page()
    page.goto(server)
    page.wait_for_selector("#input-text textarea")
    page.evaluate(
        "t => { const a = document.querySelector('#input-text textarea'); a.value = t;"
        " a.dispatchEvent(new Event('input', {bubbles: true})); }",
        text,
    )
    page.get_by_label("…or a model folder or hub id").fill(str(short))
    page.locator("#run").click()
    slowest, progress_seen, deadline = 0.0, False, time.monotonic() + 300
    while time.monotonic() < deadline:  # while the model runs
        start = time.monotonic()
        body = page.evaluate("() => document.body.innerText.slice(0, 20000)")
        slowest = max(slowest, time.monotonic() - start)
        progress_seen = progress_seen or "window" in body and "%" in body
        if "entities ·" in page.locator("#status").inner_text():
            break
        time.sleep(1)
    page.wait_for_selector("#highlighted mark.entity", timeout=120_000)
    status = page.locator("#status").inner_text()
    windows = int(status.split(" windows")[0].split("·")[-1].replace(",", ""))
    assert windows > 1000 and page.locator("#highlighted mark.entity").count() > 1000
    assert progress_seen, "a progress indicator while it runs"
    # The model and the browser share this machine's two cores, so scripts can wait a little;
    # a frozen page would not answer until the whole run (about a minute) was over.
    print(f"slowest script answer while the model ran: {slowest:.2f} s")
    assert slowest < 10.0, f"the page answered a script only after {slowest:.1f} s while the model ran"


def test_browser_starts_with_the_built_in_model(browser):
    """With no --model the page runs the embedded default model."""
    from anno_mlx.ui.app import launch

    port = free_port()
    app = launch(None, port=port, block=False)
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        run_document(page, TEXT)
        assert "default model (built in)" in page.locator("#status").inner_text()
        want = [(e.label, e.text) for e in NER.from_pretrained()(TEXT)]
        assert want and [tuple(m) for m in marks(page)] == want
    finally:
        app.close()
