"""Sign-reading chats for the generator's training: the answer is the text in the image.

The bucket's questions are all answered by a document, so a LoRA trained on them alone learned that
no passage means no answer: asked "when does this place open?" beside a sign reading OPEN 9AM, with
no passage found, it declined. Here a signboard shows a value (an opening hour, a price, a gate...)
and the question asks it: the reply states the value, which the prompt shows under "Text in the
image". A share of the questions (a fifth by default) ask what another kind of sign would show and
are declined, so the model reads the sign rather than copying any number it sees. (Half, counted
twice, taught it to decline bucket questions it answered before: dev false abstentions 0 -> 7 of
55.) A value OCR did not read is left out: the prompt cannot answer it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from vlmsearch.eval.bucket.canvas import sign
from vlmsearch.eval.stats import bootstrap_ci
from vlmsearch.finetune.rag_data import ABSTAIN, RagExample, chat_example
from vlmsearch.pipeline.generate import says_not_found


def _hour(rng: random.Random) -> str:
    return f"{rng.randint(6, 11)}AM" if rng.random() < 0.6 else f"{rng.randint(1, 10)}PM"


@dataclass(frozen=True)
class SignKind:
    """What a sign shows: its texts around a value, ways to ask the value, and the answer's forms."""

    value: Callable[[random.Random], str]
    texts: tuple[str, ...]  # {v}: the value
    questions: tuple[str, ...]
    replies: tuple[str, ...]  # {v}: the value
    held_out: tuple[str, ...]  # other ways to ask, never trained on: `eval signs` asks these


KINDS = (
    SignKind(_hour, ("OPEN {v}", "OPENS AT {v}", "OPEN FROM {v}"),
             ("What time does this place open?", "When do they open?", "At what time can I go in here?"),
             ("It opens at {v}, as the text in the image says.", "At {v}: the sign says so."),
             ("When does this shop open?", "What are the opening hours?")),
    SignKind(_hour, ("CLOSES {v}", "CLOSED AFTER {v}"),
             ("What time does it close?", "When does this place close?"),
             ("It closes at {v}, as the text in the image says.", "At {v}: the sign says so."),
             ("Until when is it open?",)),
    SignKind(lambda rng: f"${rng.randint(1, 40)}.{rng.choice(('00', '50', '99', '25'))}", ("PRICE {v}", "ONLY {v}", "{v} EACH"),
             ("How much does this cost?", "What is the price here?", "How much do I pay for one?"),
             ("It costs {v}, as the text in the image says.", "{v}: that is the price on the sign."),
             ("What does one cost?", "How much is it?")),
    SignKind(lambda rng: str(rng.choice((20, 30, 40, 50, 60, 70, 80, 90, 100, 110))), ("SPEED LIMIT {v}", "MAX SPEED {v}"),
             ("What is the speed limit here?", "How fast may I drive on this road?"),
             ("The speed limit is {v}, as the sign in the image says.", "{v}: the sign gives that limit."),
             ("How fast can I go here?",)),
    SignKind(lambda rng: f"{rng.choice('ABCDE')}{rng.randint(1, 40)}", ("GATE {v}", "BOARDING GATE {v}"),
             ("Which gate is this?", "What gate number is shown?"),
             ("It is gate {v}, as the text in the image says.", "Gate {v}: the sign says so."),
             ("What gate does the sign say?",)),
    SignKind(lambda rng: str(rng.randint(1, 12)), ("PLATFORM {v}", "TRACK {v}"),
             ("Which platform is this?", "What platform does the sign show?"),
             ("It is platform {v}, as the sign in the image says.", "Platform {v}: the sign says so."),
             ("What platform is it?",)),
    SignKind(lambda rng: str(rng.randint(100, 450)), ("ROOM {v}", "OFFICE {v}"),
             ("What room is this?", "Which room number is on the sign?"),
             ("It is room {v}, as the sign in the image says.", "Room {v}: the sign says so."),
             ("What is the room number?",)),
    SignKind(lambda rng: f"{rng.randint(1, 9)} {rng.choice(('KM', 'MILES'))}", ("EXIT {v}", "CITY CENTRE {v}"),
             ("How far is it?", "What distance does the sign give?"),
             ("{v}, as the sign in the image says.", "The sign gives {v}."),
             ("How far away is it?",)),
)


def _squeezed(text: str) -> str:
    return "".join(text.split()).upper()


def sign_examples(pipeline, count: int, seed: int = 0, other_share: float = 0.2, progress=None) -> list[RagExample]:
    """`count` signs, each asked its own value (answered) or, for `other_share` of them, another
    kind's (declined); the generator's real prompt from the pipeline's stages before the answer."""
    rng = random.Random(seed)
    generator = pipeline.generator()
    examples = []
    task = progress.add_task("sign-reading prompts", total=count) if progress else None
    for i in range(count):
        if progress:
            progress.advance(task)
        shown, value, text, asked, question = _case(rng, lambda kind: kind.questions, other_share)
        gathered = pipeline.gather(question, sign(text, rng))
        messages = gathered.messages(generator, question)
        read = gathered.facts.ocr_text if gathered.facts else ""
        if messages is None or _squeezed(value) not in _squeezed(read):
            continue  # OCR missed the value: the prompt cannot answer it
        if asked is shown:
            reply, kind = rng.choice(shown.replies).format(v=value), "sign read"
        elif any(c.isdigit() for passage in gathered.texts for c in passage):
            continue  # a passage gives a number: declining might be wrong
        else:
            reply, kind = ABSTAIN, "sign not asked"
        examples.append(chat_example(f"sign-{seed}-{i}", messages, reply, kind))
    return examples


def _case(rng: random.Random, questions: Callable[[SignKind], tuple[str, ...]], other_share: float = 0.5):
    """A sign, the kind it shows, its value and text, and a question: its own kind's or another's."""
    shown = rng.choice(KINDS)
    value = shown.value(rng)
    text = rng.choice(shown.texts).format(v=value)
    asked = rng.choice([k for k in KINDS if k is not shown]) if rng.random() < other_share else shown
    return shown, value, text, asked, rng.choice(questions(asked))


def sign_reading_score(engine, pipeline: str, count: int, seed: int = 1, progress=None) -> dict:
    """Whole answers to signs asked in words never trained on: right when the sign's value is in the
    answer (asked its own kind) or the answer declines (asked another kind's); signs whose value OCR
    did not read are counted apart."""
    rng = random.Random(seed)
    read_right, declined_right, unread = [], [], 0
    task = progress.add_task(f"signs ({pipeline})", total=count) if progress else None
    for _ in range(count):
        shown, value, text, asked, question = _case(rng, lambda kind: kind.held_out)
        answer = engine.ask(question, sign(text, rng), pipeline)
        if progress:
            progress.advance(task)
        if _squeezed(value) not in _squeezed(answer.trace[0].output.get("ocr_text", "")):
            unread += 1
        elif asked is shown:
            read_right.append(float(_squeezed(value) in _squeezed(answer.answer)))
        else:
            declined_right.append(float(says_not_found(answer.answer)))
    both = read_right + declined_right
    return {
        "n": count, "ocr_missed": unread, "accuracy": round(sum(both) / max(len(both), 1), 4), "ci95": bootstrap_ci(both),
        "asked_its_value": len(read_right), "read_right": int(sum(read_right)),
        "asked_another": len(declined_right), "declined_right": int(sum(declined_right)),
    }  # fmt: skip
