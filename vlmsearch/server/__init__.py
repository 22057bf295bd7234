"""`vlmsearch serve`: one process that loads the models once and serves the HTTP API (OpenAPI schema
at /docs), an OpenAI-compatible chat endpoint, and the web page at /. Only this package and the CLI
know HTTP; the library underneath raises, and `errors.py` turns that into statuses."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from importlib import resources

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from vlmsearch.engine import Engine
from vlmsearch.server import errors
from vlmsearch.server.routes import ask, extract, library, openai, search
from vlmsearch.server.settings import ServerSettings
from vlmsearch.server.state import AppState

log = logging.getLogger("vlmsearch.server")
FORM_OVERHEAD = 64 * 1024  # multipart headers and small fields around an upload


def warm(engine: Engine) -> None:
    """Load every model the pipelines use and open the store, before the first request waits for them."""
    for role in ("tagger", "image_embedder", "image_text", "ocr", "text_embedder", "chat", "generator", "vlm"):
        if engine.models.has(role):
            engine.models.get(role)
    engine.store.count()


def create_app(engine: Engine, settings: ServerSettings, warm_up: bool = True) -> FastAPI:
    settings = settings.check()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if warm_up:
            log.info("loading models")
            warm(engine)
        yield
        app.state.vlmsearch.jobs.shutdown()

    app = FastAPI(title="vlmsearch", summary="Multimodal search and answers over your images and documents", lifespan=lifespan)
    app.state.vlmsearch = AppState(engine, settings)
    errors.install(app)
    app.add_middleware(BodyLimit, limit_for=_limits(settings))
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])  # fmt: skip
    for module in (ask, search, extract, library, openai):
        app.include_router(module.router)
    app.include_router(library.health)
    if settings.sbs is not None:
        from vlmsearch.eval.judge_app import judge_router

        app.include_router(judge_router(settings.sbs), prefix="/judge")
    static = resources.files("vlmsearch.server") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return (static / "index.html").read_text(encoding="utf-8")

    return app


def _limits(settings: ServerSettings) -> Callable[[str], int]:
    def limit(path: str) -> int:
        if path == "/v1/index":
            return settings.max_upload_bytes * settings.max_upload_files + FORM_OVERHEAD
        if path == "/v1/chat/completions":  # an image inside, as base64: a third larger
            return settings.max_upload_bytes * 4 // 3 + FORM_OVERHEAD
        return settings.max_upload_bytes + FORM_OVERHEAD

    return limit


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuse request bodies over the limit with a 413, by Content-Length when it is sent and by
    counting otherwise, before any of it is kept."""

    def __init__(self, app, limit_for: Callable[[str], int]):
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, limit)
            return
        received, started = 0, False

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def watched(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if not started:
                await _refuse(send, limit)


async def _refuse(send, limit: int) -> None:
    body = json.dumps(errors.error_body(413, f"the request body is over the limit of {limit:,} bytes")).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
