"""`vlmsearch train contrastive`: fit the joint heads on cached frozen-tower features.

Each epoch draws one pair per training group (variants of one drawing never meet as negatives, and
a group of 1,378 stars weighs as much as a group of one), with a random text variant per pair and,
with `views`, a random augmented view of its image. Training stops when held-out (`val`) text ->
image MRR has not improved for `patience` epochs and keeps the best epoch's heads; with `members`,
that is done again with the next seeds and the heads are merged into one (their average). The
`test` split is scored once, at the end.
"""

from __future__ import annotations

import copy
import json
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from vlmsearch.atomic import save_atomically
from vlmsearch.config import ModelSpec
from vlmsearch.errors import BadInputError
from vlmsearch.joint.augment import augmented
from vlmsearch.joint.embedder import tower_features
from vlmsearch.joint.evaluate import gallery, queries, retrieval_metrics
from vlmsearch.joint.features import image_features, text_features
from vlmsearch.joint.losses import clip_loss, siglip_loss
from vlmsearch.joint.model import (
    JointConfig,
    JointHeads,
    Loss,
    load_heads,
    merge_heads,
    save_heads,
)
from vlmsearch.joint.pairs import Pair, load_pairs, split_of, split_pairs
from vlmsearch.models.registry import build_model

REPORT_FILE = "training.json"
STATE_FILE = "trainer_state.pt"


class ContrastiveSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    data: Path  # a folder of images or a JSONL file of image-text pairs
    out: Path  # the checkpoint folder
    loss: Loss = "siglip"
    name: str = ""  # the embedder's name; default: joint-<data folder>-<loss>
    seed: int = 0
    max_epochs: int = 300
    patience: int = 25  # epochs without a better val MRR before stopping
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.05
    held_out: float = 0.1  # share of groups in val, and again in test
    views: int = 0  # augmented views of each training image (joint/augment.py), drawn beside the original
    members: int = 1  # heads trained with seeds seed, seed + 1, ... and merged (an ensemble at the cost of one)
    hidden: int = 1024
    dropout: float = 0.1
    class_prior: bool = True  # start from the image tower's class names (when it is a classifier)
    # With a prior: the smallest correction scale whose val MRR is within this of the best one. Closer
    # to the prior generalises better off the training domain at (almost) no cost on it.
    prior_tolerance: float = 0.01
    image_tower: ModelSpec = ModelSpec(backend="bundled", model="efficientnet-lite0")
    text_tower: ModelSpec = ModelSpec(backend="bundled", model="all-minilm-l6-v2")


@dataclass
class TrainReport:
    checkpoint: Path
    pairs: dict[str, int]  # split -> pairs
    groups: dict[str, int]  # split -> groups
    best_epoch: int  # of the first member (seed `seed`)
    epochs: int
    correction_scale: float  # chosen on val (1.0 without a class prior)
    val: dict[str, dict[str, float]]
    test: dict[str, dict[str, float]]
    feature_seconds: float  # tower features (zero when all were cached)
    train_seconds: float  # the heads' epochs, evaluation included
    peak_rss_mb: float  # of the whole process, towers included
    skipped: dict[str, str] = field(default_factory=dict)  # unreadable images -> why
    history: list[dict[str, float]] = field(default_factory=list)  # per member and epoch
    member_best_epochs: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


class _Data:
    """Tower features of every pair, indexed by pair position; text variants share one table."""

    def __init__(self, pairs: list[Pair], images: np.ndarray, texts: dict[str, int], text_vectors: np.ndarray, class_text):
        self.pairs, self.images, self.texts, self.text_vectors = pairs, images, texts, text_vectors
        self.class_text = class_text  # (classes, text_features) for the prior, or None
        self.views: list[np.ndarray] = []  # features of augmented views (training pairs' rows; others: the original)

    def title_vectors(self, pairs: list[Pair]) -> np.ndarray:
        return self.text_vectors[[self.texts[p.text] for p in pairs]]


