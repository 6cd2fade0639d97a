"""Composite strain from the pairs of a freehand sequence: normalise, weight, gate.

Axis legend: ``P`` frame pairs, ``H, W`` display rows and columns.

A strain scanner does not display one pre/post pair. It normalises each pair's strain (the
hand compresses by a different amount each time), averages pairs with weights that favour
well-tracked, consistent ones, and blanks or fills what it does not trust:

- **Normalisation** (Lindop, Treece, Gee and Prager, "An intelligent interface for freehand
  strain imaging", Ultrasound Med Biol 34:1117–1128, 2008): each pair's strain divided by its
  robust mean, the median over its better-tracked half, so compressions and releases of any size
  share one scale.
- **Quality weighting** (Jiang and Hall 2007; Jiang et al., IEEE TUFFC 53:1088–1097, 2006: the
  correlation of the motion-compensated frames predicts the strain image's quality): each pixel
  of each pair weighted by its displacement quality (peak NCC) to the power ``quality_power``.
- **Persistence** (Lindop et al. 2008): a pair's pixel counts less the further it departs from
  the median of the pairs at that pixel, ``exp(−½((n_p − median)/persistence_width)²)``, so a
  frame-to-frame inconsistency (a peak hop, a decorrelated pair) is out-voted.
- **Gating**: pixels whose composite quality falls below ``gate`` are not shown as measured.
  Small drop-outs are filled from trusted neighbours by normalised convolution (Knutsson and
  Westin 1993: Gaussian-weighted mean of the trusted pixels, weighted by their quality); where
  too little trusted tissue surrounds them (``min_support``: a cyst's interior, a shadow) the
  raw composite stays — the decorrelation noise a scanner shows there, which is what gives
  cysts their characteristic pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Composite:
    strain: np.ndarray  # (H, W) float32 composite strain, gated and filled, in the pairs' typical strain
    raw: np.ndarray  # (H, W) float32 composite before gating
    quality: np.ndarray  # (H, W) float32 in [0, 1]
    gated: np.ndarray  # (H, W) bool: below the quality gate (filled or left raw)
    scales: np.ndarray  # (P,) each pair's robust mean strain (its normalisation)
    pair_weights: np.ndarray  # (P,) each pair's share of the total weight


def robust_mean(strain: np.ndarray, quality: np.ndarray) -> float:
    """Median strain over the better-tracked half of the pixels (quality ≥ its median)."""
    good = quality >= np.median(quality)
    return float(np.median(strain[good]))


def compound(strains: np.ndarray, qualities: np.ndarray, *, quality_power: float = 2.0, persistence_width: float = 0.35,
             gate: float = 0.5, fill_sigma_px: float = 6.0, min_support: float = 0.3) -> Composite:
    """Quality- and persistence-weighted composite of per-pair strain images, gated by quality.

    Args:
        strains: (P, H, W) per-pair strain on one grid, compressive positive.
        qualities: (P, H, W) per-pair displacement quality in [0, 1] (peak NCC).
        quality_power: exponent of the quality weight.
        persistence_width: σ of the persistence weight, in normalised strain (1 = the pair's mean).
        gate: composite quality below which a pixel is gated.
        fill_sigma_px: σ of the Gaussian neighbourhood that fills gated pixels, in pixels.
        min_support: least trusted share of that neighbourhood for a fill; below it the raw
            composite stays.

    Returns:
        :class:`Composite`; its strain is the normalised composite times the median absolute
        pair scale (so it reads as the strain of a typical pair).
    """
    if strains.ndim != 3 or strains.shape != qualities.shape:
        raise ValueError(f"expected strains and qualities of one (P, H, W) shape, got {strains.shape} and {qualities.shape}")
    if persistence_width <= 0 or fill_sigma_px <= 0 or quality_power < 0:
        raise ValueError(f"persistence_width and fill_sigma_px must be positive and quality_power ≥ 0, got "
                         f"{persistence_width}, {fill_sigma_px}, {quality_power}")
    q = np.clip(qualities.astype(np.float64), 0.0, 1.0)
    scales = np.array([robust_mean(s, qq) for s, qq in zip(strains, q)])
    usable = np.abs(scales) > 1e-6
    if not usable.any():
        raise ValueError("every pair's robust mean strain is zero: nothing to normalise by")
    n = strains[usable] / scales[usable, None, None]  # (P', H, W) normalised strain
    q = q[usable]
    med = np.median(n, axis=0)
    persistence = np.exp(-0.5 * ((n - med[None]) / persistence_width) ** 2)
    w = q**quality_power * persistence
    w_sum = w.sum(axis=0)
    raw = np.where(w_sum > 1e-9, (w * n).sum(axis=0) / np.maximum(w_sum, 1e-9), med)
    quality = np.where(w_sum > 1e-9, (w * q).sum(axis=0) / np.maximum(w_sum, 1e-9), 0.0)
    gated = quality < gate
    trusted = (~gated).astype(np.float64)
    num = ndimage.gaussian_filter(raw * trusted * quality, fill_sigma_px, mode="nearest")
    den = ndimage.gaussian_filter(trusted * quality, fill_sigma_px, mode="nearest")
    support = ndimage.gaussian_filter(trusted, fill_sigma_px, mode="nearest")
    fill = gated & (support >= min_support) & (den > 1e-9)
    out = raw.copy()
    out[fill] = num[fill] / den[fill]
    typical = float(np.median(np.abs(scales[usable])))
    pair_w = np.zeros(len(scales))
    pair_w[usable] = w.sum(axis=(1, 2)) / max(w.sum(), 1e-12)
    return Composite(strain=(out * typical).astype(np.float32), raw=(raw * typical).astype(np.float32),
                     quality=quality.astype(np.float32), gated=gated, scales=scales, pair_weights=pair_w)
