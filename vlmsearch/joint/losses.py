"""Contrastive losses over a batch of image and text embeddings (unit length, (n, d) each).

`positives[i, j]` is True when image i and text j describe the same thing: the diagonal, plus any
pair of the same group (a batch may hold two variants of one drawing, which must not be negatives).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def clip_loss(images: torch.Tensor, texts: torch.Tensor, scale: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric softmax InfoNCE with a learned temperature (Radford et al. 2021), multi-positive."""
    logits = scale.exp().clamp(max=100) * images @ texts.T  # (n, n); 100 is CLIP's cap on the scale
    targets = positives.float()
    image_to_text = -(F.log_softmax(logits, dim=1) * targets / targets.sum(1, keepdim=True)).sum(1)
    text_to_image = -(F.log_softmax(logits, dim=0) * targets / targets.sum(0, keepdim=True)).sum(0)
    return (image_to_text.mean() + text_to_image.mean()) / 2


def siglip_loss(images: torch.Tensor, texts: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """SigLIP's pairwise sigmoid loss (Zhai et al. 2023): every pair is its own binary problem."""
    logits = scale.exp() * images @ texts.T + bias
    signs = positives.float() * 2 - 1  # +1 for matching pairs, -1 for the rest
    return -F.logsigmoid(signs * logits).sum() / len(images)
