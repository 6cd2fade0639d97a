"""The Roe–Metz model: simulated MRMC ratings with a known answer (Roe & Metz 1997).

Axes: ``s`` simulated study, ``i`` modality (t), ``j`` reader (r), ``k`` case (N = n₀ + n₁),
``d`` truth class (0 normal, 1 abnormal). The decision variable is

    ``X_ijk = d_k·μ_i + R_jd + (TR)_ijd + C_k + (TC)_ik + (RC)_jk + E_ijk``

with every term an independent zero-mean normal; the reader terms are drawn separately for
each truth class (so they move a reader's AUC), the case terms once per case. With the
case-level variance ``s² = σ²_C + σ²_TC + σ²_RC + σ²_E``, reader j's true AUC in modality i is
``Φ((μ_i + R_j1 − R_j0 + TR_ij1 − TR_ij0) / √(2s²))`` and the population (reader-averaged)
AUC is ``Φ(μ_i / √(2(s² + σ²_R + σ²_TR)))``. Roe & Metz's configurations have s² = 1.

The simulations that check the MRMC analysis and the power formulas draw from this model with
a seeded ``numpy.random.Generator``; :func:`or_test_paired` and :func:`or_test_split_plot` are
the vectorised OR tests of many simulated fully crossed or split-plot studies (the functions of
:mod:`~elastogan.eval.reader_stats.mrmc` with DeLong covariance; tests/test_power.py checks that
they give the F of ``mrmc.analyse``). A split-plot study of G blocks is G independent crossed
studies side by side: readers and cases differ between blocks.

Example:
    >>> m = RoeMetz(var_r=0.0, var_tr=0.0, var_c=0.3, var_tc=0.3, var_rc=0.2, var_e=0.2)
    >>> round(m.population_auc(1.5), 4)
    0.8556
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

from elastogan.eval.reader_stats import mrmc, roc


@dataclass(frozen=True)
class RoeMetz:
    """Variance components of the Roe–Metz model (decision-variable scale).

    Attributes:
        var_r: σ²_R, reader (per truth class).
        var_tr: σ²_TR, modality × reader (per truth class).
        var_c: σ²_C, case.
        var_tc: σ²_TC, modality × case.
        var_rc: σ²_RC, reader × case.
        var_e: σ²_E, pure error (modality × reader × case).
    """

    var_r: float
    var_tr: float
    var_c: float
    var_tc: float
    var_rc: float
    var_e: float

    def __post_init__(self) -> None:
        for name in ("var_r", "var_tr", "var_c", "var_tc", "var_rc", "var_e"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"expected {name} ≥ 0, got {v}")
        if self.case_variance <= 0:
            raise ValueError("expected a positive case-level variance σ²_C + σ²_TC + σ²_RC + σ²_E")

    @property
    def case_variance(self) -> float:
        """``s² = σ²_C + σ²_TC + σ²_RC + σ²_E``."""
        return self.var_c + self.var_tc + self.var_rc + self.var_e

    def population_auc(self, mu: float) -> float:
        """AUC averaged over readers: ``Φ(μ / √(2(s² + σ²_R + σ²_TR)))``."""
        return float(stats.norm.cdf(mu / math.sqrt(2 * (self.case_variance + self.var_r + self.var_tr))))

    def mu_for_auc(self, auc: float) -> float:
        """The separation μ whose population AUC is ``auc`` (inverse of :meth:`population_auc`)."""
        if not 0 < auc < 1:
            raise ValueError(f"expected an AUC in (0, 1), got {auc}")
        return float(stats.norm.ppf(auc) * math.sqrt(2 * (self.case_variance + self.var_r + self.var_tr)))


def simulate(model: RoeMetz, mu: Sequence[float], n_readers: int, n_normal: int, n_abnormal: int,
             n_studies: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Ratings of ``n_studies`` fully crossed studies.

    Args:
        model: the variance components.
        mu: (t,) separation of the abnormal from the normal cases, per modality.
        n_readers, n_normal, n_abnormal, n_studies: sizes.
        rng: the (seeded) generator.

    Returns:
        ratings (s, t, r, N) and truth (N,) with the n₀ normal cases first.
    """
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 1 or mu.size < 1:
        raise ValueError(f"expected mu as a 1-D sequence of separations, got shape {mu.shape}")
    if min(n_readers, n_normal, n_abnormal, n_studies) < 1:
        raise ValueError("expected at least 1 reader, 1 normal and 1 abnormal case and 1 study")
    t, r, n = mu.size, n_readers, n_normal + n_abnormal
    truth = np.r_[np.zeros(n_normal, np.int64), np.ones(n_abnormal, np.int64)]
    sd = {k: math.sqrt(v) for k, v in vars(model).items()}
    reader = rng.normal(0, sd["var_r"], (n_studies, 1, r, 2))[..., truth]  # (s, 1, r, N)
    reader_tr = rng.normal(0, sd["var_tr"], (n_studies, t, r, 2))[..., truth]  # (s, t, r, N)
    case = rng.normal(0, sd["var_c"], (n_studies, 1, 1, n))
    case_tc = rng.normal(0, sd["var_tc"], (n_studies, t, 1, n))
    case_rc = rng.normal(0, sd["var_rc"], (n_studies, 1, r, n))
    error = rng.normal(0, sd["var_e"], (n_studies, t, r, n))
    ratings = mu[None, :, None, None] * truth + reader + reader_tr + case + case_tc + case_rc + error
    return ratings, truth


