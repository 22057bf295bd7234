"""`vlmsearch chat`: a conversation in the terminal, models loaded once; or, with --json, one JSON
turn per line on stdin for scripts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from vlmsearch.cli.common import console, fail, open_engine, out
from vlmsearch.errors import VlmsearchError

HELP = "Ask about the image or your documents. /image PATH picks an image, /new starts over, /quit leaves."


def register(app: typer.Typer) -> None:
    app.command()(chat)


def chat(
    image: Annotated[Path | None, typer.Option(help="An image the conversation starts about")] = None,
    pipeline: Annotated[str | None, typer.Option(help="llm or vlm [default: the profile's]")] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help='Read one JSON turn per line on stdin ({"question", "image"?: path, "new"?: true}); print one JSON answer per line'),
    ] = False,
) -> None:
    """Hold a conversation: follow-up questions about the same image ("and how long do they live?")."""
    try:
        engine = open_engine()
        engine.pipeline(pipeline)  # an unknown pipeline or a missing VLM fails before the first question
    except VlmsearchError as exc:
        fail(exc)
    conversation = Conversation(engine, pipeline, image)
    if as_json:
        _json_turns(conversation)
        return
    console.print(HELP, highlight=False)
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            out.print()
            return
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return
        if line == "/new":
            conversation.new()
            console.print("(a new conversation)")
        elif line.startswith("/image"):
            path = line.removeprefix("/image").strip()
            conversation.image = Path(path).expanduser() if path else None
            console.print(f"(the next question is about {path})" if path else "(no image: /image PATH picks one)", highlight=False)
        elif line.startswith("/"):
            console.print(f"unknown command {line.split()[0]}. {HELP}", highlight=False)
        else:
            try:
                _print_answer(conversation.ask(line, stream=True))
            except VlmsearchError as exc:  # a bad image or question: say so and go on with the conversation
                console.print(f"[bold red]error:[/] {exc}", highlight=False)


class Conversation:
    """The turns so far, held here as a client holds them: the engine keeps none."""

    def __init__(self, engine, pipeline: str | None, image: Path | None):
        self.engine, self.pipeline, self.image, self.turns = engine, pipeline, image, []

    def new(self) -> None:
        self.image, self.turns = None, []

    def ask(self, question: str, stream: bool = False):
        """The answer to the next question; the image picked since the last one goes with it."""
        from vlmsearch.pipeline import AnswerEvent, TokenEvent
        from vlmsearch.pipeline.types import Turn

        picture = self.engine.open_image(self.image) if self.image else None  # read once, kept in the turn
        answer = None
        for event in self.engine.ask_stream(question, picture, self.pipeline, self.turns):
            if isinstance(event, TokenEvent) and stream:
                out.print(event.text, end="", highlight=False, soft_wrap=True)
            elif isinstance(event, AnswerEvent):
                answer = event.answer
        self.turns.append(Turn(question, answer.answer, answer.citations, picture))
        self.image = None  # sent: it stays the conversation's image through the turns
        return answer


def _print_answer(answer) -> None:
    out.print()
    for c in answer.citations:
        out.print(f"  [{c.n}] {c.source}: {c.text[:100]}…", highlight=False, markup=False)


def _json_turns(conversation: Conversation) -> None:
    for number, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            turn = json.loads(line)
            if not isinstance(turn, dict) or not isinstance(turn.get("question"), str):
                raise ValueError('each line must be a JSON object with a "question" string')
        except ValueError as exc:
            fail(VlmsearchError(f"stdin line {number}: {exc}"))
        if turn.get("new"):
            conversation.new()
        if turn.get("image"):
            conversation.image = Path(turn["image"])
        try:
            answer = conversation.ask(turn["question"])
        except VlmsearchError as exc:
            fail(VlmsearchError(f"stdin line {number}: {exc}"))
        print(json.dumps(answer.to_json(), default=str, ensure_ascii=False), flush=True)
