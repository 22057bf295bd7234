"""Where images and passages live: the `Store` protocol, the embedded LanceDB store and Milvus."""

from pathlib import Path

from vlmsearch.errors import BadInputError
from vlmsearch.stores.location import StoreLocation, local_folder, parse_location
from vlmsearch.stores.protocol import Store, StoreInfo
from vlmsearch.stores.rrf import rrf_fuse

__all__ = [
    "Store", "StoreInfo", "StoreLocation", "local_folder", "open_existing_store", "open_store", "parse_location",
    "rrf_fuse", "stored_info",
]  # fmt: skip


def open_store(
    location: str | Path | StoreLocation, info: StoreInfo, ann_min_rows: int = 5000, ann_refine_factor: int = 4, ann_index: str = "ivf_hnsw_sq"
) -> Store:
    """The store at `location` (a folder: LanceDB; `milvus://...`: Milvus), created if absent."""
    location = location if isinstance(location, StoreLocation) else parse_location(location)
    if location.engine == "milvus":
        from vlmsearch.stores.milvus import MilvusStore

        return MilvusStore(location, info, ann_refine_factor=ann_refine_factor)
    from vlmsearch.stores.lance import LanceStore

    return LanceStore(location.path, info, ann_min_rows=ann_min_rows, ann_refine_factor=ann_refine_factor, ann_index=ann_index)


def stored_info(location: str | Path | StoreLocation) -> StoreInfo | None:
    """What a store at `location` was built with (None: no store there yet)."""
    location = location if isinstance(location, StoreLocation) else parse_location(location)
    if location.engine == "milvus":
        from vlmsearch.stores import milvus

        return milvus.stored_info(location)
    from vlmsearch.stores.lance import INFO_FILE

    file = location.path / INFO_FILE
    return StoreInfo.model_validate_json(file.read_text()) if file.is_file() else None


def open_existing_store(location: str | Path | StoreLocation, **options) -> Store:
    """A store as it was built, without loading any model (for `status`, `doctor` and `store copy`)."""
    info = stored_info(location)
    if info is None:
        raise BadInputError(f"no store at {location} (nothing indexed there yet)")
    return open_store(location, info, **options)
