"""Authenticity reading statistics: accuracy with exact binomial test, fractions judged real, d'."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from elastogan.errors import UserError
from elastogan.eval import authenticity


def test_hand_computed_reader():
    # 10 synthetic (4 judged synthetic), 10 real (3 judged synthetic)
    is_syn = np.array([1] * 10 + [0] * 10)
    judged = np.array([1] * 4 + [0] * 6 + [1] * 3 + [0] * 7)
    res = authenticity.summarise(is_syn, judged, "r1")
    assert res["accuracy"] == 11 / 20
    # exact two-sided binomial, symmetric at 0.5: p = 2 P(X >= 11), X ~ Bin(20, 1/2)
    p = 2 * sum(stats.binom.pmf(k, 20, 0.5) for k in range(11, 21))
    assert res["p"] == pytest.approx(p, rel=1e-12)
    assert res["fraction_synthetic_judged_real"] == 0.6
    assert res["fraction_real_judged_real"] == 0.7
    h, f = 4.5 / 11, 3.5 / 11
    assert res["d_prime"] == pytest.approx(stats.norm.ppf(h) - stats.norm.ppf(f), rel=1e-12)


def test_chance_reader_has_zero_d_prime_and_p_one():
    is_syn = np.array([1, 1, 0, 0])
    res = authenticity.summarise(is_syn, np.array([1, 0, 1, 0]), "r")
    assert res["d_prime"] == pytest.approx(0.0, abs=1e-15)
    assert res["p"] == 1.0


def test_perfect_reader_has_finite_d_prime():
    res = authenticity.summarise(np.array([1] * 5 + [0] * 5), np.array([1] * 5 + [0] * 5), "r")
    assert np.isfinite(res["d_prime"]) and res["d_prime"] > 2


def test_reader_without_real_images_is_refused():
    with pytest.raises(UserError, match="reader 'x': saw 3 synthetic and 0 real"):
        authenticity.summarise(np.array([1, 1, 1]), np.array([1, 0, 1]), "reader 'x'")
