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
- a **calibrated** interval: a generator's draws are usually less spread than its errors, so
  the interval above covers fewer real pixels than it says. Split-conformal calibration
  (Vovk et al. 2005; Angelopoulos & Bates 2023, §1–2) widens it by one factor, fitted once on
  held-out cases (``elastogan calibrate``, stored in the checkpoint): ``mean ± q · t · sd ·
  √(1 + 1/K)`` with ``q`` the ``level`` quantile of the held-out scores
  ``|real − mean| / (t · sd · √(1 + 1/K))`` (``conformal_scale``). It makes the *marginal*
  coverage right on cases like the held-out ones; it cannot make the sd follow the error
  (a monotone rescaling leaves the sd–error correlation as it is).

All functions here are pure functions of arrays.
"""

from __future__ import annotations

import dataclasses
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


def _check_scale(scale: float) -> None:
    if not (isinstance(scale, (int, float, np.floating)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"an interval scale must be a positive finite number, got {scale!r}")


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


def interval_half_width(sd: np.ndarray, samples: int, level: float = 0.9) -> np.ndarray:
    """``t · sd · √(1 + 1/K)``: the half-width of ``predictive_interval`` before any scaling.

    Example:
        >>> round(float(interval_half_width(np.array(0.1), samples=8, level=0.9)), 6)   # t(7, 0.95)
        0.20095
    """
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2:
        raise ValueError(f"a predictive interval needs at least 2 draws, got {samples!r}")
    _check_level(level)
    return stats.t.ppf((1.0 + level) / 2.0, samples - 1) * np.asarray(sd, dtype=np.float64) * math.sqrt(1.0 + 1.0 / samples)


def predictive_interval(mean: np.ndarray, sd: np.ndarray, samples: int, level: float = 0.9,
                        scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The Gaussian predictive interval of one more draw: ``mean ± scale · t · sd · √(1 + 1/K)``.

    ``t`` is the ``(1 + level)/2`` quantile of Student's t with ``K − 1`` degrees of freedom.

    Args:
        mean, sd: per-pixel mean and sd (``ddof = 1``) of ``samples`` draws.
        samples: K, at least 2.
        level: nominal coverage in (0, 1).
        scale: the conformal factor ``q`` of a calibrated generator (``conformal_scale``); 1:
            the draws taken at their word.

    Example:
        >>> lo, hi = predictive_interval(np.array([0.5]), np.array([0.1]), samples=2, level=0.9)
        >>> round(float(lo[0]), 4), round(float(hi[0]), 4)   # t(1, 0.95) = 6.3138, √1.5
        (-0.2733, 1.2733)
    """
    _check_scale(scale)
    half = scale * interval_half_width(sd, samples, level)
    mean = np.asarray(mean, dtype=np.float64)
    return mean - half, mean + half


def summarise_samples(strains: np.ndarray, level: float = 0.9, scale: float = 1.0) -> SampleSummary:
    """Mean, sd and the ``level`` predictive interval per pixel of ``strains`` (``(K, H, W)``).

    ``scale``: the interval's conformal factor (``Predictor.interval_scale``); the mean and sd
    do not depend on it.

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
        lo, hi = predictive_interval(mean, sd, k, level, scale) if k > 1 else (mean, mean)
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return SampleSummary(mean=f32(mean), sd=f32(sd), lo=f32(lo), hi=f32(hi), level=level, samples=k)


def strain_ratio_interval(strains: np.ndarray, lesion: np.ndarray, roi: Box | None, level: float = 0.9,
                          scale: float = 1.0) -> dict:
    """The strain ratio (reference / lesion, ``elastogan.tsukuba.strain_ratio``) over K draws.

    ``scale``: the conformal factor of the ratio's interval (``Predictor.ratio_scale``).

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
        lo, hi = np.exp(predictive_interval(logs.mean(), logs.std(ddof=1), len(logs), level, scale))
    else:
        lo = hi = value
    return {"value": float(value), "lo": float(lo), "hi": float(hi), "level": level, "samples": per_draw}


