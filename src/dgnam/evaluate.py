"""Evaluation: how good a visualization is, measured in a held-out network (the judge)."""

from __future__ import annotations

import torch
from torch import nn

from .imagespace import ImageSpace, convert


@torch.no_grad()
def classify(model: nn.Module, raw: torch.Tensor, space: ImageSpace, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-1 class and its softmax probability of ``model`` on images ``raw`` given in ``space`` (converted to the
    model's own input space, values clamped to the displayable range first, as a saved PNG would be)."""
    model.eval()
    target = model.input_space
    x01 = space.decode(raw).clamp(0, 1)
    dev = next(model.parameters()).device
    classes, probs = [], []
    for i in range(0, len(raw), batch_size):
        x = convert(space.encode(x01[i : i + batch_size]), space, target).to(dev)
        p = model(x).softmax(1)
        pr, c = p.max(1)
        classes.append(c.cpu())
        probs.append(pr.cpu())
    return torch.cat(classes), torch.cat(probs)
