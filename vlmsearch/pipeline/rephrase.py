"""Stage 2: question + visual facts (+ the image, for a VLM) -> one web-search-style query."""

from __future__ import annotations

import re

from PIL import Image

from vlmsearch.models.protocols import GenerationOptions, Message, complete
from vlmsearch.pipeline.types import SearchQuery, VisualFacts

_CHIT_CHAT = re.compile(
    r"^\s*(hi|hello|hey|yo|thanks|thank you|thx|good (morning|afternoon|evening|night)|how are you|"
    r"who are you|bye|goodbye|ok|okay|cool|nice|great)\b[\s!.?,]*(there|so much|a lot|again|you)?[\s!.?]*$",
    re.IGNORECASE,
)
# Words that point at the image instead of naming what it shows.
_DEICTIC = re.compile(r"\b(this|that|these|those|it|its|here|the (animal|thing|object|one|picture|image|photo))\b", re.IGNORECASE)

INSTRUCTION = (
    "You turn a user's question into a web search query that keeps every part of the question. Replace "
    "words that point at the image (this, it, like this) with the name of what the image shows. Reply with "
    "the query only."
)


def is_chit_chat(question: str) -> bool:
    return bool(_CHIT_CHAT.match(question))


def points_at_image(question: str) -> bool:
    return bool(_DEICTIC.search(question))


def retrieval_queries(question: str, query: SearchQuery) -> list[tuple[str, float]]:
    """What retrieval runs, with RRF weights: the rephrasing, the model-free fallback, and the raw
    question. A raw question that points at the image counts half: alone, "what is this used for?"
    matches any passage about uses, yet "how long does the animal here live?" names what a tagger
    may have missed."""
    raw_weight = 0.5 if points_at_image(question) and query.fallback != question else 1.0
    weighted: dict[str, float] = {}
    for text, weight in ((query.text, 1.0), (query.fallback, 1.0), (question, raw_weight)):
        if text and text not in weighted:
            weighted[text] = weight
    return list(weighted.items())


def fallback_query(question: str, facts: VisualFacts | None) -> str:
    """A model-free query: the question with its pointing words replaced by the image's subject."""
    if facts is None or not facts.subject():
        return question
    replaced, count = _DEICTIC.subn(facts.subject(), question, count=1)
    return replaced if count else f"{facts.subject()} {question}"


def clean_query(text: str) -> str:
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^\s*(search )?query\s*:\s*", "", line, flags=re.IGNORECASE)
    return " ".join(line.strip().strip("\"'`").split()[:24])


def rephrase_prompt(question: str, facts: VisualFacts | None, image: Image.Image | None) -> list[Message]:
    """The rephraser's chat; our VLM's rephraser fine-tune is trained on exactly this."""
    # A small model mixes up several tag names; the single likeliest subject keeps it on track.
    context = ""
    if facts is not None:
        context = f"The image shows: {facts.subject()}."
        context += f" Text in the image: {' '.join(facts.ocr_text.split())}.\n" if facts.ocr_text else "\n"
    images = (image,) if image is not None else ()
    return [Message("system", INSTRUCTION), Message("user", f"{context}Question: {question}\nSearch query:", images=images)]


class Rephraser:
    def __init__(self, model, sees_image: bool, max_tokens: int = 40):
        self.model, self.sees_image, self.max_tokens = model, sees_image, max_tokens

    @property
    def model_name(self) -> str:
        return self.model.name

    def __call__(self, question: str, facts: VisualFacts | None, image: Image.Image | None) -> SearchQuery:
        if is_chit_chat(question):
            return SearchQuery(text="", retrieve=False)
        fallback = fallback_query(question, facts)
        image = image if self.sees_image else None
        reply = complete(self.model, rephrase_prompt(question, facts, image), GenerationOptions(max_tokens=self.max_tokens))
        return SearchQuery(text=clean_query(reply) or fallback, fallback=fallback)
