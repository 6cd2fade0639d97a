"""SNRe, CNRe, outlier share and the Varghese–Ophir strain filter: exact values and limits."""

import doctest

import numpy as np
import pytest

from elastogan.sim import strain_filter as sf

F0, B = 7.5e6, 0.6
T = 2 * 1.5e-3 / 1540.0  # a 1.5 mm window, in seconds of echo time


def test_doctests():
    assert doctest.testmod(sf).failed == 0


def test_snre_is_mean_over_sd():
    rng = np.random.default_rng(0)
    s = rng.normal(0.01, 0.002, 10000)
    assert sf.snr_e(s, np.ones(s.size, bool)) == pytest.approx(s.mean() / s.std(), rel=1e-12)
    assert sf.snr_e(s, np.ones(s.size, bool)) == pytest.approx(5.0, rel=0.03)


def test_cnre_follows_varghese_ophir_1998():
    t, b = np.array([2.0, 4.0]), np.array([10.0, 14.0])  # m_t 3, σ_t² 1; m_b 12, σ_b² 4
    s = np.concatenate([t, b])
    mask_t = np.array([1, 1, 0, 0], bool)
    assert sf.cnr_e(s, mask_t, ~mask_t) == pytest.approx(2 * 81 / 5)
    # Symmetric in target and background, invariant to a common scale.
    assert sf.cnr_e(3 * s, ~mask_t, mask_t) == pytest.approx(2 * 81 / 5)


def test_outlier_share_counts_a_factor_away_from_the_truth():
    truth = np.array([1.0, 1.0, 2.0, 2.0, 4.0])
    est = 0.01 * np.array([1.0, 2.5, 2.0, 0.9, 4.0])  # scale-free: medians normalise both
    # normalised: est/median(est)=[0.5,1.25,1,0.45,2], truth/2=[0.5,0.5,1,1,2]: 1.25 > 2·0.5 and 0.45·2 < 1
    assert sf.outlier_share(est, np.ones(5, bool), truth) == pytest.approx(0.4)
    assert sf.outlier_share(truth, np.ones(5, bool), truth) == 0.0
    with pytest.raises(ValueError, match="factor must exceed 1"):
        sf.outlier_share(est, np.ones(5, bool), factor=1.0)


def test_crlb_is_walker_trahey():
    rho, snr_db = 0.98, 30.0
    expected = 3 / (2 * F0**3 * np.pi**2 * T * (B**3 + 12 * B)) * ((1 + 10**-3) ** 2 / rho**2 - 1)
    assert sf.crlb_delay_variance(F0, B, T, rho, snr_db) == pytest.approx(expected, rel=1e-12)
    assert sf.crlb_delay_variance(F0, B, T, 1.0, 300.0) == pytest.approx(0.0, abs=1e-30)
    # Twice the window, half the variance.
    assert sf.crlb_delay_variance(F0, B, 2 * T, rho, snr_db) == pytest.approx(0.5 * expected, rel=1e-12)


def test_zzlb_is_the_crlb_for_small_errors_and_the_prior_without_information():
    rho = np.array([0.999, 0.99, 0.95])
    ratio = sf.zzlb_delay_variance(F0, B, T, rho, 60.0, T) / sf.crlb_delay_variance(F0, B, T, rho, 60.0)
    np.testing.assert_allclose(ratio, 1.0, rtol=0.02)
    # No information: a delay uniform over D has variance D²/12.
    assert sf.zzlb_delay_variance(F0, B, T, 1e-6, 0.0, T)[0] == pytest.approx(T**2 / 12, rel=1e-3)
    # Ambiguity: at low correlation the bound leaves the CRLB far behind (peak hopping).
    assert sf.zzlb_delay_variance(F0, B, T, 0.5, 60.0, T)[0] > 10 * sf.crlb_delay_variance(F0, B, T, 0.5, 60.0)


def test_strain_decorrelation_matches_its_small_strain_expansion():
    # (1/T)∫(1 − β²ε²t²/2)dt = 1 − β²ε²T²/24, β² = 4π²f0²(1 + B²/12).
    eps = 1e-3
    beta2 = 4 * np.pi**2 * F0**2 * (1 + B**2 / 12)
    assert 1 - sf.strain_decorrelation(eps, F0, B, T)[0] == pytest.approx(beta2 * eps**2 * T**2 / 24, rel=0.01)
    rho = sf.strain_decorrelation(np.linspace(0, 0.05, 11), F0, B, T)
    assert rho[0] == pytest.approx(1.0) and np.all(np.diff(rho) < 0)


def test_strain_filter_is_a_band_pass_in_strain():
    eps = np.array([0.0005, 0.002, 0.01, 0.02, 0.03, 0.05])
    snre = sf.strain_filter_snre(eps, f0_mhz=7.5, bandwidth=B, window_mm=1.5, snr_db=20.0, baseline_mm=3.0)
    # Electronic noise limits small strains, decorrelation large ones.
    assert snre[0] < snre[1] < snre[2]
    assert snre[2] > 3 * snre[4] and snre[4] > snre[5]
    # The sensitivity improves with the echo SNR; a longer baseline raises SNRe in proportion.
    better = sf.strain_filter_snre(eps, f0_mhz=7.5, bandwidth=B, window_mm=1.5, snr_db=40.0, baseline_mm=3.0)
    assert better[0] > 2 * snre[0]
    np.testing.assert_allclose(sf.strain_filter_snre(eps, f0_mhz=7.5, bandwidth=B, window_mm=1.5, snr_db=20.0, baseline_mm=6.0),
                               2 * snre, rtol=1e-12)
    # Extra (elevational) decorrelation can only lower the bound.
    worse = sf.strain_filter_snre(eps, f0_mhz=7.5, bandwidth=B, window_mm=1.5, snr_db=20.0, baseline_mm=3.0,
                                  extra_correlation=0.97)
    assert np.all(worse <= snre)


def test_strain_filter_refuses_bad_parameters():
    with pytest.raises(ValueError, match="must be positive"):
        sf.strain_filter_snre(0.01, f0_mhz=7.5, bandwidth=0.0, window_mm=1.5, snr_db=20.0, baseline_mm=3.0)
    with pytest.raises(ValueError, match="at least 2 pixels"):
        sf.snr_e(np.ones(3), np.array([True, False, False]))
