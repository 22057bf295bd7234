"""Pictures for evaluation items: one drawing, several drawings on one canvas, and signs with a word.

Drawings are flattened onto white and fitted into square cells, so every object is about the same
size and none is cropped. Signs use Pillow's bundled font (no system fonts needed) at a size OCR
reads reliably, in a few colour schemes so the text is not always black on white.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from vlmsearch.images import load_image

CELL = 384  # pixels per object
MARGIN = 24
# (board, text) colours: road-sign green, shop-sign blue, wood brown, plain white with a dark frame
SIGN_COLOURS = (((24, 106, 59), "white"), ((21, 67, 140), "white"), ((120, 78, 40), (250, 240, 220)), ((250, 250, 250), (20, 20, 20)))
_GRIDS = {1: (1, 1), 2: (2, 1), 3: (3, 1), 4: (2, 2)}  # objects -> (columns, rows)


def drawing(path: Path, max_pixels: int = 64_000_000) -> Image.Image:
    """A drawing fitted into one CELL x CELL white square (BadInputError if it cannot be read)."""
    # Scaled up as well as down: a 48-pixel icon should be as visible as a poster.
    image = ImageOps.contain(load_image(path, max_pixels), (CELL - 2 * MARGIN, CELL - 2 * MARGIN), Image.Resampling.LANCZOS)
    cell = Image.new("RGB", (CELL, CELL), "white")
    cell.paste(image, ((CELL - image.width) // 2, (CELL - image.height) // 2))
    return cell


def sign(word: str, rng: random.Random) -> Image.Image:
    """A signboard on a post, the word in capitals, in one CELL x CELL square."""
    board, ink = rng.choice(SIGN_COLOURS)
    text = word.upper()
    size = 56
    font = ImageFont.load_default(size=size)
    while font.getlength(text) > CELL - 4 * MARGIN and size > 20:
        size -= 4
        font = ImageFont.load_default(size=size)
    cell = Image.new("RGB", (CELL, CELL), "white")
    draw = ImageDraw.Draw(cell)
    width, height = font.getlength(text) + 2 * MARGIN, size + 2 * MARGIN
    left, top = (CELL - width) / 2, CELL / 2 - height
    draw.rectangle((CELL / 2 - 6, top + height, CELL / 2 + 6, CELL - MARGIN), fill=(110, 110, 110))  # the post
    draw.rounded_rectangle((left, top, left + width, top + height), radius=12, fill=board, outline=(40, 40, 40), width=3)
    draw.text((CELL / 2, top + height / 2), text, fill=ink, font=font, anchor="mm")
    return cell


def compose(cells: list[Image.Image]) -> Image.Image:
    """Cells side by side (2-3) or in a 2 x 2 grid (4)."""
    columns, rows = _GRIDS[len(cells)]
    canvas = Image.new("RGB", (columns * CELL, rows * CELL), "white")
    for i, cell in enumerate(cells):
        canvas.paste(cell, ((i % columns) * CELL, (i // columns) * CELL))
    return canvas
