"""The SBS report as one self-contained HTML file: win-rate bars with 95% whiskers per judge and
criterion, the reference accuracy of both pipelines, per-cluster tables, and the items where the
two pipelines differ most, with their images (embedded, so the file can be sent on its own)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from PIL import Image

from vlmsearch.eval.answers import AnswerRecord
from vlmsearch.eval.bucket.items import Bucket

BAR_WIDTH = 360  # pixels for a win rate of 1
SHOWN_ITEMS = 10


def thumbnail(path: Path | None, side: int = 320) -> str | None:
    if path is None or not path.is_file():
        return None
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _bars(summary: dict) -> list[dict]:
    rows = []
    for criterion, tally in summary["criteria"].items():
        low, high = tally["ci95"]
        rows.append({
            "criterion": criterion, "win_rate": tally["win_rate"], "x": round(BAR_WIDTH * tally["win_rate"], 1),
            "low": round(BAR_WIDTH * low, 1), "high": round(BAR_WIDTH * high, 1),
        })  # fmt: skip
    return rows


def differing_items(bucket: Bucket, verdicts_by_judge: dict[str, dict[str, dict[str, str]]], limit: int = SHOWN_ITEMS) -> list[str]:
    """Items whose verdicts lean hardest one way, summed over judges and criteria."""
    lean: dict[str, float] = {}
    for verdicts in verdicts_by_judge.values():
        for item, by_criterion in verdicts.items():
            lean[item] = lean.get(item, 0.0) + sum({"a": 1, "b": -1}.get(v, 0) for v in by_criterion.values())
    order = [item.id for item in bucket.items if item.id in lean]
    return sorted(order, key=lambda i: -abs(lean[i]))[:limit]


def write_report(
    path: Path, bucket: Bucket, a: str, b: str, summaries: dict[str, dict], verdicts_by_judge: dict[str, dict[str, dict[str, str]]],
    answers_a: Sequence[AnswerRecord], answers_b: Sequence[AnswerRecord], accuracy: dict[str, dict] | None = None,
    human: dict | None = None,
) -> Path:  # fmt: skip
    by_a, by_b = {r.item: r for r in answers_a}, {r.item: r for r in answers_b}
    items = {item.id: item for item in bucket.items}
    shown = []
    for item_id in differing_items(bucket, verdicts_by_judge):
        item = items[item_id]
        shown.append({
            "item": item, "image": thumbnail(bucket.image_path(item)), "a": by_a[item_id], "b": by_b[item_id],
            "verdicts": {judge: v.get(item_id, {}) for judge, v in verdicts_by_judge.items()},
        })  # fmt: skip
    env = Environment(loader=PackageLoader("vlmsearch.eval", "."), autoescape=select_autoescape(["j2", "html"]))
    html = env.get_template("report.html.j2").render(
        a=a, b=b, bucket=bucket, summaries=summaries, bars={j: _bars(s) for j, s in summaries.items()},
        bar_width=BAR_WIDTH, shown=shown, accuracy=accuracy or {}, human=human,
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
