"""`vlmsearch eval`: measure retrieval and answers on your own data, and compare pipelines side by side."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vlmsearch.cli.common import fail, our_vlm, out, progress_bar, state
from vlmsearch.errors import VlmsearchError

eval_app = typer.Typer(help="Measure quality on your own data.", no_args_is_help=True)


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
            report = evaluate_text_to_image(Settings.create(profile=state.profile, overrides=state.overrides), images, pairs, file_names, progress)
    except VlmsearchError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(report.to_json()))
        return
    out.print(f"text -> image retrieval: {report.n} queries over {report.indexed} images")
    table = Table()
    for column in report.to_json():
        table.add_column(column, justify="right")
    table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in report.to_json().values()))
    out.print(table)


DEFAULT_OUT = Path("out/eval")


def _print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A results table: the first column names the row (left), the others are figures (right)."""
    table = Table(title=title, title_justify="left")
    for n, column in enumerate(columns):
        table.add_column(column, justify="right" if n else "left")
    for row in rows:
        table.add_row(*row)
    out.print(table)


def _ci(bounds: Sequence[float]) -> str:
    return f"{bounds[0]:.3f}-{bounds[1]:.3f}"


def _bucket(path: Path, limit: int):
    from vlmsearch.eval.bucket.items import Bucket, load_bucket

    bucket = load_bucket(path)
    return Bucket(bucket.path, bucket.items[:limit]) if limit else bucket


def _settings():
    from vlmsearch.config import Settings
    from vlmsearch.models.hf import quiet_transformers

    quiet_transformers()
    return Settings.create(profile=state.profile, overrides=state.overrides)


BucketOption = Annotated[Path, typer.Option(help="Bucket JSONL (`eval make-bucket` writes <out>/<split>/bucket.jsonl)")]
DocsOption = Annotated[Path | None, typer.Option(help="Folder of the documents that hold the answers [default: docs/ beside the bucket]")]
OutOption = Annotated[Path, typer.Option("--out", help="Folder for cached answers, judgements and reports")]
LimitOption = Annotated[int, typer.Option(min=0, help="Only the first N items, for a quick look (0: all)")]
StoreOption = Annotated[Path | None, typer.Option("--eval-store", help="Keep the documents' index here [default: a temporary store]")]


@eval_app.command("make-bucket")
def eval_make_bucket(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for <split>/{bucket.jsonl, images/, docs/}")] = Path("out/bucket"),
    images: Annotated[Path, typer.Option(help="Labelled images: names or sidecar .txt captions say what each shows")] = Path("/usr/share/openclipart/png"),
    split: Annotated[list[str] | None, typer.Option(help="test (held out: report on it), dev (tune on it), train; repeat")] = None,
    seed: Annotated[int, typer.Option(help="The same seed and images give the same bucket")] = 0,
    max_items: Annotated[int, typer.Option(min=0, help="At most this many items per split (0: all)")] = 0,
    conversations: Annotated[int, typer.Option(min=0, help="At most this many conversations per split (conversations.jsonl)")] = 40,
) -> None:
    """Build evaluation buckets where the image matters: questions, images and the documents that answer them."""
    from vlmsearch.eval.bucket.build import BucketSettings, build_buckets
    from vlmsearch.knowledge.wordnet import DEFAULT_DATA_NOUN, WordNet

    if not DEFAULT_DATA_NOUN.is_file():
        fail(VlmsearchError("the bucket's facts come from WordNet: apt-get install wordnet-base (make setup does it)"))
    settings = BucketSettings(images=images, out=out_dir, splits=tuple(split or ("dev", "test")), seed=seed, max_items=max_items, conversations=conversations)
    try:
        with progress_bar() as progress:
            written = build_buckets(settings, WordNet(), progress)
    except VlmsearchError as exc:
        fail(exc)
    for name, path in written.items():
        manifest = json.loads((path.parent / "build.json").read_text())
        kinds = ", ".join(f"{k} {v}" for k, v in manifest["by_type"].items())
        out.print(f"{name}: {path} ({manifest['items']} items: {kinds}; {manifest['documents']} documents)", highlight=False)


@eval_app.command("make-written")
def eval_make_written(
    source: Annotated[Path, typer.Option(help="A hand-written set: docs/, subjects.json, questions.jsonl")] = Path("eval/natural"),
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for <split>/{bucket.jsonl, images/, docs/}")] = Path("out/written"),
    images: Annotated[Path, typer.Option(help="Where the set's drawings are")] = Path("/usr/share/openclipart/png"),
    seed: Annotated[int, typer.Option(help="The same seed gives the same composites and signs")] = 0,
) -> None:
    """Render a hand-written evaluation set (questions written by a person over prose documents) into buckets."""
    from collections import Counter

    from vlmsearch.eval.bucket.items import load_bucket
    from vlmsearch.eval.bucket.written import build_written

    try:
        written = build_written(source, images, out_dir, seed)
    except VlmsearchError as exc:
        fail(exc)
    for name, path in written.items():
        items = load_bucket(path).items
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(Counter(i.type for i in items).items()))
        unanswerable = sum(not i.answerable for i in items)
        out.print(f"{name}: {path} ({len(items)} items: {kinds}; {unanswerable} unanswerable)", highlight=False)


