"""Calibration of a sampling generator: does its per-pixel sd say where it is wrong?

K draws of one B-mode give a per-pixel mean ``m`` and sd ``s`` (``elastogan.uncertainty``).
Against the real strain ``r`` of the case (inside the ROI):

* **coverage** of the ``level`` predictive interval: the fraction of pixels with
  ``lo ≤ r ≤ hi``. A calibrated sampler covers ``level`` of them (the goal for 90 %: 85–95 %);
  fewer means over-confident samples, more means under-confident ones.
* **sd–error correlation**: Spearman's ρ over the pixels between ``s`` and ``|m − r|``; and
  across cases, between a case's mean sd and ``1 − NCC(m, r)``. Near 0: the sd is noise;
  the goal is above 0.3.

The interval is the Gaussian *predictive* interval of one more draw, not the empirical
quantiles of the K draws: ``m ± t(K−1, (1+level)/2) · s · √(1 + 1/K)`` with ``s`` the sd of
the draws (``ddof = 1``). For a real value that is one more draw of the same Gaussian it
covers exactly ``level`` at any K (Student 1908; e.g. Geisser 1993, *Predictive Inference*
§2.1), whereas the quantiles of K = 8 draws cover at most ``(K − 1)/(K + 1) = 78 %`` even
for a perfect sampler (the chance that one more exchangeable draw falls between the
smallest and the largest of K).

All functions are pure; a value that is undefined (too few pixels, a constant map) raises
:class:`elastogan.eval.metrics.MetricError` with the reason.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

from elastogan.eval.metrics import MetricError


def _masked(mask: np.ndarray | None, *maps: np.ndarray) -> np.ndarray:
    """Boolean map of the pixels inside ``mask`` where every map is finite."""
    shape = maps[0].shape
    for m in maps:
        if m.shape != shape:
            raise ValueError(f"expected maps of one shape, got {shape} and {m.shape}")
    valid = np.ones(shape, bool)
    for m in maps:
        valid &= np.isfinite(m)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != shape or mask.dtype != bool:
            raise ValueError(f"expected a boolean mask of shape {shape}, got {mask.dtype} {mask.shape}")
        valid &= mask
    return valid


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's rank correlation: the Pearson correlation of the ranks (ties get their mean rank).

    Raises:
        MetricError: fewer than 3 pairs, or either side constant.

    Example:
        >>> spearman([1, 2, 3, 4], [10, 20, 30, 1000]), spearman([1, 2, 3], [3, 2, 1])
        (1.0, -1.0)
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"expected paired values, got {x.size} and {y.size}")
    if x.size < 3:
        raise MetricError(f"a rank correlation needs at least 3 pairs, got {x.size}")
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    dx, dy = rx - rx.mean(), ry - ry.mean()
    sx, sy = float(dx @ dx), float(dy @ dy)
    for name, energy in (("first", sx), ("second", sy)):
        if energy == 0.0:
            raise MetricError(f"rank correlation undefined: the {name} variable is constant ({x.size} values)")
    return float(np.clip((dx @ dy) / math.sqrt(sx * sy), -1.0, 1.0))


def interval_coverage(real: np.ndarray, lo: np.ndarray, hi: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Fraction of the pixels (inside ``mask``, finite in all three maps) with ``lo ≤ real ≤ hi``.

    Raises:
        MetricError: no such pixel.

    Example:
        >>> interval_coverage(np.array([0.1, 0.5, 0.9, 0.3]), np.full(4, 0.2), np.full(4, 0.6))
        0.5
    """
    real, lo, hi = (np.asarray(a, dtype=np.float64) for a in (real, lo, hi))
    valid = _masked(mask, real, lo, hi)
    n = int(valid.sum())
    if n == 0:
        raise MetricError("coverage needs at least 1 finite pixel inside the mask, got 0")
    r = real[valid]
    return float(np.count_nonzero((lo[valid] <= r) & (r <= hi[valid])) / n)


def sd_error_spearman(real: np.ndarray, mean: np.ndarray, sd: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Spearman's ρ over the pixels between the samples' sd and the mean's error ``|mean − real|``.

    Raises:
        MetricError: fewer than 3 pixels, or a constant sd (a deterministic model) or error.
    """
    real, mean, sd = (np.asarray(a, dtype=np.float64) for a in (real, mean, sd))
    valid = _masked(mask, real, mean, sd)
    return spearman(sd[valid], np.abs(mean[valid] - real[valid]))


def sd_ncc_spearman(sd_means: Sequence[float | None], nccs: Sequence[float | None]) -> float:
    """Across cases: Spearman's ρ between a case's mean sd and ``1 − NCC`` of its sample mean.

    Cases where either value is missing or not finite are left out.

    Raises:
        MetricError: fewer than 3 cases with both values, or either side constant.
    """
    if len(sd_means) != len(nccs):
        raise ValueError(f"expected one sd and one NCC per case, got {len(sd_means)} and {len(nccs)}")
    pairs = [(s, 1.0 - c) for s, c in zip(sd_means, nccs)
             if s is not None and c is not None and math.isfinite(s) and math.isfinite(c)]
    if len(pairs) < 3:
        raise MetricError(f"the sd–NCC correlation needs at least 3 cases with both values, got {len(pairs)}")
    return spearman([p[0] for p in pairs], [p[1] for p in pairs])
