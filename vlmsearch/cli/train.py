"""`vlmsearch train`: the joint image-text heads and our VLM, from the offline parts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vlmsearch.cli.common import fail, open_engine, our_vlm, out, progress_bar
from vlmsearch.errors import VlmsearchError

train_app = typer.Typer(help="Train models from the offline parts.", no_args_is_help=True)


@train_app.command("contrastive")
def train_contrastive(
    data: Annotated[Path, typer.Option(help="Folder of images (texts from captions or file names) or JSONL of {image, text}")],
    out_dir: Annotated[Path, typer.Option("--out", help="Checkpoint folder (config.json + model.safetensors + training.json)")],
    loss: Annotated[str, typer.Option(help="clip (softmax InfoNCE) or siglip (pairwise sigmoid)")] = "siglip",
    seed: Annotated[int, typer.Option(help="Random seed: the same seed and data give the same heads")] = 0,
    max_epochs: Annotated[int, typer.Option(min=1, help="Upper bound; early stopping usually ends sooner")] = 300,
    name: Annotated[str, typer.Option(help="Embedder name recorded in stores [default: joint-<data>-<loss>]")] = "",
    class_prior: Annotated[bool, typer.Option("--class-prior/--no-class-prior", help="Start from the image tower's class names (zero-shot prior)")] = True,
    views: Annotated[int, typer.Option(min=0, help="Augmented views of each training image (crop, mirror, rotation, colour), features cached")] = 0,
    members: Annotated[int, typer.Option(min=1, help="Heads trained with seeds seed, seed+1, ... and merged into one (an ensemble)")] = 1,
    image_fit: Annotated[str, typer.Option(help="How the image tower makes a picture square: crop (the centre) or pad (the whole picture)")] = "crop",
    as_json: Annotated[bool, typer.Option("--json", help="Print the training report as JSON")] = False,
) -> None:
    """Train joint image-text heads over the frozen offline towers (contrastive, CLIP or SigLIP loss)."""
    from pydantic import ValidationError

    from vlmsearch.config import ModelSpec, default_cache_dir
    from vlmsearch.joint.train import ContrastiveSettings, train
    from vlmsearch.models.hf import quiet_transformers

    quiet_transformers()
    try:
        tower = ModelSpec(backend="bundled", model="efficientnet-lite0", options={} if image_fit == "crop" else {"fit": image_fit})
        settings = ContrastiveSettings(
            data=data, out=out_dir, loss=loss, seed=seed, max_epochs=max_epochs, name=name, class_prior=class_prior,
            views=views, members=members, image_tower=tower,
        )  # fmt: skip
    except ValidationError as exc:
        fail(VlmsearchError(f"bad option: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}"))
    try:
        with progress_bar() as progress:
            report = train(settings, default_cache_dir(), progress)
    except VlmsearchError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps({k: v for k, v in report.to_json().items() if k != "history"}))
        return
    out.print(
        f"best epoch {', '.join(map(str, report.member_best_epochs))} (correction scale {report.correction_scale}); "
        f"{report.pairs['train']} training pairs "
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
    stage: Annotated[str, typer.Option(help="pretrain, sft, task, or dpo (--data: preference pairs from `train vlm-prefs`; needs --init)")] = "pretrain",
    init: Annotated[Path | None, typer.Option(help="Continue from this checkpoint (the previous stage)")] = None,
    adapter: Annotated[str, typer.Option(help="mlp (image tokens in the LM context), cross_attention, or lora (a hub VLM given by --lm)")] = "mlp",
    lm: Annotated[str, typer.Option(help="LM: a Hugging Face id or folder, or the offline GGUF; with lora, the VLM")] = "bundled:qwen2.5-coder-0.5b-instruct",
    steps: Annotated[int, typer.Option(min=1)] = 200,
    batch_size: Annotated[int, typer.Option(min=1)] = 4,
    lr: Annotated[float, typer.Option(help="Adapter learning rate")] = 1e-3,
    joint_tokens: Annotated[int, typer.Option(min=0, help="Image tokens from the joint heads' embedding (with --init: added to its adapter)")] = 0,
    joint: Annotated[str, typer.Option(help="Those joint heads: a checkpoint folder or shipped name, on the VLM's encoder [default: the shipped heads]")] = "",
    precision: Annotated[str, typer.Option(help="auto (bf16 where native: ~2.4x faster), bf16 or fp32 for the frozen LM")] = "auto",
    name: Annotated[str, typer.Option(help="Model name [default: vlm-<adapter>]")] = "",
    save_every: Annotated[int, typer.Option(min=1, help="Steps between saves; a killed run resumes from the last one")] = 50,
    beta: Annotated[float, typer.Option(min=0.0, help="dpo: how far preferences may pull the model from --init")] = 0.1,
    keep: Annotated[
        list[Path] | None, typer.Option(help="dpo: conversations (JSONL) still trained on at each step, so the adapter's other tasks stay; repeat")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the training report as JSON")] = False,
) -> None:
    """Train our VLM's adapter (frozen EfficientNet-Lite0 encoder and frozen LM)."""
    from dataclasses import asdict

    from pydantic import ValidationError

    from vlmsearch.config import ModelSpec, default_cache_dir
    from vlmsearch.models.hf import quiet_transformers
    from vlmsearch.vlm.lora import LoRASettings
    from vlmsearch.vlm.model import VLMConfig
    from vlmsearch.vlm.stages import train_vlm
    from vlmsearch.vlm.train import VLMTrainSettings

    quiet_transformers()
    try:
        if adapter == "lora" and lm.startswith("bundled:"):
            raise VlmsearchError("--adapter lora fine-tunes a Hugging Face VLM: give its id or folder with --lm")
        lora = LoRASettings(base=lm) if adapter == "lora" else None
        joint_spec = {"joint": ModelSpec(backend="bundled", model=joint)} if joint else {}
        model = None if init or lora else VLMConfig(name=name or f"vlm-{adapter}", lm=lm, adapter=adapter, joint_tokens=joint_tokens, **joint_spec)
        settings = VLMTrainSettings(
            data=tuple(data), out=out_dir, stage=stage, init=init, model=model, lora=lora, steps=steps, batch_size=batch_size, lr=lr,
            precision=precision, save_every=save_every, beta=beta, keep=tuple(keep or ()), joint_tokens=joint_tokens if init else 0, **(joint_spec if init else {}),
        )  # fmt: skip
    except ValidationError as exc:
        fail(VlmsearchError(f"bad option: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}"))
    except VlmsearchError as exc:
        fail(exc)
    try:
        with progress_bar() as progress:
            report = train_vlm(settings, default_cache_dir(), progress)
    except VlmsearchError as exc:
        fail(exc)
    summary = {k: v for k, v in asdict(report).items() if k != "losses"}
    if as_json:
        out.print_json(json.dumps(summary))
        return
    for key, value in summary.items():
        out.print(f"{key}: {value}", highlight=False)