def interval_scores(real: np.ndarray, mean: np.ndarray, sd: np.ndarray, samples: int, level: float = 0.9,
                    mask: np.ndarray | None = None) -> np.ndarray:
    """Conformal scores of one held-out case: ``|real − mean| / (t · sd · √(1 + 1/K))`` per pixel.

    Over the pixels inside ``mask`` where all three maps are finite. A pixel whose draws all
    agree (sd 0) scores 0 when the real value equals them and ``inf`` otherwise: no factor
    widens a zero-width interval.

    Example:
        >>> s = interval_scores(np.array([0.7, 0.5, 0.5]), np.array([0.5, 0.5, 0.4]), np.array([0.1, 0.0, 0.0]), 8)
        >>> [round(float(v), 4) for v in s]
        [0.9953, 0.0, inf]
    """
    real, mean, sd = (np.asarray(a, dtype=np.float64) for a in (real, mean, sd))
    valid = np.isfinite(real) & np.isfinite(mean) & np.isfinite(sd)
    if mask is not None:
        valid &= np.asarray(mask, bool)
    err = np.abs(real[valid] - mean[valid])
    half = interval_half_width(sd[valid], samples, level)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(half > 0, err / np.where(half > 0, half, 1.0), np.where(err > 0, np.inf, 0.0))


def ratio_score(strains: np.ndarray, lesion: np.ndarray, roi: Box | None, real_ratio: float, level: float = 0.9) -> float:
    """The conformal score of one case's strain ratio: ``|log real − mean log| / (t · sd_log · √(1 + 1/K))``
    over the K draws' ratios (the scale ``strain_ratio_interval`` works on).

    Example:
        >>> lesion = np.zeros((40, 40), bool); lesion[15:25, 15:25] = True
        >>> maps = np.stack([np.where(lesion, 0.5, 1.0), np.where(lesion, 0.25, 1.0)])
        >>> round(ratio_score(maps, lesion, None, real_ratio=8.0, level=0.5), 4)   # (log 8 − log √8) / (sd_log · √1.5)
        1.7321
    """
    strains = _check_samples(strains)
    if strains.shape[0] < 2:
        raise ValueError("a strain-ratio score needs at least 2 draws")
    if not real_ratio > 0:
        raise ValueError(f"the real strain ratio must be positive, got {real_ratio!r}")
    logs = np.log([float(strain_ratio(s, lesion, roi)) for s in strains])
    err = abs(math.log(real_ratio) - logs.mean())
    half = float(interval_half_width(logs.std(ddof=1), len(logs), level))
    return float(err / half) if half > 0 else (0.0 if err == 0 else math.inf)


def conformal_scale(scores: np.ndarray, level: float = 0.9) -> float:
    """The split-conformal factor of ``level``: the ``⌈(n + 1) · level⌉``-th smallest of n scores.

    Widening every interval by it covers ``level`` of the held-out scores, and (when the held-out
    and new cases are exchangeable) at least ``level`` of new ones on average (Vovk et al. 2005;
    Angelopoulos & Bates 2023, Theorem 1). NaN scores are dropped.

    Raises:
        ValueError: too few scores for ``level`` (the rank exceeds n), or the quantile is
            ``inf`` (more than ``1 − level`` of the scores come from draws that do not vary).

    Example:
        >>> conformal_scale(np.arange(1.0, 21.0), level=0.9)   # ⌈21 · 0.9⌉ = 19th of 20
        19.0
    """
    _check_level(level)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    scores = scores[~np.isnan(scores)]
    n = scores.size
    rank = math.ceil((n + 1) * level - 1e-9)
    if rank > n:
        raise ValueError(f"{n} held-out score(s) are too few for a {level:.0%} interval (need at least "
                         f"{math.ceil(level / (1 - level) - 1e-9)})")
    q = float(np.partition(scores, rank - 1)[rank - 1])
    if not math.isfinite(q):
        raise ValueError("the draws do not vary where the model is wrong: no factor widens a zero-width interval "
                         "(is it a generator that samples, model.noise?)")
    return q


@dataclass(frozen=True)
class IntervalCalibration:
    """What ``elastogan calibrate`` stores in a checkpoint (key ``"uncertainty"``).

    Attributes:
        level: the interval's coverage the factors were fitted for.
        samples: K, the draws per case they were fitted with.
        pixel_scale: the conformal factor of the per-pixel interval (pooled over the ROI pixels
            of all held-out cases).
        ratio_scale: the factor of the strain ratio's interval, one score per case with a
            lesion; ``None`` without enough such cases.
        cases, ratio_cases: held-out cases behind each factor.
        coverage_before: the per-pixel interval's coverage of the held-out pixels before
            calibration (how over-confident the draws were).
        source: where the held-out cases came from (manifest, split, seed).
    """

    level: float
    samples: int
    pixel_scale: float
    ratio_scale: float | None
    cases: int
    ratio_cases: int
    coverage_before: float
    source: dict

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> IntervalCalibration:
        c = cls(**d)
        _check_level(c.level)
        _check_scale(c.pixel_scale)
        if c.ratio_scale is not None:
            _check_scale(c.ratio_scale)
        return c


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