def _load(settings: ContrastiveSettings, cache_dir: Path, progress) -> tuple[_Data, dict[Path, str]]:
    """Features of every readable pair, and the images left out with the reason."""
    pairs = load_pairs(settings.data)
    image_tower = build_model("image_embedder", settings.image_tower, cache_dir)
    text_tower = build_model("text_embedder", settings.text_tower, cache_dir)
    prior = settings.class_prior and hasattr(image_tower, "class_names")
    embed = lambda images: tower_features(image_tower, images, prior)  # noqa: E731
    suffix = "+classes" if prior else ""
    images, failed = image_features(embed, image_tower.name + suffix, [p.image for p in pairs], cache_dir, progress)
    readable = np.isfinite(images).all(axis=1)
    pairs, images = [p for p, ok in zip(pairs, readable) if ok], images[readable]
    texts = sorted({t for p in pairs for t in p.texts})
    vectors = text_features(text_tower, text_tower.name, texts, cache_dir, progress)
    class_text = text_tower.embed_texts(image_tower.class_names) if prior else None
    data = _Data(pairs, images, {t: i for i, t in enumerate(texts)}, vectors, class_text)
    training = [i for i, p in enumerate(pairs) if split_of(p.group, settings.held_out) == "train"]
    fit = getattr(image_tower, "fit", "crop")
    for view in range(settings.views):
        embed_view = lambda images, view=view: embed([augmented(image, view, fit) for image in images])  # noqa: E731
        name = f"{image_tower.name}-aug{view}{suffix}"
        label = f"image features, augmented view {view + 1}/{settings.views}"
        features, _ = image_features(embed_view, name, [pairs[i].image for i in training], cache_dir, progress, label)
        data.views.append(images.copy())
        data.views[-1][training] = features
    return data, failed


