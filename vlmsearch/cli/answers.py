"""Answers, captions and the server: ask, caption, demo, serve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vlmsearch.cli.common import console, fail, open_engine, out, progress_bar
from vlmsearch.errors import VlmsearchError


def register(app: typer.Typer) -> None:
    for command in (ask, caption, demo, serve):
        app.command()(command)


def ask(
    question: Annotated[str, typer.Argument(help="The question")],
    image: Annotated[Path | None, typer.Option(help="An image the question is about")] = None,
    pipeline: Annotated[
        str | None, typer.Option(help="llm or vlm [default: the profile's (offline: llm), else vlm if the profile has a VLM, else llm]")
    ] = None,
    trace: Annotated[bool, typer.Option("--trace", help="Show every stage: input, output, model, milliseconds")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: answer, citations, pipeline, trace")] = False,
) -> None:
    """Answer a question (optionally about an image) from the indexed documents, with citations."""
    from vlmsearch.pipeline import AnswerEvent, StageEvent, TokenEvent

    try:
        events = open_engine().ask_stream(question, image, pipeline)
        answer = None
        with console.status("thinking…", spinner="dots") as status:
            for event in events:
                if isinstance(event, TokenEvent):
                    status.stop()
                    if not as_json:
                        out.print(event.text, end="", highlight=False, soft_wrap=True)
                elif isinstance(event, AnswerEvent):
                    answer = event.answer
                elif isinstance(event, StageEvent):  # drafts are not printed: a terminal cannot take text back
                    status.update(f"{event.step.stage} done ({event.step.ms:.0f} ms)…")
    except VlmsearchError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(answer.to_json(), default=str))
        return
    out.print()
    if answer.citations:
        out.print("\n[bold]Sources[/]")
        for c in answer.citations:
            out.print(f"  [{c.n}] {c.source}: {c.text[:100]}…", highlight=False, markup=False)
    if trace:
        _print_trace(answer)


def _print_trace(answer) -> None:
    table = Table(title=f"trace: {answer.pipeline} pipeline", title_justify="left", show_lines=True)
    for column in ("stage", "model", "ms", "input", "output"):
        table.add_column(column, justify="right" if column == "ms" else "left", overflow="fold")
    for step in answer.trace:
        output = step.output
        if isinstance(output, dict) and "text" in output:  # visual search: its readable summary
            output = output["text"]
        output = output if isinstance(output, str) else json.dumps(output, default=str)
        table.add_row(step.stage, step.model, f"{step.ms:,.0f}", step.input, output[:400])
    out.print(table)


def caption(
    images: Annotated[list[Path], typer.Argument(help="Images to describe")],
    as_json: Annotated[bool, typer.Option("--json", help='Print [{"path", "caption"}, ...]')] = False,
) -> None:
    """Describe images with the profile's VLM (one model load for all of them)."""
    try:
        engine = open_engine()
        captions = []
        with progress_bar() as progress:  # the first image also loads the VLM (about a minute for the offline LM)
            task = progress.add_task("captioning", total=len(images))
            for path in images:
                captions.append((path, engine.caption(path)))
                progress.advance(task)
    except VlmsearchError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps([{"path": str(p), "caption": c} for p, c in captions]))
        return
    for path, text in captions:
        out.print(f"[bold]{path}[/]: {text}")


def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where the sample collection and the HTML report go")] = Path("out/demo"),
    images: Annotated[int, typer.Option(min=1, help="How many openclipart images to sample")] = 60,
) -> None:
    """Build a sample collection offline, index it, run searches and write an HTML report."""
    from vlmsearch.demo.run import run_demo

    try:
        with progress_bar() as progress:
            report = run_demo(open_engine(), out_dir, openclipart_images=images, progress=progress, console=out)
    except VlmsearchError as exc:
        fail(exc)
    out.print(f"\nHTML report: {report}")


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on; beyond localhost an API key is required")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    api_key: Annotated[str | None, typer.Option(envvar="VLMSEARCH_API_KEY", help="Key clients send as 'Authorization: Bearer <key>'")] = None,
    allow_path: Annotated[list[Path] | None, typer.Option(help="A server folder /v1/index may read; repeat")] = None,
    cors_origin: Annotated[list[str] | None, typer.Option(help="A browser origin allowed to call the API; repeat")] = None,
    max_upload_mb: Annotated[int, typer.Option(min=1, max=2048, help="Largest upload, per file")] = 20,
    sbs: Annotated[Path | None, typer.Option(help="An `eval sbs` folder: its judging page is served at /judge/")] = None,
) -> None:
    """Serve the HTTP API, an OpenAI-compatible chat endpoint and the web page; models load once."""
    import logging

    import uvicorn

    from vlmsearch.server import create_app
    from vlmsearch.server.settings import ServerSettings

    try:
        settings = ServerSettings(
            host=host,
            port=port,
            api_key=api_key,
            allow_paths=tuple(allow_path or ()),
            cors_origins=tuple(cors_origin or ()),
            max_upload_bytes=max_upload_mb * 1024 * 1024,
            sbs=sbs,
        ).check()
        engine = open_engine()
        with console.status("loading models…", spinner="dots"):
            from vlmsearch.server import warm

            warm(engine)
        app = create_app(engine, settings, warm_up=False)
    except VlmsearchError as exc:
        fail(exc)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("vlmsearch").setLevel(logging.INFO)  # ours, not every library's chatter
    console.print(f"vlmsearch: http://{host}:{port}/  (API docs: /docs; store {engine.settings.store})")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_keep_alive=30)
