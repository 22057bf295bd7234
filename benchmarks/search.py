"""Search latency, ANN recall, build time and disk size: LanceDB and Milvus Lite in the same run,
both against exact numpy search (the baseline, and the ground truth for recall@10).

`python -m benchmarks.search [--sizes 100000,1000000] [--queries 200] [--stores lance,milvus]`
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import percentiles_ms, print_table, write_json
from vlmsearch.records import PassageRecord
from vlmsearch.stores import StoreInfo, open_store

DIM = 384  # the offline text embedder's size
WORDS = np.array("cat dog coffee rocket car tree house river music stone bread glass paper metal cloud".split())
BATCH = 10_000


def clustered(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    """Unit vectors around random centres: real embeddings are clustered, not uniform."""
    x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def _location(kind: str, root: Path) -> tuple[str, Path]:
    return (str(root / "lance"), root / "lance") if kind == "lance" else (f"milvus://{root}/milvus.db", root / "milvus.db")


def measure(kind: str, data: np.ndarray, texts: list[str], probe: np.ndarray, truth: list[set[int]], k: int) -> dict:
    info = StoreInfo(image_embedder="bench", image_dim=8, text_embedder="bench", text_dim=DIM)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        location, folder = _location(kind, Path(tmp))
        store = open_store(location, info, ann_min_rows=1)
        started = time.perf_counter()
        for start in range(0, len(data), BATCH):
            end = min(len(data), start + BATCH)
            store.add_passages([PassageRecord(f"d{i}:0", f"d{i}", "bench", 0, texts[i], data[i]) for i in range(start, end)])
        insert_s = time.perf_counter() - started
        store.finalize()
        build_s = time.perf_counter() - started
        dense_s, hybrid_s, recalls = [], [], []
        for q, vector in enumerate(probe):
            t = time.perf_counter()
            hits = store._dense("passages", "vector", vector, k, None)
            dense_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            store.passages(texts[q], vector, k)
            hybrid_s.append(time.perf_counter() - t)
            recalls.append(len({int(row["doc_id"][1:]) for row, _ in hits} & truth[q]) / k)
        size = disk_bytes(folder)
        store.close()
    return {"insert_s": round(insert_s, 1), "build_s": round(build_s, 1), "disk_mb": round(size / 2**20, 1),
            "recall@10": round(float(np.mean(recalls)), 4), "dense": percentiles_ms(dense_s), "hybrid": percentiles_ms(hybrid_s)}  # fmt: skip


def run(sizes=(10_000, 100_000), queries: int = 200, k: int = 10, stores=("lance", "milvus")) -> dict:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((256, DIM))
    results = {}
    for n in sizes:
        data, probe = clustered(n, rng, centres), clustered(queries, rng, centres)
        texts = [" ".join(rng.choice(WORDS, 12)) for _ in range(n)]
        exact_s, truth = [], []
        for vector in probe:
            t = time.perf_counter()
            truth.append(set(np.argpartition(-(data @ vector), k)[:k].tolist()))
            exact_s.append(time.perf_counter() - t)
        results[str(n)] = {"exact_numpy": percentiles_ms(exact_s)}
        for kind in stores:
            results[str(n)][kind] = measure(kind, data, texts, probe, truth, k)
            print(f"{n:,} vectors, {kind}: {results[str(n)][kind]}", flush=True)
    rows = []
    for n, r in results.items():
        rows.append({"what": f"{int(n):,} x {DIM}", "method": "exact numpy (baseline)", **r["exact_numpy"]})
        for kind in stores:
            m = r[kind]
            rows.append({"what": f"{int(n):,} x {DIM}", "method": f"{kind} dense", **m["dense"], "recall@10": m["recall@10"],
                         "build s": m["build_s"], "disk MB": m["disk_mb"]})  # fmt: skip
            rows.append({"what": f"{int(n):,} x {DIM}", "method": f"{kind} hybrid (BM25 + dense, RRF)", **m["hybrid"]})
    print_table(f"search: {queries} queries, k={k}; recall of each store's ANN against exact search", rows)
    return {"dim": DIM, "queries": queries, "k": k, "sizes": results}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--stores", default="lance,milvus")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    print(write_json("search", run(sizes, args.queries, stores=tuple(args.stores.split(",")))))
