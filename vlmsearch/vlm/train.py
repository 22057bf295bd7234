"""`vlmsearch train vlm`: train the adapter of a VisionLanguageModel, stage by stage.

Stages share one loop and differ in data and starting point (seed 001, "VLM Training"):
pretrain (image-text pairs as captioning instructs), sft (varied instructs mixed with text-only
ones), task (captioner or rephraser data), dpo (preference pairs, vlm/dpo.py). `--init` continues
from the previous stage's checkpoint.
The encoder and the LM stay frozen, so only the adapter trains; encoder grids are cached on disk.
A run saves every `save_every` steps (adapter + optimizer + step) and resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, field_validator

from vlmsearch.config import ModelSpec
from vlmsearch.errors import BadInputError
from vlmsearch.features import FeatureCache
from vlmsearch.images import load_image
from vlmsearch.models.registry import build_model
from vlmsearch.vlm.data import Conversation, load_conversations
from vlmsearch.vlm.lora import LoRASettings
from vlmsearch.vlm.model import (
    IGNORE,
    Precision,
    VisionLanguageModel,
    VLMConfig,
)
from vlmsearch.vlm.state import STATE_FILE, batch_at, save_state, start_or_resume

REPORT_FILE = "training.json"


class VLMTrainSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    data: tuple[Path, ...]  # JSONL conversations or LLaVA JSON; several files are mixed (task fine-tunes)
    out: Path
    stage: Literal["pretrain", "sft", "task", "dpo"] = "pretrain"
    init: Path | None = None  # a checkpoint to continue from; otherwise `model` builds a new adapter
    model: VLMConfig | None = None
    joint_tokens: int = 0  # with `init`: grow its adapter by this many joint tokens (vlm/joint_tokens.py)
    joint: ModelSpec | None = None  # with `init`: the joint heads of those tokens (default: the config's)
    steps: int = 200
    batch_size: int = 4
    lr: float = 1e-3  # LLaVA's pre-training rate for a fresh projector; lower it for later stages
    max_tokens: int = 160  # text tokens per sample (the rephraser's prompt is ~110); longer ones are cut
    held_out: float = 0.05
    save_every: int = 50
    lora: LoRASettings | None = None  # set: LoRA on a Hugging Face VLM (vlm/lora.py) instead of our adapter
    precision: Precision = "auto"  # the frozen LM in bf16 where that is native (~2.4x faster); adapter stays fp32
    beta: float = 0.1  # dpo: how far the preferences may pull the model from where it started (DPO's beta)
    keep: tuple[Path, ...] = ()  # dpo: conversations whose loss is added at each step, so other tasks of the adapter stay
    seed: int = 0

    @field_validator("data", "keep", mode="before")
    @classmethod
    def _one_or_more(cls, value):
        return (value,) if isinstance(value, (str, Path)) else value


@dataclass
class VLMTrainReport:
    checkpoint: str
    stage: str
    steps: int
    samples: int
    text_only_skipped: int
    held_out_loss: float
    first_loss: float
    last_loss: float
    trainable_parameters: int
    image_context_tokens: int
    samples_per_second: float | None  # of this invocation; None when it resumed a finished run
    losses: list[float] = field(default_factory=list)
    preferences: dict | None = None  # dpo: how often held-out chosen replies are likelier than rejected ones


def is_held_out(conversation: Conversation, share: float) -> bool:
    key = json.dumps(conversation.messages) + str(conversation.image)
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share


def _split(conversations: list[Conversation], share: float) -> tuple[list[Conversation], list[Conversation]]:
    """(train, held out) by a stable hash; the held-out loss needs at least one conversation."""
    train_set = [c for c in conversations if not is_held_out(c, share)]
    return train_set, [c for c in conversations if is_held_out(c, share)] or train_set[:1]


def _write_report(settings: VLMTrainSettings, report: VLMTrainReport) -> VLMTrainReport:
    (settings.out / REPORT_FILE).write_text(json.dumps({"settings": settings.model_dump(mode="json"), **asdict(report)}, indent=2))
    return report


def encode(tokenizer, messages, max_tokens: int) -> tuple[list[int], list[int]]:
    """Token ids of the whole chat and labels that score only the final assistant reply."""
    prompt = tokenizer.apply_chat_template(list(messages[:-1]), add_generation_prompt=True, tokenize=True)
    full = tokenizer.apply_chat_template(list(messages), tokenize=True)
    prompt, full = list(getattr(prompt, "input_ids", prompt)), list(getattr(full, "input_ids", full))
    labels = [IGNORE] * len(prompt) + full[len(prompt) :]
    return full[:max_tokens], labels[:max_tokens]


def collate(model: VisionLanguageModel, items, grids: dict, max_tokens: int):
    encoded = [encode(model.tokenizer, c.messages, max_tokens) for c in items]
    width = max(len(ids) for ids, _ in encoded)
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else model.tokenizer.eos_token_id
    ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in encoded])
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in encoded])
    labels = torch.tensor([lab + [IGNORE] * (width - len(lab)) for _, lab in encoded])
    return torch.from_numpy(np.stack([grids[str(c.image)] for c in items])), ids, mask, labels


def encoder_grids(conversations: list[Conversation], config: VLMConfig, cache_dir: Path, progress) -> dict[str, np.ndarray]:
    encoder = build_model("image_embedder", config.encoder, cache_dir)
    paths = sorted({str(c.image) for c in conversations if c.image is not None})
    if not paths:
        return {}
    keys = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]

    def compute(indices):
        return encoder.feature_maps([load_image(paths[i]) for i in indices]).flatten(1).numpy()

    cache = FeatureCache(cache_dir / "features", encoder.name, "grids", dtype=np.float16)  # 125 KB an image
    flat = cache.get(keys, compute, progress, "image grids")
    side = round((flat.shape[1] / config.encoder_dim) ** 0.5)
    return {p: row.reshape(-1, side, side) for p, row in zip(paths, flat)}


def load_for_training(settings: VLMTrainSettings, cache_dir: Path, progress=None) -> VisionLanguageModel:
    """The model a run trains: its own last save when resuming, else `init`, else a new adapter."""
    resume = (settings.out / STATE_FILE).is_file()
    start = settings.init if not resume else settings.out
    loading = progress.add_task("loading the language model", total=None) if progress else None
    if start:
        model = VisionLanguageModel.from_pretrained(start, cache_dir)
    else:
        torch.manual_seed(settings.seed)  # the adapter's initial weights: a run is a function of its seed
        model = VisionLanguageModel.build(settings.model, cache_dir)
    if settings.joint_tokens and model.config.joint_tokens not in (0, settings.joint_tokens):
        raise BadInputError(f"{start} has {model.config.joint_tokens} joint tokens, not {settings.joint_tokens}: its adapter grows them once")
    if settings.joint_tokens and not model.config.joint_tokens:  # a resumed run has them already
        torch.manual_seed(settings.seed)
        model.add_joint_tokens(settings.joint_tokens, cache_dir, settings.joint)
    if progress:
        progress.remove_task(loading)
    return model.set_precision(settings.precision)


def train_steps(settings: VLMTrainSettings, model: VisionLanguageModel, train_set: list, loss_of, progress=None) -> tuple[list[float], float | None]:
    """Train the adapter on batches of `train_set` until `settings.steps`, saving (and resuming)
    as it goes; `loss_of(batch, step)` is the stage's loss. Returns (losses, samples per second)."""
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}  # the LM and joint heads are frozen
    trainable = list(named.values())
    optimizer, step, losses = start_or_resume(settings.out, named, settings.lr, settings.seed)
    model.train()
    model.lm.eval()  # frozen, and no dropout in the LM
    task = progress.add_task(f"training vlm ({settings.stage})", total=settings.steps, completed=step) if progress else None
    started, trained = time.perf_counter(), 0
    while step < settings.steps:
        batch = batch_at(train_set, settings.batch_size, settings.seed, step)
        loss = loss_of(batch, step)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        step, trained = step + 1, trained + len(batch)
        losses.append(round(loss.item(), 4))
        if progress:
            progress.update(task, advance=1, description=f"training vlm ({settings.stage}, loss {loss.item():.3f})")
        if step % settings.save_every == 0 or step == settings.steps:
            save_state(settings.out, named, optimizer, step, losses)
            model.save_pretrained(settings.out)
    seconds = time.perf_counter() - started
    model.eval()
    return losses, round(trained / seconds, 3) if trained else None


