"""`vlmsearch index --engine ray`: the ingest as a Ray Data pipeline, an actor pool per model.

1. Plan: Ray tasks read and hash every file; the driver drops what the store already holds whole,
   as the single-process indexer does, so a re-run or a resumed run does no model work twice.
2. Work: images stream through decoding (tasks), then actor pools that each load their model once:
   vision (tagger, image embedder and joint heads, which share one network pass in the offline
   profile), OCR (the costly one: its pool grows with the cluster), and the text embedder.
   Documents go through one pool (text, OCR of scans, passage and topic vectors). Ray Data streams
   batches between the pools with backpressure, so memory stays bounded on any collection size.
3. Write: the driver commits each finished batch to the store with the indexer's own writes (one
   commit per batch, passages before topics). Workers never touch the store, so it can be one
   Milvus Lite file or a LanceDB folder on the driver's disk; store writes are ~1% of ingest time.

Work steps are the ones the single-process indexer runs (`work.py`), so both engines store the same rows.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vlmsearch.config import Settings
from vlmsearch.errors import (
    BadInputError,
    ConfigError,
    MissingDependencyError,
    VlmsearchError,
)
from vlmsearch.ingest.indexer import Indexer
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

# The image pools: (ImageSteps steps an actor runs, share of the cluster's cores its pool may grow to).
# Vision (tagger, image embedder, joint heads: one network pass), OCR (the costly one), text embedder.
# Every actor asks for a quarter core, so all pools fit on a small machine; Ray gives each one thread.
_IMAGE_POOLS = ((("tag", "embed"), 0.25), (("read_text",), 1.0), (("describe",), 0.25))


def _objects(items: Sequence) -> np.ndarray:
    column = np.empty(len(items), dtype=object)  # not np.array(items): it would look inside the items
    column[:] = list(items)
    return column


def _hash_files(batch: dict[str, np.ndarray], max_bytes: int) -> dict[str, np.ndarray]:
    """Content ids, or why a file cannot be read (the plan's task, run where the files are)."""
    ids, errors = [], []
    for path in batch["path"]:
        try:
            ids.append(content_id(read_file(Path(path), max_bytes)))
            errors.append("")
        except (OSError, BadInputError) as exc:
            ids.append("")
            errors.append(getattr(exc, "strerror", None) or str(exc))
    return {"path": batch["path"], "id": np.array(ids), "error": np.array(errors)}


def _failure(path, exc: Exception) -> Failure:
    """A file's failure in the words the local engine uses for it."""
    if isinstance(exc, (OSError, BadInputError)):
        return Failure(str(path), str(getattr(exc, "strerror", None) or exc).removeprefix(f"{path}: "))
    return Failure(str(path), f"could not be indexed ({type(exc).__name__}: {exc})")


def _each_alone_if_broken(items: list, work) -> list:
    """`work(items)`; if something unforeseen breaks the batch, each item alone, so that a strange
    file costs only itself (a Failure in its place), as in the local engine (`Indexer._isolated`)."""
    try:
        work(items)
        return items
    except VlmsearchError:
        raise  # settings, missing weights, a model server down: every file would fail the same way
    except Exception as exc:  # noqa: BLE001 (see the docstring)
        if len(items) == 1:
            return [_failure(items[0].path, exc)]
    return [done for item in items for done in _each_alone_if_broken([item], work)]


def _one_file(path, make):
    """`make()` for one file, or that file's Failure; errors of the setting (a missing model) stop the run."""
    try:
        return make()
    except (OSError, BadInputError) as exc:
        return _failure(path, exc)
    except VlmsearchError:
        raise
    except Exception as exc:  # noqa: BLE001 (one strange file costs only itself)
        return _failure(path, exc)


def _decode(batch: dict[str, np.ndarray], settings: Settings) -> dict[str, np.ndarray]:
    limit = settings.ingest.max_file_bytes
    return {"item": _objects([
        _one_file(path, lambda: decode_picture(Path(path), id_, read_file(Path(path), limit), settings.ingest, bool(joint_only)))
        for path, id_, joint_only in zip(batch["path"], batch["id"], batch["joint_only"])
    ])}  # fmt: skip


def _quiet_worker() -> None:
    os.environ.setdefault("TQDM_DISABLE", "1")
    from vlmsearch.models.hf import quiet_transformers

    quiet_transformers()


class _ImagePool:
    """One actor: its model(s) load on first use and stay for every batch it is given."""

    def __init__(self, settings: Settings, steps: tuple[str, ...], keep_pixels: bool):
        from vlmsearch.knowledge.wordnet import DEFAULT_DATA_NOUN, WordNet
        from vlmsearch.models.registry import Models

        _quiet_worker()
        wordnet = WordNet() if "tag" in steps and DEFAULT_DATA_NOUN.is_file() else None
        self.work, self.steps = ImageSteps(Models(settings.profile, settings.cache_dir), settings.ingest, wordnet), steps
        self.keep_pixels = keep_pixels  # whether a later pool needs them

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        failed = [item for item in batch["item"] if isinstance(item, Failure)]  # they pass through
        pictures = [item for item in batch["item"] if isinstance(item, Picture)]
        return {"item": _objects(failed + _each_alone_if_broken(pictures, self._run))}

    def _run(self, pictures: list[Picture]) -> None:
        for step in self.steps:
            getattr(self.work, step)(pictures)
        if not self.keep_pixels:
            for picture in pictures:
                picture.image = None


class _DocumentPool:
    def __init__(self, settings: Settings):
        from vlmsearch.models.registry import Models

        _quiet_worker()
        self.settings = settings
        self.work = DocumentSteps(Models(settings.profile, settings.cache_dir), settings.ingest)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        limit = self.settings.ingest.max_file_bytes
        items = [
            _one_file(path, lambda: self.work.read(Path(path), id_, read_file(Path(path), limit), stored=bool(stored)))
            for path, id_, stored in zip(batch["path"], batch["id"], batch["stored"])
        ]
        failed = [item for item in items if isinstance(item, Failure)]
        documents = [item for item in items if not isinstance(item, Failure)]
        return {"item": _objects(failed + _each_alone_if_broken(documents, self.work.embed))}


def start_ray(address: str | None):
    """Ray, started here (or joined at `address`) before any store is opened: Ray forks its
    processes, and a gRPC client already running (Milvus) would complain at every fork."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("vlmsearch[scale]", "--engine ray") from None
    # Ray Data keeps actors' constructor arguments in the object store and its core worker logs an
    # error line about restarts for every pool; real failures still reach us as exceptions.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    if not ray.is_initialized():
        options = {"address": address} if address else {"num_cpus": os.cpu_count()}
        try:
            ray.init(**options, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        except ConnectionError as exc:
            raise ConfigError(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False  # ours (rich) shows the run; Ray's would interleave with it
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    return ray


def index_with_ray(indexer: Indexer, settings: Settings, paths: Sequence[Path], address: str | None = None,
                   progress=None) -> IngestReport:  # fmt: skip
    """Index `paths` into `indexer.store` with Ray Data; `address`: None (a local Ray on this
    machine), "auto" (the cluster this machine is part of) or "ray://head:10001"."""
    ray = start_ray(address)
    started = time.perf_counter()
    report = IngestReport()
    files = indexer.files_to_index(paths, report)
    task = progress.add_task("indexing (ray: reading)", total=len(files)) if progress else None
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))

    images, documents = _plan(ray, indexer, settings, files, report)
    if progress:
        # Until the first batch is done, the actors are starting and loading their models (~20 s here).
        progress.update(task, description="indexing (ray: loading models)", completed=len(files) - len(images) - len(documents))
    streams = [stream for stream in (_image_stream(ray, images, settings, cpus), _document_stream(ray, documents, settings, cpus)) if stream]
    if streams:  # images and documents side by side, in one stream; each batch is written as it is done
        stream = streams[0].union(*streams[1:]) if len(streams) > 1 else streams[0]
        for done in stream.iter_batches(batch_size=None, batch_format="numpy"):
            items = list(done["item"])
            report.failed += [item for item in items if isinstance(item, Failure)]
            indexer.write_pictures([item for item in items if isinstance(item, Picture)], report)
            indexer.write_documents([item for item in items if isinstance(item, Document)], report)
            if progress:
                progress.update(task, description="indexing (ray)", advance=len(items))
    with indexer.timed(report, "index_update"):
        indexer.store.finalize()
    report.seconds = time.perf_counter() - started
    return report


def _image_stream(ray, rows: list[dict], settings: Settings, cpus: int):
    """Decoding, then one actor pool per model; each pool may grow to its share of the cluster's cores."""
    if not rows:
        return None
    batch = settings.ingest.batch_size
    stream = ray.data.from_items(rows).map_batches(_decode, fn_kwargs={"settings": settings}, batch_size=batch, num_cpus=0.25)
    for i, (steps, share) in enumerate(_IMAGE_POOLS):
        keep_pixels = any(ImageSteps.PIXEL_STEPS & set(later) for later, _ in _IMAGE_POOLS[i + 1 :])
        stream = stream.map_batches(
            _ImagePool, fn_constructor_kwargs={"settings": settings, "steps": steps, "keep_pixels": keep_pixels},
            batch_size=batch, num_cpus=0.25, compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, int(cpus * share))),
        )  # fmt: skip
    return stream


