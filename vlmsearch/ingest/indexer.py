"""Ingest: files -> model outputs -> store records, in batches, idempotent by content hash.

Each batch is one store commit, so a killed run loses at most the batch in flight and a re-run
skips everything already stored. A bad file is reported with its reason and the run goes on.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vlmsearch.config import IngestSettings
from vlmsearch.errors import BadInputError, VlmsearchError
from vlmsearch.images import decode_image
from vlmsearch.ingest.discover import Found, discover
from vlmsearch.ingest.documents import (
    chunk_sections,
    extract_text,
    pdf_pages,
    scanned_page_images,
    title_of,
    topics,
)
from vlmsearch.knowledge.wordnet import WordNet
from vlmsearch.models.registry import Models
from vlmsearch.records import ImageRecord, InfoCard, PassageRecord, Tag, TopicRecord
from vlmsearch.stores.protocol import Store

_MIN_TAG_SCORE = 0.1  # weaker guesses would add noise to keyword search
# Images are kept at most this large for the models: a batch of full-size scans would hold gigabytes,
# and the tagger and embedders see 224-384 pixels, OCR's detector at most ~2000.
_MODEL_SIDE = 4096


@dataclass(frozen=True)
class Failure:
    path: str
    error: str


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0  # stored images and documents that gained joint vectors or topics
    unchanged: int = 0
    failed: list[Failure] = field(default_factory=list)
    skipped: int = 0  # files in folders with types we do not index
    warnings: list[Failure] = field(default_factory=list)  # indexed, but with something missing
    passages: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def merge(self, other: IngestReport) -> None:
        """Add a batch's counts (not its wall time: batches run inside this report's run)."""
        for name in ("added", "updated", "unchanged", "skipped", "passages"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed += other.failed
        self.warnings += other.warnings
        for stage, seconds in other.stage_seconds.items():
            self.stage_seconds[stage] += seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "failed": [asdict(f) for f in self.failed],
            "skipped": self.skipped,
            "warnings": [asdict(w) for w in self.warnings],
            "passages": self.passages,
            "seconds": round(self.seconds, 3),
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
        }


def content_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


class Indexer:
    def __init__(self, models: Models, store: Store, settings: IngestSettings, wordnet: WordNet | None = None):
        self.models = models
        self.store = store
        self.settings = settings
        self.wordnet = wordnet

    def run(self, paths: Sequence[Path], progress=None) -> IngestReport:
        """Index `paths`; `progress` is an optional rich Progress to show the work on."""
        started = time.perf_counter()
        report = IngestReport()
        found = discover([Path(p) for p in paths])
        report.skipped = found.skipped
        report.failed.extend(Failure(p, why) for p, why in found.problems)
        task = progress.add_task("indexing", total=len(found.files)) if progress else None
        images = [f for f in found.files if f.kind == "image"]
        documents = [f for f in found.files if f.kind == "document"]
        for kind, files, step in (("images", images, self._image_batch), ("documents", documents, self._document_batch)):
            for start in range(0, len(files), self.settings.batch_size):
                batch = files[start : start + self.settings.batch_size]
                if progress:
                    progress.update(task, description=f"indexing {kind}")
                self._isolated(step, batch, report)
                if progress:
                    progress.advance(task, len(batch))
        with self._timed(report, "index_update"):
            self.store.finalize()
        report.seconds = time.perf_counter() - started
        return report

    def _isolated(self, step, batch: Sequence[Found], report: IngestReport) -> None:
        """Run a batch; if something unforeseen breaks it, run its files one by one, so one strange file
        costs that file (named in `failed`), never the batch or the run. Counts come from the batch's
        own report, merged only when it finishes; the store stays consistent because each write is one
        commit made after all of its files' model work."""
        part = IngestReport()
        try:
            step(batch, part)
        except VlmsearchError:
            raise  # settings, missing weights, a model server down: every file would fail the same way
        except Exception as exc:  # noqa: BLE001 (see the docstring)
            if len(batch) > 1:
                for item in batch:
                    self._isolated(step, [item], report)
            else:
                report.failed.append(Failure(str(batch[0].path), f"could not be indexed ({type(exc).__name__}: {exc})"))
            return
        report.merge(part)

    @contextmanager
    def _timed(self, report: IngestReport, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        report.stage_seconds[stage] += time.perf_counter() - start

    def _read_new(self, batch: Sequence[Found], report: IngestReport, known) -> list[tuple[Found, str, bytes]]:
        """Read and hash files; count those already stored (or repeated in this run) as unchanged."""
        read = []
        with self._timed(report, "read"):
            for item in batch:
                try:
                    size = item.path.stat().st_size
                    if size > self.settings.max_file_bytes:
                        raise BadInputError(f"file is {size:,} bytes, over the limit of {self.settings.max_file_bytes:,}")
                    data = item.path.read_bytes()
                except (OSError, BadInputError) as exc:
                    report.failed.append(Failure(str(item.path), getattr(exc, "strerror", None) or str(exc)))
                    continue
                read.append((item, content_id(data), data))
            stored = known([cid for _, cid, _ in read])
        fresh, seen = [], set(stored)
        for item, cid, data in read:
            if cid in seen:
                report.unchanged += 1
            else:
                seen.add(cid)
                fresh.append((item, cid, data))
        return fresh

    def _image_batch(self, batch: Sequence[Found], report: IngestReport) -> None:
        decoded = []
        for item, cid, data in self._read_new(batch, report, self._known_complete_images):
            try:
                decoded.append((item, cid, decode_image(data, str(item.path), self.settings.max_image_pixels, _MODEL_SIDE)))
            except BadInputError as exc:
                report.failed.append(Failure(str(item.path), str(exc).removeprefix(f"{item.path}: ")))
        if not decoded:
            return
        stored = self.store.known_image_ids([cid for _, cid, _ in decoded])
        if stored:  # indexed before the joint model came: add its vector, keep the rest (no OCR again)
            self._add_joint([d for d in decoded if d[1] in stored], report)
            decoded = [d for d in decoded if d[1] not in stored]
            if not decoded:
                return
        pictures = [image for _, _, image in decoded]
        with self._timed(report, "tagger"):
            tags = self.models.tagger.tag(pictures, top_k=self.settings.top_tags)
        with self._timed(report, "features"):
            features = self.models.image_embedder.embed_images(pictures)
        joint = self._joint_vectors(pictures, report)
        with self._timed(report, "ocr"):
            ocr_texts = [self._ocr_text(item.path, image, report) for item, _, image in decoded]
        with self._timed(report, "info_cards"):
            cards = [self._card(t) for t in tags]
        descriptions = [
            describe(item.path, t, o, c, self.settings.index_file_names)
            for (item, _, _), t, o, c in zip(decoded, tags, ocr_texts, cards)
        ]
        with self._timed(report, "text_embedder"):
            text_vectors = self.models.text_embedder.embed_texts(descriptions)
        records = [
            ImageRecord(
                id=cid, path=str(item.path.resolve()), width=image.info["source_size"][0], height=image.info["source_size"][1],
                tags=tuple(tag_list), ocr_text=ocr, card=card, description=description,
                features=features[i], text_vector=text_vectors[i], joint=None if joint is None else joint[i],
                metadata={"file_name": item.path.name, "bytes": item.path.stat().st_size},
            )
            for i, ((item, cid, image), tag_list, ocr, card, description) in enumerate(
                zip(decoded, tags, ocr_texts, cards, descriptions)
            )
        ]  # fmt: skip
        with self._timed(report, "store_write"):
            self.store.add_images(records)
        report.added += len(records)

    def _known_complete_images(self, ids: Sequence[str]) -> set[str]:
        """Stored images that need nothing: known, and with a joint vector when the profile has a joint model."""
        known = self.store.known_image_ids(ids)
        return known - self.store.missing_joint(known) if self.models.has("image_text") else known

    def _joint_vectors(self, pictures, report: IngestReport):
        if not self.models.has("image_text"):
            return None
        with self._timed(report, "joint_embedder"):
            return self.models.image_text.embed_images(pictures)

    def _add_joint(self, decoded, report: IngestReport) -> None:
        vectors = self._joint_vectors([image for _, _, image in decoded], report)
        with self._timed(report, "store_write"):
            self.store.set_joint({cid: vector for (_, cid, _), vector in zip(decoded, vectors)})
        report.updated += len(decoded)

    def _ocr_text(self, path: Path, image, report: IngestReport) -> str:
        """OCR that fails on one image leaves that image without text, not the run without images."""
        try:
            return "\n".join(line.text for line in self.models.ocr.read(image))
        except Exception as exc:  # noqa: BLE001 (any engine error: the image is still worth indexing)
            report.warnings.append(Failure(str(path), f"OCR failed ({type(exc).__name__}: {exc}); indexed without text"))
            return ""

    def _card(self, tags: Sequence[Tag]) -> InfoCard | None:
        if not (self.wordnet and tags and tags[0].synset):
            return None
        return self.wordnet.card(tags[0].synset, title=tags[0].label)

    def _document_batch(self, batch: Sequence[Found], report: IngestReport) -> None:
        documents = []
        for item, doc_id, data in self._read_new(batch, report, self._known_complete_docs):
            try:
                text = self._document_text(item.path, data, report)
                chunks = chunk_sections(text, self.settings.chunk_chars, self.settings.chunk_overlap)
                if not chunks:
                    why = "no text layer and no page images OCR could read" if item.path.suffix.lower() == ".pdf" else "empty or only whitespace"
                    raise BadInputError(f"{item.path}: no text found ({why})")
                documents.append((item, doc_id, chunks))
            except BadInputError as exc:
                report.failed.append(Failure(str(item.path), str(exc).removeprefix(f"{item.path}: ")))
        if not documents:
            return
        stored = self.store.known_doc_ids([doc_id for _, doc_id, _ in documents])
        if stored:  # indexed before the joint model came: add its topics, keep the passages
            self._add_topics([d for d in documents if d[1] in stored], report)
            report.updated += len(stored)
            documents = [d for d in documents if d[1] not in stored]
            if not documents:
                return
        texts = [chunk for _, _, chunks in documents for _, chunk in chunks]
        with self._timed(report, "text_embedder"):
            vectors = iter(self.models.text_embedder.embed_texts(texts))
        records = [
            PassageRecord(f"{doc_id}:{n}", doc_id, str(item.path.resolve()), n, chunk, next(vectors))
            for item, doc_id, chunks in documents
            for n, (_, chunk) in enumerate(chunks)
        ]
        with self._timed(report, "store_write"):
            self.store.add_passages(records)  # one commit: a document's passages appear together
        self._add_topics(documents, report)
        report.added += len(documents)
        report.passages += len(records)

    def _document_text(self, path: Path, data: bytes, report: IngestReport) -> str:
        """A document's text; a PDF's pages without a text layer (scans) are read by OCR, up to
        `ingest.max_ocr_pages` of them."""
        with self._timed(report, "extract"):
            if path.suffix.lower() != ".pdf":
                return extract_text(path, data)
            pages = pdf_pages(path, data)
        scanned = [n for n, text in enumerate(pages) if not text.strip()]
        if not scanned:
            return "\n\n".join(pages)
        if len(scanned) > self.settings.max_ocr_pages:
            report.warnings.append(Failure(str(path), f"{len(scanned)} scanned pages; OCR read the first "
                                                      f"{self.settings.max_ocr_pages} (ingest.max_ocr_pages)"))  # fmt: skip
        with self._timed(report, "extract"):
            images = scanned_page_images(path, data, scanned[: self.settings.max_ocr_pages])
        with self._timed(report, "ocr"):
            for n, encoded in images.items():
                pictures = []
                for k, picture in enumerate(encoded):
                    try:
                        pictures.append(decode_image(picture, f"page {n + 1} image {k + 1}", self.settings.max_image_pixels, _MODEL_SIDE))
                    except BadInputError as exc:
                        report.warnings.append(Failure(str(path), f"{exc}; that image was not read"))
                pages[n] = "\n".join(self._ocr_text(path, picture, report) for picture in pictures)
        return "\n\n".join(pages)

    def _known_complete_docs(self, ids: Sequence[str]) -> set[str]:
        """Stored documents that need nothing: known, and with topics when the profile has a joint model."""
        known = self.store.known_doc_ids(ids)
        return known - self.store.docs_without_topics(known) if self.models.has("image_text") else known

    def _add_topics(self, documents, report: IngestReport) -> None:
        """Each document's topics (headings, else its title) in the joint space, so images can find them.

        Written after the passages: a crash in between leaves a document without topics, and the
        next run adds them (a topic never points at passages that are not there)."""
        if not self.models.has("image_text"):
            return
        found = [(item, doc_id, n, topic, positions)
                 for item, doc_id, chunks in documents
                 for n, (topic, positions) in enumerate(topics(chunks, title_of(item.path)))]  # fmt: skip
        with self._timed(report, "joint_embedder"):
            vectors = self.models.image_text.embed_texts([topic for *_, topic, _ in found])
        records = [
            TopicRecord(f"{doc_id}:t{n}", doc_id, str(item.path.resolve()), topic, positions, vector)
            for (item, doc_id, n, topic, positions), vector in zip(found, vectors)
        ]
        with self._timed(report, "store_write"):
            self.store.add_topics(records)
