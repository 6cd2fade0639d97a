"""Paired comparison of two models' per-case metrics against R's printed worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from elastogan.eval.paired import paired_comparison, signed_rank
from published import assert_printed

# Student (1908) / Cushny & Peebles (1905): extra hours of sleep of 10 patients under two
# drugs; R's data set `sleep` (group 1, group 2, in patient order).
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]

# Hollander & Wolfe (1973), p. 29: Hamilton depression scale factor IV before (x) and after
# (y) a tranquilliser, 9 patients; the example of R's `wilcox.test` help page.
DEPRESSION_X = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
DEPRESSION_Y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]


def test_sleep_paired_t_matches_r():
    """R, the example of ?sleep: with(sleep, t.test(extra[group == 1], extra[group == 2], paired = TRUE)):
    t = -4.0621, df = 9, p-value = 0.002833, 95 % CI -2.4598858 -0.7001142, mean difference -1.58."""
    r = paired_comparison(SLEEP_1, SLEEP_2)
    assert r["n"] == 10 and r["df"] == 9
    assert_printed(r["t"], "-4.0621")
    assert_printed(r["p_t"], "0.002833")
    assert_printed(r["ci"][0], "-2.4598858")
    assert_printed(r["ci"][1], "-0.7001142")
    assert_printed(r["diff"], "-1.58")
    assert (r["wins_a"], r["wins_b"], r["ties"]) == (0, 9, 1)


def test_sleep_signed_rank_with_ties_and_a_zero_matches_r():
    """R: wilcox.test(sleep$extra[1:10], sleep$extra[11:20], paired = TRUE):
    V = 0, p-value = 0.009091 (with the warning that ties and zeroes rule out the exact p)."""
    w = paired_comparison(SLEEP_1, SLEEP_2)["wilcoxon"]
    assert w["v"] == 0 and w["n_nonzero"] == 9 and w["method"] == "normal"
    assert_printed(w["p"], "0.009091")


def test_depression_signed_rank_exact_matches_r():
    """R: wilcox.test(x, y, paired = TRUE, alternative = "greater"): V = 40, p-value = 0.01953.
    No ties, no zeros, 9 pairs: the exact distribution, symmetric, so two-sided = 2 × one-sided."""
    w = paired_comparison(DEPRESSION_X, DEPRESSION_Y)["wilcoxon"]
    assert w["v"] == 40 and w["method"] == "exact"
    assert_printed(w["p"] / 2, "0.01953")


def test_missing_values_are_dropped_pairwise():
    r = paired_comparison([*SLEEP_1, None, 1.0], [*SLEEP_2, 2.0, math.inf])
    assert r["n"] == 10 and r["n_dropped"] == 2
    assert_printed(r["t"], "-4.0621")


def test_swapping_the_models_flips_the_signs_only():
    ab, ba = paired_comparison(SLEEP_1, SLEEP_2), paired_comparison(SLEEP_2, SLEEP_1)
    assert ba["diff"] == pytest.approx(-ab["diff"]) and ba["t"] == pytest.approx(-ab["t"])
    assert ba["p_t"] == pytest.approx(ab["p_t"]) and ba["wilcoxon"]["p"] == pytest.approx(ab["wilcoxon"]["p"])
    assert ba["ci"] == pytest.approx([-ab["ci"][1], -ab["ci"][0]])
    # V is the positive-rank sum: 0 one way, all 45 ranks (1 + … + 9) the other
    assert ba["wilcoxon"]["v"] == 45


def test_undefined_statistics_are_none_with_a_note_not_nan():
    same = paired_comparison([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert same["diff"] == 0 and same["t"] is None and same["p_t"] is None and same["ci"] is None
    assert same["wilcoxon"]["p"] is None
    assert "same amount" in same["note"] and "all differences are zero" in same["note"]
    one = paired_comparison([0.5, None], [0.4, 0.3])
    assert one["n"] == 1 and one["t"] is None and "too few" in one["note"]
    with pytest.raises(ValueError, match="same cases"):
        paired_comparison([0.1, 0.2], [0.1])
    assert signed_rank(np.zeros(3))["p"] is None
