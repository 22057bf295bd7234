"""What every store does the same way, on a few primitives each backend provides.

A backend (LanceDB, Milvus) implements dense search, keyword (BM25) search, rows by id and a scan of
a table; the public reads, the hybrid fusion, `doctor` and `store copy` are written once, here, so
the backends cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from vlmsearch.errors import ConfigError
from vlmsearch.records import (
    ImageHit,
    ImageRecord,
    InfoCard,
    PassageHit,
    PassageRecord,
    Tag,
    TopicHit,
    TopicRecord,
)
from vlmsearch.stores.doctor import Doctoring
from vlmsearch.stores.health import IndexState
from vlmsearch.stores.protocol import StoreInfo, TextImageWeights
from vlmsearch.stores.rrf import rrf_fuse
from vlmsearch.stores.tables import IMAGES, KEYWORD_COLUMN, PASSAGES, TOPICS, VECTOR_COLUMNS  # noqa: F401 (re-exported)

Row = dict[str, Any]  # a table row: scalar columns; vectors only where a scan asks for them


def refuse_other_embedders(location: str, stored: StoreInfo, info: StoreInfo) -> None:
    """Vectors of other embedders mean nothing to this profile's queries: refuse, and say why."""
    if (stored.image_embedder, stored.text_embedder) != (info.image_embedder, info.text_embedder):
        raise ConfigError(
            f"store {location} was built with image embedder {stored.image_embedder!r} and text embedder "
            f"{stored.text_embedder!r}, but this profile uses {info.image_embedder!r} and "
            f"{info.text_embedder!r}: use the profile it was built with, or another --store"
        )


def card_from_json(text: str | None) -> InfoCard | None:
    if not text:
        return None
    data = json.loads(text)
    return InfoCard(**{**data, "hypernyms": tuple(data.get("hypernyms", ()))})


def card_to_json(card: InfoCard | None) -> str | None:
    return json.dumps(card.__dict__) if card else None


def image_hit(row: Row, score: float) -> ImageHit:
    return ImageHit(
        id=row["id"], path=row["path"], score=float(score),
        tags=tuple(Tag(t["label"], float(t["score"]), t.get("synset")) for t in row["tags"] or ()),
        ocr_text=row["ocr_text"] or "", card=card_from_json(row["card"]), caption=row["caption"] or "",
    )  # fmt: skip


def passage_hit(row: Row, score: float) -> PassageHit:
    return PassageHit(**{f: row[f] for f in ("id", "doc_id", "source", "position", "text")}, score=float(score))


def _vector(value) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float32)


def record(table: str, row: Row) -> ImageRecord | PassageRecord | TopicRecord:
    """A scanned row (all columns) as the record that wrote it (`store copy`, `doctor`)."""
    if table == IMAGES:
        tags = tuple(Tag(t["label"], float(t["score"]), t.get("synset")) for t in row["tags"] or ())
        return ImageRecord(
            id=row["id"], path=row["path"], width=row["width"], height=row["height"], tags=tags,
            ocr_text=row["ocr_text"] or "", card=card_from_json(row["card"]), description=row["description"] or "",
            features=_vector(row["features"]), text_vector=_vector(row["text_vector"]), joint=_vector(row.get("joint")),
            caption=row["caption"] or "", metadata=json.loads(row["metadata"] or "{}"),
        )  # fmt: skip
    if table == PASSAGES:
        return PassageRecord(row["id"], row["doc_id"], row["source"], row["position"], row["text"], _vector(row["vector"]))
    return TopicRecord(row["id"], row["doc_id"], row["source"], row["topic"], tuple(row["positions"] or ()), _vector(row["joint"]))


