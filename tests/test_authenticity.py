"""Authenticity reading statistics: accuracy with exact binomial test, fractions judged real, d'."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from elastogan.errors import UserError
from elastogan.eval.authenticity import readers
from published import assert_printed


def test_hand_computed_reader():
    # 10 synthetic (4 judged synthetic), 10 real (3 judged synthetic)
    is_syn = np.array([1] * 10 + [0] * 10)
    judged = np.array([1] * 4 + [0] * 6 + [1] * 3 + [0] * 7)
    res = readers.summarise(is_syn, judged, "r1")
    assert res["accuracy"] == 11 / 20
    # exact two-sided binomial, symmetric at 0.5: p = 2 P(X >= 11), X ~ Bin(20, 1/2)
    p = 2 * sum(stats.binom.pmf(k, 20, 0.5) for k in range(11, 21))
    assert res["p"] == pytest.approx(p, rel=1e-12)
    assert res["fraction_synthetic_judged_real"] == 0.6
    assert res["fraction_real_judged_real"] == 0.7
    # both rates inside (0, 1): the plain d' = z(0.4) − z(0.3), no correction (issue 13 §4)
    assert res["d_prime"] == pytest.approx(stats.norm.ppf(0.4) - stats.norm.ppf(0.3), rel=1e-12)
    assert res["d_prime_method"] == readers.D_PRIME_PLAIN


def test_chance_reader_has_zero_d_prime_and_p_one():
    is_syn = np.array([1, 1, 0, 0])
    res = readers.summarise(is_syn, np.array([1, 0, 1, 0]), "r")
    assert res["d_prime"] == pytest.approx(0.0, abs=1e-15)
    assert res["p"] == 1.0


def test_perfect_reader_has_finite_log_linear_d_prime():
    res = readers.summarise(np.array([1] * 5 + [0] * 5), np.array([1] * 5 + [0] * 5), "r")
    # H = 1, F = 0: both corrected to 5.5/6 and 0.5/6 (Hautus 1995), and labelled so
    assert res["d_prime"] == pytest.approx(stats.norm.ppf(5.5 / 6) - stats.norm.ppf(0.5 / 6), rel=1e-12)
    assert res["d_prime_method"] == readers.D_PRIME_LOG_LINEAR


def test_one_extreme_rate_corrects_both():
    # H = 7/7 = 1, F = 2/8: the log-linear correction applies to both rates
    d, how = readers.d_prime(7, 7, 2, 8)
    assert d == pytest.approx(stats.norm.ppf(7.5 / 8) - stats.norm.ppf(2.5 / 9), rel=1e-12)
    assert how == readers.D_PRIME_LOG_LINEAR
    assert readers.d_prime(8, 10, 2, 10) == (pytest.approx(2 * stats.norm.ppf(0.8), rel=1e-12), readers.D_PRIME_PLAIN)


def test_reader_without_real_images_is_refused():
    with pytest.raises(UserError, match="reader 'x': saw 3 synthetic and 0 real"):
        readers.summarise(np.array([1, 1, 1]), np.array([1, 0, 1]), "reader 'x'")


# R, the example of ?binom.test (stats package; Conover 1971, p. 97f.): 682 "giant" plants
# of 925, `binom.test(c(682, 243), p = 3/4)` prints p-value = 0.3825, 95 percent confidence
# interval 0.7076683 0.7654066, probability of success 0.7372973. The Clopper–Pearson interval
# does not depend on p0, so it pins ours; `summarise` tests against 0.5 only (chance), so the
# printed p (against 3/4) does not apply and its p is checked by the binomial sum above.
BINOM_TEST = {"x": 682, "n": 925, "ci": ("0.7076683", "0.7654066"), "estimate": "0.7372973"}


def test_accuracy_ci_reproduces_r_binom_test():
    x, n = BINOM_TEST["x"], BINOM_TEST["n"]
    # 500 synthetic and 425 real images; 682 named correctly (400 synthetic, 282 real).
    is_syn = np.array([1] * 500 + [0] * 425)
    judged = np.array([1] * 400 + [0] * 100 + [0] * 282 + [1] * 143)
    res = readers.summarise(is_syn, judged, "r")
    assert (res["n"], res["n_correct"]) == (n, x)
    assert_printed(res["accuracy"], BINOM_TEST["estimate"])
    for got, printed in zip(res["ci"], BINOM_TEST["ci"]):
        assert_printed(got, printed)


def test_fraction_judged_real_ci_reproduces_r_binom_test():
    # 925 synthetic images of which 682 judged real; 10 real images besides.
    is_syn = np.array([1] * 925 + [0] * 10)
    judged = np.array([0] * 682 + [1] * 243 + [0] * 10)
    res = readers.summarise(is_syn, judged, "r")
    assert_printed(res["fraction_synthetic_judged_real"], BINOM_TEST["estimate"])
    for got, printed in zip(res["fraction_synthetic_judged_real_ci"], BINOM_TEST["ci"]):
        assert_printed(got, printed)
