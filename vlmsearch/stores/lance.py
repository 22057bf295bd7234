"""The embedded store: one LanceDB directory, two tables, no server.

Every write is a single LanceDB commit (a merge-insert keyed on id), so a killed ingest leaves each
batch either fully visible or absent, and a re-run never duplicates rows. BM25 comes from Lance's
full-text index; dense search is exact below `ann_min_rows` rows and an IVF-HNSW index above.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vlmsearch.errors import BadInputError, ConfigError
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
from vlmsearch.stores.health import StoreHealth
from vlmsearch.stores.protocol import StoreInfo
from vlmsearch.stores.rrf import rrf_fuse

# Opt in to Lance's coming default now (index statistics without centroids), which also silences its warning.
os.environ.setdefault("LANCE_INCLUDE_VECTOR_CENTROIDS", "false")

IMAGES, PASSAGES, TOPICS = "images", "passages", "topics"
_TAG = pa.struct([("label", pa.string()), ("score", pa.float32()), ("synset", pa.string())])
_INFO_FILE = "store.json"


def _schemas(info: StoreInfo) -> dict[str, pa.Schema]:
    images = pa.schema([
        ("id", pa.string()), ("path", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
        ("tags", pa.list_(_TAG)), ("ocr_text", pa.string()), ("card", pa.string()),
        ("description", pa.string()), ("caption", pa.string()), ("metadata", pa.string()),
        ("features", pa.list_(pa.float32(), info.image_dim)),
        ("text_vector", pa.list_(pa.float32(), info.text_dim)),
        *([_joint_field(info.joint_dim)] if info.joint_dim else []),
    ])  # fmt: skip
    passages = pa.schema([
        ("id", pa.string()), ("doc_id", pa.string()), ("source", pa.string()), ("position", pa.int32()),
        ("text", pa.string()), ("vector", pa.list_(pa.float32(), info.text_dim)),
    ])  # fmt: skip
    if not info.joint_dim:
        return {IMAGES: images, PASSAGES: passages}
    topics = pa.schema([
        ("id", pa.string()), ("doc_id", pa.string()), ("source", pa.string()), ("topic", pa.string()),
        ("positions", pa.list_(pa.int32())), ("joint", pa.list_(pa.float32(), info.joint_dim)),
    ])  # fmt: skip
    return {IMAGES: images, PASSAGES: passages, TOPICS: topics}


def _joint_field(dim: int) -> pa.Field:
    return pa.field("joint", pa.list_(pa.float32(), dim), nullable=True)  # null until computed


_VECTOR_COLUMNS = {"features", "text_vector", "joint", "vector"}
_FTS_COLUMN = {IMAGES: "description", PASSAGES: "text", TOPICS: "topic"}


def _quoted(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _card_from_json(text: str | None) -> InfoCard | None:
    if not text:
        return None
    data = json.loads(text)
    return InfoCard(**{**data, "hypernyms": tuple(data.get("hypernyms", ()))})


def _image_hit(row: dict[str, Any], score: float) -> ImageHit:
    return ImageHit(
        id=row["id"],
        path=row["path"],
        score=float(score),
        tags=tuple(Tag(t["label"], float(t["score"]), t["synset"]) for t in row["tags"] or ()),
        ocr_text=row["ocr_text"] or "",
        card=_card_from_json(row["card"]),
        caption=row["caption"] or "",
    )


def _passage_hit(row: dict[str, Any], score: float) -> PassageHit:
    fields = ("id", "doc_id", "source", "position", "text")
    return PassageHit(**{f: row[f] for f in fields}, score=float(score))


class LanceStore:
    def __init__(self, path: Path | str, info: StoreInfo, ann_min_rows: int = 5000, ann_refine_factor: int = 4):
        import lancedb

        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.ann_min_rows = ann_min_rows
        self.ann_refine_factor = ann_refine_factor
        stored = self._stored_info(info)
        self._db = lancedb.connect(str(self.path))
        self.info = info if stored is None else self._migrate_joint(stored, info)
        existing = set(self._db.list_tables().tables)
        self._tables = {
            name: self._db.open_table(name) if name in existing else self._db.create_table(name, schema=schema)
            for name, schema in _schemas(self.info).items()
        }
        (self.path / _INFO_FILE).write_text(self.info.model_dump_json(indent=2))

    def _stored_info(self, info: StoreInfo) -> StoreInfo | None:
        file = self.path / _INFO_FILE
        if not file.exists():
            return None
        stored = StoreInfo.model_validate_json(file.read_text())
        if (stored.image_embedder, stored.text_embedder) != (info.image_embedder, info.text_embedder):
            raise ConfigError(
                f"store {self.path} was built with image embedder {stored.image_embedder!r} and text embedder "
                f"{stored.text_embedder!r}, but this profile uses {info.image_embedder!r} and "
                f"{info.text_embedder!r}: use the profile it was built with, or another --store"
            )
        return stored

    def _migrate_joint(self, stored: StoreInfo, info: StoreInfo) -> StoreInfo:
        """A new or different joint model gets an empty `joint` column and topics table; `index` fills
        them without redoing OCR or passages.

        A profile without a joint model leaves them alone, so switching back loses nothing."""
        if info.joint_embedder is None or info.joint_embedder == stored.joint_embedder:
            return stored
        images = self._db.open_table(IMAGES)
        if "joint" in images.schema.names:
            images.drop_columns(["joint"])  # vectors of another model: meaningless in this one's space
        images.add_columns(_joint_field(info.joint_dim))
        if TOPICS in set(self._db.list_tables().tables):
            self._db.drop_table(TOPICS)  # recreated empty, in the new model's space
        return stored.model_copy(update={"joint_embedder": info.joint_embedder, "joint_dim": info.joint_dim})

    # --- writes -------------------------------------------------------------------------------

    def _known(self, table: str, column: str, values: Iterable[str]) -> set[str]:
        values = list(dict.fromkeys(values))
        found: set[str] = set()
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            rows = (
                self._tables[table].search().where(f"{column} IN ({_quoted(chunk)})")
                .select([column]).limit(len(chunk) * 1000).to_list()
            )  # fmt: skip
            found.update(r[column] for r in rows)
        return found

    def known_image_ids(self, ids: Iterable[str]) -> set[str]:
        return self._known(IMAGES, "id", ids)

    def known_doc_ids(self, doc_ids: Iterable[str]) -> set[str]:
        return self._known(PASSAGES, "doc_id", doc_ids)

    def docs_without_topics(self, doc_ids: Iterable[str]) -> set[str]:
        """Those of the stored `doc_ids` with no topics yet (indexed before the joint model came)."""
        if TOPICS not in self._tables:
            return set()
        doc_ids = list(doc_ids)
        return set(doc_ids) - self._known(TOPICS, "doc_id", doc_ids)

    def count_missing_joint(self) -> int:
        """Stored images with no joint vector yet (0 when the store has no joint column)."""
        images = self._tables[IMAGES]
        return images.count_rows("joint IS NULL") if "joint" in images.schema.names else 0

    def missing_joint(self, ids: Iterable[str]) -> set[str]:
        if "joint" not in self._tables[IMAGES].schema.names:
            return set()
        ids = list(dict.fromkeys(ids))
        missing: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            query = self._tables[IMAGES].search().where(f"id IN ({_quoted(chunk)}) AND joint IS NULL")
            missing.update(r["id"] for r in query.select(["id"]).limit(len(chunk)).to_list())
        return missing

    def set_joint(self, vectors: dict[str, np.ndarray]) -> None:
        if not vectors:
            return
        field = self._tables[IMAGES].schema.field("joint")
        data = pa.table({
            "id": pa.array(list(vectors), pa.string()),
            "joint": pa.array([v.astype(np.float32) for v in vectors.values()], field.type),
        })  # fmt: skip
        self._tables[IMAGES].merge_insert("id").when_matched_update_all().execute(data)  # one commit

    def _upsert(self, table: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        data = pa.Table.from_pylist(rows, schema=self._tables[table].schema)
        self._tables[table].merge_insert("id").when_not_matched_insert_all().execute(data)

    def add_images(self, records: Sequence[ImageRecord]) -> None:
        self._upsert(IMAGES, [
            {
                "id": r.id, "path": r.path, "width": r.width, "height": r.height,
                "tags": [{"label": t.label, "score": t.score, "synset": t.synset} for t in r.tags],
                "ocr_text": r.ocr_text,
                "card": json.dumps(r.card.__dict__) if r.card else None,
                "description": r.description, "caption": r.caption, "metadata": json.dumps(r.metadata),
                "features": r.features.astype(np.float32), "text_vector": r.text_vector.astype(np.float32),
                **({"joint": None if r.joint is None else r.joint.astype(np.float32)} if self.info.joint_dim else {}),
            }
            for r in records
        ])  # fmt: skip

    def add_passages(self, records: Sequence[PassageRecord]) -> None:
        self._upsert(PASSAGES, [
            {"id": r.id, "doc_id": r.doc_id, "source": r.source, "position": r.position, "text": r.text,
             "vector": r.vector.astype(np.float32)}
            for r in records
        ])  # fmt: skip

    def add_topics(self, records: Sequence[TopicRecord]) -> None:
        if TOPICS not in self._tables:
            return  # no joint model: nothing to place topics in
        self._upsert(TOPICS, [
            {"id": r.id, "doc_id": r.doc_id, "source": r.source, "topic": r.topic, "positions": list(r.positions),
             "joint": r.joint.astype(np.float32)}
            for r in records
        ])  # fmt: skip

    def finalize(self) -> None:
        for name, table in self._tables.items():
            if table.count_rows() == 0:
                continue
            indexed = {tuple(ix.columns)[0] for ix in table.list_indices()}
            if _FTS_COLUMN[name] not in indexed:
                table.create_fts_index(_FTS_COLUMN[name], replace=True)
            vector_columns = {IMAGES: ["features", "text_vector", "joint"], PASSAGES: ["vector"], TOPICS: ["joint"]}[name]
            vector_columns = [c for c in vector_columns if c in table.schema.names]
            for column in vector_columns:
                if column not in indexed and table.count_rows() >= self.ann_min_rows:
                    self._create_ann_index(table, column)
            table.optimize()  # folds new rows into existing indices, compacts small fragments

    @staticmethod
    def _create_ann_index(table, column: str) -> None:
        from lancedb.index import IvfHnswSq

        partitions = max(1, int(table.count_rows() ** 0.5 / 4))
        table.create_index(column, config=IvfHnswSq(distance_type="cosine", num_partitions=partitions))

    def count(self) -> dict[str, int]:
        return {name: table.count_rows() for name, table in self._tables.items()}

    def check(self) -> StoreHealth:
        from vlmsearch.stores import lance_health

        return lance_health.check(self)

    def repair(self) -> StoreHealth:
        from vlmsearch.stores import lance_health

        return lance_health.repair(self)

    # --- reads --------------------------------------------------------------------------------

    def _columns(self, table: str) -> list[str]:
        return [f.name for f in self._tables[table].schema if f.name not in _VECTOR_COLUMNS]

    def _run(self, query, table: str, k: int, where: str | None, score: str) -> list[dict[str, Any]]:
        if where:
            # Lance reads one expression and silently drops anything after a ';': say so instead.
            if ";" in re.sub(r"'(?:[^']|'')*'", "", where):
                raise BadInputError(f"invalid filter {where!r}: a filter is one expression; ';' is not allowed")
            query = query.where(where, prefilter=True)
        try:
            return query.select([*self._columns(table), score]).limit(k).to_list()
        except (ValueError, RuntimeError, OSError) as exc:
            if where:
                raise BadInputError(f"invalid filter {where!r}: {str(exc).splitlines()[0]}") from None
            raise

    def _dense(self, table: str, column: str, vector: np.ndarray, k: int, where: str | None) -> list[dict]:
        query = self._tables[table].search(vector.astype(np.float32), vector_column_name=column).distance_type("cosine")
        if self.ann_refine_factor > 1:  # no effect on exact search; on an ANN index, re-ranks with full vectors
            query = query.refine_factor(self.ann_refine_factor)
        return self._run(query, table, k, where, "_distance")

    def _bm25(self, table: str, text: str, k: int, where: str | None) -> list[dict]:
        if _FTS_COLUMN[table] not in {tuple(ix.columns)[0] for ix in self._tables[table].list_indices()}:
            return []  # nothing indexed yet
        query = self._tables[table].search(text, query_type="fts", fts_columns=_FTS_COLUMN[table])
        return self._run(query, table, k, where, "_score")

    def _hybrid(
        self, table: str, text: str, dense: list[tuple[str, np.ndarray]], k: int, where: str | None,
        weights: list[float] | None = None,
    ):  # fmt: skip
        """BM25 plus one dense ranking per (column, vector), fused by RRF (weights: BM25's first)."""
        depth = max(3 * k, 30)  # each ranking looks deeper than k so fusion can promote agreement
        rankings = [self._bm25(table, text, depth, where)]
        rankings += [self._dense(table, column, vector, depth, where) for column, vector in dense]
        rows = {r["id"]: r for ranking in rankings for r in ranking}
        fused = rrf_fuse([[r["id"] for r in ranking] for ranking in rankings], weights=weights)
        return [(rows[i], score) for i, score in fused[:k]]

    def _by_id(self, table: str, id_: str) -> dict[str, Any] | None:
        rows = self._tables[table].search().where(f"id = {_quoted([id_])}").select(self._columns(table)).limit(1).to_list()
        return rows[0] if rows else None

    def image(self, image_id: str) -> ImageHit | None:
        row = self._by_id(IMAGES, image_id)
        return _image_hit(row, 1.0) if row else None

    def passage(self, passage_id: str) -> PassageHit | None:
        row = self._by_id(PASSAGES, passage_id)
        return _passage_hit(row, 1.0) if row else None

    def images_by_vector(self, vector: np.ndarray, k: int, where: str | None = None) -> list[ImageHit]:
        return [_image_hit(r, 1.0 - r["_distance"]) for r in self._dense(IMAGES, "features", vector, k, where)]

    def images_by_text(
        self, text: str, vector: np.ndarray, k: int, where: str | None = None,
        joint_vector: np.ndarray | None = None, joint_weight: float = 1.0,
    ) -> list[ImageHit]:  # fmt: skip
        dense, weights = [("text_vector", vector)], [1.0, 1.0]
        if joint_vector is not None and self.info.joint_dim:
            dense.append(("joint", joint_vector))
            weights.append(joint_weight)
        return [_image_hit(r, s) for r, s in self._hybrid(IMAGES, text, dense, k, where, weights)]

    def passages(self, text: str, vector: np.ndarray, k: int, where: str | None = None) -> list[PassageHit]:
        return [_passage_hit(r, s) for r, s in self._hybrid(PASSAGES, text, [("vector", vector)], k, where)]

    def topics_by_joint(self, vector: np.ndarray, k: int) -> list[TopicHit]:
        """Document topics nearest to a joint image-text vector (an image's, usually)."""
        if TOPICS not in self._tables or self._tables[TOPICS].count_rows() == 0:
            return []
        rows = self._dense(TOPICS, "joint", vector, k, None)
        return [
            TopicHit(r["id"], r["doc_id"], r["source"], r["topic"], tuple(r["positions"]), 1.0 - r["_distance"])
            for r in rows
        ]

    def passages_at(self, doc_id: str, positions: Sequence[int]) -> list[PassageHit]:
        """A document's passages by chunk number, in that order."""
        ids = [f"{doc_id}:{p}" for p in positions]
        rows = self._tables[PASSAGES].search().where(f"id IN ({_quoted(ids)})").select(self._columns(PASSAGES)).limit(len(ids)).to_list()
        by_id = {r["id"]: r for r in rows}
        return [_passage_hit(by_id[i], 1.0) for i in ids if i in by_id]
