"""The FastAPI app behind `winnow serve`, built by `create_app` (nothing loads at import).

    POST /predict   multipart field `files` (one or many images) → per file: top-k classes
                    with calibrated probabilities and `uncertain`, or the decoder's reason
    POST /explain   one image → PNG of its Grad-CAM overlay (checkpoints only)
    GET  /health    liveness;  GET /ready: 200 once the model is loaded, else 503
    GET  /model     classes, preprocessing, threshold, limits, the model card's summary
    GET  /          the demo page;  /docs: the OpenAPI page (Swagger UI served by the app
                    itself: it opens without a network)

Safety: uploads are decoded by the same bounded-memory decoder as `scan` (so a truncated
file, a non-image or a decompression bomb is a per-file error with scan's wording, never a
5xx); a request body over `max_request_mb`, a file over `max_file_mb` or more than
`max_files` files is refused with 413 before anything is decoded; `max_concurrent` requests
run at once and `max_queued` more wait (their bodies unread), beyond that 503 with
Retry-After instead of queueing into memory. Client file names are echoed back and never
used as paths: an upload is written to a private temporary folder under a generated name,
decoded and deleted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from winnow import __version__
from winnow.errors import WinnowError
from winnow.serve.predictor import Predictor
from winnow.serve.settings import MB, ServeSettings


class _TooLarge(Exception):
    pass


class _BodyLimit:
    """ASGI middleware: a request whose body is over `limit` bytes gets 413, judged by its
    Content-Length before anything is read and by counting while it streams."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    def too_large(self) -> JSONResponse:
        detail = f"request body is over the limit of {self.limit / MB:g} MB (max_request_mb)"
        return JSONResponse({"detail": detail}, status_code=413)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self.too_large()(scope, receive, send)
        received = 0
        started = False

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        async def tracked(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await self.too_large()(scope, receive, send)


def create_app(settings: ServeSettings, predictor: Predictor | None = None):
    """The FastAPI app; the model loads at start-up (or `predictor` is used as given)."""
    # the multipart parser logs a warning per malformed body: a client could flood the log
    # with them, and the client already gets the reason in its 400
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    state: dict[str, Any] = {"predictor": predictor, "error": None}
    slots = asyncio.Semaphore(settings.max_concurrent)

    @asynccontextmanager
    async def lifespan(_app):
        if state["predictor"] is None:
            try:
                state["predictor"] = await run_in_threadpool(Predictor, settings)
            except WinnowError as exc:
                state["error"] = str(exc)
                raise
        yield
        state["predictor"].close()

    # FastAPI's own /docs loads its scripts from a CDN; fastapi-offline's serves them from
    # the package, so the page opens on a machine without internet. No /redoc: its page
    # still fetches a logo from the web
    app = FastAPIOffline(
        redoc_url=None,
        title="winnow serve",
        version=__version__,
        description="Image classification by a model trained from scratch with winnow.",
        lifespan=lifespan,
    )

    def ready() -> Predictor:
        if state["predictor"] is None:
            raise HTTPException(503, state["error"] or "the model is still loading")
        return state["predictor"]

    async def uploads_of(request: Request, field: str) -> list[tuple[str, bytes]]:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise HTTPException(415, f"send the images as multipart/form-data, field '{field}'")
        try:
            form = await request.form(max_files=settings.max_files, max_fields=100)
        except _TooLarge:
            raise
        except StarletteHTTPException as exc:  # what Starlette's parser refused
            if "Too many files" in str(exc.detail):  # counted over every field of the form
                raise HTTPException(
                    413, f"more than {settings.max_files} files in one request (max_files)"
                ) from None
            raise HTTPException(400, f"the multipart body can't be parsed: {exc.detail}") from None
        except Exception as exc:  # noqa: BLE001 - any other parse failure is the body's
            raise HTTPException(400, f"the multipart body can't be parsed: {exc}") from None
        files = [v for v in form.getlist(field) if isinstance(v, UploadFile)]
        if not files:
            raise HTTPException(422, f"no files in the multipart field '{field}'")
        out = []
        for upload in files:
            if upload.size is not None and upload.size > settings.max_file_mb * MB:
                raise HTTPException(
                    413,
                    f"{upload.filename!r} is {upload.size / MB:.1f} MB, over the limit of "
                    f"{settings.max_file_mb:g} MB per file (max_file_mb)",
                )
            out.append((upload.filename or "upload", await upload.read()))
        return out

    admitted = 0  # requests running or waiting for a slot

    @asynccontextmanager
    async def slot():
        """Up to max_concurrent requests run (their bodies are read only then, so memory is
        bounded by max_concurrent × max_request_mb); up to max_queued more wait; beyond that
        503 at once, before the body is read."""
        nonlocal admitted
        if admitted >= settings.max_concurrent + settings.max_queued:
            raise HTTPException(
                503,
                f"{settings.max_concurrent} requests are running and {settings.max_queued} "
                "waiting (max_concurrent, max_queued); retry shortly",
                headers={"Retry-After": "1"},
            )
        admitted += 1
        try:
            async with slots:
                yield
        finally:
            admitted -= 1

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready")
    async def is_ready() -> dict:
        ready()
        return {"status": "ready"}

    @app.get("/model")
    async def model() -> dict:
        return ready().describe()

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        predictor = ready()
        async with slot():
            uploads = await uploads_of(request, "files")
            results = await run_in_threadpool(predictor.predict, uploads)
        return {"threshold": settings.threshold, "results": results}

    @app.post("/explain")
    async def explain(request: Request):
        predictor = ready()
        if not predictor.can_explain:
            raise HTTPException(
                409, "Grad-CAM needs a PyTorch checkpoint; this server runs an ONNX model"
            )
        async with slot():
            uploads = await uploads_of(request, "file")
            if len(uploads) != 1:
                raise HTTPException(422, "send exactly one image in the field 'file'")
            png, error = await run_in_threadpool(predictor.explain_png, uploads[0][1])
        if png is None:
            return JSONResponse({"detail": error}, status_code=422)
        return Response(png, media_type="image/png")

    @app.get("/", response_class=HTMLResponse)
    async def demo() -> HTMLResponse:
        from winnow.serve.page import render_demo

        return HTMLResponse(render_demo(ready().describe()))

    app.add_middleware(_BodyLimit, limit=int(settings.max_request_mb * MB))
    return app


SETTINGS_VARIABLE = "WINNOW_SERVE_SETTINGS"


def app_from_environment():
    """The app for each uvicorn worker process (`--workers N`): its settings come as JSON
    in the environment variable WINNOW_SERVE_SETTINGS, set by `serve`."""
    import json

    return create_app(ServeSettings(**json.loads(os.environ[SETTINGS_VARIABLE])))


def serve(
    settings: ServeSettings,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    on_ready=None,
) -> None:
    """Run the server in this process until interrupted (uvicorn)."""
    import uvicorn

    if workers > 1:
        os.environ[SETTINGS_VARIABLE] = json.dumps(asdict(settings))
        uvicorn.run(
            "winnow.serve.app:app_from_environment", factory=True, host=host, port=port,
            workers=workers, log_level="warning",
        )  # fmt: skip
        return
    predictor = Predictor(settings)  # load before binding: a bad model fails fast
    if on_ready is not None:
        on_ready(predictor)
    uvicorn.run(create_app(settings, predictor), host=host, port=port, log_level="warning")
