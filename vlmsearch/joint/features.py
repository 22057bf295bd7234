"""Frozen-tower features, computed once and cached on disk, so training epochs cost milliseconds.

Image features are keyed by the file's sha256 (a moved or renamed file is not recomputed, an edited
one is), text features by the text. One `.npz` per tower and kind under `<cache>/features/`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from vlmsearch.errors import BadInputError
from vlmsearch.images import decode_image

_BATCH = 32
_MAX_PIXELS = 64_000_000


class FeatureCache:
    def __init__(self, folder: Path, tower: str, kind: str, dtype=np.float32):
        self.file = folder / f"{tower.replace('/', '--')}.{kind}.npz"
        self.dtype = dtype  # storage type; float16 halves big grids at no cost to training
        self._vectors: dict[str, np.ndarray] = {}
        if self.file.is_file():
            with np.load(self.file) as data:
                self._vectors = dict(zip(data["keys"].tolist(), data["vectors"]))

    def get(self, keys: Sequence[str], compute: Callable[[Sequence[int]], np.ndarray], progress=None, label="") -> np.ndarray:
        """Vectors for `keys`; `compute(indices)` embeds the missing ones, a batch at a time."""
        missing = [i for i, key in enumerate(keys) if key not in self._vectors]
        missing = list({keys[i]: i for i in missing}.values())  # each distinct key once
        task = progress.add_task(label, total=len(missing)) if progress and missing else None
        for start in range(0, len(missing), _BATCH):
            batch = missing[start : start + _BATCH]
            for i, vector in zip(batch, compute(batch)):
                if np.isfinite(vector).all():  # NaN marks an input that could not be read: not cached
                    self._vectors[keys[i]] = np.asarray(vector, dtype=self.dtype)
            if task is not None:
                progress.advance(task, len(batch))
            if (start // _BATCH) % 50 == 49:
                self.save()  # a killed run keeps most of its work
        if missing:
            self.save()
        dim = len(next(iter(self._vectors.values()))) if self._vectors else 1
        return np.stack([self._vectors.get(key, np.full(dim, np.nan, np.float32)) for key in keys]).astype(np.float32)

    def save(self) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.file.with_suffix(".partial.npz")
        np.savez(partial, keys=np.array(list(self._vectors)), vectors=np.stack(list(self._vectors.values())))
        partial.replace(self.file)  # atomic: a crash never leaves a half-written cache


def image_features(
    embed: Callable[[list], np.ndarray], tower: str, paths: Sequence[Path], cache_dir: Path, progress=None
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
    return cache.get(keys, compute, progress, "image features"), failed


def text_features(embedder, tower: str, texts: Sequence[str], cache_dir: Path, progress=None) -> np.ndarray:
    keys = list(texts)
    compute = lambda indices: embedder.embed_texts([keys[i] for i in indices])  # noqa: E731
    return FeatureCache(cache_dir / "features", tower, "texts").get(keys, compute, progress, "text features")
