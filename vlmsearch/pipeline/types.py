"""What flows between the pipeline's stages, and what comes out of it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from PIL import Image

from vlmsearch.records import ImageHit, InfoCard, Tag


@dataclass(frozen=True)
class Match:
    """A topic of the indexed documents that the image, or a region of it, looks like (joint space)."""

    topic: str
    source: str
    doc_id: str
    positions: tuple[int, ...]  # the topic's passages
    score: float  # the joint model's label probability (cosine for a softmax model)
    region: str  # "whole image", "left half", ...


@dataclass(frozen=True)
class VisualFacts:
    tags: tuple[Tag, ...]
    ocr_text: str
    card: InfoCard | None
    similar: tuple[ImageHit, ...]  # known images that look alike, with their cards
    matches: tuple[Match, ...] = ()  # document topics the image looks like, best first

    def as_text(self, matches: bool = True) -> str:
        lines = [f"Tags: {', '.join(f'{t.label} ({t.score:.2f})' for t in self.tags)}"]
        if self.card:
            lines.append(f"Most likely: {self.card.as_text()}")
        lines.append(f"Text in the image: {self.ocr_text}" if self.ocr_text else "Text in the image: none found")
        for hit in self.similar:
            known = hit.card.as_text() if hit.card else ", ".join(t.label for t in hit.tags[:2])
            lines.append(f"Similar known image ({hit.score:.2f}): {known}")
        if matches and self.matches:
            lines.append("Looks like these topics of your documents: " + ", ".join(f"{m.topic} ({m.score:.2f}, {m.region})" for m in self.matches))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """For traces and the web page: the prompt's text, and the parts a page shows as pictures."""
        return {
            "text": self.as_text(),
            "tags": [asdict(t) for t in self.tags],
            "ocr_text": self.ocr_text,
            "card": asdict(self.card) if self.card else None,
            "similar": [{"id": h.id, "path": h.path, "score": round(h.score, 4)} for h in self.similar],
            "matches": [{"topic": m.topic, "source": m.source, "score": m.score, "region": m.region} for m in self.matches],
        }

    def subject(self) -> str:
        """The likeliest name of what the image shows."""
        if self.card:
            return self.card.title
        return self.tags[0].label.split(",")[0] if self.tags else ""


@dataclass(frozen=True)
class SearchQuery:
    text: str
    retrieve: bool = True  # False for chit-chat that needs no documents
    fallbacks: tuple[str, ...] = ()  # plain queries built without a model; retrieval fuses them in as a safety net
    subject: str = ""  # the document topic or sign text the pointing words most likely stand for, if any
    named: tuple[str, ...] = ()  # every name the pointing words may stand for, best first (`subject` among them)


@dataclass(frozen=True)
class Citation:
    n: int
    source: str
    text: str
    id: str = ""  # the passage's id in the store


@dataclass(frozen=True)
class TraceStep:
    stage: str
    model: str
    ms: float
    input: str  # a short summary of what went in
    output: Any  # JSON-serialisable
    cached: bool = False  # reused from an earlier turn about the same image, not run again

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    answer: str
    citations: tuple[Citation, ...]
    pipeline: str
    trace: tuple[TraceStep, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "citations": [asdict(c) for c in self.citations],
            "pipeline": self.pipeline,
            "trace": [step.to_json() for step in self.trace],
        }


@dataclass(frozen=True)
class Turn:
    """An earlier turn of a conversation, as the client holds it: its question, the image sent with
    it (if any), and the answer with its citations."""

    question: str
    answer: str = ""
    citations: tuple[Citation, ...] = ()
    image: Image.Image | None = None

    def to_json(self) -> dict[str, Any]:
        return {"question": self.question, "answer": self.answer, "citations": [asdict(c) for c in self.citations]}


@dataclass(frozen=True)
class StageEvent:
    step: TraceStep


@dataclass(frozen=True)
class TokenEvent:
    """A checked sentence of the answer: what the answer is made of."""

    text: str


@dataclass(frozen=True)
class DraftEvent:
    """The answer's unfinished sentence as the model writes it, before it is checked: shown while it
    grows, replaced by the checked sentence, or dropped if no source supports it."""

    text: str


@dataclass(frozen=True)
class AnswerEvent:
    answer: Answer
