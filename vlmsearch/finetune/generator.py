"""`vlmsearch train generator`: a LoRA task fine-tune of the text LLM that writes the answers.

The base is the offline profile's Qwen2.5 0.5B (its GGUF dequantised for training) or any Hugging Face
causal LM. The data is the generator's own prompts (`train generator-data`); only the reply is scored,
and only its positions' logits are computed: a 150k-word vocabulary over a 600-token prompt would
otherwise be a third of the work. Each conversation is its own forward (prompts differ in length by
hundreds of tokens; padding them would waste more than batching saves), gradients summed over
`batch_size`. A run saves every `save_every` steps and resumes where it stopped (vlm/state.py).

Out: the peft adapter (transformers serves it), `<name>.gguf` (llama.cpp serves it over the quantised
model: `[roles.chat] options = { lora = "<path>" }`), and training.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict

from vlmsearch.errors import BadInputError
from vlmsearch.finetune.gguf_adapter import write_lora_gguf
from vlmsearch.vlm.data import load_conversations
from vlmsearch.vlm.model import BUNDLED_LM, IGNORE
from vlmsearch.vlm.state import STATE_FILE, batch_at, save_state, start_or_resume
from vlmsearch.vlm.train import encode, is_held_out

REPORT_FILE = "training.json"
# Attention and MLP projections of the decoder layers (Qwen2, Llama, Gemma names).
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class GeneratorTrainSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    data: tuple[Path, ...]
    out: Path
    name: str = "generator-lora"
    base: str = BUNDLED_LM  # the offline GGUF, or a Hugging Face id or folder
    rank: int = 8  # ~4.4M weights: a 9 MB adapter in float16
    alpha: int = 16
    dropout: float = 0.05
    steps: int = 100
    batch_size: int = 4
    lr: float = 2e-4
    max_tokens: int = 2048  # a longer chat is skipped, never cut (the reply is at its end)
    held_out: float = 0.05
    save_every: int = 25
    seed: int = 0


@dataclass
class GeneratorTrainReport:
    adapter: str  # the peft folder
    gguf: str  # the llama.cpp adapter
    steps: int
    samples: int
    skipped_too_long: int
    held_out_loss_before: float  # the base model's loss on the held-out replies
    held_out_loss: float
    trainable_parameters: int
    samples_per_second: float | None
    losses: list[float] = field(default_factory=list)


def base_folder(base: str, cache_dir: Path) -> str:
    """A transformers checkpoint of the base: the bundled GGUF is dequantised once, beside it."""
    if base != BUNDLED_LM:
        return base
    from vlmsearch.models.assets import qwen_gguf
    from vlmsearch.vlm.model import dequantised_lm

    gguf = qwen_gguf(cache_dir)
    return str(dequantised_lm(gguf.parent, gguf.name))


def load_for_training(settings: GeneratorTrainSettings, cache_dir: Path):
    """(peft model, tokenizer): fresh LoRA weights; a resumed run's come from its state file."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vlmsearch.models.hf import load_pretrained

    folder = base_folder(settings.base, cache_dir)
    tokenizer = load_pretrained(lambda: AutoTokenizer.from_pretrained(folder), folder, "generator tokenizer")
    lm = load_pretrained(lambda: AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), folder, "generator")
    torch.manual_seed(settings.seed)  # the LoRA's initial weights: a run is a function of its seed
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout, target_modules=TARGETS)
    return get_peft_model(lm, config), tokenizer


def reply_loss(model, ids: list[int], labels: list[int]) -> torch.Tensor:
    """Mean cross-entropy of the reply's tokens (the labelled tail), from their logits alone."""
    n = sum(label != IGNORE for label in labels)
    logits = model(input_ids=torch.tensor([ids]), logits_to_keep=n + 1).logits[0, :-1]
    return F.cross_entropy(logits.float(), torch.tensor(ids[-n:]))


