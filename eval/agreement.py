"""Inter-reader agreement: Fleiss' kappa, Cohen's kappa, Krippendorff's alpha, bootstrap.

Notation: N subjects (cases) i, q categories k (in their declared order), ``n_ik`` the number
of readers who put case i in category k, ``r_i = Σ_k n_ik``.

* Fleiss (1971): ``p_k = Σ_i n_ik / Σ_i r_i``, ``P_i = Σ_k n_ik(n_ik − 1) / (r_i(r_i − 1))``,
  ``κ = (P̄ − P_e)/(1 − P_e)`` with ``P_e = Σ_k p_k²``. With a constant number m of readers:
  the variance under H0 (Fleiss, Nee & Landis 1979)
  ``se0 = sqrt(2/(N m (m−1))) · sqrt((Σ p_k q_k)² − Σ p_k q_k (q_k − p_k)) / Σ p_k q_k`` and the
  per-category ``κ_k = 1 − Σ_i n_ik(m − n_ik) / (N m (m−1) p_k q_k)``, ``se0_k = sqrt(2/(N m (m−1)))``.
  For the CI, Gwet's (2008, 2014) linearised variance over subjects,
  ``var = Σ_i (κ_i* − κ)² / (N(N−1))``, ``κ_i* = κ_i − 2(1 − κ)(P_e,i − P_e)/(1 − P_e)``, with a
  t_{N−1} interval clipped to [−1, 1] (as irrCAC's ``fleiss.kappa.raw``).
* Cohen (1960, 1968) for two readers, agreement weights ``w_kl`` (1 on the diagonal; linear
  ``1 − |k−l|/(q−1)``, quadratic ``1 − (k−l)²/(q−1)²``): ``κ_w = (p_o − p_e)/(1 − p_e)``.
  Large-sample variance (Fleiss, Cohen & Everitt 1969, as SAS PROC FREQ prints it):
  ``var = [Σ p_kl (w_kl − (w̄_k. + w̄_.l)(1 − κ))² − (κ − p_e(1 − κ))²] / ((1 − p_e)² n)``, and
  under H0 ``var0 = [Σ p_k. p_.l (w_kl − (w̄_k. + w̄_.l))² − p_e²] / ((1 − p_e)² n)``, with
  ``w̄_k. = Σ_l p_.l w_kl`` and ``w̄_.l = Σ_k p_k. w_kl``.
* Krippendorff (2011, "Computing Krippendorff's alpha-reliability"): coincidences
  ``o_ck = Σ_u (n_uc n_uk − [c=k] n_uc)/(m_u − 1)`` over units with m_u ≥ 2 values,
  ``α = 1 − (n.. − 1) Σ o_ck δ²_ck / Σ n_c n_k δ²_ck``; ordinal
  ``δ²_ck = (Σ_{g=c..k} n_g − (n_c + n_k)/2)²``, interval ``(c − k)²``, nominal ``[c≠k]``,
  ratio ``((c − k)/(c + k))²``.
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np
from scipy import stats

from elastogan.errors import UserError

WEIGHTS = ("unweighted", "linear", "quadratic")
METRICS = ("nominal", "ordinal", "interval", "ratio")


class AgreementError(UserError):
    """An agreement statistic is undefined for the data (e.g. one category used by all)."""


def _kappa_interval(kappa: float, half_width: float) -> list[float]:
    """``κ ± half_width`` clipped to [−1, 1], the range of kappa (as irrCAC clips at 1)."""
    return [max(-1.0, kappa - half_width), min(1.0, kappa + half_width)]


def _check_counts(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[1] < 2:
        raise ValueError(f"expected counts of shape (subjects, categories ≥ 2), got {counts.shape}")
    if (counts < 0).any() or not np.array_equal(counts, np.round(counts)):
        raise ValueError("counts must be non-negative integers")
    return counts.astype(np.float64)


def _fleiss_parts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised over leading axes: (…, N, q) counts → κ, P_e, π, pair-agreement per subject."""
    r = counts.sum(axis=-1)  # (…, N)
    rated = r >= 1
    two = r >= 2
    share = np.where(rated[..., None], counts / np.maximum(r, 1)[..., None], 0.0)
    pi = share.sum(axis=-2) / rated.sum(axis=-1)[..., None]  # (…, q)
    pe = (pi**2).sum(axis=-1)
    pa_i = np.where(two, (counts * (counts - 1)).sum(axis=-1) / np.maximum(r * (r - 1), 1), 0.0)
    pa = pa_i.sum(axis=-1) / two.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (pa - pe) / (1 - pe)
    return kappa, pe, pi, pa_i


