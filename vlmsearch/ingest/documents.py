"""Text out of documents (.txt, .md, .html, .pdf), cut into overlapping passages."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path

from vlmsearch.errors import BadInputError

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)[\s#]*$")
_MAX_HEADING = 100


def extract_text(path: Path, data: bytes) -> str:
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return "\n\n".join(pdf_pages(path, data))
    if b"\x00" in data[:8192]:
        raise BadInputError(f"{path}: binary content in a {suffix} file (wrong file type?)")
    text = data.decode("utf-8", errors="replace")
    if suffix in (".html", ".htm"):
        from bs4 import BeautifulSoup

        soup = BeautifulSoup(text, "html.parser")
        for tag in soup(["script", "style", "noscript", "template"]):
            tag.decompose()
        for tag in soup(["h1", "h2", "h3", "h4", "h5", "h6"]):  # keep section boundaries, as in Markdown
            tag.replace_with(f"\n# {tag.get_text(' ', strip=True)}\n")
        text = soup.get_text("\n")
    return text


def _pdf_reader(path: Path, data: bytes):
    import logging

    from pypdf import PdfReader

    # pypdf logs what it repairs ("EOF marker not found") to the terminal; a broken file is reported once, by us.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    return PdfReader(io.BytesIO(data))


def pdf_pages(path: Path, data: bytes) -> list[str]:
    """Each page's text layer ('' for a scanned page)."""
    try:
        return [page.extract_text() or "" for page in _pdf_reader(path, data).pages]
    except Exception as exc:  # noqa: BLE001 (a damaged PDF can surprise pypdf with any error)
        raise BadInputError(f"{path}: broken PDF ({type(exc).__name__}: {exc})") from None


def scanned_page_images(path: Path, data: bytes, pages: Sequence[int]) -> dict[int, list[bytes]]:
    """The embedded images of `pages` (a scanned page is one picture of itself), as encoded bytes."""
    try:
        reader = _pdf_reader(path, data)
        return {n: [image.data for image in reader.pages[n].images] for n in pages}
    except Exception as exc:  # noqa: BLE001 (as above)
        raise BadInputError(f"{path}: cannot read the PDF's page images ({type(exc).__name__}: {exc})") from None


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


def sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) pairs split at Markdown headings; text before the first heading has heading ''."""
    found: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines():
        heading = _HEADING.match(line)
        if heading:
            found.append((heading.group(1)[:_MAX_HEADING], []))
        else:
            found[-1][1].append(line)
    return [(heading, "\n".join(body)) for heading, body in found if "".join(body).strip()]


def chunk_sections(text: str, size: int = 1200, overlap: int = 200) -> list[tuple[str, str]]:
    """(heading, passage) pairs: passages of whole sentences up to `size` characters; neighbours
    share up to `overlap`.

    Headings are topic boundaries: sections never share a passage, and each passage of a section
    starts with its heading, so "## missile" text is not buried after a minivan's description."""
    if overlap >= size:
        raise ValueError(f"chunk overlap ({overlap}) must be smaller than chunk size ({size})")
    chunks = []
    for heading, body in sections(text):
        prefix = f"{heading}: " if heading else ""
        room = size - len(prefix)
        chunks.extend((heading, prefix + chunk) for chunk in _chunk_plain(body, room, min(overlap, room // 2)))
    return chunks


def chunk_text(text: str, size: int = 1200, overlap: int = 200) -> list[str]:
    return [chunk for _, chunk in chunk_sections(text, size, overlap)]


def topics(chunks: list[tuple[str, str]], title: str) -> list[tuple[str, tuple[int, ...]]]:
    """(topic, chunk numbers) per heading in order; chunks before any heading are about the title
    (the first heading, else the file name)."""
    title = next((h for h, _ in chunks if h), title)
    found: dict[str, list[int]] = {}
    for n, (heading, _) in enumerate(chunks):
        found.setdefault(heading or title, []).append(n)
    return [(topic, tuple(positions)) for topic, positions in found.items()]


def title_of(path: Path) -> str:
    """A file name as words: 'golden-retriever_care.md' -> 'golden retriever care'."""
    return " ".join(re.split(r"[\s_\-.]+", path.stem)).strip()


def _chunk_plain(text: str, size: int, overlap: int) -> list[str]:
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
