"""Multi-reader multi-case ROC analysis: Obuchowski–Rockette (1995) with Hillis's df.

Notation: ``t`` modalities (tests) i, ``r`` readers j, AUC estimates ``θ_ij``; ``θ̄_i.`` the
modality means, ``θ̄..`` the grand mean. The OR model treats the error covariance of the
``θ_ij`` across case samples through four averages:

* ``Var``: variance of one θ_ij; ``Cov1``: same reader, different modality;
  ``Cov2``: different reader, same modality; ``Cov3``: different reader and modality.
* estimated by the jackknife over cases or by DeLong's method (``covariance=``).

Mean squares: ``MS(T) = r/(t−1) Σ_i (θ̄_i. − θ̄..)²``,
``MS(T×R) = Σ_ij (θ_ij − θ̄_i. − θ̄_.j + θ̄..)² / ((t−1)(r−1))``,
``MS(R)_i = Σ_j (θ_ij − θ̄_i.)² / (r − 1)``.

* Random readers, random cases (Hillis 2007, 2008):
  ``F = MS(T) / (MS(T×R) + r·max(Cov2 − Cov3, 0))`` on ``t − 1`` and
  ``ddf = (MS(T×R) + r·max(Cov2 − Cov3, 0))² / (MS(T×R)² / ((t−1)(r−1)))`` df;
  CI of a difference ``± t_ddf · sqrt(2/r · (MS(T×R) + r·max(Cov2 − Cov3, 0)))``.
  Single modality: ``se_i² = MS(R)_i / r + max(Cov2_i, 0)``,
  ``df_i = (MS(R)_i + r·max(Cov2_i, 0))² / (MS(R)_i² / (r − 1))``.
* Fixed readers, random cases: ``χ² = (t−1)·MS(T) / (Var − Cov1 + (r−1)·max(Cov2 − Cov3, 0))``
  on ``t − 1`` df; per-reader tests use that reader's own variances and covariance.
* Random readers, fixed cases: ``F = MS(T)/MS(T×R)`` on ``t − 1`` and ``(t−1)(r−1)`` df.

Designs, inferred from the case ids: *paired* (every modality read on the same cases) or
*nested* (cases within modality: disjoint case sets, so Cov1 = Cov3 = 0). Every reader must
read every case of a modality.

Reproduces OR-DBM MRMC 2.51 and MRMCaov (jackknife and DeLong covariance; random, fixed-reader
and fixed-case analyses; paired and nested designs) on the Van Dyke et al. (1993) data
(tests/test_mrmc.py).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from elastogan.errors import UserError
from elastogan.eval.roc import check_truth, delong

COVARIANCES = ("jackknife", "delong")


@dataclass(frozen=True)
class ReaderStudy:
    """Ratings of a complete MRMC study, laid out per modality.

    Attributes:
        modalities: names, in order of first appearance.
        readers: names, in order of first appearance.
        cases: per modality, the case ids (one array each).
        truth: per modality, (N_i,) 0/1.
        ratings: per modality, (r, N_i) ratings.
        design: ``"paired"`` (same cases in every modality) or ``"nested"`` (disjoint).
    """

    modalities: tuple[str, ...]
    readers: tuple[str, ...]
    cases: tuple[np.ndarray, ...]
    truth: tuple[np.ndarray, ...]
    ratings: tuple[np.ndarray, ...]
    design: str


def arrange(
    case: np.ndarray, truth: np.ndarray, reader: np.ndarray, modality: np.ndarray, rating: np.ndarray
) -> ReaderStudy:
    """Lay long-format ratings out as a complete study; infer the paired/nested design.

    Raises:
        UserError: a reader who read nothing (or not every case) in a modality, case sets
            partly shared between modalities, one-class truth.
    """
    modalities = tuple(dict.fromkeys(modality.tolist()))
    readers = tuple(dict.fromkeys(reader.tolist()))
    case_sets = []
    for mod in modalities:
        sel = modality == mod
        case_sets.append(tuple(dict.fromkeys(case[sel].tolist())))
    for (a, ca), (b, cb) in itertools.combinations(zip(modalities, case_sets), 2):
        shared = len(set(ca) & set(cb))
        if shared and (set(ca) != set(cb)):
            raise UserError(
                f"modalities {a!r} and {b!r} share {shared} of their {len(ca)} and {len(cb)} cases: "
                "the design must be paired (the same cases) or nested (no case in both)"
            )
    paired = len(modalities) == 1 or all(set(c) == set(case_sets[0]) for c in case_sets)
    if paired:
        order = case_sets[0]
        case_sets = [order] * len(modalities)
    out_cases, out_truth, out_ratings = [], [], []
    for mod, ids in zip(modalities, case_sets):
        col = {c: k for k, c in enumerate(ids)}
        grid = np.full((len(readers), len(ids)), np.nan)
        t = np.zeros(len(ids), dtype=np.int64)
        sel = np.flatnonzero(modality == mod)
        for j, rd in enumerate(readers):
            rows = sel[reader[sel] == rd]
            if rows.size == 0:
                raise UserError(f"reader {rd!r} read nothing in modality {mod!r}")
            idx = np.array([col[c] for c in case[rows]])
            grid[j, idx] = rating[rows]
            t[idx] = truth[rows]
            missing = np.flatnonzero(np.isnan(grid[j]))
            if missing.size:
                raise UserError(
                    f"reader {rd!r} has no rating for {missing.size} of the {len(ids)} cases of modality "
                    f"{mod!r} (e.g. case {ids[missing[0]]!r}); MRMC needs every reader on every case"
                )
        check_truth(t, f"modality {mod!r}")
        out_cases.append(np.array(ids, dtype=object))
        out_truth.append(t)
        out_ratings.append(grid)
    return ReaderStudy(modalities, readers, tuple(out_cases), tuple(out_truth), tuple(out_ratings),
                       "paired" if paired else "nested")


def _leave_one_out(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (k,) and their leave-one-case-out values (k, N), from the placements in O(1) each.

    Removing positive ``p`` gives ``(m·θ − V10_p)/(m − 1)``, removing negative ``q`` gives
    ``(n·θ − V01_q)/(n − 1)``; the mean of the leave-one-out values is θ itself.
    """
    d = delong(scores, truth)
    m, n = d.v10.shape[1], d.v01.shape[1]
    if m < 2 or n < 2:
        raise UserError(f"jackknife needs at least 2 positive and 2 negative cases, got {m} and {n}")
    theta = d.auc[:, None]
    return d.auc, np.concatenate([(m * theta - d.v10) / (m - 1), (n * theta - d.v01) / (n - 1)], axis=1)