@train_app.command("vlm-data")
def train_vlm_data_command(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for <set>-{train,test}.jsonl")],
    source: Annotated[Path, typer.Option(help="Image-text pairs: a folder (file names, sidecar .txt) or JSONL")] = Path("/usr/share/openclipart/png"),
    max_per_group: Annotated[int, typer.Option(min=1, help="Images of one drawing at most")] = 3,
) -> None:
    """Build the VLM's training sets: captions (pretrain), sft, captioner and rephraser (task)."""
    from vlmsearch.vlm.datasets import build_datasets

    try:
        engine = open_engine()
        with progress_bar() as progress:
            written = build_datasets(source, out_dir, engine.models.tagger, engine.wordnet, max_per_group, progress=progress)
    except VlmsearchError as exc:
        fail(exc)
    for name, path in written.items():
        out.print(f"{name}: {path} ({sum(1 for _ in path.open())} conversations)", highlight=False)


@train_app.command("vlm-prefs")
def train_vlm_prefs_command(
    bucket: Annotated[Path, typer.Option(help="A bucket to draw preferences from: its train split (`eval make-bucket --split train`)")],
    out_file: Annotated[Path, typer.Option("--out", help="Preference pairs (JSONL) for `train vlm --stage dpo`")],
    vlm: Annotated[str, typer.Option(help="The VLM that rephrases: a checkpoint folder or shipped name [default: the profile's]")] = "",
    samples: Annotated[int, typer.Option(min=1, help="Sampled replies per item, beside the greedy one")] = 3,
    temperature: Annotated[float, typer.Option(min=0.01, help="Sampling temperature")] = 1.0,
    limit: Annotated[int, typer.Option(min=0, help="Only the first N items (0: all)")] = 0,
    seed: Annotated[int, typer.Option(help="Seeds each item's samples: the same seed, model and bucket give the same pairs")] = 0,
) -> None:
    """Build DPO preference pairs for our VLM's rephraser: its replies ranked by what they retrieve."""
    from vlmsearch.cli.eval import _bucket, _settings
    from vlmsearch.eval.answers import eval_engine
    from vlmsearch.eval.rephraser import RephraserProbe, probe_bucket, summarize_ranks
    from vlmsearch.vlm.preferences import preference_of, write_preferences

    try:
        loaded = _bucket(bucket, limit)
        settings = _settings()
        with progress_bar() as progress, eval_engine(settings, loaded.default_docs, progress=progress) as engine:
            model = our_vlm(engine, vlm)
            probed = probe_bucket(RephraserProbe(engine, "vlm", model), loaded, samples, temperature, seed, progress)
    except VlmsearchError as exc:
        fail(exc)
    pairs = [p for p in map(preference_of, probed) if p is not None]
    write_preferences(pairs, out_file)
    greedy = summarize_ranks(probed)
    any_top3 = sum(any(r.alone is not None and r.alone <= 3 for r in p.replies) for p in probed)
    out.print(f"{len(pairs)} preference pairs from {len(probed)} answerable items -> {out_file}", highlight=False)
    out.print(f"greedy replies: the item's document in the top 3 for {greedy['alone_top3']['rate']:.3f} (query alone); "
              f"some reply of {samples + 1}: {any_top3 / max(1, len(probed)):.3f}", highlight=False)  # fmt: skip


