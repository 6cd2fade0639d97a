"""Binary diagnostic accuracy: sensitivity, specificity, PPV, NPV, and paired comparisons.

A rating at or above the threshold (``--positive-from``, e.g. BI-RADS 4a) is a positive call.

* Proportions with exact Clopper–Pearson intervals.
* Paired sensitivity/specificity (same cases, two modalities): McNemar (1947)
  ``χ² = (b − c)²/(b + c)`` on the discordant pairs of the diseased (sensitivity) or
  non-diseased (specificity) cases, 1 df, no continuity correction; the exact binomial p
  alongside.
* Paired predictive values: Kosinski's (2013, Stat Med 32:964) weighted generalised score
  statistic. With ``N1``, ``N2`` the positive calls of tests 1 and 2, ``s11``/``r11`` the
  diseased/non-diseased cases both call positive, ``s10``/``s01`` the diseased cases only test 1
  / only test 2 calls positive: pooled ``p = (2·s11 + s10 + s01)/(N1 + N2)``,
  ``C = (s11(1 − p)² + r11·p²)/(N1 + N2)``,
  ``T = (PPV2 − PPV1)² / ((p(1 − p) − 2C)(1/N1 + 1/N2))`` ~ χ²₁; NPV symmetrically on the
  negative calls.
* Unpaired (disjoint cases): Fisher's exact test on the 2×2 table of the two proportions.

Reproduces DTComPair's ``sesp.mcnemar`` and ``pv.wgs`` documentation example (tests).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from elastogan.errors import UserError

MEASURES = ("sensitivity", "specificity", "ppv", "npv")


@dataclass(frozen=True)
class PairedTable:
    """Counts of a paired design: ``d[y1][y2]`` diseased, ``nd[y1][y2]`` non-diseased (0/1 calls)."""

    d: np.ndarray  # (2, 2)
    nd: np.ndarray  # (2, 2)

    @classmethod
    def from_calls(cls, truth: np.ndarray, y1: np.ndarray, y2: np.ndarray) -> "PairedTable":
        truth, y1, y2 = (np.asarray(a, dtype=np.int64) for a in (truth, y1, y2))
        d, nd = np.zeros((2, 2), np.int64), np.zeros((2, 2), np.int64)
        np.add.at(d, (y1[truth == 1], y2[truth == 1]), 1)
        np.add.at(nd, (y1[truth == 0], y2[truth == 0]), 1)
        return cls(d, nd)


def proportion(k: int, n: int, level: float = 0.95) -> dict:
    """``k/n`` with its exact (Clopper–Pearson) CI; ``value`` None with a note when n = 0."""
    if n == 0:
        return {"value": None, "ci": None, "k": 0, "n": 0, "note": "undefined: denominator is 0"}
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return {"value": k / n, "ci": [float(ci.low), float(ci.high)], "k": int(k), "n": int(n)}


def accuracy(truth: np.ndarray, call: np.ndarray, level: float = 0.95) -> dict:
    """Sensitivity, specificity, PPV, NPV of 0/1 calls against 0/1 truth, with CIs."""
    truth, call = np.asarray(truth, dtype=bool), np.asarray(call, dtype=bool)
    tp, fn = int((truth & call).sum()), int((truth & ~call).sum())
    tn, fp = int((~truth & ~call).sum()), int((~truth & call).sum())
    return {
        "sensitivity": proportion(tp, tp + fn, level),
        "specificity": proportion(tn, tn + fp, level),
        "ppv": proportion(tp, tp + fp, level),
        "npv": proportion(tn, tn + fn, level),
        "counts": {"tp": tp, "fn": fn, "tn": tn, "fp": fp},
    }


def mcnemar(b: int, c: int) -> dict:
    """McNemar's test from the discordant counts b and c: χ², asymptotic and exact p."""
    if b + c == 0:
        return {"chi2": 0.0, "p": 1.0, "p_exact": 1.0, "note": "no discordant pairs"}
    chi2 = (b - c) ** 2 / (b + c)
    p_exact = min(1.0, float(2 * stats.binom.cdf(min(b, c), b + c, 0.5)))
    return {"chi2": float(chi2), "p": float(stats.chi2.sf(chi2, 1)), "p_exact": p_exact}


def paired_sens_spec(t: PairedTable) -> dict:
    """McNemar tests for sensitivity (diseased) and specificity (non-diseased); diff = test2 − test1."""
    out = {}
    for name, tab, hit in (("sensitivity", t.d, 1), ("specificity", t.nd, 0)):
        n = tab.sum()
        if n == 0:
            out[name] = {"note": "undefined: no cases of this class"}
            continue
        p1 = tab[hit, :].sum() / n
        p2 = tab[:, hit].sum() / n
        b, c = int(tab[hit, 1 - hit]), int(tab[1 - hit, hit])  # only test 1 right, only test 2 right
        out[name] = {"test1": float(p1), "test2": float(p2), "diff": float(p2 - p1), **mcnemar(b, c)}
    return out