def _jackknife_cov(loo: np.ndarray) -> np.ndarray:
    """``(N−1)/N Σ_k (θ_(k) − θ̄_(.))(θ_(k) − θ̄_(.))ᵀ`` over the N columns of ``loo`` (k, N)."""
    big_n = loo.shape[1]
    dev = loo - loo.mean(axis=1, keepdims=True)
    return (big_n - 1) / big_n * (dev @ dev.T)


def check_covariance(covariance: str) -> None:
    """Raise ``UserError`` unless ``covariance`` names one of ``COVARIANCES``.

    Callers that report an analysis the data cannot support as undefined check the flag first,
    so that a mistyped ``--covariance`` stays the user's error.
    """
    if covariance not in COVARIANCES:
        raise UserError(f"unknown covariance {covariance!r}; expected one of {', '.join(COVARIANCES)}")


def auc_and_covariance(study: ReaderStudy, covariance: str = "jackknife") -> tuple[np.ndarray, np.ndarray]:
    """θ (t, r) and the covariance (t·r, t·r) of ``θ.ravel()`` (index ``i·r + j``).

    Nested design: the jackknife runs over all cases of the study, as MRMCaov does (leaving
    out a case of modality i leaves the other modalities' AUCs unchanged); DeLong's
    covariance is computed per modality, with zero covariance across modalities.
    """
    check_covariance(covariance)
    t, r = len(study.modalities), len(study.readers)
    if study.design == "paired":
        scores = np.concatenate(study.ratings, axis=0)
        if covariance == "jackknife":
            auc, loo = _leave_one_out(scores, study.truth[0])
            return auc.reshape(t, r), _jackknife_cov(loo)
        d = delong(scores, study.truth[0])
        return d.auc.reshape(t, r), d.cov
    auc = np.zeros((t, r))
    if covariance == "jackknife":
        blocks = []
        for i in range(t):
            auc[i], loo_i = _leave_one_out(study.ratings[i], study.truth[i])
            blocks.append(loo_i)
        loo = np.repeat(auc.reshape(-1, 1), sum(b.shape[1] for b in blocks), axis=1)  # (t·r, N_total)
        start = 0
        for i, b in enumerate(blocks):
            loo[i * r:(i + 1) * r, start:start + b.shape[1]] = b
            start += b.shape[1]
        cov = _jackknife_cov(loo)
        mod = np.repeat(np.arange(t), r)
        cov[mod[:, None] != mod[None, :]] = 0.0  # exactly 0 in theory: the LOO mean is θ
        return auc, cov
    cov = np.zeros((t * r, t * r))
    for i in range(t):
        d = delong(study.ratings[i], study.truth[i])
        auc[i] = d.auc
        cov[i * r:(i + 1) * r, i * r:(i + 1) * r] = d.cov
    return auc, cov


