"""Checks and resampling shared by the authenticity observers.

A *map* is one case's 2-D float image cropped to its elastography ROI box: the mapped strain
(0 hard … 1 soft) or the E-mode luminance. Maps of one set may differ in size.

Axis legend: ``h`` rows (depth), ``w`` columns (lateral).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from elastogan.errors import UserError
from elastogan.eval.metrics import emode_luminance

# The smallest map whose texture the features can describe: a 7×7 local window and a 5×5
# median filter must fit inside it.
MIN_SIDE = 8


class MapError(UserError, ValueError):
    """A map or a set of maps cannot be analysed; the message names which one and why.

    A ``ValueError`` for library callers, a ``UserError`` so the CLI prints it on one line.
    """


def check_map(m: np.ndarray, what: str) -> np.ndarray:
    """``m`` as a float64 (h, w) array, after checking it is 2-D, at least 8×8 and finite.

    Raises:
        MapError: naming ``what`` and the problem.
    """
    a = np.asarray(m)
    if a.ndim != 2:
        raise MapError(f"{what}: expected a 2-D map (the ROI crop), got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise MapError(f"{what}: expected a numeric map, got dtype {a.dtype}")
    if min(a.shape) < MIN_SIDE:
        raise MapError(f"{what}: expected a map of at least {MIN_SIDE}×{MIN_SIDE} pixels, got {a.shape[0]}×{a.shape[1]}")
    a = a.astype(np.float64)
    bad = int((~np.isfinite(a)).sum())
    if bad:
        raise MapError(f"{what}: {bad} non-finite pixel(s) (NaN or inf); crop the map to its ROI box")
    return a


def check_maps(maps: Sequence[np.ndarray], what: str) -> list[np.ndarray]:
    """:func:`check_map` on each map; ``what[i]`` names the one that fails."""
    return [check_map(m, f"{what}[{i}]") for i, m in enumerate(maps)]


def emode_maps(rgbs: Sequence[np.ndarray], what: str) -> list[np.ndarray]:
    """Luminance maps of RGB E-mode ROI crops (h, w, 3 uint8): what a reader sees, in grey."""
    out = []
    for i, rgb in enumerate(rgbs):
        a = np.asarray(rgb)
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise MapError(f"{what}[{i}]: expected an H×W×3 uint8 E-mode crop, got shape {a.shape} dtype {a.dtype}")
        out.append(check_map(emode_luminance(a), f"{what}[{i}]"))
    return out


def resize_bilinear(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resampling of (h, w) to ``shape`` with pixel centres aligned (as
    ``align_corners=False``); edges are extended, so no value leaves the map's range.

    Shrinking first smooths with a Gaussian of σ = (factor − 1)/2 per axis (scikit-image's
    anti-aliasing rule): otherwise speckle finer than the new pixels would alias into blobs.
    """
    h, w = m.shape
    oh, ow = shape
    sigma = (max(h / oh - 1, 0) / 2, max(w / ow - 1, 0) / 2)
    if max(sigma) > 0:
        m = ndimage.gaussian_filter(m, sigma, mode="nearest")
    ys = (np.arange(oh) + 0.5) * h / oh - 0.5
    xs = (np.arange(ow) + 0.5) * w / ow - 0.5
    coords = np.stack(np.meshgrid(ys, xs, indexing="ij"))  # (2, oh, ow)
    return ndimage.map_coordinates(m, coords, order=1, mode="nearest")
