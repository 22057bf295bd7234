"""Find the images and documents under the paths a user gives."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vlmsearch.images import IMAGE_EXTENSIONS

DOCUMENT_EXTENSIONS = frozenset({".txt", ".md", ".markdown", ".html", ".htm", ".pdf"})
Kind = Literal["image", "document"]


@dataclass(frozen=True)
class Found:
    path: Path
    kind: Kind


@dataclass(frozen=True)
class Discovery:
    files: list[Found]
    problems: list[tuple[str, str]]  # (path, reason) for paths that cannot be used
    skipped: int  # files inside folders with types we do not index


def kind_of(path: Path) -> Kind | None:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_EXTENSIONS else "document" if suffix in DOCUMENT_EXTENSIONS else None


def shown(path: Path | str) -> str:
    """A path as printable text: bytes that are not UTF-8 as \\xNN, control characters escaped."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _utf8_name(path: Path) -> bool:
    """Whether a path is text; the store, the models and JSON all need that (Linux allows any bytes)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def discover(paths: list[Path]) -> Discovery:
    files: dict[Path, Found] = {}
    problems: list[tuple[str, str]] = []
    skipped = 0

    def add(path: Path, kind: Kind) -> None:
        if _utf8_name(path):
            files.setdefault(path.resolve(), Found(path, kind))
        else:
            problems.append((shown(path), "the file name is not valid UTF-8 text; rename the file to index it"))

    def unreadable(error: OSError) -> None:
        problems.append((shown(error.filename), f"cannot read folder ({error.strerror or error})"))

    for root in paths:
        if root.is_file():
            kind = kind_of(root)
            if kind:
                add(root, kind)
            else:
                supported = ", ".join(sorted(IMAGE_EXTENSIONS | DOCUMENT_EXTENSIONS))
                problems.append((shown(root), f"unsupported file type {root.suffix or '(none)'!r}; supported: {supported}"))
        elif root.is_dir():
            # os.walk without following links: a link loop cannot trap us.
            for folder, dirnames, filenames in os.walk(root, onerror=unreadable):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    path = Path(folder) / name
                    kind = kind_of(path)
                    if name.startswith(".") or kind is None or not path.is_file():
                        skipped += 1
                        continue
                    add(path, kind)
        elif root.exists():
            problems.append((shown(root), "not a regular file or folder"))
        else:
            problems.append((shown(root), "no such file or directory"))
    return Discovery(list(files.values()), problems, skipped)
