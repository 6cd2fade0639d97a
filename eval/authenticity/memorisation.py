"""Memorisation check: does the generator copy its training maps?

Every map is resampled to a ``GRID × GRID`` thumbnail (bilinear, anti-aliased), then
standardised to zero mean and unit sd (a constant map becomes all zeros). The distance of two
thumbnails ``a``, ``b`` is their RMS difference, which for standardised maps equals
``√(2 (1 − NCC(a, b)))``: 0 for the same picture up to brightness and contrast, √2 for
unrelated ones, 2 for an inverted one. Thumbnails compare shapes at the scale a reader sees,
and maps of different ROI sizes become comparable.

For each test case, the nearest-neighbour distance of its synthetic map to the training maps
and the same for its real map. A generator that reproduces training maps puts its samples
much closer to the training set than new real maps are:

    memorisation_ratio = median(synthetic NN distance) / median(real NN distance),

≈ 1 when synthetic maps are as novel as new real ones, ≪ 1 when they copy.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from elastogan.eval.authenticity.maps import check_maps, resize_bilinear

GRID = 32


def thumbnails(maps: Sequence[np.ndarray], what: str = "maps", grid: int = GRID) -> np.ndarray:
    """(n, grid·grid) standardised thumbnails, one row per map."""
    rows = []
    for m in check_maps(maps, what):
        t = resize_bilinear(m, (grid, grid)).ravel()
        sd = t.std()
        rows.append((t - t.mean()) / sd if sd > 0 else np.zeros_like(t))
    return np.stack(rows) if rows else np.zeros((0, grid * grid))


def nearest_distances(queries: Sequence[np.ndarray], train: Sequence[np.ndarray], grid: int = GRID) -> np.ndarray:
    """(n,) distance of each query map to its nearest training map (module docstring).

    Raises:
        ValueError: no queries or no training maps, or a map that fails the checks.
    """
    if not len(queries) or not len(train):
        raise ValueError(f"nearest distances need query and training maps, got {len(queries)} and {len(train)}")
    q, t = thumbnails(queries, "queries", grid), thumbnails(train, "train", grid)  # (n, g²), (m, g²)
    sq = (q**2).sum(1)[:, None] + (t**2).sum(1)[None, :] - 2.0 * q @ t.T  # (n, m)
    return np.sqrt(np.maximum(sq.min(axis=1), 0.0) / q.shape[1])


def memorisation_ratio(synthetic_distances: Sequence[float], real_distances: Sequence[float]) -> float | None:
    """``median(synthetic) / median(real)`` nearest-neighbour distances; None when the real
    median is 0 (real test maps that duplicate training maps leave nothing to compare with)."""
    s, r = np.asarray(synthetic_distances, np.float64), np.asarray(real_distances, np.float64)
    if not s.size or not r.size or not (np.isfinite(s).all() and np.isfinite(r).all()):
        raise ValueError(f"expected non-empty finite distances, got {s.size} synthetic and {r.size} real")
    real_median = float(np.median(r))
    return float(np.median(s)) / real_median if real_median > 0 else None
