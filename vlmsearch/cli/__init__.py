"""The command line, one module per command group. Only the CLI (and the server) prints or exits."""

from __future__ import annotations

from typing import Annotated

import typer

from vlmsearch.cli import answers, chat, eval, eval_extract, extract, library, train
from vlmsearch.cli.common import state

app = typer.Typer(help="vlmsearch: multimodal search and answers over your images and documents.", no_args_is_help=True)


def _print_version(asked: bool) -> None:
    if asked:
        from vlmsearch import __version__

        typer.echo(f"vlmsearch {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    store: Annotated[
        str | None,
        typer.Option(
            help="Store: a folder (LanceDB), milvus:///file.db (Milvus Lite) or milvus://host:19530/name [default: $VLMSEARCH_STORE or a per-user data dir]"
        ),
    ] = None,
    profile: Annotated[str | None, typer.Option(help="Model profile: offline, hf-cpu, or a .toml file [default: $VLMSEARCH_PROFILE or offline]")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Change a setting: SECTION.KEY=VALUE, e.g. ingest.max_image_pixels=700000000 (repeatable)")
    ] = None,
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit")] = False,
) -> None:
    state.store, state.profile, state.overrides = store, profile, set_ or []


library.register(app)
answers.register(app)
chat.register(app)
extract.register(app)
app.add_typer(library.store_app, name="store")
eval_extract.register(eval.eval_app)
app.add_typer(eval.eval_app, name="eval")
app.add_typer(train.train_app, name="train")
