"""Follow-up questions: which earlier turns a question continues, what its pronouns stand for, and
the standalone question the rest of the pipeline answers ("how long does it live?" after "It is a
koala [1]." -> "how long does Koala live?").

The client holds the conversation and sends it each time (as OpenAI's API does); nothing here is
kept between requests but the bounded cache of what was seen in an image.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from vlmsearch.pipeline.rephrase import fallback_query, points_at_image
from vlmsearch.pipeline.types import Turn

# Words that stand for something said before rather than something in the picture.
_PRONOUN = re.compile(r"\b(it|its|they|them|their|theirs|he|him|his|she|her|ones?)\b", re.IGNORECASE)
_POSSESSIVE = frozenset({"its", "their", "theirs", "his", "her"})
# A question that only makes sense after another: "and how long?", "what about its weight?".
_ELLIPTIC = re.compile(r"^\s*(?:and|also|so|then|what about|how about)\b", re.IGNORECASE)
# "this drink", "the animal in this picture": the question points at the image itself.
_AT_PICTURE = re.compile(r"\b(this|that|these|those|here)\b|\b(?:in|on)\s+(?:this|the)\s+(?:picture|image|photo|drawing|sign)\b", re.IGNORECASE)
_CITATION = re.compile(r"\s*\[\d{1,2}\]")
_MAX_HEADING_WORDS = 8


def refers_back(question: str) -> bool:
    """Whether the question leans on an earlier turn: a pronoun, or an elliptic opening."""
    return bool(_PRONOUN.search(question) or _ELLIPTIC.match(question))


def image_digest(image: Image.Image) -> str:
    """The image's identity by its pixels: the same picture sent again (the page re-sends it, an
    OpenAI client repeats it in every request) is recognised, whatever its file name or encoding."""
    digest = hashlib.blake2b(f"{image.mode} {image.width}x{image.height}".encode(), digest_size=16)
    digest.update(image.tobytes())
    return digest.hexdigest()


def turn_subject(turn: Turn) -> str:
    """What an answer was about: the heading of the passage it cited first (ingest starts a passage
    with "<heading>: "), else that document's file name in words; "" when it cited nothing."""
    if not turn.citations:
        return ""
    first = min(turn.citations, key=lambda c: c.n)
    heading, headed, _ = first.text.partition(": ")
    if headed and heading.strip() and len(heading.split()) <= _MAX_HEADING_WORDS:
        return heading.strip()
    return re.sub(r"[_-]+", " ", Path(first.source).stem).strip()


def without_citations(text: str) -> str:
    """An earlier answer as a prompt shows it: its [n] point at that turn's sources, not this one's."""
    return _CITATION.sub("", text).strip()


@dataclass(frozen=True)
class Conversation:
    """The turns a question continues, resolved. `image` is the conversation's image: the one sent
    with this question, else the last one sent in an earlier turn."""

    image: Image.Image | None
    turns: tuple[Turn, ...]  # earlier turns about the same subject, oldest first, at most the setting's
    subject: str  # what the question's pronouns stand for, from the last answer that cited a source

    @classmethod
    def resolve(cls, question: str, image: Image.Image | None, history: Sequence[Turn], max_turns: int) -> Conversation:
        """Walks the turns as a reader would. A new image starts a new subject; so does a question
        that neither refers back nor points at the picture ("what is espresso made of?"), and the
        picture stays out of it and of the follow-ups that continue it. The picture comes back when
        a question points at it ("what is this used for?")."""
        last, in_play, start = None, False, 0
        for i, turn in enumerate(history):
            new, in_play = _continues(turn.question, turn.image, last, in_play)
            last = turn.image if turn.image is not None else last
            start = i if new else start
        new, in_play = _continues(question, image, last, in_play)
        turns = () if new or max_turns <= 0 else tuple(history[start:])[-max_turns:]
        subject = next((s for s in map(turn_subject, reversed(turns)) if s), "")
        if _AT_PICTURE.search(question) and not _PRONOUN.search(question):
            subject = ""  # "what colour is this bird?" points at the picture, not at what was said
        return cls(image if image is not None else last if in_play else None, turns, subject)

    def standalone(self, question: str, wordnet=None) -> str:
        """The question with its first pronoun replaced by the conversation's subject ("how long do
        they live?" -> "how long do Koalas live?"); unchanged when no earlier answer named one."""
        if not self.subject:
            return question
        found = _PRONOUN.search(question)
        if found is None:
            return fallback_query(question, self.subject, wordnet) if points_at_image(question) else f"{question.rstrip('?')} ({self.subject})?"
        word = found.group(1).lower()
        name = f"{self.subject}'" if word in _POSSESSIVE and self.subject.endswith("s") else f"{self.subject}'s" if word in _POSSESSIVE else self.subject
        return question[: found.start()] + name + question[found.end() :]

    def history_text(self) -> str:
        """The earlier turns as the rephraser's prompt shows them, oldest first."""
        return "\n".join(f"User: {t.question}\nAssistant: {without_citations(t.answer) or '(no answer)'}" for t in self.turns)

    def earlier_questions(self) -> str:
        """The earlier questions alone, as the generator's prompt shows them. Not the answers: shown
        "It is a domestic cat.", the offline generator (Qwen 0.5B + our LoRA) answered "how long do
        Domestic cats live?" with it again, 3 follow-ups of 3; shown the questions, it gave the
        lifespan, 3 of 3."""
        return " | ".join(t.question for t in self.turns)


def _continues(question: str, sent: Image.Image | None, last: Image.Image | None, in_play: bool) -> tuple[bool, bool]:
    """(whether the turn starts a new subject, whether the conversation's picture is in play after it)."""
    if sent is not None:
        return last is None or image_digest(sent) != image_digest(last), True
    if refers_back(question):
        return False, in_play
    if last is not None and _AT_PICTURE.search(question):
        return False, True
    return True, False


class SeenImages:
    """A bounded cache of what a stage found in an image (visual facts, a caption), keyed by the
    image's pixels and the stage, so a follow-up about the same image does not pay for them again.
    Cleared when the store changes: visual search looks the image up in it."""

    def __init__(self, size: int = 32):
        self.size, self._found, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key: tuple[str, ...], run: Callable[[], Any]) -> tuple[Any, bool]:
        """The stage's result for `key` and whether it was cached; runs the stage on a miss."""
        with self._lock:
            if key in self._found:
                self._found.move_to_end(key)
                return self._found[key], True
        value = run()  # outside the lock: other requests' stages need not wait for this one
        with self._lock:
            self._found[key] = value
            while len(self._found) > self.size:
                self._found.popitem(last=False)
        return value, False

    def clear(self) -> None:
        with self._lock:
            self._found.clear()
