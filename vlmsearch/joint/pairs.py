"""Image-text pairs for contrastive training: from a JSONL file or any folder of images.

A folder's texts come from a sidecar caption (`cat.png` + `cat.txt`) when there is one, else from the
file name and its folders. Clip-art collections name files `<title>_<author>_<nn>`, cut to 24
characters before the number (openclipart does); the author part is learnt from the data (a tail
shared by many different titles) and removed, so texts describe the picture, not who drew it.

Every pair has a `group`: its normalised title. Variants of one drawing share it, and so do identical
files, so a split by group keeps near-duplicates out of the held-out set.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from vlmsearch.errors import BadInputError
from vlmsearch.images import IMAGE_EXTENSIONS

# Folder names that say nothing about the picture.
_NOISE_FOLDERS = re.compile(r"^(png|svg|jpe?g|images?|unsorted|duplicates|misc|other|special|examples?|.*-theme)$", re.I)
_TRUNCATED_STEM = 24  # openclipart's cut, before the `_nn` number
_MIN_AUTHOR_TITLES = 3  # a tail shared by this many different titles is a name, not a word of the title


@dataclass(frozen=True)
class Pair:
    image: Path
    texts: tuple[str, ...]  # text variants; the first is the plain title (the held-out query)
    group: str  # near-duplicates share a group; splits never cut a group
    topic: str = ""  # the folder's subject ('astronomy, science'), when the folder names one

    @property
    def text(self) -> str:
        return self.texts[0]


def load_pairs(source: Path) -> list[Pair]:
    """Pairs from a JSONL file ({"image": path, "text": caption} per line) or a folder of images."""
    if source.is_file() and source.suffix in (".jsonl", ".json"):
        return _jsonl_pairs(source)
    if source.is_dir():
        return _folder_pairs(source)
    raise BadInputError(f"{source}: expected a folder of images or a .jsonl file of image-text pairs")


def _jsonl_pairs(path: Path) -> list[Pair]:
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            image, text = path.parent / str(item["image"]), " ".join(str(item["text"]).split())
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise BadInputError(f'{path}:{number}: expected {{"image": path, "text": caption}} ({exc})') from None
        if not text:
            raise BadInputError(f"{path}:{number}: empty text")
        if not image.is_file():
            raise BadInputError(f"{path}:{number}: image not found: {image}")
        pairs.append(Pair(image, (text,), str(item.get("group") or _key(text))))
    if not pairs:
        raise BadInputError(f"{path}: no pairs")
    return _merge_identical(pairs)


def _folder_pairs(root: Path) -> list[Pair]:
    images = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise BadInputError(f"{root}: no images found")
    named = [p for p in images if not p.with_suffix(".txt").is_file()]
    titles = clean_titles([p.stem for p in named])
    pairs = []
    for path in images:
        topic = _topic(path.parent.relative_to(root))
        caption = path.with_suffix(".txt")
        if caption.is_file():
            text = " ".join(caption.read_text(errors="replace").split())
            pairs.append(Pair(path, (text,), _key(text), topic))
            continue
        title = titles[path.stem]
        if not re.search(r"[a-z]{3}", title):  # no real word left ('fc26', 'sm_005'): say what kind of picture
            title = topic.split(", ")[0]
        if not title:
            continue
        texts = (title, f"{title}, {topic}") if topic and topic != title else (title,)
        pairs.append(Pair(path, texts, _key(title), topic))
    return _merge_identical(pairs)


def _topic(folder: Path) -> str:
    """'science/astronomy' -> 'astronomy, science': nearest folder first, noise folders dropped."""
    words = [_words(part) for part in reversed(folder.parts) if not _NOISE_FOLDERS.match(part)]
    return ", ".join(w for w in words[:2] if w)


def _words(name: str) -> str:
    """Readable words of a file or folder name; tokens that are codes ('95pt06step', 'fc26') are dropped."""
    words = []
    for token in re.split(r"[\s_\-.]+", name.lower()):
        token = token.rstrip("0123456789")  # 'baloon2' -> 'baloon'
        if len(token) >= 2 and token.isalpha():
            words.append(token)
    return " ".join(words)


def _key(text: str) -> str:
    return " ".join(re.findall(r"[a-z]+", text.lower()))


_NUMBER = re.compile(r"_\d{1,3}[a-z]?$")  # '_02', '_01a'


def _split_number(stem: str) -> str:
    """'team_sketch_erich_schube_02' -> 'team_sketch_erich_schube'."""
    return _NUMBER.sub("", stem)


def learn_authors(stems: Iterable[str]) -> set[str]:
    """Tails ('dan_gerhards', 'mimooh') that follow at least three different titles in numbered names.

    A one-word tail that also starts some name ('tree', 'house', 'black') is a word of titles, not a name."""
    stems = list(stems)
    title_words = {stem.split("_")[0].lower() for stem in stems}
    heads: dict[str, set[str]] = defaultdict(set)
    for stem in stems:
        if not _NUMBER.search(stem):
            continue  # only numbered names follow the title_author pattern
        tokens = _split_number(stem).rstrip("_").split("_")
        for size in (1, 2, 3):
            if len(tokens) > size:
                heads["_".join(tokens[-size:])].add("_".join(tokens[:-size]))
    return {
        tail for tail, titles in heads.items()
        if len(titles) >= _MIN_AUTHOR_TITLES and re.search(r"[a-z]", tail)
        and ("_" in tail or (len(tail) >= 4 and tail.lower() not in title_words))
    }  # fmt: skip


def _is_author(tail: str, authors: set[str], truncated: bool) -> bool:
    if tail in authors:
        return True
    if not truncated:
        return False
    # A cut-off name: 'architetto_fr' of 'architetto_franc', or 'architetto_francesc' of a shorter cut.
    first = tail.split("_")[0]
    return any(a.split("_")[0].startswith(first) and (a.startswith(tail) or tail.startswith(a)) and len(tail) >= 4 for a in authors)


def strip_author(stem: str, authors: set[str]) -> str:
    numbered = _split_number(stem)
    if numbered == stem:
        return stem
    truncated = len(numbered) >= _TRUNCATED_STEM
    tokens = numbered.rstrip("_").split("_")
    for size in (3, 2, 1):  # the longest tail that is a known author, keeping at least one title word
        if len(tokens) > size and _is_author("_".join(tokens[-size:]), authors, truncated):
            return "_".join(tokens[:-size])
    return numbered


def clean_titles(stems: Sequence[str]) -> dict[str, str]:
    """File stem -> readable title, author and numbering removed."""
    authors = learn_authors(stems)
    return {stem: _words(strip_author(stem, authors)) for stem in stems}


def _merge_identical(pairs: list[Pair]) -> list[Pair]:
    """Identical files (same bytes) join the group of the first copy, so no copy crosses the split."""
    first_group: dict[str, str] = {}
    merged = []
    for pair in pairs:
        digest = hashlib.sha256(pair.image.read_bytes()).hexdigest()
        group = first_group.setdefault(digest, pair.group)
        merged.append(pair if group == pair.group else replace(pair, group=group))
    return merged


def split_of(group: str, held_out: float = 0.1) -> str:
    """'train', 'val' or 'test' from a stable hash of the group: the same on every machine and run."""
    bucket = int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < held_out else "val" if bucket < 2 * held_out else "train"


def split_pairs(pairs: Sequence[Pair], held_out: float = 0.1) -> dict[str, list[Pair]]:
    splits: dict[str, list[Pair]] = {"train": [], "val": [], "test": []}
    for pair in pairs:
        splits[split_of(pair.group, held_out)].append(pair)
    return splits
