"""Ingest throughput on the demo's sample collection (skimage photos + openclipart), three ways in
one run, so the ratios compare like with like:

- before: the single-process indexer as it was (RapidOCR's own settings; EfficientNet run once per
  role that uses it: tagger, image embedder, joint heads),
- after: the single-process indexer today,
- ray: `index --engine ray` on a local Ray (an actor pool per model), against `after` again on a
  larger collection (so Ray's start-up is spread), start-up and model loading in the actors included.

Then a paper model for N nodes from the measured per-image costs: where the bottleneck moves.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import print_table, write_json
from vlmsearch.config import Settings
from vlmsearch.demo import collection
from vlmsearch.engine import Engine
from vlmsearch.models import bundled

MODEL_STAGES = ("tagger", "features", "joint_embedder", "ocr", "text_embedder")
BEFORE_OCR = {"det_max_side": None, "use_cls": True}  # RapidOCR's defaults, as the indexer used them


class _EveryTime:
    """Stands in for the one-pass memory of EfficientNet outputs: the network runs for every role."""

    @staticmethod
    def get(images, compute):
        return compute(images)


class _Clock:
    """Enough of rich's Progress to note when each batch of work was finished."""

    def __init__(self):
        self.done: list[tuple[float, int]] = []

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def update(self, task: int, advance: int = 0, **kwargs) -> None:
        if advance:
            self.advance(task, advance)

    def advance(self, task: int, count: int) -> None:
        self.done.append((time.perf_counter(), count))


def _with_ocr(settings: Settings, options: dict) -> Settings:
    roles = settings.profile.roles
    ocr = roles["ocr"].model_copy(update={"options": {**roles["ocr"].options, **options}})
    return settings.model_copy(update={"profile": settings.profile.model_copy(update={"roles": {**roles, "ocr": ocr}})})


def _single_process(settings: Settings, root: Path, warmup: list[Path], name: str, repeats: int) -> list:
    engine = Engine(settings.model_copy(update={"store": str(root / f"{name}-warmup")}))
    engine.index(warmup)  # load every model once: load time is not ingest time
    runs = []
    for r in range(repeats):
        engine._store = None
        engine.settings = engine.settings.model_copy(update={"store": str(root / f"{name}{r}")})
        runs.append(engine.index([root / "data"]))
    return runs


def _summary(runs: list, n: int) -> dict:
    seconds = statistics.median(rep.seconds for rep in runs)
    stages = {s: statistics.median(rep.stage_seconds.get(s, 0.0) for rep in runs) for s in runs[0].stage_seconds}
    return {"seconds": round(seconds, 2), "images_per_second": round(n / seconds, 2),
            "stages_ms_per_image": {s: round(1000 * t / n, 1) for s, t in stages.items()}}  # fmt: skip


def run(images: int = 60, repeats: int = 3, ray_images: int = 300) -> dict:
    """`ray_images`: clip art for the Ray comparison (0: none)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos = collection.photos(root / "data" / "photos")
        files = photos + collection.clipart(root / "data" / "clipart", images)
        n = len(files)
        settings = Settings.create()
        remembered = bundled._last_efficientnet_batch
        bundled._last_efficientnet_batch = {fit: _EveryTime() for fit in remembered}
        try:
            before = _summary(_single_process(_with_ocr(settings, BEFORE_OCR), root, photos[:2], "before", repeats), n)
        finally:
            bundled._last_efficientnet_batch = remembered
        after = _summary(_single_process(settings, root, photos[:2], "after", repeats), n)
        result = {"images": n, "repeats": repeats, "before": before, "after": after,
                  "speedup": round(after["images_per_second"] / before["images_per_second"], 2)}  # fmt: skip
        if ray_images:
            big = root / "big"
            m = len(collection.clipart(big, ray_images))
            local = Engine(settings.model_copy(update={"store": str(root / "local-big")}))
            local.index(photos[:2])  # warm, as above
            local._store = None
            local.settings = local.settings.model_copy(update={"store": str(root / "local-big2")})
            clock, started = _Clock(), time.perf_counter()
            report = Engine(settings.model_copy(update={"store": str(root / "ray")})).index([big], progress=clock, engine="ray")
            report.seconds = time.perf_counter() - started  # Ray's own start included: a user waits for it too
            result["scale"] = {"images": m, "local": _summary([local.index([big])], m), "ray": _summary([report], m),
                               "ray_first_batch_s": round(clock.done[0][0] - started, 1)}  # fmt: skip
            result["scale"]["ray_vs_local"] = round(result["scale"]["ray"]["images_per_second"] / result["scale"]["local"]["images_per_second"], 2)
            result["nodes"] = paper_model(result["scale"]["ray"]["stages_ms_per_image"])
    rows = [{"stage": s, "before ms/img": before["stages_ms_per_image"].get(s), "after ms/img": v}
            for s, v in after["stages_ms_per_image"].items()]  # fmt: skip
    rows.append({"stage": "images/s", "before ms/img": before["images_per_second"], "after ms/img": after["images_per_second"]})
    print_table(f"ingest: {n} images, median of {repeats} runs, models warm", rows)
    print(f"after / before: {result['speedup']}x images/s")
    if ray_images:
        scale = result["scale"]
        rows = [{"stage": s, "local ms/img": v, "ray ms/img (an actor per pool, 1 thread each)": scale["ray"]["stages_ms_per_image"].get(s)}
                for s, v in scale["local"]["stages_ms_per_image"].items()]  # fmt: skip
        rows.append({"stage": "images/s", "local ms/img": scale["local"]["images_per_second"],
                     "ray ms/img (an actor per pool, 1 thread each)": scale["ray"]["images_per_second"]})  # fmt: skip
        print_table(f"ingest, {scale['images']} clip-art images: local engine (warm) vs --engine ray (a local Ray, start-up included)", rows)
        print(f"ray / local: {scale['ray_vs_local']}x images/s; ray's first finished batch after {scale['ray_first_batch_s']} s")
        print_table("paper model: N nodes of 16 cores (from the Ray run's per-image costs)", result["nodes"])
    return result


def paper_model(ms_per_image: dict[str, float], cores: int = 16) -> list[dict]:
    """Images/s for N nodes: the model pools scale with cores; the driver's plan and store writes do not.

    Per image, the model pools cost the sum of their single-thread milliseconds; a node with `cores`
    cores does cores x 1000 / that many images per second. The driver reads back what the pools
    finish and writes it (store_write) after planning (read: the store lookups), one at a time."""
    model_ms = sum(ms_per_image.get(s, 0.0) for s in (*MODEL_STAGES, "info_cards", "decode"))
    driver_ms = ms_per_image.get("store_write", 0.0) + ms_per_image.get("read", 0.0)
    driver_cap = 1000 / driver_ms if driver_ms else float("inf")
    rows = []
    for nodes in (1, 4, 16, 64, 256):
        models = nodes * cores * 1000 / model_ms
        rows.append({"what": f"{nodes} x {cores} cores", "model pools img/s": round(models), "driver cap img/s": round(driver_cap),
                     "expected img/s": round(min(models, driver_cap)), "bottleneck": "models" if models < driver_cap else "driver writes"})  # fmt: skip
    return rows


if __name__ == "__main__":
    print(write_json("ingest", run()))
