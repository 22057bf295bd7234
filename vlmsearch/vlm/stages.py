"""`vlmsearch train vlm`: one entry for every stage. The supervised stages (vlm/train.py) and DPO
(vlm/dpo.py, built on the supervised loop's pieces) are chosen here, above both, so neither imports
the other back."""

from __future__ import annotations

from pathlib import Path

from vlmsearch.vlm.dpo import train_dpo
from vlmsearch.vlm.train import VLMTrainReport, VLMTrainSettings, train_supervised


def train_vlm(settings: VLMTrainSettings, cache_dir: Path, progress=None) -> VLMTrainReport:
    if settings.stage == "dpo":
        return train_dpo(settings, cache_dir, progress)
    return train_supervised(settings, cache_dir, progress)
