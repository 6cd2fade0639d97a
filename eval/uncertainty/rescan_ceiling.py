"""The uncertainty ceiling: the scanner's own re-scans scored as a sampling model's draws.

``evaluate`` asks of a sampling generator that its per-pixel sd follow its error
(``sd_error_spearman``), that its 90 % interval cover the real strain (``coverage_90``) and
that a case's mean sd follow its error (``sd_ncc_spearman``). Nothing that sees only the
B-mode can do better than the scanner's own distribution given the tissue: K re-scans of the
same phantom (``elastogan.sim.rescan``). This module scores those re-scans against the
recorded scan with ``evaluate``'s own functions (``compare_case``, ``summarise``), so the
ceiling and the model's figure are one computation on two sets of draws.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np

from elastogan.eval.evaluate import COLUMNS, compare_case, summarise
from elastogan.eval.evaluate_report import load_real_case
from elastogan.data.manifest import Case

# The columns that judge K draws, and the summary keys that aggregate them.
SAMPLE_COLUMNS = ("ncc", "ncc_mean_of_samples", "ncc_lesion_mean_of_samples", "sd_mean", "sd_error_spearman",
                  "coverage_90_raw")
SUMMARY_KEYS = ("n_cases", "ncc_mean", "ncc_mean_of_samples_mean", "ncc_lesion_mean_of_samples_mean", "sd_mean_mean",
                "sd_error_spearman", "sd_error_spearman_sd", "coverage_90_raw", "sd_ncc_spearman")
# The recorded maps are float32 .npy files: a re-simulation that reproduces them agrees to
# round-off (numpy's SIMD paths differ in the last bits of exp/log).
REPRODUCE_ATOL = 1e-4


class NotReproduced(ValueError):
    """The recipe's re-simulation of a case differs from its recorded maps."""


def _max_difference(a: np.ndarray, b: np.ndarray) -> float:
    both = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(both, np.isfinite(a)) or not np.array_equal(both, np.isfinite(b)):
        return float("inf")
    return float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0


def scanner_rows(cases: Sequence[Case], rescans: Iterable[tuple[np.ndarray, np.ndarray]],
                 progress: Callable[[Iterable], Iterable] = lambda it: it) -> list[dict[str, Any]]:
    """One row of :data:`SAMPLE_COLUMNS` per case: its re-scans (``rescans``, one
    ``(first scan, (K, H, W) re-scans)`` per case, in the cases' order) as the draws, its
    recorded scan as the real map.

    Raises:
        NotReproduced: a re-simulated first scan (or re-scan 0, where the data set recorded
            one) differs from the stored map by more than :data:`REPRODUCE_ATOL`.
    """
    rows = []
    for case, (first, draws) in progress(zip(cases, rescans)):
        real = load_real_case(case)
        for what, stored, made in (("strain", real.strain, first), ("retest_strain", real.retest_strain, draws[0])):
            if stored is not None and _max_difference(stored, made) > REPRODUCE_ATOL:
                raise NotReproduced(f"case {case.id}: the recipe's {what} differs from the stored one by "
                                    f"{_max_difference(stored, made):.3g}")
        emode = real.emode if real.emode is not None else np.zeros((*real.strain.shape, 3), np.uint8)
        row = compare_case(real, emode, draws[0], samples=draws)
        rows.append({"case": case.id, **{k: row[k] for k in SAMPLE_COLUMNS}})
    return rows


def ceiling_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """:data:`SUMMARY_KEYS` of ``evaluate``'s ``summarise`` over the scanner's rows."""
    full = [{**dict.fromkeys(COLUMNS), **r} for r in rows]
    s = summarise(full)
    return {k: s[k] for k in SUMMARY_KEYS}
