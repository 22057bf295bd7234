"""`eval make-extract`, `eval extract` and `eval detect`: reading images into data, scored.

extract: per field, is the value right (strings compared squeezed: no case, spaces or punctuation,
the card's printed label allowed before the value; numbers equal), does every output validate
against its schema, and how many values were written for a field the card does not show (invented).
detect: of the placed objects, how many are found (IoU >= 0.5 with the placed box and the right
label), against the baseline of one whole-image box with the best label for the whole image.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from vlmsearch.errors import BadInputError
from vlmsearch.eval.bucket.cards import KINDS, NAMES, card, draw, expect_pattern, fonts, squeeze
from vlmsearch.eval.bucket.scenes import scene
from vlmsearch.eval.stats import bootstrap_ci
from vlmsearch.extract.detect import iou

SPLITS = {"dev": 40, "test": 70}  # cards per split; scenes below
SCENES = {"dev": 12, "test": 30}
MIN_IOU = 0.5


def build_located(out: Path, subjects_file: Path, drawings: Path, seed: int = 0) -> dict[str, dict[str, Path]]:
    """<out>/<split>/{extract.jsonl, detect.jsonl, images/}: rendered cards and scenes."""
    subjects = json.loads(subjects_file.read_text(encoding="utf-8"))
    written: dict[str, dict[str, Path]] = {}
    faces = fonts()
    for split, count in SPLITS.items():
        folder = out / split
        (folder / "images").mkdir(parents=True, exist_ok=True)
        rng = random.Random(f"{seed}:cards:{split}")
        cards = []
        for n in range(count):
            kind = KINDS[n % len(KINDS)]
            font_name, font = faces[n % len(faces)]
            c = card(kind, NAMES[split], rng)
            name = f"card-{n:03d}.jpg"
            draw(c, rng, font).save(folder / "images" / name, quality=88)
            expect = {f: (v if v is None or isinstance(v, float) else expect_pattern(v, c.accept_prefix.get(f, ""))) for f, v in c.expect.items()}
            cards.append({"id": f"{split}-card-{n:03d}", "image": f"images/{name}", "kind": kind, "font": font_name, "schema": c.schema, "expect": expect})
        pool = [(slug, s["drawing"]) for slug, s in subjects.items() if s["split"] == split and s.get("drawing")]
        missing = [d for _, d in pool if not (drawings / d).is_file()]
        if missing:
            raise BadInputError(f"drawing not found: {drawings / missing[0]} (apt-get install openclipart-png)")
        labels = sorted({_label(slug) for slug, _ in pool})
        scenes = []
        rng = random.Random(f"{seed}:scenes:{split}")
        for n in range(SCENES[split]):
            chosen = rng.sample(pool, 1 + n % 4)
            picture, boxes = scene([drawings / d for _, d in chosen], rng)
            name = f"scene-{n:03d}.png"
            picture.save(folder / "images" / name)
            objects = [{"label": _label(slug), "box": list(box)} for (slug, _), box in zip(chosen, boxes) if box]
            scenes.append({"id": f"{split}-scene-{n:03d}", "image": f"images/{name}", "labels": labels, "objects": objects})
        for file, items in (("extract.jsonl", cards), ("detect.jsonl", scenes)):
            (folder / file).write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
        written[split] = {"extract": folder / "extract.jsonl", "detect": folder / "detect.jsonl"}
    return written


def load_items(path: Path) -> list[dict]:
    if not path.is_file():
        raise BadInputError(f"no such bucket: {path} (`vlmsearch eval make-extract` writes one)")
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise BadInputError(f"{path}:{number}: not JSON ({exc})") from None
    return items


def field_right(expected, value) -> bool:
    if expected is None:
        return value is None
    if value is None or isinstance(value, bool):
        return False
    if isinstance(expected, float | int):
        try:
            return abs(float(value) - expected) < 1e-6
        except (TypeError, ValueError):
            return False
    return re.fullmatch(expected, squeeze(value)) is not None


@dataclass
class ExtractRun:
    rows: list[dict]
    misfits: list[dict]  # fields of another kind's schema, absent from the card

    def summary(self) -> dict:
        shown = [(r["field"], r["right"]) for r in self.rows if r["expected"] is not None]
        per_field, per_kind = defaultdict(list), defaultdict(list)
        for r in self.rows:
            if r["expected"] is not None:
                per_field[r["field"]].append(r["right"])
                per_kind[r["kind"]].append(r["right"])
        rights = [float(right) for _, right in shown]
        items = {r["id"]: r for r in self.rows}
        times = [r["ms"] for r in items.values()]
        absent = [r for r in self.rows if r["expected"] is None]
        return {
            "items": len(items), "fields_shown": len(shown),
            "exact_match": statistics.fmean(rights) if rights else float("nan"), "exact_match_ci": bootstrap_ci(rights),
            "valid_share": statistics.fmean(r["valid"] for r in items.values()),
            "invented": sum(r["value"] is not None for r in absent), "fields_not_shown": len(absent),
            "invented_on_another_schema": sum(m["value"] is not None for m in self.misfits), "fields_of_another_schema": len(self.misfits),
            "per_field": {f: {"n": len(v), "exact_match": statistics.fmean(v)} for f, v in sorted(per_field.items())},
            "per_kind": {k: {"n": len(v), "exact_match": statistics.fmean(v)} for k, v in sorted(per_kind.items())},
            "ms_p50": statistics.median(times), "ms_p90": sorted(times)[int(0.9 * (len(times) - 1))],
        }  # fmt: skip


def run_extract(engine, bucket: Path, pipeline: str = "llm", progress=None, mismatched: bool = True) -> ExtractRun:
    """Every card with its own schema; with `mismatched`, also with another kind's (invented values)."""
    from vlmsearch.extract import from_json_schema

    items = load_items(bucket)
    task = progress.add_task(f"extract ({pipeline})", total=len(items)) if progress else None
    rows, misfits = [], []
    for number, item in enumerate(items):
        schema = from_json_schema(item["schema"])
        start = time.perf_counter()
        extraction = engine.extract(bucket.parent / item["image"], schema, pipeline=pipeline)
        ms = 1000 * (time.perf_counter() - start)
        try:
            schema.validate(extraction.data)
            valid = True
        except BadInputError:
            valid = False
        for field, expected in item["expect"].items():
            value = extraction.data.get(field)
            rows.append({"id": item["id"], "kind": item["kind"], "font": item["font"], "field": field, "expected": expected,
                         "value": value, "right": field_right(expected, value), "valid": valid, "ms": ms})  # fmt: skip
        if mismatched:
            misfits.extend(_misfit(engine, bucket, number, items, pipeline))
        if task is not None:
            progress.advance(task)
    return ExtractRun(rows, misfits)


