"""Typed records that cross module boundaries: what the store holds and what search returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Tag:
    label: str
    score: float
    synset: str | None = None  # WordNet id (e.g. n02124075) when the tagger's labels are synsets


@dataclass(frozen=True)
class InfoCard:
    """What we know about the thing an image shows, from a knowledge source."""

    title: str
    gloss: str
    hypernyms: tuple[str, ...] = ()
    synset: str | None = None
    source: str = "WordNet 3.0"

    def as_text(self) -> str:
        kinds = f" A kind of: {', '.join(self.hypernyms)}." if self.hypernyms else ""
        return f"{self.title}: {self.gloss}.{kinds}"


@dataclass(frozen=True)
class ImageRecord:
    id: str  # sha256 of the file's bytes
    path: str
    width: int
    height: int
    tags: tuple[Tag, ...]
    ocr_text: str
    card: InfoCard | None
    description: str  # tags + OCR + card (+ file name): what text search matches
    features: np.ndarray  # image embedder vector, L2-normalised (image -> image)
    text_vector: np.ndarray  # text embedding of `description` (dense half of text -> image)
    joint: np.ndarray | None = None  # joint image-text vector, when the profile has an image_text model
    caption: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PassageRecord:
    id: str  # f"{doc_id}:{position}"
    doc_id: str  # sha256 of the document's bytes
    source: str
    position: int  # chunk number within the document
    text: str
    vector: np.ndarray


@dataclass(frozen=True)
class TopicRecord:
    """What a stretch of a document is about (its heading, else the document's title), in the joint
    image-text space: an image can then find the documents about what it shows."""

    id: str  # f"{doc_id}:t{n}"
    doc_id: str
    source: str
    topic: str
    positions: tuple[int, ...]  # the passages (chunk numbers) under this topic
    joint: np.ndarray


@dataclass(frozen=True)
class TopicHit:
    id: str
    doc_id: str
    source: str
    topic: str
    positions: tuple[int, ...]
    score: float  # cosine similarity in the joint space


@dataclass(frozen=True)
class ImageHit:
    id: str
    path: str
    score: float
    tags: tuple[Tag, ...]
    ocr_text: str
    card: InfoCard | None
    caption: str = ""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["tags"] = [asdict(t) for t in self.tags]
        return out


@dataclass(frozen=True)
class PassageHit:
    id: str
    doc_id: str
    source: str
    position: int
    text: str
    score: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
