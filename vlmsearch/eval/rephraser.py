"""How well a rephraser's queries retrieve (`vlmsearch eval rephraser`).

For each answerable bucket item: the pipeline's own visual search and rephraser chat, then the rank
of the item's document among the passages retrieval returns, for the query alone (what the
rephraser itself adds) and fused as the pipeline retrieves (with the model-free fallbacks and the
question). The DPO stage's preference data ranks sampled replies the same way (vlm/preferences.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from vlmsearch.eval.bucket.items import Bucket, BucketItem
from vlmsearch.eval.stats import bootstrap_ci
from vlmsearch.images import load_image
from vlmsearch.models.protocols import Message
from vlmsearch.pipeline.rephrase import Rephraser, retrieval_queries
from vlmsearch.pipeline.types import VisualFacts


@dataclass(frozen=True)
class RankedReply:
    reply: str
    query: str  # the reply as retrieval runs it
    alone: int | None  # rank (1 = first) of the item's document for the query alone; None: not retrieved
    fused: int | None  # the same, fused with the fallbacks and the question as the pipeline retrieves


@dataclass(frozen=True)
class Probed:
    item: BucketItem
    image: Path | None
    prompt: list[Message]  # the rephraser's chat, its image included
    replies: list[RankedReply]  # the greedy reply first, then the samples


class RephraserProbe:
    """A pipeline's visual search, rephraser and retriever, over an engine whose store holds the
    bucket's documents (eval.answers.eval_engine). `model` replaces the rephraser's model (a VLM
    checkpoint being trained)."""

    def __init__(self, engine, pipeline: str = "vlm", model=None):
        pipe = engine.pipeline(pipeline)
        role = pipe.spec.rephraser_role
        self.visual_search, self.retriever = pipe.visual_search, pipe.retriever
        self.rephraser = Rephraser(model or engine.models.get(role), sees_image=role == "vlm",
                                   max_tokens=engine.settings.answer.max_rephrase_tokens, wordnet=engine.wordnet)  # fmt: skip

    def _rank(self, item: BucketItem, queries: list[tuple[str, float]]) -> int | None:
        names = [Path(p.source).name for p in self.retriever(queries)]
        return names.index(item.source) + 1 if item.source in names else None

    def ranked(self, item: BucketItem, facts: VisualFacts | None, reply: str) -> RankedReply:
        query = self.rephraser.query(item.question, facts, reply)
        return RankedReply(reply, query.text, self._rank(item, [(query.text, 1.0)]), self._rank(item, retrieval_queries(item.question, query)))

    def probe(self, bucket: Bucket, item: BucketItem, samples: int = 0, temperature: float = 1.0) -> Probed:
        """The greedy reply and `samples` sampled ones, each ranked."""
        path = bucket.image_path(item)
        image: Image.Image | None = load_image(path) if path else None
        facts = self.visual_search(image) if image is not None else None
        prompt = self.rephraser.prompt(item.question, facts, image)
        replies = [self.rephraser.reply(prompt)] + [self.rephraser.reply(prompt, temperature) for _ in range(samples)]
        return Probed(item, path, prompt, [self.ranked(item, facts, r) for r in replies])


def probe_bucket(probe: RephraserProbe, bucket: Bucket, samples: int = 0, temperature: float = 1.0, seed: int = 0, progress=None) -> list[Probed]:
    """Every answerable item probed. Each item's samples are seeded by its id and `seed`, so a rerun
    (or a run on part of the bucket) draws the same replies."""
    import torch

    items = [i for i in bucket.items if i.answerable]
    task = progress.add_task("rephrasing", total=len(items)) if progress else None
    out = []
    for item in items:
        torch.manual_seed(int(hashlib.sha256(f"{seed}-{item.id}".encode()).hexdigest()[:8], 16))
        out.append(probe.probe(bucket, item, samples, temperature))
        if progress:
            progress.advance(task)
    return out


def _rate(hits: Sequence[bool]) -> dict:
    return {"rate": round(sum(hits) / len(hits), 4) if hits else None, "ci95": list(bootstrap_ci([float(h) for h in hits]))}


def summarize_ranks(probed: Sequence[Probed]) -> dict:
    """Top-1 and top-3 rates of the greedy replies: the query alone, and fused as the pipeline retrieves."""
    greedy = [p.replies[0] for p in probed]
    return {
        "items": len(greedy),
        "alone_top1": _rate([r.alone == 1 for r in greedy]),
        "alone_top3": _rate([r.alone is not None and r.alone <= 3 for r in greedy]),
        "fused_top3": _rate([r.fused is not None and r.fused <= 3 for r in greedy]),
    }