@train_app.command("generator-data")
def train_generator_data(
    bucket: Annotated[Path, typer.Option(help="A bucket of the train split (`eval make-bucket --split train`)")],
    out_file: Annotated[Path, typer.Option("--out", help="Training chats (JSONL) for `train generator`")],
    pipeline: Annotated[str, typer.Option(help="The pipeline whose generator prompts are recorded")] = "llm",
    missed: Annotated[str, typer.Option(help="Answerable items whose document retrieval missed: skip, or decline (taught to abstain)")] = "skip",
    counterfactual: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of answered items that also get a counterfactual pair: a number asked, stated in the passage (answered) or not (declined)",
        ),
    ] = 0.5,
    seed: Annotated[int, typer.Option(help="Which items get a pair, and its question and fact")] = 0,
    limit: Annotated[int, typer.Option(min=0, help="Only the first N items (0: all)")] = 0,
) -> None:
    """Build the generator's RAG training chats: its real prompts, answered from the right passage or declined."""
    from vlmsearch.cli.eval import _bucket, _settings
    from vlmsearch.eval.answers import eval_engine
    from vlmsearch.finetune.rag_data import counts, rag_examples
    from vlmsearch.vlm.data import write_conversations

    try:
        if missed not in ("skip", "decline"):
            raise VlmsearchError(f"--missed is skip or decline, not {missed!r}")
        loaded = _bucket(bucket, limit)
        with progress_bar() as progress, eval_engine(_settings(), loaded.default_docs, progress=progress) as engine:
            chosen = engine.pipeline(pipeline)
            task = progress.add_task(f"generator prompts ({pipeline})", total=len(loaded.items))
            examples = []
            for item in loaded.items:
                examples += rag_examples(chosen, loaded, item, engine.settings.ingest.max_image_pixels, counterfactual, seed)
                progress.advance(task)
    except VlmsearchError as exc:
        fail(exc)
    kept = [e for e in examples if missed == "decline" or e.kind != "missed"]
    write_conversations([e.conversation for e in kept], out_file)
    found = counts(examples)
    out.print(f"{len(kept)} chats -> {out_file}: answered {found['answered']}, unanswerable (declined) {found['unanswerable']}, "
              f"retrieval missed the document {found['missed']} ({'declined' if missed == 'decline' else 'left out'}); counterfactual: "
              f"fact stated {found['fact stated']}, fact absent (declined) {found['fact absent']}", highlight=False, soft_wrap=True)  # fmt: skip


