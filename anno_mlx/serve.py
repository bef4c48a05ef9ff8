"""`python -m anno_mlx serve`: entities over HTTP for other programs on this computer, with the web
app on the same port.

FastAPI routes under `/v1`; requests take turns on the model through one bounded queue (503 and
`Retry-After` when it is full); bodies over a size limit get 413; a request names a model from
those the server was started with and can never make it read another path. OpenAPI docs at
`/docs` (and `/redoc`) come from fastapi-offline's bundled files, so the page needs no network.
For a zero-shot (GLiNER) model a request's `labels` are the entity types to find, and `threshold`,
`nested` and `multi_label` choose among its spans; other models refuse those three.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

import hmac
import json
import threading
from typing import Iterator, Literal, Optional, Union

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .decode import AGGREGATIONS
from .errors import AnnoError
from .ner import OPTION_NAMES
from .pool import ModelPool
from .tokenizer import unpaired_surrogate
from .zeroshot import ZeroShotNER

BUILT_IN = "default"
DEFAULT_MAX_BODY = 20 * 1024 * 1024
DEFAULT_QUEUE = 32
DEFAULT_MAX_CHARS = 1_000_000  # per request (and per streamed document): about a minute on a laptop's CPU
STREAM_BATCH = 8  # documents run together on the streaming route
LOOPBACK = ("127.0.0.1", "localhost", "::1")
UPLOADS = "/gradio_api/upload"


class NERRequest(BaseModel):
    """One text or several, with the same options as `ner` on the command line."""

    model_config = ConfigDict(extra="forbid")

    text: Optional[str] = Field(None, description="one document; the answer is a list of entities")
    texts: Optional[list[str]] = Field(
        None, description="several documents; the answer is a list of lists, in order"
    )
    labels: Optional[Union[list[str], str]] = Field(
        None,
        description='only these types: ["PER", "ORG"] or "PER,ORG"; for a zero-shot model (required), '
        'the types to find: ["person", "company", "drug"]',
    )
    min_score: float = Field(0.0, ge=0.0, le=1.0, description="drop entities scoring below this")
    aggregation: Optional[Literal[AGGREGATIONS]] = Field(
        None, description="how subword labels combine (default: first)"
    )  # type: ignore[valid-type]
    one_type_per_name: Optional[bool] = Field(
        None, description="a name keeps one type throughout a document (default true; fixed-label models)"
    )
    model: Optional[str] = Field(None, description="a name from GET /v1/models (default: the first)")
    threshold: Optional[float] = Field(
        None, ge=0.0, le=1.0, description="zero-shot models: a span is an entity above this (default 0.5)"
    )
    nested: Optional[bool] = Field(None, description="zero-shot models: entities may lie inside others")
    multi_label: Optional[bool] = Field(
        None, description="zero-shot models: one span may carry several labels"
    )

    def options(self) -> dict:
        """The `NEROptions` fields this request chooses (None: the model's default)."""
        return {name: getattr(self, name) for name in OPTION_NAMES if name in type(self).model_fields}

    @model_validator(mode="after")
    def one_of_text_or_texts(self) -> "NERRequest":
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of text (a string) or texts (a list of strings)")
        return self


class Entity(BaseModel):
    """The Hugging Face pipeline's keys (entity_group, score, word, start, end) plus ours."""

    entity_group: str
    score: float
    word: str
    start: int = Field(description="Python string index into the text, inclusive")
    end: int = Field(description="Python string index, exclusive: text[start:end] == word")
    label: str
    text: str


class Admission:
    """Requests waiting for or holding the model; refuses beyond `limit` instead of piling up."""

    def __init__(self, limit: int):
        self.limit, self.active = limit, 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            if self.active >= self.limit:
                raise HTTPException(503, "the server is busy; retry shortly", headers={"Retry-After": "1"})
            self.active += 1

    def leave(self) -> None:
        with self._lock:
            self.active -= 1


class BodyLimit:
    """ASGI middleware: a body over `limit` bytes gets 413 before a route reads it (the API's and
    the mounted web app's alike; Gradio limits its uploads itself)."""

    def __init__(self, app, limit: int, hint: str = "send smaller batches or raise --max-body"):
        self.app, self.limit, self.hint = app, limit, hint

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(UPLOADS):  # uploads: Gradio's max_file_size
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._too_large(send)
        seen, over, answered = 0, False, False

        async def counting_receive():
            nonlocal seen, over
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                over = True
                raise _TooLarge
            return message

        async def replacing_send(message):
            # Whatever the app answers to a body cut short (FastAPI makes it a 400), the client gets the 413.
            nonlocal answered
            if not over:
                await send(message)
            elif not answered:
                answered = True
                await self._too_large(send)

        try:
            await self.app(scope, counting_receive, replacing_send)
        except _TooLarge:
            if not answered:
                await self._too_large(send)

    async def _too_large(self, send):
        body = json.dumps({"detail": f"request body over {self.limit:,} bytes; {self.hint}"})
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})