def _misfit(engine, bucket: Path, number: int, items: list[dict], pipeline: str) -> list[dict]:
    """Card `number` asked another kind's schema (a ticket's fields of a shop sign): its fields that
    the card's own schema lacks are nowhere on it, so any value there is invented."""
    from vlmsearch.extract import from_json_schema

    item = items[number]
    other = next((i for i in items[number + 1 :] + items if i["kind"] != item["kind"]), None)
    if other is None:
        return []
    extraction = engine.extract(bucket.parent / item["image"], from_json_schema(other["schema"]), pipeline=pipeline)
    absent = [f for f in other["schema"]["properties"] if f not in item["schema"]["properties"]]
    return [{"id": item["id"], "asked": other["kind"], "field": f, "value": extraction.data.get(f)} for f in absent]


def run_detect(engine, bucket: Path, progress=None) -> dict:
    """Recall of placed objects by the detector and by the whole-image baseline, per scene size."""
    items = load_items(bucket)
    task = progress.add_task("detect", total=len(items)) if progress else None
    found, baseline, boxes_found, detections, right_detections, times = [], [], [], 0, 0, []
    per_size = defaultdict(list)
    scenes = []
    for item in items:
        path = bucket.parent / item["image"]
        picture = engine.open_image(path)  # read once: the detector and the baseline look at the same pixels
        start = time.perf_counter()
        got = engine.detect(picture, item["labels"])
        times.append(1000 * (time.perf_counter() - start))
        whole = engine.tag(picture, item["labels"], top_k=1)[0]
        whole_box = (0, 0, picture.width, picture.height)
        detections += len(got)
        matched = set()
        for obj in item["objects"]:
            hit = any(d.label == obj["label"] and iou(d.box, obj["box"]) >= MIN_IOU for d in got)
            found.append(float(hit))
            per_size[len(item["objects"])].append(float(hit))
            boxes_found.append(float(any(iou(d.box, obj["box"]) >= MIN_IOU for d in got)))
            baseline.append(float(whole.label == obj["label"] and iou(whole_box, obj["box"]) >= MIN_IOU))
            matched |= {i for i, d in enumerate(got) if d.label == obj["label"] and iou(d.box, obj["box"]) >= MIN_IOU}
        right_detections += len(matched)
        scenes.append({"id": item["id"], "image": str(path), "objects": item["objects"], "found": [d.to_json() for d in got]})
        if task is not None:
            progress.advance(task)
    return {
        "scenes": len(items), "objects": len(found),
        "recall": statistics.fmean(found), "recall_ci": bootstrap_ci(found),
        "box_recall_any_label": statistics.fmean(boxes_found),
        "precision": right_detections / detections if detections else float("nan"),
        "baseline_whole_image_recall": statistics.fmean(baseline), "baseline_ci": bootstrap_ci(baseline),
        "recall_by_objects_in_scene": {n: statistics.fmean(v) for n, v in sorted(per_size.items())},
        "ms_p50": statistics.median(times),
        "per_scene": scenes,
    }  # fmt: skip


def _label(slug: str) -> str:
    return slug.replace("_", " ").replace("-", " ")


def detect_sheet(per_scene: list[dict], path: Path, columns: int = 4, side: int = 360, limit: int = 16) -> Path:
    """A contact sheet of scenes: placed boxes in green, found ones in red with their labels."""
    from PIL import Image, ImageDraw, ImageFont

    from vlmsearch.images import load_image

    shown = per_scene[:limit]
    rows = max(1, -(-len(shown) // columns))
    sheet = Image.new("RGB", (columns * side, rows * side), "white")
    for n, scene_row in enumerate(shown):
        picture = load_image(Path(scene_row["image"])).convert("RGB")
        pen = ImageDraw.Draw(picture)
        for obj in scene_row["objects"]:
            pen.rectangle(obj["box"], outline=(0, 160, 0), width=4)
        for d in scene_row["found"]:
            pen.rectangle(d["box"], outline=(220, 0, 0), width=3)
            pen.text((d["box"][0] + 4, d["box"][1] + 2), f"{d['label']} {d['score']:.2f}", fill=(220, 0, 0), font=ImageFont.load_default(size=26))
        picture.thumbnail((side - 8, side - 8))
        sheet.paste(picture, ((n % columns) * side + 4, (n // columns) * side + 4))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
