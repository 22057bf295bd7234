"""Training chats for the generator (`vlmsearch train generator-data`).

For each item of a bucket (build one from the train split: `eval make-bucket --split train`), the
pipeline runs every stage before the answer, and the chat is the generator's own prompt, answered:
- **answered**: with the item's reference, cited as [n] of the passage it comes from, when that
  passage is in the prompt and the focused text shown for it holds the reference's words;
- **unanswerable**: with the abstention the system prompt asks for, when the documents do not hold
  the answer at all;
- **missed**: the documents hold it, but retrieval did not bring it. Declining is right here too, yet
  the prompt looks like an answerable one (passages about neighbours of the thing asked), and on the
  dev bucket training on these taught the model to decline answerable questions (false abstentions
  2 -> 12 of 55), so by default they are left out (`--missed decline` keeps them).
The passages are what retrieval really found, distractors included, so the model learns to pick the
passage about the thing asked, not to copy the first one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vlmsearch.eval.bucket.items import Bucket, BucketItem
from vlmsearch.eval.scoring import key_words
from vlmsearch.pipeline.generate import NOT_SUPPORTED
from vlmsearch.vlm.data import Conversation

ABSTAIN = NOT_SUPPORTED  # the system prompt's own words for "the sources do not answer"
Kind = Literal["answered", "unanswerable", "missed"]


@dataclass(frozen=True)
class RagExample:
    item: str
    conversation: Conversation
    kind: Kind


def cited(reference: str, n: int) -> str:
    """The reference as an answer sentence citing passage n: "It is also called dipper [2]."."""
    body = reference.strip()
    end = body[-1] if body and body[-1] in ".!?" else "."
    return f"{body.rstrip('.!?')} [{n}]{end}"


def reply_for(item: BucketItem, sources: Sequence[str], texts: Sequence[str]) -> tuple[str, Kind]:
    """What the generator should say, given the sources' file names and the text it is shown of each."""
    if not (item.answerable and item.source and item.reference):
        return ABSTAIN, "unanswerable"
    wanted = key_words(item.reference)
    for n, (source, text) in enumerate(zip(sources, texts), 1):
        if Path(source).name == item.source and wanted <= key_words(text):
            return cited(item.reference, n), "answered"
    return ABSTAIN, "missed"


def rag_example(pipeline, bucket: Bucket, item: BucketItem, max_pixels: int) -> RagExample | None:
    """The item's chat; None when the pipeline answers it without the model (nothing to ground on).
    `max_pixels`: the profile's image limit, as `ask` applies it."""
    from vlmsearch.images import load_image

    image = load_image(bucket.image_path(item), max_pixels) if item.image else None
    gathered = pipeline.gather(item.question, image)
    messages = gathered.messages(pipeline.generator(), item.question)
    if messages is None:
        return None
    reply, kind = reply_for(item, [p.source for p in gathered.passages], gathered.texts)
    turns = (*({"role": m.role, "content": m.text} for m in messages), {"role": "assistant", "content": reply})
    return RagExample(item.id, Conversation(None, turns), kind)


def counts(examples: Sequence[RagExample]) -> dict[str, int]:
    found = Counter(e.kind for e in examples)
    return {kind: found[kind] for kind in ("answered", "unanswerable", "missed")}
