"""Crash safety of ingest: `vlmsearch index` killed with SIGKILL at random moments, the store checked
after every kill (`doctor`'s rules), then one run to completion compared with an uninterrupted run.

`python -m benchmarks.crash [--images 60] [--kills 20]`; tests/test_reliability.py runs a short one.
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


def kill_round(store: Path, data: Path, kills: int, window: tuple[float, float], rng: random.Random, batch_size: int,
               first: int) -> list[Kill]:  # fmt: skip
    """`kills` times: start `index`, SIGKILL it after a random wait (unless it finished first), check the
    store. Then one run to completion."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = []
    for number in range(first, first + kills):
        after = rng.uniform(*window)
        process = subprocess.Popen(index_command(store, data, batch_size), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=env, start_new_session=True)  # fmt: skip
        try:
            if process.wait(after) != 0:
                raise RuntimeError(f"`index` failed on its own (exit {process.returncode}): run it by hand on {data}")
            finished = True
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            finished = False
        rows = open_existing_store(store).count() if stored_info(store) else {}
        done.append(Kill(number, round(after, 2), finished, rows.get("images", 0), rows.get("passages", 0), errors(store)))
    subprocess.run(index_command(store, data, batch_size), check=True, env=env, capture_output=True)
    return done


def run(images: int = 60, documents: int = 20, kills: int = 20, per_round: int = 7, window=(3.0, 40.0), seed: int = 0,
        batch_size: int = 8) -> dict:  # fmt: skip
    """Rounds of kills on a fresh store until `kills` kills happened; after each round's run to
    completion, its store must hold exactly what an uninterrupted run stored."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_collection(root / "data", images, documents)
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        started = time.perf_counter()
        subprocess.run(index_command(root / "clean", data, batch_size), check=True, env=env, capture_output=True)
        clean_seconds = time.perf_counter() - started
        clean, history, rounds = contents(root / "clean"), [], []
        while sum(not k.finished_first for k in history) < kills:
            store = root / f"round{len(rounds)}"
            history += kill_round(store, data, per_round, window, rng, batch_size, first=len(history) + 1)
            resumed = contents(store)
            rounds.append({"round": len(rounds) + 1, "same_rows_as_clean_run": resumed == clean, "final_errors": errors(store),
                           "counts": {name: len(ids) for name, ids in resumed.items()}})  # fmt: skip
    return {
        "images": len(clean.get("images", [])), "documents": documents, "batch_size": batch_size,
        "kills": sum(not k.finished_first for k in history), "runs": len(history), "rounds": rounds,
        "clean_run_seconds": round(clean_seconds, 1),
        "clean_counts": {name: len(ids) for name, ids in clean.items()},
        "kills_with_store_errors": sum(bool(k.errors) for k in history),
        "every_round_same_as_clean_run": all(r["same_rows_as_clean_run"] and not r["final_errors"] for r in rounds),
        "history": [asdict(k) for k in history],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = run(images=args.images, kills=args.kills, seed=args.seed)
    print_table("ingest killed with SIGKILL, store checked after each kill", [
        {"what": f"kill {k['number']}", "after s": k["after_s"], "images": k["images"], "passages": k["passages"],
         "finished first": k["finished_first"], "store errors": "; ".join(k["errors"]) or "none"}
        for k in result["history"]
    ])  # fmt: skip
    print_table("each round ends with a run to completion", [
        {"what": f"round {r['round']}", **{name: n for name, n in r["counts"].items()},
         "clean run": ", ".join(f"{n}" for n in result["clean_counts"].values()), "same rows": r["same_rows_as_clean_run"]}
        for r in result["rounds"]
    ])  # fmt: skip
    print(f"kills {result['kills']} in {len(result['rounds'])} rounds; stores with errors after a kill: "
          f"{result['kills_with_store_errors']}; every round ended with the clean run's rows: {result['every_round_same_as_clean_run']}")  # fmt: skip
    print(f"results: {write_json('crash', result)}")


if __name__ == "__main__":
    main()
