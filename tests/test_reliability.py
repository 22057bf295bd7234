"""Reliability: `doctor` finds and repairs what a crash or a bug could leave, `status` answers without
models, and ingest survives SIGKILL at random moments (a short run of benchmarks/crash.py)."""

import json
import shutil

import lancedb
import pytest
from conftest import run_cli

from benchmarks import crash, fuzz


def _corrupt(store) -> None:
    db = lancedb.connect(str(store))
    passages = db.open_table("passages")
    rows = passages.search().limit(None).to_list()
    doc = max({r["doc_id"] for r in rows}, key=lambda d: sum(r["doc_id"] == d for r in rows))
    first = next(r for r in rows if r["doc_id"] == doc and r["position"] == 0)
    passages.delete(f"id = '{first['id']}'")  # a document with a hole
    other = next(r for r in rows if r["doc_id"] != doc) if len({r["doc_id"] for r in rows}) > 1 else None
    passages.add([{k: v for k, v in (other or rows[-1]).items() if not k.startswith("_")}])  # the same id twice
    images = db.open_table("images")
    row = {k: v for k, v in images.search().limit(1).to_list()[0].items() if not k.startswith("_")}
    images.add([{**row, "id": "f" * 64, "features": None}])  # a row without its vector (Lance refuses NaN itself)
    topics = db.open_table("topics")
    topic = {k: v for k, v in topics.search().limit(1).to_list()[0].items() if not k.startswith("_")}
    topics.add([{**topic, "id": "orphan:t0", "positions": [999]}])


def test_doctor_finds_a_damaged_store_fixes_it_and_index_restores_it(indexed_store, sample_dir, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(indexed_store, store)
    healthy = json.loads(run_cli("--store", str(store), "doctor", "--json").stdout)
    assert healthy["problems"] == [] and {i["table"] for i in healthy["indices"]} == {"images", "passages", "topics"}
    _corrupt(store)

    found = run_cli("--store", str(store), "doctor", "--json")
    assert found.returncode == 1
    problems = {(p["table"], p["what"]): p for p in json.loads(found.stdout)["problems"]}
    assert problems["images", "vector missing or not finite"]["examples"] == ["f" * 64]
    assert problems["passages", "duplicate id"]["count"] == 1
    assert problems["passages", "document with missing or repeated passages (doc ids)"]["count"] >= 1
    assert problems["topics", "topic pointing at passages that are not stored"]["examples"] == ["orphan:t0"]

    assert run_cli("--store", str(store), "doctor", "--fix").returncode == 0
    assert run_cli("--store", str(store), "doctor").returncode == 0
    report = json.loads(run_cli("--store", str(store), "index", str(sample_dir), "--json").stdout)
    assert report["added"] >= 1 and report["failed"] == []
    assert lancedb.connect(str(store)).open_table("passages").count_rows() == lancedb.connect(str(indexed_store)).open_table("passages").count_rows()
    assert json.loads(run_cli("--store", str(store), "doctor", "--json").stdout)["problems"] == []


def test_status_reports_counts_without_loading_models(indexed_store, tmp_path):
    result = run_cli("--store", str(indexed_store), "status", "--json", timeout=30)
    assert json.loads(result.stdout) == {"images": 4, "passages": json.loads(result.stdout)["passages"], "topics": 2,
                                         "store": str(indexed_store), "profile": "offline"}  # fmt: skip
    assert json.loads(result.stdout)["passages"] > 0
    empty = json.loads(run_cli("--store", str(tmp_path / "none"), "status", "--json").stdout)
    assert (empty["images"], empty["passages"]) == (0, 0) and not (tmp_path / "none").exists()
    assert "no store at" in run_cli("--store", str(tmp_path / "none"), "doctor").stderr


@pytest.mark.slow  # ~60 s; `make reliability` kills ingest 20 times
@pytest.mark.timeout(900)
def test_ingest_killed_at_random_moments_leaves_a_sound_store_and_finishes_like_a_clean_run():
    result = crash.run(images=24, documents=2, kills=1, per_round=3, window=(5.0, 14.0), seed=1, batch_size=4)
    assert result["runs"] == 3 and result["kills"] >= 1 and result["kills_with_store_errors"] == 0
    assert result["every_round_same_as_clean_run"]
    assert result["clean_counts"]["images"] == 24 and result["clean_counts"]["passages"] > 0


@pytest.mark.slow  # ~100 s; `make reliability` runs 1,011 hostile files
@pytest.mark.timeout(900)
def test_hostile_files_cost_only_themselves(indexed_store, tmp_path):
    """A small run of benchmarks/fuzz.py: decoders a file at a time, then `index` into a store in use."""
    store = tmp_path / "store"
    shutil.copytree(indexed_store, store)
    corpus = fuzz.build_corpus(tmp_path / "corpus", files=120, seed=3)
    assert len(corpus) >= 120
    decoded = fuzz.decode_all(corpus)
    assert decoded["crashes"] == 0 and decoded["hangs"] == [] and decoded["refused"] > 40, decoded["crash_examples"]
    indexed = fuzz.index_corpus(store, tmp_path / "corpus")
    assert indexed["exit_code"] == 0 and not indexed["traceback"]
    assert indexed["stored_before_intact"] and indexed["doctor_errors"] == []
    assert indexed["failed"] > 40 and indexed["failures_without_reason"] == 0 and indexed["added"] > 0
