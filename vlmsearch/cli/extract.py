"""Reading images into data: typed fields (extract), text in reading order (ocr), objects with boxes (detect)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vlmsearch.cli.common import fail, open_engine, out
from vlmsearch.errors import BadInputError, VlmsearchError


def register(app: typer.Typer) -> None:
    for command in (extract, ocr, detect):
        app.command()(command)


def extract(
    images: Annotated[list[Path], typer.Argument(help="One or more images")],
    schema: Annotated[str | None, typer.Option(help="A JSON Schema file, or a pydantic model as module:Class")] = None,
    fields: Annotated[
        str | None, typer.Option(help='Fields instead of a schema: "name, price: number, open_hours" (types: string, number, integer, boolean, list, date)')
    ] = None,
    pipeline: Annotated[str, typer.Option(help="llm: the image's text and labels; vlm: and our VLM's caption")] = "llm",
    docs: Annotated[bool, typer.Option("--docs", help="Also fill fields from passages retrieved for the image (each value names its passage)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help='One line per image: {"path", "data", "sources"}')] = False,
) -> None:
    """Fill a schema from each image: null where the image (or, with --docs, a passage) does not say."""
    from vlmsearch.extract import from_fields, load_schema

    try:
        if (schema is None) == (fields is None):
            raise BadInputError('give the fields to extract: --schema FILE|module:Class, or --fields "name, price: number"')
        wanted = load_schema(schema) if schema is not None else from_fields(fields)
        engine = open_engine()
        for path in images:
            extraction = engine.extract(path, wanted, pipeline=pipeline, docs=docs)
            if as_json:
                out.print(json.dumps(extraction.to_json(str(path)), ensure_ascii=False), soft_wrap=True, highlight=False)
                continue
            table = Table(title=str(path), title_justify="left")
            for column in ("field", "value", "from"):
                table.add_column(column)
            for name, value in extraction.data.items():
                shown = "[dim]null[/]" if value is None else json.dumps(value, ensure_ascii=False)
                table.add_row(name, shown, extraction.sources.get(name, ""))
            out.print(table)
    except VlmsearchError as exc:
        fail(exc)


def ocr(
    image: Annotated[Path, typer.Argument(help="The image")],
    as_json: Annotated[bool, typer.Option("--json", help='{"lines": [{"text", "score", "box", "row"}], "text"}')] = False,
) -> None:
    """The text in an image, line by line in reading order, with boxes and scores."""
    try:
        page = open_engine().ocr(image)
    except VlmsearchError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(page.to_json(), ensure_ascii=False))
        return
    out.print(page.text or "[dim](no text found)[/]", highlight=False)


def detect(
    image: Annotated[Path, typer.Argument(help="The image")],
    labels: Annotated[str | None, typer.Option(help="Comma-separated labels to look for (zero-shot); default: the tagger's classes")] = None,
    as_json: Annotated[bool, typer.Option("--json", help='[{"label", "score", "box": [x0, y0, x1, y1]}] in pixels')] = False,
) -> None:
    """The objects in an image and where they are (coarse boxes: see the docs, Limits)."""
    try:
        found = open_engine().detect(image, labels.split(",") if labels is not None else None)
    except VlmsearchError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps([d.to_json() for d in found]))
        return
    table = Table()
    for column in ("label", "score", "box (x0, y0, x1, y1)"):
        table.add_column(column)
    for d in found:
        table.add_row(d.label, f"{d.score:.3f}", ", ".join(map(str, d.box)))
    out.print(table)
