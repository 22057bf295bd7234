"""A pipeline runs its declared stages in order, timing each into the trace, and streams the answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Generator as Steps
from dataclasses import dataclass
from typing import Any

from PIL import Image

from vlmsearch.config import STAGES, PipelineSpec, Settings
from vlmsearch.errors import ConfigError
from vlmsearch.models.protocols import Message
from vlmsearch.pipeline.caption import Captioner
from vlmsearch.pipeline.conversation import Conversation, SeenImages, image_digest
from vlmsearch.pipeline.generate import (
    NOT_SUPPORTED,
    Attributor,
    Generator,
    Marked,
    as_written,
    cited,
    looping,
    says_not_found,
)
from vlmsearch.pipeline.rephrase import (
    Rephraser,
    points_at_image,
    retrieval_queries,
    shown_subject,
)
from vlmsearch.pipeline.retrieve import Retriever
from vlmsearch.pipeline.types import (
    Answer,
    AnswerEvent,
    DraftEvent,
    StageEvent,
    TokenEvent,
    TraceStep,
    Turn,
    VisualFacts,
)
from vlmsearch.pipeline.visual_search import VisualSearch
from vlmsearch.records import PassageHit

Event = StageEvent | DraftEvent | TokenEvent | AnswerEvent


@dataclass(frozen=True)
class Gathered:
    """What the stages before the answer found: the generator's prompt and what checks its answer."""

    facts: VisualFacts | None
    passages: Sequence[PassageHit]
    caption: str | None
    retrieval: bool  # False for chit-chat
    texts: Sequence[str]  # the passages focused on the question, as the prompt shows them
    subject: str  # what the question's pointing words stand for, if known
    queries: Sequence[str]  # every way retrieval asked
    attributor: Attributor
    history: str = ""  # the earlier questions this one continues, as the prompt shows them

    def messages(self, generator: Generator, question: str) -> list[Message] | None:
        """The chat the generator answers from what was found (None: nothing to ground an answer on)."""
        return generator.messages(
            question,
            facts=self.facts,
            passages=self.passages,
            caption=self.caption,
            retrieval=self.retrieval,
            texts=self.texts,
            subject=self.subject,
            history=self.history,
        )


def _needs_vlm(name: str, role: str, profile: str) -> ConfigError:
    return ConfigError(
        f"the {name} pipeline needs a VLM for its {role} role, and profile {profile!r} has none. Use "
        "--profile hf-cpu (a Hugging Face VLM), a profile whose vlm role is an OpenAI-compatible VLM server "
        '(backend = "openai"), the offline profile (our VLM, `vlm-clipart-mlp`), or --pipeline llm'
    )


