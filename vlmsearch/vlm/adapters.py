"""The two adapter families between an image encoder's feature grid and a causal LM.

- Prompt-based: an MLP projector (LLaVA-1.5, arXiv:2310.03744) over the grid average-pooled to
  `side x side` tokens, which enter the LM's input sequence like words. Pooling is the knob on how
  much LM context an image takes.
- Cross-attention-based: a perceiver resampler (Flamingo, arXiv:2204.14198) turns the grid into a
  few latents, and gated cross-attention blocks inserted before some LM layers attend to them. No
  image tokens take LM context; the gates start at zero, so the LM starts exactly as it was.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def grid_tokens(feature_maps: torch.Tensor, side: int) -> torch.Tensor:
    """(n, C, H, W) encoder grid -> (n, side*side, C) tokens, average-pooled."""
    pooled = F.adaptive_avg_pool2d(feature_maps, side)  # (n, C, side, side)
    return pooled.flatten(2).transpose(1, 2)  # (n, side*side, C)


class MLPProjector(nn.Module):
    def __init__(self, encoder_dim: int, lm_dim: int, side: int):
        super().__init__()
        self.side = side
        self.norm = nn.LayerNorm(encoder_dim)
        self.mlp = nn.Sequential(nn.Linear(encoder_dim, lm_dim), nn.GELU(), nn.Linear(lm_dim, lm_dim))

    def forward(self, feature_maps: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.norm(grid_tokens(feature_maps, self.side)))  # (n, side*side, lm_dim)


class _Attention(nn.Module):
    """Pre-norm multi-head attention of queries over keys/values, plus a feed-forward block."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm_q, self.norm_kv = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def attend(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(context)
        return self.attention(self.norm_q(queries), kv, kv, need_weights=False)[0]


class PerceiverResampler(nn.Module):
    """`latents` learnt queries read the whole grid (and themselves), `depth` times."""

    def __init__(self, encoder_dim: int, lm_dim: int, latents: int, depth: int = 2, heads: int = 8):
        super().__init__()
        self.project = nn.Linear(encoder_dim, lm_dim)
        self.latents = nn.Parameter(torch.randn(latents, lm_dim) * lm_dim**-0.5)
        self.layers = nn.ModuleList(_Attention(lm_dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(lm_dim)

    def forward(self, feature_maps: torch.Tensor) -> torch.Tensor:
        grid = self.project(grid_tokens(feature_maps, feature_maps.shape[-1]))  # (n, H*W, lm_dim)
        x = self.latents.expand(len(grid), -1, -1)  # (n, latents, lm_dim)
        for layer in self.layers:
            x = x + layer.attend(x, torch.cat([grid, x], dim=1))  # Flamingo: keys are grid + latents
            x = x + layer.ff(layer.norm_ff(x))
        return self.norm(x)  # (n, latents, lm_dim)


class GatedCrossAttention(_Attention):
    """Flamingo's gated xattn-dense block: text states attend to image latents, tanh(0) = 0 at start."""

    def __init__(self, dim: int, heads: int):
        super().__init__(dim, heads)
        self.attention_gate = nn.Parameter(torch.zeros(1))
        self.ff_gate = nn.Parameter(torch.zeros(1))

    def forward(self, hidden: torch.Tensor, media: torch.Tensor) -> torch.Tensor:
        hidden = hidden + torch.tanh(self.attention_gate) * self.attend(hidden, media)  # (n, t, dim)
        return hidden + torch.tanh(self.ff_gate) * self.ff(self.norm_ff(hidden))


class WithCrossAttention(nn.Module):
    """An LM decoder layer with a gated cross-attention block in front of it.

    The media (resampled image latents) are set on the block before each LM call; a text-only call
    (media None) passes straight through, so the same LM serves text and images."""

    def __init__(self, layer: nn.Module, block: GatedCrossAttention):
        super().__init__()
        self.layer, self.block = layer, block
        self.media: torch.Tensor | None = None

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        if self.media is not None:
            hidden_states = self.block(hidden_states, self.media.to(hidden_states.dtype))
        return self.layer(hidden_states, *args, **kwargs)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:  # the LM reads attributes of its layers (attention_type, ...)
            return getattr(super().__getattr__("layer"), name)
