"""Reading images into data, per image: `extract` (fields off a card), `ocr` and `detect`.

The cards and scenes are the extraction set's dev split (`eval make-extract`), rendered here in a
temporary folder. The baseline is OCR alone on the same cards, the floor under any extraction
(extract = OCR + the tagger + one constrained Qwen reply). Models are loaded and warmed first.

`python -m benchmarks.extract [--cards 20]`
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import percentiles_ms, print_table, write_json

CLIPART = Path("/usr/share/openclipart/png")


def _timed(call, items) -> list[float]:
    seconds = []
    for item in items:
        start = time.perf_counter()
        call(item)
        seconds.append(time.perf_counter() - start)
    return seconds


def run(cards: int = 20) -> dict:
    from vlmsearch.engine import Engine
    from vlmsearch.eval.extraction import build_located, load_items
    from vlmsearch.extract import from_json_schema

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        files = build_located(root / "set", Path("eval/natural/subjects.json"), CLIPART)["dev"]
        items = load_items(files["extract"])[:cards]
        scenes = load_items(files["detect"])
        engine = Engine.from_config(store=root / "store")
        base = files["extract"].parent
        jobs = [(engine.open_image(base / i["image"]), from_json_schema(i["schema"])) for i in items]
        pictures = [engine.open_image(base / s["image"]) for s in scenes]
        engine.extract(*jobs[0])  # load and warm every model once
        engine.detect(pictures[0], scenes[0]["labels"])
        rows = {
            "ocr alone (baseline)": _timed(lambda job: engine.ocr(job[0]), jobs),
            "extract, llm pipeline": _timed(lambda job: engine.extract(*job), jobs),
            "detect, zero-shot labels (scenes)": _timed(lambda p: engine.detect(p, scenes[0]["labels"]), pictures),
            "detect, tagger classes (scenes)": _timed(engine.detect, pictures),
        }
    ocr_p50 = statistics.median(rows["ocr alone (baseline)"])
    table = [
        {"what": what, "n": len(seconds), **percentiles_ms(seconds), "x ocr p50": round(statistics.median(seconds) / ocr_p50, 2)}
        for what, seconds in rows.items()
    ]
    print_table("Reading images into data (ms per image, warm)", table)
    return {"cards": cards, "rows": table}


if __name__ == "__main__":
    from vlmsearch.models.hf import quiet_transformers

    quiet_transformers()
    count = int(sys.argv[sys.argv.index("--cards") + 1]) if "--cards" in sys.argv else 20
    print(f"results: {write_json('extract', run(count))}")
