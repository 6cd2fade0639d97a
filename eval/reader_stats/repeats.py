"""Repeated readings and reading times: what a reader study records beside the answers.

* **Intra-reader agreement.** An image shown again later (``repeat`` = 1 in the export) is
  paired with the same reader's first reading of it; per reader and pooled over readers,
  Cohen's κ of first against repeat (Cohen 1960; weighted for ordinal answers, Cohen 1968;
  SE of Fleiss, Cohen & Everitt 1969 — :func:`elastogan.eval.agreement.cohen_kappa`, checked
  there against published tables). κ = 1: every answer repeated; 0: agreement at chance.
* **Reading times** (``reading_time_s``: the server's time from image shown to answer
  stored): n, median with quartiles, mean, sd and total, overall and by reader and by the
  other columns given (modality, stage …). The median is the summary to quote: times are
  skewed (a reader who pauses leaves one very long time).

The main analyses use first readings only; these functions take the repeats.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from elastogan.errors import UserError
from elastogan.eval import agreement


def pair_repeats(reader: np.ndarray, key: Sequence[np.ndarray], answer: np.ndarray,
                 repeat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match every repeated reading with the same reader's first reading of the same item.

    Args:
        reader: (n,) reader names.
        key: columns that name the item read, each (n,) (e.g. case and modality).
        answer: (n,) answers (category indices).
        repeat: (n,) bool, True for a repeated reading.

    Returns:
        reader (m,), first answer (m,), repeat answer (m,) for the m repeats.

    Raises:
        UserError: a repeat without a first reading.
    """
    items = list(zip(reader.tolist(), *(k.tolist() for k in key)))
    first = {it: a for it, a, rep in zip(items, answer.tolist(), repeat.tolist()) if not rep}
    rd, a1, a2 = [], [], []
    for it, a, rep in zip(items, answer.tolist(), repeat.tolist()):
        if not rep:
            continue
        if it not in first:
            raise UserError(f"reader {it[0]!r}: a repeated reading of {', '.join(map(repr, it[1:]))} "
                            "without a first reading")
        rd.append(it[0])
        a1.append(first[it])
        a2.append(a)
    return np.array(rd, dtype=object), np.array(a1, dtype=np.int64), np.array(a2, dtype=np.int64)


def _kappa_block(first: np.ndarray, second: np.ndarray, q: int, weights: Sequence[str], level: float) -> dict:
    table = np.zeros((q, q))
    np.add.at(table, (first, second), 1)
    out: dict = {"n_pairs": int(first.size), "agreement": float((first == second).mean())}
    try:
        for w in weights:
            res = agreement.cohen_kappa(table, w, level)
            out[w] = {"value": res["value"], "se": res["se"], "ci": res["ci"]}
    except agreement.AgreementError as e:
        out["undefined"] = str(e)
    return out


def intra_reader_kappa(reader: np.ndarray, first: np.ndarray, second: np.ndarray, categories: Sequence[str], *,
                       ordinal: bool, level: float = 0.95) -> dict:
    """Cohen's κ of first against repeated readings, per reader and pooled.

    Args:
        reader, first, second: (m,) from :func:`pair_repeats`.
        categories: the answer categories, in order (indices into it).
        ordinal: also report linear- and quadratic-weighted κ.

    Returns:
        ``{"categories", "weights", "pooled": {...}, "readers": {READER: {...}}}``; each block has
        ``n_pairs``, ``agreement`` (fraction repeated exactly) and per weighting
        ``{"value", "se", "ci"}``, or ``undefined`` with the reason (e.g. one category only).

    Example:
        >>> r = np.array(["a"] * 4, dtype=object)
        >>> intra_reader_kappa(r, np.array([0, 0, 1, 1]), np.array([0, 0, 1, 0]), ["real", "synthetic"],
        ...                    ordinal=False)["pooled"]["unweighted"]["value"]
        0.5
    """
    q = len(categories)
    if q < 2:
        raise ValueError(f"expected at least 2 categories, got {q}")
    weights = agreement.WEIGHTS if ordinal else ("unweighted",)
    out: dict = {"categories": list(categories), "weights": list(weights),
                 "pooled": _kappa_block(first, second, q, weights, level), "readers": {}}
    for rd in dict.fromkeys(reader.tolist()):
        sel = reader == rd
        out["readers"][rd] = _kappa_block(first[sel], second[sel], q, weights, level)
    return out


def _time_block(seconds: np.ndarray) -> dict:
    s = seconds[np.isfinite(seconds)]
    if s.size == 0:
        return {"n": 0}
    q1, med, q3 = np.percentile(s, [25, 50, 75])
    return {"n": int(s.size), "median": float(med), "q1": float(q1), "q3": float(q3), "mean": float(s.mean()),
            "sd": float(s.std(ddof=1)) if s.size > 1 else None, "min": float(s.min()), "max": float(s.max()),
            "total": float(s.sum())}


def reading_times(seconds: np.ndarray, by: Mapping[str, np.ndarray]) -> dict:
    """Summaries of reading times (seconds), overall and by each grouping column.

    Args:
        seconds: (n,) times; NaN where a reading has none (left out and counted).
        by: grouping columns (n,) by name, e.g. ``{"reader": …, "modality": …}``.

    Returns:
        ``{"unit": "s", "overall": {...}, "n_missing", "by": {NAME: {VALUE: {...}}}}`` with n,
        median, q1, q3, mean, sd, min, max, total per block.

    Example:
        >>> reading_times(np.array([2.0, 4.0, 30.0, np.nan]), {})["overall"]["median"]
        4.0
    """
    seconds = np.asarray(seconds, dtype=np.float64)
    out: dict = {"unit": "s", "overall": _time_block(seconds), "n_missing": int((~np.isfinite(seconds)).sum()),
                 "by": {}}
    for name, col in by.items():
        out["by"][name] = {str(v): _time_block(seconds[col == v]) for v in dict.fromkeys(col.tolist())}
    return out
