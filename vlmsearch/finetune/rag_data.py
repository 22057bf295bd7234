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
passage about the thing asked, not to copy the first one. A share of the answered items also gets a
counterfactual pair (finetune/counterfactual.py): a number asked, stated in the passage or not.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, get_args

from vlmsearch.eval.bucket.items import Bucket, BucketItem
from vlmsearch.eval.scoring import key_words
from vlmsearch.finetune.counterfactual import counterfactual, with_fact
from vlmsearch.pipeline.generate import NOT_SUPPORTED
from vlmsearch.vlm.data import Conversation

ABSTAIN = NOT_SUPPORTED  # the system prompt's own words for "the sources do not answer"
Kind = Literal["answered", "unanswerable", "missed", "fact stated", "fact absent", "sign read", "sign not asked"]


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


def answering_passage(item: BucketItem, sources: Sequence[str], texts: Sequence[str]) -> int | None:
    """The [n] of the passage from the item's document whose shown text holds the reference's words."""
    wanted = key_words(item.reference or "")
    for n, (source, text) in enumerate(zip(sources, texts), 1):
        if Path(source).name == item.source and wanted <= key_words(text):
            return n
    return None


def reply_for(item: BucketItem, sources: Sequence[str], texts: Sequence[str]) -> tuple[str, Kind]:
    """What the generator should say, given the sources' file names and the text it is shown of each."""
    if not (item.answerable and item.source and item.reference):
        return ABSTAIN, "unanswerable"
    n = answering_passage(item, sources, texts)
    return (cited(item.reference, n), "answered") if n else (ABSTAIN, "missed")


def chat_example(example_id: str, messages, reply: str, kind: Kind) -> RagExample:
    """The generator's prompt and the reply it should write, as a text-only training chat."""
    turns = (*({"role": m.role, "content": m.text} for m in messages), {"role": "assistant", "content": reply})
    return RagExample(example_id, Conversation(None, turns), kind)


def rag_examples(pipeline, bucket: Bucket, item: BucketItem, max_pixels: int, counterfactual_share: float = 0.0, seed: int = 0) -> list[RagExample]:
    """The item's chat, and for `counterfactual_share` of the answered items a counterfactual pair;
    none when the pipeline answers without the model (nothing to ground on). `max_pixels`: the
    profile's image limit, as `ask` applies it."""
    from vlmsearch.images import load_image

    image = load_image(bucket.image_path(item), max_pixels) if item.image else None
    gathered = pipeline.gather(item.question, image)
    generator = pipeline.generator()
    messages = gathered.messages(generator, item.question)
    if messages is None:
        return []
    sources = [p.source for p in gathered.passages]
    reply, kind = reply_for(item, sources, gathered.texts)
    examples = [chat_example(item.id, messages, reply, kind)]
    rng = random.Random(f"{seed}:{item.id}")  # an item's pair does not depend on the others
    if kind == "answered" and rng.random() < counterfactual_share:
        n = answering_passage(item, sources, gathered.texts)
        examples += _counterfactual_pair(item, gathered, generator, n, rng)
    return examples


def _counterfactual_pair(item: BucketItem, gathered, generator, n: int, rng: random.Random) -> list[RagExample]:
    name = Path(item.source).stem.replace("-", " ")
    made = counterfactual(item.question, name, item.cluster, rng)
    if made is None:
        return []
    texts = list(gathered.texts)
    stated = [*texts[: n - 1], with_fact(texts[n - 1], made.fact, rng), *texts[n:]]
    pair = [chat_example(item.id, replace(gathered, texts=stated).messages(generator, made.question), made.reply.format(n=n), "fact stated")]
    if not any(c.isdigit() for text in texts for c in text):  # declining is right only if no passage gives a number
        pair.append(chat_example(item.id, gathered.messages(generator, made.question), ABSTAIN, "fact absent"))
    return pair


def counts(examples: Sequence[RagExample]) -> dict[str, int]:
    found = Counter(e.kind for e in examples)
    return {kind: found[kind] for kind in get_args(Kind)}
