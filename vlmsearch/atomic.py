"""Files written so that a kill mid-write keeps the previous version whole: written aside, then
renamed over the old one (a rename is atomic on one file system). Shared by every training loop."""

from __future__ import annotations

import os
from pathlib import Path


def save_atomically(state: dict, path: Path) -> None:
    """torch.save, but a kill mid-save keeps the previous file whole (write aside, then rename)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)
