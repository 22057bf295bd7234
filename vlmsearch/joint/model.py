"""Two trainable heads over two frozen towers: a joint image-text space (CLIP, arXiv:2103.00020).

The towers are any image embedder and any text embedder of the registry (offline: EfficientNet-Lite0
and all-MiniLM-L6-v2); only the heads and the temperature are trained, on cached tower features, so
training takes minutes on a CPU. A checkpoint is `config.json` + `model.safetensors` and says which
towers it needs.

When the image tower is also a classifier, its class probabilities give a prior: the probability-
weighted mean of the class names' text embeddings is already a zero-shot joint space (a photo the
tower calls 'tabby cat' lands near the text 'cat'). The image head learns a correction on top of
that prior, starting from zero. At inference the correction is scaled by `correction_scale`, chosen
on held-out data: output-space interpolation between the zero-shot and the fine-tuned model
(WiSE-FT, Wortsman et al. 2022, arXiv:2109.01903), which keeps most of the fine-tuning gain on the
training domain (clip art) and more of the prior's sense outside it (photos).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn

from vlmsearch.config import ModelSpec
from vlmsearch.errors import MissingWeightsError

Loss = Literal["clip", "siglip"]
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


class JointConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str  # what stores record as the embedder of their `joint` column
    image_tower: ModelSpec = ModelSpec(backend="bundled", model="efficientnet-lite0")
    text_tower: ModelSpec = ModelSpec(backend="bundled", model="all-minilm-l6-v2")
    image_features: int = 1280  # the towers' output sizes
    text_features: int = 384
    dim: int = 384  # the joint space; equal to text_features, the text head starts as the identity
    hidden: int = 1024  # the image head's hidden layer
    classes: int = 0  # the image tower's classes used as a prior (0: none); its features end with their probabilities
    correction_scale: float = 1.0  # weight of the learnt correction over the prior at inference (training: 1)
    dropout: float = 0.1
    loss: Loss = "siglip"


class JointHeads(nn.Module):
    """The trainable part: image MLP, text linear map, temperature (and SigLIP's bias)."""

    def __init__(self, config: JointConfig) -> None:
        super().__init__()
        self.config = config
        self.image = nn.Sequential(
            nn.LayerNorm(config.image_features),  # scale-free: normalised or raw tower features both work
            nn.Linear(config.image_features, config.hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.dim),
        )
        self.text = nn.Linear(config.text_features, config.dim)
        if config.classes:
            # Text-tower embeddings of the class names, filled in by training and saved with the heads.
            self.register_buffer("class_text", torch.zeros(config.classes, config.text_features))
            nn.init.zeros_(self.image[-1].weight)  # start exactly at the prior
            nn.init.zeros_(self.image[-1].bias)
        if config.dim == config.text_features:
            # Start from the text tower's own space: its sense of which words are close is what lets
            # held-out queries (words never seen in training) land near the right images.
            nn.init.eye_(self.text.weight)
            nn.init.zeros_(self.text.bias)
        # Initial temperature and bias from the papers: CLIP 1/0.07; SigLIP t' = log 10, b = -10.
        scale = math.log(1 / 0.07) if config.loss == "clip" else math.log(10.0)
        self.logit_scale = nn.Parameter(torch.tensor(scale))
        self.logit_bias = nn.Parameter(torch.tensor(-10.0 if config.loss == "siglip" else 0.0))

    def embed_images(self, features: torch.Tensor) -> torch.Tensor:
        """(n, image_features [+ classes]) -> (n, dim), unit length."""
        if not self.config.classes:
            return F.normalize(self.image(features), dim=-1)
        pooled, probabilities = features[:, : self.config.image_features], features[:, self.config.image_features :]
        prior = F.normalize(probabilities @ self.class_text, dim=-1)  # (n, text_features): the zero-shot guess
        scale = 1.0 if self.training else self.config.correction_scale
        return F.normalize(scale * self.image(pooled) + self.text(prior), dim=-1)

    def embed_texts(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(features), dim=-1)  # (n, text_features) -> (n, dim), unit length


@torch.no_grad()
def merge_heads(members: list[JointHeads]) -> JointHeads:
    """One set of heads whose outputs, before normalising, are the average of the members' (trained
    with other seeds): exactly, so an ensemble costs one wider hidden layer and nothing else.

    The image MLPs sit side by side (each member's LayerNorm scale and shift folded into its first
    layer, so one plain LayerNorm serves all), their last layers averaged; the linear text maps and
    the temperatures are averaged. On val, 3 members: MRR 0.313 -> 0.357 (docs: the lab notebook)."""
    first = members[0].config
    config = first.model_copy(update={"hidden": sum(m.config.hidden for m in members)})
    merged = JointHeads(config)
    norm, up, down = merged.image[0], merged.image[1], merged.image[4]
    norm.weight.fill_(1.0)
    norm.bias.zero_()
    ups, biases, downs = [], [], []
    for member in members:
        member_norm, member_up, member_down = member.image[0], member.image[1], member.image[4]
        ups.append(member_up.weight * member_norm.weight)  # W (g * x + b) + c = (W g) x + (W b + c)
        biases.append(member_up.weight @ member_norm.bias + member_up.bias)
        downs.append(member_down.weight / len(members))
    up.weight.copy_(torch.cat(ups))
    up.bias.copy_(torch.cat(biases))
    down.weight.copy_(torch.cat(downs, dim=1))
    down.bias.copy_(torch.stack([m.image[4].bias for m in members]).mean(0))
    state = merged.state_dict()
    for name in ("text.weight", "text.bias", "logit_scale", "logit_bias", *(("class_text",) if config.classes else ())):
        state[name].copy_(torch.stack([m.state_dict()[name] for m in members]).mean(0))
    return merged


def save_heads(heads: JointHeads, out: Path) -> Path:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(heads.config.model_dump(mode="json"), indent=2) + "\n")
    # Half precision on disk halves the package; the heads compute in float32 (load_heads).
    save_file({k: v.detach().half().contiguous() for k, v in heads.state_dict().items()}, str(out / WEIGHTS_FILE))
    return out


def load_heads(checkpoint: Path) -> JointHeads:
    from safetensors.torch import load_file

    if not (checkpoint / CONFIG_FILE).is_file() or not (checkpoint / WEIGHTS_FILE).is_file():
        raise MissingWeightsError(
            f"{checkpoint}: not a joint-embedding checkpoint (needs {CONFIG_FILE} and {WEIGHTS_FILE}); make one with `vlmsearch train contrastive`"
        )
    config = JointConfig.model_validate_json((checkpoint / CONFIG_FILE).read_text())
    heads = JointHeads(config)
    heads.load_state_dict({k: v.float() for k, v in load_file(str(checkpoint / WEIGHTS_FILE)).items()})
    return heads.eval().requires_grad_(False)
