"""Image metrics between a real (S) and a synthetic (T) elastogram.

All functions are pure, take two arrays of the same shape and an optional boolean ``mask``
(the elastography ROI, or a lesion), and ignore non-finite pixels (the mapped strain is NaN
outside the ROI, DESIGN §2). A comparison that has no defined value -- an empty mask, a map
that is constant inside the mask -- raises :class:`MetricError` naming the problem; nothing
here returns a silent NaN.

Axis legend: ``h`` rows, ``w`` columns, ``c`` colour channels.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from scipy import ndimage

from elastogan.errors import UserError

# ITU-R BT.601 luma weights: the E-mode luminance is what a grey-scale reading of the
# colour elastogram would show.
LUMA_601 = (0.299, 0.587, 0.114)
# Wang et al. 2004 constants and window (Gaussian, sigma 1.5).
_SSIM_K1, _SSIM_K2, _SSIM_SIGMA = 0.01, 0.03, 1.5


class MetricError(UserError):
    """A metric is undefined for the given maps (empty mask, constant map)."""


def _valid(s: np.ndarray, t: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Boolean map of the pixels a metric uses: inside ``mask`` and finite in both maps."""
    if s.shape != t.shape:
        raise ValueError(f"expected two maps of one shape, got {s.shape} and {t.shape}")
    valid = np.isfinite(s) & np.isfinite(t)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != s.shape:
            raise ValueError(f"expected a mask of shape {s.shape}, got {mask.shape}")
        if mask.dtype != bool:
            raise ValueError(f"expected a boolean mask, got dtype {mask.dtype}")
        valid &= mask
    return valid


