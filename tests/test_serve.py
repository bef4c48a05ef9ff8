"""`serve`: the JSON API against `ner --format json`, under concurrent clients, with its limits,
and the web app on the same port. A real server process for the end-to-end checks; the app
in-process (TestClient) for limits that need a controlled model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import httpx
import pytest
from servers import free_port, wait_until_up

from anno_mlx import NER
from anno_mlx.cli import main
from anno_mlx.pool import ModelPool
from anno_mlx.serve import build_api

TEXTS = [
    "Marie Curie was born in Warsaw and moved to Paris, where the Sorbonne hired her.",
    "Tim Cook said Apple will open an office in Berlin next March.",
    "The United Nations met in Geneva on Monday with delegates from Japan.",
    "",
    "Angela Merkel and Emmanuel Macron spoke in Brussels about the European Union budget.",
]


@pytest.fixture(scope="module")
def server(converted_model):
    """`python -m anno_mlx serve` with the built-in model and a second, named one."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "anno_mlx",
            "serve",
            "--backend",
            "mlx",
            "--port",
            str(port),
            "-m",
            "default",
            "-m",
            str(converted_model),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url + "/healthz", process)
    yield url
    process.terminate()
    process.wait(timeout=30)


def cli_json(capsys, *args: str):
    capsys.readouterr()
    assert main(["ner", *args, "--format", "json", "--backend", "mlx"]) == 0
    return json.loads(capsys.readouterr().out)


def same_entities(served, printed) -> bool:
    """The same entities in the same texts, scores equal to float32 precision: the server is a
    process of its own, and two processes need not sum a product in the same order."""
    if isinstance(served, list) and isinstance(printed, list):
        return len(served) == len(printed) and all(map(same_entities, served, printed))
    if isinstance(served, dict) and isinstance(printed, dict):
        rest = lambda e: {k: v for k, v in e.items() if k != "score"}  # noqa: E731
        return rest(served) == rest(printed) and abs(served["score"] - printed["score"]) < 1e-5
    return False


def test_entities_equal_the_cli(server, capsys, tmp_path):
    for text in TEXTS[:3]:
        answer = httpx.post(server + "/v1/ner", json={"text": text}, timeout=60)
        assert answer.status_code == 200
        assert same_entities(answer.json(), cli_json(capsys, text))
        assert answer.json(), "the built-in model finds entities in these sentences"
    files = []
    for i, text in enumerate(TEXTS[:2]):
        files += ["--file", str(tmp_path / f"{i}.txt")]
        (tmp_path / f"{i}.txt").write_text(text, encoding="utf-8")
    both = httpx.post(
        server + "/v1/ner", json={"texts": TEXTS[:2], "labels": "PERSON,ORG", "min_score": 0.5}, timeout=60
    ).json()
    assert same_entities(
        both, cli_json(capsys, *files, "--labels", "PERSON,ORG", "--min-score", "0.5")
    )  # run together, as the API does
    for entities, text in zip(both, TEXTS):
        assert all(
            text[e["start"] : e["end"]] == e["word"] == e["text"] and e["entity_group"] == e["label"]
            for e in entities
        )
    tennis = 'Washington lost to Krajicek. Washington served at 5-4. "Tight," said Washington.'
    answers = {}
    for flag, value in (("--one-type-per-name", True), ("--no-one-type-per-name", False)):
        answer = httpx.post(server + "/v1/ner", json={"text": tennis, "one_type_per_name": value}, timeout=60)
        assert same_entities(answer.json(), cli_json(capsys, tennis, flag))
        answers[value] = answer.json()
    assert answers[True] != answers[False], "this text shows the rule at work"


def test_models_by_name_only(server, converted_model, capsys):
    listed = httpx.get(server + "/v1/models").json()["models"]
    assert [m["name"] for m in listed] == ["default", str(converted_model)]
    assert (
        listed[0]["default"]
        and "PERSON" in listed[0]["labels"]
        and listed[1]["labels"] == ["PER", "ORG", "LOC", "MISC"]
    )
    tiny = httpx.post(server + "/v1/ner", json={"text": TEXTS[0], "model": str(converted_model)}).json()
    assert same_entities(tiny, cli_json(capsys, TEXTS[0], "-m", str(converted_model)))
    refused = httpx.post(server + "/v1/ner", json={"text": "x", "model": str(converted_model.parent)})
    assert refused.status_code == 400 and "not served here" in refused.json()["detail"]