def covariance_components(cov: np.ndarray, t: int, r: int) -> dict[str, float]:
    """Average ``Var``, ``Cov1`` (same reader), ``Cov2`` (same modality), ``Cov3`` (neither)."""
    mod = np.repeat(np.arange(t), r)
    rdr = np.tile(np.arange(r), t)
    same_m, same_r = mod[:, None] == mod[None, :], rdr[:, None] == rdr[None, :]
    off = ~np.eye(t * r, dtype=bool)

    def mean(mask: np.ndarray) -> float:
        return float(cov[mask].mean()) if mask.any() else 0.0

    return {
        "Var": float(np.diag(cov).mean()),
        "Cov1": mean(same_r & ~same_m),
        "Cov2": mean(same_m & ~same_r & off),
        "Cov3": mean(~same_m & ~same_r),
    }


def _f_sf(f: float, df1: float, df2: float) -> float:
    return float(stats.chi2.sf(f * df1, df1)) if math.isinf(df2) else float(stats.f.sf(f, df1, df2))


def _t_q(level: float, df: float) -> float:
    return float(stats.norm.ppf(0.5 + level / 2) if math.isinf(df) else stats.t.ppf(0.5 + level / 2, df))


def _num(x: float) -> float | None:
    """JSON-safe number: infinite degrees of freedom are written as null."""
    return None if math.isinf(x) else float(x)


def obuchowski_rockette(
    auc: np.ndarray, cov: np.ndarray, modalities: tuple[str, ...] | None = None, level: float = 0.95
) -> dict:
    """OR analysis of a (t, r) AUC matrix with its (t·r, t·r) covariance.

    Returns:
        ``components`` (Var, Cov1–3), ``means``, and blocks ``random_readers_random_cases``,
        ``fixed_readers_random_cases``, ``random_readers_fixed_cases``, each with the omnibus
        test, the pairwise ``comparisons`` (``diff`` = first − second, ``se``, ``ci``, ``p``) and
        ``single_modality`` estimates (``auc``, ``se``, ``df``, ``ci``). With two modalities the
        block also carries ``diff`` and ``ci`` at the top.
    """
    auc = np.asarray(auc, dtype=np.float64)
    t, r = auc.shape
    if r < 2:
        raise UserError(f"MRMC analysis needs at least 2 readers, got {r}")
    if cov.shape != (t * r, t * r):
        raise ValueError(f"expected covariance of shape {(t * r, t * r)}, got {cov.shape}")
    names = modalities or tuple(str(i + 1) for i in range(t))
    comp = covariance_components(cov, t, r)
    mi = auc.mean(axis=1)
    grand = auc.mean()
    ms_r = ((auc - mi[:, None]) ** 2).sum(axis=1) / (r - 1)
    # per-modality Cov2_i and Var_i
    cov2_i, var_i = [], []
    for i in range(t):
        block = cov[i * r:(i + 1) * r, i * r:(i + 1) * r]
        var_i.append(float(np.diag(block).mean()))
        cov2_i.append(float(block[~np.eye(r, dtype=bool)].mean()))
    result: dict = {"components": comp, "means": dict(zip(names, map(float, mi)))}

    def singles(se_df: list[tuple[float, float]]) -> dict:
        out = {}
        for name, m_, (se, df) in zip(names, mi, se_df):
            q = _t_q(level, df)
            out[name] = {"auc": float(m_), "se": se, "df": _num(df), "ci": [float(m_ - q * se), float(m_ + q * se)]}
        return out

    # random readers, random cases
    rr: dict = {}
    single = []
    for i in range(t):
        c2 = max(cov2_i[i], 0.0)
        se = math.sqrt(ms_r[i] / r + c2)
        df = (ms_r[i] + r * c2) ** 2 / (ms_r[i] ** 2 / (r - 1)) if ms_r[i] > 0 else math.inf
        single.append((se, df))
    rr["single_modality"] = singles(single)
    fr_single = [(math.sqrt((var_i[i] + (r - 1) * max(cov2_i[i], 0.0)) / r), math.inf) for i in range(t)]
    rf_single = [(math.sqrt(ms_r[i] / r), float(r - 1)) for i in range(t)]
    fr: dict = {"single_modality": singles(fr_single)}
    rf: dict = {"single_modality": singles(rf_single)}
    if t >= 2:
        ms_t = r * ((mi - grand) ** 2).sum() / (t - 1)
        inter = auc - mi[:, None] - auc.mean(axis=0)[None, :] + grand
        ms_tr = (inter**2).sum() / ((t - 1) * (r - 1))
        cdiff = max(comp["Cov2"] - comp["Cov3"], 0.0)

        den_rr = ms_tr + r * cdiff
        if den_rr <= 0 or ms_tr <= 0:
            raise UserError(
                "MRMC undefined: the reader AUCs have no reader-by-modality variation (MS(T×R) = 0), "
                "e.g. every reader perfect in every modality"
            )
        ddf = den_rr**2 / (ms_tr**2 / ((t - 1) * (r - 1)))
        f_rr = ms_t / den_rr
        rr.update({"F": float(f_rr), "df1": t - 1, "df2": _num(ddf), "p": _f_sf(f_rr, t - 1, ddf),
                   "MS_T": float(ms_t), "MS_TR": float(ms_tr)})
        rr["comparisons"] = _pairs(names, mi, math.sqrt(2.0 / r * den_rr), ddf, level)

        den_fr = comp["Var"] - comp["Cov1"] + (r - 1) * cdiff
        if den_fr <= 0:
            raise UserError("fixed-readers analysis undefined: Var − Cov1 + (r−1)(Cov2 − Cov3) ≤ 0")
        chi2 = (t - 1) * ms_t / den_fr
        fr.update({"chi2": float(chi2), "df": t - 1, "p": float(stats.chi2.sf(chi2, t - 1))})
        fr["comparisons"] = _pairs(names, mi, math.sqrt(2.0 / r * den_fr), math.inf, level)
        fr["per_reader"] = _per_reader(names, auc, cov, level)

        df_rf = float((t - 1) * (r - 1))
        f_rf = ms_t / ms_tr
        rf.update({"F": float(f_rf), "df1": t - 1, "df2": df_rf, "p": _f_sf(f_rf, t - 1, df_rf)})
        rf["comparisons"] = _pairs(names, mi, math.sqrt(2.0 * ms_tr / r), df_rf, level)
        if t == 2:
            for block in (rr, fr, rf):
                block["diff"] = block["comparisons"][0]["diff"]
                block["se"] = block["comparisons"][0]["se"]
                block["ci"] = block["comparisons"][0]["ci"]
    result["random_readers_random_cases"] = rr
    result["fixed_readers_random_cases"] = fr
    result["random_readers_fixed_cases"] = rf
    return result