def ncc(real: np.ndarray, synthetic: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Zero-mean normalised cross-correlation, as the reference paper defines it (its Fig. 5).

    ``NCC = Σ(S−S̄)(T−T̄) / sqrt(Σ(S−S̄)² · Σ(T−T̄)²)`` over the pixels inside ``mask`` that are
    finite in both maps; S̄ and T̄ are the means over those same pixels. NCC is 1 for
    ``T = a·S + b`` with ``a > 0`` and −1 for ``a < 0``.

    Args:
        real: S, the real elastogram (mapped strain), H×W.
        synthetic: T, the synthetic one, same shape.
        mask: optional boolean H×W, e.g. the ROI box or the lesion.

    Returns:
        The correlation in [−1, 1].

    Raises:
        MetricError: fewer than two usable pixels, or a map constant inside the mask.

    Example:
        >>> x = np.array([[0.1, 0.5], [0.9, 0.3]])
        >>> round(ncc(x, 2 * x + 1), 12)
        1.0
    """
    s = np.asarray(real, dtype=np.float64)
    t = np.asarray(synthetic, dtype=np.float64)
    valid = _valid(s, t, mask)
    n = int(valid.sum())
    if n < 2:
        raise MetricError(f"NCC needs at least 2 finite pixels inside the mask, got {n}")
    ds = s[valid] - s[valid].mean()
    dt = t[valid] - t[valid].mean()
    ss, tt = float(ds @ ds), float(dt @ dt)
    for name, energy in (("real", ss), ("synthetic", tt)):
        if energy == 0.0:
            raise MetricError(f"NCC undefined: the {name} map is constant inside the mask ({n} pixels)")
    return float(np.clip((ds @ dt) / math.sqrt(ss * tt), -1.0, 1.0))


def mae(real: np.ndarray, synthetic: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute error ``mean |S − T|`` over the valid pixels (see :func:`ncc`)."""
    s = np.asarray(real, dtype=np.float64)
    t = np.asarray(synthetic, dtype=np.float64)
    valid = _valid(s, t, mask)
    if not valid.any():
        raise MetricError("MAE needs at least 1 finite pixel inside the mask, got 0")
    return float(np.abs(s[valid] - t[valid]).mean())


def psnr(
    real: np.ndarray, synthetic: np.ndarray, mask: np.ndarray | None = None, *, data_range: float = 1.0
) -> float:
    """Peak signal-to-noise ratio ``10·log10(R² / MSE)`` in dB over the valid pixels.

    Args:
        data_range: R, the span of the display scale (1 for mapped strain, 255 for uint8).

    Returns:
        PSNR in dB; ``math.inf`` when the maps are identical on the valid pixels (MSE = 0).
    """
    if not data_range > 0:
        raise ValueError(f"expected data_range > 0, got {data_range}")
    s = np.asarray(real, dtype=np.float64)
    t = np.asarray(synthetic, dtype=np.float64)
    valid = _valid(s, t, mask)
    if not valid.any():
        raise MetricError("PSNR needs at least 1 finite pixel inside the mask, got 0")
    mse = float(np.mean((s[valid] - t[valid]) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(data_range**2 / mse)


def ssim_map(
    real: np.ndarray,
    synthetic: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    data_range: float = 1.0,
    sigma: float = _SSIM_SIGMA,
) -> np.ndarray:
    """Local structural similarity (Wang, Bovik, Sheikh & Simoncelli 2004), masked.

    Local statistics use a Gaussian window (σ = 1.5, truncated at 3.5σ) normalised over the
    valid pixels it covers, so pixels outside the mask never leak in:
    ``SSIM = (2μ_Sμ_T + C1)(2σ_ST + C2) / ((μ_S² + μ_T² + C1)(σ_S² + σ_T² + C2))`` with
    ``C1 = (0.01R)²``, ``C2 = (0.03R)²``. Farther than the window radius from any invalid
    pixel or the image edge it equals the map of ``skimage.metrics.structural_similarity(
    gaussian_weights=True, use_sample_covariance=False, full=True)``.

    Args:
        data_range: R, the span of the display scale.
        sigma: standard deviation of the Gaussian window in pixels.

    Returns:
        H×W float64 map, NaN at the pixels that are not valid.
    """
    if not data_range > 0:
        raise ValueError(f"expected data_range > 0, got {data_range}")
    s = np.asarray(real, dtype=np.float64)
    t = np.asarray(synthetic, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"expected 2-D maps (H×W), got shape {s.shape}")
    valid = _valid(s, t, mask)
    if not valid.any():
        raise MetricError("SSIM needs at least 1 finite pixel inside the mask, got 0")
    w = valid.astype(np.float64)
    s0, t0 = np.where(valid, s, 0.0), np.where(valid, t, 0.0)

    def local_sum(x: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(x, sigma, mode="constant", truncate=3.5)

    norm = np.maximum(local_sum(w), np.finfo(np.float64).tiny)
    mu_s, mu_t = local_sum(s0) / norm, local_sum(t0) / norm
    var_s = local_sum(s0 * s0) / norm - mu_s**2
    var_t = local_sum(t0 * t0) / norm - mu_t**2
    cov = local_sum(s0 * t0) / norm - mu_s * mu_t
    c1, c2 = (_SSIM_K1 * data_range) ** 2, (_SSIM_K2 * data_range) ** 2
    smap = ((2 * mu_s * mu_t + c1) * (2 * cov + c2)) / ((mu_s**2 + mu_t**2 + c1) * (var_s + var_t + c2))
    return np.where(valid, smap, np.nan)


def ssim(
    real: np.ndarray,
    synthetic: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    data_range: float = 1.0,
    sigma: float = _SSIM_SIGMA,
) -> float:
    """Mean of :func:`ssim_map` over the valid pixels; 1 for identical maps."""
    smap = ssim_map(real, synthetic, mask, data_range=data_range, sigma=sigma)
    return float(np.nanmean(smap))


def emode_luminance(rgb: np.ndarray) -> np.ndarray:
    """E-mode luminance ``Y = 0.299R + 0.587G + 0.114B`` (ITU-R BT.601), scaled to [0, 1].

    Args:
        rgb: H×W×3, uint8 (0–255) or float in [0, 1].

    Returns:
        H×W float64 luminance in [0, 1].
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 colour image, got shape {rgb.shape}")
    x = rgb.astype(np.float64) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float64)
    return x @ np.asarray(LUMA_601)


# A pixel "at the end of the display": within 1 % of the mapped strain's range of 0 (hardest)
# or 1 (softest) — the colour map's first or last 2.5 of its 256 levels.
SATURATION_MARGIN = 0.01


def saturated_fraction(strain: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Fraction of the finite pixels in ``mask`` whose mapped strain lies at an end of the
    display range (≤ ``SATURATION_MARGIN`` or ≥ 1 − it): a patch of uniform hardest (or softest)
    colour. The scanner's maps show little of it (phantom-v2 test: 1.3 % of a ROI on average,
    6 % at most); a generator whose draws are clipped shows it where the clip took its texture.

    Example:
        >>> saturated_fraction(np.array([[0.0, 0.005, 0.5, 0.999]]))
        0.75
    """
    strain = np.asarray(strain, dtype=np.float64)
    keep = _valid(strain, strain, mask)
    if not keep.any():
        raise MetricError("no finite pixel in the mask")
    v = strain[keep]
    return float(np.mean((v <= SATURATION_MARGIN) | (v >= 1.0 - SATURATION_MARGIN)))


def strain_ratio_error(real_ratio: float, synthetic_ratio: float) -> dict[str, float]:
    """Error of a synthetic strain ratio (fat/lesion) against the real one.

    Returns:
        ``{"abs": T − S, "rel": (T − S) / S}`` (signed: positive means the synthetic
        elastogram makes the lesion look harder than the real one does).
    """
    for name, v in (("real", real_ratio), ("synthetic", synthetic_ratio)):
        if not (math.isfinite(v) and v > 0):
            raise MetricError(f"expected a positive finite {name} strain ratio, got {v}")
    diff = synthetic_ratio - real_ratio
    return {"abs": float(diff), "rel": float(diff / real_ratio)}


def summary(values: Sequence[float] | np.ndarray) -> dict[str, float | int]:
    """Mean, sample sd (n − 1), median, min, max and n of a per-case metric.

    The reference paper reports NCC as mean ± sd, median and range.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise MetricError("summary of an empty list of values")
    if not np.isfinite(x).all():
        raise MetricError(f"summary got {int((~np.isfinite(x)).sum())} non-finite value(s)")
    return {
        "mean": float(x.mean()),
        "sd": float(x.std(ddof=1)) if x.size > 1 else 0.0,
        "median": float(np.median(x)),
        "min": float(x.min()),
        "max": float(x.max()),
        "n": int(x.size),
    }


def compare_maps(
    real: np.ndarray,
    synthetic: np.ndarray,
    masks: Mapping[str, np.ndarray | None],
    *,
    data_range: float = 1.0,
) -> dict[str, dict[str, float]]:
    """NCC, SSIM, PSNR and MAE of one case inside each named mask (e.g. ``roi``, ``lesion``)."""
    return {
        name: {
            "ncc": ncc(real, synthetic, m),
            "ssim": ssim(real, synthetic, m, data_range=data_range),
            "psnr": psnr(real, synthetic, m, data_range=data_range),
            "mae": mae(real, synthetic, m),
        }
        for name, m in masks.items()
    }
