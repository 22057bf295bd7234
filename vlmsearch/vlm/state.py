"""A training run's resumable state, shared by the adapter and LoRA loops.

A killed run resumes to the same weights as an uninterrupted one: the state file holds the trainable
weights, the optimizer, the step and the random generator together, written atomically (a kill
while saving leaves the previous state), and each step's batch depends only on (seed, step).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import torch

from vlmsearch.atomic import save_atomically

STATE_FILE = "trainer_state.pt"
T = TypeVar("T")


def start_or_resume(out: Path, named_trainable: dict[str, torch.Tensor], lr: float, seed: int):
    """(optimizer, step, losses): fresh, or as a killed run in `out` left them (weights included)."""
    optimizer = torch.optim.AdamW(list(named_trainable.values()), lr=lr, weight_decay=0.0)
    step, losses = 0, []
    torch.manual_seed(seed)
    if (out / STATE_FILE).is_file():
        state = torch.load(out / STATE_FILE, weights_only=False)
        with torch.no_grad():
            for name, value in state.get("weights", {}).items():
                named_trainable[name].copy_(value)
        optimizer.load_state_dict(state["optimizer"])
        step, losses = state["step"], state["losses"]
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])
    return optimizer, step, losses


def save_state(out: Path, named_trainable: dict[str, torch.Tensor], optimizer, step: int, losses: list[float]) -> None:
    state = {
        "step": step, "losses": losses, "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
        "weights": {name: value.detach().clone() for name, value in named_trainable.items()},
    }  # fmt: skip
    save_atomically(state, out / STATE_FILE)


def batch_at(items: Sequence[T], size: int, seed: int, step: int) -> list[T]:
    """The batch of `step`: epochs of a seeded shuffle, so a resumed run trains on what the
    uninterrupted one would have, in the same order."""
    per_epoch = -(-len(items) // size)
    epoch, index = divmod(step, per_epoch)
    order = list(items)
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order[index * size : (index + 1) * size]
