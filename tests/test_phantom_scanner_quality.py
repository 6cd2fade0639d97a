"""eval/phantoms/scanner_quality: displayed strain against the truth, and its outlier pixels."""

from __future__ import annotations

import numpy as np
import pytest

from elastogan.eval.phantoms.scanner_quality import case_quality


def test_a_perfect_map_has_no_outliers_and_planted_streaks_are_counted():
    rng = np.random.default_rng(0)
    truth = np.full((64, 64), np.nan, np.float32)
    truth[8:56, 8:56] = np.clip(0.5 + 0.1 * rng.standard_normal((48, 48)), 0.05, 1.0)
    r, out = case_quality(truth, truth)
    assert r == pytest.approx(1.0) and out == 0.0
    streaked = truth.copy()
    streaked[8:56, 20:22] = 0.0  # two columns shown as hardest: 2 of 48 columns, a peak-hopping streak
    streaked[8:32, 40] *= 1.5  # half a column 1.5x too soft: wrong, but within the factor of 2
    r, out = case_quality(streaked, truth)
    assert out == pytest.approx(2 / 48, abs=0.002) and r < 0.9


def test_too_few_defined_pixels_are_refused():
    with pytest.raises(ValueError, match="fewer than 9"):
        case_quality(np.full((8, 8), np.nan), np.zeros((8, 8)))
