"""VisionLanguageModel: a frozen image encoder's feature grid + a trainable adapter + a causal LM.

The encoder runs outside the module (its grids can be cached for training); the LM is any
`transformers` causal LM, offline the Qwen2.5-Coder-0.5B GGUF loaded as a torch module. With the
encoder and the LM frozen, a checkpoint holds only the adapter: `config.json` + `adapter.safetensors`.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from vlmsearch.config import ModelSpec
from vlmsearch.errors import MissingWeightsError
from vlmsearch.vlm.adapters import (
    GatedCrossAttention,
    MLPProjector,
    PerceiverResampler,
    WithCrossAttention,
)
from vlmsearch.vlm.joint_tokens import JointProjector, JointView, load_joint_view

# The trigram rule should apply to new tokens only (the prompt is embeddings, image tokens first):
# what transformers warns about on every call is what we want.
warnings.filterwarnings("ignore", message=".*no_repeat_ngram_size.*inputs_embeds", category=UserWarning)

CONFIG_FILE, ADAPTER_FILE = "config.json", "adapter.safetensors"
IGNORE = -100  # label of positions that carry no loss (image tokens, prompts)
FROZEN = ("lm.", "joint_view.")  # state that comes from elsewhere, never saved with the adapter


class VLMConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    lm: str  # a Hugging Face id, a local folder, or `bundled:<name>` for the offline chat model's GGUF
    lm_gguf_file: str | None = None  # a GGUF file inside `lm`, dequantised on load
    encoder: ModelSpec = ModelSpec(backend="bundled", model="efficientnet-lite0")
    encoder_dim: int = 1280  # channels of the encoder's grid
    adapter: Literal["mlp", "cross_attention"] = "mlp"
    image_side: int = 4  # mlp: the grid is pooled to side x side image tokens in the LM's context
    latents: int = 8  # cross_attention: resampled image latents the LM attends to
    cross_attention_every: int = 4  # cross_attention: a gated block before every n-th LM layer
    heads: int = 8
    joint_tokens: int = 0  # image tokens from the joint heads' embedding, in front of the grid's (vlm/joint_tokens.py)
    joint: ModelSpec = ModelSpec(backend="bundled", model="joint-openclipart-siglip-ens")  # those heads, on `encoder`


BUNDLED_LM = "bundled:qwen2.5-coder-0.5b-instruct"
Precision = Literal["auto", "bf16", "fp32"]


def bf16_is_fast(device: str = "cpu") -> bool:
    """Whether bfloat16 matmuls run natively here; elsewhere they are emulated, slower than fp32."""
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def load_lm(config: VLMConfig, cache_dir: Path | None = None):
    """The frozen LM and its tokenizer. `bundled:` names the offline GGUF, assembled in the cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vlmsearch.models.hf import load_pretrained

    folder, gguf = config.lm, config.lm_gguf_file
    if folder == BUNDLED_LM:
        from vlmsearch.config import default_cache_dir
        from vlmsearch.models.assets import qwen_gguf

        path = qwen_gguf(cache_dir or default_cache_dir())
        folder, gguf = str(path.parent), path.name
    elif folder.startswith("bundled:"):
        raise MissingWeightsError(f"unknown bundled LM {folder!r}; known: {BUNDLED_LM}")
    if gguf:
        folder, gguf = str(dequantised_lm(Path(folder), gguf)), None
    tokenizer = load_pretrained(lambda: AutoTokenizer.from_pretrained(folder), folder, "VLM tokenizer")
    lm = load_pretrained(lambda: AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), folder, "VLM language model")
    return lm.eval().requires_grad_(False), tokenizer


def dequantised_lm(folder: Path, gguf: str) -> Path:
    """A GGUF LM as a transformers checkpoint beside it, written once: dequantising takes ~40 s on
    2 cores, reading the result back ~2 s (the price: the fp32 weights on disk, ~2 GB for 0.5B)."""
    import shutil
    import tempfile

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vlmsearch.models.hf import load_pretrained

    target = folder / f"{Path(gguf).stem}-dequantised"
    if (target / "config.json").is_file():
        return target
    lm = load_pretrained(lambda: AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf, dtype=torch.float32),
                         str(folder / gguf), "VLM language model")  # fmt: skip
    tokenizer = load_pretrained(lambda: AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf), str(folder / gguf), "VLM tokenizer")
    from safetensors.torch import save_model

    with tempfile.TemporaryDirectory(dir=folder, prefix=".dequantising-") as scratch:
        # save_pretrained refuses models loaded from GGUF; the weights are plain fp32 tensors by now.
        config = lm.config.to_dict()
        config.pop("quantization_config", None)
        (Path(scratch) / "config.json").write_text(json.dumps(config, indent=2))
        save_model(lm, str(Path(scratch) / "model.safetensors"))  # handles the tied embedding and head
        tokenizer.save_pretrained(scratch)
        try:
            Path(scratch).rename(target)  # atomic: a killed run leaves no half-written checkpoint behind
        except OSError:  # another process finished first
            shutil.rmtree(scratch, ignore_errors=True)
    return target