def test_concurrent_clients_lose_nothing(server):
    texts = [f"{TEXTS[i % 5]} Report number {i} from Lisbon." for i in range(48)]

    def ask(i: int) -> httpx.Response:
        body = {"texts": [texts[i], texts[i - 1]]} if i % 2 else {"text": texts[i]}
        return httpx.post(server + "/v1/ner", json=body, timeout=120)

    one_by_one = [ask(i).json() for i in range(48)]
    with ThreadPoolExecutor(16) as clients:
        answers = list(clients.map(ask, range(48)))
    assert [a.status_code for a in answers] == [200] * 48
    assert [a.json() for a in answers] == one_by_one


def test_stream_returns_each_document_in_order(server):
    texts = TEXTS[:4] + [
        "Ana Silva wrote from Oslo.\u2028Pedro Costa replied."
    ]  # U+2028 raw inside a JSON string
    lines = [json.dumps({"id": f"d{i}", "text": t}, ensure_ascii=False) for i, t in enumerate(texts)] + [
        "not json",
        json.dumps({"id": 7, "text": 3}),
    ]
    answer = httpx.post(
        server + "/v1/ner:stream",
        content="\n".join(lines) + "\n",
        headers={"content-type": "application/x-ndjson"},
        timeout=60,
    )
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/x-ndjson")
    results = [json.loads(line) for line in answer.text.splitlines()]
    assert [r["id"] for r in results] == ["d0", "d1", "d2", "d3", "d4", 5, 7]
    single = httpx.post(server + "/v1/ner", json={"texts": texts}, timeout=60).json()
    assert [r["entities"] for r in results[:5]] == single
    assert "not JSON" in results[5]["error"] and '"text"' in results[6]["error"]
    tennis = 'Washington lost to Krajicek. Washington served at 5-4. "Tight," said Washington.'
    answers = {}
    for value in ("true", "false"):
        streamed = httpx.post(
            server + f"/v1/ner:stream?one_type_per_name={value}&aggregation=max",
            content=json.dumps({"text": tennis}) + "\n",
            timeout=60,
        )
        body = {"text": tennis, "one_type_per_name": value == "true", "aggregation": "max"}
        answers[value] = httpx.post(server + "/v1/ner", json=body, timeout=60).json()
        assert json.loads(streamed.text)["entities"] == answers[value]
    assert answers["true"] != answers["false"], "this text shows the rule at work"


def test_web_app_on_the_same_port(server):
    from gradio_client import Client

    page = httpx.get(server + "/")
    assert page.status_code == 200 and "gradio" in page.text.lower()
    labels, status = Client(server + "/", verbose=False).predict(
        TEXTS[0], "default", "", "first", api_name="/analyse"
    )
    n = len(httpx.post(server + "/v1/ner", json={"text": TEXTS[0]}).json())
    assert status.startswith(f"{n} entities") and "MLX on cpu" in status
    assert "PERSON" in labels["value"]


def test_docs_page_needs_no_network(server, browser):
    schema = httpx.get(server + "/openapi.json").json()
    assert {"/v1/ner", "/v1/ner:stream", "/v1/models", "/healthz"} <= set(schema["paths"])
    requests: list[str] = []
    page = browser.new_page()
    page.on("request", lambda request: requests.append(request.url))
    page.goto(server + "/docs")
    page.get_by_text("/v1/ner:stream").first.wait_for(timeout=30_000)
    page.close()
    assert requests and all(
        urlparse(url).hostname == "127.0.0.1" for url in requests if not url.startswith("data:")
    ), requests


# -- limits, in-process ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool():
    return ModelPool("mlx", allowed={"default": None})


def test_malformed_requests_name_the_field(pool):
    from fastapi.testclient import TestClient

    client = TestClient(build_api(pool, ui=False))
    wrong = client.post("/v1/ner", json={"texts": "one string"})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "texts"]
    neither = client.post("/v1/ner", json={"labels": "PERSON"})
    assert neither.status_code == 422 and "exactly one of text" in json.dumps(neither.json())
    bad_json = client.post("/v1/ner", content=b'{"text": ', headers={"content-type": "application/json"})
    assert bad_json.status_code == 422 and bad_json.json()["detail"][0]["type"] == "json_invalid"
    score = client.post("/v1/ner", json={"text": "x", "min_score": 2})
    assert score.status_code == 422 and score.json()["detail"][0]["loc"] == ["body", "min_score"]
    surrogate = client.post(
        "/v1/ner", content=b'{"text": "Paris \\ud800"}', headers={"content-type": "application/json"}
    )
    assert (
        surrogate.status_code == 400
        and "unpaired surrogate (U+D800) at index 6" in surrogate.json()["detail"]
    )
    label = client.post("/v1/ner", json={"text": "x", "labels": ["NOPE"]})
    assert label.status_code == 400 and "NOPE is not one this model predicts" in label.json()["detail"]


