"""Two models on the same cases: is one's per-case metric better than the other's?

When several checkpoints are evaluated on one split, every case gives a value per model, so
the fair comparison is case by case (the cases differ far more from each other than the
models do). For the differences ``d_i = a_i − b_i`` of the cases where both values are
finite this reports

- the mean difference with its paired-t confidence interval and the paired t test
  (``t = mean(d) / (sd(d) / √n)`` on ``n − 1`` degrees of freedom);
- the Wilcoxon signed-rank test, which needs no normality (per-case NCC is bounded and
  skewed): ``V`` = the sum of the ranks of ``|d_i|`` with ``d_i > 0``, zero differences
  dropped (Wilcoxon's convention); the exact null distribution when fewer than 50 pairs
  remain and no ``|d_i|`` are tied, otherwise the normal approximation with tie correction
  and continuity correction — the rule of R's ``wilcox.test``, whose printouts the tests
  reproduce;
- how many cases each model wins.

Both tests are two-sided.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy import stats

EXACT_MAX_N = 50  # R's wilcox.test: exact below 50 pairs (without ties or zeros)


def _finite_pairs(a: Sequence[float | None], b: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    if len(a) != len(b):
        raise ValueError(f"paired values need the same cases: {len(a)} vs {len(b)} values")
    keep = [(x, y) for x, y in zip(a, b)
            if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
    if not keep:
        return np.empty(0), np.empty(0)
    xs, ys = zip(*keep)
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def paired_comparison(a: Sequence[float | None], b: Sequence[float | None], *, level: float = 0.95) -> dict[str, Any]:
    """Per-case comparison of model A's values ``a`` with model B's ``b`` (same cases, same order).

    Cases where either value is missing or infinite are left out (``n_dropped``).

    Returns:
        ``n`` (pairs used), ``n_dropped``, ``mean_a``, ``mean_b``, ``diff`` (mean of a − b),
        ``sd_diff``, ``ci`` (paired t interval of ``diff`` at ``level``), ``t``, ``df``,
        ``p_t``, ``wilcoxon`` {``v``, ``n_nonzero``, ``method`` (``exact``/``normal``), ``p``},
        ``wins_a``, ``wins_b``, ``ties``, and ``note`` where a value is undefined (then
        ``None``, never NaN).

    >>> r = paired_comparison([0.7, 0.8, 0.9, 0.6], [0.5, 0.7, 0.6, 0.6])
    >>> r["n"], round(r["diff"], 3), r["wins_a"], r["ties"]
    (4, 0.15, 3, 1)
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    x, y = _finite_pairs(a, b)
    d = x - y
    n = int(d.size)
    out: dict[str, Any] = {
        "n": n, "n_dropped": len(a) - n,
        "mean_a": float(x.mean()) if n else None, "mean_b": float(y.mean()) if n else None,
        "diff": float(d.mean()) if n else None, "sd_diff": None, "ci": None, "t": None, "df": None, "p_t": None,
        "wilcoxon": None, "wins_a": int((d > 0).sum()), "wins_b": int((d < 0).sum()), "ties": int((d == 0).sum()),
        "level": level,
    }
    notes = []
    if n < 2:
        out["note"] = f"{n} case(s) with both values: too few to compare"
        return out
    sd = float(d.std(ddof=1))
    out["sd_diff"], out["df"] = sd, n - 1
    if sd > 0:
        se = sd / math.sqrt(n)
        t = float(d.mean()) / se
        q = float(stats.t.ppf(0.5 + level / 2, n - 1))
        out["t"], out["p_t"] = t, float(2 * stats.t.sf(abs(t), n - 1))
        out["ci"] = [float(d.mean()) - q * se, float(d.mean()) + q * se]
    else:
        notes.append("every case differs by the same amount: the t test is undefined")
    out["wilcoxon"] = signed_rank(d)
    if out["wilcoxon"]["p"] is None:
        notes.append(out["wilcoxon"].pop("note"))
    if notes:
        out["note"] = "; ".join(notes)
    return out


def signed_rank(d: np.ndarray) -> dict[str, Any]:
    """Two-sided Wilcoxon signed-rank test of differences ``d`` (R's ``wilcox.test`` rules).

    >>> signed_rank(np.array([1.0, 2.0, -0.5]))["v"]
    5.0
    """
    nz = d[d != 0]
    m = int(nz.size)
    if m == 0:
        return {"v": None, "n_nonzero": 0, "method": None, "p": None, "note": "all differences are zero: no signed-rank test"}
    ranks = stats.rankdata(np.abs(nz))
    v = float(ranks[nz > 0].sum())
    tied = np.unique(np.abs(nz)).size < m
    exact = m < EXACT_MAX_N and not tied and m == d.size
    method = "exact" if exact else "approx"
    # V is R's statistic; scipy's two-sided p does not depend on which side's rank sum it uses.
    kwargs = {} if exact else {"correction": True}
    p = float(stats.wilcoxon(nz, zero_method="wilcox", method=method, **kwargs).pvalue)
    return {"v": v, "n_nonzero": m, "method": "exact" if exact else "normal", "p": min(p, 1.0)}
