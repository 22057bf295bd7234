"""A conversation as a client sends it: the `history` of `POST /v1/ask` (JSON turns) and the
`messages` of `POST /v1/chat/completions`, read into the engine's typed turns within the limits.

The server keeps no conversation: the client sends it whole each time, as OpenAI's API has it."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import replace
from typing import Any

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vlmsearch.images import decode_image
from vlmsearch.pipeline.types import Citation, Turn
from vlmsearch.server.errors import ApiError
from vlmsearch.server.settings import ServerSettings

# What the chat endpoint appends to an answer: "\n\nSources:\n[1] [cats.md](http://.../v1/passages/<id>)".
SOURCES_HEADING = "\n\nSources:\n"
_SOURCE_LINE = re.compile(r"^\[(\d{1,2})\]\s+\[([^\]]*)\]\((?:[^)]*/v1/passages/([^)/\s]+))?[^)]*\)\s*$")


class CitationIn(BaseModel):
    model_config = ConfigDict(extra="ignore")  # what an earlier answer's JSON carried besides
    n: int = Field(ge=1, le=99)
    source: str = ""
    text: str = ""
    id: str = ""


class TurnIn(BaseModel):
    """One earlier turn, as `vlmsearch ask --json` or the page hands it back."""

    model_config = ConfigDict(extra="ignore")
    question: str
    answer: str = ""
    citations: list[CitationIn] = []
    image: str | None = Field(None, description="the image sent with that turn, as a data URL")


def data_url_image(url: str, max_bytes: int, max_pixels: int) -> Image.Image:
    if not url.startswith("data:"):
        raise ApiError(400, "an image must be a data URL (data:image/png;base64,...): the server fetches no URLs", "bad_input")
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise ApiError(400, "image data must be base64-encoded", "bad_input")
    if len(payload) * 3 // 4 > max_bytes:
        raise ApiError(413, f"the image is over the limit of {max_bytes:,} bytes")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "the image holds no valid base64", "bad_input") from None
    return decode_image(data, "image_url", max_pixels)


def check_size(turns: list[Turn], settings: ServerSettings) -> list[Turn]:
    """Refuse a conversation too long to be worth its prompt: by turns (400) and by text (413)."""
    if len(turns) > settings.max_turns:
        raise ApiError(400, f"the conversation has {len(turns)} earlier turns; the limit is {settings.max_turns}: start a new one", "bad_input")
    chars = sum(len(t.question) + len(t.answer) + sum(len(c.text) for c in t.citations) for t in turns)
    if chars > settings.max_history_chars:
        raise ApiError(413, f"the conversation's earlier turns hold {chars:,} characters; the limit is {settings.max_history_chars:,}")
    return turns


def read_history(raw: str | None, settings: ServerSettings) -> list[Turn]:
    """`history` of /v1/ask: a JSON list of turns, oldest first."""
    if not raw:
        return []
    if len(raw) > settings.max_history_chars + settings.max_upload_bytes * 2:  # text plus a couple of images
        raise ApiError(413, f"history is {len(raw):,} characters: over the conversation's limit")
    try:
        data = json.loads(raw)
        if not isinstance(data, list):
            raise ApiError(400, 'history must be a JSON list of turns: [{"question", "answer", "citations", "image"?}]', "bad_input")
        items = [TurnIn.model_validate(item) for item in data]
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"history is not valid JSON: {exc.msg} at character {exc.pos}", "bad_input") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ApiError(400, f"history turn {where}: {first['msg']}", "bad_input") from None
    if len(items) > settings.max_turns:  # before any image is decoded
        raise ApiError(400, f"the conversation has {len(items)} earlier turns; the limit is {settings.max_turns}: start a new one", "bad_input")
    turns = [
        Turn(
            question=item.question,
            answer=item.answer,
            citations=tuple(Citation(c.n, c.source, c.text, c.id) for c in item.citations),
            image=data_url_image(item.image, settings.max_upload_bytes, settings.max_image_pixels) if item.image else None,
        )
        for item in items
    ]
    return check_size(turns, settings)


def _content(content: str | list[dict[str, Any]] | None, settings: ServerSettings) -> tuple[str, Image.Image | None]:
    """A user message's text and its first image."""
    if content is None or isinstance(content, str):
        return content or "", None
    texts, image = [], None
    for part in content:
        if part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif part.get("type") == "image_url" and image is None:
            url = (part.get("image_url") or {}).get("url", "")
            image = data_url_image(url, settings.max_upload_bytes, settings.max_image_pixels)
    return " ".join(texts), image


def split_sources(answer: str) -> tuple[str, tuple[Citation, ...]]:
    """An earlier assistant message as the chat endpoint wrote it: the answer, and the citations its
    appended "Sources" block names (source file and passage id; the text is the store's to fill)."""
    text, _, block = answer.partition(SOURCES_HEADING)
    citations = []
    for line in block.splitlines():
        found = _SOURCE_LINE.match(line.strip())
        if found:
            citations.append(Citation(int(found.group(1)), found.group(2), "", found.group(3) or ""))
    return text.strip(), tuple(citations)


def with_passage_texts(turns: list[Turn], store) -> list[Turn]:
    """Citations that came back as links get their passage's text from the store: its heading
    names what an answer was about, which a follow-up's "it" stands for."""

    def filled(c: Citation) -> Citation:
        hit = store.passage(c.id) if c.id and not c.text else None
        return replace(c, text=hit.text, source=hit.source) if hit else c

    return [replace(t, citations=tuple(map(filled, t.citations))) for t in turns]


def from_messages(messages: list[Any], settings: ServerSettings) -> tuple[str, Image.Image | None, list[Turn]]:
    """OpenAI `messages` -> (the question: the last user message, its image, the earlier turns).
    A user message with no assistant reply after it is a turn without an answer; system messages
    are not ours to follow (vlmsearch has its own instructions)."""
    turns: list[Turn] = []
    pending: Turn | None = None
    chat = [m for m in messages if m.role in ("user", "assistant")]
    if not chat or chat[-1].role != "user":
        raise ApiError(400, "no question: the last message must be the user's (role 'user')", "bad_input")
    if len(chat) > 2 * settings.max_turns + 1:
        raise ApiError(400, f"the conversation has {len(chat)} messages; the limit is {2 * settings.max_turns + 1}: start a new one", "bad_input")
    for message in chat[:-1]:
        if message.role == "user":
            if pending is not None:
                turns.append(pending)
            question, image = _content(message.content, settings)
            pending = Turn(question, image=image)
        elif pending is not None:
            text = message.content if isinstance(message.content, str) else _content(message.content, settings)[0]
            answer, citations = split_sources(text or "")
            turns.append(Turn(pending.question, answer, citations, pending.image))
            pending = None
    if pending is not None:
        turns.append(pending)
    question, image = _content(chat[-1].content, settings)
    return question, image, check_size(turns, settings)
