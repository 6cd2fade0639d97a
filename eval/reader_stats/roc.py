"""Empirical ROC AUC with DeLong's variance, fast (Sun & Xu 2014), and DeLong tests.

Notation: ``m`` positive (abnormal) cases X, ``n`` negative cases Y, ``k`` score vectors
(modalities or readers) rated on the same cases. Higher score = more likely positive; ties
count one half.

* AUC ``θ = (1/mn) Σ_i Σ_j ψ(X_i, Y_j)``, ``ψ = 1, ½, 0`` for ``X > Y, =, <``.
* Structural components (placements): ``V10_i = (1/n) Σ_j ψ(X_i, Y_j)`` for each positive,
  ``V01_j = (1/m) Σ_i ψ(X_i, Y_j)`` for each negative.
* DeLong, DeLong & Clarke-Pearson (1988): ``S = S10/m + S01/n`` where ``S10``/``S01`` are the
  k×k sample covariances (n − 1 divisor) of the placements.
* Sun & Xu (2014): with midranks ``T_x`` (of X among X), ``T_y`` (of Y among Y) and ``T_z``
  (over all m + n), ``V10 = (T_z − T_x)/n`` and ``V01 = 1 − (T_z − T_y)/m``: one sort,
  O(k·N log N), no m×n matrix.

Reproduces pROC (Robin et al. 2011) on its ``aSAH`` data: ``var``, ``cov``, ``roc.test``
paired (Z) and unpaired (D, Welch–Satterthwaite df), ``ci.auc`` (tests/test_roc.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from elastogan.errors import UserError



@dataclass(frozen=True)
class DeLong:
    """AUCs, their DeLong covariance and the placements they come from.

    Attributes:
        auc: (k,) empirical AUCs.
        cov: (k, k) DeLong covariance of the AUCs.
        v10: (k, m) placements of the positive cases.
        v01: (k, n) placements of the negative cases.
    """

    auc: np.ndarray
    cov: np.ndarray
    v10: np.ndarray
    v01: np.ndarray

    @property
    def se(self) -> np.ndarray:
        """(k,) DeLong standard errors."""
        return np.sqrt(np.diag(self.cov))


def check_truth(truth: np.ndarray, what: str = "ROC") -> np.ndarray:
    """Validate a 0/1 truth vector with both classes; returns it as a bool array."""
    truth = np.asarray(truth)
    if truth.ndim != 1:
        raise ValueError(f"expected a 1-D truth vector, got shape {truth.shape}")
    if not np.isin(truth, (0, 1)).all():
        raise UserError(f"{what}: truth must be 0 or 1")
    pos = truth.astype(bool)
    m, n = int(pos.sum()), int((~pos).sum())
    if m == 0 or n == 0:
        raise UserError(
            f"{what}: AUC undefined with one-class truth ({m} positive, {n} negative cases); "
            "need at least one of each"
        )
    return pos


def _midranks(x: np.ndarray) -> np.ndarray:
    """Midranks along the last axis (1-based; ties share their average rank)."""
    return stats.rankdata(x, method="average", axis=-1)


def delong(scores: np.ndarray, truth: np.ndarray) -> DeLong:
    """Fast DeLong AUCs and covariance of k score vectors on the same cases (Sun & Xu 2014).

    Args:
        scores: (k, N) or (N,) ratings; higher = more likely positive.
        truth: (N,) 0/1, 1 = positive.

    Example:
        >>> r = delong(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
        >>> float(r.auc[0])
        0.75
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    pos = check_truth(truth)
    if scores.shape[1] != pos.size:
        raise ValueError(f"expected scores with {pos.size} cases, got shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise UserError("ROC: ratings must be finite numbers")
    auc, cov, v10, v01 = delong_batch(scores, pos)
    return DeLong(auc=auc, cov=cov, v10=v10, v01=v01)


def delong_batch(scores: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The arithmetic of :func:`delong` over any leading axes, unchecked (for simulations).

    Args:
        scores: (..., k, N) finite ratings.
        pos: (N,) bool, True = positive; both classes present.

    Returns:
        AUCs (..., k), covariance (..., k, k), placements V10 (..., k, m) and V01 (..., k, n).
    """
    x, y = scores[..., pos], scores[..., ~pos]  # (..., k, m), (..., k, n)
    m, n = x.shape[-1], y.shape[-1]
    tz = _midranks(np.concatenate([x, y], axis=-1))
    tx, ty = _midranks(x), _midranks(y)
    v10 = (tz[..., :m] - tx) / n
    v01 = 1.0 - (tz[..., m:] - ty) / m
    auc = v10.mean(axis=-1)
    cov = _sample_cov(v10) / m + _sample_cov(v01) / n
    return auc, cov, v10, v01


def _sample_cov(v: np.ndarray) -> np.ndarray:
    """(..., k, k) covariance (divisor n − 1) of the rows of (..., k, n); zero for n = 1."""
    n = v.shape[-1]
    if n < 2:
        return np.zeros((*v.shape[:-1], v.shape[-2]))
    dev = v - v.mean(axis=-1, keepdims=True)
    return dev @ np.swapaxes(dev, -1, -2) / (n - 1)


def auc_ci(auc: float, se: float, level: float = 0.95) -> tuple[float, float]:
    """Wald interval ``θ ± z·se`` clipped to [0, 1], as pROC's ``ci.auc(method="delong")``."""
    z = float(stats.norm.ppf(0.5 + level / 2))
    return (max(0.0, float(auc - z * se)), min(1.0, float(auc + z * se)))


def paired_test(d: DeLong, a: int = 0, b: int = 1, level: float = 0.95) -> dict[str, float | list[float]]:
    """DeLong test of ``θ_a = θ_b`` on the same cases: ``Z = (θ_a − θ_b)/sqrt(V_a + V_b − 2C_ab)``.

    Returns:
        ``diff`` (θ_a − θ_b), ``se``, ``z``, two-sided ``p``, one-sided ``p_greater`` (H1: θ_a > θ_b)
        and ``p_less``, and the Wald ``ci`` of the difference.
    """
    diff = float(d.auc[a] - d.auc[b])
    var = float(d.cov[a, a] + d.cov[b, b] - 2 * d.cov[a, b])
    if var <= 0:
        if diff == 0:
            return {"diff": 0.0, "se": 0.0, "z": 0.0, "p": 1.0, "p_greater": 0.5, "p_less": 0.5,
                    "ci": [0.0, 0.0], "note": "identical placements: the two ratings order the cases alike"}
        # As in mrmc's per-reader rows: a non-zero difference with no variance has no z or p
        # (not p = 1, as if there were no difference); the rest of the report still stands.
        return {"diff": diff, "se": 0.0, "z": None, "p": None, "p_greater": None, "p_less": None, "ci": None,
                "note": "paired DeLong test undefined: zero variance of a non-zero AUC difference"}
    se = math.sqrt(var)
    z = diff / se
    q = float(stats.norm.ppf(0.5 + level / 2))
    return {
        "diff": diff,
        "se": se,
        "z": z,
        "p": float(2 * stats.norm.sf(abs(z))),
        "p_greater": float(stats.norm.sf(z)),
        "p_less": float(stats.norm.cdf(z)),
        "ci": [float(diff - q * se), float(diff + q * se)],
    }


def unpaired_test(d1: DeLong, d2: DeLong, level: float = 0.95) -> dict[str, float | list[float]]:
    """DeLong test of two AUCs on independent cases (pROC's unpaired ``roc.test``).

    ``D = (θ1 − θ2)/sqrt(V1 + V2)`` against Student's t with Welch–Satterthwaite df
    ``(V1 + V2)² / (V1²/(N1 − 1) + V2²/(N2 − 1))``, N = cases of each ROC.

    Returns:
        ``diff``, ``se``, ``z`` (the D statistic), ``df``, two-sided ``p`` and the t ``ci``.
    """
    if d1.auc.size != 1 or d2.auc.size != 1:
        raise ValueError("unpaired_test takes two single-ROC DeLong results")
    v1, v2 = float(d1.cov[0, 0]), float(d2.cov[0, 0])
    n1 = d1.v10.shape[1] + d1.v01.shape[1]
    n2 = d2.v10.shape[1] + d2.v01.shape[1]
    diff = float(d1.auc[0] - d2.auc[0])
    if v1 + v2 <= 0:
        # Both AUCs are 0 or 1 (a small reader sample separates the classes perfectly, common
        # with a dozen cases per modality): equal ones do not differ; unequal ones have no z or p.
        if diff == 0:
            return {"diff": 0.0, "se": 0.0, "z": 0.0, "df": None, "p": 1.0, "ci": [0.0, 0.0],
                    "note": "both AUCs are perfect and equal: no difference to test"}
        return {"diff": diff, "se": 0.0, "z": None, "df": None, "p": None, "ci": None,
                "note": "unpaired DeLong test undefined: both AUCs have zero variance"}
    se = math.sqrt(v1 + v2)
    stat = diff / se
    df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    q = float(stats.t.ppf(0.5 + level / 2, df))
    return {
        "diff": diff,
        "se": se,
        "z": stat,
        "df": float(df),
        "p": float(2 * stats.t.sf(abs(stat), df)),
        "ci": [float(diff - q * se), float(diff + q * se)],
    }


def roc_curve(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical ROC operating points (FPR, TPR) at every distinct threshold, from (0, 0) to (1, 1)."""
    scores = np.asarray(scores, dtype=np.float64)
    pos = check_truth(truth)
    thresholds = np.unique(scores)[::-1]
    tpr = [0.0] + [float((scores[pos] >= t).mean()) for t in thresholds]
    fpr = [0.0] + [float((scores[~pos] >= t).mean()) for t in thresholds]
    return np.asarray(fpr), np.asarray(tpr)


def auc_mann_whitney(scores: np.ndarray, truth: np.ndarray) -> float:
    """Reference O(m·n) AUC by direct pair comparison (the peer in benchmarks and tests)."""
    scores = np.asarray(scores, dtype=np.float64)
    pos = check_truth(truth)
    x, y = scores[pos][:, None], scores[~pos][None, :]
    return float(((x > y) + 0.5 * (x == y)).mean())
