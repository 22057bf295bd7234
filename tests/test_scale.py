"""Past one machine: `index --engine ray` (a local Ray, real Ray Data actor pools) into Milvus Lite
stores the same rows as the single-process indexer into LanceDB, reports bad files the same way, and
resumes without redoing work."""

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import run_cli

from vlmsearch.errors import ConfigError
from vlmsearch.ingest.ray_engine import _each_alone_if_broken
from vlmsearch.stores import open_existing_store


def _rows(location, table: str) -> dict:
    store = open_existing_store(location)
    rows = {record.id: record for batch in store.records(table) for record in batch}
    store.close()  # Milvus Lite serves one process: the CLI below opens the file next
    return rows


@pytest.mark.slow  # ~75 s: Ray workers into Milvus Lite against the local engine; the Ray pool's other tests stay
def test_ray_engine_into_milvus_stores_what_the_local_engine_stores(indexed_store, sample_dir, engine_factory, tmp_path):
    folder = tmp_path / "collection"
    shutil.copytree(sample_dir, folder)
    (folder / "photos" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really" * 10)
    (folder / "docs" / "empty.md").write_text("  \n")
    store = f"milvus://{tmp_path}/ray.db"

    result = run_cli("--store", store, "index", str(folder), "--engine", "ray", "--json", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["added"] == 5 and report["passages"] == 2
    bad = [folder / "photos" / "broken.png", folder / "docs" / "empty.md"]
    local_failures = engine_factory(tmp_path / "local").index(bad).failed  # the single-process words for them
    assert sorted((f["path"], f["error"]) for f in report["failed"]) == sorted((f.path, f.error) for f in local_failures)
    assert len(local_failures) == 2

    for table in ("images", "passages", "topics"):
        local, ray = _rows(indexed_store, table), _rows(store, table)
        assert local.keys() == ray.keys() and local, table
        for id_, expected in local.items():
            got = ray[id_]
            for name, value in vars(expected).items():
                if name == "path" or name == "source":  # the copied folder
                    assert getattr(got, name).rsplit("/", 1)[1] == value.rsplit("/", 1)[1]
                elif isinstance(value, np.ndarray):  # one thread per Ray worker: float sums in another order
                    np.testing.assert_allclose(getattr(got, name), value, atol=2e-4, err_msg=f"{table} {id_} {name}")
                elif name == "tags":
                    assert [t.label for t in got.tags] == [t.label for t in value]
                else:
                    assert getattr(got, name) == value, (table, id_, name)

    result = run_cli("--store", store, "index", str(folder), "--engine", "ray", "--json", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads(result.stdout)
    assert (again["added"], again["unchanged"], len(again["failed"])) == (0, 5, 2)  # resumed: no model work twice
    assert "tagger" not in again["stage_seconds"]


def test_in_a_ray_pool_a_strange_file_costs_only_itself():
    """What `Indexer._isolated` does for the local engine: the batch, then each file alone; a
    setting's error (a missing model) still stops the run."""
    items = [SimpleNamespace(path=f"/in/{name}.png") for name in ("a", "b", "c")]

    def work(batch):
        if any(item.path == "/in/b.png" for item in batch):
            raise ValueError("odd bytes")

    done = _each_alone_if_broken(items, work)
    assert [getattr(item, "error", None) for item in done] == [None, "could not be indexed (ValueError: odd bytes)", None]
    assert [item.path for item in done] == ["/in/a.png", "/in/b.png", "/in/c.png"]

    def no_model(batch):
        raise ConfigError("profile has no ocr model")

    with pytest.raises(ConfigError):
        _each_alone_if_broken(items, no_model)
