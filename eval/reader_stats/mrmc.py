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
* Variance components (MRMCaov's estimates, unconstrained; the pilot values of
  :mod:`~elastogan.eval.reader_stats.power`): ``σ²_TR = MS(T×R) − Var + Cov1 + Cov2 − Cov3``,
  ``σ²_R = (MS(R) − MS(T×R))/t − Cov1 + Cov3`` with ``MS(R) = t/(r−1) Σ_j (θ̄_.j − θ̄..)²``.

Designs, inferred from who read which case (:func:`arrange`):

* *paired* (fully crossed): every reader reads every case in every modality;
* *nested*: cases nested within modality (disjoint case sets), so Cov1 = Cov3 = 0;
* *split-plot*: readers fall into blocks, each block reads its own cases (disjoint from the
  other blocks') in every modality (Obuchowski 2009; Obuchowski, Gallas & Hillis 2012); one
  reader per block is MRMCaov's "cases nested within readers";
* *counterbalanced*: each reader reads each of their cases in one modality only (the app's
  ``--design split``: half of a reader's cases with the real, half with the synthetic
  elastogram, swapped for the other arm).

Every design is analysed with one set of formulas. The covariance matrix of the θ_ij is
estimated over the study's own case sets (jackknife over all N cases of the study, as MRMCaov
does: leaving out a case a reader did not read leaves that reader's AUC unchanged; DeLong per
crossed block), and ``Var``, ``Cov1``–``Cov3`` average it over *all* pairs of each kind, the
structural zeros (pairs that share no case) included. Then for any covariance matrix Σ of the
errors (``E[εᵀPε] = tr(PΣ)`` with the treatment and the interaction projectors ``P``):

  ``E[MS(T) | H0] = σ²_TR + Var − Cov1 + (r − 1)(Cov2 − Cov3)`` and
  ``E[MS(T×R)]    = σ²_TR + Var − Cov1 − (Cov2 − Cov3)``,

so the OR statistic compares two quantities with equal expectation under H0 in every design.
In a split-plot with G blocks of J readers, with ``Cov2_w``, ``Cov3_w`` averaged over the pairs
that share cases, ``Cov2 − Cov3 = (J − 1)/(r − 1)·(Cov2_w − Cov3_w)``: the denominator
``MS(T×R) + r(J − 1)/(r − 1)·(Cov2_w − Cov3_w)`` is the fully crossed OR for G = 1 and
MRMCaov's cases-nested-within-readers analysis (Cov2 = Cov3 = 0) for J = 1. Hillis's ddf is
kept; its type-I error in split-plot and counterbalanced designs was measured on seeded
Roe–Metz null simulations (tests/test_split_plot.py; figures in docs/statistics.md).

Reproduces OR-DBM MRMC 2.51 and MRMCaov (jackknife and DeLong covariance; random, fixed-reader
and fixed-case analyses; paired, nested and cases-nested-within-readers designs) on the Van
Dyke et al. (1993) data (tests/test_mrmc.py, tests/test_split_plot.py).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from elastogan.errors import UserError
from elastogan.eval.reader_stats.roc import check_truth, delong

COVARIANCES = ("jackknife", "delong")


DESIGNS = ("paired", "nested", "split-plot", "counterbalanced")


@dataclass(frozen=True)
class ReaderStudy:
    """Ratings of an MRMC study on one grid of all its cases.

    Attributes:
        modalities: names, in order of first appearance.
        readers: names, in order of first appearance.
        cases: (N,) every case id of the study, in order of first appearance.
        truth: (N,) 0/1.
        ratings: (t, r, N) ratings; NaN where reader j did not read case k in modality i.
        design: one of ``DESIGNS`` (module docstring).
        blocks: split-plot only: the reader indices of each block; otherwise ``()``.
    """

    modalities: tuple[str, ...]
    readers: tuple[str, ...]
    cases: np.ndarray
    truth: np.ndarray
    ratings: np.ndarray
    design: str
    blocks: tuple[tuple[int, ...], ...] = ()

    @property
    def read(self) -> np.ndarray:
        """(t, r, N) bool: which (modality, reader, case) was read."""
        return ~np.isnan(self.ratings)

    def case_counts(self) -> dict[str, int]:
        """Per modality, how many distinct cases were read in it."""
        return {m: int(self.read[i].any(axis=0).sum()) for i, m in enumerate(self.modalities)}


