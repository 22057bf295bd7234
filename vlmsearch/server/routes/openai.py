"""`POST /v1/chat/completions`, OpenAI-compatible: any OpenAI client (or a chat UI such as Open WebUI)
can use vlmsearch as a model. The model name picks the pipeline (`vlmsearch-llm`, `vlmsearch-vlm`;
`vlmsearch` for the profile's default); the last user message is the question, with its image as an
`image_url` part (a data URL: the server fetches nothing). Earlier messages are the conversation: a
follow-up ("how long do they live?") is answered about what the last answer named, and about the
last image sent in any message. The answer comes back with its sources appended as numbered links,
which a later request's history is read back from."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict

from vlmsearch.engine import check_query
from vlmsearch.pipeline.types import Answer, AnswerEvent, TokenEvent
from vlmsearch.server.conversation import SOURCES_HEADING, from_messages, with_passage_texts
from vlmsearch.server.errors import ApiError, streamed_error
from vlmsearch.server.state import final_answer, require_key, state, stream_events

router = APIRouter(dependencies=[Depends(require_key)], tags=["openai"])


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens, ...: accepted, not used
    model: str = "vlmsearch"
    messages: list[ChatMessage]
    stream: bool = False
    # Structured outputs: {"type": "json_schema", "json_schema": {"name", "schema"}}, or llama.cpp's
    # {"type": "json_object", "schema": ...}; plain {"type": "json_object"}: the answer and its sources.
    response_format: dict[str, Any] | None = None


ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "sources": {"type": "array", "items": {"type": "string"}}},
    "required": ["answer", "sources"],
}


def _requested_schema(response_format: dict[str, Any] | None) -> dict | None:
    """The JSON Schema the reply must follow, or None for a text reply."""
    kind = (response_format or {}).get("type", "text")
    if kind == "text":
        return None
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise ApiError(400, "response_format json_schema needs json_schema.schema, a JSON Schema object", "bad_input")
        return schema
    if kind == "json_object":
        return response_format.get("schema") or ANSWER_SCHEMA
    raise ApiError(400, f"unknown response_format type {kind!r}; types: text, json_object, json_schema", "bad_input")


def _as_json(app, question: str, answer: Answer, schema: dict, base_url: str) -> str:
    """The answer as JSON following `schema`: the plain answer schema directly, any other filled
    from the question, the answer and its passages (null where they do not say)."""
    if schema is ANSWER_SCHEMA:
        return json.dumps({"answer": answer.answer, "sources": [f"{base_url}v1/passages/{c.id}" for c in answer.citations]}, ensure_ascii=False)
    return json.dumps(app.engine.answer_as_json(question, answer, schema).data, ensure_ascii=False)


def _pipeline(model: str) -> str | None:
    if model in ("vlmsearch", ""):
        return None
    if not model.startswith("vlmsearch-"):
        raise ApiError(404, f"unknown model {model!r}; models: vlmsearch, vlmsearch-llm, vlmsearch-vlm (GET /v1/models)")
    return model.removeprefix("vlmsearch-")


def sources_text(answer: Answer, base_url: str) -> str:
    if not answer.citations:
        return ""
    lines = [f"[{c.n}] [{c.source.rsplit('/', 1)[-1]}]({base_url}v1/passages/{c.id})" for c in answer.citations]
    return SOURCES_HEADING + "\n".join(lines)


def _conversation(body: ChatRequest, app):
    question, image, history = from_messages(body.messages, app.settings)
    return check_query(question), image, with_passage_texts(history, app.engine.store)


@router.post(
    "/v1/chat/completions", summary="OpenAI-compatible chat: the last user message (text + image) answered by a pipeline, earlier messages as the conversation"
)
async def chat_completions(request: Request, body: ChatRequest):
    app = state(request)
    # Off the event loop: decoding a large image takes a while, and other requests must not wait.
    question, image, history = await run_in_threadpool(_conversation, body, app)
    runner = app.engine.pipeline(_pipeline(body.model))
    schema = _requested_schema(body.response_format)
    if schema is not None and schema is not ANSWER_SCHEMA:
        from vlmsearch.extract import from_json_schema

        schema = from_json_schema(schema)  # a bad schema fails now, as a 400, before any model runs
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    base_url = str(request.base_url)

    async def content(answer: Answer) -> str:
        if schema is None:
            return answer.answer + sources_text(answer, base_url)
        return await run_in_threadpool(_as_json, app, question, answer, schema, base_url)

    if not body.stream:
        answer = await final_answer(request, runner.stream(question, image, history))
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": body.model,
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": await content(answer)}}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            }
        )

    def chunk(delta: dict, finish: str | None = None) -> str:
        data = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    async def chunks() -> AsyncIterator[str]:
        yield chunk({"role": "assistant", "content": ""})
        try:
            async for event in stream_events(request, runner.stream(question, image, history)):
                if isinstance(event, TokenEvent) and schema is None:
                    yield chunk({"content": event.text})
                elif isinstance(event, AnswerEvent):
                    # JSON comes whole at the end: a half-written object is no use to a parser.
                    tail = sources_text(event.answer, base_url) if schema is None else await content(event.answer)
                    yield chunk({"content": tail}, "stop")
        except Exception as exc:  # noqa: BLE001 (the stream is open: the error goes in it, in the usual shape)
            yield f"data: {json.dumps(streamed_error(exc))}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(chunks(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
