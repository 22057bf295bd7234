"""The bucket format: questions with known answers, one JSON object a line, paths relative to the file.

    {"id": "test-0001", "image": "images/0001.png" | null, "question": "...",
     "reference": "the answer in words", "expect": "regex a right answer matches",
     "source": "penguin.md" | null, "cluster": "animals", "type": "composite",
     "shows": ["birds/penguin_01.png", "sign:LEMONADE"]}

Only `question` is required. `source: null` marks an unanswerable item: the documents do not hold
the answer, and the right behaviour is to say so. `type` says how the image poses the question
(single, composite, text); `shows` lists the picture's cells in order (drawings by their path under
the labelled folder, signs by their word); `id` defaults to the line number.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from vlmsearch.errors import BadInputError


class BucketItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = ""
    image: str | None = None
    question: str
    reference: str | None = None
    expect: str | None = None
    source: str | None = None
    cluster: str | None = None
    type: str | None = None
    shows: tuple[str, ...] = ()

    @field_validator("question")
    @classmethod
    def _question(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("empty question")
        return value.strip()

    @field_validator("expect")
    @classmethod
    def _expect(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"expect is not a valid regex: {exc}") from None
        return value

    @property
    def answerable(self) -> bool:
        return self.source is not None

    def to_json(self) -> dict:
        return self.model_dump(exclude_none=True, exclude_defaults=True)


@dataclass(frozen=True)
class Bucket:
    path: Path
    items: tuple[BucketItem, ...]

    @property
    def default_docs(self) -> Path:
        """Where a bucket built by `eval make-bucket` keeps its documents."""
        return self.path.parent / "docs"

    def image_path(self, item: BucketItem) -> Path | None:
        return self.path.parent / item.image if item.image else None


def load_bucket(path: Path) -> Bucket:
    """Read and check a bucket: every line valid, ids unique, images present."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read the bucket ({exc.strerror or exc})") from None
    items: list[BucketItem] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            item = BucketItem.model_validate(data)
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{path}:{number}: not JSON ({exc.msg})") from None
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "line"
            raise BadInputError(f"{path}:{number}: {where}: {error['msg']}") from None
        if not item.id:
            item = item.model_copy(update={"id": f"{number:04d}"})
        if item.image and not (path.parent / item.image).is_file():
            raise BadInputError(f"{path}:{number}: image not found: {path.parent / item.image}")
        items.append(item)
    if not items:
        raise BadInputError(f"{path}: the bucket has no items")
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise BadInputError(f"{path}: the id {item.id!r} is used twice")
        seen.add(item.id)
    return Bucket(path, tuple(items))


def write_bucket(path: Path, items: list[BucketItem]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(item.to_json(), ensure_ascii=False) + "\n" for item in items), encoding="utf-8")
