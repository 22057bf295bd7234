"""Reproducible VLM training sets built from offline data (`vlmsearch train vlm-data`).

From a folder of image-text pairs (openclipart: cleaned titles and topics, see joint/pairs.py),
split by group as the joint model is (a held-out drawing's variants are never trained on), at most
`max_per_group` images of one drawing. Every choice (instruction, question) is drawn by a hash of
the file name, so the same files come out on every machine. Four sets, `<set>-{train,test}.jsonl`:

- captions (pretrain): short captioning instructs -> "A drawing of <title> (<topic>)."
- sft: varied instructs (describe, what is it, what kind of thing, what is it used for) answered from
  the caption and, where the title is a WordNet noun, its gloss and kinds.
- captioner (task): the pipeline's captioner prompt, verbatim -> the caption.
- rephraser (task): the pipeline's rephraser chat, verbatim (its instruction, the visual facts
  the tagger gives for this image, a question pointing at the image) -> a query that names what
  the drawing shows. The test split asks questions phrased in ways training never uses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from vlmsearch.images import fits, load_image
from vlmsearch.joint.pairs import Pair, load_pairs, split_pairs
from vlmsearch.knowledge.wordnet import WordNet
from vlmsearch.pipeline.caption import PROMPT as CAPTIONER_PROMPT
from vlmsearch.pipeline.rephrase import rephrase_prompt
from vlmsearch.pipeline.types import VisualFacts
from vlmsearch.vlm.data import Conversation, write_conversations

CAPTION_INSTRUCTS = (
    "Describe the image.",
    "What is in this picture?",
    "Write a short caption for this image.",
    "What does this image show?",
    "Give a one-line description of the picture.",
)
# (question pointing at the image, the query it should become; {s} = what the image shows)
REPHRASE_QUESTIONS = (
    ("What is this?", "{s}"),
    ("What is this used for?", "{s} uses"),
    ("Tell me more about this.", "{s}"),
    ("Where does this come from?", "{s} origin"),
    ("What is the history of this?", "{s} history"),
    ("How do I draw something like this?", "how to draw {s}"),
    ("What does this symbolize?", "{s} symbolism"),
    ("Are there different kinds of these?", "kinds of {s}"),
    ("What is it made of?", "what is {s} made of"),
    ("Where can I see one of these?", "where to see {s}"),
)
HELD_OUT_QUESTIONS = (  # test split only: phrasings the model never trains on
    ("What's the thing in this picture called?", "{s}"),
    ("How does this work?", "how does {s} work"),
    ("Give me some facts about what is shown here.", "{s} facts"),
)
SETS = ("captions", "sft", "captioner", "rephraser")


def _pick(options: Sequence, key: str):
    return options[int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % len(options)]


def caption_of(pair: Pair) -> str:
    text = f"A drawing of {pair.text}"
    return text + (f" ({pair.topic})." if pair.topic else ".")


def _chat(image: Path | None, *turns: tuple[str, str]) -> Conversation:
    return Conversation(image, tuple({"role": role, "content": content} for role, content in turns))


def caption_conversations(pairs: Sequence[Pair]) -> list[Conversation]:
    return [_chat(p.image, ("user", _pick(CAPTION_INSTRUCTS, p.image.name)), ("assistant", caption_of(p))) for p in pairs]


def captioner_conversations(pairs: Sequence[Pair]) -> list[Conversation]:
    return [_chat(p.image, ("user", CAPTIONER_PROMPT), ("assistant", caption_of(p))) for p in pairs]


def sft_conversations(pairs: Sequence[Pair], wordnet: WordNet | None) -> list[Conversation]:
    out = []
    for p in pairs:
        card = wordnet.noun(p.text) if wordnet else None
        answers = [("Describe the image.", caption_of(p))]
        if card:
            article = "an" if card.title[0] in "aeiou" else "a"
            answers.append(("What is it?", f"It is {article} {card.title}: {card.gloss}."))
            if card.hypernyms:
                answers.append(("What kind of thing is this?", f"A {card.title}, a kind of {card.hypernyms[0]}."))
            answers.append(("What is it used for, or what does it do?", f"{card.title.capitalize()}: {card.gloss}."))
        question, answer = _pick(answers, p.image.name)
        out.append(_chat(p.image, ("user", question), ("assistant", answer)))
    return out


def rephraser_conversations(pairs: Sequence[Pair], tags: dict[Path, list], questions: Sequence[tuple[str, str]]) -> list[Conversation]:
    out = []
    for p in pairs:
        question, query = _pick(questions, p.image.name + "rephrase")
        facts = VisualFacts(tuple(tags[p.image][:1]), "", None, ())
        messages = [(m.role, m.text) for m in rephrase_prompt(question, facts, None)]
        out.append(_chat(p.image, *messages, ("assistant", query.format(s=p.text))))
    return out


def _top_tags(tagger, pairs: Sequence[Pair], progress=None, batch: int = 16) -> dict[Path, list]:
    """What the pipeline's visual search would tell the rephraser about each image."""
    task = progress.add_task("tagging images", total=len(pairs)) if progress else None
    tags = {}
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        for pair, found in zip(chunk, tagger.tag([load_image(p.image) for p in chunk], top_k=1)):
            tags[pair.image] = found
        if progress:
            progress.advance(task, len(chunk))
    return tags


def _kept(pairs: Sequence[Pair], max_per_group: int, progress=None) -> list[Pair]:
    kept: dict[str, int] = {}
    out = []
    task = progress.add_task("checking images", total=len(pairs)) if progress else None
    for pair in sorted(pairs, key=lambda p: str(p.image)):
        if progress:
            progress.advance(task)
        if kept.get(pair.group, 0) < max_per_group and fits(pair.image):
            kept[pair.group] = kept.get(pair.group, 0) + 1
            out.append(pair)
    return out


def build_datasets(
    source: Path, out: Path, tagger, wordnet: WordNet | None, max_per_group: int = 3, sets: Sequence[str] = SETS, progress=None
) -> dict[str, Path]:
    """`out/<set>-{train,test}.jsonl` for each of `sets`. At most `max_per_group` images of one
    drawing (1,378 stars would otherwise be a sixth of the data)."""
    splits = split_pairs(load_pairs(source))
    written = {}
    for split in ("train", "test"):
        pairs = _kept(splits[split], max_per_group, progress)
        tags = _top_tags(tagger, pairs, progress) if "rephraser" in sets else {}
        questions = REPHRASE_QUESTIONS if split == "train" else HELD_OUT_QUESTIONS
        for name in sets:
            conversations = {
                "captions": caption_conversations, "captioner": captioner_conversations,
                "sft": lambda ps: sft_conversations(ps, wordnet),
                "rephraser": lambda ps: rephraser_conversations(ps, tags, questions),  # noqa: B023 (called at once)
            }[name](pairs)  # fmt: skip
            written[f"{name}-{split}"] = write_conversations(conversations, out / f"{name}-{split}.jsonl")
    return written


def build_captions(source: Path, out: Path, max_per_group: int = 3) -> dict[str, Path]:
    """Only the pretraining captions (no tagger needed)."""
    written = build_datasets(source, out, None, None, max_per_group, sets=("captions",))
    return {split: written[f"captions-{split}"] for split in ("train", "test")}