class Pipeline:
    def __init__(self, name: str, spec: PipelineSpec, settings: Settings, models, store, wordnet, seen: SeenImages | None = None):
        unknown = set(spec.stages) - set(STAGES)
        if unknown:
            raise ConfigError(f"pipeline {name!r} has unknown stages {sorted(unknown)}; stages: {', '.join(STAGES)}")
        self.name, self.spec = name, spec
        for role, stage in ((spec.rephraser_role, "rephrase"), (spec.captioner_role, "caption")):
            if stage in spec.stages and not models.has(role):
                raise _needs_vlm(name, role, settings.profile.name)
        opts = settings.answer
        self.models = models
        self.visual_search = VisualSearch(models, store, wordnet, opts.similar_images, opts.similar_min_score, opts.topic_matches)
        self.wordnet = wordnet
        self.retriever = Retriever(store, models.text_embedder, opts.passages, opts.min_passage_similarity, opts.query_fusion_k)
        self.opts = opts
        self.seen = seen if seen is not None else SeenImages()

    def stream(self, question: str, image: Image.Image | None = None, history: Sequence[Turn] = ()) -> Iterator[Event]:
        """Stage events as each stage finishes, then the answer's tokens, then the whole answer.
        `history`: the conversation's earlier turns, oldest first; a follow-up is answered as the
        standalone question they make of it, about the conversation's image."""
        trace: list[TraceStep] = []
        conversation = Conversation.resolve(question, image, history, self.opts.conversation_turns)
        asked = conversation.standalone(question, self.wordnet)
        if history:
            kept = "sent" if image is not None else "kept" if conversation.image is not None else "none"
            resolved = {"question": asked, "subject": conversation.subject, "image": kept}
            summary = f"{len(history)} earlier turns, {len(conversation.turns)} continued"
            trace.append(TraceStep("conversation", "-", 0.0, summary, resolved))
            yield StageEvent(trace[-1])
        gathered = yield from self._gather(asked, conversation.image, trace, conversation)
        yield from self._write(asked, gathered, trace)

    def gather(self, question: str, image: Image.Image | None = None) -> Gathered:
        """Every stage before the answer, run through (the generator's training data is built on it)."""
        steps = self._gather(question, image, [], Conversation(image, (), ""))
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value

    def generator(self) -> Generator:
        return Generator(self.models.get(self.spec.generator_role), self.opts.max_answer_tokens, self.wordnet)

    def _gather(self, question: str, image: Image.Image | None, trace: list[TraceStep], conversation: Conversation) -> Steps[StageEvent, None, Gathered]:
        """Every stage before the answer is written; each finished stage is a StageEvent."""
        stages = self.spec.stages
        digest = image_digest(image) if image is not None else ""

        def step(stage: str, model: str, summary: str, run: Callable[[], Any], shown: Callable[[Any], Any], seen_as: tuple[str, ...] = ()):
            start = time.perf_counter()
            result, cached = self.seen.get((*seen_as, digest), run) if seen_as else (run(), False)
            ms = round(1000 * (time.perf_counter() - start), 1)
            trace.append(TraceStep(stage, model, ms, summary + (" (seen before)" if cached else ""), shown(result), cached))
            return result

        facts: VisualFacts | None = None
        if image is not None and "visual_search" in stages:
            facts = step(
                "visual_search",
                self.visual_search.model_name,
                f"image {image.width}x{image.height}",
                lambda: self.visual_search(image),
                lambda f: f.to_json(),
                ("visual_search",),
            )
            yield StageEvent(trace[-1])

        query = None
        if "rephrase" in stages:
            rephraser = Rephraser(
                self.models.get(self.spec.rephraser_role),
                sees_image=self.spec.rephraser_role == "vlm",
                max_tokens=self.opts.max_rephrase_tokens,
                wordnet=self.wordnet,
            )
            summary = f"question{' + image' if rephraser.sees_image and image else ''}{' + visual facts' if facts else ''}"
            summary += f" + {len(conversation.turns)} earlier turns" if conversation.turns else ""
            history = conversation.history_text()
            query = step(
                "rephrase",
                rephraser.model_name,
                summary,
                lambda: rephraser(question, facts, image, history),
                lambda q: q.text if q.retrieve else "(chit-chat: no retrieval)",
            )
            yield StageEvent(trace[-1])
        retrieval = query.retrieve if query else True
        query_text = query.text if query else question

        passages, queries = [], [(question, 1.0)]
        if retrieval and "retrieve" in stages:
            queries = retrieval_queries(question, query) if query else [(question, 1.0)]
            passages = step(
                "retrieve",
                self.retriever.model_name,
                " | ".join(f"{q} (x{w:g})" for q, w in queries),
                lambda: self.retriever(queries),
                lambda ps: [{"source": p.source, "position": p.position, "score": round(p.score, 4)} for p in ps],
            )
            yield StageEvent(trace[-1])

        caption = None
        if image is not None and "caption" in stages:
            captioner = Captioner(self.models.get(self.spec.captioner_role), self.opts.max_caption_tokens)
            caption = step("caption", captioner.model_name, "image", lambda: captioner(image), lambda c: c, ("caption", captioner.model_name))
            yield StageEvent(trace[-1])

        image_facts = [facts.as_text(matches=False)] if facts else []
        attributor = Attributor(passages, self.models.text_embedder, image_facts + ([caption] if caption else []))
        focus = [q for q in (query_text, question) if q]
        texts = attributor.focused(self.models.text_embedder.embed_texts(focus), self.opts.max_source_chars)
        subject = shown_subject(query, passages) if query and points_at_image(question) else ""
        return Gathered(facts, passages, caption, retrieval, texts, subject, [q for q, _ in queries], attributor, conversation.earlier_questions())

    def _write(self, question: str, gathered: Gathered, trace: list[TraceStep]) -> Iterator[Event]:
        """The answer, a checked sentence at a time, then the whole answer with its trace."""
        generator, attributor, passages, retrieval = self.generator(), gathered.attributor, gathered.passages, gathered.retrieval
        start, first_token_ms, shown = time.perf_counter(), None, []

        def timed(pieces):
            nonlocal first_token_ms
            for piece in pieces:
                first_token_ms = first_token_ms or round(1000 * (time.perf_counter() - start), 1)
                yield piece

        # Streamed a sentence at a time, each with its checked citation: what is shown is the answer. A
        # sentence that neither a passage nor the image supports is held back (a small generator
        # invents weights and dates). A decline that opens the answer waits: when nothing else comes,
        # a passage that answers plainly is quoted instead, and failing that the answer says so.
        # A supported sentence that restates the wrong sentence of its passage gives way to the one that
        # answers (Attributor.answering); the trace keeps both.
        held, declined, looped, restated = [], [], False, []
        for done, unfinished in as_written(timed(generator.stream(gathered.messages(generator, question)))):
            for sentence in done:
                marked = attributor.mark(sentence)
                answering = attributor.answering(marked, gathered.queries, question) if retrieval else None
                if answering:
                    restated.append([marked.text, answering])
                    if answering in shown:  # two sentences gave way to one: it is said once
                        continue
                    marked = Marked(answering, True, marked.support)
                if marked.text and marked.text in shown:  # said again word for word: the model loops
                    looped = True
                    break
                if retrieval and says_not_found(marked.text) and not shown:
                    declined.append(marked.text)
                    continue
                if retrieval and not marked.supported and not says_not_found(marked.text):
                    held.append(marked.text)
                    continue
                for text in (*declined, marked.text):
                    shown.append(text)
                    yield TokenEvent(text + " ")
                declined = []
            if looped or looping(unfinished):  # stopped, not waited out: nothing sensible comes after a loop
                held.append(unfinished)
                break
            yield DraftEvent(unfinished)  # the first words on screen need not wait for a whole sentence
        quoted = None
        if retrieval and not shown:
            asked = gathered.queries  # every way retrieval asked, the resolved question among them
            quoted = attributor.quote(asked, self.models.text_embedder.embed_texts(asked), self.opts.min_quote_score) if passages else None
            shown = [quoted] if quoted else declined or [NOT_SUPPORTED]
            yield TokenEvent(" ".join(shown))
        text = " ".join(s for s in shown if s)
        trace.append(
            TraceStep(
                "generate",
                generator.model_name,
                round(1000 * (time.perf_counter() - start), 1),
                f"question + {len(passages)} passages{' + caption' if gathered.caption else ''}",
                {
                    "chars": len(text),
                    "first_token_ms": first_token_ms,
                    "unsupported_held_back": held,
                    "declined_then_quoted": declined if quoted else [],
                    "restated_as_answering": restated,
                },
            )
        )
        yield StageEvent(trace[-1])
        yield AnswerEvent(Answer(text, cited(text, passages), self.name, tuple(trace)))

    def run(self, question: str, image: Image.Image | None = None, history: Sequence[Turn] = ()) -> Answer:
        for event in self.stream(question, image, history):
            if isinstance(event, AnswerEvent):
                return event.answer
        raise AssertionError("a pipeline always ends with its answer")
