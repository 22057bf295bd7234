"""Ingest: files -> model outputs -> store records, in batches, idempotent by content hash.

Each batch is one store commit, so a killed run loses at most the batch in flight and a re-run
skips everything already stored. A bad file is reported with its reason and the run goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from vlmsearch.config import IngestSettings
from vlmsearch.errors import BadInputError, VlmsearchError
from vlmsearch.ingest.discover import Found, discover
from vlmsearch.ingest.report import Failure, IngestReport
from vlmsearch.ingest.work import (
    Document,
    DocumentSteps,
    ImageSteps,
    Picture,
    content_id,
    decode_picture,
    read_file,
)
from vlmsearch.knowledge.wordnet import WordNet
from vlmsearch.models.registry import Models
from vlmsearch.stores.protocol import Store


class Indexer:
    def __init__(self, models: Models, store: Store, settings: IngestSettings, wordnet: WordNet | None = None):
        self.models = models
        self.store = store
        self.settings = settings
        self.image_steps = ImageSteps(models, settings, wordnet)
        self.document_steps = DocumentSteps(models, settings)

    def run(self, paths: Sequence[Path], progress=None) -> IngestReport:
        """Index `paths`; `progress` is an optional rich Progress to show the work on."""
        started = time.perf_counter()
        report = IngestReport()
        files = self.files_to_index(paths, report)
        task = progress.add_task("indexing", total=len(files)) if progress else None
        images = [f for f in files if f.kind == "image"]
        documents = [f for f in files if f.kind == "document"]
        for kind, files, step in (("images", images, self._image_batch), ("documents", documents, self._document_batch)):
            for start in range(0, len(files), self.settings.batch_size):
                batch = files[start : start + self.settings.batch_size]
                if progress:
                    progress.update(task, description=f"indexing {kind}")
                self._isolated(step, batch, report)
                if progress:
                    progress.advance(task, len(batch))
        with self.timed(report, "index_update"):
            self.store.finalize()
        report.seconds = time.perf_counter() - started
        return report

    @staticmethod
    def files_to_index(paths: Sequence[Path], report: IngestReport) -> list[Found]:
        """The files to index under `paths`; what cannot be used goes in the report."""
        found = discover([Path(p) for p in paths])
        report.skipped = found.skipped
        report.failed.extend(Failure(p, why) for p, why in found.problems)
        return found.files

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
    def timed(self, report: IngestReport, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        report.stage_seconds[stage] += time.perf_counter() - start

    def read_new(self, paths: Sequence[Path], report: IngestReport, complete: Callable) -> list[tuple[Path, str, bytes]]:
        """Read and hash files; count those already stored whole (or repeated in this run) as unchanged."""
        read = []
        with self.timed(report, "read"):
            for path in paths:
                try:
                    data = read_file(path, self.settings.max_file_bytes)
                except (OSError, BadInputError) as exc:
                    report.failed.append(Failure(str(path), getattr(exc, "strerror", None) or str(exc)))
                    continue
                read.append((path, content_id(data), data))
            return self.fresh(read, report, complete)

    def fresh(self, read: list[tuple[Path, str, bytes | None]], report: IngestReport, complete: Callable) -> list:
        """Those of (path, content id, data) not stored whole and not repeated in this run (unchanged)."""
        fresh, seen = [], set(complete([cid for _, cid, _ in read]))
        for path, cid, data in read:
            if cid in seen:
                report.unchanged += 1
            else:
                seen.add(cid)
                fresh.append((path, cid, data))
        return fresh

    def known_complete_images(self, ids: Sequence[str]) -> set[str]:
        """Stored images that need nothing: known, and with a joint vector when the profile has a joint model."""
        known = self.store.known_image_ids(ids)
        return known - self.store.missing_joint(known) if self.models.has("image_text") else known

    def known_complete_docs(self, ids: Sequence[str]) -> set[str]:
        """Stored documents that need nothing: known, and with topics when the profile has a joint model."""
        known = self.store.known_doc_ids(ids)
        return known - self.store.docs_without_topics(known) if self.models.has("image_text") else known

    def decode_new(self, fresh: list[tuple[Path, str, bytes]], report: IngestReport) -> list[Picture]:
        """Pictures to work on; those stored without a joint vector are marked `joint_only` (no OCR again)."""
        stored = self.store.known_image_ids([cid for _, cid, _ in fresh]) if fresh else set()
        pictures = []
        with self.timed(report, "decode"):
            for path, cid, data in fresh:
                try:
                    pictures.append(decode_picture(path, cid, data, self.settings, joint_only=cid in stored))
                except BadInputError as exc:
                    report.failed.append(Failure(str(path), str(exc).removeprefix(f"{path}: ")))
        return pictures

    def read_documents(self, fresh: list[tuple[Path, str, bytes]], report: IngestReport) -> list[Document]:
        """Documents to work on; those stored without topics are marked `stored` (passages kept)."""
        stored = self.store.known_doc_ids([doc_id for _, doc_id, _ in fresh]) if fresh else set()
        documents = []
        for path, doc_id, data in fresh:
            try:
                documents.append(self.document_steps.read(path, doc_id, data, stored=doc_id in stored))
            except BadInputError as exc:
                report.failed.append(Failure(str(path), str(exc).removeprefix(f"{path}: ")))
        return documents

    def write_pictures(self, pictures: list[Picture], report: IngestReport) -> None:
        """One commit for the batch's new images, one for joint vectors of stored ones."""
        new = [p for p in pictures if not p.joint_only]
        with self.timed(report, "store_write"):
            if new:
                self.store.add_images([p.record() for p in new])
            if len(new) < len(pictures):
                self.store.set_joint({p.id: p.joint for p in pictures if p.joint_only})
        report.added += len(new)
        report.updated += len(pictures) - len(new)
        for picture in pictures:
            report.warnings += picture.warnings
            report.add_seconds(picture.seconds)

    def write_documents(self, documents: list[Document], report: IngestReport) -> None:
        """Passages first, one commit (a document's passages appear together), then topics: a crash in
        between leaves documents without topics, which the next run adds; a topic never points at
        passages that are not there."""
        new = [d for d in documents if not d.stored]
        passages = [record for d in new for record in d.passages()]
        with self.timed(report, "store_write"):
            if passages:
                self.store.add_passages(passages)
            self.store.add_topics([record for d in documents for record in d.topic_records()])
        report.added += len(new)
        report.updated += len(documents) - len(new)
        report.passages += len(passages)
        for document in documents:
            report.warnings += document.warnings
            report.add_seconds(document.seconds)

    def _image_batch(self, batch: Sequence[Found], report: IngestReport) -> None:
        pictures = self.decode_new(self.read_new([f.path for f in batch], report, self.known_complete_images), report)
        if pictures:
            self.image_steps.run(pictures)
            self.write_pictures(pictures, report)

    def _document_batch(self, batch: Sequence[Found], report: IngestReport) -> None:
        documents = self.read_documents(self.read_new([f.path for f in batch], report, self.known_complete_docs), report)
        if documents:
            self.document_steps.embed(documents)
            self.write_documents(documents, report)
