"""Side-by-side (SBS) comparison of two pipelines' answers, after the reference system's evaluation:
a judge picks the better answer per criterion; every pair is judged in both orders, and a verdict
that flips with the order is a tie (position bias cancels). Win rates count ties as half, with
bootstrap 95% intervals over items.

Folder (<out>/sbs/<profile>/<a>-vs-<b>/): pairs.jsonl (what the judging page shows), judgements/
<judge>.jsonl (model judges, cached), human/<name>.jsonl (people), report.html, summary-<judge>.json.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from vlmsearch.eval.answers import AnswerRecord
from vlmsearch.eval.bucket.items import Bucket, BucketItem
from vlmsearch.eval.judges import CRITERIA, Judge, ReferenceJudge
from vlmsearch.eval.stats import bootstrap_ci, cohen_kappa, length_controlled_win_rate

_POINTS = {"a": 1.0, "tie": 0.5, "b": 0.0}


@dataclass(frozen=True)
class Judgement:
    """One judge's verdicts on one item, in terms of the systems: "a", "b" or "tie" per criterion."""

    item: str
    judge: str
    order: str  # "ab": a's answer shown first; "ba"; "-" for a person (sides were random)
    verdicts: dict[str, str]
    key: str = ""  # the answers judged; a judgement of other answers is stale
    raw: str = ""
    unparsed: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Judgement:
        return cls(**{**data, "unparsed": tuple(data.get("unparsed", ()))})


def sbs_folder(out: Path, profile: str, a: str, b: str) -> Path:
    return out / "sbs" / profile / f"{a}-vs-{b}"


def pair_key(a: AnswerRecord, b: AnswerRecord) -> str:
    return hashlib.sha256(f"{a.answer}\0{a.sources}\0{b.answer}\0{b.sources}".encode()).hexdigest()[:16]


def judge_file(folder: Path, judge: str) -> Path:
    return folder / "judgements" / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', judge)}.jsonl"