def _infer_design(sets: list[list[frozenset]], modalities: tuple[str, ...], readers: tuple[str, ...],
                  cases: np.ndarray) -> tuple[str, tuple[tuple[int, ...], ...]]:
    """Name the design from ``sets[i][j]``, the cases reader j read in modality i."""
    t, r = len(modalities), len(readers)
    flat = [s for row in sets for s in row]
    if all(s == flat[0] for s in flat):
        return "paired", ()
    per_modality = [row[0] for row in sets]
    if t >= 2 and all(s == row[0] for row in sets for s in row) and all(
            not (a & b) for a, b in itertools.combinations(per_modality, 2)):
        return "nested", ()
    union = [frozenset().union(*(sets[i][j] for i in range(t))) for j in range(r)]
    distinct = list(dict.fromkeys(union))
    disjoint_blocks = all(not (a & b) for a, b in itertools.combinations(distinct, 2))
    if disjoint_blocks and all(sets[i][j] == union[j] for i in range(t) for j in range(r)):
        blocks = tuple(tuple(j for j in range(r) if union[j] == u) for u in distinct)
        return "split-plot", blocks
    if disjoint_blocks and all(not (sets[a][j] & sets[b][j])
                               for j in range(r) for a, b in itertools.combinations(range(t), 2)):
        return "counterbalanced", ()
    # Not a design this analysis knows: say what breaks the nearest one (paired).
    for i, mod in enumerate(modalities):
        everyone = frozenset().union(*sets[i])
        for j, rd in enumerate(readers):
            missing = everyone - sets[i][j]
            if missing and any(sets[i][k] == everyone for k in range(r)):
                example = next(c for c in cases.tolist() if c in missing)
                raise UserError(
                    f"reader {rd!r} has no rating for {len(missing)} of the {len(everyone)} cases of modality "
                    f"{mod!r} (e.g. case {example!r}); MRMC needs a complete design: paired (every reader "
                    "on every case), nested, split-plot or counterbalanced"
                )
    for (a, ca), (b, cb) in itertools.combinations(zip(modalities, per_modality), 2):
        shared = len(ca & cb)
        if shared:
            raise UserError(
                f"modalities {a!r} and {b!r} share {shared} of their {len(ca)} and {len(cb)} cases: "
                "the design must be paired (the same cases), nested (no case in both), split-plot "
                "(reader blocks with their own cases) or counterbalanced (each reader reads a case in "
                "one modality)"
            )
    raise UserError("the readings fit none of the MRMC designs: paired, nested, split-plot, counterbalanced")


