"""The model work of ingest, one step per model, on batches of pictures and documents.

Shared by both engines: the single-process `Indexer` runs the steps one after another on each batch;
the Ray Data engine (`ray_engine.py`) runs each step as its own actor pool. A step fills in fields of
its items and notes its time and any warnings on them, so no report has to travel between processes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from vlmsearch.config import IngestSettings
from vlmsearch.errors import BadInputError
from vlmsearch.images import decode_image
from vlmsearch.ingest.documents import (
    chunk_sections,
    extract_text,
    pdf_pages,
    scanned_page_images,
    title_of,
    topics,
)
from vlmsearch.ingest.report import Failure
from vlmsearch.knowledge.wordnet import WordNet
from vlmsearch.models.registry import Models
from vlmsearch.records import ImageRecord, InfoCard, PassageRecord, Tag, TopicRecord

_MIN_TAG_SCORE = 0.1  # weaker guesses would add noise to keyword search
# Images are kept at most this large for the models: a batch of full-size scans would hold gigabytes,
# and the tagger and embedders see 224-384 pixels, OCR's detector at most ~2000.
MODEL_SIDE = 4096


def content_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_file(path: Path, max_bytes: int) -> bytes:
    """A file's bytes; OSError or BadInputError (over the size limit) otherwise."""
    size = path.stat().st_size
    if size > max_bytes:
        raise BadInputError(f"file is {size:,} bytes, over the limit of {max_bytes:,}")
    return path.read_bytes()


def describe(path: Path, tags: Sequence[Tag], ocr_text: str, card: InfoCard | None, file_names: bool) -> str:
    """The text that keyword and dense text->image search match for an image."""
    strong = [t.label for i, t in enumerate(tags) if i == 0 or t.score >= _MIN_TAG_SCORE]
    parts = [", ".join(strong)]
    if card:
        parts.append(card.as_text())
    if ocr_text:
        parts.append(f"Text: {ocr_text}")
    if file_names:
        parts.append(" ".join(path.stem.replace("_", " ").replace("-", " ").split()))
    return "\n".join(p for p in parts if p)


class _Item:
    warnings: list[Failure]
    seconds: dict[str, float]


@contextmanager
def timed(items: Sequence[_Item], stage: str) -> Iterator[None]:
    """Time a step and share it out over the batch's items (summed again in the report)."""
    start = time.perf_counter()
    yield
    share = (time.perf_counter() - start) / max(1, len(items))
    for item in items:
        item.seconds[stage] = item.seconds.get(stage, 0.0) + share


@dataclass
class Picture(_Item):
    """An image on its way through the models."""

    path: Path
    id: str
    image: Image.Image | None  # None once no step left needs the pixels (Ray: they need not travel on)
    size: tuple[int, int]  # in the file (the image may be reduced for the models)
    joint_only: bool = False  # stored already, indexed before the joint model: only its joint vector is new
    tags: tuple[Tag, ...] = ()
    card: InfoCard | None = None
    features: np.ndarray | None = None
    joint: np.ndarray | None = None
    ocr_text: str = ""
    description: str = ""
    text_vector: np.ndarray | None = None
    warnings: list[Failure] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def record(self) -> ImageRecord:
        return ImageRecord(
            id=self.id, path=str(self.path.resolve()), width=self.size[0], height=self.size[1], tags=self.tags,
            ocr_text=self.ocr_text, card=self.card, description=self.description, features=self.features,
            text_vector=self.text_vector, joint=self.joint,
            metadata={"file_name": self.path.name, "bytes": self.path.stat().st_size},
        )  # fmt: skip


def decode_picture(path: Path, id_: str, data: bytes, settings: IngestSettings, joint_only: bool = False) -> Picture:
    """BadInputError for what is not a usable image."""
    image = decode_image(data, str(path), settings.max_image_pixels, MODEL_SIDE)
    return Picture(path, id_, image, image.info["source_size"], joint_only)


class ImageSteps:
    """Tagger (+ info card), image embedders, OCR, then the description and its text vector."""

    STEPS = ("tag", "embed", "read_text", "describe")
    PIXEL_STEPS = frozenset({"tag", "embed", "read_text"})  # describe works from what these found

    def __init__(self, models: Models, settings: IngestSettings, wordnet: WordNet | None = None):
        self.models, self.settings, self.wordnet = models, settings, wordnet

    def run(self, pictures: list[Picture]) -> None:
        for step in self.STEPS:
            getattr(self, step)(pictures)

    def tag(self, pictures: list[Picture]) -> None:
        new = [p for p in pictures if not p.joint_only]
        if not new:
            return
        with timed(new, "tagger"):
            tags = self.models.tagger.tag([p.image for p in new], top_k=self.settings.top_tags)
        with timed(new, "info_cards"):
            for picture, found in zip(new, tags):
                picture.tags, picture.card = tuple(found), self._card(found)

    def embed(self, pictures: list[Picture]) -> None:
        new = [p for p in pictures if not p.joint_only]
        if new:
            with timed(new, "features"):
                for picture, vector in zip(new, self.models.image_embedder.embed_images([p.image for p in new])):
                    picture.features = vector
        if pictures and self.models.has("image_text"):
            with timed(pictures, "joint_embedder"):
                for picture, vector in zip(pictures, self.models.image_text.embed_images([p.image for p in pictures])):
                    picture.joint = vector

    def read_text(self, pictures: list[Picture]) -> None:
        for picture in pictures:
            if not picture.joint_only:
                with timed([picture], "ocr"):
                    picture.ocr_text = ocr_text(self.models, picture.path, picture.image, picture.warnings)

    def describe(self, pictures: list[Picture]) -> None:
        new = [p for p in pictures if not p.joint_only]
        if not new:
            return
        for p in new:
            p.description = describe(p.path, p.tags, p.ocr_text, p.card, self.settings.index_file_names)
        with timed(new, "text_embedder"):
            for picture, vector in zip(new, self.models.text_embedder.embed_texts([p.description for p in new])):
                picture.text_vector = vector

    def _card(self, tags: Sequence[Tag]) -> InfoCard | None:
        if not (self.wordnet and tags and tags[0].synset):
            return None
        return self.wordnet.card(tags[0].synset, title=tags[0].label)


