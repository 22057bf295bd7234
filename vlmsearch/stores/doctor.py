"""`doctor` for any store: scan each table once (ids, positions, vectors), report, and repair."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from vlmsearch.stores.health import StoreHealth
from vlmsearch.stores.tables import IMAGES, KEYWORD_COLUMN, PASSAGES, TOPICS, VECTOR_COLUMNS


class Doctoring:
    """`check` and `repair` for a store class (StoreBase): the store inherits them, and provides the
    scans, counts and deletes they use (`_tables`, `_all_columns`, `_scan`, `_index_states`,
    `_delete`, `count`, `finalize`, `location`, `info`)."""

    def check(self) -> StoreHealth:
        """Counts, broken or orphaned rows, index state (`vlmsearch doctor`)."""
        return check(self)

    def repair(self) -> StoreHealth:
        """Delete the rows `check` calls broken, so that `index` can add them back whole; rebuild indices."""
        return repair(self)


def _dims(store: Doctoring) -> dict[str, int | None]:
    info = store.info
    return {"features": info.image_dim, "text_vector": info.text_dim, "vector": info.text_dim, "joint": info.joint_dim}


def _broken(value, dim: int | None) -> bool:
    """A null vector, a wrong length, or NaN/infinity: what a torn write would leave."""
    if value is None:
        return True
    vector = np.asarray(value, dtype=np.float32)
    return vector.shape != (dim,) or not np.isfinite(vector).all()


class _Scan:
    """Everything the checks need, from one pass over each table."""

    def __init__(self, store: Doctoring):
        self.duplicates: dict[str, set[str]] = defaultdict(set)
        self.bad_vectors: dict[str, set[str]] = defaultdict(set)
        self.missing_joint: set[str] = set()
        self.paths: dict[str, str] = {}
        self.doc_positions: dict[str, list[int]] = defaultdict(list)
        self.passage_doc: dict[str, str] = {}
        self.topics: dict[str, tuple[str, list[int]]] = {}
        dims = _dims(store)
        for name in store._tables():
            vectors = [c for c in VECTOR_COLUMNS[name] if c in store._all_columns(name)]
            extra = {IMAGES: ["path"], PASSAGES: ["doc_id", "position"], TOPICS: ["doc_id", "positions"]}[name]
            seen: set[str] = set()
            for rows in store._scan(name, ["id", *extra, *vectors]):
                for row in rows:
                    (self.duplicates[name] if row["id"] in seen else seen).add(row["id"])
                    for column in vectors:
                        if name == IMAGES and column == "joint" and row["joint"] is None:
                            self.missing_joint.add(row["id"])  # null until computed: not broken
                        elif _broken(row[column], dims[column]):
                            self.bad_vectors[name].add(row["id"])
                    self._row(name, row)

    def _row(self, name: str, row: dict) -> None:
        if name == IMAGES:
            self.paths[row["id"]] = row["path"]
        elif name == PASSAGES:
            self.doc_positions[row["doc_id"]].append(row["position"])
            self.passage_doc[row["id"]] = row["doc_id"]
        else:
            self.topics[row["id"]] = (row["doc_id"], list(row["positions"] or ()))

    def torn_documents(self) -> set[str]:
        """Documents whose passages are not exactly 0..n-1 (a chunk lost or written twice)."""
        return {doc for doc, positions in self.doc_positions.items() if sorted(positions) != list(range(len(positions)))}

    def orphan_topics(self) -> set[str]:
        """Topics whose document has no passage at a position they point to."""
        return {
            id_ for id_, (doc, positions) in self.topics.items()
            if not positions or max(positions) >= len(self.doc_positions.get(doc, ()))
        }  # fmt: skip


def check(store: Doctoring, scan: _Scan | None = None) -> StoreHealth:
    scan = scan or _Scan(store)
    health = StoreHealth(store=store.location, counts=store.count())
    for name in store._tables():
        health.add(name, "duplicate id", sorted(scan.duplicates[name]))
        health.add(name, "vector missing or not finite", sorted(scan.bad_vectors[name]))
    health.add(PASSAGES, "document with missing or repeated passages (doc ids)", sorted(scan.torn_documents()))
    health.add(TOPICS, "topic pointing at passages that are not stored", sorted(scan.orphan_topics()))
    health.add(IMAGES, "no joint vector yet (run `index` on their folders again)", sorted(scan.missing_joint),
               severity="note", repairable=False)  # fmt: skip
    gone = [path for path in scan.paths.values() if not Path(path).exists()]
    health.add(IMAGES, "file moved or deleted since indexing (still searchable; no full-size view)", gone,
               severity="note", repairable=False)  # fmt: skip
    health.indices = store._index_states()
    indexed = {(ix.table, ix.column) for ix in health.indices}
    for name in store._tables():
        if health.counts[name] and (name, KEYWORD_COLUMN[name]) not in indexed:
            # A run killed before its last step leaves this; dense search still works, and the next
            # `index` (or `doctor --fix`) builds it.
            health.add(name, "keyword index not built yet (the last `index` stopped early)", [KEYWORD_COLUMN[name]], severity="note")
    return health


def repair(store: Doctoring) -> StoreHealth:
    """Delete what `check` calls broken (whole documents, with their topics, where a passage is), then
    rebuild the indices. Returns the health before the repair; `index` on the same folders restores
    the deleted rows."""
    scan = _Scan(store)
    health = check(store, scan)  # one pass over the tables serves the report and the repair
    images = scan.duplicates[IMAGES] | scan.bad_vectors[IMAGES]
    docs = scan.torn_documents() | {scan.passage_doc[i] for i in scan.duplicates[PASSAGES] | scan.bad_vectors[PASSAGES]}
    topics_of = {doc for doc, _ in (scan.topics[i] for i in scan.orphan_topics() | scan.duplicates.get(TOPICS, set())
                                    | scan.bad_vectors.get(TOPICS, set()))}  # fmt: skip
    store._delete(IMAGES, "id", images)
    store._delete(PASSAGES, "doc_id", docs)
    if TOPICS in store._tables():
        store._delete(TOPICS, "doc_id", docs | topics_of)  # a document gets its topics back whole
    store.finalize()
    return health
