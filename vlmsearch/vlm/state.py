"""A training run's resumable state (optimizer, step, losses), shared by the adapter and LoRA loops."""

from __future__ import annotations

import random
from pathlib import Path

import torch

STATE_FILE = "trainer_state.pt"


def start_or_resume(out: Path, trainable: list, lr: float, seed: int):
    """(optimizer, step, losses, rng): fresh, or as a killed run in `out` left them. Seeds depend on the
    step, so a resumed run does not replay the batches it already trained on."""
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    step, losses = 0, []
    if (out / STATE_FILE).is_file():
        state = torch.load(out / STATE_FILE, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        step, losses = state["step"], state["losses"]
    torch.manual_seed(seed + step)
    return optimizer, step, losses, random.Random(seed + step)


def save_state(out: Path, optimizer, step: int, losses: list[float]) -> None:
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "losses": losses}, out / STATE_FILE)