def fleiss_kappa(counts: np.ndarray, level: float = 0.95) -> dict:
    """Fleiss' kappa of an (N subjects × q categories) count table, with SE and CI.

    Returns:
        ``value``, ``se`` and ``ci`` (Gwet's linearised variance, t_{N−1}); with a constant
        number of readers per subject also ``h0`` {``se``, ``z``, ``p``} and ``per_category``
        [{``kappa``, ``z``}] (Fleiss 1971; Fleiss, Nee & Landis 1979).

    Raises:
        AgreementError: fewer than 2 subjects rated twice, or all ratings in one category.

    Example:
        >>> round(fleiss_kappa(np.array([[2, 0], [0, 2], [1, 1]]))["value"], 4)
        0.3333
    """
    c = _check_counts(counts)
    r = c.sum(axis=1)
    c = c[r >= 1]
    r = r[r >= 1]
    n2 = int((r >= 2).sum())
    if n2 < 2:
        raise AgreementError(f"Fleiss' kappa needs at least 2 cases rated by 2 or more readers, got {n2}")
    kappa, pe, pi, pa_i = _fleiss_parts(c)
    kappa, pe = float(kappa), float(pe)
    if pe >= 1.0:
        raise AgreementError("Fleiss' kappa undefined: every rating is in the same category")
    n = c.shape[0]
    kappa_i = (n / n2) * (pa_i - pe * (r >= 2)) / (1 - pe)
    pe_i = (c / r[:, None]) @ pi
    kappa_star = kappa_i - 2 * (1 - kappa) * (pe_i - pe) / (1 - pe)
    se = math.sqrt(((kappa_star - kappa) ** 2).sum() / (n * (n - 1)))
    q = float(stats.t.ppf(0.5 + level / 2, n - 1))
    out: dict = {"value": kappa, "se": se, "ci": _kappa_interval(kappa, q * se), "n_cases": n}
    if np.all(r == r[0]):
        m = float(r[0])
        pq = pi * (1 - pi)
        base = math.sqrt(2.0 / (n * m * (m - 1)))
        se0 = base * math.sqrt(pq.sum() ** 2 - (pq * ((1 - pi) - pi)).sum()) / pq.sum()
        z = kappa / se0
        out["h0"] = {"se": float(se0), "z": float(z), "p": float(2 * stats.norm.sf(abs(z)))}
        per = []
        for k in range(c.shape[1]):
            if pq[k] == 0:
                per.append({"kappa": None, "z": None, "note": "category never or always used"})
                continue
            kk = 1 - (c[:, k] * (m - c[:, k])).sum() / (n * m * (m - 1) * pq[k])
            per.append({"kappa": float(kk), "z": float(kk / base)})
        out["per_category"] = per
        out["n_readers"] = int(m)
    return out


def fleiss_kappa_values(counts: np.ndarray) -> np.ndarray:
    """Fleiss' kappa for a stack of count tables (…, N, q) — NaN where undefined (bootstrap use)."""
    return _fleiss_parts(np.asarray(counts, dtype=np.float64))[0]


def agreement_weights(q: int, weights: str) -> np.ndarray:
    """q×q agreement weights: identity, linear ``1 − |k−l|/(q−1)`` or quadratic."""
    if weights not in WEIGHTS:
        raise ValueError(f"expected weights in {WEIGHTS}, got {weights!r}")
    k = np.arange(q)
    d = np.abs(k[:, None] - k[None, :]) / (q - 1)
    return {"unweighted": (d == 0).astype(np.float64), "linear": 1 - d, "quadratic": 1 - d**2}[weights]


