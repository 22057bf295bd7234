"""`doctor` for the LanceDB store: scan each table once (ids, positions, vectors) in record batches."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa

from vlmsearch.stores.health import IndexState, StoreHealth
from vlmsearch.stores.lance import (
    _FTS_COLUMN,
    _VECTOR_COLUMNS,
    IMAGES,
    PASSAGES,
    TOPICS,
    LanceStore,
    _quoted,
)

_BATCH_ROWS = 8192


def _not_finite(column: pa.Array, dim: int) -> np.ndarray:
    """Row numbers of null vectors and of vectors with NaN or infinity (what a torn write would leave)."""
    nulls = np.asarray(column.is_null())
    values = column.flatten() if column.null_count == 0 else pa.compute.fill_null(column, [0.0] * dim).flatten()
    finite = np.isfinite(np.asarray(values, dtype=np.float32).reshape(-1, dim)).all(axis=1)
    return np.flatnonzero(nulls | ~finite)


class _Scan:
    """Everything the checks need, from one pass over each table."""

    def __init__(self, store: LanceStore):
        self.duplicates: dict[str, set[str]] = defaultdict(set)
        self.bad_vectors: dict[str, set[str]] = defaultdict(set)
        self.missing_joint: set[str] = set()
        self.paths: dict[str, str] = {}
        self.doc_positions: dict[str, list[int]] = defaultdict(list)
        self.passage_doc: dict[str, str] = {}
        self.topics: dict[str, tuple[str, list[int]]] = {}
        for name, table in store._tables.items():
            vectors = [f for f in table.schema if f.name in _VECTOR_COLUMNS]
            extra = {IMAGES: ["path"], PASSAGES: ["doc_id", "position"], TOPICS: ["doc_id", "positions"]}[name]
            seen: set[str] = set()
            query = table.search().select(["id", *extra, *[f.name for f in vectors]]).limit(None)
            for batch in query.to_batches(_BATCH_ROWS):
                ids = batch.column("id").to_pylist()
                for id_ in ids:
                    (self.duplicates[name] if id_ in seen else seen).add(id_)
                for field in vectors:
                    bad = _not_finite(batch.column(field.name), field.type.list_size)
                    if name == IMAGES and field.name == "joint":  # null until computed: not broken
                        nulls = set(np.flatnonzero(np.asarray(batch.column("joint").is_null())))
                        self.missing_joint.update(ids[i] for i in nulls)
                        bad = [i for i in bad if i not in nulls]
                    self.bad_vectors[name].update(ids[i] for i in bad)
                self._rows(name, ids, batch)

    def _rows(self, name: str, ids: list[str], batch: pa.RecordBatch) -> None:
        columns = {c: batch.column(c).to_pylist() for c in batch.schema.names if c not in _VECTOR_COLUMNS}
        if name == IMAGES:
            self.paths.update(zip(ids, columns["path"]))
        elif name == PASSAGES:
            for id_, doc, position in zip(ids, columns["doc_id"], columns["position"]):
                self.doc_positions[doc].append(position)
                self.passage_doc[id_] = doc
        else:
            self.topics.update((id_, (doc, positions)) for id_, doc, positions in zip(ids, columns["doc_id"], columns["positions"]))

    def torn_documents(self) -> set[str]:
        """Documents whose passages are not exactly 0..n-1 (a chunk lost or written twice)."""
        return {doc for doc, positions in self.doc_positions.items() if sorted(positions) != list(range(len(positions)))}

    def orphan_topics(self) -> set[str]:
        """Topics whose document has no passage at a position they point to."""
        return {
            id_ for id_, (doc, positions) in self.topics.items()
            if not positions or max(positions) >= len(self.doc_positions.get(doc, ()))
        }  # fmt: skip


def check(store: LanceStore, scan: _Scan | None = None) -> StoreHealth:
    scan = scan or _Scan(store)
    health = StoreHealth(store=str(store.path), counts=store.count())
    for name in store._tables:
        health.add(name, "duplicate id", sorted(scan.duplicates[name]))
        health.add(name, "vector missing or not finite", sorted(scan.bad_vectors[name]))
    health.add(PASSAGES, "document with missing or repeated passages (doc ids)", sorted(scan.torn_documents()))
    health.add(TOPICS, "topic pointing at passages that are not stored", sorted(scan.orphan_topics()))
    health.add(IMAGES, "no joint vector yet (run `index` on their folders again)", sorted(scan.missing_joint),
               severity="note", repairable=False)  # fmt: skip
    gone = [path for path in scan.paths.values() if not Path(path).exists()]
    health.add(IMAGES, "file moved or deleted since indexing (still searchable; no full-size view)", gone,
               severity="note", repairable=False)  # fmt: skip
    for name, table in store._tables.items():
        indices = {tuple(ix.columns)[0]: ix for ix in table.list_indices()}
        for column, ix in indices.items():
            health.indices.append(IndexState(table=name, column=column, kind=ix.index_type,
                                             indexed_rows=ix.num_indexed_rows, unindexed_rows=ix.num_unindexed_rows))  # fmt: skip
        if health.counts[name] and _FTS_COLUMN[name] not in indices:
            # A run killed before its last step leaves this; dense search still works, and the next
            # `index` (or `doctor --fix`) builds it.
            health.add(name, "keyword index not built yet (the last `index` stopped early)", [_FTS_COLUMN[name]], severity="note")
    return health


def repair(store: LanceStore) -> StoreHealth:
    """Delete what `check` calls broken (whole documents, with their topics, where a passage is), then
    rebuild the indices. Returns the health before the repair; `index` on the same folders restores
    the deleted rows."""
    scan = _Scan(store)
    health = check(store, scan)  # one pass over the tables serves the report and the repair
    images = scan.duplicates[IMAGES] | scan.bad_vectors[IMAGES]
    docs = scan.torn_documents() | {scan.passage_doc[i] for i in scan.duplicates[PASSAGES] | scan.bad_vectors[PASSAGES]}
    topics_of = {doc for doc, _ in (scan.topics[i] for i in scan.orphan_topics() | scan.duplicates.get(TOPICS, set())
                                    | scan.bad_vectors.get(TOPICS, set()))}  # fmt: skip
    _delete(store, IMAGES, "id", images)
    _delete(store, PASSAGES, "doc_id", docs)
    if TOPICS in store._tables:
        _delete(store, TOPICS, "doc_id", docs | topics_of)  # a document gets its topics back whole
    store.finalize()
    return health


def _delete(store: LanceStore, table: str, column: str, values: set[str]) -> None:
    values = sorted(values)
    for start in range(0, len(values), 500):
        store._tables[table].delete(f"{column} IN ({_quoted(values[start : start + 500])})")