def test_body_limit_with_and_without_length(pool):
    from fastapi.testclient import TestClient

    client = TestClient(build_api(pool, ui=False, max_body=1000))
    assert client.post("/v1/ner", json={"text": "Paris " * 100}).status_code == 200
    big = client.post("/v1/ner", json={"text": "Paris " * 400})
    assert big.status_code == 413 and "1,000 bytes" in big.json()["detail"]
    chunked = client.post("/v1/ner:stream", content=(b'{"text": "Paris"}\n' for _ in range(200)))
    assert chunked.status_code == 413
    chunked = client.post(
        "/v1/ner",
        content=(b'{"text": "' if i == 0 else b"Paris " for i in range(400)),
        headers={"content-type": "application/json"},
    )
    assert chunked.status_code == 413 and "1,000 bytes" in chunked.json()["detail"]


def test_full_queue_answers_503_with_retry_after(pool):
    from fastapi.testclient import TestClient

    inside, release = threading.Event(), threading.Event()
    real_call = pool.call

    def slow_call(fn, *args, **kwargs):
        if getattr(fn, "__name__", "") == "batch":
            inside.set()
            release.wait(30)
        return real_call(fn, *args, **kwargs)

    pool.call = slow_call
    try:
        client = TestClient(build_api(pool, ui=False, queue_size=1))
        with ThreadPoolExecutor(1) as background:
            first = background.submit(client.post, "/v1/ner", json={"text": "Tim Cook"})
            assert inside.wait(30)
            busy = client.post("/v1/ner", json={"text": "Paris"})
            release.set()
            assert first.result().status_code == 200
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert client.post("/v1/ner", json={"text": "Paris"}).status_code == 200  # the slot is free again
    finally:
        pool.call = real_call


