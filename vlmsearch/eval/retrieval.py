"""Text -> image retrieval quality on a user's own data: Recall@K and MRR.

The images are indexed into a temporary store with one model load. File names are left out of the
searchable text by default: in many collections (openclipart, for one) the file name *is* the
query, which would inflate every number."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vlmsearch.config import Settings
from vlmsearch.errors import BadInputError
from vlmsearch.metrics import CUTOFFS, recall_and_mrr


@dataclass(frozen=True)
class RetrievalReport:
    recall: dict[int, float]  # cutoff -> share of queries whose target is in the top K
    mrr: float  # mean reciprocal rank (0 when the target is not in the top max(CUTOFFS))
    n: int
    indexed: int

    def to_json(self) -> dict[str, float | int]:
        return {**{f"recall@{k}": round(v, 4) for k, v in self.recall.items()}, "mrr": round(self.mrr, 4), "n": self.n}


def load_queries(path: Path) -> list[tuple[str, str]]:
    """(query, target file name) pairs from JSONL lines {"query": ..., "target": ...}."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read queries ({exc.strerror or exc})") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            query, target = str(item["query"]).strip(), Path(str(item["target"])).name
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise BadInputError(f'{path}:{number}: expected {{"query": text, "target": file name}} ({exc})') from None
        if not query:
            raise BadInputError(f"{path}:{number}: empty query")
        pairs.append((query, target))
    if not pairs:
        raise BadInputError(f"{path}: no queries")
    return pairs


def rank_of(target: str, paths: list[str]) -> int | None:
    """1-based rank of the hit whose file name is `target`, or None."""
    return next((i for i, p in enumerate(paths, 1) if Path(p).name == target), None)


def evaluate_text_to_image(settings: Settings, images: Path, queries: list[tuple[str, str]], file_names: bool = False, progress=None) -> RetrievalReport:
    from vlmsearch.engine import Engine

    if not images.is_dir():
        raise BadInputError(f"{images}: not a folder of images")
    present = {p.name for p in images.rglob("*") if p.is_file()}
    missing = sorted({t for _, t in queries} - present)
    if missing:
        raise BadInputError(f"targets not found in {images}: {', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}")
    with tempfile.TemporaryDirectory(prefix="vlmsearch-eval-") as store:
        ingest = settings.ingest.model_copy(update={"index_file_names": file_names})
        engine = Engine(settings.model_copy(update={"store": str(store), "ingest": ingest}))
        indexed = engine.index([images], progress=progress)
        task = progress.add_task("searching", total=len(queries)) if progress else None
        ranks = []
        for query, target in queries:
            ranks.append(rank_of(target, [h.path for h in engine.search_images(query, k=max(CUTOFFS))]))
            if progress:
                progress.advance(task)
    metrics = recall_and_mrr(ranks, CUTOFFS)
    return RetrievalReport(
        recall={k: metrics[f"recall@{k}"] for k in CUTOFFS},
        mrr=metrics["mrr"],
        n=len(ranks),
        indexed=indexed.added + indexed.unchanged,
    )
