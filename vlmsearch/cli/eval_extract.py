"""`vlmsearch eval make-extract | extract | detect`: structured extraction and located objects, scored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vlmsearch.cli.common import fail, open_engine, out, progress_bar
from vlmsearch.errors import VlmsearchError

DEFAULT_OUT = Path("out/eval")


def register(eval_app: typer.Typer) -> None:
    eval_app.command("make-extract")(eval_make_extract)
    eval_app.command("extract")(eval_extract)
    eval_app.command("detect")(eval_detect)


def eval_make_extract(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for <split>/{extract.jsonl, detect.jsonl, images/}")] = Path("out/located"),
    subjects: Annotated[Path, typer.Option(help="The hand-written set's subjects (their drawings make the scenes)")] = Path("eval/natural/subjects.json"),
    images: Annotated[Path, typer.Option(help="Where the drawings are")] = Path("/usr/share/openclipart/png"),
    seed: Annotated[int, typer.Option(help="The same seed gives the same cards and scenes")] = 0,
) -> None:
    """Render the extraction set (signs, price tags, notices, tickets, labels) and the detection scenes."""
    from vlmsearch.eval.extraction import build_located, load_items

    try:
        written = build_located(out_dir, subjects, images, seed)
    except VlmsearchError as exc:
        fail(exc)
    for split, files in written.items():
        cards, scenes = load_items(files["extract"]), load_items(files["detect"])
        objects = sum(len(s["objects"]) for s in scenes)
        out.print(f"{split}: {files['extract']} ({len(cards)} cards), {files['detect']} ({len(scenes)} scenes, {objects} objects)", highlight=False)


def eval_extract(
    bucket: Annotated[Path, typer.Option(help='extract.jsonl: {"image", "schema", "expect": {field: regex, number or null}} a line')],
    pipeline: Annotated[str, typer.Option(help="llm or vlm")] = "llm",
    out_dir: Annotated[Path, typer.Option("--out", help="Where extract-<pipeline>.json goes")] = DEFAULT_OUT,
) -> None:
    """Field exact match, valid outputs and invented values over a bucket of rendered cards."""
    from vlmsearch.eval.extraction import run_extract

    try:
        engine = open_engine()
        with progress_bar() as progress:
            run = run_extract(engine, bucket, pipeline, progress)
    except VlmsearchError as exc:
        fail(exc)
    summary = run.summary()
    out_dir.mkdir(parents=True, exist_ok=True)
    report = out_dir / f"extract-{pipeline}.json"
    report.write_text(json.dumps({"bucket": str(bucket), "pipeline": pipeline, **summary, "rows": run.rows, "misfits": run.misfits}, indent=1, default=str))
    low, high = summary["exact_match_ci"]
    out.print(
        f"{summary['items']} images, {summary['fields_shown']} fields shown: exact match {summary['exact_match']:.3f} ({low:.3f}-{high:.3f}); "
        f"valid {summary['valid_share']:.0%}; invented {summary['invented']} of {summary['fields_not_shown']} fields not shown, "
        f"{summary['invented_on_another_schema']} of {summary['fields_of_another_schema']} asked with another kind's schema; "
        f"p50 {summary['ms_p50']:.0f} ms",
        highlight=False,
    )
    for title, table in (("field", summary["per_field"]), ("kind", summary["per_kind"])):
        out.print("  " + ", ".join(f"{name} {v['exact_match']:.2f} (n={v['n']})" for name, v in table.items()), highlight=False)
    out.print(f"report: {report}", highlight=False)


def eval_detect(
    bucket: Annotated[Path, typer.Option(help='detect.jsonl: {"image", "labels", "objects": [{"label", "box"}]} a line')],
    out_dir: Annotated[Path, typer.Option("--out", help="Where detect.json and detect.png go")] = DEFAULT_OUT,
) -> None:
    """Recall of placed objects (IoU >= 0.5, right label) against one whole-image box."""
    from vlmsearch.eval.extraction import detect_sheet, run_detect

    try:
        engine = open_engine()
        with progress_bar() as progress:
            report = run_detect(engine, bucket, progress)
    except VlmsearchError as exc:
        fail(exc)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "detect.json").write_text(json.dumps({"bucket": str(bucket), **report}, indent=1))
    sheet = detect_sheet(report["per_scene"], out_dir / "detect.png")
    low, high = report["recall_ci"]
    out.print(
        f"{report['objects']} objects in {report['scenes']} scenes: recall {report['recall']:.3f} ({low:.3f}-{high:.3f}), "
        f"boxes found whatever the label {report['box_recall_any_label']:.3f}, precision {report['precision']:.3f}; "
        f"baseline (one whole-image box) {report['baseline_whole_image_recall']:.3f}; p50 {report['ms_p50']:.0f} ms",
        highlight=False,
    )
    out.print(f"report: {out_dir / 'detect.json'}, picture: {sheet}", highlight=False)
