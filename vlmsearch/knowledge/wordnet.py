"""Info cards and noun facts from WordNet 3.0 (Debian's wordnet-base), read straight from data.noun.

ImageNet classes are WordNet synsets: the 8 digits of an id like n02124075 are the byte offset of
the synset's line in data.noun, so a synset is one seek and one line. (NLTK's reader refuses this
layout: no lexnames file, and paths outside NLTK_DATA.) Pointer symbols are WordNet's (wninput(5WN)):
'@' hypernym, '~' hyponym, '#m' member holonym, '%p' part meronym.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from vlmsearch.records import InfoCard

DEFAULT_DATA_NOUN = Path("/usr/share/wordnet/data.noun")
HYPERNYM = ("@", "@i")  # a kind of / an instance of


@dataclass(frozen=True)
class Synset:
    offset: int  # byte offset of its line in data.noun: its id
    words: tuple[str, ...]  # lemmas, the usual name first
    gloss: str  # the definition, without usage examples
    pointers: dict[str, tuple[int, ...]] = field(hash=False, compare=False)  # symbol -> noun synset offsets

    @property
    def id(self) -> str:
        return f"n{self.offset:08d}"

    @property
    def name(self) -> str:
        return self.words[0]


class WordNet:
    def __init__(self, data_noun: Path = DEFAULT_DATA_NOUN):
        if not data_noun.is_file():
            raise FileNotFoundError(f"{data_noun} not found: install Debian's wordnet-base (apt-get install wordnet-base)")
        self._data_noun = data_noun
        self._file = open(data_noun, "rb")  # noqa: SIM115 (kept open: many small seeks)

    @functools.lru_cache(maxsize=16384)  # noqa: B019 (one WordNet per process, kept for its life)
    def synset(self, offset: int) -> Synset:
        """The noun synset whose line starts at byte `offset` of data.noun (ValueError if none does)."""
        self._file.seek(offset)
        head, _, gloss = self._file.readline().decode("utf-8").partition(" | ")
        fields = head.split()
        if len(fields) < 4 or not fields[0].isdigit() or int(fields[0]) != offset:
            raise ValueError(f"no noun synset at offset {offset}")
        n_words = int(fields[3], 16)
        # Adjective markers such as 'galore(ip)' are syntax, not part of the word.
        words = tuple(re.sub(r"\(\w+\)$", "", fields[4 + 2 * i]).replace("_", " ") for i in range(n_words))
        rest = fields[4 + 2 * n_words :]
        pointers: dict[str, list[int]] = {}
        for i in range(int(rest[0])):
            symbol, target, pos = rest[1 + 4 * i : 4 + 4 * i]
            if pos == "n":
                pointers.setdefault(symbol, []).append(int(target))
        # Glosses carry quoted usage examples after ';'; the definition is the part before them.
        definition = gloss.strip().split('; "')[0].rstrip(";").strip()
        return Synset(offset, words, definition, {k: tuple(v) for k, v in pointers.items()})

    def related(self, synset: Synset, *symbols: str) -> list[Synset]:
        """Synsets linked to `synset` by any of the pointer symbols, in WordNet's order."""
        return [self.synset(o) for symbol in symbols for o in synset.pointers.get(symbol, ())]

    def hypernym_closure(self, synset: Synset) -> list[Synset]:
        """Every ancestor, nearest first (breadth first), each once."""
        seen, frontier, out = {synset.offset}, [synset], []
        while frontier:
            parents = {p.offset: p for s in frontier for p in self.related(s, *HYPERNYM) if p.offset not in seen}
            seen.update(parents)
            out.extend(parents.values())
            frontier = list(parents.values())
        return out

    def card(self, synset: str, title: str | None = None) -> InfoCard | None:
        """Card for a noun synset id such as 'n02124075'; None for ids WordNet does not have."""
        if not (len(synset) == 9 and synset[0] == "n" and synset[1:].isdigit()):
            return None
        try:
            entry = self.synset(int(synset[1:]))
        except (ValueError, IndexError):
            return None
        hypernyms = tuple(h.name for h in self.related(entry, *HYPERNYM))
        return InfoCard(title=title or entry.name, gloss=entry.gloss, hypernyms=hypernyms, synset=synset)

    def senses(self, word: str) -> list[Synset]:
        """Every noun sense of a word, commonest first (index.noun's order); plurals are reduced first."""
        for candidate in self._lemmas(word):
            if candidate in self._index:
                return [self.synset(o) for o in self._index[candidate]]
        return []

    def noun(self, word: str) -> InfoCard | None:
        """The card of a noun's commonest sense; plurals and irregular forms ('geese') are reduced first."""
        senses = self.senses(word)
        return self.card(senses[0].id) if senses else None

    def is_kind_of(self, name: str, kind: str, senses: int = 3) -> bool | None:
        """Whether a thing called `name` is a `kind` ('granny smith' is a fruit), by the hypernyms of
        its commonest senses; for a phrase WordNet lacks, of its longest known tail ('red apple' ->
        'apple'). None when WordNet knows neither word: unknown, not false."""
        kinds = {w.lower() for s in self.senses(kind) for w in s.words}
        words = name.lower().replace("-", " ").split()
        for start in range(len(words)):
            found = self.senses(" ".join(words[start:]))[:senses]
            if found:
                return bool(kinds) and any(kinds & {w.lower() for a in [s, *self.hypernym_closure(s)] for w in a.words} for s in found)
        return None

    @functools.cached_property
    def _index(self) -> dict[str, tuple[int, ...]]:
        """lemma -> offsets of its noun senses, commonest first."""
        index = {}
        with open(self._data_noun.with_name("index.noun"), encoding="utf-8") as lines:
            for line in lines:
                if line.startswith(" "):  # the licence header
                    continue
                fields = line.split()
                index[fields[0]] = tuple(int(o) for o in fields[-int(fields[2]) :])
        return index

    def _lemmas(self, word: str) -> list[str]:
        """The word as an index key, then its singular forms: irregular ('geese'), then regular."""
        key = "_".join(word.lower().split())
        candidates = (key, self._exceptions.get(key), key[:-3] + "y" if key.endswith("ies") else None,
                      key[:-2] if key.endswith(("ses", "xes", "ches", "shes")) else None,
                      key[:-1] if key.endswith("s") and not key.endswith("ss") else None)  # fmt: skip
        return [c for c in candidates if c]

    @functools.cached_property
    def _exceptions(self) -> dict[str, str]:
        path = self._data_noun.with_name("noun.exc")
        if not path.is_file():
            return {}
        return {form: base for form, base, *_ in (line.split() for line in path.read_text().splitlines() if line.strip())}

    def close(self) -> None:
        self._file.close()
