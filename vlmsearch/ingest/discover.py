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
    problems: list[tuple[str, str]]  # (path, reason) for paths the user named that cannot be used
    skipped: int  # files inside folders with types we do not index


def kind_of(path: Path) -> Kind | None:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_EXTENSIONS else "document" if suffix in DOCUMENT_EXTENSIONS else None


def discover(paths: list[Path]) -> Discovery:
    files: dict[Path, Found] = {}
    problems: list[tuple[str, str]] = []
    skipped = 0
    for root in paths:
        if root.is_file():
            kind = kind_of(root)
            if kind:
                files.setdefault(root.resolve(), Found(root, kind))
            else:
                supported = ", ".join(sorted(IMAGE_EXTENSIONS | DOCUMENT_EXTENSIONS))
                problems.append((str(root), f"unsupported file type {root.suffix or '(none)'!r}; supported: {supported}"))
        elif root.is_dir():
            # os.walk without following links: a link loop cannot trap us.
            for folder, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    path = Path(folder) / name
                    kind = kind_of(path)
                    if name.startswith(".") or kind is None or not path.is_file():
                        skipped += 1
                        continue
                    files.setdefault(path.resolve(), Found(path, kind))
        else:
            problems.append((str(root), "no such file or directory"))
    return Discovery(list(files.values()), problems, skipped)
