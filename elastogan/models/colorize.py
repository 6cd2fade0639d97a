"""Differentiable strain display in torch: colour map and B-mode blend.

The torch twin of ``elastogan.colormaps.Colormap.colorize`` and ``elastogan.display.blend``,
used by the consistency loss (colouring the strain head must give the E-mode head). It works
in the model's units: B-mode and E-mode in [-1, 1], strain in [0, 1].

Axis legend (einops):
    b   batch
    c   colour channels (RGB)
    h w image rows, columns
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange
from torch import Tensor


def colorize_torch(strain: Tensor, lut: Tensor | np.ndarray) -> Tensor:
    """Colour a strain map by linear interpolation in a colour look-up table.

    With ``N`` rows, strain ``s`` (clipped to [0, 1]) sits at ``p = s (N - 1)``; its colour is
    ``(1 - f) · lut[⌊p⌋] + f · lut[⌊p⌋ + 1]`` with ``f = p - ⌊p⌋``, differentiable in ``s``.

    Args:
        strain: ``(B, 1, H, W)`` relative strain, 0 hard, 1 soft (finite).
        lut: ``(N, 3)`` RGB in [0, 1], ``N ≥ 2``, e.g. ``get_colormap("hitachi").lut()``.

    Returns:
        ``(B, 3, H, W)`` RGB in [0, 1].

    Example:
        >>> lut = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
        >>> colorize_torch(torch.full((1, 1, 1, 1), 0.25), lut).flatten().tolist()
        [0.25, 0.0, 0.75]
    """
    if strain.ndim != 4 or strain.shape[1] != 1:
        raise ValueError(f"expected strain of shape (B, 1, H, W), got {tuple(strain.shape)}")
    lut = torch.as_tensor(lut, dtype=strain.dtype, device=strain.device)
    if lut.ndim != 2 or lut.shape[1] != 3 or lut.shape[0] < 2:
        raise ValueError(f"expected a colour table of shape (N ≥ 2, 3), got {tuple(lut.shape)}")
    n = lut.shape[0]
    pos = strain.clamp(0.0, 1.0) * (n - 1)
    i0 = pos.detach().floor().clamp(max=n - 2).long()
    frac = pos - i0.to(pos.dtype)
    rgb = lut[i0] * (1 - frac[..., None]) + lut[i0 + 1] * frac[..., None]  # (b, 1, h, w, c)
    return rearrange(rgb, "b 1 h w c -> b c h w")


def roi_mask(boxes: Tensor, height: int, width: int) -> Tensor:
    """``(B, 1, H, W)`` float mask, 1 inside each sample's box ``x0, y0, x1, y1`` (end-exclusive)."""
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"expected boxes of shape (B, 4), got {tuple(boxes.shape)}")
    ys = torch.arange(height, device=boxes.device)
    xs = torch.arange(width, device=boxes.device)
    x0, y0, x1, y1 = (rearrange(boxes[:, i], "b -> b 1") for i in range(4))
    inside_y = (ys >= y0) & (ys < y1)  # (b, h)
    inside_x = (xs >= x0) & (xs < x1)  # (b, w)
    mask = rearrange(inside_y, "b h -> b 1 h 1") & rearrange(inside_x, "b w -> b 1 1 w")
    return mask.float()


def blend_torch(bmode: Tensor, color: Tensor, alpha: Tensor | float, roi: Tensor) -> Tensor:
    """E-mode as the scanner draws it: ``(1 - α) · B + α · C`` inside the ROI, grey B-mode outside.

    The formula of ``elastogan.display.blend``, computed in [0, 1] on ``B = (bmode + 1) / 2``
    and returned in [-1, 1] (``2 · out − 1``), without rounding to 8 bits.

    Args:
        bmode: ``(B, 1, H, W)`` in [-1, 1].
        color: ``(B, 3, H, W)`` RGB in [0, 1].
        alpha: colour opacity, a float or ``(B,)``.
        roi: ``(B, 4)`` ROI boxes ``x0, y0, x1, y1``.

    Returns:
        ``(B, 3, H, W)`` E-mode in [-1, 1].
    """
    b, _, h, w = bmode.shape
    if bmode.shape[1] != 1 or color.shape != (b, 3, h, w):
        raise ValueError(f"expected bmode (B, 1, H, W) and color (B, 3, H, W), got {tuple(bmode.shape)} and {tuple(color.shape)}")
    alpha = torch.as_tensor(alpha, dtype=bmode.dtype, device=bmode.device).reshape(-1)
    alpha = rearrange(alpha.expand(b), "b -> b 1 1 1")
    grey = (bmode + 1) / 2
    inside = roi_mask(roi.to(bmode.device), h, w).to(bmode.dtype)
    out = grey + inside * alpha * (color - grey)  # = (1 - α)·grey + α·color inside
    return 2 * out - 1
