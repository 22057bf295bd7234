"""Augmented views of a training image for the joint heads: more drawings than the collection has.

Each view is a random square crop (55-100% of the area), a mirror half the time, a small rotation,
weaker or stronger colour and contrast, and grey now and then. The draw is seeded by the view's number
and the image's pixels, so view v of an image is the same on every run and its tower features can be
cached like the original's.
"""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from vlmsearch.models.bundled import Fit, square


def augmented(image: Image.Image, view: int, fit: Fit) -> Image.Image:
    seed = int(hashlib.sha256(image.tobytes()[:4096] + bytes([view % 256])).hexdigest()[:8], 16)
    rng = np.random.default_rng(seed)
    image = square(image, fit)
    side = image.size[0]
    area, ratio = rng.uniform(0.55, 1.0), np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    w, h = int(min(side, side * np.sqrt(area * ratio))), int(min(side, side * np.sqrt(area / ratio)))
    x, y = int(rng.integers(0, side - w + 1)), int(rng.integers(0, side - h + 1))
    image = image.crop((x, y, x + w, y + h))
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    image = image.rotate(rng.uniform(-15, 15), resample=Image.BILINEAR, expand=True, fillcolor=(255, 255, 255))
    image = ImageEnhance.Color(image).enhance(rng.uniform(0.3, 1.5))
    image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.7, 1.3))
    if rng.random() < 0.15:
        image = ImageOps.grayscale(image).convert("RGB")
    return image
