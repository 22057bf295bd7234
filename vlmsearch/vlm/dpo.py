"""The DPO stage (Rafailov et al., 2023; seed 001's last training stage) on our VLM's adapter.

Data: preference pairs (vlm/preferences.py), a prompt with the reply to prefer and the reply to
avoid. The loss raises the chosen reply's log-probability against the rejected one's, each
measured relative to the model the stage starts from (`--init`, the reference):
    -log sigmoid(beta * ((chosen - chosen_ref) - (rejected - rejected_ref))).
The reference's log-probabilities are computed once, before the first step, and kept beside the
checkpoint, so a resumed run needs no second copy of the model. Only the adapter trains, as in
every stage.

One adapter serves both of the vlm pipeline's roles, so preferences about rephrasing move the
captions too (measured: topic hit 0.53 -> 0.35 on held-out drawings). `keep` adds the loss of a
batch of other conversations (the captioner's training set) to each step, so the stage changes
what the pairs are about and keeps the rest. The logged training loss is then the sum of the two;
the held-out loss is DPO's alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vlmsearch.errors import BadInputError
from vlmsearch.vlm.data import Conversation, load_conversations
from vlmsearch.vlm.model import VisionLanguageModel
from vlmsearch.vlm.preferences import Preference, load_preferences
from vlmsearch.vlm.state import STATE_FILE
from vlmsearch.vlm.train import (
    VLMTrainReport,
    VLMTrainSettings,
    batch_at,
    collate,
    encoder_grids,
    is_held_out,
    load_for_training,
    report_of,
    train_steps,
)

REFERENCE_FILE = "reference_logprobs.json"


def _as_conversations(pair: Preference) -> tuple[Conversation, Conversation]:
    return Conversation(pair.image, pair.chat(pair.chosen)), Conversation(pair.image, pair.chat(pair.rejected))


def pair_logprobs(model: VisionLanguageModel, pairs: Sequence[Preference], grids: dict, max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) summed log-probabilities of each pair's replies, in one forward pass."""
    conversations = [c for pair in pairs for c in _as_conversations(pair)]
    logprobs = model.reply_logprobs(*collate(model, conversations, grids, max_tokens))
    return logprobs[0::2], logprobs[1::2]


def _reference(settings: VLMTrainSettings, model: VisionLanguageModel, pairs: list[Preference], grids: dict, progress) -> dict[int, tuple[float, float]]:
    """Each pair's log-probabilities under the starting model, computed once (and read back on resume)."""
    path = settings.out / REFERENCE_FILE
    if path.is_file():
        return {int(k): tuple(v) for k, v in json.loads(path.read_text()).items()}
    task = progress.add_task("reference log-probabilities", total=len(pairs)) if progress else None
    found = {}
    model.eval()
    with torch.no_grad():
        for start in range(0, len(pairs), settings.batch_size):
            chosen, rejected = pair_logprobs(model, pairs[start : start + settings.batch_size], grids, settings.max_tokens)
            for offset, (c, r) in enumerate(zip(chosen.tolist(), rejected.tolist())):
                found[start + offset] = (c, r)
            if progress:
                progress.advance(task, len(chosen))
    settings.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(found))
    return found


def dpo_loss(chosen, rejected, chosen_ref, rejected_ref, beta: float) -> torch.Tensor:
    return -F.logsigmoid(beta * ((chosen - chosen_ref) - (rejected - rejected_ref))).mean()


def train_dpo(settings: VLMTrainSettings, cache_dir: Path, progress=None) -> VLMTrainReport:
    if settings.init is None:
        raise BadInputError("the dpo stage continues a trained VLM: give --init (its reference, e.g. the task stage's checkpoint)")
    if settings.lora is not None:
        raise BadInputError("the dpo stage trains our VLM's adapter; LoRA on a hub VLM has no dpo stage here")
    pairs = [p for path in settings.data for p in load_preferences(path)]
    if any(p.image is None for p in pairs):
        raise BadInputError("every preference pair needs its image: the adapter learns only from images")
    indexed = list(enumerate(pairs))
    held_ids = {i for i, p in indexed if is_held_out(Conversation(p.image, p.chat(p.chosen)), settings.held_out)}
    train_set = [(i, p) for i, p in indexed if i not in held_ids] or indexed
    held = [(i, p) for i, p in indexed if i in held_ids] or train_set[:1]
    kept = [c for path in settings.keep for c in load_conversations(path) if c.image is not None]
    model = load_for_training(settings, cache_dir, progress)
    grids = encoder_grids([Conversation(p.image, p.messages) for p in pairs] + kept, model.config, cache_dir, progress)
    if not (settings.out / STATE_FILE).is_file() and (settings.out / REFERENCE_FILE).is_file():
        (settings.out / REFERENCE_FILE).unlink()  # a fresh run: references of another start would be wrong
    reference = _reference(settings, model, pairs, grids, progress)

    def references(batch) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor([reference[i][0] for i, _ in batch]), torch.tensor([reference[i][1] for i, _ in batch])

    def loss_of(batch, step: int):
        loss = dpo_loss(*pair_logprobs(model, [p for _, p in batch], grids, settings.max_tokens), *references(batch), settings.beta)
        if kept:  # the step's own batch of the kept conversations: a resumed run draws the same ones
            loss = loss + model(*collate(model, batch_at(kept, settings.batch_size, settings.seed + 1, step), grids, settings.max_tokens)).loss
        return loss

    losses, speed = train_steps(settings, model, train_set, loss_of, progress)
    margins, losses_held = [], []
    with torch.no_grad():
        for start in range(0, len(held), settings.batch_size):
            batch = held[start : start + settings.batch_size]
            chosen, rejected = pair_logprobs(model, [p for _, p in batch], grids, settings.max_tokens)
            chosen_ref, rejected_ref = references(batch)
            losses_held.append(dpo_loss(chosen, rejected, chosen_ref, rejected_ref, settings.beta).item() * len(batch))
            margins += list(zip((chosen - rejected).tolist(), (chosen_ref - rejected_ref).tolist()))
    preferences = {
        "pairs": len(pairs), "held_out_pairs": len(held), "beta": settings.beta,
        # how often the held-out chosen reply is the likelier one, before and after the stage
        "held_out_chosen_likelier_before": round(float(np.mean([ref > 0 for _, ref in margins])), 4),
        "held_out_chosen_likelier_after": round(float(np.mean([now > 0 for now, _ in margins])), 4),
        "held_out_margin_gain": round(float(np.mean([now - ref for now, ref in margins])), 4),
    }  # fmt: skip
    return report_of(settings, model, len(train_set), losses, speed, sum(losses_held) / len(held), text_only_skipped=0, preferences=preferences)
