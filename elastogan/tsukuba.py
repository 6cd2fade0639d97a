"""The Tsukuba elasticity score by rule, and the strain ratio by a fixed reference rule.

Used by the simulator (to cross-check its design labels on the true FEM strain) and by the
evaluation (to score real and synthetic elastograms alike). Rules follow DESIGN §5, on
relative strain (any positive scale: only ratios to the ROI mean are used):

* *hard* pixels have strain below ``HARD_FRACTION`` (0.7) × the ROI mean;
* regions: the lesion, its *core* (lesion pixels deeper than ``CORE_DEPTH`` (35 %) of its
  equivalent radius from the edge), its *rim* (lesion minus core), and a *ring* outside
  (``RING_WIDTH`` (35 %) of the equivalent radius wide);
* score 5: ≥ 80 % of the lesion hard and (ring ≥ 50 % hard, or the hard region around the
  lesion ≥ 1.3× the lesion's size); 4: ≥ 80 % hard; 3: hard core (≥ 60 %) with a soft rim
  (≤ 40 %), hardness falling from centre to edge; 2: ≥ 15 % hard (mosaic); 1: otherwise;
* ``"cyst"``: an anechoic lesion (B-mode median below 60 % of the ring's) whose strain is
  soft (mean above 1.1× the ROI mean) or decorrelated (sd above 0.4× the ROI mean) — the
  blue-green-red artefact of fluid.

The lesion is scored on its *body*: the mask opened by 15 % of its equivalent radius, so thin
spicules (which the strain field cannot resolve) do not dilute "entirely hard".

Scores follow Itoh et al., Radiology 2006;239:341 (Tsukuba elasticity score).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

HARD_FRACTION = 0.7
CORE_DEPTH = 0.35
RING_WIDTH = 0.35
BODY_OPENING = 0.15
ANECHOIC_RATIO = 0.6
SOFT_CYST = 1.1
DECORRELATED_SD = 0.4

TsukubaScore = int | str


def _roi_mask(shape: tuple[int, int], roi: tuple[int, int, int, int] | None, strain: np.ndarray) -> np.ndarray:
    mask = np.isfinite(strain)
    if roi is not None:
        box = np.zeros(shape, bool)
        x0, y0, x1, y1 = roi
        box[y0:y1, x0:x1] = True
        mask &= box
    return mask


def _check(strain: np.ndarray, lesion: np.ndarray) -> None:
    if strain.ndim != 2 or lesion.shape != strain.shape:
        raise ValueError(f"expected H×W strain and lesion mask of one shape, got {strain.shape} and {lesion.shape}")
    if lesion.sum() < 9:
        raise ValueError(f"lesion mask has {int(lesion.sum())} pixels; at least 9 are needed to score it")


def score_tsukuba(
    strain: np.ndarray,
    lesion: np.ndarray,
    *,
    roi: tuple[int, int, int, int] | None = None,
    bmode: np.ndarray | None = None,
) -> TsukubaScore:
    """Tsukuba score (1–5, or ``"cyst"``) of a lesion on a strain map.

    Args:
        strain: H×W strain (relative or absolute; larger = softer), NaN where undefined.
        lesion: H×W bool lesion mask (the B-mode boundary).
        roi: elastography box ``(x0, y0, x1, y1)``; the whole finite map if ``None``.
        bmode: H×W B-mode; needed to recognise the cyst pattern (anechoic lesion).

    Returns:
        1, 2, 3, 4, 5 or ``"cyst"``.
    """
    lesion = np.asarray(lesion, bool)
    _check(strain, lesion)
    valid = _roi_mask(strain.shape, roi, strain)
    s = np.where(valid, strain, np.nan)
    mean = float(np.nanmean(s[valid]))
    if not np.isfinite(mean) or mean <= 0:
        raise ValueError("strain map has no positive mean inside the ROI")
    lesion = lesion & valid
    if lesion.sum() < 9:
        raise ValueError("lesion lies outside the strain map's ROI")
    hard = valid & (s < HARD_FRACTION * mean)

    r_eq = np.sqrt(lesion.sum() / np.pi)
    radius = int(round(BODY_OPENING * r_eq))
    if radius >= 1:
        body = ndimage.binary_opening(lesion, structure=_disk(radius))
        if body.sum() >= 0.5 * lesion.sum():
            lesion = body
            r_eq = np.sqrt(lesion.sum() / np.pi)
    depth_in = ndimage.distance_transform_edt(lesion)
    dist_out = ndimage.distance_transform_edt(~lesion)
    core = depth_in > CORE_DEPTH * r_eq
    rim = lesion & ~core
    ring = valid & ~lesion & (dist_out <= max(2.0, RING_WIDTH * r_eq))

    if bmode is not None and ring.any():
        b = bmode.astype(np.float64)
        anechoic = np.median(b[lesion]) < ANECHOIC_RATIO * np.median(b[ring])
        ls = s[lesion]
        soft = ls.mean() > SOFT_CYST * mean
        decorrelated = ls.std() > DECORRELATED_SD * mean
        if anechoic and (soft or decorrelated):
            return "cyst"

    frac = float(hard[lesion].mean())
    if frac >= 0.8:
        ring_hard = float(hard[ring].mean()) if ring.any() else 0.0
        labels, _ = ndimage.label(hard)
        touching = np.unique(labels[lesion & hard])
        region = np.isin(labels, touching[touching > 0])
        size_ratio = np.sqrt(region.sum() / lesion.sum())
        return 5 if (ring_hard >= 0.5 or size_ratio > 1.3) else 4
    if core.any() and rim.any():
        core_hard = float(hard[core].mean())
        rim_hard = float(hard[rim].mean())
        if core_hard >= 0.6 and rim_hard <= 0.4 and _hardness_falls_outward(hard, depth_in, lesion, r_eq):
            return 3
    if frac >= 0.15:
        return 2
    return 1


def _disk(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius


def _hardness_falls_outward(hard: np.ndarray, depth_in: np.ndarray, lesion: np.ndarray, r_eq: float) -> bool:
    """Rim-versus-mosaic check: the hard fraction in 4 shells from the centre to the edge
    never rises by more than 0.1 going outward (a mosaic's patches do not line up like this)."""
    rel = depth_in[lesion] / max(r_eq, 1.0)
    h = hard[lesion]
    edges = np.quantile(rel, [0.0, 0.25, 0.5, 0.75, 1.0])
    shells = [h[(rel >= lo) & (rel <= hi)].mean() for lo, hi in zip(edges[:-1], edges[1:]) if ((rel >= lo) & (rel <= hi)).any()]
    # shells go from the edge (small depth) to the centre: hardness should rise inward.
    return all(b >= a - 0.1 for a, b in zip(shells[:-1], shells[1:]))


def strain_ratio(strain: np.ndarray, lesion: np.ndarray, roi: tuple[int, int, int, int] | None = None) -> float:
    """Strain ratio (reference / lesion) with a fixed reference-region rule.

    Reference: ROI pixels within the lesion's depth band, at least half an equivalent radius
    (≥ 3 px) outside the lesion — tissue at the same depth, as an operator places the fat
    reference beside the lesion. Ratio of means; the lesion mean is floored at 1e-3 of the
    reference so a lesion displayed as fully hard gives a large, finite ratio. A reference
    displayed as fully hard (mean strain 0: a map clamped at the display's floor there) has no
    ratio: it raises, as a lesion outside the ROI does, rather than divide by zero.
    """
    lesion = np.asarray(lesion, bool)
    _check(strain, lesion)
    valid = _roi_mask(strain.shape, roi, strain)
    les = lesion & valid
    if les.sum() < 9:
        raise ValueError("lesion lies outside the strain map's ROI")
    ys = np.nonzero(les)[0]
    band = np.zeros_like(valid)
    band[ys.min(): ys.max() + 1] = True
    r_eq = np.sqrt(les.sum() / np.pi)
    ref = valid & band & (ndimage.distance_transform_edt(~lesion) > max(3.0, 0.5 * r_eq))
    if ref.sum() < 9:
        raise ValueError("no reference tissue beside the lesion inside the ROI")
    ref_mean = float(np.mean(strain[ref]))
    if not ref_mean > 0:
        raise ValueError(f"the reference tissue beside the lesion shows no strain (mean {ref_mean:g}): no ratio")
    les_mean = max(float(np.mean(strain[les])), 1e-3 * ref_mean)
    return ref_mean / les_mean
