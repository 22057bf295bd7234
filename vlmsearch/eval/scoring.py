"""Reference scoring of answers against a bucket: is the fact right, is the right document cited, did
the answer say the documents do not answer?

- fact: the answer matches the item's `expect` regex; without one, it holds at least half of the
  reference's key words and every number in it;
- source: a citation of the answer names the expected document (by file name);
- abstained: the answer says the documents do not answer (the pipeline's own refusal or the
  generator's words for it);
- right: fact and source and no abstention on an answerable item; an abstention on an unanswerable one.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vlmsearch.eval.bucket.items import BucketItem
from vlmsearch.eval.stats import bootstrap_ci
from vlmsearch.pipeline.generate import says_not_found

_WORD = re.compile(r"[a-z]+|\d+(?:[.,]\d+)?")
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "it",
        "its",
        "this",
        "that",
        "with",
        "by",
        "as",
        "from",
        "which",
        "who",
        "has",
        "have",
        "had",
        "not",
        "no",
        "any",
        "some",
        "also",
        "very",
        "one",
        "kind",
    ]
)


def abstained(answer: str) -> bool:
    return says_not_found(answer)


def key_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and (len(w) >= 3 or w.isdigit())}


def fact_found(item: BucketItem, answer: str) -> bool:
    if item.expect:
        return re.search(item.expect, answer) is not None
    if not item.reference:
        return False
    wanted = key_words(item.reference)
    said = key_words(answer)
    numbers = {w for w in wanted if w[0].isdigit()}
    return bool(wanted) and len(wanted & said) >= len(wanted) / 2 and numbers <= said


@dataclass(frozen=True)
class Score:
    fact: bool
    source: bool
    abstained: bool
    right: bool
    other_number: bool = False  # states a number, not the asked one, citing another document


_NUMBER = re.compile(r"(?<!\[)\b\d+(?:[.,]\d+)?\b(?!\])")


def score(item: BucketItem, answer: str, cited_sources: Sequence[str]) -> Score:
    said_no = abstained(answer)
    if not item.answerable:
        return Score(False, False, said_no, said_no)
    fact = fact_found(item, answer)
    source = any(Path(s).name == item.source for s in cited_sources)
    other = not fact and bool(_NUMBER.search(answer)) and any(Path(s).name != item.source for s in cited_sources)
    return Score(fact, source, said_no, fact and source and not said_no, other)


@dataclass(frozen=True)
class Scored:
    item: BucketItem
    score: Score
    ms: float | None  # end-to-end answer time; None when the answer came from an old cache without it
    shown: tuple[str, ...] | None = None  # the documents of the passages the generator saw (None: not known)


def _accuracy(rows: Sequence[Scored]) -> dict:
    rights = [float(r.score.right) for r in rows]
    times = [r.ms for r in rows if r.ms is not None]
    return {
        "n": len(rows),
        "accuracy": round(sum(rights) / len(rows), 4) if rows else None,
        "ci95": list(bootstrap_ci(rights)),
        "p50_ms": round(statistics.median(times), 1) if times else None,
    }


def conversation_summary(rows: Sequence[Scored]) -> dict | None:
    """What holding a conversation costs: each kind of later turn against the same facts asked
    alone (subject named, image given), `ratio` their accuracies' quotient; and the same for the
    later turns of conversations whose first turn was right ("after a right turn 1"), which leaves
    out what misnaming the picture in turn 1 costs every turn after it. None without conversations."""
    by_id = {r.item.id: r for r in rows}
    first_right = {r.item.conversation for r in rows if r.item.turn == 1 and r.score.right}
    out = {}
    for kind in ("follow-up", "topic switch"):
        turns = [r for r in rows if r.item.type == kind and f"{r.item.id} alone" in by_id]
        if not turns:
            continue
        kept = [r for r in turns if r.item.conversation in first_right]
        out[kind] = _versus(turns, [by_id[f"{r.item.id} alone"] for r in turns])
        if kept:
            out[f"{kind} after a right turn 1"] = _versus(kept, [by_id[f"{r.item.id} alone"] for r in kept])
    firsts = [r for r in rows if r.item.turn == 1]
    if firsts:
        out["turn 1"] = _accuracy(firsts)
    return out or None


def _versus(turns: Sequence[Scored], alone: Sequence[Scored]) -> dict:
    mine, theirs = _accuracy(turns), _accuracy(alone)
    ratio = round(mine["accuracy"] / theirs["accuracy"], 3) if theirs["accuracy"] else None
    return {"turns": mine, "alone": theirs, "ratio": ratio}


def summarize(rows: Sequence[Scored]) -> dict:
    """The `eval answers --json` record of one pipeline."""
    answerable = [r for r in rows if r.item.answerable]
    unanswerable = [r for r in rows if not r.item.answerable]
    false_abstentions = sum(r.score.abstained and not r.score.right for r in answerable)
    # Declined although the passage that answers was in the prompt: the generator's (or the support
    # check's) failure, not retrieval's.
    declined_shown = [r for r in answerable if r.shown is not None and r.item.source in r.shown]
    right_abstentions = sum(r.score.right for r in unanswerable)
    times = [r.ms for r in rows if r.ms is not None]
    by = {}
    for field in ("cluster", "type", "form"):
        groups: dict[str, list[Scored]] = {}
        for r in rows:
            groups.setdefault(getattr(r.item, field) or "(none)", []).append(r)
        by[field] = {name: _accuracy(group) for name, group in sorted(groups.items())}
    return {
        **_accuracy(rows),
        "right_with_source": sum(r.score.right for r in answerable),
        "answerable": len(answerable),
        "fact_right": sum(r.score.fact for r in answerable),
        "source_right": sum(r.score.source for r in answerable),
        "false_abstentions": false_abstentions,
        "false_abstention_rate": round(false_abstentions / len(answerable), 4) if answerable else None,
        "answerable_with_source_shown": len(declined_shown),
        "false_abstentions_with_source_shown": sum(r.score.abstained for r in declined_shown),
        "other_subject_numbers": sum(r.score.other_number for r in answerable),
        "unanswerable": len(unanswerable),
        "right_abstentions": right_abstentions,
        "right_abstention_rate": round(right_abstentions / len(unanswerable), 4) if unanswerable else None,
        "per_cluster": by["cluster"],
        "per_type": by["type"],
        "per_form": by["form"],
        "p50_ms": round(statistics.median(times), 1) if times else None,
        "conversation": conversation_summary(rows),
    }