def _document_stream(ray, rows: list[dict], settings: Settings, cpus: int):
    if not rows:
        return None
    return ray.data.from_items(rows).map_batches(
        _DocumentPool, fn_constructor_kwargs={"settings": settings}, batch_size=settings.ingest.batch_size, num_cpus=0.25,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, cpus // 2)),
    )  # fmt: skip


def _plan(ray, indexer: Indexer, settings: Settings, files, report: IngestReport) -> tuple[list[dict], list[dict]]:
    """Hash every file on the cluster, then keep what the store lacks: (image rows, document rows)."""
    if not files:
        return [], []
    hashed = ray.data.from_items([{"path": str(f.path)} for f in files]).map_batches(
        _hash_files, fn_kwargs={"max_bytes": settings.ingest.max_file_bytes}, batch_size=256, num_cpus=0.25,
    ).take_all()  # fmt: skip
    ids = {row["path"]: (row["id"], row["error"]) for row in hashed}
    rows: dict[str, list[tuple[Path, str, None]]] = {"image": [], "document": []}
    for f in files:
        id_, error = ids[str(f.path)]
        if error:
            report.failed.append(Failure(str(f.path), error))
        else:
            rows[f.kind].append((f.path, id_, None))
    with indexer.timed(report, "read"):
        images = indexer.fresh(rows["image"], report, indexer.known_complete_images)
        documents = indexer.fresh(rows["document"], report, indexer.known_complete_docs)
    stored_images = indexer.store.known_image_ids([id_ for _, id_, _ in images]) if images else set()
    stored_docs = indexer.store.known_doc_ids([id_ for _, id_, _ in documents]) if documents else set()
    return (
        [{"path": str(p), "id": i, "joint_only": i in stored_images} for p, i, _ in images],
        [{"path": str(p), "id": i, "stored": i in stored_docs} for p, i, _ in documents],
    )
