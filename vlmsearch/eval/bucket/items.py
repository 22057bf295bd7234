"""The bucket format: questions with known answers, one JSON object a line, paths relative to the file.

    {"id": "test-0001", "image": "images/0001.png" | null, "question": "...",
     "reference": "the answer in words", "expect": "regex a right answer matches",
     "source": "penguin.md" | null, "cluster": "animals", "type": "composite",
     "shows": ["birds/penguin_01.png", "sign:LEMONADE"]}

Only `question` is required. `source: null` marks an unanswerable item: the documents do not hold
the answer, and the right behaviour is to say so. `type` says how the image poses the question
(single, composite, text); `shows` lists the picture's cells in order (drawings by their path under
the labelled folder, signs by their word); `id` defaults to the line number.

A line may instead hold a conversation, its questions asked in order, each after the answers the
pipeline gave to the ones before:

    {"id": "conv-0001", "cluster": "animals", "turns": [
        {"question": "What is this bird called?", "image": "images/c0001.png", "expect": ..., "source": ...},
        {"question": "What is it a type of?", "expect": ..., "source": ...,
         "standalone": "What is the penguin a type of?"},
        {"question": "What is this fruit called?", "image": "images/c0002.png", ...}]}

It is read as one item per turn (`conv-0001#2`, type "turn 1", "follow-up" or "topic switch": a
turn that sends a new image), and one more per later turn asked alone, with the conversation's
image and no history (`conv-0001#2 alone`, type "follow-up, alone" or "topic switch, alone"): the
question in `standalone` (the subject named), or a topic switch's own question. The two together
measure what the conversation costs: follow-up accuracy against the same facts asked standalone.
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
    form: str | None = None  # what the question asks for ("diet", "how made"): hand-written sets say it
    shows: tuple[str, ...] = ()
    conversation: str | None = None  # the conversation this turn belongs to: asked after its earlier turns
    turn: int = 0  # its position there, from 1

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


class TurnItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    question: str
    image: str | None = None  # sent with this turn; later turns are about it until another comes
    reference: str | None = None
    expect: str | None = None
    source: str | None = None
    standalone: str | None = None  # the same fact asked with the subject named, for the history loss


class ConversationItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = ""
    cluster: str | None = None
    turns: tuple[TurnItem, ...]

    @field_validator("turns")
    @classmethod
    def _turns(cls, value: tuple[TurnItem, ...]) -> tuple[TurnItem, ...]:
        if not value:
            raise ValueError("a conversation needs at least one turn")
        return value

    def to_json(self) -> dict:
        return self.model_dump(exclude_none=True, exclude_defaults=True)

    def items(self) -> list[BucketItem]:
        """Each turn as an item, then each later turn asked alone."""
        turns, alone, image = [], [], None
        for number, turn in enumerate(self.turns, 1):
            switched = turn.image is not None and number > 1
            image = turn.image or image
            kind = "turn 1" if number == 1 else "topic switch" if switched else "follow-up"
            fields = {"reference": turn.reference, "expect": turn.expect, "source": turn.source, "cluster": self.cluster}
            turns.append(BucketItem(id=f"{self.id}#{number}", image=turn.image, question=turn.question, type=kind,
                                    conversation=self.id, turn=number, **fields))  # fmt: skip
            standalone = turn.question if switched else turn.standalone
            if number > 1 and standalone:
                alone.append(BucketItem(id=f"{self.id}#{number} alone", image=image, question=standalone, type=f"{kind}, alone", **fields))
        return turns + alone


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
            if isinstance(data, dict) and "turns" in data:
                conversation = ConversationItem.model_validate(data)
                found = conversation.model_copy(update={"id": conversation.id or f"{number:04d}"}).items()
            else:
                item = BucketItem.model_validate(data)
                found = [item.model_copy(update={"id": item.id or f"{number:04d}"})]
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{path}:{number}: not JSON ({exc.msg})") from None
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "line"
            raise BadInputError(f"{path}:{number}: {where}: {error['msg']}") from None
        for item in found:
            if item.image and not (path.parent / item.image).is_file():
                raise BadInputError(f"{path}:{number}: image not found: {path.parent / item.image}")
        items.extend(found)
    if not items:
        raise BadInputError(f"{path}: the bucket has no items")
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise BadInputError(f"{path}: the id {item.id!r} is used twice")
        seen.add(item.id)
    return Bucket(path, tuple(items))


def write_bucket(path: Path, items: list[BucketItem] | list[ConversationItem]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(item.to_json(), ensure_ascii=False) + "\n" for item in items), encoding="utf-8")
