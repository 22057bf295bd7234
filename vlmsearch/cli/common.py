"""What every command shares: the consoles, global options, the engine, errors and progress bars.
Only the CLI (and the server) prints or exits; the library raises."""

from __future__ import annotations

import os
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# Our bars are rich's; libraries' own tqdm bars (GGUF dequantisation, weight loading) would interleave.
os.environ.setdefault("TQDM_DISABLE", "1")

console = Console(stderr=True)  # progress and messages; stdout is for results
out = Console()


class State:
    store: str | None = None
    profile: str | None = None
    overrides: list[str] = []  # --set SECTION.KEY=VALUE


state = State()


def open_engine():
    from vlmsearch.engine import Engine
    from vlmsearch.models.hf import quiet_transformers

    quiet_transformers()
    return Engine.from_config(store=state.store, profile=state.profile, overrides=state.overrides)


def our_vlm(engine, name: str = ""):
    """The profile's VLM, or our VLM from the checkpoint folder (or shipped name) `name`, with the
    profile's options for it (its reply cap)."""
    from vlmsearch.config import ModelSpec
    from vlmsearch.models.registry import build_model

    if not name:
        return engine.models.get("vlm")
    profile = engine.settings.profile.roles.get("vlm")
    options = profile.options if profile is not None and profile.backend == "bundled" else {}
    return build_model("vlm", ModelSpec(backend="bundled", model=name, options=options), engine.settings.cache_dir)


def fail(exc: Exception) -> NoReturn:
    console.print(f"[bold red]error:[/] {exc}", highlight=False)
    raise typer.Exit(1)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
    )  # fmt: skip