class _TooLarge(Exception):
    pass


def build_api(
    pool: ModelPool,
    *,
    api_key: Optional[str] = None,
    queue_size: int = DEFAULT_QUEUE,
    max_body: int = DEFAULT_MAX_BODY,
    max_chars: int = DEFAULT_MAX_CHARS,
    ui: bool = True,
) -> FastAPI:
    """The HTTP app over `pool` (restricted to the models it may serve; the first is the default)."""
    if not pool.allowed:
        raise AnnoError("the server needs at least one named model")
    if queue_size < 1 or max_body < 1 or max_chars < 1:
        raise AnnoError("--queue, --max-body and --max-chars must be at least 1")
    default = next(iter(pool.allowed))
    admission = Admission(queue_size)
    api = FastAPIOffline(
        title="anno-mlx", summary="Named entities in text, on this computer.", version=_version()
    )

    def authorised(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "").removeprefix(
            "Bearer "
        ).strip() or request.headers.get("x-api-key", "")
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(
                401,
                "missing or wrong API key: send Authorization: Bearer KEY",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def run(request: NERRequest, texts: list[str]) -> list[list[dict]]:
        ner = pool.get(request.model or default)
        results = pool.call(ner.batch, texts, **request.options())
        return [[e.to_dict() for e in entities] for entities in results]

    @api.exception_handler(AnnoError)
    async def user_error(_: Request, err: AnnoError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=400)

    @api.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, err: RequestValidationError) -> JSONResponse:
        """422 naming each field; the offending input is echoed as text (NaN is not JSON)."""
        errors = [
            {
                "loc": list(e.get("loc", ())),
                "msg": e.get("msg", ""),
                "type": e.get("type", ""),
                "input": repr(e.get("input"))[:200],
            }
            for e in err.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    def check_size(texts: list[str]) -> None:
        size = sum(len(t) for t in texts)
        if size > max_chars:
            raise HTTPException(
                413,
                f"{size:,} characters in one request, over this server's {max_chars:,} (--max-chars); send smaller pieces",
            )

    @api.get("/healthz", tags=["server"])
    def healthz() -> dict:
        return {"status": "ok"}

    @api.get("/v1/models", tags=["server"], dependencies=[Depends(authorised)])
    def models() -> dict:
        """The models this server runs, by the names a request may give."""
        data = []
        for name in pool.allowed:
            ner = pool.get(name)
            data.append(
                {
                    "name": name,
                    "default": name == default,
                    "labels": ner.entity_types,  # a zero-shot model's default prompt, usually none
                    "zero_shot": isinstance(ner, ZeroShotNER),
                    "backend": ner.runs_on,
                }
            )
        return {"models": data}

    @api.post(
        "/v1/ner",
        tags=["entities"],
        dependencies=[Depends(authorised)],
        response_model=Union[list[Entity], list[list[Entity]]],
    )
    def ner(request: NERRequest):
        """Entities of `text` (a list) or of each of `texts` (a list of lists), equal to
        `python -m anno_mlx ner --format json` on the same text."""
        texts = [request.text] if request.text is not None else request.texts
        check_size(texts)
        admission.enter()
        try:
            found = run(request, texts)
            return found[0] if request.text is not None else found
        finally:
            admission.leave()

    @api.post("/v1/ner:stream", tags=["entities"], dependencies=[Depends(authorised)])
    async def ner_stream(
        request: Request,
        model: Optional[str] = None,
        labels: Optional[str] = None,
        min_score: float = 0.0,
        aggregation: Optional[str] = None,
        one_type_per_name: Optional[bool] = None,
        threshold: Optional[float] = None,
        nested: Optional[bool] = None,
        multi_label: Optional[bool] = None,
    ):
        """NDJSON in, NDJSON out: one `{"id"?, "text"}` per line; one `{"id", "entities"}` (or
        `{"id", "error"}`) per line back, in order, sent as each batch of documents finishes.
        The options are query parameters, as in `/v1/ner`'s body."""
        try:
            options = NERRequest(
                texts=[],
                model=model,
                labels=labels,
                min_score=min_score,
                aggregation=aggregation,
                one_type_per_name=one_type_per_name,
                threshold=threshold,
                nested=nested,
                multi_label=multi_label,
            )
        except ValidationError as err:
            raise RequestValidationError([{**e, "loc": ("query", *e["loc"])} for e in err.errors()]) from None
        # An unknown model, a wrong option or a zero-shot model without labels is a 400 before
        # streaming starts: the options' check and the first stage, given no text, find them all.
        ner = pool.get(options.model or default)
        ner.prepare([], ner.options(**options.options()))
        body = await request.body()
        documents = [
            _stream_document(i, line, max_chars)
            for i, line in enumerate(body.removeprefix(b"\xef\xbb\xbf").split(b"\n"))
            if line.strip()
        ]
        admission.enter()

        def results() -> Iterator[bytes]:
            try:
                for start in range(0, len(documents), STREAM_BATCH):
                    batch = documents[start : start + STREAM_BATCH]
                    good = [d for d in batch if "error" not in d]
                    found = iter(run(options, [d["text"] for d in good]) if good else [])
                    for d in batch:
                        answer = (
                            {"id": d["id"], "error": d["error"]}
                            if "error" in d
                            else {"id": d["id"], "entities": next(found)}
                        )
                        yield (json.dumps(answer, ensure_ascii=False) + "\n").encode()
            except AnnoError as err:  # not one document's fault: say so once, in the stream
                yield (json.dumps({"error": str(err)}) + "\n").encode()
            finally:
                admission.leave()

        return StreamingResponse(results(), media_type="application/x-ndjson")

    if ui:
        import gradio as gr

        from .ui.app import CSS, FONTS, MONO, build_app

        blocks = build_app(default, pool=pool, max_bytes=max_body)
        blocks.queue(default_concurrency_limit=1)
        auth = (
            None
            if api_key is None
            else (lambda _user, password: hmac.compare_digest(password.encode(), api_key.encode()))
        )
        api = gr.mount_gradio_app(
            api,
            blocks,
            path="/",
            ssr_mode=False,
            auth=auth,
            max_file_size=max_body,
            theme=gr.themes.Base(font=FONTS, font_mono=MONO),
            css=CSS,
        )
    api.add_middleware(BodyLimit, limit=max_body)
    return api


def _stream_document(number: int, raw: bytes, max_chars: int) -> dict:
    """One NDJSON line as {"id", "text"} or {"id", "error"}: what is wrong with one document is
    that document's answer, never the stream's. A line's id defaults to its number."""
    where = f"line {number + 1}"
    try:
        record = json.loads(raw.decode("utf-8").removesuffix("\r"))
    except UnicodeDecodeError as err:
        return {"id": number, "error": f"{where} is not UTF-8 (byte 0x{raw[err.start]:02x})"}
    except json.JSONDecodeError as err:
        return {"id": number, "error": f"{where} is not JSON ({err.msg})"}
    except RecursionError:
        return {"id": number, "error": f"{where}: JSON nested too deeply"}
    if not isinstance(record, dict):
        return {"id": number, "error": f"{where} is not a JSON object"}
    doc_id, text = record.get("id", number), record.get("text")
    if not isinstance(text, str):
        return {"id": doc_id, "error": f'{where} has no "text" string'}
    if len(text) > max_chars:
        return {
            "id": doc_id,
            "error": f"{where} has {len(text):,} characters, over this server's {max_chars:,} (--max-chars)",
        }
    bad = unpaired_surrogate(text)
    if bad is not None:
        return {"id": doc_id, "error": f"{where}: the text holds an unpaired surrogate at index {bad}"}
    return {"id": doc_id, "text": text}


def serve(
    models: list[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    backend: str = "auto",
    device: Optional[str] = None,
    api_key: Optional[str] = None,
    queue_size: int = DEFAULT_QUEUE,
    max_body: int = DEFAULT_MAX_BODY,
    max_chars: int = DEFAULT_MAX_CHARS,
    ui: bool = True,
) -> None:
    """Load every model named ("default": the built-in one, also served when none is named), then
    serve until Ctrl+C."""
    import sys

    import uvicorn

    allowed: dict[str, Optional[str]] = {
        name: None if name == BUILT_IN else name for name in models or [BUILT_IN]
    }
    pool = ModelPool(backend, device, allowed=allowed)
    for name in allowed:
        pool.get(name)  # a bad model fails here, with its one-line error, not on the first request
    app = build_api(
        pool, api_key=api_key, queue_size=queue_size, max_body=max_body, max_chars=max_chars, ui=ui
    )
    if host not in LOOPBACK and api_key is None:
        print(
            f"warning: serving on {host} without --api-key: anyone who can reach this port can use it",
            file=sys.stderr,
        )
    print(
        f"anno-mlx API: http://{host}:{port}/v1/ner  docs: http://{host}:{port}/docs"
        + (f"  web app: http://{host}:{port}/" if ui else ""),
        flush=True,
    )
    # A stop waits at most a few seconds for a running request (a long document would hold it for minutes).
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)


def _version() -> str:
    from . import __version__

    return __version__
