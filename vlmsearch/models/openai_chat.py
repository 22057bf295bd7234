"""The `openai` backend: any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, hosted)."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from PIL import Image

from vlmsearch.config import ModelSpec
from vlmsearch.errors import MissingDependencyError, ModelServerError
from vlmsearch.models.protocols import GenerationOptions, Message, check_images_allowed
from vlmsearch.models.registry import register


def image_data_url(image: Image.Image, max_side: int | None = 1024) -> str:
    """A JPEG data URL, shrunk to `max_side`: servers resize anyway, and a full photo as base64 is megabytes."""
    image = image.convert("RGB")
    if max_side and max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _content(message: Message, max_image_side: int | None) -> str | list[dict]:
    if not message.images:
        return message.text
    parts: list[dict] = [
        {"type": "image_url", "image_url": {"url": image_data_url(im, max_image_side)}} for im in message.images
    ]
    return parts + [{"type": "text", "text": message.text}]


class OpenAIChat:
    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        accepts_images: bool = True,
        max_image_side: int | None = 1024,
        timeout: float = 300.0,
    ):
        try:
            import openai
        except ImportError:
            raise MissingDependencyError("openai", "the OpenAI-compatible backend") from None
        self.name = model
        self.accepts_images = accepts_images
        self.max_image_side = max_image_side
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        # Local servers ignore the key, but the client insists on one.
        key = api_key or os.environ.get("OPENAI_API_KEY") or "unused"
        self._client = openai.OpenAI(base_url=self.base_url, api_key=key, timeout=timeout, max_retries=1)

    def stream(self, messages: Sequence[Message], options: GenerationOptions = GenerationOptions()) -> Iterator[str]:
        import openai

        check_images_allowed(self, messages)
        try:
            chunks = self._client.chat.completions.create(
                model=self.name,
                messages=[{"role": m.role, "content": _content(m, self.max_image_side)} for m in messages],
                max_tokens=options.max_tokens,
                temperature=options.temperature,
                stop=list(options.stop) or None,
                stream=True,
            )
            finished = False
            for chunk in chunks:
                if chunk.choices:
                    if chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content
                    finished = finished or chunk.choices[0].finish_reason is not None
            if not finished:  # some servers (llama.cpp) end the stream silently on errors
                raise ModelServerError(
                    f"model server {self.base_url} ended the stream without finishing the reply "
                    "(prompt too long for its context, or the server failed: see its log)"
                )
        except openai.APIConnectionError as exc:
            raise ModelServerError(f"cannot reach the model server at {self.base_url}: {exc}") from None
        except openai.APIStatusError as exc:
            raise ModelServerError(f"model server {self.base_url} answered {exc.status_code}: {exc.message}") from None


@register("openai", "chat", "generator", "vlm")
def _chat(spec: ModelSpec, cache_dir: Path):
    return OpenAIChat(spec.model, **spec.options)
