"""In-process GGUF chat models through llama-cpp-python (text only)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from vlmsearch.config import ModelSpec
from vlmsearch.errors import MissingDependencyError, MissingWeightsError
from vlmsearch.models.protocols import GenerationOptions, Message, check_images_allowed
from vlmsearch.models.registry import register
from vlmsearch.models.serial import FairLock


@contextlib.contextmanager
def _stderr_silenced():
    """llama.cpp writes a line per adapter tensor it cannot place in its repacked CPU buffers (a
    harmless fallback) straight to file descriptor 2, whatever `verbose` says: 168 lines per load."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class LlamaCppChat:
    accepts_images = False

    def __init__(
        self, path: Path, name: str | None = None, n_ctx: int = 4096, n_threads: int | None = None, flash_attn: bool = True,
        lora: Path | str | None = None,
    ):  # fmt: skip
        try:
            from llama_cpp import Llama
        except ImportError:
            raise MissingDependencyError("llama-cpp-python", "GGUF chat models") from None
        if not path.is_file():
            raise MissingWeightsError(f"GGUF file not found: {path}")
        if lora is not None and not Path(lora).is_file():
            raise MissingWeightsError(f"LoRA adapter (GGUF) not found: {lora}; `vlmsearch train generator` writes one")
        self.name = f"{name or path.stem} + {Path(lora).stem}" if lora else name or path.stem
        self.path = path
        self._turn = FairLock()
        with _stderr_silenced() if lora else contextlib.nullcontext():
            self._llm = Llama(
                # flash attention: prompt processing 183 -> 222 tokens/s on 2 cores (Qwen 0.5B, 1,400 tokens)
                model_path=str(path), n_ctx=n_ctx, n_threads=n_threads or os.cpu_count(), flash_attn=flash_attn, verbose=False,
                lora_path=str(lora) if lora else None,  # a llama.cpp adapter GGUF (finetune/gguf_adapter.py)
            )  # fmt: skip

    def stream(self, messages: Sequence[Message], options: GenerationOptions = GenerationOptions()) -> Iterator[str]:
        check_images_allowed(self, messages)
        # One llama.cpp context: concurrent callers take turns, in arrival order. The turn lasts until
        # the reply ends or its reader stops reading (closing this generator releases it).
        with self._turn:
            chunks = self._llm.create_chat_completion(
                messages=[{"role": m.role, "content": m.text} for m in messages],
                max_tokens=options.max_tokens,
                temperature=options.temperature,
                stop=list(options.stop) or None,
                stream=True,
            )
            for chunk in chunks:
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece


@register("llamacpp", "chat", "generator")
def _gguf_file(spec: ModelSpec, cache_dir: Path) -> LlamaCppChat:
    return LlamaCppChat(Path(spec.model).expanduser(), **spec.options)
