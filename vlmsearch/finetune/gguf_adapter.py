"""A peft LoRA as a llama.cpp adapter file (GGUF, float16), so the quantised GGUF model serves it unchanged.

llama.cpp finds each adapter pair by the base tensor's GGUF name plus `.lora_a` / `.lora_b` and
scales it by alpha / rank, as peft does. Written for Qwen2-family models (the offline generator):
llama.cpp stores their projections as transformers does; Llama-family q/k rows are permuted in
GGUF and would need their B matrices permuted too, so other families are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SUPPORTED = {"qwen2": "QWEN2"}


def write_lora_gguf(peft_model, path: Path) -> Path:
    """The model's LoRA weights as a llama.cpp adapter; returns the path."""
    import gguf

    from vlmsearch.errors import BadInputError

    config = peft_model.base_model.model.config
    if config.model_type not in SUPPORTED:
        raise BadInputError(f"a llama.cpp adapter is written for {', '.join(SUPPORTED)} models, not {config.model_type!r}")
    lora = peft_model.peft_config["default"]
    names = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, SUPPORTED[config.model_type]), config.num_hidden_layers)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch=config.model_type)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(lora.lora_alpha))
    written = 0
    for name, module in peft_model.named_modules():
        if "default" not in getattr(module, "lora_A", {}):
            continue
        base = name.removeprefix("base_model.model.") + ".weight"
        target = names.get_name(base, try_suffixes=(".weight",))
        if target is None:
            raise BadInputError(f"no llama.cpp tensor for {base}")
        writer.add_tensor(f"{target}.lora_a", module.lora_A["default"].weight.detach().float().numpy().astype(np.float16))
        writer.add_tensor(f"{target}.lora_b", module.lora_B["default"].weight.detach().float().numpy().astype(np.float16))
        written += 1
    if not written:
        raise BadInputError("the model has no LoRA weights to write")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(path)
    return path
