"""What one server process holds: the engine (models loaded once, shared by every request), its
settings, the index jobs, and the helpers routes share: the key check, reading uploads, streaming a
pipeline to a client that may leave."""

from __future__ import annotations

import hmac
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
from fastapi import Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from PIL import Image

from vlmsearch.engine import Engine
from vlmsearch.images import decode_image
from vlmsearch.pipeline.types import Answer, AnswerEvent
from vlmsearch.server.errors import ApiError
from vlmsearch.server.jobs import Jobs
from vlmsearch.server.settings import ServerSettings

_DONE = object()


class AppState:
    def __init__(self, engine: Engine, settings: ServerSettings):
        self.engine, self.settings = engine, settings
        self.jobs = Jobs(engine, settings)


def state(request: Request) -> AppState:
    return request.app.state.vlmsearch


def require_key(request: Request) -> None:
    """Every API call carries the key when one is set: `Authorization: Bearer <key>` (what OpenAI
    clients send) or `X-API-Key: <key>`."""
    key = state(request).settings.api_key
    if not key:
        return
    given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not given or not hmac.compare_digest(given.encode(), key.encode()):
        raise ApiError(401, "a valid API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")


async def read_image(upload: UploadFile, settings: ServerSettings) -> Image.Image:
    """An uploaded image, judged by its bytes (not its name or declared type), within the limits."""
    data = await upload.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise ApiError(413, f"{upload.filename or 'the upload'} is over the limit of {settings.max_upload_bytes:,} bytes")
    if not data:
        raise ApiError(400, f"{upload.filename or 'the upload'} is empty", "bad_input")
    # Off the event loop: decoding a large image takes a while, and other requests must not wait.
    return await run_in_threadpool(decode_image, data, upload.filename or "the upload", settings.max_image_pixels)


class _Cancellable:
    """A sync event iterator pulled from worker threads, which a departed client can close: the close
    reaches the pipeline's generators (ending the model's turn) as soon as no pull is running."""

    def __init__(self, events: Iterator[Any]):
        self._events, self._pulling = events, threading.Lock()

    def pull(self) -> Any:
        with self._pulling:
            return next(self._events, _DONE)

    def close(self) -> None:
        def close_when_free() -> None:
            with self._pulling:
                self._events.close()

        threading.Thread(target=close_when_free, daemon=True).start()


async def final_answer(request: Request, events: Iterator[Any]) -> Answer:
    """The answer at the end of a pipeline run, for responses that are not streamed."""
    async for event in stream_events(request, events):
        if isinstance(event, AnswerEvent):
            return event.answer
    raise ApiError(400, "the request ended before its answer (the client left)", "cancelled")


async def stream_events(request: Request, events: Iterator[Any]) -> AsyncIterator[Any]:
    """The events of a pipeline run, pulled off the event loop, until the client disconnects."""
    source = _Cancellable(events)
    try:
        while not await request.is_disconnected():
            event = await anyio.to_thread.run_sync(source.pull)
            if event is _DONE:
                return
            yield event
    finally:
        source.close()
