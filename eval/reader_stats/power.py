"""Power and sample size of an MRMC ROC study (Hillis, Obuchowski & Berbaum 2011).

The Obuchowski–Rockette model of a planned study with ``r`` readers and ``K`` cases, two or
more modalities, random readers and random cases (notation of :mod:`~elastogan.eval.reader_stats.mrmc`):
``σ²_TR`` (modality × reader variance of the AUCs) and the error (co)variances ``Var``,
``Cov1``–``Cov3``. Those come from a pilot study of ``K₀`` cases and scale with the cases:
``Var(K) = Var·K₀/K`` (likewise Cov1–3), the case mix (fraction abnormal) kept. With the
effect ``δ`` (difference of the two modalities' mean AUCs; for t > 2 modalities, two of them
differ by δ and the rest equal the mean, Hillis et al.'s "smallest" configuration)::

    D      = σ²_TR + Var − Cov1 + (r − 1)·max(Cov2 − Cov3, 0)
    λ      = r·δ² / (2·D)                               (noncentrality)
    ddf    = D² / [(σ²_TR + Var − Cov1 − max(Cov2 − Cov3, 0))² / ((t − 1)(r − 1))]
    power  = P(F′(t − 1, ddf; λ) > F_{1−α}(t − 1, ddf))

(Hillis, Obuchowski & Berbaum 2011, Acad Radiol 18:129, eqs. 8–10; the OR test of
:func:`~elastogan.eval.reader_stats.mrmc.hillis_f_test`). A pilot's ``σ²_TR`` estimate
``MS(T×R) − Var + Cov1 + Cov2 − Cov3`` below 0 is taken as 0, as they recommend.

**Split-plot** (``blocks`` G ≥ 2; Obuchowski 2009): the readers fall into G blocks of
``J = r/G``, each block reads its own ``K/G`` cases in every modality, so every AUC rests on
``K/G`` cases: the (co)variances are taken at ``K/G``, and with the all-pairs averages of
:mod:`~elastogan.eval.reader_stats.mrmc`::

    D      = σ²_TR + Var − Cov1 + (J − 1)·max(Cov2 − Cov3, 0)
    E[MS(T×R)] = σ²_TR + Var − Cov1 − (J − 1)/(r − 1)·max(Cov2 − Cov3, 0)
    ddf    = D² / [E[MS(T×R)]² / ((t − 1)(r − 1))]

which is the crossed formula for G = 1. The pilot's Cov2 and Cov3 are the covariances of
readers who read the same cases, as within a block.

As ``K → ∞`` the power tends to that of ``λ = r·δ²/(2σ²_TR)``: reader variability alone caps
what more cases can buy; :func:`cases_needed` says so (None) instead of searching forever.

Checked against the Roe–Metz model (tests/test_power.py; figures in docs/statistics.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from scipy import stats

from elastogan.errors import UserError

MAX_CASES = 100_000


@dataclass(frozen=True)
class ORParameters:
    """OR-model parameters for power: σ²_TR and the error (co)variances at ``n_cases`` cases.

    Attributes:
        var_tr: σ²_TR, modality × reader variance of the AUCs (≥ 0).
        var: Var, error variance of one reader's AUC.
        cov1: same reader, different modality.
        cov2: different reader, same modality.
        cov3: different reader and modality.
        n_cases: the number of cases ``var``… belong to.
    """

    var_tr: float
    var: float
    cov1: float
    cov2: float
    cov3: float
    n_cases: float

    def __post_init__(self) -> None:
        for name in ("var_tr", "var", "cov1", "cov2", "cov3", "n_cases"):
            v = getattr(self, name)
            if not math.isfinite(v):
                raise UserError(f"{name} must be a finite number, got {v}")
        if self.var_tr < 0:
            raise UserError(f"σ²_TR (var_tr) must be ≥ 0, got {self.var_tr}")
        if self.var <= 0:
            raise UserError(f"the error variance Var must be > 0, got {self.var}")
        if self.n_cases <= 0:
            raise UserError(f"the cases the variances refer to must be > 0, got {self.n_cases}")
        if self.var - self.cov1 < 0:
            raise UserError(f"expected Var ≥ Cov1 (a correlation ≤ 1), got Var {self.var} and Cov1 {self.cov1}")

    def at(self, n_cases: float) -> ORParameters:
        """The same study with ``n_cases`` cases: error (co)variances scaled by ``K₀/K``."""
        if n_cases <= 0:
            raise UserError(f"number of cases must be > 0, got {n_cases}")
        f = self.n_cases / n_cases
        return replace(self, var=self.var * f, cov1=self.cov1 * f, cov2=self.cov2 * f, cov3=self.cov3 * f,
                       n_cases=n_cases)


def from_pilot(result: dict) -> tuple[ORParameters, dict]:
    """OR parameters from a pilot's ``elastogan stats roc --out`` JSON (its ``mrmc`` block).

    Returns:
        The parameters and a dict of notes about the pilot (design, readers, modalities,
        whether σ²_TR was negative and set to 0).

    Raises:
        UserError: no MRMC analysis in the file, or one that is undefined, or a design other
            than paired (the case scaling assumes every reader read every case).
    """
    mr = result.get("mrmc") if isinstance(result, dict) else None
    if not isinstance(mr, dict):
        raise UserError("the pilot JSON has no \"mrmc\" block: write it with `elastogan stats roc FILE --out JSON` "
                        "on a study with at least 2 readers")
    if "undefined" in mr:
        raise UserError(f"the pilot's MRMC analysis is undefined: {mr['undefined']}")
    try:
        comp, design = mr["components"], mr["design"]
        ms_tr = mr["random_readers_random_cases"]["MS_TR"]
        n_cases = mr["n_cases"]
    except (KeyError, TypeError) as e:
        raise UserError(f"the pilot JSON's \"mrmc\" block lacks {e}; rewrite it with this version's `stats roc`") from None
    if design != "paired":
        raise UserError(f"power from a pilot needs a paired (fully crossed) pilot, got a {design} design; "
                        "state the variance components with flags instead")
    k0 = next(iter(n_cases.values()))
    var_tr = ms_tr - comp["Var"] + comp["Cov1"] + comp["Cov2"] - comp["Cov3"]
    notes = {"design": design, "n_readers": mr["n_readers"], "n_cases": k0, "modalities": list(n_cases),
             "covariance": mr.get("covariance"), "var_tr_estimate": var_tr}
    if var_tr < 0:
        notes["var_tr_note"] = f"the pilot's σ²_TR estimate {var_tr:.3g} is negative; taken as 0"
    params = ORParameters(max(var_tr, 0.0), comp["Var"], comp["Cov1"], comp["Cov2"], comp["Cov3"], float(k0))
    return params, notes


def _check_blocks(readers: int, blocks: int) -> None:
    if blocks < 1 or readers % blocks:
        raise UserError(f"{readers} readers cannot form {blocks} equal blocks: expected readers a multiple of blocks")


def _check(effect: float, readers: int, alpha: float, n_modalities: int) -> None:
    if not (math.isfinite(effect) and 0 < abs(effect) < 1):
        raise UserError(f"effect (AUC difference) must be between 0 and 1 in size, got {effect}")
    if readers < 2:
        raise UserError(f"power needs at least 2 readers, got {readers}")
    if not 0 < alpha < 1:
        raise UserError(f"alpha must be between 0 and 1, got {alpha}")
    if n_modalities < 2:
        raise UserError(f"power compares at least 2 modalities, got {n_modalities}")


def power(params: ORParameters, effect: float, readers: int, cases: float, *, alpha: float = 0.05,
          n_modalities: int = 2, blocks: int = 1) -> dict:
    """Power of the OR random-readers test of a study with ``readers`` × ``cases`` (module docstring),
    fully crossed or (``blocks`` > 1) split-plot with ``cases`` in all.

    Returns:
        ``power``, the noncentrality ``lambda``, ``df1``, ``ddf``, ``denominator`` (D) and the
        critical ``F``.

    Example:
        >>> p = ORParameters(var_tr=0.0002, var=0.0008, cov1=0.00035, cov2=0.00034, cov3=0.00024, n_cases=114)
        >>> round(power(p, 0.044, 5, 114)["power"], 3)
        0.518
    """
    _check(effect, readers, alpha, n_modalities)
    _check_blocks(readers, blocks)
    q = params.at(cases / blocks)
    t, r, j = n_modalities, readers, readers // blocks
    cdiff = max(q.cov2 - q.cov3, 0.0)
    den = q.var_tr + q.var - q.cov1 + (j - 1) * cdiff
    ms_tr = q.var_tr + q.var - q.cov1 - (j - 1) / (r - 1) * cdiff
    if ms_tr <= 0:
        raise UserError("power undefined: σ²_TR + Var − Cov1 − (Cov2 − Cov3) ≤ 0 (no reader-by-modality variation)")
    df1 = t - 1
    ddf = den**2 / (ms_tr**2 / ((t - 1) * (r - 1)))
    lam = r * effect**2 / (2 * den)
    crit = float(stats.f.ppf(1 - alpha, df1, ddf))
    return {"power": float(stats.ncf.sf(crit, df1, ddf, lam)), "lambda": float(lam), "df1": df1, "ddf": float(ddf),
            "denominator": float(den), "F_critical": crit, "readers": r, "cases": cases, "blocks": blocks}


def cases_needed(params: ORParameters, effect: float, readers: int, target: float, *, alpha: float = 0.05,
                 n_modalities: int = 2, blocks: int = 1, max_cases: int = MAX_CASES) -> int | None:
    """The fewest cases (whole numbers, a multiple of ``blocks``) for ``target`` power with ``readers`` readers.

    None when even ``max_cases`` cases fall short (reader variability σ²_TR caps the power).
    """
    if not 0 < target < 1:
        raise UserError(f"target power must be between 0 and 1, got {target}")
    _check_blocks(readers, blocks)

    def pw(per_block: int) -> float:
        return power(params, effect, readers, per_block * blocks, alpha=alpha, n_modalities=n_modalities,
                     blocks=blocks)["power"]

    top = max(max_cases // blocks, 1)
    if pw(top) < target:
        return None
    lo, hi = 1, top  # pw(lo) may already suffice: bisection on the monotone power
    if pw(lo) >= target:
        return lo * blocks
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if pw(mid) >= target else (mid, hi)
    return hi * blocks


def plan(params: ORParameters, effect: float, readers: list[int], *, target: float | None = 0.8,
         cases: list[int] | None = None, alpha: float = 0.05, n_modalities: int = 2, blocks: int = 1) -> dict:
    """The ``stats power`` result: per reader count, the cases needed for ``target`` power, or
    (with ``cases``) the power of each readers × cases design; split-plot with ``blocks`` > 1."""
    kw = {"alpha": alpha, "n_modalities": n_modalities, "blocks": blocks}
    out: dict = {"model": "Obuchowski-Rockette / Hillis (random readers, random cases)",
                 "source": "Hillis, Obuchowski & Berbaum 2011, Acad Radiol 18:129",
                 "design": "fully crossed" if blocks == 1 else f"split-plot, {blocks} blocks",
                 "effect": effect, "alpha": alpha, "n_modalities": n_modalities, "blocks": blocks,
                 "parameters": {"var_tr": params.var_tr, "var": params.var, "cov1": params.cov1, "cov2": params.cov2,
                                "cov3": params.cov3, "n_cases": params.n_cases}}
    if cases:
        out["grid"] = [power(params, effect, r, k, **kw) for r in readers for k in cases]
    else:
        rows = []
        for r in readers:
            k = cases_needed(params, effect, r, target, **kw)
            row = {"readers": r, "cases": k}
            if k is None:
                cap = power(params, effect, r, MAX_CASES // blocks * blocks, **kw)["power"]
                row["note"] = f"not reachable: {r} readers reach at most power {cap:.3f} (reader variability σ²_TR)"
            else:
                row["power"] = power(params, effect, r, k, **kw)["power"]
            rows.append(row)
        out["target_power"] = target
        out["sample_sizes"] = rows
    return out
