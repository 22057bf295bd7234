"""Reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009): score(d) = sum 1 / (k + rank)."""

from __future__ import annotations

from collections.abc import Sequence


def rrf_fuse(rankings: Sequence[Sequence[str]], k: int = 60, weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """Fuse ranked id lists (best first) into one list of (id, score), best first; ties keep first-seen
    order. `weights` scales each ranking's votes (weighted RRF); all 1 by default."""
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights or [1.0] * len(rankings)):
        for rank, doc_id in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])
