"""Objects and where they are: proposals, each labelled by a classifier, overlapping boxes of one
label merged.

No offline object detector ships here, so boxes come from two cheap proposal sources:
- on a plain background (drawings, product shots, scans), the connected blobs of foreground: tight
  boxes around each separate thing;
- otherwise (photos), the fixed regions visual search classifies (halves, thirds, quarters): boxes
  no finer than a quarter of the image.
Each proposal is labelled by the tagger (its ImageNet classes) or, given `labels`, zero-shot by the
joint image-text model over them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from vlmsearch.models.protocols import label_scores
from vlmsearch.pipeline.visual_search import region_boxes

# A pixel differs from the background by more than this (0-255, any channel): foreground.
FOREGROUND_DIFFERENCE = 40
# Below this share of background pixels the image is not on a plain background (a photo).
MIN_BACKGROUND_SHARE = 0.35
MIN_PLAIN_BORDER = 0.8  # share of the border in the background colour, on a plain background
MASK_SIDE = 256  # blobs are found on a copy this size: fast, and strokes a pixel apart join anyway
MIN_BLOB_SHARE = 0.004  # of the image's area: smaller blobs are specks, text dots, noise
MERGE_IOU = 0.3
MOSTLY_INSIDE = 0.7


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels

    def to_json(self) -> dict:
        return {"label": self.label, "score": round(self.score, 4), "box": list(self.box)}


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    width, height = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def foreground_blobs(image: Image.Image) -> list[tuple[int, int, int, int]] | None:
    """Boxes of the separate things on a plain background, largest first; None when the background
    is not plain (too little of the image matches the colour along its border)."""
    from scipy import ndimage

    scale = min(1.0, MASK_SIDE / max(image.size))
    small = np.asarray(image.convert("RGB").resize((max(1, round(image.width * scale)), max(1, round(image.height * scale)))), dtype=np.int16)
    border = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]])
    background = np.median(border, axis=0)
    if (np.abs(border - background).max(axis=1) <= FOREGROUND_DIFFERENCE).mean() < MIN_PLAIN_BORDER:
        return None  # a photo's border is a scene, not one colour
    mask = np.abs(small - background).max(axis=2) > FOREGROUND_DIFFERENCE
    if 1 - mask.mean() < MIN_BACKGROUND_SHARE:
        return None
    joined = ndimage.binary_closing(mask, structure=np.ones((5, 5)), iterations=2)
    labelled, _ = ndimage.label(ndimage.binary_fill_holes(joined))
    boxes = []
    for found in ndimage.find_objects(labelled):
        rows, cols = found
        area = (rows.stop - rows.start) * (cols.stop - cols.start)
        if area >= MIN_BLOB_SHARE * mask.size:
            box = (cols.start / scale, rows.start / scale, cols.stop / scale, rows.stop / scale)
            boxes.append(tuple(round(min(v, limit)) for v, limit in zip(box, (image.width, image.height) * 2)))
    return sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))


class Detector:
    def __init__(self, models, min_score: float = 0.3, min_label_score: float = 0.02, max_objects: int = 20):
        """`min_score`: a fixed region is an object above this tagger score; `min_label_score`: the
        same for a zero-shot label's score from the joint model (its sigmoid scores run far lower)."""
        self.models, self.min_score, self.min_label_score, self.max_objects = models, min_score, min_label_score, max_objects

    def __call__(self, image: Image.Image, labels: Sequence[str] | None = None) -> list[Detection]:
        image = image.convert("RGB")
        blobs = foreground_blobs(image)
        # A blob on a plain background is a thing whatever its label's score; a fixed region is one
        # only when a label fits it.
        floor = self.min_label_score if labels else self.min_score
        boxes, min_score = (blobs, 0.0) if blobs else ([box for _, box in region_boxes(image)], floor)
        crops = [_padded(image.crop(box)) for box in boxes]
        named = [(box, label, score) for box, (label, score) in zip(boxes, self._labels(crops, labels)) if score >= min_score]
        return merged(named, regions=not blobs)[: self.max_objects]

    def _labels(self, crops: list[Image.Image], labels: Sequence[str] | None) -> list[tuple[str, float]]:
        if not labels:
            return [(tags[0].label, tags[0].score) for tags in self.models.tagger.tag(crops, top_k=1)]
        joint = self.models.image_text
        scores = label_scores(joint, joint.embed_images(crops), joint.embed_texts(list(labels)))
        return [(labels[int(row.argmax())], float(row.max())) for row in scores]


def _padded(crop: Image.Image, margin: float = 0.15) -> Image.Image:
    """A margin of white around a tight crop: the joint heads learned drawings padded onto white
    squares, and read a padded crop better (zero-shot over the hand-written set's test labels)."""
    return ImageOps.expand(crop, round(max(crop.size) * margin), fill="white")


def merged(named: list[tuple[tuple[int, int, int, int], str, float]], regions: bool = False) -> list[Detection]:
    """One box per object, best first: a box of the same label as a better-scored one that overlaps
    it (IoU >= MERGE_IOU, or mostly inside it) is the same object, and is folded into it. Fixed
    `regions` are views, not objects: one mostly inside a better-scored box is folded into it
    whatever its label ("tabby" in a quarter of what the whole image shows as "Egyptian cat")."""
    out: list[Detection] = []
    for box, label, score in sorted(named, key=lambda item: -item[2]):
        same = [d for d in out if d.label == label or regions]
        if not any((d.label == label and iou(d.box, box) >= MERGE_IOU) or _inside(box, d.box) >= MOSTLY_INSIDE for d in same):
            out.append(Detection(label, score, box))
    return out


def _inside(inner: Sequence[float], outer: Sequence[float]) -> float:
    """The share of `inner`'s area that lies within `outer`."""
    width, height = min(inner[2], outer[2]) - max(inner[0], outer[0]), min(inner[3], outer[3]) - max(inner[1], outer[1])
    area = (inner[2] - inner[0]) * (inner[3] - inner[1])
    return max(0, width) * max(0, height) / area if area > 0 else 0.0
