"""The joint model's frozen-tower features, through the shared on-disk cache (vlmsearch/features.py).

Image features are keyed by the file's sha256 (a moved or renamed file is not recomputed, an edited
one is), text features by the text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from vlmsearch.errors import BadInputError
from vlmsearch.features import FeatureCache
from vlmsearch.images import decode_image

_MAX_PIXELS = 64_000_000


def image_features(
    embed: Callable[[list], np.ndarray],
    tower: str,
    paths: Sequence[Path],
    cache_dir: Path,
    progress=None,
    label: str = "image features",
) -> tuple[np.ndarray, dict[Path, str]]:
    """(n, d) `embed(images)` of `paths` (cached ones reused, under the name `tower`), and the files that
    could not be read, with the reason; their rows are NaN."""
    data = [p.read_bytes() for p in paths]
    keys = [hashlib.sha256(d).hexdigest() for d in data]
    failed: dict[Path, str] = {}

    def compute(indices: Sequence[int]) -> np.ndarray:
        images, readable = [], []
        for i in indices:
            try:
                images.append(decode_image(data[i], str(paths[i]), _MAX_PIXELS))
                readable.append(i)
            except BadInputError as exc:
                failed[paths[i]] = str(exc).removeprefix(f"{paths[i]}: ")
        vectors = embed(images) if images else np.zeros((0, 1), np.float32)
        out = np.full((len(indices), vectors.shape[1]), np.nan, np.float32)
        out[[indices.index(i) for i in readable]] = vectors
        return out

    cache = FeatureCache(cache_dir / "features", tower, "images")
    return cache.get(keys, compute, progress, label), failed


def text_features(embedder, tower: str, texts: Sequence[str], cache_dir: Path, progress=None) -> np.ndarray:
    keys = list(texts)
    compute = lambda indices: embedder.embed_texts([keys[i] for i in indices])  # noqa: E731
    return FeatureCache(cache_dir / "features", tower, "texts").get(keys, compute, progress, "text features")
