"""Where images and passages live: the `Store` protocol and its embedded LanceDB implementation."""

from vlmsearch.stores.protocol import Store, StoreInfo
from vlmsearch.stores.rrf import rrf_fuse

__all__ = ["Store", "StoreInfo", "open_store", "rrf_fuse"]


def open_store(path, info: StoreInfo, ann_min_rows: int = 5000, ann_refine_factor: int = 4) -> Store:
    from vlmsearch.stores.lance import LanceStore

    return LanceStore(path, info, ann_min_rows=ann_min_rows, ann_refine_factor=ann_refine_factor)
