"""Reading the image: signboards showing a value (an opening hour, a price, a gate...), asked it.

The bucket's questions are all answered by documents; a user also asks "when does this shop open?"
beside a sign reading OPEN 9AM, with no document about it. `sign_reading_score` (`vlmsearch eval
signs`) draws signs and asks each its own value (the answer must state it) or another kind's (the
answer must decline), in words the generator's sign-reading chats (`finetune/sign_reading.py`) never
use.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from vlmsearch.eval.bucket.canvas import sign
from vlmsearch.eval.stats import bootstrap_ci
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
    SignKind(
        _hour,
        ("OPEN {v}", "OPENS AT {v}", "OPEN FROM {v}"),
        ("What time does this place open?", "When do they open?", "At what time can I go in here?"),
        ("It opens at {v}, as the text in the image says.", "At {v}: the sign says so."),
        ("When does this shop open?", "What are the opening hours?"),
    ),
    SignKind(
        _hour,
        ("CLOSES {v}", "CLOSED AFTER {v}"),
        ("What time does it close?", "When does this place close?"),
        ("It closes at {v}, as the text in the image says.", "At {v}: the sign says so."),
        ("Until when is it open?",),
    ),
    SignKind(
        lambda rng: f"${rng.randint(1, 40)}.{rng.choice(('00', '50', '99', '25'))}",
        ("PRICE {v}", "ONLY {v}", "{v} EACH"),
        ("How much does this cost?", "What is the price here?", "How much do I pay for one?"),
        ("It costs {v}, as the text in the image says.", "{v}: that is the price on the sign."),
        ("What does one cost?", "How much is it?"),
    ),
    SignKind(
        lambda rng: str(rng.choice((20, 30, 40, 50, 60, 70, 80, 90, 100, 110))),
        ("SPEED LIMIT {v}", "MAX SPEED {v}"),
        ("What is the speed limit here?", "How fast may I drive on this road?"),
        ("The speed limit is {v}, as the sign in the image says.", "{v}: the sign gives that limit."),
        ("How fast can I go here?",),
    ),
    SignKind(
        lambda rng: f"{rng.choice('ABCDE')}{rng.randint(1, 40)}",
        ("GATE {v}", "BOARDING GATE {v}"),
        ("Which gate is this?", "What gate number is shown?"),
        ("It is gate {v}, as the text in the image says.", "Gate {v}: the sign says so."),
        ("What gate does the sign say?",),
    ),
    SignKind(
        lambda rng: str(rng.randint(1, 12)),
        ("PLATFORM {v}", "TRACK {v}"),
        ("Which platform is this?", "What platform does the sign show?"),
        ("It is platform {v}, as the sign in the image says.", "Platform {v}: the sign says so."),
        ("What platform is it?",),
    ),
    SignKind(
        lambda rng: str(rng.randint(100, 450)),
        ("ROOM {v}", "OFFICE {v}"),
        ("What room is this?", "Which room number is on the sign?"),
        ("It is room {v}, as the sign in the image says.", "Room {v}: the sign says so."),
        ("What is the room number?",),
    ),
    SignKind(
        lambda rng: f"{rng.randint(1, 9)} {rng.choice(('KM', 'MILES'))}",
        ("EXIT {v}", "CITY CENTRE {v}"),
        ("How far is it?", "What distance does the sign give?"),
        ("{v}, as the sign in the image says.", "The sign gives {v}."),
        ("How far away is it?",),
    ),
)


def squeezed(text: str) -> str:
    """OCR drops and adds spaces ("OPEN9AM"): values are compared without them."""
    return "".join(text.split()).upper()


def sign_case(rng: random.Random, questions: Callable[[SignKind], tuple[str, ...]], other_share: float = 0.5):
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
        shown, value, text, asked, question = sign_case(rng, lambda kind: kind.held_out)
        answer = engine.ask(question, sign(text, rng), pipeline)
        if progress:
            progress.advance(task)
        if squeezed(value) not in squeezed(answer.trace[0].output.get("ocr_text", "")):
            unread += 1
        elif asked is shown:
            read_right.append(float(squeezed(value) in squeezed(answer.answer)))
        else:
            declined_right.append(float(says_not_found(answer.answer)))
    both = read_right + declined_right
    return {
        "n": count, "ocr_missed": unread, "accuracy": round(sum(both) / max(len(both), 1), 4), "ci95": bootstrap_ci(both),
        "asked_its_value": len(read_right), "read_right": int(sum(read_right)),
        "asked_another": len(declined_right), "declined_right": int(sum(declined_right)),
    }  # fmt: skip