class StoreBase(Doctoring):
    """The reads of the `Store` protocol, `check`/`repair` and record scans, over backend primitives."""

    info: StoreInfo
    location: str

    # --- primitives a backend provides ---------------------------------------------------------

    def _known(self, table: str, column: str, values: Iterable[str]) -> set[str]:
        """Those of `values` found in `column`."""
        raise NotImplementedError

    def _dense(self, table: str, column: str, vector: np.ndarray, k: int, where: str | None) -> list[tuple[Row, float]]:
        """Nearest rows by cosine similarity, best first: (row without vectors, similarity)."""
        raise NotImplementedError

    def _keyword(self, table: str, text: str, k: int, where: str | None) -> list[tuple[Row, float]]:
        """BM25 matches of `text` in the table's keyword column, best first ([] before any index)."""
        raise NotImplementedError

    def _rows(self, table: str, ids: Sequence[str]) -> list[Row]:
        raise NotImplementedError

    def _tables(self) -> list[str]:
        raise NotImplementedError

    def _scan(self, table: str, columns: Sequence[str], batch_rows: int = 4096) -> Iterator[list[Row]]:
        """Every row of a table, in batches, with the given columns (vectors as float lists or None)."""
        raise NotImplementedError

    def _delete(self, table: str, column: str, values: set[str]) -> None:
        raise NotImplementedError

    def _index_states(self) -> list[IndexState]:
        raise NotImplementedError

    def _table_rows(self, table: str) -> int:
        raise NotImplementedError

    def count(self) -> dict[str, int]:
        return {table: self._table_rows(table) for table in self._tables()}

    def close(self) -> None:
        """Let go of the store (Milvus Lite: its file, for another process to open)."""

    def finalize(self) -> None:
        raise NotImplementedError

    # --- what is stored ----------------------------------------------------------------------------

    def known_image_ids(self, ids: Iterable[str]) -> set[str]:
        return self._known(IMAGES, "id", ids)

    def known_doc_ids(self, doc_ids: Iterable[str]) -> set[str]:
        return self._known(PASSAGES, "doc_id", doc_ids)

    def docs_without_topics(self, doc_ids: Iterable[str]) -> set[str]:
        """Those of the stored `doc_ids` with no topics yet (indexed before the joint model came)."""
        if TOPICS not in self._tables():
            return set()
        doc_ids = list(doc_ids)
        return set(doc_ids) - self._known(TOPICS, "doc_id", doc_ids)

    # --- reads ---------------------------------------------------------------------------------

    def _hybrid(
        self, table: str, text: str, dense: list[tuple[str, np.ndarray]], k: int, where: str | None,
    ) -> list[tuple[Row, float]]:  # fmt: skip
        """BM25 plus one dense ranking per (column, vector), fused by RRF."""
        depth = max(3 * k, 30)  # each ranking looks deeper than k so fusion can promote agreement
        rankings = [[row for row, _ in self._keyword(table, text, depth, where)]]
        rankings += [[row for row, _ in self._dense(table, column, vector, depth, where)] for column, vector in dense]
        rows = {r["id"]: r for ranking in rankings for r in ranking}
        fused = rrf_fuse([[r["id"] for r in ranking] for ranking in rankings])
        return [(rows[i], score) for i, score in fused[:k]]

    def _score_sum(
        self, table: str, text: str, keyword_weight: float, dense: list[tuple[str, np.ndarray, float]], k: int,
        where: str | None,
    ) -> list[tuple[Row, float]]:  # fmt: skip
        """A weighted sum of scores (CombSUM): each dense ranking's cosine times its weight, plus BM25 over
        the query's best BM25 score times `keyword_weight`, for the top `depth` rows of any ranking.

        Unlike RRF it keeps how sure each ranking is: a keyword ranking of tags that barely match the
        query still hands out 1/(60+rank) under RRF, and dilutes a confident joint ranking. A row one
        dense ranking did not return gets that ranking's lowest returned cosine: it scores at most that.
        """
        depth = max(5 * k, 50)
        keyword = self._keyword(table, text, depth, where)
        rankings = [(self._dense(table, column, vector, depth, where), weight) for column, vector, weight in dense]
        rows = {row["id"]: row for ranking in [keyword, *(r for r, _ in rankings)] for row, _ in ranking}
        best = max((score for _, score in keyword), default=0.0)
        scores = dict.fromkeys(rows, 0.0)
        for row, score in keyword if best > 0 else ():
            scores[row["id"]] += keyword_weight * score / best
        for ranking, weight in rankings:
            found = {row["id"]: cosine for row, cosine in ranking}
            floor = min(found.values(), default=0.0)
            for row_id in rows:
                scores[row_id] += weight * found.get(row_id, floor)
        best_first = sorted(scores.items(), key=lambda item: -item[1])[:k]
        return [(rows[row_id], score) for row_id, score in best_first]

    def image(self, image_id: str) -> ImageHit | None:
        rows = self._rows(IMAGES, [image_id])
        return image_hit(rows[0], 1.0) if rows else None

    def passage(self, passage_id: str) -> PassageHit | None:
        rows = self._rows(PASSAGES, [passage_id])
        return passage_hit(rows[0], 1.0) if rows else None

    def images_by_vector(self, vector: np.ndarray, k: int, where: str | None = None) -> list[ImageHit]:
        return [image_hit(row, score) for row, score in self._dense(IMAGES, "features", vector, k, where)]

    def images_by_text(
        self, text: str, vector: np.ndarray, k: int, where: str | None = None,
        joint_vector: np.ndarray | None = None, weights: TextImageWeights | None = None,
    ) -> list[ImageHit]:  # fmt: skip
        weights = weights or TextImageWeights()
        dense = [("text_vector", vector, weights.text)]
        if joint_vector is not None and self.info.joint_dim:
            dense.append(("joint", joint_vector, weights.joint))
        fused = self._score_sum(IMAGES, text, weights.keyword, dense, k, where)
        return [image_hit(row, score) for row, score in fused]

    def passages(self, text: str, vector: np.ndarray, k: int, where: str | None = None) -> list[PassageHit]:
        return [passage_hit(row, score) for row, score in self._hybrid(PASSAGES, text, [("vector", vector)], k, where)]

    def topics_by_joint(self, vector: np.ndarray, k: int) -> list[TopicHit]:
        """Document topics nearest to a joint image-text vector (an image's, usually)."""
        if TOPICS not in self._tables() or not self._table_rows(TOPICS):
            return []
        return [
            TopicHit(r["id"], r["doc_id"], r["source"], r["topic"], tuple(r["positions"]), score) for r, score in self._dense(TOPICS, "joint", vector, k, None)
        ]

    def passages_at(self, doc_id: str, positions: Sequence[int]) -> list[PassageHit]:
        """A document's passages by chunk number, in that order."""
        ids = [f"{doc_id}:{p}" for p in positions]
        by_id = {r["id"]: r for r in self._rows(PASSAGES, ids)}
        return [passage_hit(by_id[i], 1.0) for i in ids if i in by_id]

    # --- whole tables ----------------------------------------------------------------------------

    def records(self, table: str, batch_rows: int = 4096) -> Iterator[list]:
        """A table's rows as records, vectors included, in batches (`vlmsearch store copy`)."""
        for rows in self._scan(table, self._all_columns(table), batch_rows):
            yield [record(table, row) for row in rows]

    def _all_columns(self, table: str) -> list[str]:
        raise NotImplementedError