def read_judgements(path: Path) -> list[Judgement]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(Judgement.from_json(json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            continue  # a line torn by a kill
    return out


def write_pairs(folder: Path, bucket: Bucket, a: str, b: str, answers_a: Sequence[AnswerRecord], answers_b: Sequence[AnswerRecord]) -> Path:
    """What the judging page shows: per item the question, the image and both answers."""
    folder.mkdir(parents=True, exist_ok=True)
    by_a, by_b = {r.item: r for r in answers_a}, {r.item: r for r in answers_b}
    lines = []
    for item in bucket.items:
        if item.id in by_a and item.id in by_b:
            image = bucket.image_path(item)
            lines.append(json.dumps({
                "item": item.id, "question": item.question, "image": str(image.resolve()) if image else None,
                "a": {"pipeline": a, "answer": by_a[item.id].answer, "citations": list(by_a[item.id].citations)},
                "b": {"pipeline": b, "answer": by_b[item.id].answer, "citations": list(by_b[item.id].citations)},
                "key": pair_key(by_a[item.id], by_b[item.id]),
            }, ensure_ascii=False))  # fmt: skip
    path = folder / "pairs.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def run_judge(
    judge: Judge, items: Sequence[BucketItem], answers_a: Sequence[AnswerRecord], answers_b: Sequence[AnswerRecord],
    cache: Path | None = None, fresh: bool = False, progress=None,
) -> list[Judgement]:  # fmt: skip
    """Both orders of every pair; cached judgements of the same answers are reused."""
    by_a, by_b = {r.item: r for r in answers_a}, {r.item: r for r in answers_b}
    cached = {} if fresh or cache is None else {(j.item, j.order): j for j in read_judgements(cache)}
    task = progress.add_task(f"judging ({judge.name})", total=len(items)) if progress else None
    out = []
    for item in items:
        a, b = by_a[item.id], by_b[item.id]
        key = pair_key(a, b)
        for order, first, second in (("ab", a, b), ("ba", b, a)):
            found = cached.get((item.id, order))
            if found is None or found.key != key:
                ruling = judge.rule(item, first, second)
                systems = {"first": order[0], "second": order[1], "tie": "tie"}
                found = Judgement(item.id, judge.name, order, {c: systems[v] for c, v in ruling.verdicts.items()}, key, ruling.raw, ruling.unparsed)
                if cache is not None:
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    with cache.open("a", encoding="utf-8") as file:
                        file.write(json.dumps(found.to_json(), ensure_ascii=False) + "\n")
            out.append(found)
        if progress:
            progress.advance(task)
    return out


def combine(judgements: Sequence[Judgement]) -> tuple[dict[str, dict[str, str]], dict[str, list[bool]]]:
    """Per item one verdict per criterion, and per criterion whether each item's two orders agreed.

    Two orders that disagree make a tie. Several people on one item: the majority, a tie when split."""
    by_item: dict[str, list[Judgement]] = {}
    for j in judgements:
        by_item.setdefault(j.item, []).append(j)
    verdicts: dict[str, dict[str, str]] = {}
    consistent: dict[str, list[bool]] = {}
    for item, group in by_item.items():
        verdicts[item] = {}
        for criterion in {c for j in group for c in j.verdicts}:
            votes = [j.verdicts[criterion] for j in group if criterion in j.verdicts]
            orders = {j.order: j.verdicts.get(criterion) for j in group}
            if "ab" in orders and "ba" in orders:
                consistent.setdefault(criterion, []).append(orders["ab"] == orders["ba"])
                verdicts[item][criterion] = orders["ab"] if orders["ab"] == orders["ba"] else "tie"
            else:
                (top, count), *rest = Counter(votes).most_common() or [("tie", 0)]
                verdicts[item][criterion] = top if not rest or rest[0][1] < count else "tie"
    return verdicts, consistent


def _tally(verdicts: Sequence[str]) -> dict:
    counts = Counter(verdicts)
    points = [_POINTS[v] for v in verdicts]
    return {
        "win": counts["a"], "tie": counts["tie"], "loss": counts["b"], "n": len(verdicts),
        "win_rate": round(sum(points) / len(points), 4) if points else None, "ci95": list(bootstrap_ci(points)),
    }  # fmt: skip


def summarize(
    a: str, b: str, judge: str, bucket: Bucket, judgements: Sequence[Judgement],
    answers_a: Sequence[AnswerRecord], answers_b: Sequence[AnswerRecord], reference: dict[str, dict[str, str]] | None = None,
) -> dict:  # fmt: skip
    """The `eval sbs --json` record: win/tie/loss and win rate of `a` per criterion and cluster."""
    verdicts, consistent = combine(judgements)
    items = [item for item in bucket.items if item.id in verdicts]
    criteria = [c for c in CRITERIA if any(c in verdicts[i.id] for i in items)]
    summary = {"a": a, "b": b, "judge": judge, "n_items": len(items), "n_judgements": len(judgements)}
    flags = [flag for c in criteria for flag in consistent.get(c, [])]
    summary["position_consistency"] = round(sum(flags) / len(flags), 4) if flags else None
    summary["criteria"] = {}
    for criterion in criteria:
        tally = _tally([verdicts[i.id][criterion] for i in items if criterion in verdicts[i.id]])
        agree = consistent.get(criterion)
        tally["consistency"] = round(sum(agree) / len(agree), 4) if agree else None
        summary["criteria"][criterion] = tally
    clusters: dict[str, list[str]] = {}
    for item in items:
        clusters.setdefault(item.cluster or "(none)", []).append(verdicts[item.id].get("overall", "tie"))
    summary["per_cluster"] = {name: _tally(v) for name, v in sorted(clusters.items())}
    by_a, by_b = {r.item: r for r in answers_a}, {r.item: r for r in answers_b}
    lengths_a = [len(by_a[i.id].answer) for i in items]
    lengths_b = [len(by_b[i.id].answer) for i in items]
    summary["length"] = {
        "a_mean_chars": round(sum(lengths_a) / len(items), 1) if items else None,
        "b_mean_chars": round(sum(lengths_b) / len(items), 1) if items else None,
    }
    overall = [_POINTS[verdicts[i.id].get("overall", "tie")] for i in items]
    gaps = [x - y for x, y in zip(lengths_a, lengths_b)]
    summary["length_controlled_win_rate"] = length_controlled_win_rate(overall, gaps) if items else None
    summary["unparsed"] = sum(len(j.unparsed) for j in judgements)
    summary["agreement_with_reference"] = _agreement(verdicts, reference) if reference is not None and judge != "reference" else None
    return summary


def _agreement(verdicts: dict[str, dict[str, str]], reference: dict[str, dict[str, str]]) -> dict | None:
    """How often the judge's overall verdict equals the reference judge's, and Cohen's kappa."""
    shared = [i for i in verdicts if "overall" in verdicts[i] and i in reference]
    if not shared:
        return None
    mine = [verdicts[i]["overall"] for i in shared]
    theirs = [reference[i]["overall"] for i in shared]
    decisive = [(m, t) for m, t in zip(mine, theirs) if t != "tie"]
    return {
        "n": len(shared),
        "agreement": round(sum(m == t for m, t in zip(mine, theirs)) / len(shared), 4),
        "kappa": cohen_kappa(mine, theirs),
        "decisive_n": len(decisive),
        "decisive_agreement": round(sum(m == t for m, t in decisive) / len(decisive), 4) if decisive else None,
    }


def reference_verdicts(bucket: Bucket, answers_a: Sequence[AnswerRecord], answers_b: Sequence[AnswerRecord]) -> dict[str, dict[str, str]]:
    return combine(run_judge(ReferenceJudge(), bucket.items, answers_a, answers_b))[0]


def human_agreement(judgements: Sequence[Judgement]) -> dict | None:
    """Pairwise agreement between people who judged the same items (all criteria pooled)."""
    by_person: dict[str, dict[str, dict[str, str]]] = {}
    for j in judgements:
        by_person.setdefault(j.judge, {})[j.item] = j.verdicts
    people = sorted(by_person)
    pairs = []
    for i, first in enumerate(people):
        for second in people[i + 1 :]:
            shared = sorted(set(by_person[first]) & set(by_person[second]))
            x = [by_person[first][item][c] for item in shared for c in CRITERIA if c in by_person[first][item] and c in by_person[second][item]]
            y = [by_person[second][item][c] for item in shared for c in CRITERIA if c in by_person[first][item] and c in by_person[second][item]]
            if x:
                agreement = round(sum(p == q for p, q in zip(x, y)) / len(x), 4)
                pairs.append({"judges": [first, second], "items": len(shared), "agreement": agreement, "kappa": cohen_kappa(x, y)})
    return {"judges": people, "pairs": pairs} if people else None
