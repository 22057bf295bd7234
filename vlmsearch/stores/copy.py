"""`vlmsearch store copy SRC DST`: move a store between backends (LanceDB <-> Milvus) or machines.

Rows go across as records, vectors included, so nothing is re-embedded. Writes insert only ids the
target lacks: a copy stopped halfway is finished by running it again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vlmsearch.stores import StoreLocation, open_existing_store, open_store
from vlmsearch.stores.base import IMAGES, PASSAGES, TOPICS


def copy_store(
    source: str | Path | StoreLocation, target: str | Path | StoreLocation, batch_rows: int = 2048,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, int]:  # fmt: skip
    """Copy every row of `source` into `target` (created with the source's embedders if absent).
    Returns the rows added per table; `progress(table, rows_done, rows_total)` after each batch."""
    src = open_existing_store(source)
    dst = open_store(target, src.info)
    totals = src.count()
    added = {}
    for table, add in ((IMAGES, dst.add_images), (PASSAGES, dst.add_passages), (TOPICS, dst.add_topics)):
        if table not in totals:
            continue
        before, done = dst.count().get(table, 0), 0
        for records in src.records(table, batch_rows):
            add(records)
            done += len(records)
            if progress:
                progress(table, done, totals[table])
        added[table] = dst.count().get(table, 0) - before
    dst.finalize()
    return added
