"""Validation during training: NCC of the strain head inside the ROI, and a sample grid.

The score that picks ``best.pt`` is the mean over val cases of the zero-mean NCC between the
generated and the real mapped strain inside the ROI (``elastogan.models.losses.ncc``, the
reference paper's Fig. 5 metric), of one draw per case with fixed noise seeds (the case's
index) for a generator that samples, so that scores at different steps see the same noise.
The full evaluation (NCC on E-mode luminance, SSIM, lesion
metrics…) is ``elastogan evaluate``'s job; this is the cheap signal for model selection.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from elastogan.display import render_emode
from elastogan.models.losses import ncc
from elastogan.predict import pad_to_multiple


@torch.no_grad()
def validate(generator: nn.Module, loader, device: torch.device, autocast) -> dict[str, float]:
    """``val/ncc_strain`` (mean), ``val/ncc_strain_sd`` and ``val/mae_strain`` over ``loader``."""
    generator.eval()
    nccs, maes = [], []
    seen = 0
    for batch in loader:
        bmode = batch["bmode"].to(device)
        h, w = bmode.shape[-2:]
        seeds = list(range(seen, seen + bmode.shape[0]))
        seen += bmode.shape[0]
        with autocast():
            strain = generator(pad_to_multiple(bmode, generator.divisor), noise_seeds=seeds)["strain"]
        strain = strain[..., :h, :w].float()
        real, mask = batch["strain"].to(device), batch["strain_mask"].to(device)
        nccs.append(ncc(strain, real, mask).cpu())
        mae = ((strain - real).abs() * mask).sum((1, 2, 3)) / mask.sum((1, 2, 3)).clamp_min(1)
        maes.append(mae.cpu())
    n = torch.cat(nccs).double()
    return {
        "val/ncc_strain": float(n.mean()),
        "val/ncc_strain_sd": float(n.std(unbiased=True)) if len(n) > 1 else 0.0,
        "val/mae_strain": float(torch.cat(maes).double().mean()),
    }


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` in [-1, 1] → H×W×3 uint8."""
    arr = ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()
    arr = np.moveaxis(arr, 0, -1)
    return np.repeat(arr, 3, axis=-1) if arr.shape[-1] == 1 else arr


@torch.no_grad()
def sample_grid(generator: nn.Module, dataset, count: int, colormap: str, device: torch.device, autocast) -> np.ndarray:
    """Rows of B-mode | real E-mode | E-mode head | E-mode drawn from the strain head.

    Uses the first ``count`` cases of ``dataset`` (their own size, padded for the network).
    """
    generator.eval()
    rows = []
    for i in range(min(count, len(dataset))):
        s = dataset[i]
        bmode = s["bmode"][None].to(device)
        h, w = bmode.shape[-2:]
        with autocast():
            out = generator(pad_to_multiple(bmode, generator.divisor), noise_seeds=[i])
        emode = out["emode"][0, :, :h, :w]
        strain = out["strain"][0, 0, :h, :w].float().cpu().numpy()
        b8 = _to_uint8(s["bmode"])[..., 0]
        drawn = render_emode(b8, strain, tuple(int(v) for v in s["roi"]), colormap=colormap, alpha=float(s["alpha"]))
        rows.append(np.concatenate([_to_uint8(s["bmode"]), _to_uint8(s["emode"]), _to_uint8(emode), drawn], axis=1))
    widths = {r.shape[1] for r in rows}
    if len(widths) > 1:  # frames of several sizes: pad rows to one width
        wmax = max(widths)
        rows = [np.pad(r, ((0, 0), (0, wmax - r.shape[1]), (0, 0))) for r in rows]
    return np.concatenate(rows, axis=0)
