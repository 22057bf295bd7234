"""Stage 1: what the image shows: tags, text in it, its info card, and similar known images."""

from __future__ import annotations

from PIL import Image

from vlmsearch.pipeline.types import VisualFacts


class VisualSearch:
    def __init__(self, models, store, wordnet, similar: int = 3, similar_min_score: float = 0.5):
        self.models, self.store, self.wordnet = models, store, wordnet
        self.similar, self.similar_min_score = similar, similar_min_score

    @property
    def model_name(self) -> str:
        return f"{self.models.tagger.name} + {self.models.ocr.name}"

    def __call__(self, image: Image.Image) -> VisualFacts:
        tags = self.models.tagger.tag([image], top_k=5)[0]
        ocr_text = "\n".join(line.text for line in self.models.ocr.read(image))
        top = tags[0] if tags else None
        card = self.wordnet.card(top.synset, title=top.label) if self.wordnet and top and top.synset else None
        vector = self.models.image_embedder.embed_images([image])[0]
        similar = [h for h in self.store.images_by_vector(vector, self.similar) if h.score >= self.similar_min_score]
        return VisualFacts(tuple(tags), ocr_text, card, tuple(similar))