def arrange(
    case: np.ndarray, truth: np.ndarray, reader: np.ndarray, modality: np.ndarray, rating: np.ndarray
) -> ReaderStudy:
    """Lay long-format ratings out on one (modality, reader, case) grid; infer the design.

    Raises:
        UserError: a reader who read nothing in a modality, readings that fit none of the
            designs (e.g. a reader who skipped a case of a paired study), a reader with
            one-class truth in a modality.
    """
    modalities = tuple(dict.fromkeys(modality.tolist()))
    readers = tuple(dict.fromkeys(reader.tolist()))
    cases = np.array(list(dict.fromkeys(case.tolist())), dtype=object)
    col = {c: k for k, c in enumerate(cases.tolist())}
    mi = {m: i for i, m in enumerate(modalities)}
    rj = {rd: j for j, rd in enumerate(readers)}
    ratings = np.full((len(modalities), len(readers), cases.size), np.nan)
    k = np.array([col[c] for c in case.tolist()], dtype=np.int64)
    ratings[[mi[m] for m in modality.tolist()], [rj[rd] for rd in reader.tolist()], k] = rating
    t_all = np.zeros(cases.size, dtype=np.int64)
    t_all[k] = truth
    read = ~np.isnan(ratings)
    for i, mod in enumerate(modalities):
        for j, rd in enumerate(readers):
            if not read[i, j].any():
                raise UserError(f"reader {rd!r} read nothing in modality {mod!r}")
    sets = [[frozenset(cases[read[i, j]].tolist()) for j in range(len(readers))] for i in range(len(modalities))]
    design, blocks = _infer_design(sets, modalities, readers, cases)
    for i, mod in enumerate(modalities):
        for j, rd in enumerate(readers):
            what = f"modality {mod!r}" if design in ("paired", "nested") else f"reader {rd!r}, modality {mod!r}"
            check_truth(t_all[read[i, j]], what)
    return ReaderStudy(modalities, readers, cases, t_all, ratings, design, blocks)


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

    Jackknife: over all N cases of the study, as MRMCaov does; a case that reader j did not
    read in modality i leaves θ_ij unchanged, and the covariance of two AUCs that share no
    case is set to exactly 0 (its expectation: the leave-one-out mean is θ itself). DeLong:
    per crossed block (the whole study, each modality of a nested design, each reader block
    of a split-plot), 0 between blocks; a counterbalanced design needs the jackknife.
    """
    check_covariance(covariance)
    t, r = len(study.modalities), len(study.readers)
    read = study.read.reshape(t * r, -1)  # (t·r, N)
    ratings = study.ratings.reshape(t * r, -1)
    if covariance == "delong":
        if study.design == "paired":
            d = delong(ratings, study.truth)
            return d.auc.reshape(t, r), d.cov
        if study.design == "counterbalanced":
            raise UserError("DeLong covariance needs crossed blocks of cases; use --covariance jackknife "
                            "for a counterbalanced design")
        groups = ([tuple(i * r + j for j in range(r)) for i in range(t)] if study.design == "nested"
                  else [tuple(i * r + j for i in range(t) for j in blk) for blk in study.blocks])
        auc, cov = np.zeros(t * r), np.zeros((t * r, t * r))
        for g in groups:
            idx = np.array(g)
            cols = read[idx[0]]
            d = delong(ratings[np.ix_(idx, np.flatnonzero(cols))], study.truth[cols])
            auc[idx] = d.auc
            cov[np.ix_(idx, idx)] = d.cov
        return auc.reshape(t, r), cov
    auc = np.zeros(t * r)
    loo = np.zeros_like(ratings)  # (t·r, N)
    same_cases: dict[bytes, list[int]] = {}  # AUCs on one case set share one ranking pass
    for c in range(t * r):
        same_cases.setdefault(read[c].tobytes(), []).append(c)
    for cells in same_cases.values():
        rows, cols = np.array(cells), np.flatnonzero(read[cells[0]])
        a, l_c = _leave_one_out(ratings[np.ix_(rows, cols)], study.truth[cols])
        auc[rows] = a
        loo[rows] = a[:, None]
        loo[np.ix_(rows, cols)] = l_c
    cov = _jackknife_cov(loo)
    shared = read.astype(np.int64) @ read.T.astype(np.int64)  # cases two AUCs have in common
    cov[shared == 0] = 0.0
    return auc.reshape(t, r), cov


def _component_masks(t: int, r: int) -> dict[str, np.ndarray]:
    mod = np.repeat(np.arange(t), r)
    rdr = np.tile(np.arange(r), t)
    same_m, same_r = mod[:, None] == mod[None, :], rdr[:, None] == rdr[None, :]
    off = ~np.eye(t * r, dtype=bool)
    return {"Var": ~off, "Cov1": same_r & ~same_m, "Cov2": same_m & ~same_r & off, "Cov3": ~same_m & ~same_r}


def covariance_components_batch(cov: np.ndarray, t: int, r: int) -> dict[str, np.ndarray]:
    """:func:`covariance_components` over the leading axes of a (..., t·r, t·r) covariance."""
    return {k: cov[..., mask].mean(axis=-1) if mask.any() else np.zeros(cov.shape[:-2])
            for k, mask in _component_masks(t, r).items()}


def covariance_components(cov: np.ndarray, t: int, r: int) -> dict[str, float]:
    """Average ``Var``, ``Cov1`` (same reader), ``Cov2`` (same modality), ``Cov3`` (neither),
    each over all pairs of its kind (module docstring: pairs that share no case count as 0)."""
    return {k: float(v) for k, v in covariance_components_batch(cov, t, r).items()}


def mean_squares(auc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``MS(T)``, ``MS(R)`` and ``MS(T×R)`` of (..., t, r) AUCs (over the leading axes)."""
    t, r = auc.shape[-2:]
    mi = auc.mean(axis=-1)  # (..., t)
    mj = auc.mean(axis=-2)  # (..., r)
    grand = auc.mean(axis=(-2, -1))
    ms_t = r * ((mi - grand[..., None]) ** 2).sum(axis=-1) / (t - 1)
    ms_r = t * ((mj - grand[..., None]) ** 2).sum(axis=-1) / (r - 1)
    inter = auc - mi[..., :, None] - mj[..., None, :] + grand[..., None, None]
    ms_tr = (inter**2).sum(axis=(-2, -1)) / ((t - 1) * (r - 1))
    return ms_t, ms_r, ms_tr


