"""Calibration of sampled elastograms (``elastogan.eval.uncertainty.calibration``): exact values
and the behaviour of calibrated, over-confident and uninformative toy samplers."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy import stats

from elastogan.eval.metrics import MetricError
from elastogan.eval.uncertainty import calibration as cal
from elastogan.uncertainty import predictive_interval


def test_docstring_examples():
    assert doctest.testmod(cal).failed == 0


def test_spearman_exact_values_and_ties():
    assert cal.spearman([1, 2, 3, 4, 5], [2, 4, 8, 16, 1000]) == 1.0  # monotone, not linear
    assert cal.spearman([1, 2, 3], [9, 5, 1]) == -1.0
    x, y = [1, 2, 2, 3, 5, 4], [3, 1, 2, 2, 6, 5]
    assert cal.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    with pytest.raises(MetricError, match="constant"):
        cal.spearman([1, 1, 1], [1, 2, 3])
    with pytest.raises(MetricError, match="at least 3 pairs"):
        cal.spearman([1, 2], [1, 2])


def test_predictive_interval_is_student_t_of_one_more_draw():
    lo, hi = predictive_interval(np.array([0.5, 0.2]), np.array([0.1, 0.0]), samples=8, level=0.9)
    half = 1.894578605 * 0.1 * np.sqrt(1 + 1 / 8)  # t(7, 0.95)
    assert lo == pytest.approx([0.5 - half, 0.2]) and hi == pytest.approx([0.5 + half, 0.2])
    with pytest.raises(ValueError, match="at least 2 draws"):
        predictive_interval(np.zeros(1), np.zeros(1), samples=1)
    with pytest.raises(ValueError, match="level must be in"):
        predictive_interval(np.zeros(1), np.zeros(1), samples=4, level=1.0)


def test_coverage_counts_the_ends_and_leaves_out_nan_and_the_mask():
    real = np.array([[0.1, 0.2, 0.3], [0.4, np.nan, 0.9]])
    lo, hi = np.full((2, 3), 0.2), np.full((2, 3), 0.4)
    assert cal.interval_coverage(real, lo, hi) == pytest.approx(3 / 5)  # 0.2, 0.3, 0.4 of 5 finite
    mask = np.array([[True, True, False], [False, True, False]])
    assert cal.interval_coverage(real, lo, hi, mask) == 0.5
    with pytest.raises(MetricError, match="at least 1 finite pixel"):
        cal.interval_coverage(real, lo, hi, np.zeros((2, 3), bool))


def _toy(k: int, sd_map: np.ndarray, *, confidence: float = 1.0, seed: int = 0):
    """A real map and K draws from the sampler's belief N(mu, (confidence · sd)²), with the real
    value itself one draw of N(mu, sd²): calibrated when ``confidence`` is 1."""
    rng = np.random.default_rng(seed)
    mu = rng.uniform(0.2, 0.8, sd_map.shape)
    real = mu + sd_map * rng.standard_normal(sd_map.shape)
    draws = mu + confidence * sd_map * rng.standard_normal((k, *sd_map.shape))
    mean, sd = draws.mean(axis=0), draws.std(axis=0, ddof=1)
    return real, mean, sd


@pytest.mark.parametrize("k", [2, 8, 32])
def test_a_calibrated_gaussian_sampler_covers_90_percent_at_any_k(k):
    real, mean, sd = _toy(k, np.full((200, 200), 0.05))
    lo, hi = predictive_interval(mean, sd, k, 0.9)
    assert cal.interval_coverage(real, lo, hi) == pytest.approx(0.90, abs=0.005)  # 40 000 pixels: se 0.0015


def test_an_overconfident_sampler_undercovers_by_the_predicted_amount():
    c, k = 0.5, 8  # the draws spread half as much as the real value varies
    real, mean, sd = _toy(k, np.full((200, 200), 0.05), confidence=c)
    lo, hi = predictive_interval(mean, sd, k, 0.9)
    # (real − mean) / (sd · √(1 + c²/K) / c) is Student's t with K − 1 df, so the interval
    # covers P(|t| ≤ t(K−1, 0.95) · √(1 + 1/K) · c / √(1 + c²/K)) of the pixels.
    bound = stats.t.ppf(0.95, k - 1) * np.sqrt(1 + 1 / k) * c / np.sqrt(1 + c * c / k)
    expected = 2 * stats.t.cdf(bound, k - 1) - 1
    assert expected == pytest.approx(0.645, abs=0.005)
    assert cal.interval_coverage(real, lo, hi) == pytest.approx(expected, abs=0.006)


def test_sd_error_correlation_is_near_zero_for_uninformative_sd_and_positive_for_informative():
    flat = np.full((150, 150), 0.05)
    real, mean, sd = _toy(8, flat, seed=1)
    rho = cal.sd_error_spearman(real, mean, sd)
    assert abs(rho) < 0.03  # 22 500 pixels: se ≈ 0.007
    varying = np.repeat(np.linspace(0.01, 0.2, 150)[None], 150, axis=0)  # sd that follows the error's scale
    real, mean, sd = _toy(8, varying, seed=1)
    assert cal.sd_error_spearman(real, mean, sd) > 0.3
    roi = np.zeros((150, 150), bool)
    roi[:, :2] = True  # two columns of nearly one sd: little left to rank
    assert cal.sd_error_spearman(real, mean, sd, roi) < cal.sd_error_spearman(real, mean, sd)


def test_sd_error_correlation_of_a_deterministic_model_is_undefined():
    real, mean, _ = _toy(8, np.full((20, 20), 0.05))
    with pytest.raises(MetricError, match="constant"):
        cal.sd_error_spearman(real, mean, np.zeros_like(mean))


def test_sd_ncc_correlation_across_cases():
    assert cal.sd_ncc_spearman([0.01, 0.02, 0.05, 0.03], [0.9, 0.8, 0.5, 0.7]) == 1.0  # more sd, lower NCC
    assert cal.sd_ncc_spearman([0.01, None, 0.05, 0.03, 0.02], [0.5, 0.9, 0.9, 0.7, float("nan")]) == -1.0
    with pytest.raises(MetricError, match="at least 3 cases"):
        cal.sd_ncc_spearman([0.01, 0.02, None], [0.9, 0.8, 0.7])
