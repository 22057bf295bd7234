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
VOCABULARY = 30_000  # --text zipf: words ranked by frequency as in prose (Zipf's law, exponent ~1.1)


def passage_texts(n: int, rng: np.random.Generator, kind: str) -> list[str]:
    """The passages' text. `uniform15` (the first benchmark's): 12 words of 15, so every query word is in over half
    the rows and BM25 scores nearly all of them; `zipf`: 120 words of a 30,000-word vocabulary drawn by rank as in
    prose, so a query's rarer words narrow the rows to score."""
    if kind == "uniform15":
        return [" ".join(rng.choice(WORDS, 12)) for _ in range(n)]
    ranks = np.minimum(rng.zipf(1.1, (n, 120)), VOCABULARY)
    return [" ".join(f"w{r}" for r in row) for row in ranks]


def query_text(passage: str, kind: str) -> str:
    """A keyword query for a passage: as the first benchmark asked (the passage itself), or, for prose-like text,
    its 5 rarest words (what a person types to find it)."""
    if kind == "uniform15":
        return passage
    return " ".join(sorted(set(passage.split()), key=lambda w: -int(w[1:]))[:5])


BATCH = 10_000


def clustered(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    """Unit vectors around random centres: real embeddings are clustered, not uniform."""
    x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def _location(kind: str, root: Path) -> tuple[str, Path]:
    return (str(root / "lance"), root / "lance") if kind == "lance" else (f"milvus://{root}/milvus.db", root / "milvus.db")


# (nprobes, refine_factor, ef). nprobes None: Lance's default; ef 0: Lance's default (the code before the sweep),
# None: chosen from the table's size (LanceStore._ef, shipped). Lance needs ef >= its k (limit x refine).
SWEEP = [
    (None, 4, 0),
    (None, 10, 0),
    (None, 20, 0),
    (None, 50, 0),
    (2, 4, 0),
    (5, 4, 0),
    (10, 4, 0),
    (50, 4, 0),
    (100, 20, 0),
    (None, 4, 100),
    (None, 4, 300),
    (None, 4, 1000),
    (None, 20, 1000),
    (50, 4, 300),
    (None, 4, None),
]


def recall_and_latency(store, probe: np.ndarray, truth: list[set[int]], k: int) -> dict:
    seconds, recalls = [], []
    for q, vector in enumerate(probe):
        t = time.perf_counter()
        hits = store._dense("passages", "vector", vector, k, None)
        seconds.append(time.perf_counter() - t)
        recalls.append(len({int(row["doc_id"][1:]) for row, _ in hits} & truth[q]) / k)
    return {"recall@10": round(float(np.mean(recalls)), 4), **percentiles_ms(seconds)}


def sweep(store, probe: np.ndarray, truth: list[set[int]], queries_text: list[str], k: int) -> dict:
    """The recall/latency curve of the query parameters over one built index, and where hybrid search's time goes."""
    curve = []
    for nprobes, refine, ef in SWEEP:
        store.ann_nprobes, store.ann_refine_factor, store.ann_ef = nprobes, refine, ef
        point = {
            "nprobes": nprobes or "default",
            "refine_factor": refine,
            "ef": {0: "Lance's default", None: f"by size ({store._ef('passages', 'vector', k)})"}.get(ef, ef),
        }
        try:
            point |= recall_and_latency(store, probe, truth, k)
        except RuntimeError as exc:  # a combination Lance refuses (its ef bound): recorded, not fatal
            point["error"] = str(exc).split(",")[0]
        print(point, flush=True)
        curve.append(point)
    store.ann_nprobes, store.ann_refine_factor, store.ann_ef = None, 4, None  # the shipped query
    depth = max(3 * k, 30)  # as StoreBase._hybrid asks each side
    parts = {
        "keyword side": lambda q: store._keyword("passages", queries_text[q], depth, None),
        "dense side": lambda q: store._dense("passages", "vector", probe[q], depth, None),
    }
    hybrid = {}
    for name, call in parts.items():
        seconds = []
        for q in range(len(probe)):
            t = time.perf_counter()
            call(q)
            seconds.append(time.perf_counter() - t)
        hybrid[name] = percentiles_ms(seconds)
    print_table(f"LanceDB at {store._table_rows('passages'):,} rows: recall@10 and latency by query parameters", curve)
    return {"curve": curve, "hybrid_parts": hybrid}


def measure(
    kind: str,
    data: np.ndarray,
    texts: list[str],
    queries_text: list[str],
    probe: np.ndarray,
    truth: list[set[int]],
    k: int,
    with_sweep: bool = False,
    ann_index: str = "ivf_hnsw_sq",
) -> dict:
    info = StoreInfo(image_embedder="bench", image_dim=8, text_embedder="bench", text_dim=DIM)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        location, folder = _location(kind, Path(tmp))
        store = open_store(location, info, ann_min_rows=1, ann_index=ann_index)
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
            store.passages(queries_text[q], vector, k)
            hybrid_s.append(time.perf_counter() - t)
            recalls.append(len({int(row["doc_id"][1:]) for row, _ in hits} & truth[q]) / k)
        size = disk_bytes(folder)
        swept = sweep(store, probe, truth, queries_text, k) if with_sweep and kind == "lance" else None
        store.close()
    return {"insert_s": round(insert_s, 1), "build_s": round(build_s, 1), "disk_mb": round(size / 2**20, 1),
            "recall@10": round(float(np.mean(recalls)), 4), "dense": percentiles_ms(dense_s), "hybrid": percentiles_ms(hybrid_s), **({"sweep": swept} if swept else {})}  # fmt: skip


def run(
    sizes=(10_000, 100_000),
    queries: int = 200,
    k: int = 10,
    stores=("lance", "milvus"),
    with_sweep: bool = False,
    text: str = "uniform15",
    ann_index: str = "ivf_hnsw_sq",
) -> dict:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((256, DIM))
    results = {}
    for n in sizes:
        data, probe = clustered(n, rng, centres), clustered(queries, rng, centres)
        texts = passage_texts(n, rng, text)
        exact_s, truth = [], []
        for vector in probe:
            t = time.perf_counter()
            truth.append(set(np.argpartition(-(data @ vector), k)[:k].tolist()))
            exact_s.append(time.perf_counter() - t)
        results[str(n)] = {"exact_numpy": percentiles_ms(exact_s)}
        for kind in stores:
            results[str(n)][kind] = measure(kind, data, texts, [query_text(texts[q], text) for q in range(len(probe))], probe, truth, k, with_sweep, ann_index)
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
    return {"dim": DIM, "queries": queries, "k": k, "text": text, "sizes": results}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--stores", default="lance,milvus")
    parser.add_argument("--text", choices=("uniform15", "zipf"), default="uniform15", help="the passages' words (passage_texts)")
    parser.add_argument("--ann-index", choices=("ivf_hnsw_sq", "ivf_flat"), default="ivf_hnsw_sq")
    parser.add_argument("--sweep", action="store_true", help="LanceDB's recall/latency curve over its query parameters")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    print(write_json("search", run(sizes, args.queries, stores=tuple(args.stores.split(",")), with_sweep=args.sweep, text=args.text, ann_index=args.ann_index)))
