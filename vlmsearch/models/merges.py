"""What `vlmsearch setup` merges ahead: the (GGUF model, LoRA adapter) pairs a profile's roles serve
merged. Its own module, above both chat backends (bundled and llamacpp), so neither imports the other
back."""

from __future__ import annotations

from pathlib import Path

from vlmsearch.config import ModelSpec
from vlmsearch.errors import MissingWeightsError


def served_merge(spec: ModelSpec, cache_dir: Path) -> tuple[Path, Path] | None:
    """The (GGUF model, LoRA adapter) that a role built from `spec` serves merged, or None: what
    `vlmsearch setup` merges ahead, so that the first answer does not wait for it. Resolved as the
    role's factory resolves them (the bundled chat model and a shipped adapter by name)."""
    lora = spec.options.get("lora")
    if not lora or not spec.options.get("merge_lora", True):
        return None
    if spec.backend == "llamacpp":
        model, adapter = Path(spec.model).expanduser(), Path(lora).expanduser()
    elif spec.backend == "bundled":
        from vlmsearch.models.bundled import bundled_chat_files  # lazy: loads no model code until asked

        model, adapter = bundled_chat_files(spec, cache_dir)
    else:
        return None
    for path, what in ((model, "GGUF file"), (adapter, "LoRA adapter (GGUF)")):
        if not path.is_file():
            raise MissingWeightsError(f"{what} not found: {path}")
    return model, adapter
