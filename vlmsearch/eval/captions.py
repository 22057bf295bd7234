"""Caption scores against our openclipart references ("A drawing of <title> (<topic>)."): does the
caption name the title's words, and the drawing's topic? Exact-match scores, cheap and readable;
the benchmark adds chrF and BLEU (sacrebleu) on top."""

from __future__ import annotations

import re
from dataclasses import dataclass

_REFERENCE = re.compile(r"A drawing of (.*?)(?: \((.*)\))?\.$")


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 3}


@dataclass(frozen=True)
class CaptionScore:
    word_hit: float  # share of the title's words (3+ letters) the caption contains
    topic_hit: float | None  # 1.0 when it names a word of the topic; None when the reference has none


def caption_score(caption: str, reference: str) -> CaptionScore:
    match = _REFERENCE.match(reference)
    title, topic = (match.group(1), match.group(2) or "") if match else (reference, "")
    wanted, said = _words(title), _words(caption)
    word_hit = len(wanted & said) / len(wanted) if wanted else 0.0
    return CaptionScore(word_hit, float(bool(_words(topic) & said)) if topic else None)
