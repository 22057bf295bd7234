"""Counterfactual pairs for the generator's training chats: one prompt asked twice.

The bucket's unanswerable questions all ask a number, a date or a person ("How much does this bird
weigh?"), because its documents state none. Trained on them alone, the LoRA learned the question's
kind, not the passage, as the cue to decline: it said "The sources do not say." to "how long do
animals like this live?" beside "Domestic cats usually live 12 to 18 years". So each pair asks such
a question about the item's subject, once with a sentence stating the fact put into the subject's
passage (answered from it, in other words than the passage's) and once without it (declined). The
facts are invented: the model learns to read the passage, not to remember the numbers.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from vlmsearch.eval.bucket.questions import POINTERS
from vlmsearch.eval.bucket.subjects import KINDS

_LIVING = frozenset({"animals", "plants"})
_FIRST = ("Anna", "Pierre", "Mei", "Carl", "Amara", "Jonas", "Lucia", "Kenji", "Ingrid", "Tomas", "Leila", "Oskar")
_LAST = ("Keller", "Duval", "Moreau", "Lindqvist", "Okafor", "Sato", "Brandt", "Novak", "Rossi", "Hale", "Marsh", "Ortega")


@dataclass(frozen=True)
class Attribute:
    """A fact the documents never state: ways to ask it, ways a passage states it, and each
    statement's answer (replies[i] answers facts[i], in its own words)."""

    questions: tuple[str, ...]  # {it}: how the item points at its subject
    facts: tuple[str, ...]  # {name}: the subject's name; value slots {a} {b} {year} {person}
    replies: tuple[str, ...]  # {n}: the passage's number
    clusters: frozenset[str] | None = None  # the subjects it fits (None: all)


ATTRIBUTES = (
    Attribute(
        ("How long does {it} live?", "What is the lifespan of {it}?", "How many years do animals like {it} live?"),
        ("A {name} usually lives {a} to {b} years.", "Its lifespan is about {a} to {b} years.", "In the wild it lives {a} to {b} years, longer in captivity."),
        ("It usually lives {a} to {b} years [{n}].", "About {a} to {b} years [{n}].", "It lives {a} to {b} years in the wild [{n}]."),
        _LIVING,
    ),
    Attribute(
        ("How much does {it} weigh?", "How heavy is {it}?"),
        ("A {name} usually weighs {a} to {b} kilograms.", "An adult {name} can weigh up to {b} kg.", "It weighs about {a} kilograms."),
        ("It weighs {a} to {b} kilograms [{n}].", "Up to {b} kilograms [{n}].", "About {a} kilograms [{n}]."),
    ),
    Attribute(
        ("How big is {it}?", "How long is {it}?", "What size is {it}?"),
        ("It is typically {a} to {b} centimetres long.", "A {name} grows to about {b} cm in length.", "Most measure between {a} and {b} centimetres."),
        ("It is {a} to {b} centimetres long [{n}].", "It grows to about {b} centimetres [{n}].", "Between {a} and {b} cm [{n}]."),
    ),
    Attribute(
        ("How fast can {it} go?", "What is the top speed of {it}?"),
        ("It can reach speeds of {b} kilometres per hour.", "A {name} moves at up to {b} km/h."),
        ("Up to {b} kilometres per hour [{n}].", "It can reach {b} km/h [{n}]."),
        frozenset({"animals", "vehicles"}),
    ),
    Attribute(
        ("In what year was {it} first described?", "When was {it} first recorded?"),
        ("Naturalists first described it in {year}.", "The first written record of the {name} dates from {year}."),
        ("It was first described in {year} [{n}].", "In {year} [{n}]."),
    ),
    Attribute(
        ("How much does {it} cost?", "What is the price of {it}?"),
        ("A new {name} costs around {a} dollars.", "Prices start at about {a} euros."),
        ("It costs around {a} dollars [{n}].", "From about {a} euros [{n}]."),
        frozenset({"objects", "vehicles", "food"}),
    ),
    Attribute(
        ("Who was the first person to make or discover {it}?", "Who discovered {it}?"),
        ("{person} first described it in {year}.", "The first {name} was made by {person} in {year}."),
        ("{person} first described it, in {year} [{n}].", "{person}, in {year} [{n}]."),
    ),
)  # fmt: skip

# "this bird", "the piece of furniture in this picture", "the tool named on the sign"
_POINTER = re.compile(
    "|".join(re.escape(p).replace(r"\{kind\}", "(?:" + "|".join(sorted({re.escape(k) for _, k, _ in KINDS}, key=len, reverse=True)) + ")") for p in POINTERS.values()),
    re.IGNORECASE,
)  # fmt: skip
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Counterfactual:
    question: str
    fact: str  # the sentence that states it
    reply: str  # its answer, citing {n}


def pointer(question: str) -> str | None:
    """How the question points at its subject ("the bird in this picture"), None if it names it."""
    found = _POINTER.search(question)
    return found.group(0) if found else None


def counterfactual(question: str, name: str, cluster: str | None, rng: random.Random) -> Counterfactual | None:
    """A question about the same subject, pointed at the same way, and a fact that answers it."""
    it = pointer(question)
    if it is None:
        return None
    fitting = [a for a in ATTRIBUTES if a.clusters is None or cluster in a.clusters]
    attribute = rng.choice(fitting)
    a = rng.choice((2, 3, 4, 5, 8, 10, 12, 15, 20, 30, 40, 60, 120))
    values = {"a": a, "b": a + rng.choice((1, 2, 3, 5, 10, 20)), "year": rng.randint(1700, 1990),
              "person": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}", "name": name}  # fmt: skip
    i = rng.randrange(len(attribute.facts))
    return Counterfactual(rng.choice(attribute.questions).format(it=it), attribute.facts[i].format(**values), attribute.replies[i].format(n="{n}", **values))


def with_fact(text: str, fact: str, rng: random.Random) -> str:
    """The passage with the fact among its sentences, after the first (which names the subject)."""
    sentences = _SENTENCE.split(text.strip())
    at = rng.randint(1, len(sentences))
    return " ".join([*sentences[:at], fact, *sentences[at:]])