def cohen_kappa(table: np.ndarray, weights: str = "unweighted", level: float = 0.95) -> dict:
    """Cohen's (weighted) kappa of a q×q table of two readers, with SE, CI and the H0 test.

    Args:
        table: counts, rows = reader 1's category, columns = reader 2's, categories in order.
        weights: ``"unweighted"``, ``"linear"`` or ``"quadratic"`` (agreement weights).

    Returns:
        ``value``, ``se`` (Fleiss–Cohen–Everitt ASE), Wald ``ci``, and ``h0`` {``se``, ``z``, ``p``}.
    """
    t = np.asarray(table, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] != t.shape[1] or t.shape[0] < 2:
        raise ValueError(f"expected a square q×q table with q ≥ 2, got shape {t.shape}")
    n = t.sum()
    if n < 1:
        raise AgreementError("Cohen's kappa: the two readers share no case")
    w = agreement_weights(t.shape[0], weights)
    p = t / n
    row, col = p.sum(axis=1), p.sum(axis=0)
    po = float((w * p).sum())
    pe = float((w * np.outer(row, col)).sum())
    if pe >= 1.0:
        raise AgreementError("Cohen's kappa undefined: both readers used a single, common category")
    kappa = (po - pe) / (1 - pe)
    wr = w @ col  # w̄_k.
    wc = row @ w  # w̄_.l
    bar = wr[:, None] + wc[None, :]
    var = ((p * (w - bar * (1 - kappa)) ** 2).sum() - (kappa - pe * (1 - kappa)) ** 2) / ((1 - pe) ** 2 * n)
    var0 = ((np.outer(row, col) * (w - bar) ** 2).sum() - pe**2) / ((1 - pe) ** 2 * n)
    se, se0 = math.sqrt(max(var, 0.0)), math.sqrt(max(var0, 0.0))
    z = kappa / se0 if se0 > 0 else math.inf
    q = float(stats.norm.ppf(0.5 + level / 2))
    return {
        "value": float(kappa),
        "se": se,
        "ci": _kappa_interval(kappa, q * se),
        "h0": {"se": se0, "z": float(z), "p": float(2 * stats.norm.sf(abs(z)))},
        "n_cases": int(n),
    }


def krippendorff_alpha(value_counts: np.ndarray, metric: str = "ordinal", values: Sequence[float] | None = None) -> float:
    """Krippendorff's alpha from a (units × values) count table.

    Args:
        value_counts: ``n_uv``, how many coders gave unit u the value v (values in order).
        metric: ``"nominal"``, ``"ordinal"``, ``"interval"`` or ``"ratio"``.
        values: numeric value of each column for interval/ratio (default 1, 2, …, V).

    Example (Krippendorff 2011, 4 observers × 12 units; ordinal α = 0.815):
        >>> data = [[1, 2, 3, 3, 2, 1, 4, 1, 2, 0, 0, 0], [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, 0, 3],
        ...         [0, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, 0], [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, 0]]
        >>> counts = np.array([[sum(row[u] == v for row in data) for v in range(1, 6)] for u in range(12)])
        >>> round(krippendorff_alpha(counts, "ordinal"), 3)
        0.815
    """
    if metric not in METRICS:
        raise ValueError(f"expected metric in {METRICS}, got {metric!r}")
    nuv = _check_counts(value_counts)
    nv = nuv.shape[1]
    vals = np.arange(1, nv + 1, dtype=np.float64) if values is None else np.asarray(values, dtype=np.float64)
    if vals.shape != (nv,):
        raise ValueError(f"expected {nv} values, got {vals.shape}")
    mu = nuv.sum(axis=1)
    nuv = nuv[mu >= 2]
    mu = mu[mu >= 2]
    if nuv.shape[0] == 0:
        raise AgreementError("Krippendorff's alpha needs at least one case with 2 or more ratings")
    o = (nuv[:, :, None] * nuv[:, None, :] / (mu - 1)[:, None, None]).sum(axis=0)
    o -= np.diag((nuv / (mu - 1)[:, None]).sum(axis=0))
    nc = o.sum(axis=1)
    ntot = nc.sum()
    if metric == "nominal":
        delta = 1.0 - np.eye(nv)
    elif metric == "ordinal":
        cum = np.concatenate([[0.0], np.cumsum(nc)])
        lo = np.minimum.outer(np.arange(nv), np.arange(nv))
        hi = np.maximum.outer(np.arange(nv), np.arange(nv))
        delta = (cum[hi + 1] - cum[lo] - (nc[:, None] + nc[None, :]) / 2) ** 2
    elif metric == "interval":
        delta = (vals[:, None] - vals[None, :]) ** 2
    else:
        s = vals[:, None] + vals[None, :]
        delta = np.where(s != 0, ((vals[:, None] - vals[None, :]) / np.where(s != 0, s, 1)) ** 2, 0.0)
    expected = (np.outer(nc, nc) * delta).sum()
    if expected == 0:
        raise AgreementError("Krippendorff's alpha undefined: every rating has the same value")
    return float(1 - (ntot - 1) * (o * delta).sum() / expected)


