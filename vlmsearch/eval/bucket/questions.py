"""Questions about a subject that point at it the way people do ("this bird", "the fruit in this
picture", "the animal named on the sign"), each with a reference answer and a regex a right answer
matches. Facts come from the subject's document, so an answer can only be right by using it."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from vlmsearch.eval.bucket.subjects import Subject

# How a question points at the object, by the kind of picture.
POINTERS = {"single": "this {kind}", "composite": "the {kind} in this picture", "text": "the {kind} named on the sign"}
TEMPLATES = {
    "name": ("What is {it} called?", "What is the name of {it}?"),
    "hypernym": ("What is {it} a type of?", "What broader group of things does {it} belong to?"),
    "definition": ("What is {it}? Answer with a short definition.", "Describe what {it} is in one sentence."),
    "member": ("Which family or genus does {it} belong to?", "What group of living things does {it} belong to?"),
    "part": ("Name a part of {it}.", "What parts does {it} have?"),
    "synonym": ("What is another name for {it}?", "What else is {it} called?"),
}
# Asked where the documents hold no answer (they state no numbers, dates or people).
UNANSWERABLE = (
    "How much does {it} weigh?", "In what year was {it} first described?", "How much does {it} cost?",
    "Who was the first person to make or discover {it}?",
)  # fmt: skip
NOT_IN_DOCUMENTS = "The documents do not say."
_GROUP_WORDS = {"family", "genus", "order", "class", "subfamily", "suborder", "tribe", "phylum", "superfamily"}
# Words too common to show that an answer used the right document.
_COMMON = frozenset(
    [
        "about",
        "above",
        "added",
        "after",
        "along",
        "also",
        "another",
        "around",
        "back",
        "because",
        "before",
        "being",
        "below",
        "between",
        "both",
        "called",
        "cannot",
        "could",
        "different",
        "does",
        "each",
        "either",
        "especially",
        "every",
        "except",
        "first",
        "form",
        "forming",
        "found",
        "from",
        "front",
        "further",
        "given",
        "great",
        "group",
        "having",
        "into",
        "large",
        "later",
        "least",
        "less",
        "made",
        "make",
        "many",
        "more",
        "most",
        "much",
        "must",
        "never",
        "often",
        "only",
        "other",
        "others",
        "over",
        "part",
        "parts",
        "place",
        "same",
        "several",
        "should",
        "side",
        "since",
        "small",
        "some",
        "something",
        "such",
        "than",
        "that",
        "their",
        "them",
        "there",
        "these",
        "thing",
        "things",
        "those",
        "three",
        "through",
        "typically",
        "under",
        "until",
        "upon",
        "used",
        "usually",
        "various",
        "very",
        "well",
        "what",
        "when",
        "where",
        "which",
        "while",
        "whose",
        "with",
        "within",
        "without",
        "would",
    ]
)
MAX_DISTINCTIVE = 5


@dataclass(frozen=True)
class Question:
    fact: str
    text: str
    reference: str
    expect: str | None  # regex; None for unanswerable questions


def names_regex(names: list[str] | tuple[str, ...]) -> str:
    """Case-insensitive regex for any of the names, plural or not."""
    forms = sorted({re.escape(n.lower()) + "(?:e?s)?" for n in names if n}, key=len, reverse=True)
    return r"(?i)\b(?:" + "|".join(forms) + r")\b"


def _pointer(subject: Subject, image_type: str) -> str:
    return POINTERS[image_type].format(kind=subject.kind)


def _ask(fact: str, subject: Subject, image_type: str, rng: random.Random) -> str:
    return rng.choice(TEMPLATES[fact]).format(it=_pointer(subject, image_type), kind=subject.kind)


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 5 and w not in _COMMON}


def questions(subject: Subject, image_type: str, rng: random.Random, other_documents: list[str]) -> list[Question]:
    """Every question this subject supports, in a random order. A text item never asks for the name
    (the sign shows it). Definitions are checked on the gloss's words that no other document uses."""
    name = subject.name
    out = []
    if image_type != "text":
        out.append(Question("name", _ask("name", subject, image_type, rng), f"It is {subject.with_article}.", names_regex(subject.names)))
    if subject.hypernyms:
        named = subject.with_article
        reference = f"{named[:1].upper() + named[1:]} is a kind of {' and '.join(subject.hypernyms)}."
        out.append(Question("hypernym", _ask("hypernym", subject, image_type, rng), reference, names_regex(subject.hypernyms)))
    elsewhere = set().union(*(content_words(d) for d in other_documents)) if other_documents else set()
    distinctive = content_words(subject.synset.gloss) - elsewhere - content_words(" ".join(subject.names)) - {subject.kind}
    distinctive = sorted(distinctive, key=lambda w: (-len(w), w))[:MAX_DISTINCTIVE]  # longer words are rarer
    if len(distinctive) >= 2:
        reference = f"{name[:1].upper() + name[1:]}: {subject.synset.gloss}."
        out.append(Question("definition", _ask("definition", subject, image_type, rng), reference, names_regex(distinctive)))
    if subject.members_of and subject.cluster in ("animals", "plants"):
        cores = [" ".join(w for w in m.split() if w.lower() not in _GROUP_WORDS) for m in subject.members_of]
        reference = f"It belongs to the {' and the '.join(subject.members_of)}."
        out.append(Question("member", _ask("member", subject, image_type, rng), reference, names_regex(cores)))
    if subject.parts:
        reference = f"Its parts include the {', the '.join(subject.parts)}."
        out.append(Question("part", _ask("part", subject, image_type, rng), reference, names_regex(subject.parts)))
    others = [w for w in subject.names[1:] if w.lower() != name.lower()]
    if others:
        out.append(Question("synonym", _ask("synonym", subject, image_type, rng), f"It is also called {', '.join(others)}.", names_regex(others)))
    rng.shuffle(out)
    return out


def unanswerable(subject: Subject, image_type: str, rng: random.Random) -> Question:
    text = rng.choice(UNANSWERABLE).format(it=_pointer(subject, image_type))
    return Question("unanswerable", text, NOT_IN_DOCUMENTS, None)
