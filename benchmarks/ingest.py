"""Ingest throughput on the demo's sample collection: images/s, time per stage, and the overhead
of everything that is not model time (reading, hashing, store writes, index updates, glue)."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from benchmarks.common import print_table, write_json
from vlmsearch.config import Settings
from vlmsearch.demo import collection
from vlmsearch.engine import Engine

MODEL_STAGES = ("tagger", "features", "ocr", "text_embedder")


def run(images: int = 60, repeats: int = 3) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos = collection.photos(root / "data" / "photos")
        clip = collection.clipart(root / "data" / "clipart", images)
        files = photos + clip
        settings = Settings.create(store=root / "warmup")
        engine = Engine(settings)
        engine.index(photos[:2])  # load every model once: load time is not ingest time
        runs = []
        for r in range(repeats):
            engine._store = None
            engine.settings = settings.model_copy(update={"store_dir": root / f"store{r}"})
            runs.append(engine.index([root / "data"]))
    n = len(files)
    seconds = statistics.median(rep.seconds for rep in runs)
    stages = {s: statistics.median(rep.stage_seconds.get(s, 0.0) for rep in runs) for s in runs[0].stage_seconds}
    model_time = sum(stages.get(s, 0.0) for s in MODEL_STAGES)
    result = {
        "images": n, "repeats": repeats, "seconds_median": round(seconds, 3),
        "images_per_second": round(n / seconds, 2), "model_seconds": round(model_time, 3),
        "overhead_ratio": round(seconds / model_time, 3),
        "stages": {s: {"seconds": round(t, 3), "ms_per_image": round(1000 * t / n, 2)} for s, t in stages.items()},
    }  # fmt: skip
    print_table(
        f"ingest: {n} images (skimage photos + openclipart), median of {repeats} runs, models warm",
        [{"stage": s, "seconds": v["seconds"], "ms/image": v["ms_per_image"]} for s, v in result["stages"].items()]
        + [{"stage": "end to end", "seconds": seconds, "ms/image": 1000 * seconds / n}],
    )
    print(f"images/s {result['images_per_second']}; end-to-end / model time = {result['overhead_ratio']}")
    return result


if __name__ == "__main__":
    print(write_json("ingest", run()))
