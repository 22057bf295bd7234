"""Crash safety of ingest: `vlmsearch index` killed with SIGKILL at random moments, the store checked
after every kill (`doctor`'s rules), then one run to completion compared with an uninterrupted run.

`python -m benchmarks.crash [--images 400] [--kills 20]`; tests/test_reliability.py runs a short one.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import lancedb

from benchmarks.common import print_table, write_json
from vlmsearch.demo import collection
from vlmsearch.knowledge.wordnet import WordNet
from vlmsearch.stores import open_existing_store, stored_info


@dataclass
class Kill:
    number: int
    after_s: float
    finished_first: bool  # the run ended before its kill came (nothing left to do)
    images: int
    passages: int
    errors: list[str]  # what `doctor` found wrong right after the kill


def make_collection(folder: Path, images: int, documents: int) -> Path:
    collection.clipart(folder / "clipart", images)
    for path in collection.wordnet_documents(folder / "docs", WordNet())[documents:]:
        path.unlink()
    return folder


def index_command(store: Path, data: Path, batch_size: int) -> list[str]:
    return [sys.executable, "-m", "vlmsearch.cli", "--store", str(store), "index", str(data), "--batch-size", str(batch_size)]


def contents(store: Path) -> dict[str, list[str]]:
    """Every table's ids, sorted (duplicates kept, so they show)."""
    db = lancedb.connect(str(store))
    return {name: sorted(r["id"] for r in db.open_table(name).search().select(["id"]).limit(None).to_list())
            for name in db.list_tables().tables}  # fmt: skip


def errors(store: Path) -> list[str]:
    if stored_info(store) is None:
        return []  # killed before the store was created
    health = open_existing_store(store).check()
    return [f"{p.table}: {p.count} {p.what}" for p in health.problems if p.severity == "error"]


def kill_repeatedly(store: Path, data: Path, kills: int, window: tuple[float, float], seed: int, batch_size: int) -> list[Kill]:
    rng = random.Random(seed)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = []
    for number in range(1, kills + 1):
        after = rng.uniform(*window)
        process = subprocess.Popen(index_command(store, data, batch_size), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=env, start_new_session=True)  # fmt: skip
        try:
            process.wait(after)
            finished = True
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            finished = False
        rows = open_existing_store(store).count() if stored_info(store) else {}
        done.append(Kill(number, round(after, 2), finished, rows.get("images", 0), rows.get("passages", 0), errors(store)))
    return done


def run(images: int = 400, documents: int = 20, kills: int = 20, window=(3.0, 25.0), seed: int = 0, batch_size: int = 8) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_collection(root / "data", images, documents)
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        started = time.perf_counter()
        subprocess.run(index_command(root / "clean", data, batch_size), check=True, env=env, capture_output=True)
        clean_seconds = time.perf_counter() - started
        history = kill_repeatedly(root / "killed", data, kills, window, seed, batch_size)
        subprocess.run(index_command(root / "killed", data, batch_size), check=True, env=env, capture_output=True)
        clean, resumed = contents(root / "clean"), contents(root / "killed")
        final_errors = errors(root / "killed")
    killed = [k for k in history if not k.finished_first]
    result = {
        "images": images, "documents": documents, "kills": len(killed), "runs": len(history),
        "clean_run_seconds": round(clean_seconds, 1),
        "kills_with_store_errors": sum(bool(k.errors) for k in history),
        "final_errors": final_errors,
        "same_rows_as_clean_run": clean == resumed,
        "counts": {name: {"clean": len(ids), "after_kills": len(resumed.get(name, []))} for name, ids in clean.items()},
        "history": [asdict(k) for k in history],
    }  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = run(images=args.images, kills=args.kills, seed=args.seed)
    print_table("ingest killed with SIGKILL, store checked after each kill", [
        {"what": f"kill {k['number']}", "after s": k["after_s"], "images": k["images"], "passages": k["passages"],
         "finished first": k["finished_first"], "store errors": "; ".join(k["errors"]) or "none"}
        for k in result["history"]
    ])  # fmt: skip
    print_table("after a final run to completion", [
        {"what": name, "clean run": c["clean"], "after kills": c["after_kills"]} for name, c in result["counts"].items()
    ])  # fmt: skip
    print(f"kills {result['kills']}, stores with errors after a kill {result['kills_with_store_errors']}, "
          f"same rows as the clean run: {result['same_rows_as_clean_run']}")  # fmt: skip
    print(f"results: {write_json('crash', result)}")


if __name__ == "__main__":
    main()