@eval_app.command("answers")
def eval_answers(
    bucket: BucketOption,
    pipeline: Annotated[list[str], typer.Option(help="Pipeline to run (llm, vlm); repeat to compare")],
    docs: DocsOption = None,
    out_dir: OutOption = DEFAULT_OUT,
    eval_store: StoreOption = None,
    limit: LimitOption = 0,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ask again instead of reusing cached answers")] = False,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"pipelines": {name: {"accuracy", "ci95", ...}}}')] = False,
) -> None:
    """Answer a bucket with each pipeline and score it: right fact, right source, right abstentions."""
    from vlmsearch.eval.runs import evaluate_answers

    try:
        loaded = _bucket(bucket, limit)
        with progress_bar() as progress:
            result = evaluate_answers(_settings(), loaded, docs or loaded.default_docs, pipeline, out_dir, eval_store, fresh, progress)
    except VlmsearchError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(result))
        return
    _print_table(
        f"answers on {bucket} ({len(loaded.items)} items)",
        ("pipeline", "accuracy", "95% CI", "right+source", "false abst.", "of them, answer shown", "right abst.", "other subject's number", "p50 ms"),
        ((name, f"{s['accuracy']:.3f}", _ci(s["ci95"]), f"{s['right_with_source']}/{s['answerable']}",
          f"{s['false_abstentions']}/{s['answerable']}", f"{s['false_abstentions_with_source_shown']}/{s['answerable_with_source_shown']}",
          f"{s['right_abstentions']}/{s['unanswerable']}", str(s["other_subject_numbers"]),
          f"{s['p50_ms']:,.0f}" if s["p50_ms"] is not None else "-") for name, s in result["pipelines"].items()),
    )  # fmt: skip
    conversations = {name: s["conversation"] for name, s in result["pipelines"].items() if s.get("conversation")}
    if conversations:
        _print_conversation_table(conversations)
    out.print(f"answers cached in {out_dir}/answers/")


def _print_conversation_table(conversations: dict[str, dict]) -> None:
    """Later turns against the same facts asked alone: the history loss."""

    def cell(group: dict | None) -> str:
        return f"{group['accuracy']:.3f} {_ci(group['ci95'])} (n={group['n']})" if group and group["n"] else "-"

    rows = []
    for name, kinds in conversations.items():
        rows.append((name, "turn 1", cell(kinds.get("turn 1")), "-", "-", f"{kinds['turn 1']['p50_ms'] or 0:,.0f}" if "turn 1" in kinds else "-"))
        for kind in ("follow-up", "follow-up after a right turn 1", "topic switch", "topic switch after a right turn 1"):
            if kind in kinds:
                k = kinds[kind]
                ratio = f"{k['ratio']:.2f}" if k["ratio"] is not None else "-"
                rows.append((name, kind, cell(k["turns"]), cell(k["alone"]), ratio, f"{k['turns']['p50_ms'] or 0:,.0f}"))
    _print_table("conversations: each later turn against the same fact asked alone",
                 ("pipeline", "turns", "accuracy in the conversation", "asked alone", "ratio", "p50 ms"), rows)  # fmt: skip


@eval_app.command("signs")
def eval_signs(
    bucket: BucketOption,
    pipeline: Annotated[list[str], typer.Option(help="Pipeline to run (llm, vlm); repeat to compare")],
    count: Annotated[int, typer.Option(min=1, help="Signs to render and ask about")] = 40,
    seed: Annotated[int, typer.Option(help="Which signs, values and questions (training data uses seed 0)")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"pipelines": {name: {"accuracy", "ci95", ...}}}')] = False,
) -> None:
    """Reading the image: signs showing a value (an hour, a price, a gate...), asked it in words never trained on, or asked another kind's (declined)."""
    from vlmsearch.eval.answers import eval_engine
    from vlmsearch.eval.signs import sign_reading_score

    try:
        loaded = _bucket(bucket, 0)
        with progress_bar() as progress, eval_engine(_settings(), loaded.default_docs, progress=progress) as engine:
            result = {"pipelines": {name: sign_reading_score(engine, name, count, seed, progress) for name in pipeline}}
    except VlmsearchError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(result))
        return
    _print_table(
        f"reading signs ({count}, seed {seed}; library: {bucket})",
        ("pipeline", "accuracy", "95% CI", "value read", "declined", "OCR missed"),
        ((name, f"{s['accuracy']:.3f}", _ci(s["ci95"]), f"{s['read_right']}/{s['asked_its_value']}",
          f"{s['declined_right']}/{s['asked_another']}", str(s["ocr_missed"])) for name, s in result["pipelines"].items()),
    )  # fmt: skip


