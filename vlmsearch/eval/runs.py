"""The evaluation runs behind `vlmsearch eval answers` and `eval sbs`, importable from Python."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from vlmsearch.config import Settings
from vlmsearch.errors import ConfigError
from vlmsearch.eval.answers import AnswerRecord, collect_answers, scored
from vlmsearch.eval.bucket.items import Bucket
from vlmsearch.eval.judges import ReferenceJudge, build_judge
from vlmsearch.eval.report import write_report
from vlmsearch.eval.sbs import (
    Judgement,
    combine,
    human_agreement,
    judge_file,
    pair_key,
    read_judgements,
    reference_verdicts,
    run_judge,
    sbs_folder,
    summarize,
    write_pairs,
)  # fmt: skip
from vlmsearch.eval.scoring import summarize as summarize_answers


def evaluate_answers(
    settings: Settings, bucket: Bucket, docs: Path, pipelines: Sequence[str], out: Path,
    store: Path | None = None, fresh: bool = False, progress=None,
) -> dict:  # fmt: skip
    """{"pipelines": {name: accuracy record}}; also written to <out>/answers/<profile>/summary.json."""
    check_pipelines(settings, pipelines)
    answers = collect_answers(settings, bucket, docs, pipelines, out, store, fresh, progress)
    result = {"pipelines": {name: summarize_answers(scored(bucket, records)) for name, records in answers.items()}}
    path = out / "answers" / settings.profile.name / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"bucket": str(bucket.path), **result}, indent=2) + "\n")
    return result


def side_by_side(
    settings: Settings, bucket: Bucket, docs: Path, a: str, b: str, judge: str, out: Path,
    store: Path | None = None, fresh: bool = False, progress=None,
) -> tuple[dict, Path]:  # fmt: skip
    """Judge a's answers against b's; returns the judge's summary and the report (every judge so far)."""
    check_pipelines(settings, (a, b))
    model = build_judge(judge, settings.cache_dir) if judge != "human" else None  # a bad judge fails before any answering
    answers = collect_answers(settings, bucket, docs, (a, b), out, store, fresh=False, progress=progress)
    folder = sbs_folder(out, settings.profile.name, a, b)
    write_pairs(folder, bucket, a, b, answers[a], answers[b])
    if model is None:
        name, judgements = "human", _current(_human(folder), answers[a], answers[b])
    elif isinstance(model, ReferenceJudge):
        name, judgements = "reference", run_judge(model, bucket.items, answers[a], answers[b])
    else:
        name = model.name
        judgements = run_judge(model, bucket.items, answers[a], answers[b], judge_file(folder, name), fresh, progress)
    reference = reference_verdicts(bucket, answers[a], answers[b])
    summary = summarize(a, b, name, bucket, judgements, answers[a], answers[b], reference)
    (folder / f"summary-{judge_file(folder, name).stem}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary, report(bucket, a, b, folder, answers[a], answers[b])


def check_pipelines(settings: Settings, names: Sequence[str]) -> None:
    known = settings.pipeline_specs()
    for name in names:
        if name not in known:
            raise ConfigError(f"unknown pipeline {name!r}; known: {', '.join(sorted(known))}")


def report(bucket: Bucket, a: str, b: str, folder: Path, answers_a, answers_b) -> Path:
    """The HTML report over every judge with judgements of the current answers in `folder`."""
    by_judge: dict[str, list[Judgement]] = {"reference": run_judge(ReferenceJudge(), bucket.items, answers_a, answers_b)}
    for path in sorted((folder / "judgements").glob("*.jsonl")):
        found = _current(read_judgements(path), answers_a, answers_b)
        if found:
            by_judge[found[0].judge] = found
    people = _current(_human(folder), answers_a, answers_b)
    if people:
        by_judge["human"] = people
    reference = combine(by_judge["reference"])[0]
    summaries = {j: summarize(a, b, j, bucket, found, answers_a, answers_b, reference) for j, found in by_judge.items()}
    verdicts = {j: combine(found)[0] for j, found in by_judge.items()}
    accuracy = {name: summarize_answers(scored(bucket, records)) for name, records in ((a, answers_a), (b, answers_b))}
    return write_report(folder / "report.html", bucket, a, b, summaries, verdicts, answers_a, answers_b, accuracy, human_agreement(people))


def _human(folder: Path) -> list[Judgement]:
    return [j for path in sorted((folder / "human").glob("*.jsonl")) for j in read_judgements(path)]


def _current(judgements: list[Judgement], answers_a: Sequence[AnswerRecord], answers_b: Sequence[AnswerRecord]) -> list[Judgement]:
    """Judgements of the answers as they are now (a re-answered item's old verdicts are dropped)."""
    keys = {x.item: pair_key(x, y) for x, y in zip(answers_a, answers_b)}
    latest: dict[tuple[str, str, str], Judgement] = {}
    for j in judgements:
        if keys.get(j.item) == j.key:
            latest[(j.judge, j.item, j.order)] = j
    return list(latest.values())
