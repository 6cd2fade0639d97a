"""Uncertainty from sampling: K draws of a generator → mean, per-pixel sd, intervals.

A generator that samples (``model.noise``) gives a different plausible elastogram at every
draw. Over K draws of one B-mode (``Predictor.sample``):

- the **mean** is the best estimate of the strain (it scores the highest NCC against the real
  map on average; a single draw is what a scanner would have shown, texture included);
- the per-pixel **sd** says where the draws disagree — where the B-mode leaves the strain
  undetermined — and ``elastogan evaluate`` checks that it tracks the real error;
- a 90 % interval per pixel (``lo``, ``hi``), and one for the lesion's strain ratio: the
  predictive interval of one more draw, ``mean ± t · sd · √(1 + 1/K)`` (Student's t, K − 1 df).
  It covers a real map that behaves like one more draw 90 % of the time at any K; the
  draws' own 5–95 % quantiles would cover only ≈ 72 % at K = 8 (and 85 % at K = 32).

All functions here are pure functions of arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import stats

from elastogan.tsukuba import strain_ratio

Box = tuple[int, int, int, int]


def _check_samples(strains: np.ndarray) -> np.ndarray:
    strains = np.asarray(strains, dtype=np.float64)
    if strains.ndim != 3 or strains.shape[0] < 1:
        raise ValueError(f"expected K×H×W strain samples, got shape {strains.shape}")
    return strains


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


@dataclass(frozen=True)
class SampleSummary:
    """Per-pixel summary of K draws (H×W float32 each; NaN where the draws are NaN).

    Attributes:
        mean: mean of the draws.
        sd: standard deviation of the draws (``ddof=1``; 0 for a single draw).
        lo, hi: the ``level`` predictive interval of one more draw (``predictive_interval``);
            equal to ``mean`` for a single draw.
        level: the interval's nominal coverage.
        samples: K.
    """

    mean: np.ndarray
    sd: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    level: float
    samples: int


def predictive_interval(mean: np.ndarray, sd: np.ndarray, samples: int, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """The Gaussian predictive interval of one more draw: ``mean ± t · sd · √(1 + 1/K)``.

    ``t`` is the ``(1 + level)/2`` quantile of Student's t with ``K − 1`` degrees of freedom.

    Args:
        mean, sd: per-pixel mean and sd (``ddof = 1``) of ``samples`` draws.
        samples: K, at least 2.
        level: nominal coverage in (0, 1).

    Example:
        >>> lo, hi = predictive_interval(np.array([0.5]), np.array([0.1]), samples=2, level=0.9)
        >>> round(float(lo[0]), 4), round(float(hi[0]), 4)   # t(1, 0.95) = 6.3138, √1.5
        (-0.2733, 1.2733)
    """
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2:
        raise ValueError(f"a predictive interval needs at least 2 draws, got {samples!r}")
    _check_level(level)
    half = stats.t.ppf((1.0 + level) / 2.0, samples - 1) * np.asarray(sd, dtype=np.float64) * math.sqrt(1.0 + 1.0 / samples)
    mean = np.asarray(mean, dtype=np.float64)
    return mean - half, mean + half


def summarise_samples(strains: np.ndarray, level: float = 0.9) -> SampleSummary:
    """Mean, sd and the ``level`` predictive interval per pixel of ``strains`` (``(K, H, W)``).

    Example:
        >>> s = summarise_samples(np.stack([np.zeros((2, 2)), np.full((2, 2), 2.0)]), level=0.5)
        >>> float(s.mean[0, 0]), round(float(s.sd[0, 0]), 4), round(float(s.lo[0, 0]), 4)
        (1.0, 1.4142, -0.7321)
    """
    strains = _check_samples(strains)
    _check_level(level)
    k = strains.shape[0]
    with np.errstate(invalid="ignore"):
        mean = strains.mean(axis=0)
        sd = strains.std(axis=0, ddof=1) if k > 1 else np.where(np.isfinite(mean), 0.0, np.nan)
        lo, hi = predictive_interval(mean, sd, k, level) if k > 1 else (mean, mean)
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return SampleSummary(mean=f32(mean), sd=f32(sd), lo=f32(lo), hi=f32(hi), level=level, samples=k)


def strain_ratio_interval(strains: np.ndarray, lesion: np.ndarray, roi: Box | None, level: float = 0.9) -> dict:
    """The strain ratio (reference / lesion, ``elastogan.tsukuba.strain_ratio``) over K draws.

    Returns:
        ``{"value": ratio of the mean map, "lo", "hi": the ``level`` predictive interval of
        one more draw's ratio, taken on the log scale (a ratio is positive and skewed),
        "level", "samples": [ratio of each draw]}``; ``lo = hi = value`` for a single draw.

    Raises:
        ValueError: the lesion lies outside the ROI or has no reference tissue beside it.

    Example:
        >>> lesion = np.zeros((40, 40), bool); lesion[15:25, 15:25] = True
        >>> maps = np.stack([np.where(lesion, 0.5, 1.0), np.where(lesion, 0.25, 1.0)])
        >>> r = strain_ratio_interval(maps, lesion, None, level=0.5)
        >>> round(r["value"], 4), r["samples"], round(r["lo"], 4), round(r["hi"], 4)
        (2.6667, [2.0, 4.0], 1.5518, 5.1552)
    """
    strains = _check_samples(strains)
    _check_level(level)
    per_draw = [float(strain_ratio(s, lesion, roi)) for s in strains]
    with np.errstate(invalid="ignore"):
        value = strain_ratio(strains.mean(axis=0), lesion, roi)
    if len(per_draw) > 1:
        logs = np.log(per_draw)
        lo, hi = np.exp(predictive_interval(logs.mean(), logs.std(ddof=1), len(logs), level))
    else:
        lo = hi = value
    return {"value": float(value), "lo": float(lo), "hi": float(hi), "level": level, "samples": per_draw}


SD_LABEL = "SD (uncertainty)"


def sd_png(sd: np.ndarray, roi: Box | None = None, *, vmax: float = 0.25) -> np.ndarray:
    """An RGB picture (H×W×3 uint8) of a per-pixel sd map that no one can take for an elastogram.

    Black → magenta → white (no hue of any strain colour map), black outside the ROI, its own
    bar at the right labelled with ``vmax`` and 0, and ``SD (uncertainty)`` written at the top.

    Args:
        sd: H×W sd of mapped strain (NaN outside the ROI).
        roi: box the sd is shown in; ``None``: the whole frame.
        vmax: the sd drawn white (sd of relative strain; the display range is 0–1). Default 0.25.
    """
    sd = np.asarray(sd, dtype=np.float64)
    if sd.ndim != 2 or min(sd.shape) < 2:
        raise ValueError(f"expected an H×W sd map, got shape {sd.shape}")
    if not vmax > 0:
        raise ValueError(f"vmax must be positive, got {vmax}")
    h, w = sd.shape
    t = np.clip(np.nan_to_num(sd, nan=0.0) / vmax, 0.0, 1.0)
    inside = np.zeros((h, w), bool)
    x0, y0, x1, y1 = roi or (0, 0, w, h)
    inside[y0:y1, x0:x1] = True
    inside &= np.isfinite(sd)
    rgb = _magenta_ramp(t)
    rgb[~inside] = 0
    # the bar: a strip at the right margin, top = vmax
    bw = max(3, w // 40)
    bx1 = w - max(2, w // 64)
    by0, by1 = int(0.2 * h), int(0.8 * h)
    rgb[by0:by1, bx1 - bw:bx1] = _magenta_ramp(np.linspace(1.0, 0.0, by1 - by0))[:, None, :]
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=max(8, min(h // 18, w // 10)))
    draw.text((max(1, w // 100), max(1, h // 100)), SD_LABEL, fill=(255, 255, 255), font=font)
    small = ImageFont.load_default(size=max(6, h // 28))
    for text, y in ((f"{vmax:g}", by0), ("0", by1)):
        tw = draw.textlength(text, font=small)
        draw.text((max(0, bx1 - bw - tw - 2), y - 4), text, fill=(255, 255, 255), font=small)
    return np.asarray(img)


def labelled_sd_png(sd: np.ndarray, roi: Box | None = None) -> np.ndarray:
    """``sd_png`` as it leaves elastogan: "SYNTHETIC SD (uncertainty)" burned into the top-left.

    One label says both: SYNTHETIC alone there would cover the picture's own "SD (uncertainty)".
    """
    from elastogan.predict import SYNTHETIC_LABEL, label_synthetic

    return label_synthetic(sd_png(sd, roi), text=f"{SYNTHETIC_LABEL} {SD_LABEL}")


def _magenta_ramp(t: np.ndarray) -> np.ndarray:
    """t in [0, 1] → black (0) → magenta (0.5) → white (1), uint8 RGB."""
    t = np.asarray(t, dtype=np.float64)
    r = np.clip(2 * t, 0, 1)
    g = np.clip(2 * t - 1, 0, 1)
    b = np.clip(2 * t, 0, 1)
    return np.rint(np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)