def count_table(case_index: np.ndarray, score: np.ndarray, n_cases: int, q: int) -> np.ndarray:
    """(N, q) counts ``n_ik`` from per-rating case indices and category indices."""
    out = np.zeros((n_cases, q), dtype=np.int64)
    np.add.at(out, (case_index, score), 1)
    return out


def pairwise_cohen(
    reader: np.ndarray, case: np.ndarray, score: np.ndarray, q: int, level: float = 0.95
) -> dict:
    """Cohen's kappa (unweighted, linear, quadratic) for every reader pair on their shared cases.

    Returns:
        ``mean`` {weights: mean over the pairs where kappa is defined}, ``pairs`` (each with its
        kappas or the reason it is undefined) and ``n_pairs_undefined``.
    """
    readers = list(dict.fromkeys(reader.tolist()))
    by_reader = {rd: dict(zip(case[reader == rd].tolist(), score[reader == rd].tolist())) for rd in readers}
    pairs, values = [], {w: [] for w in WEIGHTS}
    undefined = 0
    for a, b in itertools.combinations(readers, 2):
        shared = [c for c in by_reader[a] if c in by_reader[b]]
        table = np.zeros((q, q))
        for c in shared:
            table[by_reader[a][c], by_reader[b][c]] += 1
        entry: dict = {"readers": [a, b], "n_cases": len(shared)}
        try:
            for w in WEIGHTS:
                res = cohen_kappa(table, w, level)
                entry[w] = {"value": res["value"], "se": res["se"], "ci": res["ci"]}
        except AgreementError as e:
            entry = {"readers": [a, b], "n_cases": len(shared), "undefined": str(e)}
            undefined += 1
        else:
            for w in WEIGHTS:
                values[w].append(entry[w]["value"])
        pairs.append(entry)
    if undefined == len(pairs):
        raise AgreementError("Cohen's kappa is undefined for every reader pair")
    return {"mean": {w: float(np.mean(v)) for w, v in values.items()}, "pairs": pairs,
            "n_pairs_undefined": undefined}


def bootstrap_fleiss_difference(
    counts_a: np.ndarray,
    counts_b: np.ndarray,
    *,
    paired: bool,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Bootstrap over cases of ``κ_A − κ_B`` (Fleiss) between two conditions.

    Paired (the same cases in both conditions, rows aligned): one resample of case indices
    serves both; otherwise each condition is resampled on its own.

    Returns:
        ``diff`` (observed), ``se`` (bootstrap sd), percentile ``ci``, two-sided ``p`` from
        ``z = diff/se`` (normal approximation; None with a ``note`` when se = 0 but diff ≠ 0),
        ``n_boot`` (replicates where both kappas are defined), ``paired``.
    """
    a, b = _check_counts(counts_a), _check_counts(counts_b)
    if paired and a.shape[0] != b.shape[0]:
        raise ValueError("paired bootstrap needs the same cases (rows) in both conditions")
    if n_boot < 100:
        raise UserError(f"expected at least 100 bootstrap replicates, got {n_boot}")
    diff = fleiss_kappa(a)["value"] - fleiss_kappa(b)["value"]
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.shape[0], size=(n_boot, a.shape[0]))
    ib = ia if paired else rng.integers(0, b.shape[0], size=(n_boot, b.shape[0]))
    with np.errstate(divide="ignore", invalid="ignore"):
        d = fleiss_kappa_values(a[ia]) - fleiss_kappa_values(b[ib])
    d = d[np.isfinite(d)]
    if d.size < n_boot // 2:
        raise AgreementError(f"bootstrap: kappa undefined in {n_boot - d.size} of {n_boot} resamples")
    se = float(d.std(ddof=1))
    alpha = 1 - level
    lo, hi = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    out = {"diff": float(diff), "se": se, "ci": [float(lo), float(hi)], "p": None,
           "n_boot": int(d.size), "paired": paired, "seed": seed}
    if se > 0:
        out["p"] = float(2 * stats.norm.sf(abs(diff) / se))
    elif diff == 0:
        out["p"] = 1.0
    else:
        # Every resample gives the same non-zero difference: z = diff/0 is no evidence measure.
        out["note"] = "p undefined: the bootstrap difference has zero spread"
    return out
