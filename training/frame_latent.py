"""The texture stage's frame code in training: each real frame's texture, encoded.

A scanner's amount and kind of texture varies from scan to scan with what no single B-mode
frame shows: the applied compression, the freehand sequence's increments, slips and reversals,
the noise. A stage scored window by window against its own real window can only learn the
conditional mean of it, and then its draws vary from case to case at a third to a half of the
scanner's (docs/training.md, "Session 16"): a tight synthetic cloud the texture observer cuts
off from a broad real one.

So the stage gets a code per frame (``TextureConfig.frame_latent``), as a conditional VAE's
decoder does, with a fixed encoder in place of a learnt one: the texture observer's statistics
of the real strain over the whole ROI (``texture_stats.texture_statistics``, counts exact),
standardised over the training frames, projected on their first principal components and each
component mapped to N(0, 1) through its rank. The codes are then N(0, 1) in each coordinate
and uncorrelated across coordinates over the training frames, so at inference the stage draws
its code from N(0, I) — the prior matches the training codes' distribution by construction,
with no KL term to balance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import special, stats

from elastogan.models import texture_stats


@dataclass(frozen=True)
class FrameCodes:
    """Codes of a set of frames and how they were made.

    Attributes:
        codes: ``(N, d)`` float32, each column N(0, 1) over the frames by rank.
        explained: ``(d,)`` share of the standardised statistics' variance each component holds.
        loadings: ``(d, len(STATISTICS))`` the components, in units of each statistic's sd.
    """

    codes: np.ndarray
    explained: np.ndarray
    loadings: np.ndarray


def frame_statistics(strain: np.ndarray, *, batch: int = 16) -> np.ndarray:
    """``texture_stats.STATISTICS`` of each frame's strain over where it is defined (the ROI).

    Args:
        strain: ``(N, H, W)`` strain, NaN outside the ROI; every frame defined on at least one
            ``MEDIAN_WINDOW + 2`` square.

    Returns:
        ``(N, len(STATISTICS))`` float64.
    """
    if strain.ndim != 3:
        raise ValueError(f"expected strain (N, H, W), got {strain.shape}")
    out = []
    with torch.no_grad():
        for k in range(0, len(strain), batch):
            x = torch.from_numpy(np.asarray(strain[k : k + batch], np.float32))[:, None]
            mask = torch.isfinite(x).float()
            out.append(texture_stats.texture_statistics(torch.nan_to_num(x), mask, linear=False, hard=True).double())
    s = torch.cat(out).numpy()
    if not np.isfinite(s).all():
        raise ValueError("a frame's texture statistics are not finite (is its ROI smaller than 7×7?)")
    return s


def encode_frames(statistics: np.ndarray, dims: int) -> FrameCodes:
    """The frames' codes: ``statistics`` ``(N, S)`` standardised, projected on their first
    ``dims`` principal components, each component N(0, 1)-scored by rank (``(r − ½)/N``).

    The sign of each component is fixed so that its largest loading is positive (the codes do
    not depend on the SVD's sign convention).

    Example:
        >>> a = np.random.default_rng(0).normal(size=(500, 3))
        >>> f = encode_frames(np.c_[a[:, 0], a[:, 0] + 0.1 * a[:, 1], a[:, 2]], 1)  # two columns move together
        >>> f.codes.shape, f.loadings[0, :2].round(2).tolist(), round(float(f.explained[0]), 2)
        ((500, 1), [0.71, 0.71], 0.67)
    """
    s = np.asarray(statistics, np.float64)
    if s.ndim != 2 or not 1 <= dims <= s.shape[1]:
        raise ValueError(f"expected statistics (N, S) with 1 <= dims <= S, got {s.shape} and dims {dims}")
    if len(s) < 2 * dims + 1:
        raise ValueError(f"{len(s)} frames are too few to encode {dims} dimensions")
    sd = s.std(axis=0)
    z = (s - s.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    _, singular, vt = np.linalg.svd(z, full_matrices=False)
    vt = vt[:dims] * np.sign(vt[:dims][np.arange(dims), np.abs(vt[:dims]).argmax(axis=1)])[:, None]
    scores = z @ vt.T  # (N, dims)
    ranks = stats.rankdata(scores, axis=0)
    codes = special.ndtri((ranks - 0.5) / len(s))
    # the rank scores' own sd is a little below 1 for finite N; unit sd keeps the codes on the prior's scale
    codes = codes / codes.std(axis=0)
    explained = singular[:dims] ** 2 / (singular**2).sum()
    return FrameCodes(codes.astype(np.float32), explained, vt)
