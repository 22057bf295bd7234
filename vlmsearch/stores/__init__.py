"""Where images and passages live: the `Store` protocol and its embedded LanceDB implementation."""

from pathlib import Path

from vlmsearch.errors import BadInputError
from vlmsearch.stores.protocol import Store, StoreInfo
from vlmsearch.stores.rrf import rrf_fuse

__all__ = ["Store", "StoreInfo", "open_existing_store", "open_store", "rrf_fuse", "stored_info"]


def open_store(path, info: StoreInfo, ann_min_rows: int = 5000, ann_refine_factor: int = 4) -> Store:
    from vlmsearch.stores.lance import LanceStore

    return LanceStore(path, info, ann_min_rows=ann_min_rows, ann_refine_factor=ann_refine_factor)


def stored_info(path: Path | str) -> StoreInfo | None:
    """What a store at `path` was built with (None: no store there yet)."""
    from vlmsearch.stores.lance import _INFO_FILE

    file = Path(path) / _INFO_FILE
    return StoreInfo.model_validate_json(file.read_text()) if file.is_file() else None


def open_existing_store(path: Path | str, **options) -> Store:
    """A store as it was built, without loading any model (for `status` and `doctor`)."""
    info = stored_info(path)
    if info is None:
        raise BadInputError(f"no store at {path} (nothing indexed there yet)")
    return open_store(path, info, **options)
