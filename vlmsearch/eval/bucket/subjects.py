"""What a labelled image shows, as a WordNet noun with facts a question can ask about.

A label such as "emperor penguin" or "red apple" is matched to WordNet by its longest tail that is a
noun ("emperor penguin", else "penguin"); among the noun's senses, one whose ancestors share a word
with the image's folder topic wins ("mouse" under computers is the device), else the commonest. The
subject's *kind* is its nearest ancestor that people name in questions ("this bird", "this vehicle"):
a question can then point at one object among several without naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vlmsearch.joint.pairs import Pair
from vlmsearch.knowledge.wordnet import Synset, WordNet

# (a lemma of an ancestor synset, how a question names such a thing, the cluster it is reported under),
# in the order a tie is broken; the nearest ancestor that matches wins.
KINDS = (
    ("bird", "bird", "animals"), ("fish", "fish", "animals"), ("insect", "insect", "animals"),
    ("reptile", "reptile", "animals"), ("dog", "dog", "animals"), ("mammal", "animal", "animals"),
    ("amphibian", "animal", "animals"), ("invertebrate", "animal", "animals"), ("animal", "animal", "animals"),
    ("flower", "flower", "plants"), ("tree", "tree", "plants"), ("vegetable", "vegetable", "food"),
    ("edible fruit", "fruit", "food"), ("beverage", "drink", "food"), ("dish", "dish", "food"),
    ("food", "food", "food"), ("plant", "plant", "plants"),
    ("musical instrument", "instrument", "objects"), ("weapon", "weapon", "objects"), ("tool", "tool", "objects"),
    ("furniture", "piece of furniture", "objects"), ("clothing", "piece of clothing", "objects"),
    ("toy", "toy", "objects"), ("container", "container", "objects"), ("vehicle", "vehicle", "vehicles"),
    ("craft", "vehicle", "vehicles"), ("conveyance", "vehicle", "vehicles"), ("building", "building", "places"), ("structure", "structure", "places"),
    ("geological formation", "landform", "nature"), ("celestial body", "celestial body", "nature"),
    ("device", "device", "objects"), ("implement", "implement", "objects"), ("equipment", "piece of equipment", "objects"),
)  # fmt: skip
# People are left out: a drawn person's label is a name or a role ("user", "help" -> assistant), rarely a fact.
_KIND_LEMMAS = {lemma for lemma, _, _ in KINDS}
MAX_TITLE_WORDS = 4


@dataclass(frozen=True)
class Subject:
    synset: Synset
    kind: str  # how a question names it: "bird"
    cluster: str  # "animals"
    hypernyms: tuple[str, ...]  # direct ancestors' names, nearest first
    broader: tuple[str, ...]  # two more levels up, for the document's prose
    members_of: tuple[str, ...]  # families, genera ('family Spheniscidae')
    parts: tuple[str, ...]
    kinds_of: tuple[str, ...]  # a few hyponyms

    @property
    def name(self) -> str:
        return self.synset.name

    @property
    def names(self) -> tuple[str, ...]:
        return self.synset.words

    @property
    def with_article(self) -> str:
        """'a penguin', 'an apple'; proper names bare ('Gibraltar')."""
        if self.name[:1].isupper():
            return self.name
        return f"{'an' if self.name[:1] in 'aeiou' else 'a'} {self.name}"

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


def _kind(ancestors: list[Synset]) -> tuple[str, str] | None:
    for ancestor in ancestors:
        for lemma, kind, cluster in KINDS:
            if lemma in ancestor.words:
                return kind, cluster
    return None


def _words(text: str) -> set[str]:
    return {w.rstrip("s") for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 3}


def _sense(senses: list[Synset], label: str, topic: str, wordnet: WordNet) -> tuple[Synset, list[Synset]] | None:
    """The commonest sense the folder's topic supports: a topic word (other than the label's own words)
    among the words or glosses of the sense and its ancestors. Without a topic, only the commonest
    sense. Labels are noisy ("arrow right red", "signalflag delta"): an unsupported rarer sense is more
    often wrong than right, so none is taken."""
    topic_words = _words(topic) - _words(label)
    for sense in senses if topic_words else senses[:1]:
        ancestors = wordnet.hypernym_closure(sense)
        said = " ".join(" ".join(s.words) + " " + s.gloss for s in (sense, *ancestors))
        if topic_words and not topic_words & _words(said):
            continue
        concrete = any("physical entity" in a.words for a in ancestors)
        return (sense, ancestors) if concrete and _kind(ancestors) else None
    return None


def subject_of(pair: Pair, wordnet: WordNet) -> Subject | None:
    """The WordNet subject of a labelled image, or None when its label names no concrete thing we can ask about."""
    words = re.findall(r"[a-z]+", pair.text.lower())
    if not words or len(words) > MAX_TITLE_WORDS:
        return None
    for start in range(len(words)):  # the longest tail that is a noun: English compounds end in their head
        tail = " ".join(words[start:])
        senses = wordnet.senses(tail) if len(tail) >= 3 else []
        if senses:
            # Without a topic only the whole label counts: "gabbiano piccolo" is not a flute.
            found = _sense(senses, pair.text, pair.topic, wordnet) if pair.topic or start == 0 else None
            return subject_from_synset(*found, wordnet) if found else None
    return None


def subject_from_synset(sense: Synset, ancestors: list[Synset], wordnet: WordNet) -> Subject | None:
    """The subject for a sense with its ancestors (hypernym_closure), or None if it has no kind."""
    found = _kind(ancestors)
    if found is None:
        return None
    kind, cluster = found
    if set(sense.words) & _KIND_LEMMAS or any(kind in w.lower().split() for w in sense.words):
        return None  # "what is this bird called?" -> "bird": the kind itself is no subject
    hypernyms = tuple(h.name for h in wordnet.related(sense, "@", "@i"))
    broader = tuple(a.name for a in ancestors[len(hypernyms) : len(hypernyms) + 2])
    members_of = tuple(_longest(h.words) for h in wordnet.related(sense, "#m"))
    parts = tuple(p.name for p in wordnet.related(sense, "%p"))
    kinds_of = tuple(h.name for h in wordnet.related(sense, "~")[:5])
    return Subject(sense, kind, cluster, hypernyms, broader, members_of, parts, kinds_of)


def _longest(words: tuple[str, ...]) -> str:
    """'family Spheniscidae' over 'Spheniscidae': the longer name says what sort of group it is."""
    return max(words, key=len)
