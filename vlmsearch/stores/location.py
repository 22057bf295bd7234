"""Where a store lives, from one string: a folder (LanceDB) or a Milvus URI.

- `/path/to/folder`: the embedded LanceDB store.
- `milvus:///path/to/file.db` (or `milvus:relative/file.db`): Milvus Lite, embedded, in one file.
- `milvus://host:19530/name`, `http(s)://host:19530/name`: a Milvus server or cluster; `name` prefixes
  the collections (default `vlmsearch`), so several stores share one cluster. A token comes from
  MILVUS_TOKEN (`user:password` or an API key).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from vlmsearch.errors import ConfigError

_SERVER = re.compile(r"^(?:milvus|https?)://(?P<host>[^/:]+)(?::(?P<port>\d+))?/?(?P<name>[A-Za-z_][A-Za-z0-9_]*)?/?$")


@dataclass(frozen=True)
class StoreLocation:
    engine: str  # "lance" | "milvus"
    path: Path | None = None  # the folder (lance) or the Milvus Lite file
    uri: str | None = None  # a Milvus server's address
    name: str = "vlmsearch"  # collection prefix on a shared Milvus server
    token: str | None = None

    def __str__(self) -> str:
        if self.engine == "lance":
            return str(self.path)
        return f"milvus://{self.path}" if self.path else f"{self.uri}/{self.name}"


def parse_location(text: str | Path) -> StoreLocation:
    text = str(text)
    if text.startswith("milvus:///"):
        return StoreLocation("milvus", path=Path(text.removeprefix("milvus://")))
    if text.startswith("milvus:") and not text.startswith("milvus://"):
        return StoreLocation("milvus", path=Path(text.removeprefix("milvus:")).absolute())
    if text.startswith(("milvus://", "http://", "https://")):
        match = _SERVER.match(text)
        if not match:
            raise ConfigError(
                f"cannot read the store address {text!r}: use milvus:///path/file.db (Milvus Lite) or "
                "milvus://host:19530/name (a Milvus server; name: letters, digits and _)"
            )
        scheme = "https" if text.startswith("https://") else "http"
        uri = f"{scheme}://{match['host']}:{match['port'] or 19530}"
        return StoreLocation("milvus", uri=uri, name=match["name"] or "vlmsearch", token=os.environ.get("MILVUS_TOKEN"))
    if "://" in text:
        raise ConfigError(f"unknown store scheme in {text!r}: give a folder, milvus:///file.db or milvus://host:port/name")
    return StoreLocation("lance", path=Path(text))


def local_folder(location: StoreLocation, cache_dir: Path) -> Path:
    """A folder beside the store for files it refers to (server uploads); the cache for a remote one."""
    if location.path is not None:
        return location.path.parent
    return cache_dir / f"milvus-{location.name}"
