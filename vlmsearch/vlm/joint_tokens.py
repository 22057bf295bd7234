"""More visual signal into the adapter: the joint image-text heads' embedding of the image as extra
image tokens, in front of the grid's.

The heads were trained contrastively on titles (`vlmsearch train contrastive`), far longer than the
adapter trains on captions, and name held-out drawings more often than our VLM's captions do. Both
come from the same frozen encoder pass: the heads take the grid's pooled features and the encoder's
class probabilities, so the VLM still takes grids only and nothing changes for the data, the cache
or the chat. Measured on the offline adapter, two such tokens bought nothing that as many more
training steps without them did not (docs: the lab notebook): they are an option, not in the shipped
checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vlmsearch.config import ModelSpec
from vlmsearch.errors import ConfigError
from vlmsearch.models.registry import build_model


class JointView(nn.Module):
    """Frozen: (n, C, H, W) encoder grids -> (n, dim) unit-length joint image embeddings."""

    def __init__(self, embedder, encoder: ModelSpec):
        super().__init__()
        tower = embedder.image_tower
        if embedder.heads.config.image_tower != encoder or not hasattr(tower, "features_from_grid"):
            raise ConfigError(
                f"joint tokens read the VLM encoder's grid: the joint model {embedder.name!r} must sit on that encoder "
                f"({encoder.model} {encoder.options or ''}, as it sees images), whose pooled features come from its grid; "
                "train such heads with `vlmsearch train contrastive` and pass them with --joint"
            )
        self.heads = embedder.heads
        self._tower = tower  # not a submodule: its weights are the frozen encoder's, never saved with the adapter
        self.dim = embedder.dim
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> JointView:
        return super().train(False)  # always as at inference: no dropout, the heads' own correction scale

    def forward(self, grids: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), torch.autocast(grids.device.type, enabled=False):
            features, probabilities = self._tower.features_from_grid(grids.float())
            if self.heads.config.classes:
                features = torch.cat([features, probabilities], dim=1)
            return self.heads.embed_images(features)


class JointProjector(nn.Module):
    """(n, dim) joint embeddings -> (n, tokens, lm_dim). The last layer starts at zero, so a
    checkpoint that grows these tokens starts out saying what it said before, near enough."""

    def __init__(self, dim: int, lm_dim: int, tokens: int):
        super().__init__()
        self.tokens = tokens
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, lm_dim), nn.GELU(), nn.Linear(lm_dim, lm_dim * tokens))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, joint: torch.Tensor) -> torch.Tensor:
        return self.mlp(joint).unflatten(-1, (self.tokens, -1))


def load_joint_view(spec: ModelSpec, encoder: ModelSpec, cache_dir: Path) -> JointView:
    return JointView(build_model("image_text", spec, cache_dir), encoder)
