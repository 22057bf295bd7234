"""A trained joint checkpoint as the `image_text` role: towers from the registry, heads on top."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vlmsearch.config import ModelSpec
from vlmsearch.errors import ConfigError
from vlmsearch.joint.model import load_heads
from vlmsearch.models.bundled import shipped_or_own
from vlmsearch.models.registry import build_model, register


def tower_features(tower, images: Sequence[Image.Image], with_classes: bool) -> np.ndarray:
    """What the heads take: the tower's image features, followed by its class probabilities for a prior."""
    if not with_classes:
        return tower.embed_images(images)
    if not hasattr(tower, "features_and_probabilities"):
        raise ConfigError(f"image tower {tower.name!r} is not a classifier: it cannot give the class prior")
    return np.concatenate(tower.features_and_probabilities(images), axis=1)


class JointEmbedder:
    """Images and texts in one space; `logit_scale`/`logit_bias` turn similarities into label scores."""

    def __init__(self, checkpoint: Path, cache_dir: Path):
        self.heads = load_heads(checkpoint)
        config = self.heads.config
        self.name, self.dim = config.name, config.dim
        self.sigmoid = config.loss == "siglip"
        self.logit_scale = float(self.heads.logit_scale.exp())
        self.logit_bias = float(self.heads.logit_bias)
        self.image_tower = build_model("image_embedder", config.image_tower, cache_dir)
        self._text_tower = build_model("text_embedder", config.text_tower, cache_dir)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        features = torch.from_numpy(tower_features(self.image_tower, images, bool(self.heads.config.classes)))
        with torch.inference_mode():
            return self.heads.embed_images(features).numpy()

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        features = torch.from_numpy(self._text_tower.embed_texts(texts))
        with torch.inference_mode():
            return self.heads.embed_texts(features).numpy()


# The heads trained by `vlmsearch train contrastive` and shipped in this package, served under the
# bundled backend (the registry knows this module by name; the backend does not import it).
SHIPPED_JOINT = {"joint-openclipart-siglip-ens": "joint-openclipart-siglip-ens"}


@register("bundled", "image_text")
def _image_text(spec: ModelSpec, cache_dir: Path) -> JointEmbedder:
    path = shipped_or_own("image_text", spec.model, SHIPPED_JOINT, "vlmsearch.joint", "train one with `vlmsearch train contrastive`")
    return JointEmbedder(path, cache_dir)
