"""Index jobs: `POST /v1/index` returns at once; one worker thread indexes, one job after another
(the store takes one writer), and `GET /v1/jobs/{id}` reports progress and per-file failures."""

from __future__ import annotations

import hashlib
import io
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from vlmsearch.errors import UnsupportedFileError, VlmsearchError

_IMAGE_SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}
_TEXT_SUFFIXES = {".md", ".markdown", ".txt"}


@dataclass
class Job:
    id: str
    state: str = "queued"  # queued | running | done | failed
    description: str = ""
    done: int = 0
    total: int | None = None
    files: int = 0
    report: dict[str, Any] | None = None  # the ingest report: added, unchanged, failed [{path, error}], ...
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Progress:
    """The part of rich's Progress that the indexer drives, recorded on the job for polling."""

    def __init__(self, job: Job):
        self.job = job

    def add_task(self, description: str, total: int | None = None, **_: Any) -> int:
        self.job.description, self.job.total, self.job.done = description, total, 0
        return 0

    def update(self, task: int, description: str | None = None, total: int | None = None, completed: int | None = None, **_: Any) -> None:
        if description is not None:
            self.job.description = description
        if total is not None:
            self.job.total = total
        if completed is not None:
            self.job.done = completed

    def advance(self, task: int, amount: int = 1) -> None:
        self.job.done += amount


def sniffed_suffix(data: bytes, name: str) -> str:
    """The file's type from its bytes, as the suffix ingest dispatches on; a name's suffix is only
    trusted to tell Markdown from plain text."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format in _IMAGE_SUFFIXES:
                return _IMAGE_SUFFIXES[image.format]
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        pass
    if data.startswith(b"%PDF-"):
        return ".pdf"
    if b"\x00" not in data[:8192]:
        try:
            text = data[:65536].decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(data[:65536]) - 4:  # not a multi-byte character cut at the sample's end
                raise UnsupportedFileError(f"{name}: neither an image, a PDF nor UTF-8 text") from None
            text = data[: exc.start].decode("utf-8")
        if re.match(r"\s*(<!doctype html|<html)", text, re.IGNORECASE):
            return ".html"
        suffix = Path(name).suffix.lower()
        return suffix if suffix in _TEXT_SUFFIXES else ".txt"
    raise UnsupportedFileError(f"{name}: neither an image, a PDF nor UTF-8 text")


def safe_name(name: str, data: bytes, suffix: str) -> str:
    """A stored upload's file name: the client's stem in plain characters (it becomes searchable text),
    a content hash (so two files called 'photo.jpg' do not collide), the sniffed suffix."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(name).stem)[:60].strip("-") or "upload"
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:12]}{suffix}"


class Jobs:
    def __init__(self, engine, settings):
        self.engine, self.settings = engine, settings
        self._jobs: dict[str, Job] = {}
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vlmsearch-index")

    @property
    def uploads(self) -> Path:
        from vlmsearch.stores import local_folder, parse_location

        settings = self.engine.settings
        location = parse_location(settings.store)
        name = location.path.name if location.path else location.name
        return self.settings.uploads or local_folder(location, settings.cache_dir) / f"{name}-uploads"

    def start(self, paths: list[Path], files: int) -> Job:
        job = Job(uuid.uuid4().hex[:12], files=files)
        self._jobs[job.id] = job
        self._worker.submit(self._run, job, paths)
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def _run(self, job: Job, paths: list[Path]) -> None:
        job.state = "running"
        try:
            job.report = self.engine.index(paths, progress=_Progress(job)).to_json()
            job.state = "done"
        except VlmsearchError as exc:
            job.state, job.error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 (the job reports it; the server goes on)
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            job.finished = time.time()

    def shutdown(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
