"""Text out of documents (.txt, .md, .html, .pdf), cut into overlapping passages."""

from __future__ import annotations

import io
import re
from pathlib import Path

from vlmsearch.errors import BadInputError

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


def extract_text(path: Path, data: bytes) -> str:
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return _pdf_text(path, data)
    if b"\x00" in data[:8192]:
        raise BadInputError(f"{path}: binary content in a {suffix} file (wrong file type?)")
    text = data.decode("utf-8", errors="replace")
    if suffix in (".html", ".htm"):
        from bs4 import BeautifulSoup

        soup = BeautifulSoup(text, "html.parser")
        for tag in soup(["script", "style", "noscript", "template"]):
            tag.decompose()
        text = soup.get_text("\n")
    return text


def _pdf_text(path: Path, data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise BadInputError(f"{path}: broken PDF ({exc})") from None


def _units(text: str, size: int) -> list[str]:
    """Sentences and paragraphs, with any unit longer than `size` split at spaces."""
    units = []
    for piece in _SENTENCE_END.split(text):
        piece = " ".join(piece.split())
        while len(piece) > size:
            cut = piece.rfind(" ", 0, size)
            cut = cut if cut > size // 2 else size
            units.append(piece[:cut])
            piece = piece[cut:].lstrip()
        if piece:
            units.append(piece)
    return units


def chunk_text(text: str, size: int = 1200, overlap: int = 200) -> list[str]:
    """Greedy passages of whole sentences up to `size` characters; neighbours share up to `overlap`."""
    if overlap >= size:
        raise ValueError(f"chunk overlap ({overlap}) must be smaller than chunk size ({size})")
    chunks: list[str] = []
    current: list[str] = []
    for unit in _units(text, size):
        if current and len(" ".join([*current, unit])) > size:
            chunks.append(" ".join(current))
            carried: list[str] = []  # the tail of this chunk opens the next one
            for previous in reversed(current):
                if len(" ".join([previous, *carried, unit])) > min(overlap + len(unit) + 1, size):
                    break
                carried.insert(0, previous)
            current = carried
        current.append(unit)
    if current:
        chunks.append(" ".join(current))
    return chunks
