"""`vlmsearch eval make-written`: render a hand-written evaluation set into buckets.

A hand-written set is a folder (the repository's `eval/natural/` is one; its README says how it was
written) of:

- `docs/*.md`: the documents, in prose; every split indexes all of them, so each subject's
  document sits beside its sibling's (the lemon's beside the lime's, stating other values of the
  same facts);
- `subjects.json`: {slug: {"split": "dev" | "test", "kind": "fruit", "drawing": path under the
  images folder, "photo": a scikit-image sample (optional), "sign": "FRESH LIMES", "doc": file
  name in docs/ or null}}; a subject belongs to one split, so no subject is tuned on and reported;
- `questions.jsonl`: {"s": slug, "img": "single" | "composite" | "sign" | "photo", "form": "diet",
  "q": the question, "expect": a regex (case-insensitive) the right answer matches, or null when
  no document answers it}.

Only the pictures are generated: a composite places the subject's drawing among 1-3 drawings of
other kinds from the same split (a question about one says its kind: "the fruit in this picture"),
a sign shows the subject's sign text, a photo is the scikit-image sample. The same set and seed give
the same buckets.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from vlmsearch.errors import BadInputError
from vlmsearch.eval.bucket.canvas import compose, drawing, sign
from vlmsearch.eval.bucket.items import BucketItem, write_bucket

SPLITS = ("dev", "test")


class WrittenSubject(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    split: Literal["dev", "test"]
    kind: str
    drawing: str
    sign: str
    doc: str | None
    photo: str | None = None


class WrittenQuestion(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    s: str
    img: Literal["single", "composite", "sign", "photo"]
    form: str
    q: str
    expect: str | None

    @field_validator("expect")
    @classmethod
    def _expect(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"expect is not a valid regex: {exc}") from None
        return value


def load_written(source: Path) -> tuple[dict[str, WrittenSubject], list[WrittenQuestion]]:
    """Read and check a hand-written set: every subject's drawing and document, every question's subject."""
    try:
        raw = json.loads((source / "subjects.json").read_text(encoding="utf-8"))
        subjects = {slug: WrittenSubject.model_validate(data) for slug, data in raw.items()}
        lines = (source / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BadInputError(f"{source}: not a hand-written set ({exc.strerror or exc}: {exc.filename})") from None
    except (json.JSONDecodeError, ValidationError) as exc:
        raise BadInputError(f"{source / 'subjects.json'}: {exc}") from None
    questions = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            question = WrittenQuestion.model_validate_json(line)
        except ValidationError as exc:
            raise BadInputError(f"{source / 'questions.jsonl'}:{number}: {exc.errors()[0]['msg']}") from None
        subject = subjects.get(question.s)
        if subject is None:
            raise BadInputError(f"{source / 'questions.jsonl'}:{number}: unknown subject {question.s!r}")
        if question.expect is not None and subject.doc is None:
            raise BadInputError(f"{source / 'questions.jsonl'}:{number}: {question.s!r} has no document, so nothing answers it")
        if question.img == "photo" and not subject.photo:
            raise BadInputError(f"{source / 'questions.jsonl'}:{number}: {question.s!r} has no photo")
        questions.append(question)
    for slug, subject in subjects.items():
        if subject.doc and not (source / "docs" / subject.doc).is_file():
            raise BadInputError(f"{source}: {slug}: document not found: docs/{subject.doc}")
    return subjects, questions


def build_written(source: Path, images: Path, out: Path, seed: int = 0) -> dict[str, Path]:
    """Write <out>/<split>/{bucket.jsonl, images/, docs/} per split; returns the bucket files."""
    subjects, questions = load_written(source)
    for slug, subject in subjects.items():
        if not (images / subject.drawing).is_file():
            raise BadInputError(f"{slug}: drawing not found: {images / subject.drawing} (apt-get install openclipart-png)")
    written = {}
    for split in SPLITS:
        folder = out / split
        if folder.exists():
            shutil.rmtree(folder)  # a rebuilt split holds only what the set holds now
        (folder / "images").mkdir(parents=True)
        shutil.copytree(source / "docs", folder / "docs")
        pool = {slug: s for slug, s in subjects.items() if s.split == split}
        rng = random.Random(f"{seed}:{split}")
        items = []
        for number, question in enumerate((q for q in questions if subjects[q.s].split == split), 1):
            picture, shows = _picture(question, pool, images, rng)
            name = f"images/{number:04d}.png"
            picture.save(folder / name)
            subject = subjects[question.s]
            answerable = question.expect is not None
            items.append(BucketItem(
                id=f"{split}-{number:04d}", image=name, question=question.q, expect=f"(?i){question.expect}" if answerable else None,
                source=subject.doc if answerable else None, cluster=subject.kind, type=question.img, form=question.form, shows=shows,
            ))  # fmt: skip
        path = folder / "bucket.jsonl"
        write_bucket(path, items)
        written[split] = path
    return written


def _picture(question: WrittenQuestion, pool: dict[str, WrittenSubject], images: Path, rng: random.Random):
    subject = pool[question.s]
    if question.img == "photo":
        return _photo(subject.photo), (f"photo:{subject.photo}",)
    if question.img == "sign":
        return compose([sign(subject.sign, rng)]), (f"sign:{subject.sign}",)
    if question.img == "single":
        return compose([drawing(images / subject.drawing)]), (subject.drawing,)
    others = sorted(slug for slug, s in pool.items() if s.kind != subject.kind)
    chosen = [pool[slug].drawing for slug in rng.sample(others, rng.randint(1, 3))]
    chosen.insert(rng.randint(0, len(chosen)), subject.drawing)
    return compose([drawing(images / path) for path in chosen]), tuple(chosen)


def _photo(name: str):
    from PIL import Image
    from skimage import data

    sample = getattr(data, name, None)
    if not callable(sample):
        raise BadInputError(f"no scikit-image sample photo called {name!r}")
    return Image.fromarray(sample()).convert("RGB")
