"""`POST /v1/ask`: a question (and an image) in, the answer out: as server-sent events (a `stage`
event per finished stage, `draft` events with the unfinished sentence as the model writes it, `token`
events with each checked sentence, then `answer`), or
with `?stream=false` the same JSON as `vlmsearch ask --json`. A follow-up sends the conversation's
earlier turns as `history`; the server keeps none."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from vlmsearch.engine import check_query
from vlmsearch.pipeline.types import AnswerEvent, DraftEvent, StageEvent, TokenEvent
from vlmsearch.server.conversation import read_history
from vlmsearch.server.errors import streamed_error
from vlmsearch.server.state import (
    final_answer,
    read_image,
    require_key,
    state,
    stream_events,
)

router = APIRouter(dependencies=[Depends(require_key)], tags=["answers"])


def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


@router.post("/v1/ask", summary="Answer a question, optionally about an image, from the indexed documents")
async def ask(
    request: Request,
    question: str = Form(..., description="The question"),
    pipeline: str | None = Form(None, description="llm or vlm [default: the profile's]"),
    image: UploadFile | None = File(None, description="An image the question is about"),
    history: str | None = Form(
        None,
        description='The conversation\'s earlier turns, oldest first, as JSON: [{"question", "answer", "citations", '
        '"image": a data URL, on the turn that sent it}]; a follow-up is answered about the last image sent',
    ),
    stream: bool = Query(True, description="Server-sent events; false: one JSON answer"),
):
    app = state(request)
    question = check_query(question)
    picture = await read_image(image, app.settings) if image is not None and image.filename else None
    turns = await run_in_threadpool(read_history, history, app.settings)  # off the loop: it decodes images
    runner = app.engine.pipeline(pipeline)  # an unknown pipeline or a missing VLM fails here, as a 400
    events = runner.stream(question, picture, turns)
    if not stream:
        return JSONResponse((await final_answer(request, events)).to_json())
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_sse(request, events), media_type="text/event-stream", headers=headers)


async def _sse(request: Request, events) -> AsyncIterator[str]:
    try:
        async for event in stream_events(request, events):
            if isinstance(event, StageEvent):
                yield sse("stage", event.step.to_json())
            elif isinstance(event, TokenEvent):
                yield sse("token", {"text": event.text})
            elif isinstance(event, DraftEvent):
                yield sse("draft", {"text": event.text})
            elif isinstance(event, AnswerEvent):
                yield sse("answer", event.answer.to_json())
    except Exception as exc:  # noqa: BLE001 (the status line is sent: one clear event instead of a cut stream)
        yield sse("error", streamed_error(exc))
