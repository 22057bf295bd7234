"""The answer pipeline's latency: per stage (p50/p95), time to first token and end to end, for the
llm and vlm pipelines over fixed image + question cases, on the demo's WordNet documents. Both run
the offline profile: the vlm pipeline with our VLM (the shipped adapter over the bundled Qwen) as
rephraser and captioner."""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.common import percentiles_ms, print_table
from vlmsearch.demo import collection
from vlmsearch.engine import Engine
from vlmsearch.pipeline import AnswerEvent, DraftEvent, TokenEvent

CASES = (
    ("chelsea", "what kind of animal is this?"),
    ("coffee", "what is this drink made from?"),
    ("rocket", "what is this used for?"),
    ("clock", "what is this object for?"),
    ("astronaut", "what is this person wearing?"),
    ("moon", "what is this?"),
    ("text", "what does the text in this image say?"),
    (None, "what is an espresso maker?"),
)


def _measure(engine: Engine, pipeline: str, photos: dict[str, Path]) -> dict:
    stages, first_words, first_text, end_to_end, outside = defaultdict(list), [], [], [], []
    for name, question in CASES:
        start = time.perf_counter()
        first = words = None
        for event in engine.ask_stream(question, photos[name] if name else None, pipeline):
            if isinstance(event, DraftEvent) and event.text.strip() and words is None:
                words = time.perf_counter() - start
            if isinstance(event, TokenEvent) and first is None:
                first = time.perf_counter() - start
            if isinstance(event, AnswerEvent):
                answer = event.answer
        total = time.perf_counter() - start
        first_text.append(first or total)
        first_words.append(words or first or total)
        end_to_end.append(total)
        for step in answer.trace:
            stages[step.stage].append(step.ms / 1000)
            if step.stage == "generate" and step.output.get("first_token_ms"):
                stages["model first token"].append(step.output["first_token_ms"] / 1000)
        outside.append(total - sum(step.ms for step in answer.trace) / 1000)
    return {
        "cases": len(CASES),
        "stages": {s: percentiles_ms(v) for s, v in stages.items()},
        "first_words": percentiles_ms(first_words),
        "first_sentence": percentiles_ms(first_text),
        "end_to_end": percentiles_ms(end_to_end),
        "outside_stages_ratio": round(sum(end_to_end) / (sum(end_to_end) - sum(outside)), 4),
    }


def _stage_rows(label: str, results: dict) -> list[dict]:
    rows = []
    for pipeline, r in results.items():
        shown = {
            **r["stages"],
            "first words shown (draft)": r["first_words"],
            "first sentence shown (checked)": r["first_sentence"],
            "end to end": r["end_to_end"],
        }
        rows += [{"profile": label, "pipeline": pipeline, "stage": stage, **p} for stage, p in shown.items()]
    return rows


def _measure_profile(profile: str | None, root: Path, photos: dict[str, Path]) -> dict:
    engine = Engine.from_config(store=root / f"store-{Path(profile or 'default').stem}", profile=profile)
    collection.wordnet_documents(root / "docs", engine.wordnet)
    engine.index([root / "docs"])
    for pipeline in ("llm", "vlm"):  # warm: load every model once
        engine.ask("what is this?", photos["coffee"], pipeline)
    return {pipeline: _measure(engine, pipeline, photos) for pipeline in ("llm", "vlm")}


def run(baseline: str | None = None) -> dict:
    """The profile in use (VLMSEARCH_PROFILE, else offline); with `baseline`, that profile too, in the
    same run on the same cases, and each stage's p50 as a ratio to the baseline's."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos = {p.stem: p for p in collection.photos(root / "photos")}
        before = _measure_profile(baseline, root, photos) if baseline else None
        results = _measure_profile(None, root, photos)
    rows = _stage_rows("baseline", before) if before else []
    rows += _stage_rows("profile", results)
    print_table(f"ask: {len(CASES)} image + question cases per pipeline, models warm, WordNet documents", rows)
    for pipeline, r in results.items():
        print(f"{pipeline}: end-to-end / sum of stage time = {r['outside_stages_ratio']}")
    if before is None:
        return results
    ratios: dict[str, dict[str, float]] = {}
    for name, r in results.items():
        p50 = {**{stage: p["p50_ms"] for stage, p in r["stages"].items()}, "end to end": r["end_to_end"]["p50_ms"]}
        then = {**{stage: p["p50_ms"] for stage, p in before[name]["stages"].items()}, "end to end": before[name]["end_to_end"]["p50_ms"]}
        ratios[name] = {stage: round(ms / then[stage], 3) for stage, ms in p50.items() if then.get(stage)}
    stages = list(dict.fromkeys(stage for r in ratios.values() for stage in r))
    print_table(f"p50 of the profile / p50 of the baseline ({baseline})", [{"stage": s, **{n: r.get(s) for n, r in ratios.items()}} for s in stages])
    return {**results, "baseline": {"profile": baseline, **before}, "p50_ratio": ratios}


if __name__ == "__main__":
    import argparse

    from benchmarks.common import write_json
    from vlmsearch.models.hf import quiet_transformers

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", help="a profile (name or .toml path) measured first, for p50 ratios")
    quiet_transformers()
    print(write_json("ask", run(parser.parse_args().baseline)))
