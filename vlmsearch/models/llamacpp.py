"""In-process GGUF chat models through llama-cpp-python (text only)."""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

from vlmsearch.config import ModelSpec
from vlmsearch.errors import MissingDependencyError, MissingWeightsError
from vlmsearch.models.gguf_merge import merged_gguf
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


class _Context:
    """One llama.cpp model and context over a GGUF file, shared by every chat on it while any holds
    it: a generator with an unmerged LoRA (`merge_lora = false`) and the plain rephraser keep one
    copy of the weights and one KV cache, not two. The adapter is switched per turn, and only when
    it changes."""

    def __init__(self, path: Path, n_ctx: int, n_threads: int, flash_attn: bool):
        from llama_cpp import Llama

        self.turn = FairLock()  # one llama.cpp context: callers take turns, in arrival order
        # flash attention: prompt processing 183 -> 222 tokens/s on 2 cores (Qwen 0.5B, 1,400 tokens)
        self.llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, flash_attn=flash_attn, verbose=False)
        self._adapters: dict[Path, object] = {}
        self._active: object | None = None
        self._loading = threading.Lock()

    def adapter(self, path: Path):
        """A llama.cpp adapter GGUF (finetune/gguf_adapter.py), loaded once; llama.cpp frees it with the model."""
        import llama_cpp

        with self._loading:
            if path not in self._adapters:
                with _stderr_silenced():
                    adapter = llama_cpp.llama_adapter_lora_init(self.llm.model, str(path).encode())
                if adapter is None:
                    raise MissingWeightsError(f"LoRA adapter {path} does not fit {self.llm.model_path}")
                self._adapters[path] = adapter
            return self._adapters[path]

    def use(self, adapter) -> None:
        """Apply `adapter` (None: the plain model); hold `turn` while calling."""
        import ctypes

        import llama_cpp

        if adapter is self._active:
            return
        if adapter is None:
            failed = llama_cpp.llama_set_adapters_lora(self.llm.ctx, None, 0, None)
        else:
            failed = llama_cpp.llama_set_adapters_lora(self.llm.ctx, (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter), 1, (ctypes.c_float * 1)(1.0))
        if failed:
            raise RuntimeError(f"llama.cpp could not switch the LoRA adapter of {self.llm.model_path}")
        self.llm.reset()  # the cached prompt's keys and values were computed under the other weights
        self._active = adapter


_contexts: weakref.WeakValueDictionary[tuple, _Context] = weakref.WeakValueDictionary()
_contexts_lock = threading.Lock()


def _shared_context(path: Path, n_ctx: int, n_threads: int, flash_attn: bool) -> _Context:
    key = (path.resolve(), n_ctx, n_threads, flash_attn)
    with _contexts_lock:
        context = _contexts.get(key)
        if context is None:
            context = _contexts[key] = _Context(path, n_ctx, n_threads, flash_attn)
        return context


class LlamaCppChat:
    accepts_images = False
    constrains_json = True  # llama.cpp turns a JSON Schema into a grammar: every reply parses and validates

    def __init__(
        self, path: Path, name: str | None = None, n_ctx: int = 4096, n_threads: int | None = None, flash_attn: bool = True,
        lora: Path | str | None = None, merge_lora: bool = True, merged_dir: Path | None = None,
    ):  # fmt: skip
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            raise MissingDependencyError("llama-cpp-python", "GGUF chat models") from None
        if not path.is_file():
            raise MissingWeightsError(f"GGUF file not found: {path}")
        if lora is not None and not Path(lora).is_file():
            raise MissingWeightsError(f"LoRA adapter (GGUF) not found: {lora}; `vlmsearch train generator` writes one")
        self.name = f"{name or path.stem} + {Path(lora).stem}" if lora else name or path.stem
        if lora and merge_lora:
            # Merged, the adapter costs no prompt time (unmerged: ~40% more); a second copy of the weights is the price.
            path, lora = merged_gguf(path, Path(lora), merged_dir or path.parent), None
        self.path = path
        self._context = _shared_context(path, n_ctx, n_threads or os.cpu_count(), flash_attn)
        self._adapter = self._context.adapter(Path(lora).resolve()) if lora else None

    def stream(self, messages: Sequence[Message], options: GenerationOptions = GenerationOptions()) -> Iterator[str]:
        check_images_allowed(self, messages)
        # The turn lasts until the reply ends or its reader stops reading (closing this generator releases it).
        with self._context.turn:
            self._context.use(self._adapter)
            chunks = self._context.llm.create_chat_completion(
                messages=[{"role": m.role, "content": m.text} for m in messages],
                max_tokens=options.max_tokens,
                temperature=options.temperature,
                stop=list(options.stop) or None,
                response_format={"type": "json_object", "schema": options.json_schema} if options.json_schema else None,
                stream=True,
            )
            for chunk in chunks:
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece


@register("llamacpp", "chat", "generator")
def _gguf_file(spec: ModelSpec, cache_dir: Path) -> LlamaCppChat:
    return LlamaCppChat(Path(spec.model).expanduser(), merged_dir=cache_dir / "models", **spec.options)
