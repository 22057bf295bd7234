"""Sign-reading chats for the generator's training: the answer is the text in the image.

The bucket's questions are all answered by a document, so a LoRA trained on them alone learned that
no passage means no answer: asked "when does this place open?" beside a sign reading OPEN 9AM, with
no passage found, it declined. Here a signboard shows a value (an opening hour, a price, a gate...)
and the question asks it: the reply states the value, which the prompt shows under "Text in the
image". A share of the questions (a tenth by default) ask what another kind of sign would show and
are declined, so the model reads the sign rather than copying any number it sees. The share
matters: half (counted twice) taught it to decline bucket questions it answered before (dev false
abstentions 0 -> 7 of 55), and a fifth (counted once) taught it no reading; a tenth, counted twice,
read signs and kept dev (docs: the generator's fine-tune). A value OCR did not read is left out:
the prompt cannot answer it.
"""

from __future__ import annotations

import random

from vlmsearch.eval.bucket.canvas import sign
from vlmsearch.eval.signs import sign_case, squeezed
from vlmsearch.finetune.rag_data import ABSTAIN, RagExample, chat_example


def sign_examples(pipeline, count: int, seed: int = 0, other_share: float = 0.1, progress=None) -> list[RagExample]:
    """`count` signs, each asked its own value (answered) or, for `other_share` of them, another
    kind's (declined); the generator's real prompt from the pipeline's stages before the answer."""
    rng = random.Random(seed)
    generator = pipeline.generator()
    examples = []
    task = progress.add_task("sign-reading prompts", total=count) if progress else None
    for i in range(count):
        example = _example(pipeline, generator, rng, other_share, f"sign-{seed}-{i}")
        if example:
            examples.append(example)
        if progress:
            progress.advance(task)
    return examples


def _example(pipeline, generator, rng: random.Random, other_share: float, example_id: str) -> RagExample | None:
    shown, value, text, asked, question = sign_case(rng, lambda kind: kind.questions, other_share)
    gathered = pipeline.gather(question, sign(text, rng))
    messages = gathered.messages(generator, question)
    read = gathered.facts.ocr_text if gathered.facts else ""
    if messages is None or squeezed(value) not in squeezed(read):
        return None  # OCR missed the value: the prompt cannot answer it
    if asked is shown:
        return chat_example(example_id, messages, rng.choice(shown.replies).format(v=value), "sign read")
    if any(c.isdigit() for passage in gathered.texts for c in passage):
        return None  # a passage gives a number: declining might be wrong
    return chat_example(example_id, messages, ABSTAIN, "sign not asked")
