"""Ranking metrics shared by every retrieval evaluation (search, the joint heads, the rephraser): a base
module, so training packages measure themselves without importing the evaluation CLI's package."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CUTOFFS = (1, 5, 10)


def first_relevant_ranks(scores: np.ndarray, relevant: np.ndarray) -> list[int | None]:
    """1-based rank of the best-ranked relevant item per query row, or None when none is relevant.

    scores, relevant: (queries, items); higher scores rank first."""
    order = np.argsort(-scores, axis=1, kind="stable")
    hits = np.take_along_axis(relevant, order, axis=1)
    return [int(np.argmax(row)) + 1 if row.any() else None for row in hits]


def recall_and_mrr(ranks: Sequence[int | None], cutoffs: Sequence[int] = CUTOFFS) -> dict[str, float]:
    """Recall@K for each cutoff and MRR counted to the deepest cutoff (a miss scores 0)."""
    n = len(ranks)
    if not n:
        raise ValueError("no queries to score")
    found = [r for r in ranks if r is not None]
    out = {f"recall@{k}": sum(r <= k for r in found) / n for k in cutoffs}
    out["mrr"] = sum(1 / r for r in found if r <= max(cutoffs)) / n
    return out
