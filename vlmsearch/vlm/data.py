"""VLM training data: one JSONL conversation format, and a loader for LLaVA-style JSON.

Each line: {"image": path or null, "messages": [{"role": "system"|"user"|"assistant", "content": text}, ...]}
Paths are relative to the file. The last message must be the assistant's: it is what the model
learns to say (earlier turns are context, with no loss). Text-only lines keep the LM's text skills
during SFT. LLaVA's JSON ([{"image", "conversations": [{"from": "human"|"gpt", "value"}]}]) is
converted on load, its "<image>" markers dropped (the image always comes first here).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vlmsearch.errors import BadInputError

_LLAVA_ROLES = {"human": "user", "gpt": "assistant", "system": "system"}


@dataclass(frozen=True)
class Conversation:
    image: Path | None
    messages: tuple[dict[str, str], ...]


def _check(messages: list[dict], where: str) -> tuple[dict[str, str], ...]:
    if not messages or messages[-1].get("role") != "assistant":
        raise BadInputError(f"{where}: the last message must be the assistant's (what the model learns to say)")
    for m in messages:
        if m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
            raise BadInputError(f'{where}: each message needs a role (system, user, assistant) and text "content"')
    return tuple({"role": m["role"], "content": m["content"]} for m in messages)


def image_at(base: Path, value, where: str) -> Path | None:
    """The image a record names, relative to its file's folder; a clear error when it is missing."""
    if not value:
        return None
    path = base / str(value)
    if not path.is_file():
        raise BadInputError(f"{where}: image not found: {path}")
    return path


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def jsonl_lines(path: Path) -> Iterator[tuple[str, str]]:
    """(where, line) for each non-blank line of a JSONL file; `where` is "file:line" for errors."""
    for number, line in enumerate(_read(path).splitlines(), 1):
        if line.strip():
            yield f"{path}:{number}", line


def load_conversations(path: Path) -> list[Conversation]:
    """Conversations from our JSONL format or a LLaVA-style .json list."""
    if path.suffix == ".json":
        return _llava(path, _read(path))
    out = []
    for where, line in jsonl_lines(path):
        try:
            item = json.loads(line)
            messages = list(item["messages"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise BadInputError(f'{where}: expected {{"image": path, "messages": [...]}} ({exc})') from None
        out.append(Conversation(image_at(path.parent, item.get("image"), where), _check(messages, where)))
    if not out:
        raise BadInputError(f"{path}: no conversations")
    return out


def _llava(path: Path, text: str) -> list[Conversation]:
    try:
        items = json.loads(text)
        out = []
        for number, item in enumerate(items):
            where = f"{path}[{number}]"
            messages = [{"role": _LLAVA_ROLES[turn["from"]], "content": turn["value"].replace("<image>", "").strip()} for turn in item["conversations"]]
            out.append(Conversation(image_at(path.parent, item.get("image"), where), _check(messages, where)))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BadInputError(f'{path}: expected LLaVA JSON, a list of {{"image", "conversations": [{{"from", "value"}}]}} ({exc})') from None
    return out


def image_entry(image: Path | None, folder: Path) -> str | None:
    """An image's path as a data file in `folder` records it: relative to the file where possible."""
    if image is None:
        return None
    try:
        return str(image.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(image.resolve())


def write_conversations(conversations: list[Conversation], path: Path) -> Path:
    """Our JSONL format, image paths relative to the file where possible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"image": image_entry(c.image, path.parent), "messages": list(c.messages)}) for c in conversations]
    path.write_text("\n".join(lines) + "\n")
    return path