def report_of(settings: VLMTrainSettings, model: VisionLanguageModel, samples: int, losses: list[float], speed: float | None,
              held_out_loss: float, **extra) -> VLMTrainReport:  # fmt: skip
    report = VLMTrainReport(
        checkpoint=str(model.save_pretrained(settings.out)), stage=settings.stage, steps=len(losses), samples=samples,
        held_out_loss=round(held_out_loss, 4), first_loss=losses[0] if losses else float("nan"),
        last_loss=float(np.mean(losses[-10:])) if losses else float("nan"),
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        image_context_tokens=model.image_context_tokens, samples_per_second=speed, losses=losses, **extra,
    )  # fmt: skip
    return _write_report(settings, report)


def train_supervised(settings: VLMTrainSettings, cache_dir: Path, progress=None) -> VLMTrainReport:
    """The captioning and task stages (and LoRA on a hub VLM): next-token loss on conversations.
    `vlm/stages.py` chooses between this and DPO."""
    if settings.init is None and settings.model is None and settings.lora is None:
        raise BadInputError("give --init (a checkpoint to continue) or a model to build (LM and adapter)")
    conversations = [c for path in settings.data for c in load_conversations(path)]
    if settings.lora is not None:
        return _train_lora(settings, conversations, progress)
    # With the LM frozen, only conversations with an image reach a trainable weight; text-only ones
    # matter once the LM itself trains (LoRA), so they are counted and set aside here.
    text_only = sum(c.image is None for c in conversations)
    conversations = [c for c in conversations if c.image is not None]
    if not conversations:
        raise BadInputError(f"{', '.join(map(str, settings.data))}: no conversation has an image; the adapter learns only from images")
    train_set, held_out = _split(conversations, settings.held_out)
    model = load_for_training(settings, cache_dir, progress)
    grids = encoder_grids(conversations, model.config, cache_dir, progress)
    losses, speed = train_steps(settings, model, train_set, lambda batch, _: model(*collate(model, batch, grids, settings.max_tokens)).loss, progress)
    with torch.no_grad():
        held = [model(*collate(model, held_out[s : s + settings.batch_size], grids, settings.max_tokens)).loss.item()
                for s in range(0, len(held_out), settings.batch_size)]  # fmt: skip
    return report_of(settings, model, len(train_set), losses, speed, float(np.mean(held)) if held else float("nan"), text_only_skipped=text_only)


def _train_lora(settings: VLMTrainSettings, conversations: list[Conversation], progress) -> VLMTrainReport:
    from vlmsearch.vlm.lora import train_lora

    train_set, held_out = _split(conversations, settings.held_out)
    trained = train_lora(settings, train_set, held_out, progress)
    losses = trained["losses"]
    report = VLMTrainReport(
        checkpoint=str(settings.out), stage=settings.stage, steps=trained["steps"], samples=len(train_set), text_only_skipped=0,
        held_out_loss=trained["held_out_loss"], first_loss=losses[0] if losses else float("nan"),
        last_loss=float(np.mean(losses[-10:])) if losses else float("nan"),
        trainable_parameters=trained["trainable_parameters"], image_context_tokens=trained["image_context_tokens"],
        samples_per_second=trained["samples_per_second"], losses=losses,
    )  # fmt: skip
    return _write_report(settings, report)