def held_out_loss(model, encoded: list[tuple[list[int], list[int]]], progress=None, what: str = "held-out loss") -> float:
    """Mean reply loss over the held-out chats (a minute or two on the 0.5B: shown as a progress task)."""
    if not encoded:
        return float("nan")
    task = progress.add_task(what, total=len(encoded)) if progress else None
    losses = []
    model.eval()
    with torch.no_grad():
        for ids, labels in encoded:
            losses.append(reply_loss(model, ids, labels).item())
            if progress:
                progress.advance(task)
    return float(np.mean(losses))


def _base_loss(settings: GeneratorTrainSettings, model, held, progress) -> float:
    """The untrained model's held-out loss; a resumed run reads it back (its weights have moved since)."""
    report = settings.out / REPORT_FILE
    if (settings.out / STATE_FILE).is_file() and report.is_file():
        saved = json.loads(report.read_text()).get("held_out_loss_before")
        if saved is not None:
            return saved
    return held_out_loss(model, held, progress, "held-out loss of the base")


def train_generator(settings: GeneratorTrainSettings, cache_dir: Path, progress=None) -> GeneratorTrainReport:
    conversations = [c for path in settings.data for c in load_conversations(path)]
    if any(c.image is not None for c in conversations):
        raise BadInputError("the generator is a text LLM: its training chats carry no image")
    loading = progress.add_task("loading the generator", total=None) if progress else None
    model, tokenizer = load_for_training(settings, cache_dir)
    if progress:
        progress.remove_task(loading)
    encoded = [(c, encode(tokenizer, c.messages, settings.max_tokens + 1)) for c in conversations]
    fitting = [(c, e) for c, e in encoded if len(e[0]) <= settings.max_tokens]
    train_set = [e for c, e in fitting if not is_held_out(c, settings.held_out)]
    held = [e for c, e in fitting if is_held_out(c, settings.held_out)] or train_set[:1]
    if not train_set:
        raise BadInputError(f"no training chat fits {settings.max_tokens} tokens")
    before = _base_loss(settings, model, held, progress)

    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    optimizer, step, losses = start_or_resume(settings.out, named, settings.lr, settings.seed)
    task = progress.add_task("training the generator", total=settings.steps, completed=step) if progress else None
    started, trained = time.perf_counter(), 0
    model.train()
    while step < settings.steps:
        optimizer.zero_grad()
        loss = 0.0
        for ids, labels in batch_at(train_set, settings.batch_size, settings.seed, step):
            sample = reply_loss(model, ids, labels) / settings.batch_size
            sample.backward()
            loss += sample.item()
        torch.nn.utils.clip_grad_norm_(list(named.values()), 1.0)
        optimizer.step()
        step, trained = step + 1, trained + settings.batch_size
        losses.append(round(loss, 4))
        if progress:
            progress.update(task, advance=1, description=f"training the generator (loss {loss:.3f})")
        if step % settings.save_every == 0 or step == settings.steps:
            save_state(settings.out, named, optimizer, step, losses)
            _write_report(settings, {"held_out_loss_before": before})  # a resumed run keeps the base's loss
    seconds = time.perf_counter() - started
    after = held_out_loss(model, held, progress, "held-out loss after training")
    model.save_pretrained(settings.out / "adapter")
    tokenizer.save_pretrained(settings.out / "adapter")
    gguf = write_lora_gguf(model, settings.out / f"{settings.name}.gguf")
    report = GeneratorTrainReport(
        adapter=str(settings.out / "adapter"), gguf=str(gguf), steps=len(losses), samples=len(train_set),
        skipped_too_long=len(encoded) - len(fitting), held_out_loss_before=round(before, 4), held_out_loss=round(after, 4),
        trainable_parameters=sum(p.numel() for p in named.values()),
        samples_per_second=round(trained / seconds, 3) if trained else None, losses=losses,
    )  # fmt: skip
    _write_report(settings, asdict(report))
    return report


def _write_report(settings: GeneratorTrainSettings, report: dict) -> None:
    settings.out.mkdir(parents=True, exist_ok=True)
    (settings.out / REPORT_FILE).write_text(json.dumps({"settings": settings.model_dump(mode="json"), **report}, indent=2))
