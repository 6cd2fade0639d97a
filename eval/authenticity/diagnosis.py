"""Why the texture observer tells the synthetic maps from the real ones.

A texture C2ST accuracy near 1 says *that* the sets differ, not *how*. Two different repairs
follow from two different answers (docs/training.md, "Session 15"):

* a **level** problem: a feature sits off the real maps' mean (too smooth, too few outliers)
  and tells the sets apart on its own — the texture's amount is wrong;
* a **relation** problem: each feature is nearly right on its own but two of them together
  are not (at a given roughness the maps are too inhomogeneous: many middling steps where the
  scanner has a smooth map with sparse spikes) — the texture's kind is wrong. Features that
  correlate strongly across real maps turn small marginal shifts against their relation into
  a large joint one.

The observer is a logistic regression, a linear rule: it separates the sets by where their
means lie, measured in the features' joint spread. ``texture_diagnosis`` reports

* per feature: the standardised mean difference d (synthetic − real, pooled sd), the sd ratio
  and the observer's accuracy on that feature alone;
* the most telling **pair**: the two features with the highest accuracy together, with the
  Mahalanobis distance of their mean shift in the two sets' pooled covariance. A pair distance well
  above both features' |d| is a broken relation;
* the Mahalanobis distance of the whole mean shift (``mahalanobis``) and the accuracy it allows
  a linear rule between two Gaussians of that pooled covariance, Φ(Δ/2) (``mahalanobis_accuracy``).

All accuracies are held-out, cross-fitted by patient exactly as the C2ST's (``two_sample_test``
with the same folds and seed), so they compare with ``c2st_texture_accuracy``.
"""

from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np
from scipy.stats import norm

from elastogan.eval.authenticity.c2st import two_sample_test
from elastogan.eval.authenticity.texture_observer import TextureObserver


def standardised_difference(real: np.ndarray, synthetic: np.ndarray) -> np.ndarray:
    """Per column, (mean synthetic − mean real) / √((var real + var synthetic) / 2) (Cohen's d
    with the two sets weighted equally; 0 where both columns are constant).

    Example:
        >>> standardised_difference(np.array([[0.0], [2.0]]), np.array([[2.0], [4.0]])).round(3).tolist()
        [1.414]
    """
    pooled = np.sqrt((real.var(axis=0, ddof=1) + synthetic.var(axis=0, ddof=1)) / 2)
    diff = synthetic.mean(axis=0) - real.mean(axis=0)
    return np.divide(diff, pooled, out=np.zeros_like(diff, dtype=float), where=pooled > 0)


def mahalanobis_shift(real: np.ndarray, synthetic: np.ndarray, ridge: float = 1e-6) -> float:
    """Mahalanobis distance between the two sets' mean feature vectors in their pooled covariance
    (the mean of the two; a ``ridge`` × its mean variance added to the diagonal, so that a
    constant or collinear feature does not make it infinite). The pooled covariance is linear
    discriminant analysis': a synthetic set much tighter than the real one is easier to
    separate than the real spread alone says.

    Example:
        >>> real = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.1], [3.0, 2.9]])
        >>> round(mahalanobis_shift(real, real + [0.1, -0.1]), 1)  # against the relation: far
        2.6
    """
    cov = np.atleast_2d((np.cov(real, rowvar=False) + np.cov(synthetic, rowvar=False)) / 2)
    cov = cov + ridge * max(float(np.trace(cov)) / len(cov), 1e-300) * np.eye(len(cov))
    shift = synthetic.mean(axis=0) - real.mean(axis=0)
    return float(np.sqrt(shift @ np.linalg.solve(cov, shift)))


def texture_diagnosis(real: np.ndarray, synthetic: np.ndarray, groups: Sequence[str], names: Sequence[str], *,
                      folds: int = 5, seed: int = 0) -> dict:
    """Per-feature differences, the most telling pair, the joint mean shift.

    Args:
        real, synthetic: ``(n, d)`` texture features (``feature_matrix``) of case i's real and
            synthetic map.
        groups: case i's patient (held out together, as in the C2ST).
        names: the d feature names.
        folds, seed: as the C2ST's.

    Returns:
        ``{"features": {name: {"d", "sd_ratio", "accuracy_alone"}},
        "pair": {"features": [a, b], "accuracy", "mahalanobis"}, "mahalanobis",
        "mahalanobis_accuracy"}``; ``sd_ratio`` synthetic / real (None where the real sd is 0);
        ``pair`` None with fewer than two features; the whole shift None with no more cases
        than features + 1.

    Raises:
        ValueError: shapes that disagree with each other or with ``names``.
    """
    real, synthetic = np.asarray(real, float), np.asarray(synthetic, float)
    if real.ndim != 2 or real.shape != synthetic.shape or real.shape[1] != len(names) or len(groups) != len(real):
        raise ValueError(f"expected real and synthetic features (n, {len(names)}) with one group per row, got "
                         f"{real.shape}, {synthetic.shape} and {len(groups)} groups")
    groups = [str(g) for g in groups]

    def accuracy(columns: list[int]) -> float:
        res = two_sample_test(list(real[:, columns]), list(synthetic[:, columns]), groups, groups, TextureObserver(),
                              folds=folds, seed=seed)
        return float(res.accuracy)

    d = standardised_difference(real, synthetic)
    real_sd, syn_sd = real.std(axis=0, ddof=1), synthetic.std(axis=0, ddof=1)
    features = {name: {"d": float(d[j]), "sd_ratio": float(syn_sd[j] / real_sd[j]) if real_sd[j] > 0 else None,
                       "accuracy_alone": accuracy([j])}
                for j, name in enumerate(names)}
    pair = None
    if len(names) >= 2:
        scores = {(i, j): accuracy([i, j]) for i, j in combinations(range(len(names)), 2)}
        (i, j), best = max(scores.items(), key=lambda kv: kv[1])  # first pair on ties: deterministic
        pair = {"features": [names[i], names[j]], "accuracy": best,
                "mahalanobis": mahalanobis_shift(real[:, [i, j]], synthetic[:, [i, j]])}
    # with no more cases than features the covariance is singular and the distance meaningless
    delta = mahalanobis_shift(real, synthetic) if len(real) > len(names) + 1 else None
    return {"features": features, "pair": pair, "mahalanobis": delta,
            "mahalanobis_accuracy": None if delta is None else float(norm.cdf(delta / 2))}