def test_api_key(pool):
    from fastapi.testclient import TestClient

    client = TestClient(build_api(pool, api_key="s3cret"))
    assert client.post("/v1/ner", json={"text": "Paris"}).status_code == 401
    assert (
        client.post("/v1/ner", json={"text": "Paris"}, headers={"Authorization": "Bearer wrong"}).status_code
        == 401
    )
    assert (
        client.post("/v1/ner", json={"text": "Paris"}, headers={"Authorization": "Bearer s3cret"}).status_code
        == 200
    )
    assert client.get("/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
    assert client.get("/healthz").status_code == 200
    # The web app on the same port asks for the key as its password.
    assert client.get("/config").status_code == 401
    assert client.post("/login", data={"username": "me", "password": "wrong"}).status_code != 200
    assert client.post("/login", data={"username": "me", "password": "s3cret"}).json() == {"success": True}
    assert client.get("/config").status_code == 200


def test_serve_errors_are_one_line(capsys, tmp_path):
    assert main(["serve", "-m", str(tmp_path / "missing"), "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model") and "does not exist" in err and len(err.strip().splitlines()) == 1


def test_one_bad_document_never_spoils_the_stream(pool):
    from fastapi.testclient import TestClient

    client = TestClient(build_api(pool, ui=False, max_chars=100))
    body = b"\n".join(
        [
            b'{"id": 1, "text": "Ana Silva lives in Paris."}',
            b'{"id": 2, "text": "x \\ud800"}',
            b'{"id": 3, "text": "Alice \xff Paris"}',
            b'{"id": 4, "text": "' + b"Paris " * 30 + b'"}',
            b"[" * 50_000 + b"]" * 50_000,
            b'{"id": 6, "text": "Tim Cook runs Apple."}',
        ]
    )
    answer = client.post("/v1/ner:stream", content=body)
    results = [json.loads(line) for line in answer.text.splitlines()]
    assert [r["id"] for r in results] == [1, 2, 2, 4, 4, 6]  # unreadable lines answer under their line index
    assert "entities" in results[0] and "entities" in results[5]
    assert "unpaired surrogate" in results[1]["error"] and "not UTF-8 (byte 0xff)" in results[2]["error"]
    assert (
        "over this server's 100 (--max-chars)" in results[3]["error"]
        and "nested too deeply" in results[4]["error"]
    )


def test_stream_options_and_sizes_are_checked_first(pool):
    from fastapi.testclient import TestClient

    client = TestClient(build_api(pool, ui=False, max_chars=100))
    assert client.post("/v1/ner:stream?min_score=2", content=b'{"text": "Paris"}').status_code == 422
    bad_label = client.post("/v1/ner:stream?labels=FOO", content=b'{"text": "Paris"}')
    assert bad_label.status_code == 400 and "FOO is not one this model predicts" in bad_label.json()["detail"]
    nan = client.post(
        "/v1/ner",
        content=b'{"text": "Paris", "min_score": NaN}',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 422 and nan.json()["detail"][0]["loc"] == ["body", "min_score"]
    big = client.post("/v1/ner", json={"texts": ["Paris " * 10, "Rome " * 10]})
    assert (
        big.status_code == 413
        and "110 characters in one request, over this server's 100" in big.json()["detail"]
    )


# -- zero-shot models ------------------------------------------------------------------------

PROMPT = ["person", "city", "company"]


@pytest.fixture(scope="module")
def zero_shot(gliner_checkpoint, converted_model):
    """A client of a server with a tiny GLiNER model (the default) and a fixed-label one, and the
    GLiNER model loaded in this thread for the expected answers."""
    from fastapi.testclient import TestClient

    folder = gliner_checkpoint("uni-modernbert")
    pool = ModelPool("mlx", allowed={"gliner": str(folder), "tiny": str(converted_model)})
    return TestClient(build_api(pool, ui=False)), NER.from_pretrained(folder, backend="mlx")


def test_zero_shot_models_take_labels_as_their_prompt(zero_shot):
    client, ner = zero_shot
    listed = client.get("/v1/models").json()["models"]
    assert [(m["name"], m["zero_shot"]) for m in listed] == [("gliner", True), ("tiny", False)]
    assert listed[0]["labels"] == [] and listed[1]["labels"] == ["PER", "ORG", "LOC", "MISC"]
    answers = []
    for options in [{}, {"threshold": 0.3}, {"threshold": 0.3, "nested": True, "multi_label": True}]:
        answer = client.post("/v1/ner", json={"texts": TEXTS[:3], "labels": PROMPT, **options})
        assert answer.status_code == 200, answer.text
        want = [[e.to_dict() for e in found] for found in ner.batch(TEXTS[:3], labels=PROMPT, **options)]
        assert answer.json() == want
        answers.append(answer.json())
    assert answers[0] != answers[1] != answers[2]  # each option reached the model
    assert {e["label"] for found in answers[0] for e in found} <= set(PROMPT) and answers[0][0]
    one = client.post("/v1/ner", json={"text": TEXTS[0], "labels": "person, city, company"})
    assert one.json() == [e.to_dict() for e in ner(TEXTS[0], labels=PROMPT)]  # labels as one string


def test_zero_shot_mistakes_are_one_line(zero_shot):
    client, _ = zero_shot
    for body, status, words in [
        ({"text": TEXTS[0]}, 400, "is a zero-shot model: name the entity types"),
        ({"text": TEXTS[0], "labels": " , "}, 400, "no labels given"),
        ({"text": TEXTS[0], "model": "tiny", "threshold": 0.3}, 400, "threshold applies to zero-shot"),
        ({"text": TEXTS[0], "model": "tiny", "nested": True}, 400, "nested applies to zero-shot"),
    ]:
        answer = client.post("/v1/ner", json=body)
        assert answer.status_code == status and words in answer.json()["detail"], (body, answer.text)
        assert "\n" not in answer.json()["detail"]
    for field, value in [("threshold", 2), ("threshold", "high"), ("multi_label", "maybe")]:
        answer = client.post("/v1/ner", json={"text": TEXTS[0], "labels": PROMPT, field: value})
        assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", field]


def test_zero_shot_stream_takes_the_same_options(zero_shot):
    client, _ = zero_shot
    body = "\n".join(json.dumps({"id": i, "text": t}) for i, t in enumerate(TEXTS[:3]))
    streamed = client.post(
        "/v1/ner:stream?labels=person,city,company&threshold=0.3&nested=true", content=body
    )
    assert streamed.status_code == 200
    results = [json.loads(line) for line in streamed.text.splitlines()]
    single = client.post(
        "/v1/ner", json={"texts": TEXTS[:3], "labels": PROMPT, "threshold": 0.3, "nested": True}
    ).json()
    assert [r["entities"] for r in results] == single
    no_labels = client.post("/v1/ner:stream", content=body)  # refused before streaming starts
    assert no_labels.status_code == 400 and "is a zero-shot model" in no_labels.json()["detail"]
    fixed = client.post("/v1/ner:stream?model=tiny&multi_label=true", content=body)
    assert fixed.status_code == 400 and "multi_label applies to zero-shot" in fixed.json()["detail"]
    low = client.post("/v1/ner:stream?labels=person&threshold=-1", content=body)
    assert low.status_code == 422 and low.json()["detail"][0]["loc"] == ["query", "threshold"]
