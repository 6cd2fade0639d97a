"""Exponential moving average of the generator's weights (StyleGAN, Karras et al.).

``ema = decay · ema + (1 − decay) · current`` after every optimiser step; buffers are copied.
Inference and validation use the EMA generator: it is smoother than the last iterate of an
adversarial game.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(generator: nn.Module) -> nn.Module:
    """A frozen copy of ``generator`` in eval mode."""
    ema = copy.deepcopy(generator).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, generator: nn.Module, decay: float) -> None:
    """Move ``ema`` towards ``generator`` by ``1 − decay``; copy buffers as they are."""
    for e, g in zip(ema.parameters(), generator.parameters()):
        e.lerp_(g.detach(), 1.0 - decay)
    for e, g in zip(ema.buffers(), generator.buffers()):
        e.copy_(g)
