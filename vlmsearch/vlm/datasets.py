"""Reproducible VLM training sets built from offline data (`vlmsearch train vlm-data`).

captions: every readable image-text pair of a folder (openclipart: cleaned titles and topics, see
joint/pairs.py) becomes a captioning conversation, with the instruction drawn from a fixed list by
a hash of the file (so the same data comes out on every machine). The split is the joint model's:
by group, so a held-out drawing's variants are never trained on.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from vlmsearch.joint.pairs import Pair, load_pairs, split_pairs
from vlmsearch.vlm.data import Conversation, write_conversations

CAPTION_INSTRUCTS = (
    "Describe the image.",
    "What is in this picture?",
    "Write a short caption for this image.",
    "What does this image show?",
    "Give a one-line description of the picture.",
)


def _pick(options: tuple[str, ...], key: str) -> str:
    return options[int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % len(options)]


def _readable(path: Path, max_pixels: int = 64_000_000) -> bool:
    """Header check only (cheap): posters over the ingest limit would be refused at training time."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.width * image.height <= max_pixels
    except (OSError, Image.DecompressionBombError):
        return False


def caption_of(pair: Pair) -> str:
    text = f"A drawing of {pair.text}"
    return text + (f" ({pair.topic})." if pair.topic else ".")


def caption_conversations(pairs: list[Pair]) -> list[Conversation]:
    return [
        Conversation(pair.image, (
            {"role": "user", "content": _pick(CAPTION_INSTRUCTS, str(pair.image.name))},
            {"role": "assistant", "content": caption_of(pair)},
        ))
        for pair in pairs
    ]  # fmt: skip


def build_captions(source: Path, out: Path, max_per_group: int = 3) -> dict[str, Path]:
    """`out/captions-{train,test}.jsonl`; at most `max_per_group` images of one drawing (1,378 stars
    would otherwise be a sixth of the data)."""
    splits = split_pairs(load_pairs(source))
    written = {}
    for split in ("train", "test"):
        kept: dict[str, int] = {}
        pairs = []
        for pair in sorted(splits[split], key=lambda p: str(p.image)):
            if kept.get(pair.group, 0) < max_per_group and _readable(pair.image):
                kept[pair.group] = kept.get(pair.group, 0) + 1
                pairs.append(pair)
        written[split] = write_conversations(caption_conversations(pairs), out / f"captions-{split}.jsonl")
    return written