def or_test_split_plot(ratings: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """OR random-readers test (DeLong covariance per block) of many split-plot studies at once.

    Args:
        ratings: (s, G, t, J, N_b): G blocks, each J readers on its own N_b cases (e.g. G·s
            studies of :func:`simulate` reshaped); reader ``g·J + j`` is reader j of block g.
        truth: (N_b,) 0/1, the same case mix in every block.

    Returns:
        As :func:`or_test_paired` (without ``MS_T``/``MS_TR``), per study.
    """
    s, g, t, j, n = ratings.shape
    pos = roc.check_truth(truth)
    auc_b, cov_b, _, _ = roc.delong_batch(ratings.reshape(s, g, t * j, n), pos)  # (s, G, t·J), (s, G, t·J, t·J)
    r = g * j
    auc = auc_b.reshape(s, g, t, j).transpose(0, 2, 1, 3).reshape(s, t, r)  # reader index g·J + j
    cov = np.zeros((s, t * r, t * r))
    for b in range(g):
        idx = np.array([i * r + b * j + jj for i in range(t) for jj in range(j)])
        cov[:, idx[:, None], idx[None, :]] = cov_b[:, b]
    comp = mrmc.covariance_components_batch(cov, t, r)
    ms_t, _, ms_tr = mrmc.mean_squares(auc)
    f, ddf, p = mrmc.hillis_f_test(ms_t, ms_tr, comp["Cov2"], comp["Cov3"], t, r)
    means = auc.mean(axis=-1)
    return {"F": f, "df2": ddf, "p": p, "diff": means[:, 0] - means[:, -1], **comp}


def or_test_paired(ratings: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """OR random-readers test (DeLong covariance) of many fully crossed studies at once.

    Args:
        ratings: (s, t, r, N) continuous ratings.
        truth: (N,) 0/1.

    Returns:
        Per study (s,): ``F``, ``df2``, ``p``, ``diff`` (mean AUC of the first modality minus the
        second, for t = 2) and the OR quantities ``Var``, ``Cov1``–``Cov3``, ``MS_T``, ``MS_TR``.
    """
    s, t, r, n = ratings.shape
    pos = roc.check_truth(truth)
    auc, cov, _, _ = roc.delong_batch(ratings.reshape(s, t * r, n), pos)
    auc = auc.reshape(s, t, r)
    comp = mrmc.covariance_components_batch(cov, t, r)
    ms_t, _, ms_tr = mrmc.mean_squares(auc)
    f, ddf, p = mrmc.hillis_f_test(ms_t, ms_tr, comp["Cov2"], comp["Cov3"], t, r)
    means = auc.mean(axis=-1)
    return {"F": f, "df2": ddf, "p": p, "diff": means[:, 0] - means[:, -1], "MS_T": ms_t, "MS_TR": ms_tr,
            **comp}
