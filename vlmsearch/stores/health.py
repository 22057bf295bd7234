"""What `vlmsearch doctor` reports about a store: counts, broken or orphaned rows, index state.

A healthy store after any crash has no duplicate ids, no row without its vectors, every document's
passages numbered 0..n-1 with no gap, and every topic pointing at passages that exist. `repair`
removes what breaks those rules so that the next `index` of the same folders puts it back whole.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Problem(BaseModel):
    table: str
    what: str  # e.g. "duplicate id", "vector missing", "document with missing passages"
    count: int
    examples: list[str] = Field(default_factory=list)  # a few ids (or paths)
    severity: str = "error"  # "error": breaks search or answers; "note": worth knowing, nothing broken
    repairable: bool = True


class IndexState(BaseModel):
    table: str
    column: str
    kind: str  # FTS, IVF_HNSW_SQ, ...
    indexed_rows: int
    unindexed_rows: int  # rows searched by brute force until the next `index` folds them in


class StoreHealth(BaseModel):
    store: str
    counts: dict[str, int]
    problems: list[Problem] = Field(default_factory=list)
    indices: list[IndexState] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def add(self, table: str, what: str, ids: list[str], severity: str = "error", repairable: bool = True) -> None:
        if ids:
            self.problems.append(Problem(table=table, what=what, count=len(ids), examples=sorted(ids)[:5],
                                         severity=severity, repairable=repairable))  # fmt: skip
