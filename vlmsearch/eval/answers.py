"""Run a bucket through answer pipelines, with a cache: `vlmsearch eval answers` and `eval sbs` share it.

Answers are appended to <out>/answers/<profile>/<pipeline>.jsonl one item at a time, so a killed
run resumes where it stopped. An entry is reused only while its key matches: the item, the image's
bytes and the documents' contents (and, for a conversation's turn, the turns before it); anything
else changed asks again (`fresh` forces it). A conversation's turn is asked after the pipeline's own
answers to the turns before it, as a user would have them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vlmsearch.config import Settings
from vlmsearch.errors import BadInputError, VlmsearchError
from vlmsearch.eval.bucket.items import Bucket, BucketItem
from vlmsearch.eval.scoring import Scored, score


@dataclass(frozen=True)
class AnswerRecord:
    item: str
    pipeline: str
    key: str
    answer: str
    citations: tuple[dict, ...] = ()  # {"n", "source", "text"}
    ms: float | None = None
    trace: tuple[dict, ...] = field(default=(), compare=False)
    error: str | None = None

    @property
    def sources(self) -> list[str]:
        return [c["source"] for c in self.citations]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> AnswerRecord:
        return cls(**{**data, "citations": tuple(data.get("citations", ())), "trace": tuple(data.get("trace", ()))})


def docs_fingerprint(docs: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in docs.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(docs)}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()[:16]


def item_key(bucket: Bucket, item: BucketItem, docs: str) -> str:
    image = bucket.image_path(item)
    parts = [json.dumps(item.to_json(), sort_keys=True), hashlib.sha256(image.read_bytes()).hexdigest() if image else "", docs]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


class AnswerCache:
    def __init__(self, out: Path, profile: str):
        self.folder = out / "answers" / profile

    def path(self, pipeline: str) -> Path:
        return self.folder / f"{pipeline}.jsonl"

    def load(self, pipeline: str) -> dict[str, AnswerRecord]:
        """item id -> its latest record (later lines win)."""
        path = self.path(pipeline)
        if not path.is_file():
            return {}
        records = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = AnswerRecord.from_json(json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue  # a line torn by a kill: that item is simply asked again
            records[record.item] = record
        return records

    def append(self, record: AnswerRecord) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.path(record.pipeline).open("a", encoding="utf-8") as out:
            out.write(json.dumps(record.to_json(), ensure_ascii=False, default=str) + "\n")


@contextlib.contextmanager
def eval_engine(settings: Settings, docs: Path, store: Path | None = None, progress=None) -> Iterator:
    """An Engine whose store holds the bucket's documents: a temporary one, or `store` (kept, so a
    re-run indexes nothing new)."""
    from vlmsearch.engine import Engine

    if not docs.is_dir():
        raise BadInputError(f"{docs}: not a folder of documents (give --docs)")
    with tempfile.TemporaryDirectory(prefix="vlmsearch-eval-") as temporary:
        engine = Engine(settings.model_copy(update={"store": str(store or temporary)}))
        report = engine.index([docs], progress=progress)
        if report.failed and not (report.added or report.unchanged or report.updated):
            raise BadInputError(f"{docs}: no document could be indexed ({report.failed[0].path}: {report.failed[0].error})")
        yield engine


def collect_answers(
    settings: Settings, bucket: Bucket, docs: Path, pipelines: Sequence[str], out: Path,
    store: Path | None = None, fresh: bool = False, progress=None,
) -> dict[str, list[AnswerRecord]]:  # fmt: skip
    """Every item's answer from every pipeline, in bucket order. Cached answers are reused; models
    load and documents are indexed only when some answer is missing."""
    cache = AnswerCache(out, settings.profile.name)
    fingerprint = docs_fingerprint(docs) if docs.is_dir() else ""
    keys = _keys(bucket, fingerprint)
    found = {name: {} if fresh else cache.load(name) for name in pipelines}
    todo = {name: [i for i in bucket.items if i.id not in found[name] or found[name][i.id].key != keys[i.id]] for name in pipelines}
    if any(todo.values()):
        with eval_engine(settings, docs, store, progress) as engine:
            for name in pipelines:
                engine.pipeline(name)  # an unknown pipeline or a missing VLM fails now, not after an hour
            for name in pipelines:
                done = len(bucket.items) - len(todo[name])
                task = progress.add_task(f"answering ({name})", total=len(bucket.items), completed=done) if progress else None
                for item in todo[name]:
                    history = _history(bucket, item, found[name])
                    found[name][item.id] = _ask(engine, bucket, item, name, keys[item.id], history)
                    cache.append(found[name][item.id])
                    if progress:
                        progress.advance(task)
    return {name: [found[name][item.id] for item in bucket.items] for name in pipelines}


def _keys(bucket: Bucket, fingerprint: str) -> dict[str, str]:
    """Item id -> cache key; a conversation's turn also depends on every turn before it."""
    keys, chain = {}, {}
    for item in bucket.items:
        own = item_key(bucket, item, fingerprint)
        if item.conversation:
            own = chain[item.conversation] = hashlib.sha256(f"{chain.get(item.conversation, '')}{own}".encode()).hexdigest()[:16]
        keys[item.id] = own
    return keys


def _history(bucket: Bucket, item: BucketItem, answered: dict[str, AnswerRecord]) -> list:
    """The turns before this one, with the answers this pipeline gave them."""
    from vlmsearch.pipeline.types import Citation, Turn

    if not item.conversation or item.turn <= 1:
        return []
    earlier = [i for i in bucket.items if i.conversation == item.conversation and i.turn < item.turn]
    turns = []
    for before in sorted(earlier, key=lambda i: i.turn):
        record = answered.get(before.id)
        citations = tuple(Citation(c["n"], c["source"], c.get("text", "")) for c in record.citations) if record else ()
        turns.append(Turn(before.question, record.answer if record else "", citations, bucket.image_path(before)))
    return turns


def _ask(engine, bucket: Bucket, item: BucketItem, pipeline: str, key: str, history: Sequence = ()) -> AnswerRecord:
    start = time.perf_counter()
    try:
        answer = engine.ask(item.question, bucket.image_path(item), pipeline, history)
    except VlmsearchError as exc:  # one broken item is a wrong answer, not a stopped run
        return AnswerRecord(item.id, pipeline, key, "", ms=None, error=str(exc))
    ms = round(1000 * (time.perf_counter() - start), 1)
    citations = tuple({"n": c.n, "source": Path(c.source).name, "text": c.text} for c in answer.citations)
    trace = tuple(step.to_json() for step in answer.trace)
    return AnswerRecord(item.id, pipeline, key, answer.answer, citations, ms, trace)


def scored(bucket: Bucket, records: Sequence[AnswerRecord]) -> list[Scored]:
    by_id = {r.item: r for r in records}
    return [
        Scored(item, score(item, by_id[item.id].answer, by_id[item.id].sources), by_id[item.id].ms, shown_documents(by_id[item.id]))
        for item in bucket.items
        if item.id in by_id
    ]


def shown_documents(record: AnswerRecord) -> tuple[str, ...] | None:
    """The documents of the passages retrieval gave the generator, from the trace (None: no trace)."""
    steps = [step for step in record.trace if step.get("stage") == "retrieve"]
    if not steps:
        return None
    return tuple(Path(hit["source"]).name for step in steps for hit in step.get("output") or ())
