"""Search latency and ANN recall: LanceDB's IVF-HNSW index against exact numpy search (the
baseline, and the ground truth for recall@10), in the same run, at 10k and 100k passages."""

from __future__ import annotations

import tempfile
import time

import numpy as np

from benchmarks.common import percentiles_ms, print_table, write_json
from vlmsearch.records import PassageRecord
from vlmsearch.stores import StoreInfo, open_store

DIM = 384  # the offline text embedder's size
WORDS = np.array("cat dog coffee rocket car tree house river music stone bread glass paper metal cloud".split())


def clustered(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    """Unit vectors around random centres: real embeddings are clustered, not uniform."""
    x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def run(sizes=(10_000, 100_000), queries: int = 200, k: int = 10) -> dict:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((256, DIM))
    results = {}
    for n in sizes:
        data, probe = clustered(n, rng, centres), clustered(queries, rng, centres)
        texts = [" ".join(rng.choice(WORDS, 12)) for _ in range(n)]
        with tempfile.TemporaryDirectory() as tmp:
            info = StoreInfo(image_embedder="bench", image_dim=8, text_embedder="bench", text_dim=DIM)
            store = open_store(tmp, info, ann_min_rows=1)
            for start in range(0, n, 10_000):
                store.add_passages([PassageRecord(f"d{i}:0", f"d{i}", "bench", 0, texts[i], data[i]) for i in range(start, min(n, start + 10_000))])
            started = time.perf_counter()
            store.finalize()
            build_s = time.perf_counter() - started
            exact_s, ann_s, hybrid_s, recalls = [], [], [], []
            for q, vector in enumerate(probe):
                t = time.perf_counter()
                truth = np.argpartition(-(data @ vector), k)[:k]
                exact_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                hits = store._dense("passages", "vector", vector, k, None)
                ann_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                store.passages(texts[q], vector, k)
                hybrid_s.append(time.perf_counter() - t)
                found = {int(h["doc_id"][1:]) for h in hits}
                recalls.append(len(found & set(truth.tolist())) / k)
        results[str(n)] = {
            "index_build_s": round(build_s, 2), "recall@10": round(float(np.mean(recalls)), 4),
            "exact_numpy": percentiles_ms(exact_s), "ann_lancedb": percentiles_ms(ann_s), "hybrid_lancedb": percentiles_ms(hybrid_s),
        }  # fmt: skip
    rows = []
    for n, r in results.items():
        for method in ("exact_numpy", "ann_lancedb", "hybrid_lancedb"):
            rows.append({"what": f"{int(n):,} x {DIM}", "method": method, **r[method],
                         "recall@10": r["recall@10"] if method == "ann_lancedb" else "", "build s": r["index_build_s"] if method == "ann_lancedb" else ""})  # fmt: skip
    print_table(f"search: {queries} queries, k={k}; recall of the ANN index against exact search", rows)
    return {"dim": DIM, "queries": queries, "k": k, "sizes": results}


if __name__ == "__main__":
    print(write_json("search", run()))
