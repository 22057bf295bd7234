"""The embedded store: one LanceDB directory, two tables, no server.

Every write is a single LanceDB commit (a merge-insert keyed on id), so a killed ingest leaves each
batch either fully visible or absent, and a re-run never duplicates rows. BM25 comes from Lance's
full-text index; dense search is exact below `ann_min_rows` rows and an IVF-HNSW index above.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vlmsearch.errors import BadInputError, ConfigError
from vlmsearch.records import ImageRecord, PassageRecord, TopicRecord
from vlmsearch.stores.base import (
    IMAGES,
    KEYWORD_COLUMN,
    PASSAGES,
    TOPICS,
    VECTOR_COLUMNS,
    Row,
    StoreBase,
    card_to_json,
    refuse_other_embedders,
)
from vlmsearch.stores.health import IndexState
from vlmsearch.stores.protocol import StoreInfo

# Opt in to Lance's coming default now (index statistics without centroids), which also silences its warning.
os.environ.setdefault("LANCE_INCLUDE_VECTOR_CENTROIDS", "false")

_TAG = pa.struct([("label", pa.string()), ("score", pa.float32()), ("synset", pa.string())])
INFO_FILE = "store.json"


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


def _quoted(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


# search.ann_index -> LanceDB's index class. At 1M rows (benchmarks.search --sweep): IVF-HNSW-SQ answers in
# ~15 ms with recall@10 0.89-0.95 (the graph's reach varies by build); IVF-flat in ~35 ms with 1.000, builds in
# 83 s instead of 584 s, and takes 7.4 GB of disk instead of 4.7 (it keeps a second copy of the vectors).
ANN_INDEXES = {"ivf_hnsw_sq": "IvfHnswSq", "ivf_flat": "IvfFlat"}
EF_PER_PARTITION_ROW = 0.075  # ef 300 for the ~4,000 rows of a partition at 1M rows (LanceStore._ef)


def _partitions(rows: int) -> int:
    """IVF partitions for a table of `rows`: a quarter of the usual square root, so each holds ~4 sqrt(rows)."""
    return max(1, int(rows**0.5 / 4))


def hnsw_ef(rows: int, k: int, refine_factor: int) -> int:
    """HNSW's candidate list for a table of `rows`: in proportion to a partition's rows, and never under the
    k x refine_factor candidates the query asks of it (Lance refuses less)."""
    return max(k * max(1, refine_factor), round(EF_PER_PARTITION_ROW * rows / _partitions(rows)))


class LanceStore(StoreBase):
    def __init__(self, path: Path | str, info: StoreInfo, ann_min_rows: int = 5000, ann_refine_factor: int = 4, ann_index: str = "ivf_hnsw_sq"):
        import lancedb

        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.location = str(self.path)
        self.ann_min_rows = ann_min_rows
        self.ann_refine_factor = ann_refine_factor
        if ann_index not in ANN_INDEXES:
            raise ConfigError(f"unknown search.ann_index {ann_index!r}; known: {', '.join(ANN_INDEXES)}")
        self.ann_index = ann_index
        self.ann_nprobes: int | None = None  # IVF partitions searched (None: Lance's default)
        self.ann_ef: int | None = None  # HNSW candidate list in a partition (None: chosen from the table's size; 0: Lance's default)
        self._indexed_rows: dict[tuple[str, str], int] = {}  # rows under each vector index, for its query parameters (finalize refreshes)
        stored = self._stored_info(info)
        self._db = lancedb.connect(str(self.path))
        self.info = info if stored is None else self._migrate_joint(stored, info)
        existing = set(self._db.list_tables().tables)
        self._tables_by_name = {
            name: self._db.open_table(name) if name in existing else self._db.create_table(name, schema=schema) for name, schema in _schemas(self.info).items()
        }
        (self.path / INFO_FILE).write_text(self.info.model_dump_json(indent=2))

    def _stored_info(self, info: StoreInfo) -> StoreInfo | None:
        file = self.path / INFO_FILE
        if not file.exists():
            return None
        stored = StoreInfo.model_validate_json(file.read_text())
        refuse_other_embedders(self.location, stored, info)
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
                self._tables_by_name[table].search().where(f"{column} IN ({_quoted(chunk)})")
                .select([column]).limit(len(chunk) * 1000).to_list()
            )  # fmt: skip
            found.update(r[column] for r in rows)
        return found

    def count_missing_joint(self) -> int:
        """Stored images with no joint vector yet (0 when the store has no joint column)."""
        images = self._tables_by_name[IMAGES]
        return images.count_rows("joint IS NULL") if "joint" in images.schema.names else 0

    def missing_joint(self, ids: Iterable[str]) -> set[str]:
        if "joint" not in self._tables_by_name[IMAGES].schema.names:
            return set()
        ids = list(dict.fromkeys(ids))
        missing: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            query = self._tables_by_name[IMAGES].search().where(f"id IN ({_quoted(chunk)}) AND joint IS NULL")
            missing.update(r["id"] for r in query.select(["id"]).limit(len(chunk)).to_list())
        return missing

    def set_joint(self, vectors: dict[str, np.ndarray]) -> None:
        if not vectors:
            return
        field = self._tables_by_name[IMAGES].schema.field("joint")
        data = pa.table({
            "id": pa.array(list(vectors), pa.string()),
            "joint": pa.array([v.astype(np.float32) for v in vectors.values()], field.type),
        })  # fmt: skip
        self._tables_by_name[IMAGES].merge_insert("id").when_matched_update_all().execute(data)  # one commit

    def _upsert(self, table: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        data = pa.Table.from_pylist(rows, schema=self._tables_by_name[table].schema)
        self._tables_by_name[table].merge_insert("id").when_not_matched_insert_all().execute(data)

    def add_images(self, records: Sequence[ImageRecord]) -> None:
        self._upsert(IMAGES, [
            {
                "id": r.id, "path": r.path, "width": r.width, "height": r.height,
                "tags": [{"label": t.label, "score": t.score, "synset": t.synset} for t in r.tags],
                "ocr_text": r.ocr_text,
                "card": card_to_json(r.card),
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
        if TOPICS not in self._tables_by_name:
            return  # no joint model: nothing to place topics in
        self._upsert(TOPICS, [
            {"id": r.id, "doc_id": r.doc_id, "source": r.source, "topic": r.topic, "positions": list(r.positions),
             "joint": r.joint.astype(np.float32)}
            for r in records
        ])  # fmt: skip

    def finalize(self) -> None:
        self._indexed_rows.clear()
        for name, table in self._tables_by_name.items():
            if table.count_rows() == 0:
                continue
            indexed = {tuple(ix.columns)[0] for ix in table.list_indices()}
            if KEYWORD_COLUMN[name] not in indexed:
                table.create_fts_index(KEYWORD_COLUMN[name], replace=True)
            for column in [c for c in VECTOR_COLUMNS[name] if c in table.schema.names]:
                if column not in indexed and table.count_rows() >= self.ann_min_rows:
                    self._create_ann_index(table, column)
            table.optimize()  # folds new rows into existing indices, compacts small fragments

    def _create_ann_index(self, table, column: str) -> None:
        import lancedb.index

        kind = getattr(lancedb.index, ANN_INDEXES[self.ann_index])
        table.create_index(column, config=kind(distance_type="cosine", num_partitions=_partitions(table.count_rows())))

    def _ef(self, table: str, column: str, k: int) -> int | None:
        """HNSW's candidate list for a query of `k`: it must grow with the rows in a partition. Lance's default
        kept recall@10 at 0.85 on 1M rows (~4,000 a partition); ef = 300 gave 0.954 for 1.13x the time, refining
        x20 the same for 1.45x, probing more partitions nothing (`python -m benchmarks.search --sweep`). An IVF-flat
        index ignores it."""
        if self.ann_ef is not None:
            return self.ann_ef or None
        if (table, column) not in self._indexed_rows:  # rows under the column's ANN index; 0: none, exact search
            indexed = any(column in ix.columns for ix in self._tables_by_name[table].list_indices())
            self._indexed_rows[table, column] = self._table_rows(table) if indexed else 0
        rows = self._indexed_rows[table, column]
        return hnsw_ef(rows, k, self.ann_refine_factor) if rows else None

    def _table_rows(self, table: str) -> int:
        return self._tables_by_name[table].count_rows()

    # --- primitives of StoreBase -------------------------------------------------------------

    def _tables(self) -> list[str]:
        return list(self._tables_by_name)

    def _all_columns(self, table: str) -> list[str]:
        return self._tables_by_name[table].schema.names

    def _columns(self, table: str) -> list[str]:
        return [name for name in self._all_columns(table) if name not in VECTOR_COLUMNS[table]]

    def _run(self, query, table: str, k: int, where: str | None, score: str) -> list[Row]:
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

    def _dense(self, table: str, column: str, vector: np.ndarray, k: int, where: str | None) -> list[tuple[Row, float]]:
        query = self._tables_by_name[table].search(vector.astype(np.float32), vector_column_name=column).distance_type("cosine")
        if self.ann_refine_factor > 1:  # no effect on exact search; on an ANN index, re-ranks with full vectors
            query = query.refine_factor(self.ann_refine_factor)
        if self.ann_nprobes:
            query = query.nprobes(self.ann_nprobes)
        if ef := self._ef(table, column, k):
            query = query.ef(ef)
        return [(row, 1.0 - row.pop("_distance")) for row in self._run(query, table, k, where, "_distance")]

    def _keyword(self, table: str, text: str, k: int, where: str | None) -> list[tuple[Row, float]]:
        if KEYWORD_COLUMN[table] not in {tuple(ix.columns)[0] for ix in self._tables_by_name[table].list_indices()}:
            return []  # nothing indexed yet
        query = self._tables_by_name[table].search(text, query_type="fts", fts_columns=KEYWORD_COLUMN[table])
        return [(row, row.pop("_score")) for row in self._run(query, table, k, where, "_score")]

    def _rows(self, table: str, ids: Sequence[str]) -> list[Row]:
        if not ids:
            return []
        query = self._tables_by_name[table].search().where(f"id IN ({_quoted(ids)})")
        return query.select(self._columns(table)).limit(len(ids)).to_list()

    def _scan(self, table: str, columns: Sequence[str], batch_rows: int = 4096) -> Iterator[list[Row]]:
        query = self._tables_by_name[table].search().select(list(columns)).limit(None)
        for batch in query.to_batches(batch_rows):
            yield batch.to_pylist()

    def _delete(self, table: str, column: str, values: set[str]) -> None:
        values = sorted(values)
        for start in range(0, len(values), 500):
            self._tables_by_name[table].delete(f"{column} IN ({_quoted(values[start : start + 500])})")

    def _index_states(self) -> list[IndexState]:
        return [
            IndexState(
                table=name, column=tuple(ix.columns)[0], kind=ix.index_type, indexed_rows=ix.num_indexed_rows, unindexed_rows=ix.num_unindexed_rows
            )  # fmt: skip
            for name, table in self._tables_by_name.items()
            for ix in table.list_indices()
        ]
