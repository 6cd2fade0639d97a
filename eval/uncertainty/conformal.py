"""Fit the conformal factors of a sampling generator's intervals on held-out cases.

``elastogan calibrate`` runs this on a split the model was not trained on (default ``val``)
and stores the result in the checkpoint (``"uncertainty"``); ``Predictor`` then widens the
intervals that ``predict``, the Preview and ``evaluate`` show by those factors
(:mod:`elastogan.uncertainty`). Two factors, one per interval:

* **per pixel**: the conformal quantile of ``|real − mean| / (t · sd · √(1 + 1/K))`` pooled over
  the ROI pixels of every held-out case. Pixels of one case are not exchangeable (neighbours
  share errors), so the finite-sample guarantee holds per case, not per pixel; pooled over
  hundreds of cases the factor is the plug-in estimate of the marginal quantile, and
  ``evaluate`` measures what it gives on other cases (``coverage_90``);
* **strain ratio**: one score per case with a lesion — exchangeable cases, the textbook
  split-conformal setting (Angelopoulos & Bates 2023).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from elastogan.tsukuba import strain_ratio
from elastogan.uncertainty import (IntervalCalibration, conformal_scale, interval_half_width, interval_scores,
                                   ratio_score)

MIN_RATIO_CASES = 20  # below this a ratio factor is noise (9 cases are the minimum for 90 %)


def fit_calibration(sample: Callable[[Any], np.ndarray], cases: Iterable[Any], *, samples: int, level: float = 0.9,
                    source: dict | None = None, progress: Callable[[Iterable], Iterable] = iter) -> IntervalCalibration:
    """The conformal factors of ``level`` intervals from K = ``samples`` draws per held-out case.

    Args:
        sample: ``case → (K, H, W)`` strain draws, NaN outside the ROI (``Predictor.sample``).
        cases: held-out cases with ``strain``, ``roi``, ``roi_mask`` and ``lesion`` (``RealCase``).
        samples: K (at least 2).
        level: the intervals' coverage.
        source: recorded with the factors (manifest, split, seed).
        progress: wraps the case iterable (a progress bar).

    Raises:
        ValueError: K < 2, no case, draws that do not vary, or too few scores.
    """
    if samples < 2:
        raise ValueError(f"calibration needs at least 2 draws per case, got {samples}")
    pixel_scores, ratio_scores = [], []
    covered = total = n = 0
    for case in progress(cases):
        draws = sample(case)
        with np.errstate(invalid="ignore"):
            mean, sd = draws.mean(axis=0), draws.std(axis=0, ddof=1)
        s = interval_scores(case.strain, mean, sd, samples, level, case.roi_mask)
        pixel_scores.append(s.astype(np.float32))
        covered += int((s <= 1.0).sum())
        total += s.size
        n += 1
        if case.lesion is not None:
            try:
                real = strain_ratio(case.strain, case.lesion, case.roi)
                ratio_scores.append(ratio_score(draws, case.lesion, case.roi, real, level))
            except ValueError:
                pass  # no reference tissue beside the lesion, or a non-positive ratio: no score
    if n == 0:
        raise ValueError("no held-out case to calibrate on")
    pixel = conformal_scale(np.concatenate(pixel_scores), level)
    ratio = conformal_scale(np.asarray(ratio_scores), level) if len(ratio_scores) >= MIN_RATIO_CASES else None
    return IntervalCalibration(level=level, samples=samples, pixel_scale=pixel, ratio_scale=ratio, cases=n,
                               ratio_cases=len(ratio_scores), coverage_before=covered / total if total else float("nan"),
                               source=dict(source or {}))


__all__ = ["fit_calibration", "interval_half_width", "MIN_RATIO_CASES"]
