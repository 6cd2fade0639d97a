"""Interpretable texture features of one map, the inputs of the texture observer.

A generator trained with a pixel loss outputs something close to the conditional mean of the
scanner's strain: the right shapes, without the estimator's texture. Each feature below
measures one kind of texture a reader could point at. All are per-pixel means or shares, so
maps of different ROI sizes compare; the spectral shares, ``local_sd_ratio``,
``outlier_fraction``, ``anisotropy`` and the autocorrelations are also free of the strain scale
(unchanged by ``a·m + b``). Every feature is finite for any finite map of at least 8×8 pixels;
a constant map gets ``CONSTANT``.

Axis legend: ``h`` rows (depth, the probe's axis), ``w`` columns (lateral).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from elastogan.eval.authenticity.maps import check_map, check_maps
from elastogan.eval.authenticity.spectrum import periodogram

# Radial frequency bands (cycles/pixel) of the relative band powers; the last one runs to the
# corners of the spectrum (0.5·√2).
BANDS = ((0.0, 1 / 16), (1 / 16, 1 / 8), (1 / 8, 1 / 4), (1 / 4, np.inf))
LOCAL_WINDOWS = (3, 7)
# A step of a tenth of the display range between neighbouring pixels: an edge a reader sees
# as sharp. Strain and E-mode luminance both run over [0, 1].
STRONG_EDGE = 0.1
# An outlier departs from the 5×5 median-filtered map by more than 3 robust sd of the map's
# neighbour-to-neighbour steps (1.4826 · median |step|, the sd of a normal). Scaling by the
# steps, not by the residuals' own MAD: a smooth map's residuals are all tiny curvature, and
# against their own MAD a twentieth of them would count. Measured: white noise ~0.01 %, a
# smooth map 0, the simulated scanner's strain ~2 %, the FEM strain ~0.5 %.
OUTLIER_SD, MAD_TO_SD, MEDIAN_WINDOW = 3.0, 1.4826, 5
GLCM_LEVELS = 16

FEATURES: dict[str, str] = {
    "band_power_coarse": "fraction of the map's spectral power below 1/16 cycle/pixel (Hann window, mean removed)",
    "band_power_medium": "fraction of spectral power in 1/16–1/8 cycle/pixel",
    "band_power_fine": "fraction of spectral power in 1/8–1/4 cycle/pixel",
    "band_power_finest": "fraction of spectral power above 1/4 cycle/pixel: pixel-scale noise",
    "local_sd_3": "mean standard deviation in 3×3 windows (strain units)",
    "local_sd_7": "mean standard deviation in 7×7 windows",
    "local_sd_ratio": "local_sd_3 / local_sd_7: share of local variation at the finest scale",
    "gradient_mean": "mean gradient magnitude per pixel (central differences)",
    "strong_edge_fraction": f"fraction of pixels whose gradient magnitude exceeds {STRONG_EDGE} per pixel",
    "outlier_fraction": (f"fraction of pixels that depart from the {MEDIAN_WINDOW}×{MEDIAN_WINDOW} median-filtered map "
                         f"by more than {OUTLIER_SD:g} robust sd of neighbour steps: decorrelation speckle, "
                         "peak-hopping streaks"),
    "anisotropy": ("(Ex − Ey)/(Ex + Ey) with Ex, Ey the lateral and axial gradient energies: > 0 when structures "
                   "run vertically, as the scanner's streaks along the beam do"),
    "autocorrelation_lateral": "lag-1 correlation of neighbouring pixels along a row",
    "autocorrelation_axial": "lag-1 correlation of neighbouring pixels along a column",
    "glcm_homogeneity": (f"GLCM homogeneity, mean 1/(1 + |i − j|) over lateral and axial neighbour pairs, values "
                         f"quantised to {GLCM_LEVELS} levels over [0, 1]"),
}
FEATURE_NAMES = tuple(FEATURES)
# A constant map has no texture: no power, no local variation, no edges or outliers, and every
# pixel equals its neighbours.
CONSTANT = np.array([1.0 if name in ("autocorrelation_lateral", "autocorrelation_axial", "glcm_homogeneity") else 0.0
                     for name in FEATURE_NAMES])


def texture_features(m: np.ndarray) -> np.ndarray:
    """The texture features of one map, in the order of ``FEATURE_NAMES``.

    Args:
        m: (h, w) finite map, at least 8×8, values nominally in [0, 1].

    Returns:
        (len(FEATURE_NAMES),) float64, all finite.

    Example:
        >>> f = texture_features(np.full((8, 8), 0.5))
        >>> dict(zip(FEATURE_NAMES, f.round(3).tolist()))["autocorrelation_axial"]
        1.0
    """
    m = check_map(m, "map")
    if np.ptp(m) == 0:  # stated values: rounding in the formulas below would give noise, not 0
        return CONSTANT.copy()
    level = m.mean()
    m = m - level  # the level carries no texture; centring lessens the cancellation in E[m²] − E[m]²
    power, radius = periodogram(m)
    total = power.sum()
    bands = [power[(radius >= lo) & (radius < hi)].sum() / total if total > 0 else 0.0 for lo, hi in BANDS]

    sd = [_mean_local_sd(m, k) for k in LOCAL_WINDOWS]
    gy, gx = np.gradient(m)  # (h, w) each: axial, lateral
    magnitude = np.hypot(gy, gx)
    ex, ey = float(np.mean(gx**2)), float(np.mean(gy**2))

    residual = m - ndimage.median_filter(m, size=MEDIAN_WINDOW, mode="reflect")
    steps = np.concatenate([np.abs(np.diff(m, axis=1)).ravel(), np.abs(np.diff(m, axis=0)).ravel()])
    outliers = float(np.mean(np.abs(residual) > OUTLIER_SD * MAD_TO_SD * np.median(steps)))

    q = np.minimum((np.clip(m + level, 0.0, 1.0) * GLCM_LEVELS).astype(int), GLCM_LEVELS - 1)
    q_steps = np.concatenate([np.abs(np.diff(q, axis=1)).ravel(), np.abs(np.diff(q, axis=0)).ravel()])

    return np.array([
        *bands,
        *sd,
        sd[0] / sd[1] if sd[1] > 0 else 0.0,
        float(magnitude.mean()),
        float(np.mean(magnitude > STRONG_EDGE)),
        outliers,
        (ex - ey) / (ex + ey) if ex + ey > 0 else 0.0,
        _lag1(m, axis=1),
        _lag1(m, axis=0),
        float(np.mean(1.0 / (1.0 + q_steps))),
    ], dtype=np.float64)


def feature_matrix(maps: Sequence[np.ndarray], what: str = "maps") -> np.ndarray:
    """(n, len(FEATURE_NAMES)) texture features of a set of maps, one row per map."""
    maps = check_maps(maps, what)
    if not maps:
        raise ValueError(f"{what}: expected at least one map, got none")
    return np.stack([texture_features(m) for m in maps])


def _mean_local_sd(m: np.ndarray, k: int) -> float:
    mean = ndimage.uniform_filter(m, size=k, mode="reflect")
    mean_sq = ndimage.uniform_filter(m * m, size=k, mode="reflect")
    return float(np.mean(np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))))


def _lag1(m: np.ndarray, axis: int) -> float:
    c = m - m.mean()
    energy = float((c * c).sum())
    a, b = (c[:, 1:], c[:, :-1]) if axis == 1 else (c[1:, :], c[:-1, :])
    return float((a * b).sum() / energy)
