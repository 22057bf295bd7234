"""Stage 2: question + visual facts (+ the image, for a VLM) -> one web-search-style query."""

from __future__ import annotations

import re

from PIL import Image

from vlmsearch.models.protocols import GenerationOptions, Message, complete
from vlmsearch.pipeline.types import SearchQuery, VisualFacts
from vlmsearch.pipeline.untrusted import as_data
from vlmsearch.pipeline.visual_search import TEXT_REGION

_CHIT_CHAT = re.compile(
    r"^\s*(hi|hello|hey|yo|thanks|thank you|thx|good (morning|afternoon|evening|night)|how are you|"
    r"who are you|bye|goodbye|ok|okay|cool|nice|great)\b[\s!.?,]*(there|so much|a lot|again|you)?[\s!.?]*$",
    re.IGNORECASE,
)
# Words that point at the image instead of naming what it shows.
_DEICTIC = re.compile(r"\b(this|that|these|those|it|its|here|the (animal|thing|object|one|picture|image|photo))\b", re.IGNORECASE)
# Whole pointing phrases: "the fruit in this picture", "the animal named on the sign", "this bird".
_POINTING_PHRASE = re.compile(
    r"\b(?:the|this|that)\s+(?:piece of\s+)?[a-z]+(?:\s+[a-z]+)?\s+(?:(?:in|on|at)|(?:named|shown|written|pictured)\s+(?:on|in))\s+"
    r"(?:this|the)\s+(?:picture|image|photo|photograph|drawing|sign|label)\b",
    re.IGNORECASE,
)
# A determiner and the words after it: "this bird", "the piece of clothing", "this celestial body".
_DETERMINED = re.compile(r"\b(this|that|these|those|the)\s+(?:piece of\s+)?([a-z]+)(?:\s+([a-z]+))?", re.IGNORECASE)
_NOT_KINDS = frozenset("picture image photo photograph drawing sign label word text one thing object question documents sources".split())
CONFIDENT_TAG = 0.3  # a tagger probability above which its label outranks the joint model's match
# Questions about what is written in the image rather than what is drawn.
_ABOUT_TEXT = re.compile(r"\b(sign|label|written|writing|text|word|says|reads|caption|title|poster)\b", re.IGNORECASE)

INSTRUCTION = (
    "You turn a user's question into a web search query that keeps every part of the question. Replace "
    "words that point at the image (this, it, like this) with the name of what the image shows. Reply with "
    "the query only."
)


def is_chit_chat(question: str) -> bool:
    return bool(_CHIT_CHAT.match(question))


def points_at_image(question: str) -> bool:
    return bool(_DEICTIC.search(question) or _POINTING_PHRASE.search(question))


def retrieval_queries(question: str, query: SearchQuery) -> list[tuple[str, float]]:
    """What retrieval runs, with RRF weights: the rephrasing, the model-free fallbacks, and the raw
    question. A query that still points at the image counts half when a fallback names what it
    shows: alone, "what is this used for?" matches any passage about uses, yet "how long does the
    animal here live?" names what a tagger may have missed. That holds for a rephrasing that kept the
    pointing words (a small model's "what is this device called?") as much as for the question."""
    resolved = any(f != question for f in query.fallbacks)
    weighted: dict[str, float] = {}
    for text in (query.text, *query.fallbacks, question):
        if text and text not in weighted:
            weighted[text] = 0.5 if resolved and text not in query.fallbacks and points_at_image(text) else 1.0
    return list(weighted.items())


def _kind_spans(question: str, wordnet) -> list[tuple[int, int, str]]:
    """(start, end, kind) of each determiner + noun WordNet knows, pointing words first: "the name of this
    drink" is about a drink. A two-word noun wins over its first word ("this celestial body")."""
    if wordnet is None:
        return []
    spans = []
    # "the implement in this picture" points as much as "this implement" does.
    phrases = {found.start() for found in _POINTING_PHRASE.finditer(question)}
    for found in _DETERMINED.finditer(question):
        first, second = found.group(2).lower(), (found.group(3) or "").lower()
        pointing = found.group(1).lower() != "the" or found.start() in phrases
        if second and wordnet.senses(f"{first} {second}"):
            spans.append((found.start(), found.end(), f"{first} {second}", pointing))
        elif first not in _NOT_KINDS and len(first) > 2 and wordnet.senses(first):
            spans.append((found.start(), found.end(2), first, pointing))
    return [(start, end, kind) for start, end, kind, _ in sorted(spans, key=lambda span: not span[3])]


def pointed_kind(question: str, wordnet) -> str | None:
    """The kind of thing the question points at ("the fruit in this picture" -> "fruit"), when
    WordNet knows it as a noun."""
    spans = _kind_spans(question, wordnet)
    return spans[0][2] if spans else None


def subjects(question: str, facts: VisualFacts | None, wordnet=None) -> list[str]:
    """What the question's pointing words may stand for, best first: the text of a sign the question
    is about; the document topic the image looks like that is of the question's kind ("this bird":
    not the lamp beside it), or the best one when the question names no kind; the tagger's subject,
    unless WordNet says it is not of that kind."""
    if facts is None:
        return []
    found = []
    if facts.ocr_text and _ABOUT_TEXT.search(question):  # the topic the text spells, else the text itself
        spelled = [m.topic for m in facts.matches if m.region == TEXT_REGION]
        found.append(spelled[0] if spelled else " ".join(facts.ocr_text.split()))
    kind = pointed_kind(question, wordnet)
    matches = [m for m in facts.matches if m.region != TEXT_REGION]
    if kind:  # only topics WordNet places under the kind: an unplaceable one is as likely wrong as right
        matches = [m for m in matches if wordnet.is_kind_of(m.topic, kind)]
    tagged = facts.subject()
    placed = wordnet.is_kind_of(tagged, kind) if kind and tagged else None  # None: WordNet cannot place it
    if placed is False:
        tagged = ""
    # A confident tag (a photo of something ImageNet knows) comes before the joint model's match,
    # which is surest on drawings, when it is of the question's kind or the question names none.
    # Confident: above CONFIDENT_TAG, or surer than that match (a rocket's "missile" at 0.24 over
    # "web site" at 0.17: the joint model learned drawings only).
    of_kind = not kind or placed is True
    surer = min(CONFIDENT_TAG, matches[0].score) if matches else CONFIDENT_TAG
    confident = bool(tagged) and of_kind and bool(facts.tags) and facts.tags[0].score >= surer
    ordered = [tagged, matches[0].topic if matches else ""] if confident else [matches[0].topic if matches else "", tagged]
    found += [subject for subject in ordered if subject]
    return list(dict.fromkeys(found))