class VisionLanguageModel(nn.Module):
    def __init__(self, config: VLMConfig, lm, tokenizer, joint_view: JointView | None = None):
        super().__init__()
        self.config, self.lm, self.tokenizer = config, lm, tokenizer
        self.autocast = False  # bf16 autocast around the LM (lm_in_bfloat16)
        width = lm.config.hidden_size
        self.joint_view: JointView | None = None
        if config.joint_tokens:
            if joint_view is None:
                raise ValueError(f"{config.name}: {config.joint_tokens} joint tokens need the joint view (VisionLanguageModel.build)")
            self.joint_view, self.joint_projector = joint_view, JointProjector(joint_view.dim, width, config.joint_tokens)
        if config.adapter == "mlp":
            self.adapter = MLPProjector(config.encoder_dim, width, config.image_side)
        else:
            self.adapter = PerceiverResampler(config.encoder_dim, width, config.latents, heads=config.heads)
            layers = lm.model.layers
            self.blocks = nn.ModuleList()
            for i in range(0, len(layers), config.cross_attention_every):
                self.blocks.append(GatedCrossAttention(width, config.heads))
                layers[i] = WithCrossAttention(layers[i], self.blocks[-1])

    @classmethod
    def build(cls, config: VLMConfig, cache_dir: Path | None = None) -> VisionLanguageModel:
        """A new, untrained adapter on the config's frozen LM (and joint heads, for joint tokens)."""
        return cls(config, *load_lm(config, cache_dir), joint_view=_joint_view(config, cache_dir))

    def add_joint_tokens(self, tokens: int, cache_dir: Path | None = None, joint: ModelSpec | None = None) -> VisionLanguageModel:
        """Grow a trained adapter by `tokens` joint tokens (new, trained from here on) from the heads
        `joint` (default: the config's); the rest stays."""
        if self.config.joint_tokens:
            raise ValueError(f"{self.config.name} already has {self.config.joint_tokens} joint tokens")
        config = self.config.model_copy(update={"joint_tokens": tokens, "joint": joint or self.config.joint})
        self.joint_view = _joint_view(config, cache_dir)  # first: heads that do not fit leave the model as it was
        self.config = config
        self.joint_projector = JointProjector(self.joint_view.dim, self.lm.config.hidden_size, tokens)
        return self

    def set_precision(self, precision: Precision) -> VisionLanguageModel:
        if precision == "bf16" or (precision == "auto" and bf16_is_fast(self.lm.device.type)):
            return self.lm_in_bfloat16()
        return self

    def lm_in_bfloat16(self) -> VisionLanguageModel:
        """Hold the frozen LM's weights in bfloat16 and run under autocast: on CPUs with bf16 units
        (AVX512-BF16, AMX) training runs 2.3-2.5x faster than fp32, the loss within 0.002 on a probe
        batch. The adapter and cross-attention blocks keep fp32 weights, so AdamW updates stay exact."""
        for name, parameter in self.lm.named_parameters():
            if ".block." not in name:
                parameter.data = parameter.data.to(torch.bfloat16)
        self.autocast = True
        return self

    def _precision(self):
        if not self.autocast:
            return contextlib.nullcontext()
        return torch.autocast(self.lm.device.type, dtype=torch.bfloat16)

    @property
    def image_context_tokens(self) -> int:
        """LM context positions one image takes: the article's trade-off between the two adapters."""
        return self.config.image_side**2 + self.config.joint_tokens if self.config.adapter == "mlp" else 0

    def _set_media(self, media: torch.Tensor | None) -> None:
        for layer in self.lm.model.layers:
            if isinstance(layer, WithCrossAttention):
                layer.media = media

    def _image_tokens(self, grids: torch.Tensor) -> torch.Tensor:
        """(n, tokens, width): the joint tokens, if any, then the adapter's (grid tokens or latents)."""
        tokens = self.adapter(grids)
        if not self.config.joint_tokens:
            return tokens
        return torch.cat([self.joint_projector(self.joint_view(grids)).to(tokens.dtype), tokens], dim=1)

    def _inputs(self, grids: torch.Tensor | None, input_ids, attention_mask, labels=None) -> dict:
        """LM keyword arguments: image tokens in front of the text (mlp) or image latents to attend to."""
        if grids is None or self.config.adapter == "cross_attention":
            self._set_media(None if grids is None else self._image_tokens(grids))
            return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        self._set_media(None)
        images = self._image_tokens(grids)  # (n, joint + side*side, width)
        text = self.lm.get_input_embeddings()(input_ids)  # (n, t, width)
        n, count = images.shape[:2]
        mask = torch.cat([attention_mask.new_ones(n, count), attention_mask], dim=1)
        if labels is not None:
            labels = torch.cat([labels.new_full((n, count), IGNORE), labels], dim=1)
        return {"inputs_embeds": torch.cat([images, text], dim=1), "attention_mask": mask, "labels": labels}

    def forward(self, grids: torch.Tensor | None, input_ids, attention_mask, labels=None):
        with self._precision():
            return self.lm(**self._inputs(grids, input_ids, attention_mask, labels))

    def reply_logprobs(self, grids: torch.Tensor | None, input_ids, attention_mask, labels) -> torch.Tensor:
        """(n,): each row's summed log-probability of its labelled tokens (the reply), as DPO compares them."""
        with self._precision():
            inputs = self._inputs(grids, input_ids, attention_mask, labels)
            labels = inputs.pop("labels")
            logits = self.lm(**inputs).logits
        targets = labels[:, 1:]
        scored = targets != IGNORE
        # Only the reply's positions: a full-vocabulary log-softmax over the prompt would be most of the cost.
        logprobs = logits[:, :-1][scored].float().log_softmax(-1).gather(1, targets[scored][:, None])[:, 0]
        return logprobs.new_zeros(len(labels)).index_add(0, scored.nonzero()[:, 0], logprobs)

    def prompt(self, messages: list[dict]) -> dict:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)

    def stream(self, grids: torch.Tensor | None, messages: list[dict], max_new_tokens: int = 64, temperature: float = 0.0) -> Iterator[str]:
        """The reply to a chat, piece by piece; `grids` is (1, C, H, W) or None for text only."""
        from vlmsearch.models.hf import stream_generation

        prompt = self.prompt(messages)
        with self._precision():
            inputs = {k: v for k, v in self._inputs(grids, prompt["input_ids"], prompt["attention_mask"]).items() if k != "labels"}
        pad = self.tokenizer.pad_token_id or self.tokenizer.eos_token_id
        # From embeddings (mlp), generate() returns only new tokens: there is no prompt to skip.
        # A small VLM out of its domain (a photo for our clip-art model) loops ("a person, a person,
        # ..."); forbidding repeated trigrams ends such a reply instead of feeding the loop onward.
        yield from stream_generation(
            self.lm,
            self.tokenizer,
            inputs,
            max_new_tokens,
            temperature,
            skip_prompt="input_ids" in inputs,
            pad_token_id=pad,
            context=self._precision,
            no_repeat_ngram_size=3,
        )

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen parts: the adapter (and cross-attention blocks, joint projector)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(FROZEN)}

    def save_pretrained(self, out: Path) -> Path:
        from safetensors.torch import save_file

        out.mkdir(parents=True, exist_ok=True)
        # Each file written aside and renamed: a run killed mid-save keeps the last whole checkpoint.
        config = out / (CONFIG_FILE + ".partial")
        config.write_text(json.dumps(self.config.model_dump(mode="json"), indent=2) + "\n")
        weights = out / (ADAPTER_FILE + ".partial")
        save_file({k: v.detach().contiguous() for k, v in self.trainable_state().items()}, str(weights))
        config.replace(out / CONFIG_FILE)
        weights.replace(out / ADAPTER_FILE)
        return out

    @classmethod
    def from_pretrained(cls, checkpoint: Path, cache_dir: Path | None = None) -> VisionLanguageModel:
        from safetensors.torch import load_file

        if not (checkpoint / CONFIG_FILE).is_file() or not (checkpoint / ADAPTER_FILE).is_file():
            raise MissingWeightsError(f"{checkpoint}: not a VLM checkpoint (needs {CONFIG_FILE} and {ADAPTER_FILE})")
        config = VLMConfig.model_validate_json((checkpoint / CONFIG_FILE).read_text())
        model = cls.build(config, cache_dir)
        missing = model.load_state_dict(load_file(str(checkpoint / ADAPTER_FILE)), strict=False)
        if missing.unexpected_keys or any(not k.startswith(FROZEN) for k in missing.missing_keys):
            raise MissingWeightsError(f"{checkpoint}: adapter weights do not match its config ({missing})")
        return model.eval()


def _joint_view(config: VLMConfig, cache_dir: Path | None) -> JointView | None:
    if not config.joint_tokens:
        return None
    from vlmsearch.config import default_cache_dir

    return load_joint_view(config.joint, config.encoder, cache_dir or default_cache_dir())