def hillis_f_test(ms_t: np.ndarray, ms_tr: np.ndarray, cov2: np.ndarray, cov3: np.ndarray,
                  t: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random readers, random cases: ``F``, Hillis's ``ddf`` and ``p`` (vectorised).

    ``F = MS(T) / (MS(T×R) + r·max(Cov2 − Cov3, 0))`` on ``t − 1`` and
    ``ddf = (MS(T×R) + r·max(Cov2 − Cov3, 0))² / (MS(T×R)² / ((t−1)(r−1)))`` (Hillis 2007).
    """
    den = ms_tr + r * np.maximum(cov2 - cov3, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):  # MS(T×R) = 0: F and ddf undefined (NaN/inf)
        ddf = den**2 / (ms_tr**2 / ((t - 1) * (r - 1)))
        f = ms_t / den
    return f, ddf, stats.f.sf(f, t - 1, ddf)


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
        ms_t, ms_reader, ms_tr = (float(x) for x in mean_squares(auc))
        cdiff = max(comp["Cov2"] - comp["Cov3"], 0.0)
        # MRMCaov's estimates (unconstrained): σ²_TR, and σ²_R from MS(R) − MS(T×R).
        result["variance_components"] = {
            "reader": (ms_reader - ms_tr) / t - comp["Cov1"] + comp["Cov3"],
            "treatment_reader": ms_tr - comp["Var"] + comp["Cov1"] + comp["Cov2"] - comp["Cov3"],
        }

        den_rr = ms_tr + r * cdiff
        if den_rr <= 0 or ms_tr <= 0:
            raise UserError(
                "MRMC undefined: the reader AUCs have no reader-by-modality variation (MS(T×R) = 0), "
                "e.g. every reader perfect in every modality"
            )
        f_rr, ddf, _ = (float(x) for x in hillis_f_test(ms_t, ms_tr, comp["Cov2"], comp["Cov3"], t, r))
        rr.update({"F": f_rr, "df1": t - 1, "df2": _num(ddf), "p": _f_sf(f_rr, t - 1, ddf),
                   "MS_T": ms_t, "MS_R": ms_reader, "MS_TR": ms_tr})
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
    """Full OR analysis of a study: reader AUCs, design, covariance method and the three blocks.

    A split-plot study also lists its ``blocks`` (readers and number of cases of each).
    """
    auc, cov = auc_and_covariance(study, covariance)
    res = obuchowski_rockette(auc, cov, study.modalities, level)
    for row in res["fixed_readers_random_cases"].get("per_reader", []):
        row["reader"] = study.readers[row["reader"]]
    out = {
        "design": study.design,
        "covariance": covariance,
        "n_readers": len(study.readers),
        "n_cases": study.case_counts(),
        "reader_auc": {m: dict(zip(study.readers, map(float, auc[i]))) for i, m in enumerate(study.modalities)},
    }
    if study.blocks:
        read = study.read.any(axis=0)  # (r, N)
        out["blocks"] = [{"readers": [study.readers[j] for j in blk], "n_cases": int(read[blk[0]].sum())}
                         for blk in study.blocks]
    return {**out, **res}
