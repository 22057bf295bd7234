"""The `openai` backend: any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, hosted)."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from PIL import Image

from vlmsearch.config import ModelSpec
from vlmsearch.errors import ConfigError, MissingDependencyError, ModelServerError
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
    parts: list[dict] = [{"type": "image_url", "image_url": {"url": image_data_url(im, max_image_side)}} for im in message.images]
    return parts + [{"type": "text", "text": message.text}]


class OpenAIChat:
    constrains_json = True  # the server's structured outputs (`response_format`)

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        accepts_images: bool = True,
        max_image_side: int | None = 1024,
        timeout: float = 300.0,
        json_format: str = "json_schema",
    ):
        """`json_format`: how the server is asked for JSON that follows a schema: "json_schema"
        (OpenAI, vLLM, llama.cpp's own server, Ollama) or "json_object" with a `schema` key
        (llama-cpp-python's server, which refuses the first)."""
        try:
            import openai
        except ImportError:
            raise MissingDependencyError("openai", "the OpenAI-compatible backend") from None
        if json_format not in ("json_schema", "json_object"):
            raise ConfigError(f"openai backend: json_format must be json_schema or json_object, not {json_format!r}")
        self.name, self.json_format = model, json_format
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
                **self._response_format(options.json_schema),
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

    def _response_format(self, schema: dict | None) -> dict:
        if schema is None:
            return {}
        if self.json_format == "json_object":
            return {"response_format": {"type": "json_object", "schema": schema}}
        return {"response_format": {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": True}}}


@register("openai", "chat", "generator", "vlm")
def _chat(spec: ModelSpec, cache_dir: Path):
    return OpenAIChat(spec.model, **spec.options)
