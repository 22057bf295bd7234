"""The store contract. Callers depend on this, so a distributed engine can replace the embedded one:
LanceDB (`lance.py`) and Milvus (`milvus.py`) both keep it, checked by one test suite run on each."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from vlmsearch.records import (
    ImageHit,
    ImageRecord,
    PassageHit,
    PassageRecord,
    TopicHit,
    TopicRecord,
)
from vlmsearch.stores.health import StoreHealth


class StoreInfo(BaseModel):
    """What a store's vectors mean; a store refuses to be opened with different embedders."""

    model_config = ConfigDict(frozen=True)
    schema_version: int = 1
    image_embedder: str
    image_dim: int
    text_embedder: str
    text_dim: int
    joint_embedder: str | None = None  # the image-text model of the `joint` column, if the profile has one
    joint_dim: int | None = None


@dataclass(frozen=True)
class TextImageWeights:
    """How much each signal counts in text -> image search: BM25 (scaled to the query's best match, so
    0-1), the cosine of the text embedding over tags, OCR and cards, and the joint embedding's cosine
    (the engine folds the joint model's logit scale into `joint`).

    Chosen for the offline profile's towers on the val split of openclipart plus photos (docs: the lab
    notebook); other towers: measure with `vlmsearch eval retrieval` and set `search.*_weight`.
    """

    keyword: float = 1.0
    text: float = 1.0
    joint: float = 1.0


class Store(Protocol):
    info: StoreInfo

    def known_image_ids(self, ids: Iterable[str]) -> set[str]: ...
    def known_doc_ids(self, doc_ids: Iterable[str]) -> set[str]: ...
    def count_missing_joint(self) -> int: ...
    def missing_joint(self, ids: Iterable[str]) -> set[str]:
        """Those of `ids` stored without a joint vector (indexed before the joint model came)."""
        ...

    def set_joint(self, vectors: dict[str, np.ndarray]) -> None:
        """Fill in joint vectors of stored images, leaving every other column as it is."""
        ...

    def add_images(self, records: Sequence[ImageRecord]) -> None:
        """All of `records` become visible together, or none do (a crash leaves no half batch)."""
        ...

    def add_passages(self, records: Sequence[PassageRecord]) -> None: ...
    def add_topics(self, records: Sequence[TopicRecord]) -> None:
        """What documents are about, in the joint space (ignored by a store without a joint model)."""
        ...

    def docs_without_topics(self, doc_ids: Iterable[str]) -> set[str]: ...

    def finalize(self) -> None:
        """Bring the search indices up to date after a batch of writes."""
        ...

    def count(self) -> dict[str, int]: ...
    def close(self) -> None: ...
    def check(self) -> StoreHealth:
        """Counts, broken or orphaned rows, index state (`vlmsearch doctor`)."""
        ...

    def repair(self) -> StoreHealth:
        """Delete the rows `check` calls broken, so that `index` can add them back whole; rebuild indices."""
        ...

    def images_by_vector(self, vector: np.ndarray, k: int, where: str | None = None) -> list[ImageHit]: ...
    def images_by_text(
        self, text: str, vector: np.ndarray, k: int, where: str | None = None,
        joint_vector: np.ndarray | None = None, weights: TextImageWeights | None = None,
    ) -> list[ImageHit]:  # fmt: skip
        """Hybrid text -> image search: BM25 and dense matching of tags, OCR text and cards, plus the query
        in the joint image-text space (`joint_vector`) if any, scored by a weighted sum (`weights`)."""
        ...

    def passages(self, text: str, vector: np.ndarray, k: int, where: str | None = None) -> list[PassageHit]: ...
    def topics_by_joint(self, vector: np.ndarray, k: int) -> list[TopicHit]: ...
    def image(self, image_id: str) -> ImageHit | None: ...
    def passage(self, passage_id: str) -> PassageHit | None: ...
    def passages_at(self, doc_id: str, positions: Sequence[int]) -> list[PassageHit]: ...