def ocr_text(models: Models, path: Path, image: Image.Image, warnings: list[Failure]) -> str:
    """OCR that fails on one image leaves that image without text, not the run without images."""
    try:
        return "\n".join(line.text for line in models.ocr.read(image))
    except Exception as exc:  # noqa: BLE001 (any engine error: the image is still worth indexing)
        warnings.append(Failure(str(path), f"OCR failed ({type(exc).__name__}: {exc}); indexed without text"))
        return ""


@dataclass
class Document(_Item):
    """A document on its way to passages and topics."""

    path: Path
    id: str
    chunks: list[tuple[str | None, str]]  # (section heading, passage text)
    stored: bool = False  # passages stored already (indexed before the joint model): only topics are new
    vectors: np.ndarray | None = None
    topics: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    topic_vectors: np.ndarray | None = None
    warnings: list[Failure] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def passages(self) -> list[PassageRecord]:
        source = str(self.path.resolve())
        return [PassageRecord(f"{self.id}:{n}", self.id, source, n, chunk, vector)
                for n, ((_, chunk), vector) in enumerate(zip(self.chunks, self.vectors))]  # fmt: skip

    def topic_records(self) -> list[TopicRecord]:
        if self.topic_vectors is None:
            return []
        source = str(self.path.resolve())
        return [TopicRecord(f"{self.id}:t{n}", self.id, source, topic, positions, vector)
                for n, ((topic, positions), vector) in enumerate(zip(self.topics, self.topic_vectors))]  # fmt: skip


class DocumentSteps:
    """Text (a scanned PDF's pages by OCR), passages, their vectors, and topics in the joint space."""

    def __init__(self, models: Models, settings: IngestSettings):
        self.models, self.settings = models, settings

    def read(self, path: Path, id_: str, data: bytes, stored: bool = False) -> Document:
        """BadInputError when there is no text to index."""
        document = Document(path, id_, [], stored)
        text = self._text(document, data)
        document.chunks = chunk_sections(text, self.settings.chunk_chars, self.settings.chunk_overlap)
        if not document.chunks:
            why = "no text layer and no page images OCR could read" if path.suffix.lower() == ".pdf" else "empty or only whitespace"
            raise BadInputError(f"{path}: no text found ({why})")
        return document

    def embed(self, documents: list[Document]) -> None:
        new = [d for d in documents if not d.stored]
        if new:
            with timed(new, "text_embedder"):
                vectors = iter(self.models.text_embedder.embed_texts([chunk for d in new for _, chunk in d.chunks]))
                for document in new:
                    document.vectors = np.stack([next(vectors) for _ in document.chunks])
        if documents and self.models.has("image_text"):  # what each stretch is about, for images to find
            for document in documents:
                document.topics = topics(document.chunks, title_of(document.path))
            with timed(documents, "joint_embedder"):
                vectors = iter(self.models.image_text.embed_texts([t for d in documents for t, _ in d.topics]))
                for document in documents:
                    document.topic_vectors = np.stack([next(vectors) for _ in document.topics]) if document.topics else None

    def _text(self, document: Document, data: bytes) -> str:
        """A document's text; a PDF's pages without a text layer (scans) are read by OCR, up to
        `ingest.max_ocr_pages` of them."""
        path = document.path
        with timed([document], "extract"):
            if path.suffix.lower() != ".pdf":
                return extract_text(path, data)
            pages = pdf_pages(path, data)
        scanned = [n for n, text in enumerate(pages) if not text.strip()]
        if not scanned:
            return "\n\n".join(pages)
        limit = self.settings.max_ocr_pages
        if len(scanned) > limit:
            document.warnings.append(Failure(str(path), f"{len(scanned)} scanned pages; OCR read the first {limit} (ingest.max_ocr_pages)"))
        with timed([document], "extract"):
            images = scanned_page_images(path, data, scanned[:limit])
        with timed([document], "ocr"):
            for n, encoded in images.items():
                pictures = []
                for k, picture in enumerate(encoded):
                    try:
                        pictures.append(decode_image(picture, f"page {n + 1} image {k + 1}", self.settings.max_image_pixels, MODEL_SIDE))
                    except BadInputError as exc:
                        document.warnings.append(Failure(str(path), f"{exc}; that image was not read"))
                pages[n] = "\n".join(ocr_text(self.models, path, picture, document.warnings) for picture in pictures)
        return "\n\n".join(pages)
