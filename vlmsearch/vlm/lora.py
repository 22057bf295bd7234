"""LoRA fine-tuning of a Hugging Face VLM (SmolVLM, Qwen2-VL, LLaVA, ...) through peft.

`vlmsearch train vlm --adapter lora --lm <hub id or folder>`: the same command, stages and data as
our own VLM, but the trainable part is low-rank adapters on the language model's attention and MLP
projections; the vision tower stays frozen. Since the LM itself learns, text-only conversations
train too (they keep its text skills during SFT). The output folder is a peft adapter plus the
base model's processor; `[roles.vlm] backend = "transformers"` with `model = <folder>` serves it
(models/hf.py loads the base named in adapter_config.json and applies the adapter).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from vlmsearch.images import load_image
from vlmsearch.vlm.data import Conversation
from vlmsearch.vlm.model import IGNORE
from vlmsearch.vlm.state import STATE_FILE, batch_at, save_state, start_or_resume

# The language model's projections in every family we serve (Llama, Qwen2, SmolLM, Gemma); the
# vision tower's layers have other names (q_proj in SigLIP too, hence the language-model prefix).
TARGETS = r".*(language_model|text_model|model\.layers).*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


class LoRASettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    base: str  # a Hugging Face VLM id or local folder
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05


def load_lora_model(settings: LoRASettings, resume_from=None):
    """The base VLM and its processor, with fresh LoRA weights or those of a run to resume."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlmsearch.models.hf import load_pretrained

    processor = load_pretrained(lambda: AutoProcessor.from_pretrained(settings.base), settings.base, "VLM processor")
    base = load_pretrained(lambda: AutoModelForImageTextToText.from_pretrained(settings.base, dtype=torch.float32),
                           settings.base, "VLM")  # fmt: skip
    if resume_from is not None:
        return PeftModel.from_pretrained(base, str(resume_from), is_trainable=True), processor
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout, target_modules=TARGETS)
    return get_peft_model(base, config), processor


def _chat(conversation: Conversation, upto: int | None = None) -> list[dict]:
    """The processor's chat format; the image goes with the first user turn."""
    chat, image_placed = [], conversation.image is None
    for m in conversation.messages[:upto]:
        parts = [{"type": "text", "text": m["content"]}]
        if m["role"] == "user" and not image_placed:
            parts.insert(0, {"type": "image"})
            image_placed = True
        chat.append({"role": m["role"], "content": parts})
    return chat


def encode(processor, conversation: Conversation, max_tokens: int) -> dict:
    """Processor inputs with labels that score only the final assistant reply."""
    images = [load_image(conversation.image).convert("RGB")] if conversation.image is not None else None
    prompt = processor.apply_chat_template(_chat(conversation, -1), add_generation_prompt=True)
    full = processor.apply_chat_template(_chat(conversation))
    prompt_length = processor(text=prompt, images=images, return_tensors="pt")["input_ids"].shape[1]
    inputs = dict(processor(text=full, images=images, return_tensors="pt"))
    labels = inputs["input_ids"].clone()
    labels[:, :prompt_length] = IGNORE
    inputs["labels"] = labels
    if inputs["input_ids"].shape[1] > max_tokens + prompt_length:  # cut the reply, never the image tokens
        for key in ("input_ids", "attention_mask", "labels"):
            inputs[key] = inputs[key][:, : max_tokens + prompt_length]
    return inputs


def train_lora(settings, train_set: list[Conversation], held_out: list[Conversation], progress=None) -> dict:
    """The LoRA loop: one conversation per forward, gradients summed over `batch_size` of them
    (VLM processors pad images and text unevenly, so per-sample steps keep it simple and exact)."""
    resume = (settings.out / STATE_FILE).is_file()
    model, processor = load_lora_model(settings.lora, settings.out if resume else settings.init)
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    trainable = list(named.values())
    optimizer, step, losses = start_or_resume(settings.out, named, settings.lr, settings.seed)
    task = progress.add_task(f"training lora ({settings.stage})", total=settings.steps, completed=step) if progress else None
    model.train()
    started, trained = time.perf_counter(), 0

    def save() -> None:
        model.save_pretrained(settings.out)
        processor.save_pretrained(settings.out)
        save_state(settings.out, named, optimizer, step, losses)

    while step < settings.steps:
        batch = batch_at(train_set, settings.batch_size, settings.seed, step)
        optimizer.zero_grad()
        loss = 0.0
        for conversation in batch:
            sample = model(**encode(processor, conversation, settings.max_tokens)).loss / len(batch)
            sample.backward()
            loss += sample.item()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        step, trained = step + 1, trained + len(batch)
        losses.append(round(loss, 4))
        if progress:
            progress.update(task, advance=1, description=f"training lora ({settings.stage}, loss {loss:.3f})")
        if step % settings.save_every == 0 or step == settings.steps:
            save()
    seconds = time.perf_counter() - started
    model.eval()
    with torch.no_grad():
        held = [model(**encode(processor, c, settings.max_tokens)).loss.item() for c in held_out]
    save()
    image_token = getattr(model.config, "image_token_id", None) or getattr(model.config, "image_token_index", None)
    with_image = next((c for c in train_set if c.image is not None), None)
    image_tokens = int((encode(processor, with_image, settings.max_tokens)["input_ids"] == image_token).sum()) if with_image else 0
    return {
        "image_context_tokens": image_tokens,
        "held_out_loss": round(float(np.mean(held)), 4) if held else float("nan"),
        "losses": losses, "steps": step,
        "trainable_parameters": sum(p.numel() for p in trainable),
        "samples_per_second": round(trained / seconds, 3) if trained else None,
    }  # fmt: skip
