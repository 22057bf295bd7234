"""One small protocol per model role, one required method each; capabilities are attributes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict

from vlmsearch.records import Tag


@dataclass(frozen=True)
class OcrLine:
    text: str
    score: float
    box: tuple[tuple[float, float], ...] = ()  # corner points, in pixels


@dataclass(frozen=True)
class Message:
    """One chat turn: text plus any images (only models with `accepts_images` take images)."""

    role: Literal["system", "user", "assistant"]
    text: str
    images: tuple[Image.Image, ...] = field(default=())


class GenerationOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    max_tokens: int = 512
    temperature: float = 0.0  # greedy by default: answers should be reproducible
    stop: tuple[str, ...] = ()
    # A JSON Schema the reply must follow: backends with `constrains_json` decode under it (a grammar,
    # or the server's structured outputs); others are asked for it and checked (models/structured.py).
    json_schema: dict | None = None


@runtime_checkable
class Tagger(Protocol):
    name: str

    def tag(self, images: Sequence[Image.Image], top_k: int = 5) -> list[list[Tag]]: ...


@runtime_checkable
class ImageEmbedder(Protocol):
    name: str
    dim: int

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, dim) float32, L2-normalised: dot product is cosine similarity."""
        ...


@runtime_checkable
class TextEmbedder(Protocol):
    name: str
    dim: int

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised."""
        ...


@runtime_checkable
class ImageTextEmbedder(Protocol):
    """Images and texts in one space (CLIP, SigLIP, our trained heads): text -> image search, zero-shot tags."""

    name: str
    dim: int
    sigmoid: bool  # SigLIP-style: labels scored independently; else a softmax over the labels
    logit_scale: float  # similarity -> logit
    logit_bias: float

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised, comparable with embed_images."""
        ...


def label_scores(model: ImageTextEmbedder, image_vectors: np.ndarray, label_vectors: np.ndarray) -> np.ndarray:
    """(images, labels) scores in [0, 1]: sigmoid probabilities, or a softmax over the labels."""
    logits = model.logit_scale * image_vectors @ label_vectors.T
    if model.sigmoid:
        return 1 / (1 + np.exp(-(logits + model.logit_bias)))
    scores = np.exp(logits - logits.max(axis=1, keepdims=True))
    return scores / scores.sum(axis=1, keepdims=True)


def top_tags(scores: np.ndarray, labels: Sequence[str], synsets: Sequence[str | None], top_k: int) -> list[list[Tag]]:
    out = []
    for row in scores:
        best = np.argsort(-row, kind="stable")[:top_k]
        out.append([Tag(labels[i], float(row[i]), synsets[i]) for i in best])
    return out


@runtime_checkable
class OCR(Protocol):
    name: str

    def read(self, image: Image.Image) -> list[OcrLine]: ...


@runtime_checkable
class ChatModel(Protocol):
    """Optional capability: `constrains_json = True` when `GenerationOptions.json_schema` constrains
    decoding (read with getattr: a model without the attribute does not)."""

    name: str
    accepts_images: bool

    def stream(self, messages: Sequence[Message], options: GenerationOptions = GenerationOptions()) -> Iterator[str]:
        """Yield the reply's text piece by piece."""
        ...


def complete(model: ChatModel, messages: Sequence[Message], options: GenerationOptions = GenerationOptions()) -> str:
    """The whole reply at once."""
    return "".join(model.stream(messages, options))


def check_images_allowed(model: ChatModel, messages: Sequence[Message]) -> None:
    from vlmsearch.errors import ConfigError

    if not model.accepts_images and any(m.images for m in messages):
        raise ConfigError(f"chat model {model.name!r} reads text only; use a VLM for messages with images")