def _pairs(names: tuple[str, ...], mi: np.ndarray, se: float, df: float, level: float) -> list[dict]:
    q = _t_q(level, df)
    out = []
    for a, b in itertools.combinations(range(len(names)), 2):
        diff = float(mi[a] - mi[b])
        stat = diff / se
        p = float(2 * (stats.norm.sf(abs(stat)) if math.isinf(df) else stats.t.sf(abs(stat), df)))
        out.append({"modalities": [names[a], names[b]], "diff": diff, "se": float(se), "t": float(stat),
                    "df": _num(df), "p": p, "ci": [diff - q * se, diff + q * se]})
    return out


def _per_reader(names: tuple[str, ...], auc: np.ndarray, cov: np.ndarray, level: float) -> list[dict]:
    """Each reader's own comparison: ``z = (θ_aj − θ_bj) / sqrt(V_aj + V_bj − 2C_aj,bj)``.

    A zero variance gives ``z``, ``p`` and ``ci`` None with a ``note`` when the difference is
    not zero (no test is possible), and z = 0, p = 1 when it is.
    """
    t, r = auc.shape
    q = float(stats.norm.ppf(0.5 + level / 2))
    out = []
    for j in range(r):
        for a, b in itertools.combinations(range(t), 2):
            ia, ib = a * r + j, b * r + j
            diff = float(auc[a, j] - auc[b, j])
            var = float(cov[ia, ia] + cov[ib, ib] - 2 * cov[ia, ib])
            se = math.sqrt(max(var, 0.0))
            row = {"reader": j, "modalities": [names[a], names[b]], "diff": diff, "se": se}
            if se > 0:
                z = diff / se
                row.update({"z": z, "p": float(2 * stats.norm.sf(abs(z))), "ci": [diff - q * se, diff + q * se]})
            elif diff == 0:
                row.update({"z": 0.0, "p": 1.0, "ci": [0.0, 0.0], "note": "identical AUCs with zero variance"})
            else:
                row.update({"z": None, "p": None, "ci": None,
                            "note": "undefined: zero variance of a non-zero AUC difference"})
            out.append(row)
    return out


def analyse(study: ReaderStudy, covariance: str = "jackknife", level: float = 0.95) -> dict:
    """Full OR analysis of a study: reader AUCs, design, covariance method and the three blocks."""
    auc, cov = auc_and_covariance(study, covariance)
    res = obuchowski_rockette(auc, cov, study.modalities, level)
    for row in res["fixed_readers_random_cases"].get("per_reader", []):
        row["reader"] = study.readers[row["reader"]]
    return {
        "design": study.design,
        "covariance": covariance,
        "n_readers": len(study.readers),
        "n_cases": {m: int(c.size) for m, c in zip(study.modalities, study.cases)},
        "reader_auc": {m: dict(zip(study.readers, map(float, auc[i]))) for i, m in enumerate(study.modalities)},
        **res,
    }
