"""Held-out quality of any joint image-text space, from its vectors alone.

Text -> image: one query per group (its plain title); every image of the group counts as a hit.
Image -> text: each image ranks the group titles. Groups hold variants of one drawing, so a query
for 'star' is right on any star. The gallery keeps at most `per_group` images of a group, so one
huge group (1,378 stars in openclipart) cannot crowd out the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vlmsearch.joint.pairs import Pair
from vlmsearch.metrics import first_relevant_ranks, recall_and_mrr


def gallery(pairs: Sequence[Pair], per_group: int = 5) -> list[Pair]:
    kept: dict[str, int] = {}
    out = []
    for pair in sorted(pairs, key=lambda p: str(p.image)):
        if kept.get(pair.group, 0) < per_group:
            kept[pair.group] = kept.get(pair.group, 0) + 1
            out.append(pair)
    return out


def queries(pairs: Sequence[Pair]) -> list[Pair]:
    """One pair per group: the query text is its title."""
    return list({p.group: p for p in reversed(pairs)}.values())[::-1]


def retrieval_metrics(image_vectors: np.ndarray, pairs: Sequence[Pair], query_vectors: np.ndarray, query_pairs: Sequence[Pair]) -> dict[str, dict[str, float]]:
    """{'text_to_image': {...}, 'image_to_text': {...}} for images `pairs` and titles `query_pairs`."""
    relevant = np.array([[q.group == p.group for p in pairs] for q in query_pairs])  # (queries, images)
    scores = query_vectors @ image_vectors.T
    return {
        "text_to_image": recall_and_mrr(first_relevant_ranks(scores, relevant)),
        "image_to_text": recall_and_mrr(first_relevant_ranks(scores.T, relevant.T)),
    }


def zero_shot_accuracy(image_vectors: np.ndarray, pairs: Sequence[Pair], label_vectors: np.ndarray, labels: Sequence[str]) -> float:
    """Top-1 accuracy of naming each image's topic among `labels` (images without a topic are left out)."""
    known = [i for i, p in enumerate(pairs) if p.topic in labels]
    if not known:
        raise ValueError("no image has one of the labels as its topic")
    predicted = np.argmax(image_vectors[known] @ label_vectors.T, axis=1)
    return float(np.mean([labels[j] == pairs[i].topic for i, j in zip(known, predicted)]))
