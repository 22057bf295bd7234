"""Judges for side-by-side comparison: one small protocol, three kinds.

- `reference`: deterministic; the answer that is right with the right source (eval/scoring.py) wins,
  both right or both wrong tie. It judges `overall` only: it knows facts, not style.
- a chat model (a profile's `chat` role, or any OpenAI-compatible endpoint): asked per pair for a
  verdict on each of the article's criteria, given the question and the bucket's reference answer
  (a reference-guided judge: small judges are far better at checking than at knowing).
- `human`: people on the judging page (eval/judge_app); their verdicts are read, not asked for.

A judge sees answers as "A" (shown first) and "B"; the SBS runner asks both orders and maps back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol

from vlmsearch.errors import ConfigError
from vlmsearch.eval.answers import AnswerRecord
from vlmsearch.eval.bucket.items import BucketItem
from vlmsearch.eval.scoring import score
from vlmsearch.models.protocols import GenerationOptions, Message, complete

CRITERIA = ("grammar", "readability", "comprehensiveness", "relevance", "errors", "hallucinations", "overall")
Shown = Literal["first", "second", "tie"]


@dataclass(frozen=True)
class Ruling:
    verdicts: dict[str, Shown]  # criterion -> which shown answer is better
    raw: str = ""  # the judge's own words, kept for reading
    unparsed: tuple[str, ...] = ()  # criteria the judge's reply gave no readable verdict for (counted as ties)


class Judge(Protocol):
    name: str
    criteria: tuple[str, ...]

    def rule(self, item: BucketItem, first: AnswerRecord, second: AnswerRecord) -> Ruling: ...


class ReferenceJudge:
    name = "reference"
    criteria = ("overall",)

    def rule(self, item: BucketItem, first: AnswerRecord, second: AnswerRecord) -> Ruling:
        one = score(item, first.answer, first.sources).right
        two = score(item, second.answer, second.sources).right
        return Ruling({"overall": "tie" if one == two else "first" if one else "second"})


SYSTEM = """You compare two answers to a user's question about an image and say which is better on each criterion. The reference answer comes from the documents the answers should use. Judge the text only: neither the order of the answers nor their length makes one better.

Criteria:
grammar: fewer grammar and spelling mistakes
readability: clearer and easier to read
comprehensiveness: answers the whole question
relevance: stays on what was asked
errors: fewer logical or factual errors than the other, compared with the reference
hallucinations: invents less that the reference does not support
overall: the better answer for the user

Reply with seven lines in this form, choosing A, B or tie on each line:
grammar: <A, B or tie>
readability: <A, B or tie>
comprehensiveness: <A, B or tie>
relevance: <A, B or tie>
errors: <A, B or tie>
hallucinations: <A, B or tie>
overall: <A, B or tie>"""
NO_REFERENCE = "The documents do not hold the answer; a good answer says so instead of guessing."
_LINE = {c: re.compile(rf"{c}\W{{0,6}}(?:answer\s+)?(a|b|tie|neither|both|equal)\b", re.IGNORECASE) for c in CRITERIA}


class ChatJudge:
    criteria = CRITERIA

    def __init__(self, model, name: str, max_tokens: int = 80):
        self.model, self.name, self.max_tokens = model, name, max_tokens

    def rule(self, item: BucketItem, first: AnswerRecord, second: AnswerRecord) -> Ruling:
        reference = item.reference if item.answerable and item.reference else NO_REFERENCE
        user = (
            f"Question: {item.question}\nReference answer: {reference}\n\n"
            f"Answer A: {first.answer or '(no answer)'}\n\nAnswer B: {second.answer or '(no answer)'}"
        )
        reply = complete(self.model, [Message("system", SYSTEM), Message("user", user)], GenerationOptions(max_tokens=self.max_tokens))
        return parse_ruling(reply)


def parse_ruling(reply: str) -> Ruling:
    verdicts: dict[str, Shown] = {}
    unparsed = []
    for criterion, pattern in _LINE.items():
        found = pattern.search(reply)
        word = found.group(1).lower() if found else None
        if word is None:
            unparsed.append(criterion)
        verdicts[criterion] = "first" if word == "a" else "second" if word == "b" else "tie"
    return Ruling(verdicts, reply.strip(), tuple(unparsed))


def build_judge(name: str, cache_dir) -> Judge:
    """`reference`; a profile name or .toml whose chat role judges (`offline`, `hf-cpu`); or
    `openai:<base url>/<model>` for any OpenAI-compatible endpoint (`openai:http://localhost:8000/v1/qwen`)."""
    from vlmsearch.config import ModelSpec, Profile
    from vlmsearch.models.registry import Models, build_model

    if name == "reference":
        return ReferenceJudge()
    if name == "human":
        raise ConfigError("human verdicts come from the judging page (`vlmsearch eval judge`), not from a model")
    if name.startswith("openai:"):
        base_url, _, model = name.removeprefix("openai:").rstrip("/").rpartition("/")
        if not base_url or not model:
            raise ConfigError(f"--judge {name!r}: write openai:<base url>/<model>, e.g. openai:http://localhost:8000/v1/qwen2.5")
        chat = build_model("chat", ModelSpec(backend="openai", model=model, options={"base_url": base_url}), cache_dir)
        return ChatJudge(chat, f"openai:{model}")
    profile = Profile.load(name)
    return ChatJudge(Models(profile, cache_dir).chat, f"{profile.name}:{profile.spec('chat').model}")
