"""Fréchet distance between two feature sets (the FID formula, on texture features).

Each set is summarised by a Gaussian, mean ``μ`` and covariance ``Σ``; the distance between
them is the 2-Wasserstein distance of the two Gaussians (Dowson & Landau 1982; Heusel et al.
2017):

    d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^½).

For texture features the units differ per feature, so both sets are first standardised with
the *real* set's mean and sd: a distance of 1 is then a shift of one real-set sd in one feature.

The trace of the root is computed as ``Tr((Σ₁^½ Σ₂ Σ₁^½)^½)``, the sum of the square roots of
the eigenvalues of a symmetric PSD matrix (the same eigenvalues as Σ₁Σ₂). Unlike
``scipy.linalg.sqrtm(Σ₁ @ Σ₂)`` it has no imaginary rounding parts to discard and needs no
ridge when the covariances are singular (fewer maps than features), which is the common case.
"""

from __future__ import annotations

import numpy as np


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½)`` of two Gaussians.

    Args:
        mu1, mu2: (d,) means.
        sigma1, sigma2: (d, d) symmetric positive semi-definite covariances.

    Example (1-D: the distance is ``(μ₁ − μ₂)² + (σ₁ − σ₂)²``):
        >>> frechet_distance(np.array([0.0]), np.array([[4.0]]), np.array([1.0]), np.array([[1.0]]))
        2.0
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"expected means (d,) and covariances (d, d), got {mu1.shape}, {s1.shape}, {mu2.shape}, {s2.shape}")
    if not (np.isfinite(s1).all() and np.isfinite(s2).all() and np.isfinite(mu1).all() and np.isfinite(mu2).all()):
        raise ValueError("means and covariances must be finite")
    root1 = _psd_sqrt(s1)
    # Eigenvalues of a PSD matrix are ≥ 0; rounding can leave −1e-17, hence the clip.
    trace_root = float(np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ s2 @ root1), 0.0, None)).sum())
    diff = mu1 - mu2
    return max(float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_root), 0.0)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((s + s.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def fd_texture(real_features: np.ndarray, synthetic_features: np.ndarray) -> float:
    """Fréchet distance of two feature sets, after standardising both by the real set.

    Args:
        real_features: (n, d), at least 2 rows.
        synthetic_features: (m, d), at least 2 rows.

    A feature constant over the real set is divided by 1 instead of its zero sd.
    """
    x, y = np.asarray(real_features, np.float64), np.asarray(synthetic_features, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
        raise ValueError(f"expected two (n, d) feature sets with the same d and at least 2 rows each, got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("features must be finite")
    mean, sd = x.mean(axis=0), x.std(axis=0, ddof=1)
    sd = np.where(sd > 0, sd, 1.0)
    x, y = (x - mean) / sd, (y - mean) / sd
    return frechet_distance(x.mean(axis=0), np.cov(x, rowvar=False), y.mean(axis=0), np.cov(y, rowvar=False))
