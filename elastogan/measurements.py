"""The EI/B ratio: how much larger a lesion looks on the elastogram than on the B-mode.

Barr et al. (Ultrasound Q 2012;28:13–20; Barr 2012, "Sonographic breast elastography: a
primer", J Ultrasound Med 31:773) measure the lesion's length on the strain image (EI) and on
the B-mode (B): carcinomas draw in the stiff tissue around them (desmoplasia) and look larger on
the elastogram, benign lesions the same size or smaller; EI/B ≥ 1 suggests malignancy.

Automated here, with the project's rule scorer's definition of stiff (``elastogan.tsukuba``):

* **B**: the longest dimension (maximal Feret diameter) of the lesion mask — the B-mode
  boundary a manifest (or a drawn box) gives;
* **EI**: the longest dimension of the stiff region that contains the lesion on the strain map:
  ROI pixels below ``HARD_FRACTION`` (0.7) × the ROI's mean strain, opened by a small disc so
  that isolated hard speckle does not bridge into it, and of those the connected components
  that overlap the lesion. A lesion with no stiff pixel on it has EI = 0 (it is not seen on
  the elastogram), so EI/B = 0.

Lengths are in pixels (the ratio needs no spacing) and measured between pixel centres plus one
pixel, so a disc of diameter ``d`` pixels measures ``d``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from elastogan.tsukuba import HARD_FRACTION

# Radius (pixels) of the disc that opens the stiff mask: removes hard speckle a few pixels
# across, which a reader would not count as part of the lesion's stiff region.
OPENING_RADIUS = 1
MIN_LESION_PIXELS = 9  # as the Tsukuba scorer: smaller masks have no meaningful extent


def feret_diameter(mask: np.ndarray) -> float:
    """Longest dimension of a 2-D bool mask in pixels: the largest distance between two of its
    pixel centres, plus one pixel; 0 for an empty mask.

    Example:
        >>> m = np.zeros((9, 9), bool); m[4, 2:7] = True
        >>> feret_diameter(m)
        5.0
    """
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return 0.0
    # the farthest pair lies on the boundary: interior pixels never need comparing
    edge = mask & ~ndimage.binary_erosion(mask)
    ey, ex = np.nonzero(edge)
    pts = np.stack([ey, ex], axis=1).astype(np.float64)
    best = 0.0
    for start in range(0, len(pts), 512):  # blocks bound the memory of the pairwise distances
        d = ((pts[start : start + 512, None, :] - pts[None, :, :]) ** 2).sum(axis=-1)
        best = max(best, float(d.max()))
    return float(np.sqrt(best)) + 1.0


def stiff_region(strain: np.ndarray, lesion: np.ndarray, roi: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """The stiff region that holds the lesion on a strain map (see the module docstring), H×W bool.

    Args:
        strain: H×W relative strain (larger = softer), NaN where undefined.
        lesion: H×W bool lesion mask (the B-mode boundary).
        roi: elastography box ``(x0, y0, x1, y1)``, end-exclusive; the whole finite map if ``None``.

    Raises:
        ValueError: shapes differ, the lesion has under 9 pixels inside the ROI, or the ROI
            holds no positive mean strain.
    """
    strain = np.asarray(strain, dtype=np.float64)
    lesion = np.asarray(lesion, bool)
    if strain.ndim != 2 or lesion.shape != strain.shape:
        raise ValueError(f"expected H×W strain and lesion mask of one shape, got {strain.shape} and {lesion.shape}")
    valid = np.isfinite(strain)
    if roi is not None:
        x0, y0, x1, y1 = roi
        box = np.zeros(strain.shape, bool)
        box[y0:y1, x0:x1] = True
        valid &= box
    if (lesion & valid).sum() < MIN_LESION_PIXELS:
        raise ValueError(f"lesion has {int((lesion & valid).sum())} pixels inside the ROI; at least "
                         f"{MIN_LESION_PIXELS} are needed")
    mean = float(strain[valid].mean())
    if not mean > 0:
        raise ValueError(f"the ROI's mean strain is {mean}; expected a positive relative strain")
    hard = valid & (np.where(valid, strain, np.inf) < HARD_FRACTION * mean)
    yy, xx = np.mgrid[-OPENING_RADIUS : OPENING_RADIUS + 1, -OPENING_RADIUS : OPENING_RADIUS + 1]
    hard = ndimage.binary_opening(hard, structure=yy**2 + xx**2 <= OPENING_RADIUS**2)
    labels, _ = ndimage.label(hard)
    touching = np.unique(labels[lesion & hard])
    return np.isin(labels, touching[touching > 0])


def ei_b_ratio(strain: np.ndarray, lesion: np.ndarray, roi: tuple[int, int, int, int] | None = None) -> dict[str, float]:
    """EI/B of a lesion: ``{"ei": EI length, "b": B length, "ratio": EI / B}`` in pixels.

    Args:
        strain: H×W relative strain (larger = softer), NaN where undefined (outside the ROI).
        lesion: H×W bool lesion mask on the B-mode.
        roi: elastography box, end-exclusive; the whole finite map if ``None``.

    Raises:
        ValueError: as :func:`stiff_region`.

    Example:
        >>> yy, xx = np.mgrid[:64, :64]
        >>> lesion = (yy - 32) ** 2 + (xx - 32) ** 2 <= 6**2          # 13 px across on B-mode
        >>> stiff = (yy - 32) ** 2 + (xx - 32) ** 2 <= 12**2          # 25 px across, stiff
        >>> r = ei_b_ratio(np.where(stiff, 0.2, 1.0), lesion)
        >>> r["b"], r["ei"], round(r["ratio"], 3)
        (13.0, 25.0, 1.923)
    """
    region = stiff_region(strain, lesion, roi)
    b = feret_diameter(lesion)
    ei = feret_diameter(region)
    return {"ei": ei, "b": b, "ratio": ei / b}
