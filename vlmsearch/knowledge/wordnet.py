"""Info cards from WordNet 3.0 (Debian's wordnet-base), read straight from data.noun.

ImageNet classes are WordNet synsets: the 8 digits of an id like n02124075 are the byte offset of
the synset's line in data.noun, so a card is one seek and one line. (NLTK's reader refuses this
layout: no lexnames file, and paths outside NLTK_DATA.)
"""

from __future__ import annotations

import functools
from pathlib import Path

from vlmsearch.records import InfoCard

DEFAULT_DATA_NOUN = Path("/usr/share/wordnet/data.noun")


class WordNet:
    def __init__(self, data_noun: Path = DEFAULT_DATA_NOUN):
        if not data_noun.is_file():
            raise FileNotFoundError(f"{data_noun} not found: install Debian's wordnet-base (apt-get install wordnet-base)")
        self._data_noun = data_noun
        self._file = open(data_noun, "rb")  # noqa: SIM115 (kept open: many small seeks)

    @functools.lru_cache(maxsize=4096)
    def _line(self, offset: int) -> tuple[list[str], list[int], str]:
        """(words, hypernym offsets, gloss) of the noun synset at `offset`."""
        self._file.seek(offset)
        head, _, gloss = self._file.readline().decode("utf-8").partition(" | ")
        fields = head.split()
        n_words = int(fields[3], 16)
        words = [fields[4 + 2 * i].replace("_", " ") for i in range(n_words)]
        rest = fields[4 + 2 * n_words :]
        n_pointers = int(rest[0])
        hypernyms = []
        for i in range(n_pointers):
            symbol, target, pos = rest[1 + 4 * i : 4 + 4 * i]
            if symbol in ("@", "@i") and pos == "n":
                hypernyms.append(int(target))
        return words, hypernyms, gloss.strip()

    def card(self, synset: str, title: str | None = None) -> InfoCard | None:
        """Card for a noun synset id such as 'n02124075'; None for ids WordNet does not have."""
        if not (len(synset) == 9 and synset[0] == "n" and synset[1:].isdigit()):
            return None
        try:
            words, hypernym_offsets, gloss = self._line(int(synset[1:]))
        except (ValueError, IndexError):
            return None
        hypernyms = tuple(self._line(o)[0][0] for o in hypernym_offsets)
        # Glosses carry quoted usage examples after ';'; the definition is the part before them.
        definition = gloss.split('; "')[0].rstrip(";")
        return InfoCard(title=title or words[0], gloss=definition, hypernyms=hypernyms, synset=synset)

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        """lemma -> offset of its most frequent noun sense (index.noun lists senses by frequency)."""
        index = {}
        with open(self._data_noun.with_name("index.noun"), encoding="utf-8") as lines:
            for line in lines:
                if line.startswith(" "):  # the licence header
                    continue
                fields = line.split()
                index[fields[0]] = int(fields[-int(fields[2])])
        return index

    def noun(self, word: str) -> InfoCard | None:
        """The card of a noun's commonest sense; plurals and irregular forms ('geese') are reduced first."""
        key = "_".join(word.lower().split())
        for candidate in (key, self._exceptions.get(key), key[:-3] + "y" if key.endswith("ies") else None,
                          key[:-2] if key.endswith(("ses", "xes", "ches", "shes")) else None,
                          key[:-1] if key.endswith("s") and not key.endswith("ss") else None):  # fmt: skip
            if candidate and candidate in self._index:
                return self.card(f"n{self._index[candidate]:08d}")
        return None

    @functools.cached_property
    def _exceptions(self) -> dict[str, str]:
        path = self._data_noun.with_name("noun.exc")
        if not path.is_file():
            return {}
        return {form: base for form, base, *_ in (line.split() for line in path.read_text().splitlines() if line.strip())}

    def close(self) -> None:
        self._file.close()
