"""Preference pairs for the DPO stage (`vlmsearch train vlm-prefs`): rephrasings ranked by what they
retrieve.

For each answerable item of a bucket (build one from the train split: `eval make-bucket --split
train`), the VLM answers the vlm pipeline's own rephraser chat once greedily and `samples` times
sampled; each reply's query alone retrieves from the bucket's documents (eval/rephraser.py). The
reply that brings the item's document highest is preferred over one that does not bring it at all,
when the first has it in the top 3: the rephraser learns which of its own queries find the answer.
Items where every reply does as well (or as badly) teach nothing and give no pair.

One JSONL line a pair: {"image": path, "messages": [system, user], "chosen": text, "rejected": text}.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vlmsearch.errors import BadInputError
from vlmsearch.eval.rephraser import Probed
from vlmsearch.vlm.data import image_at, image_entry, jsonl_lines

TOP = 3  # a chosen reply has the item's document among the first TOP passages


@dataclass(frozen=True)
class Preference:
    image: Path | None
    messages: tuple[dict[str, str], ...]  # the prompt; chosen and rejected are replies to it
    chosen: str
    rejected: str

    def chat(self, reply: str) -> tuple[dict[str, str], ...]:
        return (*self.messages, {"role": "assistant", "content": reply})


def preference_of(probed: Probed) -> Preference | None:
    """The best reply against the worst, when the best is in the top 3 and the worst retrieves nothing."""
    ranked = sorted(probed.replies, key=lambda r: r.alone or 99)
    best, worst = ranked[0], ranked[-1]
    if best.alone is None or best.alone > TOP or worst.alone is not None or best.query == worst.query:
        return None
    messages = tuple({"role": m.role, "content": m.text} for m in probed.prompt)
    return Preference(probed.image, messages, best.reply, worst.reply)


def write_preferences(preferences: Sequence[Preference], path: Path) -> Path:
    """JSONL, image paths relative to the file where they can be (as training conversations are)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"image": image_entry(p.image, path.parent), "messages": list(p.messages), "chosen": p.chosen, "rejected": p.rejected})
             for p in preferences]  # fmt: skip
    path.write_text("".join(line + "\n" for line in lines))
    return path


def load_preferences(path: Path) -> list[Preference]:
    out = []
    for where, line in jsonl_lines(path):
        try:
            item = json.loads(line)
            messages = tuple({"role": m["role"], "content": m["content"]} for m in item["messages"])
            chosen, rejected = str(item["chosen"]), str(item["rejected"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise BadInputError(f'{where}: expected {{"image", "messages", "chosen", "rejected"}} ({exc})') from None
        if not messages or messages[-1]["role"] != "user":
            raise BadInputError(f"{where}: the messages are the prompt: they end with the user's turn")
        out.append(Preference(image_at(path.parent, item.get("image"), where), messages, chosen, rejected))
    if not out:
        raise BadInputError(f"{path}: no preference pairs")
    return out
