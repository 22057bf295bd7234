"""Scenes for `eval detect`: 1-4 known drawings placed at random sizes and places on one canvas,
each with its box (the drawing's inked pixels after placing), so a detection can be checked by IoU.

The drawings are the hand-written set's subjects (eval/natural/subjects.json), each in one split;
the labels asked for are every subject name of the split.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from vlmsearch.images import load_image

CANVAS = (960, 640)
SIDES = (150, 320)  # a drawing's longer side, in pixels
BACKGROUNDS = ((255, 255, 255), (246, 244, 238), (236, 242, 250))


def _inked(image: Image.Image, background: tuple[int, int, int]) -> tuple[int, int, int, int] | None:
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    ys, xs = np.nonzero(np.abs(pixels - np.array(background)).max(axis=2) > 30)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) if len(xs) else None


def _ink_mask(picture: Image.Image) -> Image.Image:
    """Opaque, not-white pixels: most clip art is drawn on white, which on a tinted canvas would
    be a white card around the drawing, not the drawing."""
    rgba = np.asarray(picture, dtype=np.int16)
    ink = (rgba[:, :, 3] > 127) & ((255 - rgba[:, :, :3]).max(axis=2) > 12)
    return Image.fromarray((ink * 255).astype(np.uint8))


def scene(drawings: list[Path], rng: random.Random, max_pixels: int = 64_000_000) -> tuple[Image.Image, list[tuple[int, int, int, int] | None]]:
    """A canvas with each drawing placed without overlap; their boxes in the order given (None: no
    room was left for it, or it has no ink)."""
    background = rng.choice(BACKGROUNDS)
    canvas = Image.new("RGB", CANVAS, background)
    taken: list[tuple[int, int, int, int]] = []
    boxes = []
    for path in drawings:
        picture = load_image(path, max_pixels).convert("RGBA")
        side = rng.randint(*SIDES)
        picture = ImageOps.contain(picture, (side, side), Image.Resampling.LANCZOS)
        for _ in range(200):
            left, top = rng.randint(10, CANVAS[0] - picture.width - 10), rng.randint(10, CANVAS[1] - picture.height - 10)
            place = (left, top, left + picture.width, top + picture.height)
            if all(place[2] + 20 < t[0] or t[2] + 20 < place[0] or place[3] + 20 < t[1] or t[3] + 20 < place[1] for t in taken):
                break
        else:
            boxes.append(None)  # no room left: fewer objects in this scene
            continue
        cell = Image.new("RGB", picture.size, background)
        cell.paste(picture, mask=_ink_mask(picture))
        inked = _inked(cell, background)
        if inked is None:
            boxes.append(None)
            continue
        canvas.paste(cell, place[:2])
        taken.append(place)
        boxes.append((place[0] + inked[0], place[1] + inked[1], place[0] + inked[2], place[1] + inked[3]))
    return canvas, boxes
