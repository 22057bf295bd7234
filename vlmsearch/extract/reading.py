"""OCR lines in reading order, and the page's text as a person reads it.

The recogniser returns lines in detection order; a person reads rows top to bottom and, within a
row, left to right. Lines whose vertical extents overlap by half the smaller height share a row
(a price beside its label, two columns of a notice).
"""

from __future__ import annotations

from dataclasses import dataclass

from vlmsearch.models.protocols import OcrLine

ROW_OVERLAP = 0.5


@dataclass(frozen=True)
class ReadLine:
    text: str
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels (the corner points' bounds)
    row: int

    def to_json(self) -> dict:
        return {"text": self.text, "score": round(self.score, 4), "box": [round(v, 1) for v in self.box], "row": self.row}


@dataclass(frozen=True)
class Page:
    lines: tuple[ReadLine, ...]

    @property
    def text(self) -> str:
        rows: dict[int, list[str]] = {}
        for line in self.lines:
            rows.setdefault(line.row, []).append(line.text)
        return "\n".join(" ".join(words) for _, words in sorted(rows.items()))

    def to_json(self) -> dict:
        return {"lines": [line.to_json() for line in self.lines], "text": self.text}


def bounds(line: OcrLine) -> tuple[float, float, float, float]:
    if not line.box:
        return (0.0, 0.0, 0.0, 0.0)
    xs, ys = [x for x, _ in line.box], [y for _, y in line.box]
    return (min(xs), min(ys), max(xs), max(ys))


def reading_order(lines: list[OcrLine]) -> Page:
    boxed = sorted(((bounds(line), line) for line in lines), key=lambda item: (item[0][1], item[0][0]))
    rows: list[list[tuple[tuple[float, float, float, float], OcrLine]]] = []
    for box, line in boxed:
        row = next((r for r in rows if _same_row(box, r)), None)
        if row is None:
            rows.append([(box, line)])
        else:
            row.append((box, line))
    rows.sort(key=lambda r: min(b[1] for b, _ in r))
    read = [ReadLine(line.text, line.score, box, n) for n, row in enumerate(rows) for box, line in sorted(row, key=lambda item: item[0][0])]
    return Page(tuple(read))


def _same_row(box: tuple[float, float, float, float], row: list) -> bool:
    top, bottom = min(b[1] for b, _ in row), max(b[3] for b, _ in row)
    overlap = min(bottom, box[3]) - max(top, box[1])
    smaller = min(bottom - top, box[3] - box[1])
    return smaller > 0 and overlap >= ROW_OVERLAP * smaller