def _wgs(s11: float, s10: float, s01: float, r11: float, r10: float, r01: float) -> dict:
    """Kosinski's weighted generalised score test on 'positive' calls (PPV form)."""
    n1, n2 = s11 + s10 + r11 + r10, s11 + s01 + r11 + r01
    if n1 == 0 or n2 == 0:
        return {"note": "undefined: a test made no call of this kind"}
    v1, v2 = (s11 + s10) / n1, (s11 + s01) / n2
    pooled = (2 * s11 + s10 + s01) / (n1 + n2)
    c = (s11 * (1 - pooled) ** 2 + r11 * pooled**2) / (n1 + n2)
    den = (pooled * (1 - pooled) - 2 * c) * (1 / n1 + 1 / n2)
    base = {"test1": float(v1), "test2": float(v2), "diff": float(v2 - v1)}
    if den <= 0:
        if v1 == v2:
            return {**base, "statistic": 0.0, "p": 1.0, "note": "identical predictive values"}
        return {**base, "note": "undefined: zero variance under H0"}
    stat = (v2 - v1) ** 2 / den
    return {**base, "statistic": float(stat), "p": float(stats.chi2.sf(stat, 1))}


def paired_predictive_values(t: PairedTable) -> dict:
    """Kosinski (2013) WGS tests for PPV and NPV; diff = test2 − test1."""
    d, nd = t.d.astype(float), t.nd.astype(float)
    ppv = _wgs(d[1, 1], d[1, 0], d[0, 1], nd[1, 1], nd[1, 0], nd[0, 1])
    # NPV: the same statistic on negative calls, "success" = non-diseased.
    npv = _wgs(nd[0, 0], nd[0, 1], nd[1, 0], d[0, 0], d[0, 1], d[1, 0])
    return {"ppv": ppv, "npv": npv}


def unpaired_compare(k1: int, n1: int, k2: int, n2: int) -> dict:
    """Fisher's exact test of two independent proportions; diff = second − first."""
    if n1 == 0 or n2 == 0:
        return {"note": "undefined: an empty denominator"}
    _, p = stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]])
    return {"test1": k1 / n1, "test2": k2 / n2, "diff": k2 / n2 - k1 / n1, "p": float(p), "test": "Fisher exact"}


def threshold_index(positive_from: str, order: tuple[str, ...] | None) -> float:
    """The rating value from which a call is positive: position in ``order``, or a number."""
    if order is not None:
        if positive_from not in order:
            raise UserError(f"--positive-from {positive_from!r} is not in --order {','.join(order)}")
        return float(order.index(positive_from))
    try:
        value = float(positive_from)
    except ValueError:
        raise UserError(
            f"--positive-from {positive_from!r} is not a number; declare the categories with --order"
        ) from None
    if not math.isfinite(value):
        raise UserError(f"--positive-from must be finite, got {positive_from!r}")
    return value


def analyse(
    case: np.ndarray,
    truth: np.ndarray,
    reader: np.ndarray,
    modality: np.ndarray,
    rating: np.ndarray,
    threshold: float,
    level: float = 0.95,
) -> dict:
    """Per reader and modality accuracy, and per reader comparisons between modalities.

    Comparisons are paired (McNemar, Kosinski WGS) on the cases both modalities share when
    their case sets are identical for that reader, unpaired (Fisher) when disjoint.
    """
    call = rating >= threshold
    modalities = list(dict.fromkeys(modality.tolist()))
    readers = list(dict.fromkeys(reader.tolist()))
    per: dict = {}
    for m in modalities:
        per[m] = {}
        for rd in readers:
            sel = (modality == m) & (reader == rd)
            if not sel.any():
                raise UserError(f"reader {rd!r} read nothing in modality {m!r}")
            per[m][rd] = accuracy(truth[sel], call[sel], level)
    comparisons = []
    for rd in readers:
        for a, b in itertools.combinations(modalities, 2):
            sa, sb = (modality == a) & (reader == rd), (modality == b) & (reader == rd)
            ca = dict(zip(case[sa].tolist(), zip(truth[sa].tolist(), call[sa].tolist())))
            cb = dict(zip(case[sb].tolist(), zip(truth[sb].tolist(), call[sb].tolist())))
            entry: dict = {"reader": rd, "modalities": [a, b]}
            if set(ca) == set(cb):
                ids = list(ca)
                tab = PairedTable.from_calls(
                    np.array([ca[c][0] for c in ids]), np.array([ca[c][1] for c in ids]),
                    np.array([cb[c][1] for c in ids]))
                entry.update({"design": "paired", **paired_sens_spec(tab), **paired_predictive_values(tab)})
            elif not set(ca) & set(cb):
                acc_a, acc_b = per[a][rd], per[b][rd]
                entry["design"] = "unpaired"
                for meas in MEASURES:
                    entry[meas] = unpaired_compare(acc_a[meas]["k"], acc_a[meas]["n"], acc_b[meas]["k"], acc_b[meas]["n"])
            else:
                raise UserError(
                    f"reader {rd!r}: modalities {a!r} and {b!r} share only some cases; "
                    "expected the same cases (paired) or none (unpaired)"
                )
            comparisons.append(entry)
    return {"threshold": threshold, "per_modality": per, "comparisons": comparisons}
