"""Stage 1: what the image shows: tags, text in it, its info card, similar known images, and the
topics of the indexed documents it looks like.

Topics are matched in the joint image-text space, for the whole image and for regions of it
(halves, thirds, quarters): a picture of a lamp, a bicycle and a giraffe matches "giraffe" in one
region even when the whole looks like none of them, so a question about "this animal" can find it.
Fixed regions are a cheap stand-in for an object detector; no offline detector ships here.
"""

from __future__ import annotations

import math
from difflib import SequenceMatcher

from PIL import Image

from vlmsearch.pipeline.types import Match, VisualFacts

# (name, (left, top, right, bottom) as fractions of the image)
REGIONS = (
    ("whole image", (0, 0, 1, 1)),
    ("left half", (0, 0, 0.5, 1)), ("right half", (0.5, 0, 1, 1)),
    ("top half", (0, 0, 1, 0.5)), ("bottom half", (0, 0.5, 1, 1)),
    ("left third", (0, 0, 1 / 3, 1)), ("middle third", (1 / 3, 0, 2 / 3, 1)), ("right third", (2 / 3, 0, 1, 1)),
    ("top left", (0, 0, 0.5, 0.5)), ("top right", (0.5, 0, 1, 0.5)),
    ("bottom left", (0, 0.5, 0.5, 1)), ("bottom right", (0.5, 0.5, 1, 1)),
)  # fmt: skip
MIN_REGION_SIDE = 48  # pixels: smaller crops say nothing
TEXT_REGION = "text in the image"
# OCR often drops spaces ("FIREEXTINGUISHER"); a topic spelled the same but for spaces and case is
# what the text names. Near spellings count too: OCR misreads a letter now and then.
MIN_SPELLING_MATCH = 0.85


def region_boxes(image: Image.Image) -> list[tuple[str, tuple[int, int, int, int]]]:
    """The REGIONS of this image in pixels (left, top, right, bottom), those too small left out."""
    out = []
    for name, (left, top, right, bottom) in REGIONS:
        box = (round(left * image.width), round(top * image.height), round(right * image.width), round(bottom * image.height))
        if min(box[2] - box[0], box[3] - box[1]) >= MIN_REGION_SIDE or name == "whole image":
            out.append((name, box))
    return out


def regions(image: Image.Image) -> list[tuple[str, Image.Image]]:
    return [(name, image.crop(box)) for name, box in region_boxes(image)]


class VisualSearch:
    def __init__(self, models, store, wordnet, similar: int = 3, similar_min_score: float = 0.5, matches: int = 6):
        self.models, self.store, self.wordnet = models, store, wordnet
        self.similar, self.similar_min_score, self.matches = similar, similar_min_score, matches

    @property
    def model_name(self) -> str:
        joint = f" + {self.models.image_text.name}" if self.models.has("image_text") else ""
        return f"{self.models.tagger.name} + {self.models.ocr.name}{joint}"

    def __call__(self, image: Image.Image) -> VisualFacts:
        tags = self.models.tagger.tag([image], top_k=5)[0]
        ocr_text = "\n".join(line.text for line in self.models.ocr.read(image))
        top = tags[0] if tags else None
        card = self.wordnet.card(top.synset, title=top.label) if self.wordnet and top and top.synset else None
        vector = self.models.image_embedder.embed_images([image])[0]
        similar = [h for h in self.store.images_by_vector(vector, self.similar) if h.score >= self.similar_min_score]
        return VisualFacts(tuple(tags), ocr_text, card, tuple(similar), self._named(ocr_text) + self._matches(image))

    def _named(self, ocr_text: str) -> tuple[Match, ...]:
        """Document topics that the text in the image spells out (a sign saying "GREY WHALE")."""
        if not ocr_text.strip() or not self.matches or not self.models.has("image_text"):
            return ()
        lines = [line for line in ocr_text.splitlines() if len(_letters(line)) >= 3]
        if not lines:
            return ()
        found: dict[str, Match] = {}
        for line, vector in zip(lines, self.models.image_text.embed_texts(lines)):
            for hit in self.store.topics_by_joint(vector, self.matches):
                spelling = SequenceMatcher(None, _letters(line), _letters(hit.topic)).ratio()
                if spelling >= MIN_SPELLING_MATCH and (hit.id not in found or spelling > found[hit.id].score):
                    found[hit.id] = Match(hit.topic, hit.source, hit.doc_id, hit.positions, round(spelling, 4), TEXT_REGION)
        return tuple(sorted(found.values(), key=lambda m: -m.score))

    def _matches(self, image: Image.Image) -> tuple[Match, ...]:
        """The best document topics over the image's regions, each topic once (its best region)."""
        if not self.matches or not self.models.has("image_text"):
            return ()
        joint = self.models.image_text
        named = regions(image)
        vectors = joint.embed_images([crop for _, crop in named])
        best: dict[str, Match] = {}
        for (region, _), vector in zip(named, vectors):
            for hit in self.store.topics_by_joint(vector, self.matches):
                score = _probability(joint, hit.score)
                if hit.id not in best or score > best[hit.id].score:
                    best[hit.id] = Match(hit.topic, hit.source, hit.doc_id, hit.positions, round(score, 4), region)
        return tuple(sorted(best.values(), key=lambda m: -m.score)[: self.matches])


def _letters(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def _probability(joint, cosine: float) -> float:
    """A SigLIP-style model's own calibration of a similarity; a softmax model has none per label."""
    if not joint.sigmoid:
        return cosine
    return 1 / (1 + math.exp(-(joint.logit_scale * cosine + joint.logit_bias)))
