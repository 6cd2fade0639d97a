"""Strain estimation as a strain-elastography scanner does it.

1. Axial displacement along each RF line by windowed normalised cross-correlation of the
   pre- and post-compression RF (≈1.5 mm window, 0.3 mm step), the lag searched around the
   estimate of the window above (tracking from the transducer down, median-filtered across
   lines so one decorrelated window cannot derail a line), refined by a parabola through the
   correlation peak.
2. Strain = −d(displacement)/d(depth) by least squares over ``lsq_points`` estimates.
3. A 3×3 median filter, then resampling onto the display grid.

Decorrelation (large strain, noise, anechoic regions) produces the same noisy strain a scanner
shows — the "strain filter" behaviour — because nothing here knows the true motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class StrainEstimate:
    """Per-window estimates on the (n_windows, n_lines) estimation grid."""

    displacement: np.ndarray  # samples, positive = away from the transducer
    correlation: np.ndarray  # peak NCC per window
    strain: np.ndarray  # axial compressive strain (positive), median-filtered
    centers: np.ndarray  # window centres, in samples


def track_displacement(pre: np.ndarray, post: np.ndarray, window: int, step: int, search: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windowed NCC displacement of ``post`` relative to ``pre`` along axis 0 for every line.

    Args:
        pre, post: real RF, (nz, n_lines).
        window: window length in samples.
        step: window step in samples.
        search: lags searched on each side of the predicted lag.

    Returns:
        ``(displacement, peak_ncc, centres)``: (n_windows, n_lines), (n_windows, n_lines),
        (n_windows,) — displacement in samples with sub-sample parabolic refinement.
    """
    nz, nl = pre.shape
    if post.shape != pre.shape:
        raise ValueError(f"pre and post RF differ in shape: {pre.shape} vs {post.shape}")
    starts = np.arange(search, nz - window - search, step)
    n_win = len(starts)
    if n_win < 3:
        raise ValueError(f"RF too short ({nz} samples) for window {window} and step {step}")
    offsets = np.arange(-search, search + 1)
    w_idx = np.arange(window)
    lines = np.arange(nl)
    disp = np.zeros((n_win, nl))
    peak = np.zeros((n_win, nl))
    pred = np.zeros(nl, dtype=np.int64)
    # Pad post so that searched windows never index out of range.
    pad = 4 * search + window
    post_p = np.pad(post, ((pad, pad), (0, 0)))
    for j, s in enumerate(starts):
        a = pre[s : s + window]  # (W, L)
        a = a - a.mean(axis=0)
        a_norm = np.sqrt((a * a).sum(axis=0)) + 1e-12
        # idx: (O, W, L) sample indices into post_p
        base = s + pad + pred[None, None, :] + offsets[:, None, None] + w_idx[None, :, None]
        np.clip(base, 0, post_p.shape[0] - 1, out=base)
        b = post_p[base, lines[None, None, :]]
        b = b - b.mean(axis=1, keepdims=True)
        b_norm = np.sqrt((b * b).sum(axis=1)) + 1e-12
        ncc = (a[None] * b).sum(axis=1) / (a_norm[None] * b_norm)  # (O, L)
        k = np.argmax(ncc, axis=0)
        c0 = ncc[k, lines]
        frac = np.zeros(nl)
        inner = (k > 0) & (k < len(offsets) - 1)
        cm = ncc[np.maximum(k - 1, 0), lines]
        cp = ncc[np.minimum(k + 1, len(offsets) - 1), lines]
        denom = cm - 2 * c0 + cp
        ok = inner & (denom < 0)
        frac[ok] = 0.5 * (cm[ok] - cp[ok]) / denom[ok]
        d = pred + offsets[k] + frac
        disp[j] = d
        peak[j] = c0
        # Predict the next window's lag from a robust (median over neighbouring lines) estimate.
        pred = np.rint(ndimage.median_filter(d, size=7, mode="nearest")).astype(np.int64)
    return disp, peak, starts + window / 2.0 - 0.5


def lsq_strain(displacement: np.ndarray, step: int, points: int) -> np.ndarray:
    """Axial strain by least-squares slope over ``points`` consecutive estimates (axis 0).

    Compression moves deeper tissue towards the transducer more, so the displacement falls
    with depth; the returned compressive strain is ``−slope`` (positive).
    """
    if points < 2:
        raise ValueError(f"least-squares strain needs at least 2 points, got {points}")
    k = np.arange(points) - (points - 1) / 2.0
    kernel = k / (k * k).sum()
    slope = ndimage.correlate1d(displacement, kernel, axis=0, mode="nearest")
    return -slope / step


def estimate_strain(pre_rf: np.ndarray, post_rf: np.ndarray, *, window: int, step: int, lsq_points: int) -> StrainEstimate:
    """Displacement, correlation and median-filtered strain from a pre/post RF pair."""
    disp, peak, centres = track_displacement(pre_rf, post_rf, window, step)
    strain = ndimage.median_filter(lsq_strain(disp, step, lsq_points), size=3, mode="nearest")
    return StrainEstimate(displacement=disp, correlation=peak, strain=strain, centers=centres)


def to_display_grid(values: np.ndarray, centers: np.ndarray, dz_mm: float, out_rows: int, field_mm: float) -> np.ndarray:
    """Resample per-window values (n_windows, n_lines) onto ``out_rows`` display rows.

    Rows outside the estimated depth range take the nearest estimate, as scanners extend
    their first and last rows.
    """
    row_mm = (np.arange(out_rows) + 0.5) * field_mm / out_rows
    pos = np.interp(row_mm, (centers + 0.5) * dz_mm, np.arange(len(centers)))
    coords = np.stack(np.meshgrid(pos, np.arange(values.shape[1]), indexing="ij"))
    return ndimage.map_coordinates(values, coords, order=1, mode="nearest")


def relative_strain(strain: np.ndarray, roi_mask: np.ndarray) -> np.ndarray:
    """Display-scale strain: ε / (2 · mean ε in the ROI), clipped to [0, 1]; NaN outside.

    0 is the hardest (no strain), 0.5 the ROI mean, 1 twice the mean or softer — the
    normalisation strain elastography displays use.
    """
    mean = float(np.mean(strain[roi_mask]))
    if not np.isfinite(mean) or mean <= 0:
        raise ValueError(f"mean strain in the ROI must be positive, got {mean}")
    out = np.clip(strain / (2.0 * mean), 0.0, 1.0).astype(np.float32)
    out[~roi_mask] = np.nan
    return out