@eval_app.command("sbs")
def eval_sbs(
    bucket: BucketOption,
    a: Annotated[str, typer.Option("--a", help="Pipeline A (its win rate is reported)")],
    b: Annotated[str, typer.Option("--b", help="Pipeline B")],
    judge: Annotated[str, typer.Option(help="reference, a profile whose chat model judges (offline, hf-cpu), openai:<url>/<model>, or human")] = "reference",
    docs: DocsOption = None,
    out_dir: OutOption = DEFAULT_OUT,
    eval_store: StoreOption = None,
    limit: LimitOption = 0,
    fresh: Annotated[bool, typer.Option("--fresh", help="Judge again instead of reusing cached judgements")] = False,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"a", "b", "judge", "criteria": {...}, ...}')] = False,
) -> None:
    """Side by side: a judge compares A's and B's answers per criterion, in both orders; HTML report."""
    from vlmsearch.eval.runs import side_by_side

    if a == b:
        fail(VlmsearchError("--a and --b name the same pipeline"))
    try:
        loaded = _bucket(bucket, limit)
        with progress_bar() as progress:
            summary, report = side_by_side(_settings(), loaded, docs or loaded.default_docs, a, b, judge, out_dir, eval_store, fresh, progress)
    except VlmsearchError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(summary))
        return
    _print_table(
        f"{a} vs {b}, judge {summary['judge']}: {summary['n_items']} items",
        ("criterion", "win", "tie", "loss", f"{a} win rate", "95% CI", "consistent"),
        ((criterion, str(t["win"]), str(t["tie"]), str(t["loss"]), f"{t['win_rate']:.3f}", _ci(t["ci95"]),
          f"{t['consistency']:.2f}" if t["consistency"] is not None else "-") for criterion, t in summary["criteria"].items()),
    )  # fmt: skip
    agreement = summary["agreement_with_reference"]
    if agreement:
        out.print(f"agreement with the reference judge (overall): {agreement['agreement']:.3f} over {agreement['n']} items, kappa {agreement['kappa']:.3f}")
    if summary["length_controlled_win_rate"] is not None:
        out.print(f"length-controlled overall win rate: {summary['length_controlled_win_rate']:.3f}")
    out.print(f"report: {report}")


@eval_app.command("judge")
def eval_judge(
    sbs: Annotated[Path, typer.Option(help="An SBS folder (eval sbs writes <out>/sbs/<profile>/<a>-vs-<b>)")],
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8377,
) -> None:
    """Judge pairs yourself in the browser: image, question, two answers on random sides, one verdict per criterion."""
    import uvicorn

    from vlmsearch.eval.judge_app import judge_app

    try:
        app = judge_app(sbs)
    except VlmsearchError as exc:
        fail(exc)
    out.print(f"judging page: http://{host}:{port}/  (verdicts go to {sbs / 'human'})")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@eval_app.command("rephraser")
def eval_rephraser(
    bucket: BucketOption,
    pipeline: Annotated[str, typer.Option(help="Whose rephraser: vlm (our VLM, seeing the image) or llm")] = "vlm",
    vlm: Annotated[str, typer.Option(help="With vlm: a VLM checkpoint folder or shipped name [default: the profile's]")] = "",
    docs: DocsOption = None,
    limit: LimitOption = 0,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"items", "alone_top1", "alone_top3", "fused_top3"}')] = False,
) -> None:
    """How often the rephraser's query brings the answering document into the top 3 (alone, and fused as the pipeline retrieves)."""
    from vlmsearch.eval.answers import eval_engine
    from vlmsearch.eval.rephraser import RephraserProbe, probe_bucket, summarize_ranks

    if vlm and pipeline != "vlm":
        fail(VlmsearchError("--vlm names the vlm pipeline's rephraser: use it with --pipeline vlm"))
    try:
        loaded = _bucket(bucket, limit)
        with progress_bar() as progress, eval_engine(_settings(), docs or loaded.default_docs, progress=progress) as engine:
            probe = RephraserProbe(engine, pipeline, our_vlm(engine, vlm) if vlm else None)
            summary = summarize_ranks(probe_bucket(probe, loaded, progress=progress))
    except VlmsearchError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(summary))
        return
    _print_table(
        f"{pipeline} rephraser on {summary['items']} answerable items",
        ("measure", "rate", "95% CI"),
        ((key.replace("_", " "), f"{summary[key]['rate']:.3f}", _ci(summary[key]["ci95"])) for key in ("alone_top1", "alone_top3", "fused_top3")),
    )
