"""Frozen-model outputs cached on disk, so training epochs cost milliseconds (joint heads, VLM adapters).

Keys are chosen by the caller (a file's sha256, a text); one `.npz` per model and kind under
`<cache>/features/`. Writes are atomic, with checkpoints along the way, so a killed run keeps its work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

_BATCH = 32


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
