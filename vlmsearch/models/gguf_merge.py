"""A LoRA adapter merged into its GGUF model, so llama.cpp serves one set of weights.

llama.cpp runs an unmerged adapter as two extra small matrix products beside each projection, which
cost the offline generator ~40% more prompt time on 2 cores. Merging adds scale * B @ A into each
dequantised weight and quantises it again as Q8_0: its step (max/127 per 32 weights) keeps the
small LoRA delta that the base's Q4/Q5 steps would round away. Tensors the adapter does not touch
are copied byte for byte.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vlmsearch.errors import MissingWeightsError


def merged_path(base: Path, adapter: Path, folder: Path) -> Path:
    """Where the merge of `adapter` into `base` is kept: named by both, keyed by the adapter's bytes."""
    digest = hashlib.sha256(adapter.read_bytes()).hexdigest()[:12]
    return folder / f"{base.stem}+{adapter.stem}-{digest}.gguf"


def merged_gguf(base: Path, adapter: Path, folder: Path, on_tensor: Callable[[int, int], None] | None = None) -> Path:
    """The merged model's path, merging on first use (written aside and renamed: a killed merge leaves no bad model)."""
    target = merged_path(base, adapter, folder)
    if not target.is_file():
        partial = target.with_suffix(f".part{os.getpid()}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _merge(base, adapter, partial, on_tensor)
            partial.replace(target)
        except OSError as exc:  # a full disk, a folder we may not write
            raise MissingWeightsError(
                f"could not write the merged model {target.name} in {folder}: {exc.strerror or exc} (it needs more than "
                f"{base.stat().st_size >> 20} MB free there; or serve the adapter per turn: merge_lora = false)"
            ) from None
        finally:
            if partial.exists():
                partial.unlink()
    # Merges of an earlier version of the adapter (same names, other bytes) are 625 MB each that
    # nothing reads once the package is upgraded.
    for stale in folder.glob(f"{base.stem}+{adapter.stem}-*.gguf"):
        if stale != target:
            stale.unlink(missing_ok=True)
    return target


def _lora_pairs(adapter: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], float]:
    import gguf

    try:
        reader = gguf.GGUFReader(adapter)
    except (ValueError, OSError) as exc:
        raise MissingWeightsError(f"{adapter} is not a GGUF file: {exc}") from None
    alpha_field = reader.fields.get(gguf.Keys.Adapter.LORA_ALPHA)
    if alpha_field is None:
        raise MissingWeightsError(f"{adapter} is not a LoRA adapter GGUF (no {gguf.Keys.Adapter.LORA_ALPHA})")
    alpha = float(alpha_field.contents())
    halves = {t.name: np.asarray(t.data, dtype=np.float32) for t in reader.tensors}
    pairs = {}
    for name, a in halves.items():
        if name.endswith(".lora_a"):
            target = name.removesuffix(".lora_a")
            pairs[target] = (a, halves[target + ".lora_b"])  # A: (rank, in), B: (out, rank)
    return pairs, alpha


def _merge(base: Path, adapter: Path, out: Path, on_tensor: Callable[[int, int], None] | None) -> None:
    import gguf
    from gguf.quants import dequantize, quantize

    pairs, alpha = _lora_pairs(adapter)
    reader = gguf.GGUFReader(base)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(str(out), arch=arch)
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == gguf.Keys.General.ARCHITECTURE:
            continue  # the writer writes these itself
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
    unmatched = set(pairs) - {t.name for t in reader.tensors}
    if unmatched:
        raise MissingWeightsError(f"LoRA adapter {adapter} does not fit {base}: no tensor {sorted(unmatched)[0]}")
    for done, tensor in enumerate(reader.tensors, 1):
        if tensor.name in pairs:
            a, b = pairs[tensor.name]
            weight = dequantize(tensor.data, tensor.tensor_type).reshape(b.shape[0], a.shape[1])
            weight += (alpha / a.shape[0]) * (b @ a)
            merged = quantize(weight, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(tensor.name, merged, raw_shape=merged.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(tensor.name, tensor.data, raw_shape=tensor.data.shape, raw_dtype=tensor.tensor_type)
        if on_tensor:
            on_tensor(done, len(reader.tensors))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