@train_app.command("sign-data")
def train_sign_data(
    bucket: Annotated[Path, typer.Option(help="A bucket of the train split: its documents are the library the prompts retrieve from")],
    out_file: Annotated[Path, typer.Option("--out", help="Training chats (JSONL) for `train generator`")],
    count: Annotated[int, typer.Option(min=1, help="Signs to render and ask about")] = 150,
    pipeline: Annotated[str, typer.Option(help="The pipeline whose generator prompts are recorded")] = "llm",
    seed: Annotated[int, typer.Option(help="Which signs, values and questions")] = 0,
    other_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of signs asked another kind's value (declined)")] = 0.1,
) -> None:
    """Build sign-reading chats for the generator: the answer is the text in the image, or declined when the sign shows something else."""
    from vlmsearch.cli.eval import _bucket, _settings
    from vlmsearch.eval.answers import eval_engine
    from vlmsearch.finetune.rag_data import counts
    from vlmsearch.finetune.sign_reading import sign_examples
    from vlmsearch.vlm.data import write_conversations

    try:
        loaded = _bucket(bucket, 0)
        with progress_bar() as progress, eval_engine(_settings(), loaded.default_docs, progress=progress) as engine:
            examples = sign_examples(engine.pipeline(pipeline), count, seed, other_share, progress)
    except VlmsearchError as exc:
        fail(exc)
    write_conversations([e.conversation for e in examples], out_file)
    found = counts(examples)
    out.print(f"{len(examples)} chats -> {out_file}: sign read {found['sign read']}, sign not asked (declined) {found['sign not asked']}, "
              f"{count - len(examples)} left out (OCR missed the value, or a passage gave a number)", highlight=False, soft_wrap=True)  # fmt: skip


@train_app.command("generator")
def train_generator_command(
    data: Annotated[list[Path], typer.Option(help="Training chats (JSONL) from `train generator-data`; repeat to mix")],
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder: peft adapter, <name>.gguf for llama.cpp, training.json")],
    name: Annotated[str, typer.Option(help="The adapter's name (its GGUF file)")] = "generator-lora",
    base: Annotated[
        str, typer.Option(help="The LM: the offline GGUF, or a Hugging Face id or folder (Qwen2 family for the GGUF adapter)")
    ] = "bundled:qwen2.5-coder-0.5b-instruct",
    steps: Annotated[int, typer.Option(min=1)] = 100,
    batch_size: Annotated[int, typer.Option(min=1, help="Chats per step (one forward each, gradients summed)")] = 4,
    lr: Annotated[float, typer.Option(help="LoRA learning rate")] = 2e-4,
    rank: Annotated[int, typer.Option(min=1, help="LoRA rank")] = 8,
    save_every: Annotated[int, typer.Option(min=1, help="Steps between saves; a killed run resumes from the last one")] = 25,
    as_json: Annotated[bool, typer.Option("--json", help="Print the training report as JSON")] = False,
) -> None:
    """LoRA task fine-tune of the answer generator (the text LLM) on its own RAG prompts."""
    from dataclasses import asdict

    from vlmsearch.config import default_cache_dir
    from vlmsearch.finetune.generator import GeneratorTrainSettings, train_generator
    from vlmsearch.models.hf import quiet_transformers

    quiet_transformers()
    settings = GeneratorTrainSettings(data=tuple(data), out=out_dir, name=name, base=base, steps=steps, batch_size=batch_size,
                                      lr=lr, rank=rank, alpha=2 * rank, save_every=save_every)  # fmt: skip
    try:
        with progress_bar() as progress:
            report = train_generator(settings, default_cache_dir(), progress)
    except VlmsearchError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(asdict(report), indent=2))
        return
    out.print(f"{report.steps} steps on {report.samples} chats ({report.skipped_too_long} too long); held-out reply loss "
              f"{report.held_out_loss_before:.3f} -> {report.held_out_loss:.3f}", highlight=False)  # fmt: skip
    out.print(f'llama.cpp adapter: {report.gguf}  (serve: [roles.generator] options = {{ lora = "{report.gguf}" }})', markup=False, highlight=False)