def _epoch_batches(groups: dict[str, list[int]], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    picks = [members[rng.integers(len(members))] for members in groups.values()]
    order = rng.permutation(len(picks))
    return [[picks[i] for i in order[s : s + batch_size]] for s in range(0, len(order), batch_size)]


def _step(heads: JointHeads, data: _Data, batch: list[int], rng: np.random.Generator) -> torch.Tensor:
    pairs = [data.pairs[i] for i in batch]
    variants = [data.texts[p.texts[rng.integers(len(p.texts))]] for p in pairs]
    if data.views:  # the original or one of its views, per pair
        choice = rng.integers(len(data.views) + 1, size=len(batch))
        features = np.stack([(data.views[c - 1] if c else data.images)[i] for c, i in zip(choice, batch)])
    else:
        features = data.images[batch]
    images = heads.embed_images(torch.from_numpy(features))
    texts = heads.embed_texts(torch.from_numpy(data.text_vectors[variants]))
    groups = [p.group for p in pairs]
    positives = torch.tensor([[a == b for b in groups] for a in groups])
    if heads.config.loss == "clip":
        return clip_loss(images, texts, heads.logit_scale, positives)
    return siglip_loss(images, texts, heads.logit_scale, heads.logit_bias, positives)


@torch.no_grad()
def _score(heads: JointHeads, data: _Data, split: list[Pair]) -> dict[str, dict[str, float]]:
    heads.eval()
    index = {id(p): i for i, p in enumerate(data.pairs)}
    shown, asked = gallery(split), queries(split)
    images = heads.embed_images(torch.from_numpy(data.images[[index[id(p)] for p in shown]])).numpy()
    titles = heads.embed_texts(torch.from_numpy(data.title_vectors(asked))).numpy()
    return retrieval_metrics(images, shown, titles, asked)


def _choose_correction_scale(heads: JointHeads, data: _Data, val: list[Pair], tolerance: float) -> JointConfig:
    scored = {}
    for scale in (0.25, 0.5, 0.75, 1.0):
        heads.config = heads.config.model_copy(update={"correction_scale": scale})
        scored[scale] = _score(heads, data, val)["text_to_image"]["mrr"]
    best = max(scored.values())
    return heads.config.model_copy(update={"correction_scale": min(s for s, mrr in scored.items() if mrr >= best - tolerance)})


def _state_file(out: Path, member: int) -> Path:
    return out / (STATE_FILE if member == 0 else f"trainer_state.{member}.pt")


def _fit_member(
    config: JointConfig, data: _Data, splits: dict[str, list[Pair]], settings: ContrastiveSettings, member: int, progress
) -> tuple[dict, list[dict[str, float]]]:
    """Train one set of heads with seed `settings.seed + member`: its best state and its history."""
    seed = settings.seed + member
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    index = {id(p): i for i, p in enumerate(data.pairs)}
    train_groups: dict[str, list[int]] = {}
    for pair in splits["train"]:
        train_groups.setdefault(pair.group, []).append(index[id(pair)])
    heads = JointHeads(config)
    if data.class_text is not None:
        heads.class_text.copy_(torch.from_numpy(data.class_text))
    temperature = [heads.logit_scale, heads.logit_bias]
    weights = [p for n, p in heads.named_parameters() if not n.startswith("logit_")]
    optimizer = torch.optim.AdamW(
        [{"params": weights, "weight_decay": settings.weight_decay}, {"params": temperature, "weight_decay": 0.0}],
        lr=settings.lr,
    )
    best, best_epoch, best_state, history = -1.0, 0, copy.deepcopy(heads.state_dict()), []
    epoch = 0
    resume = _state_file(settings.out, member)  # saved after every epoch; a killed run goes on from the last one
    if resume.is_file():
        state = torch.load(resume, weights_only=False)
        heads.load_state_dict(state["heads"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        best, best_epoch, best_state, history, epoch = (state[k] for k in ("best", "best_epoch", "best_state", "history", "epoch"))
    label = "training" if settings.members == 1 else f"training {member + 1}/{settings.members}"
    task = progress.add_task(label, total=settings.max_epochs, completed=epoch) if progress else None
    for epoch in range(epoch + 1, settings.max_epochs + 1):
        if history and epoch - 1 - best_epoch >= settings.patience:
            break  # the killed run had already stopped improving
        heads.train()
        losses = []
        for batch in _epoch_batches(train_groups, settings.batch_size, rng):
            loss = _step(heads, data, batch, rng)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        val_mrr = _score(heads, data, splits["val"])["text_to_image"]["mrr"]
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_mrr": val_mrr})
        if val_mrr > best:
            best, best_epoch, best_state = val_mrr, epoch, copy.deepcopy(heads.state_dict())
        if progress:
            progress.update(task, advance=1, description=f"{label} (loss {np.mean(losses):.3f}, val MRR {val_mrr:.3f}, best {best:.3f})")
        save_atomically({"heads": heads.state_dict(), "optimizer": optimizer.state_dict(), "numpy_rng": rng.bit_generator.state,
                         "torch_rng": torch.get_rng_state(), "best": best, "best_epoch": best_epoch, "best_state": best_state,
                         "history": history, "epoch": epoch}, resume)  # fmt: skip
        if epoch - best_epoch >= settings.patience:
            break
    return best_state, history


def train(settings: ContrastiveSettings, cache_dir: Path, progress=None) -> TrainReport:
    started = time.perf_counter()
    data, failed = _load(settings, cache_dir, progress)
    feature_seconds = time.perf_counter() - started
    splits = split_pairs(data.pairs, settings.held_out)
    if not splits["train"] or not splits["val"]:
        raise BadInputError(
            f"{settings.data}: {len({p.group for p in data.pairs})} distinct texts are too few to hold some out; "
            "training needs images with at least ~20 different descriptions"
        )
    config = JointConfig(
        name=settings.name or f"joint-{settings.data.stem}-{settings.loss}",
        image_tower=settings.image_tower, text_tower=settings.text_tower,
        classes=0 if data.class_text is None else len(data.class_text),
        image_features=data.images.shape[1] - (0 if data.class_text is None else len(data.class_text)),
        text_features=data.text_vectors.shape[1],
        dim=data.text_vectors.shape[1], hidden=settings.hidden, dropout=settings.dropout, loss=settings.loss,
    )  # fmt: skip
    # Seeded inside, after loading: building the towers may draw from torch's generator (once per process).
    members, histories = [], []
    for member in range(settings.members):
        best_state, history = _fit_member(config, data, splits, settings, member, progress)
        heads = JointHeads(config)
        heads.load_state_dict(best_state)
        members.append(heads.eval())
        histories.append(history)
    heads = merge_heads(members) if len(members) > 1 else members[0]
    if config.classes:
        heads.config = _choose_correction_scale(heads, data, splits["val"], settings.prior_tolerance)
    save_heads(heads, settings.out)
    heads = load_heads(settings.out)  # scored as saved (half precision on disk)
    history = [{"member": m, **h} for m, member_history in enumerate(histories) for h in member_history]
    best_epochs = [max(h, key=lambda e: e["val_mrr"])["epoch"] for h in histories]
    report = TrainReport(
        checkpoint=settings.out,
        pairs={k: len(v) for k, v in splits.items()},
        groups={k: len({p.group for p in v}) for k, v in splits.items()},
        best_epoch=best_epochs[0], epochs=len(histories[0]), correction_scale=heads.config.correction_scale,
        member_best_epochs=best_epochs,
        val=_score(heads, data, splits["val"]),
        test=_score(heads, data, splits["test"]) if splits["test"] else {},
        feature_seconds=round(feature_seconds, 2),
        train_seconds=round(time.perf_counter() - started - feature_seconds, 2),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        skipped={str(path): why for path, why in failed.items()},
        history=history,
    )  # fmt: skip
    (settings.out / REPORT_FILE).write_text(json.dumps({"settings": settings.model_dump(mode="json"), **report.to_json()}, indent=2) + "\n")
    for member in range(settings.members):  # finished: a new run in this folder starts over (and gets the same heads)
        _state_file(settings.out, member).unlink(missing_ok=True)
    return report
