"""The Milvus store: the same three tables as collections, on Milvus Lite (one file) or a server.

One pymilvus code path serves both; only the URI differs (`stores/location.py`). Keyword search is
Milvus's own BM25 (a sparse vector computed by a collection function from the text column), dense
search an HNSW index per vector column, and the two are fused by RRF in `StoreBase`, as LanceDB's are,
so both stores rank alike. Writes insert only ids not stored yet, in one request per batch (a batch
is one WAL entry), so a re-sent batch adds nothing.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from vlmsearch.errors import (
    BadInputError,
    ConfigError,
    MissingDependencyError,
    StoreError,
    StoreUnavailableError,
)
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
from vlmsearch.stores.location import StoreLocation
from vlmsearch.stores.protocol import StoreInfo

INFO = "vlmsearch_info"
_SPARSE = "keyword_sparse"  # BM25 term weights, computed by Milvus from the keyword column
_MAX_TEXT = 65_535  # bytes in a Milvus VARCHAR
_HNSW = {"M": 16, "efConstruction": 200}
_QUERY_LIMIT = 16_384  # Milvus's most rows per query; beyond it, a query iterator pages


def _fit(text: str | None, limit: int = _MAX_TEXT) -> str:
    """Text cut to `limit` UTF-8 bytes without splitting a character (OCR of a dense page can be longer)."""
    data = (text or "").encode()
    return text or "" if len(data) <= limit else data[:limit].decode(errors="ignore")


def _literal(value: str) -> str:
    return json.dumps(value)  # a Milvus string literal: double quotes, backslash escapes


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} in [{', '.join(map(_literal, values))}]"


_STRINGS = re.compile(r"""('(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")""")


def milvus_filter(where: str) -> str:
    """A `--where` filter as a Milvus boolean expression: SQL's `=` and `<>` become `==` and `!=`;
    LIKE, IN [...], AND/OR/NOT and comparisons are Milvus's own syntax already."""
    parts = _STRINGS.split(where)
    code = parts[0::2]
    if any(";" in part for part in code):
        raise BadInputError(f"invalid filter {where!r}: a filter is one expression; ';' is not allowed")
    code = [re.sub(r"(?<![=<>!])=(?!=)", "==", part).replace("<>", "!=") for part in code]
    return "".join(p for pair in zip(code, [*parts[1::2], ""]) for p in pair)


def _columns(info: StoreInfo, table: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, pymilvus DataType name, field options) of a table, without the sparse BM25 field."""
    text = ("VARCHAR", {"max_length": _MAX_TEXT})
    if table == IMAGES:
        columns = [
            ("path", "VARCHAR", {"max_length": 4096}), ("width", "INT32", {}), ("height", "INT32", {}),
            ("tags", "JSON", {}), ("ocr_text", *text), ("card", "VARCHAR", {"max_length": _MAX_TEXT, "nullable": True}),
            ("description", "VARCHAR", {"max_length": _MAX_TEXT, "enable_analyzer": True}),
            ("caption", *text), ("metadata", *text),
            ("features", "FLOAT_VECTOR", {"dim": info.image_dim}), ("text_vector", "FLOAT_VECTOR", {"dim": info.text_dim}),
        ]  # fmt: skip
        if info.joint_dim:
            # Missing until computed. A placeholder vector with a flag, not a nullable vector: vectors
            # cannot be filtered on, and nullable ones need Milvus 2.6 (and break Milvus Lite's batches).
            columns += [("has_joint", "BOOL", {}), ("joint", "FLOAT_VECTOR", {"dim": info.joint_dim})]
    elif table == PASSAGES:
        columns = [
            ("doc_id", "VARCHAR", {"max_length": 256}), ("source", "VARCHAR", {"max_length": 4096}),
            ("position", "INT32", {}), ("text", "VARCHAR", {"max_length": _MAX_TEXT, "enable_analyzer": True}),
            ("vector", "FLOAT_VECTOR", {"dim": info.text_dim}),
        ]  # fmt: skip
    else:
        columns = [
            ("doc_id", "VARCHAR", {"max_length": 256}), ("source", "VARCHAR", {"max_length": 4096}),
            ("topic", "VARCHAR", {"max_length": _MAX_TEXT, "enable_analyzer": True}),
            ("positions", "ARRAY", {"element_type": "INT32", "max_capacity": 4096}),
            ("joint", "FLOAT_VECTOR", {"dim": info.joint_dim}),
        ]  # fmt: skip
    return [("id", "VARCHAR", {"max_length": 256, "is_primary": True}), *columns]


def _quiet_milvus_lite() -> None:
    """Milvus Lite logs tracebacks for what is not an error to us: it lacks the timestamp call a
    query iterator tries first (pymilvus falls back), and a locked file is said by our ConfigError.
    pymilvus logs each failed call with its traceback: our StoreError says it once, plainly."""
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    logging.getLogger("pymilvus.decorators").setLevel(logging.CRITICAL)
    logging.getLogger("pymilvus.client.connection_manager").setLevel(logging.CRITICAL)
    logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)
    logging.getLogger("milvus_lite.server_manager").setLevel(logging.CRITICAL)


def _connect(location: StoreLocation):
    try:
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException
    except ImportError:
        raise MissingDependencyError("vlmsearch[scale]", "a milvus:// store") from None

    _quiet_milvus_lite()
    try:
        if location.path is not None:
            location.path.parent.mkdir(parents=True, exist_ok=True)
            return MilvusClient(str(location.path))
        return MilvusClient(uri=location.uri, token=location.token or "")
    except MilvusException as exc:
        if location.path is not None:  # Milvus Lite locks its file: one process at a time
            raise ConfigError(f"cannot open Milvus Lite file {location.path} ({exc.message}): is another vlmsearch "
                              "using it? Milvus Lite serves one process; share a store through a Milvus server") from None  # fmt: skip
        raise ConfigError(f"cannot reach Milvus at {location.uri} ({exc.message})") from None


class _Guarded:
    """A pymilvus client (or query iterator) whose failures are said as StoreError: a server that
    goes away mid-search is a clear message to the CLI and a 503 from our server, not a gRPC traceback."""

    def __init__(self, target, location: StoreLocation):
        self._target, self._location = target, location

    def __getattr__(self, name: str):
        member = getattr(self._target, name)
        if not callable(member):
            return member

        def call(*args, **kwargs):
            from pymilvus.client.types import Status
            from pymilvus.exceptions import MilvusException, MilvusUnavailableException

            try:
                result = member(*args, **kwargs)
            except MilvusException as exc:
                if isinstance(exc, MilvusUnavailableException) or exc.code == Status.CONNECT_FAILED:
                    message = f"Milvus store {self._location} is unavailable ({exc.message}): is its server up?"
                    raise StoreUnavailableError(message) from None
                raise StoreError(f"Milvus store {self._location}: {name} failed ({exc.message})") from exc
            return _Guarded(result, self._location) if name == "query_iterator" else result

        return call


def _prefix(location: StoreLocation) -> str:
    return "" if location.path is not None else f"{location.name}_"  # a Lite file holds one store


def _read_info(client, prefix: str) -> StoreInfo | None:
    name = prefix + INFO
    if not client.has_collection(name):
        return None
    client.load_collection(name)  # a reopened Milvus Lite file starts with its collections released
    rows = client.get(name, ids=["info"], output_fields=["info"])
    return StoreInfo.model_validate_json(rows[0]["info"]) if rows else None


def stored_info(location: StoreLocation) -> StoreInfo | None:
    if location.path is not None and not location.path.exists():
        return None  # Milvus Lite would create the file just to say it is empty
    client = _connect(location)
    try:
        return _read_info(client, _prefix(location))
    finally:
        client.close()


class MilvusStore(StoreBase):
    def __init__(self, location: StoreLocation, info: StoreInfo, ann_refine_factor: int = 4):
        self._client = _Guarded(_connect(location), location)
        self._lite_file = location.path
        self.location = str(location)
        self.ann_refine_factor = ann_refine_factor
        self._prefix = _prefix(location)
        stored = self._stored_info(info)
        self.info = stored or info
        for table in self._tables():
            if self._client.has_collection(self._name(table)):
                self._client.load_collection(self._name(table))  # a no-op where it is loaded already
            else:
                self._create(table)
        self._write_info()

    def close(self) -> None:
        self._client.close()
        if self._lite_file is not None:  # the in-process Milvus Lite server holds the file's lock
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(str(self._lite_file))

    # --- collections ----------------------------------------------------------------------------

    def _name(self, table: str) -> str:
        return self._prefix + table

    def _stored_info(self, info: StoreInfo) -> StoreInfo | None:
        stored = _read_info(self._client, self._prefix)
        if stored is None:
            return None
        refuse_other_embedders(self.location, stored, info)
        if info.joint_embedder and info.joint_embedder != stored.joint_embedder:
            # Milvus cannot drop or add a vector field in place; LanceDB can (it migrates).
            raise ConfigError(
                f"store {self.location} holds joint vectors of {stored.joint_embedder!r}, not {info.joint_embedder!r}: "
                "index into a new Milvus store, or keep the profile it was built with"
            )
        return stored

    def _write_info(self) -> None:
        from pymilvus import DataType

        name = self._name(INFO)
        if not self._client.has_collection(name):
            schema = self._client.create_schema(auto_id=False)
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=16)
            schema.add_field("info", DataType.VARCHAR, max_length=_MAX_TEXT)
            schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector in every collection
            index = self._client.prepare_index_params()
            index.add_index("v", index_type="FLAT", metric_type="COSINE")
            self._create_collection(name, schema, index)
        self._client.upsert(name, [{"id": "info", "info": self.info.model_dump_json(), "v": [1.0, 0.0]}])

    def _create(self, table: str) -> None:
        from pymilvus import DataType, Function, FunctionType

        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        index = self._client.prepare_index_params()
        for name, kind, options in _columns(self.info, table):
            if "element_type" in options:
                options = {**options, "element_type": DataType[options["element_type"]]}
            schema.add_field(name, DataType[kind], **options)
            if kind == "FLOAT_VECTOR":
                index.add_index(name, index_type="HNSW", metric_type="COSINE", params=_HNSW)
        schema.add_field(_SPARSE, DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(name=f"{table}_bm25", function_type=FunctionType.BM25,
                                     input_field_names=[KEYWORD_COLUMN[table]], output_field_names=[_SPARSE]))  # fmt: skip
        index.add_index(_SPARSE, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        self._create_collection(self._name(table), schema, index)

    def _create_collection(self, name: str, schema, index) -> None:
        # Indices on an empty collection: no need for pymilvus's default 0.5 s poll per index.
        self._client.create_collection(name, schema=schema)
        self._client.create_index(name, index, sync=False)
        self._client.load_collection(name)

    def _tables(self) -> list[str]:
        return [IMAGES, PASSAGES, *([TOPICS] if self.info.joint_dim else [])]

    def _all_columns(self, table: str) -> list[str]:
        return [name for name, _, _ in _columns(self.info, table) if name != "has_joint"]

    def _scalar_columns(self, table: str) -> list[str]:
        return [name for name in self._all_columns(table) if name not in VECTOR_COLUMNS[table]]

    # --- writes ---------------------------------------------------------------------------------

    def _query(self, table: str, where: str, fields: list[str], batch_rows: int = 4096) -> Iterator[list[Row]]:
        iterator = self._client.query_iterator(self._name(table), batch_size=batch_rows, filter=where, output_fields=fields)
        try:
            while rows := iterator.next():
                yield rows
        finally:
            iterator.close()

    def _known(self, table: str, column: str, values: Iterable[str], where: str = "") -> set[str]:
        values = list(dict.fromkeys(values))
        found: set[str] = set()
        for start in range(0, len(values), 100):
            condition = _in(column, values[start : start + 100]) + (f" and {where}" if where else "")
            rows = self._client.query(self._name(table), filter=condition, output_fields=[column], limit=_QUERY_LIMIT)
            if len(rows) == _QUERY_LIMIT:  # many rows per value (a long document's passages): page through
                rows = [row for page in self._query(table, condition, [column]) for row in page]
            found.update(r[column] for r in rows)
        return found

    def count_missing_joint(self) -> int:
        return self._table_rows(IMAGES, "has_joint == false") if self.info.joint_dim else 0

    def missing_joint(self, ids: Iterable[str]) -> set[str]:
        return self._known(IMAGES, "id", ids, "has_joint == false") if self.info.joint_dim else set()

    def set_joint(self, vectors: dict[str, np.ndarray]) -> None:
        if vectors:
            rows = [{"id": id_, "has_joint": True, "joint": v.astype(np.float32).tolist()} for id_, v in vectors.items()]
            self._client.upsert(self._name(IMAGES), rows, partial_update=True)  # the other fields stay

    def _insert_new(self, table: str, rows: list[Row]) -> None:
        """Only ids not stored yet: a resumed run re-sending a batch changes nothing."""
        known = self._known(table, "id", [r["id"] for r in rows])
        rows = [r for r in rows if r["id"] not in known]
        if rows:
            self._client.upsert(self._name(table), rows)

    def add_images(self, records: Sequence[ImageRecord]) -> None:
        joint = self.info.joint_dim is not None
        self._insert_new(IMAGES, [
            {
                "id": r.id, "path": r.path, "width": r.width, "height": r.height,
                "tags": [{"label": t.label, "score": t.score, "synset": t.synset} for t in r.tags],
                "ocr_text": _fit(r.ocr_text), "card": card_to_json(r.card), "description": _fit(r.description),
                "caption": _fit(r.caption), "metadata": _fit(json.dumps(r.metadata)),
                "features": r.features.astype(np.float32).tolist(), "text_vector": r.text_vector.astype(np.float32).tolist(),
                **({"has_joint": r.joint is not None, "joint": self._joint_or_placeholder(r.joint)} if joint else {}),
            }
            for r in records
        ])  # fmt: skip

    def _joint_or_placeholder(self, vector: np.ndarray | None) -> list[float]:
        if vector is None:
            return [1.0] + [0.0] * (self.info.joint_dim - 1)  # never searched: has_joint is false
        return vector.astype(np.float32).tolist()

    def add_passages(self, records: Sequence[PassageRecord]) -> None:
        self._insert_new(PASSAGES, [
            {"id": r.id, "doc_id": r.doc_id, "source": r.source, "position": r.position, "text": _fit(r.text),
             "vector": r.vector.astype(np.float32).tolist()}
            for r in records
        ])  # fmt: skip

    def add_topics(self, records: Sequence[TopicRecord]) -> None:
        if not self.info.joint_dim:
            return  # no joint model: nothing to place topics in
        self._insert_new(TOPICS, [
            {"id": r.id, "doc_id": r.doc_id, "source": r.source, "topic": _fit(r.topic), "positions": list(r.positions),
             "joint": r.joint.astype(np.float32).tolist()}
            for r in records
        ])  # fmt: skip

    def finalize(self) -> None:
        """Seal what was written (Milvus indexes new segments by itself)."""
        for table in self._tables():
            self._client.flush(self._name(table))

    def _table_rows(self, table: str, where: str = "") -> int:
        return self._client.query(self._name(table), filter=where, output_fields=["count(*)"])[0]["count(*)"]

    # --- primitives of StoreBase ------------------------------------------------------------------

    def _search(self, table: str, data, field: str, k: int, where: str | None, params: dict) -> list[dict]:
        expression = milvus_filter(where) if where else ""
        if table == IMAGES and field == "joint":
            expression = f"has_joint == true and ({expression})" if expression else "has_joint == true"
        try:
            return self._client.search(self._name(table), data=[data], anns_field=field, limit=k, filter=expression,
                                       output_fields=self._scalar_columns(table), search_params=params)[0]  # fmt: skip
        except StoreError as exc:
            if where and not isinstance(exc, StoreUnavailableError):
                raise BadInputError(f"invalid filter {where!r}: {exc.__cause__.message}") from None
            raise

    def _dense(self, table: str, column: str, vector: np.ndarray, k: int, where: str | None) -> list[tuple[Row, float]]:
        params = {"metric_type": "COSINE", "params": {"ef": max(64, k * self.ann_refine_factor)}}
        hits = self._search(table, vector.astype(np.float32).tolist(), column, k, where, params)
        return [({**hit["entity"], "id": hit["id"]}, float(hit["distance"])) for hit in hits]

    def _keyword(self, table: str, text: str, k: int, where: str | None) -> list[tuple[Row, float]]:
        if not text.strip():
            return []
        hits = self._search(table, text, _SPARSE, k, where, {"metric_type": "BM25"})
        # BM25 is never negative; Milvus Lite reports it negated (as a distance), a server as it is.
        return [({**hit["entity"], "id": hit["id"]}, abs(float(hit["distance"]))) for hit in hits]

    def _rows(self, table: str, ids: Sequence[str]) -> list[Row]:
        return self._client.get(self._name(table), ids=list(ids), output_fields=self._scalar_columns(table)) if ids else []

    def _scan(self, table: str, columns: Sequence[str], batch_rows: int = 4096) -> Iterator[list[Row]]:
        joint = table == IMAGES and "joint" in columns
        for rows in self._query(table, "", [*columns, *(["has_joint"] if joint else [])], batch_rows):
            if joint:
                rows = [{**row, "joint": row["joint"] if row.pop("has_joint") else None} for row in rows]
            yield rows

    def _delete(self, table: str, column: str, values: set[str]) -> None:
        values = sorted(values)
        for start in range(0, len(values), 500):
            self._client.delete(self._name(table), filter=_in(column, values[start : start + 500]))

    def _index_states(self) -> list[IndexState]:
        states = []
        for table in self._tables():
            for index in self._client.list_indexes(self._name(table)):
                about = self._client.describe_index(self._name(table), index)
                field = about["field_name"]
                states.append(IndexState(
                    table=table, column=KEYWORD_COLUMN[table] if field == _SPARSE else field, kind=about["index_type"],
                    indexed_rows=about.get("indexed_rows", 0), unindexed_rows=about.get("pending_index_rows", 0),
                ))  # fmt: skip
        return states
