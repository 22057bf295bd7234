"""The answer pipeline's latency: per stage (p50/p95), time to first token and end to end, for the
llm and vlm pipelines over fixed image + question cases, on the demo's WordNet documents.

Offline there is no trained VLM yet, so the vlm pipeline runs a tiny random-weight LLaVA built here:
its numbers measure the pipeline's wiring and overhead, not a real VLM's speed."""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.common import percentiles_ms, print_table
from vlmsearch.config import Profile
from vlmsearch.demo import collection
from vlmsearch.engine import Engine
from vlmsearch.pipeline import AnswerEvent, TokenEvent

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


def _profile_with_tiny_vlm(root: Path) -> Path:
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    import tiny_models  # the tests' tiny model builders

    llava = tiny_models.llava(root / "tiny-llava")
    offline = Profile.load("offline").roles
    lines = [f'[roles.{r}]\nbackend = "{s.backend}"\nmodel = "{s.model}"' for r, s in offline.items()]
    lines.append(f'[roles.vlm]\nbackend = "transformers"\nmodel = "{llava}"')
    path = root / "tiny-vlm.toml"
    path.write_text("\n\n".join(lines))
    return path


def _measure(engine: Engine, pipeline: str, photos: dict[str, Path]) -> dict:
    stages, first_text, end_to_end, outside = defaultdict(list), [], [], []
    for name, question in CASES:
        start = time.perf_counter()
        first = None
        for event in engine.ask_stream(question, photos[name] if name else None, pipeline):
            if isinstance(event, TokenEvent) and first is None:
                first = time.perf_counter() - start
            if isinstance(event, AnswerEvent):
                answer = event.answer
        total = time.perf_counter() - start
        first_text.append(first or total)
        end_to_end.append(total)
        for step in answer.trace:
            stages[step.stage].append(step.ms / 1000)
            if step.stage == "generate" and step.output.get("first_token_ms"):
                stages["model first token"].append(step.output["first_token_ms"] / 1000)
        outside.append(total - sum(step.ms for step in answer.trace) / 1000)
    return {
        "cases": len(CASES),
        "stages": {s: percentiles_ms(v) for s, v in stages.items()},
        "first_sentence": percentiles_ms(first_text),
        "end_to_end": percentiles_ms(end_to_end),
        "outside_stages_ratio": round(sum(end_to_end) / (sum(end_to_end) - sum(outside)), 4),
    }


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos = {p.stem: p for p in collection.photos(root / "photos")}
        offline = Engine.from_config(store=root / "store")
        collection.wordnet_documents(root / "docs", offline.wordnet)
        offline.index([root / "docs"])
        tiny = Engine.from_config(store=root / "store", profile=str(_profile_with_tiny_vlm(root)))
        for engine, pipeline in ((offline, "llm"), (tiny, "vlm")):  # warm: load every model once
            engine.ask("what is this?", photos["coffee"], pipeline)
        results = {"llm": _measure(offline, "llm", photos), "vlm (tiny random VLM)": _measure(tiny, "vlm", photos)}
    rows = []
    for pipeline, r in results.items():
        for stage, p in {**r["stages"], "first sentence shown": r["first_sentence"], "end to end": r["end_to_end"]}.items():
            rows.append({"pipeline": pipeline, "stage": stage, **p})
    print_table(f"ask: {len(CASES)} image + question cases per pipeline, models warm, WordNet documents", rows)
    for pipeline, r in results.items():
        print(f"{pipeline}: end-to-end / sum of stage time = {r['outside_stages_ratio']}")
    return results


if __name__ == "__main__":
    from benchmarks.common import write_json
    from vlmsearch.models.hf import quiet_transformers

    quiet_transformers()
    print(write_json("ask", run()))