def fallback_query(question: str, subject: str, wordnet=None) -> str:
    """The question with its pointing words replaced by a subject: a model-free query, and the
    question as the generator reads it ("how long does the animal in this picture live?" -> "how
    long does Domestic cats live?"). With WordNet, "this bird" goes whole, not just "this"."""
    if not subject:
        return question
    replaced, count = _POINTING_PHRASE.subn(subject, question, count=1)
    if count:
        return replaced
    pointing = [(start, end) for start, end, _ in _kind_spans(question, wordnet) if question[start:end].lower().startswith(("this", "that"))]
    if pointing:
        start, end = pointing[0]
        return question[:start] + subject + question[end:]
    replaced, count = _DEICTIC.subn(subject, question, count=1)
    return replaced if count else f"{subject} {question}"


def clean_query(text: str) -> str:
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^\s*(search )?query\s*:\s*", "", line, flags=re.IGNORECASE)
    # A small model may loop ("How can I tell if it's ripe? How can I tell if it's ripe? ..."): the
    # query ends where a sentence comes again.
    kept: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+", line.strip()):
        if sentence.lower() in (k.lower() for k in kept):
            break
        kept.append(sentence)
    return " ".join(" ".join(kept).strip("\"'`").split()[:24])


def rephrase_prompt(question: str, facts: VisualFacts | None, image: Image.Image | None, subject: str | None = None, history: str = "") -> list[Message]:
    """The rephraser's chat; our VLM's rephraser fine-tune is trained on exactly this (without
    `history`: the earlier turns of a conversation, which come first when there are some)."""
    # A small model mixes up several tag names; the single likeliest subject keeps it on track.
    context = f"Earlier in the conversation:\n{as_data(history)}\n" if history else ""
    if facts is not None:
        context += f"The image shows: {subject or facts.subject()}."
        context += f" Text in the image: {as_data(' '.join(facts.ocr_text.split()))}.\n" if facts.ocr_text else "\n"
    images = (image,) if image is not None else ()
    return [Message("system", INSTRUCTION), Message("user", f"{context}Question: {question}\nSearch query:", images=images)]


class Rephraser:
    def __init__(self, model, sees_image: bool, max_tokens: int = 40, wordnet=None):
        self.model, self.sees_image, self.max_tokens, self.wordnet = model, sees_image, max_tokens, wordnet

    @property
    def model_name(self) -> str:
        return self.model.name

    def prompt(self, question: str, facts: VisualFacts | None, image: Image.Image | None, named: list[str] | None = None, history: str = "") -> list[Message]:
        """The chat the model answers (preference data samples other replies to the same chat).
        `named`: the question's subjects, when the caller has them already."""
        named = subjects(question, facts, self.wordnet) if named is None else named
        return rephrase_prompt(question, facts, image if self.sees_image else None, named[0] if named else None, history)

    def __call__(self, question: str, facts: VisualFacts | None, image: Image.Image | None, history: str = "") -> SearchQuery:
        """`history`: a conversation's earlier turns, as text, when the question continues them."""
        if is_chit_chat(question):
            return SearchQuery(text="", retrieve=False)
        named = subjects(question, facts, self.wordnet)
        return self.query(question, facts, self.reply(self.prompt(question, facts, image, named, history)), named)

    def reply(self, prompt: list[Message], temperature: float = 0.0) -> str:
        """The model's reply to the chat; sampled above temperature 0 (preference data draws several)."""
        return complete(self.model, prompt, GenerationOptions(max_tokens=self.max_tokens, temperature=temperature))

    def query(self, question: str, facts: VisualFacts | None, reply: str, named: list[str] | None = None) -> SearchQuery:
        """The reply as the query retrieval runs, with the model-free fallbacks beside it."""
        named = subjects(question, facts, self.wordnet) if named is None else named
        fallbacks = tuple(fallback_query(question, subject, self.wordnet) for subject in named) or (question,)
        # Only a name the documents themselves use helps the generator; a tag they never mention ("Egyptian
        # cat" beside "Domestic cats") makes a small model decide the sources do not say.
        known = {m.topic for m in facts.matches} | {" ".join(facts.ocr_text.split())} if facts else set()
        subject = next((s for s in named if s in known), "")
        return SearchQuery(text=clean_query(reply) or fallbacks[0], fallbacks=fallbacks, subject=subject, named=tuple(named))


def shown_subject(query: SearchQuery, passages) -> str:
    """The subject the generator reads the question with: the likeliest name that the shown passages
    use, else the query's. A confident tag ("Egyptian cat", a photo) comes before the joint model's
    match ("leopard") when a passage names it, though it is no topic the image matched."""
    for name in query.named:
        if name == query.subject or any(_mentions(p.text, name) for p in passages):
            return name
    return query.subject


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE) is not None
