"""Exact values and input checks of the reader-free authenticity measurements (issue 11 §1).

Binomial CI against R's printed digits and its defining tail sums, the AUC of a known ranking,
the Fréchet distance of Gaussians in closed form, the spectrum of a sinusoid, the texture
features of maps whose answer is known, the memorisation distance as √(2(1 − NCC)).
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from scipy import ndimage, linalg

from elastogan.display import render_emode
from elastogan.errors import UserError
from elastogan.eval.authenticity import c2st, frechet, texture
from elastogan.eval.authenticity.c2st import accuracy_test, group_folds, two_sample_test
from elastogan.eval.authenticity.cnn_observer import CNNObserver
from elastogan.eval.authenticity.figures import memorisation_png, spectrum_png
from elastogan.eval.authenticity.frechet import fd_texture, frechet_distance
from elastogan.eval.authenticity.maps import resize_bilinear
from elastogan.eval.authenticity.memorisation import memorisation_ratio, nearest_distances, thumbnails
from elastogan.eval.authenticity.report import authenticity_metrics
from elastogan.eval.authenticity.spectrum import periodogram, radial_spectrum
from elastogan.eval.authenticity.texture import FEATURE_NAMES, texture_features
from elastogan.eval.authenticity.texture_observer import TextureObserver, fit_logistic
from elastogan.eval.metrics import ncc
from elastogan.models.bench import torch_threads
from published import assert_printed
from test_authenticity import BINOM_TEST


@pytest.mark.parametrize("module", [c2st, frechet, texture], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


# --- binomial test and AUC ---------------------------------------------------------------------


def test_accuracy_ci_reproduces_r_binom_test():
    res = accuracy_test(BINOM_TEST["x"], BINOM_TEST["n"])
    assert_printed(res["accuracy"], BINOM_TEST["estimate"])
    for got, printed in zip(res["ci"], BINOM_TEST["ci"]):
        assert_printed(got, printed)


@pytest.mark.parametrize("k, n", [(31, 40), (20, 40), (3, 10), (60, 80), (0, 8)])
def test_binomial_p_and_ci_match_their_definitions(k, n):
    res = accuracy_test(k, n)

    def tail_ge(p: float) -> float:
        return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))

    def tail_le(p: float) -> float:
        return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(0, k + 1))

    # Symmetric null: two-sided p = 2 · P(X ≥ max(k, n − k)), at most 1.
    far = max(k, n - k)
    exact = min(1.0, 2 * sum(math.comb(n, j) for j in range(far, n + 1)) / 2**n)
    assert res["p"] == pytest.approx(exact, rel=1e-9)
    lo, hi = res["ci"]
    # Clopper–Pearson: each bound leaves 2.5 % in its tail (or is 0 / 1 at the edges).
    assert lo == 0.0 if k == 0 else tail_ge(lo) == pytest.approx(0.025, rel=1e-6)
    assert hi == 1.0 if k == n else tail_le(hi) == pytest.approx(0.025, rel=1e-6)


def _identity_observer(train, labels, test, seed):
    return np.asarray(test, dtype=np.float64)  # the sample is its own score


def test_c2st_accuracy_and_auc_of_a_known_ranking():
    a, b = [0.1, 0.2, 0.6], [0.4, 0.7, 0.9]
    res = two_sample_test(a, b, ["a1", "a2", "a3"], ["b1", "b2", "b3"], _identity_observer, folds=3)
    # Right at 0.5: 0.1, 0.2 (set A) and 0.7, 0.9 (set B); pairs B > A: 2 + 3 + 3 of 9.
    assert (res.n, res.n_correct, res.accuracy) == (6, 4, 4 / 6)
    assert res.auc == pytest.approx(8 / 9)
    assert res.p == pytest.approx(accuracy_test(4, 6)["p"])
    tied = two_sample_test([0.3, 0.5], [0.5, 0.8], ["x", "y"], ["z", "w"], _identity_observer, folds=2)
    assert tied.auc == pytest.approx((1 + 0.5 + 1 + 1) / 4)  # a tie counts one half
    assert tied.n_correct == 3  # 0.5 is not above 0.5: both 0.5s are called set A, one of them wrongly


def test_c2st_refuses_bad_observers_and_one_sided_folds():
    with pytest.raises(ValueError, match="probabilities"):
        two_sample_test([0.1, 0.2], [0.3, 0.4], ["a", "b"], ["c", "d"], lambda *args: np.array([2.0]), folds=2)
    # All of set A in one patient: the fold that holds it trains on set B alone.
    with pytest.raises(ValueError, match="only one of the two sets"):
        two_sample_test([0.1, 0.2], [0.3, 0.4, 0.5], ["p", "p"], ["q", "r", "s"], _identity_observer, folds=2)
    with pytest.raises(ValueError, match="one group per sample"):
        two_sample_test([0.1, 0.2], [0.3], ["p"], ["q"], _identity_observer)


def test_folds_keep_groups_together_and_balance_the_sets():
    rng = np.random.default_rng(0)
    groups = [f"p{int(g)}" for g in rng.integers(0, 23, 60)]
    labels = np.array([i % 2 for i in range(60)])
    for folds in (2, 5, 30):
        fold = group_folds(groups, folds, seed=1, strata=labels)
        k = min(folds, len(set(groups)))
        assert sorted(set(fold.tolist())) == list(range(k))
        for g in set(groups):
            assert len({int(f) for f, h in zip(fold, groups) if h == g}) == 1
        np.testing.assert_array_equal(fold, group_folds(groups, folds, seed=1, strata=labels))
    assert not np.array_equal(group_folds(groups, 5, seed=1), group_folds(groups, 5, seed=2))
    # Two unpaired sets of single-map patients: every fold gets the same share of each.
    sets = np.array([0] * 20 + [1] * 20)
    fold = group_folds([f"p{i}" for i in range(40)], 5, seed=0, strata=sets)
    for f in range(5):
        assert np.bincount(sets[fold == f], minlength=2).tolist() == [4, 4]
    with pytest.raises(ValueError, match="at least 2 groups"):
        group_folds(["p", "p", "p"], 5)
    with pytest.raises(ValueError, match="folds must be an integer >= 2"):
        group_folds(["p", "q"], 1)


def test_logistic_regression_solves_its_penalised_likelihood():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    y = (x @ [1.0, -2.0, 0.0] + rng.normal(size=50) > 0).astype(int)
    for l2 in (0.1, 1.0):
        w, b = fit_logistic(x, y, l2)
        resid = 1 / (1 + np.exp(-(x @ w + b))) - y
        # Stationarity: X'(σ(z) − y) + λw = 0 and Σ(σ(z) − y) = 0.
        np.testing.assert_allclose(x.T @ resid + l2 * w, 0, atol=1e-6)
        assert abs(resid.sum()) < 1e-6
    w, b = fit_logistic(x, y, 1e8)  # all penalty: w → 0, b → logit of the base rate
    assert np.abs(w).max() < 1e-5 and b == pytest.approx(math.log(y.mean() / (1 - y.mean())), abs=1e-4)
    probs = TextureObserver()(list(x[:40]), y[:40], list(x[40:]), 0)
    assert probs.shape == (10,) and ((probs > 0.5) == y[40:]).mean() >= 0.8


# --- Fréchet distance ---------------------------------------------------------------------------


def test_frechet_distance_closed_forms():
    # Commuting covariances: ‖Δμ‖² + Σ (√a − √b)².
    assert frechet_distance(np.zeros(2), np.eye(2), np.array([1.0, 2.0]), np.diag([4.0, 9.0])) == pytest.approx(10.0)
    # Non-commuting: the textbook form with scipy's general matrix square root of Σ₁Σ₂.
    s1 = np.array([[2.0, 0.8], [0.8, 1.0]])
    s2 = np.array([[1.0, -0.3], [-0.3, 3.0]])
    expected = 0.25 + np.trace(s1) + np.trace(s2) - 2 * np.trace(np.real(linalg.sqrtm(s1 @ s2)))
    assert frechet_distance(np.zeros(2), s1, np.array([0.5, 0.0]), s2) == pytest.approx(expected, rel=1e-10)
    # Rank-1 covariances in 3-D (singular, as with fewer maps than features): (1 − 2)² along e₁.
    u = np.array([[1.0, 0.0, 0.0]])
    assert frechet_distance(np.zeros(3), u.T @ u, np.zeros(3), 4 * u.T @ u) == pytest.approx(1.0)
    assert frechet_distance(np.ones(2), s1, np.ones(2), s1) == pytest.approx(0.0, abs=1e-10)


def test_fd_texture_standardises_by_the_real_set():
    rng = np.random.default_rng(0)
    x = rng.normal([0.0, 0.0], [1.0, 2.0], size=(20000, 2))
    y = rng.normal([1.0, 2.0], [2.0, 2.0], size=(20000, 2))
    # In real-sd units: y has mean (1, 1) and sd (2, 1), x mean 0 and sd 1: 2 + (2 − 1)² = 3.
    assert fd_texture(x, y) == pytest.approx(3.0, abs=0.1)
    assert fd_texture(x[:50], x[:50]) == pytest.approx(0.0, abs=1e-9)
    few = fd_texture(rng.normal(size=(4, 14)), rng.normal(size=(5, 14)))  # singular covariances
    assert math.isfinite(few) and few >= 0
    with pytest.raises(ValueError, match="same d"):
        fd_texture(x[:5], x[:5, :1])


# --- spectrum ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, axis, f0", [((48, 64), 1, 0.2), ((80, 40), 0, 0.3), ((33, 57), 1, 0.1)])
def test_radial_spectrum_of_a_sinusoid_peaks_at_its_frequency(shape, axis, f0):
    pos = np.arange(shape[axis])
    wave = 0.5 + 0.3 * np.sin(2 * np.pi * f0 * pos + 0.4)
    m = np.broadcast_to(wave[None, :] if axis == 1 else wave[:, None], shape)
    freq, power = radial_spectrum(m, bins=16)
    assert abs(freq[np.argmax(power)] - f0) <= 1 / 32  # within the bin holding f0
    assert power[np.argmax(power)] > 20 * np.median(power)


def test_periodogram_keeps_the_windowed_variance_and_constant_maps_have_none():
    m = np.random.default_rng(0).random((23, 41))
    power, _ = periodogram(m)
    w = np.outer(np.hanning(23), np.hanning(41))
    mean = (w * m).sum() / w.sum()
    assert power.mean() == pytest.approx((w**2 * (m - mean) ** 2).sum() / (w**2).sum(), rel=1e-12)
    _, flat = radial_spectrum(np.full((8, 8), 0.3))
    np.testing.assert_array_equal(flat, 0.0)
    freq, tiny = radial_spectrum(np.random.default_rng(1).random((8, 9)))
    assert tiny.shape == freq.shape == (16,) and np.isfinite(tiny).all()


# --- texture features -----------------------------------------------------------------------------


def _features(m) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, texture_features(m)))


def test_white_noise_spreads_power_by_area_and_has_no_correlation():
    f = _features(np.random.default_rng(0).normal(0.5, 0.1, (256, 256)))
    # A flat spectrum: each band's share is its area in the frequency square [-½, ½]².
    area = {"band_power_coarse": math.pi / 256, "band_power_medium": math.pi * (1 / 64 - 1 / 256),
            "band_power_fine": math.pi * (1 / 16 - 1 / 64), "band_power_finest": 1 - math.pi / 16}
    for name, share in area.items():
        assert f[name] == pytest.approx(share, abs=0.01), name
    assert abs(f["autocorrelation_lateral"]) < 0.02 and abs(f["autocorrelation_axial"]) < 0.02
    assert abs(f["anisotropy"]) < 0.02
    assert f["outlier_fraction"] < 0.01  # Gaussian tails: a few per thousand


def test_texture_features_measure_what_they_name():
    rng = np.random.default_rng(0)
    smooth = ndimage.gaussian_filter(rng.random((64, 64)), 4)
    smooth = 0.2 + 0.6 * (smooth - smooth.min()) / np.ptp(smooth)
    spiky = smooth.copy()
    hit = rng.random(smooth.shape) < 0.02
    spiky[hit] = rng.choice([0.0, 1.0], hit.sum())
    assert _features(spiky)["outlier_fraction"] == pytest.approx(hit.mean(), abs=0.006)
    assert _features(smooth)["outlier_fraction"] < 0.005
    columns = np.tile(rng.random(40), (30, 1))  # vertical streaks: constant down each column
    assert _features(columns)["anisotropy"] == 1.0
    assert _features(columns.T)["anisotropy"] == -1.0
    noisy = _features(smooth + rng.normal(0, 0.05, smooth.shape))
    blurred = _features(ndimage.gaussian_filter(smooth + rng.normal(0, 0.05, smooth.shape), 2))
    assert blurred["band_power_finest"] < 0.1 * noisy["band_power_finest"]
    assert blurred["local_sd_3"] < noisy["local_sd_3"] and blurred["autocorrelation_axial"] > noisy["autocorrelation_axial"]
    assert blurred["glcm_homogeneity"] > noisy["glcm_homogeneity"]


def test_texture_features_are_finite_scale_free_where_promised_and_fixed_for_constant_maps():
    rng = np.random.default_rng(0)
    for shape in ((8, 8), (8, 200), (200, 9)):
        assert np.isfinite(texture_features(rng.random(shape))).all()
    flat = _features(np.full((8, 8), 0.4))
    assert {k: v for k, v in flat.items() if v != 0} == {
        "autocorrelation_lateral": 1.0, "autocorrelation_axial": 1.0, "glcm_homogeneity": 1.0}
    m = ndimage.gaussian_filter(rng.random((40, 50)), 1.5) + rng.normal(0, 0.02, (40, 50))
    a, b = _features(m), _features(0.5 * m + 0.25)
    for name in ("band_power_coarse", "band_power_medium", "band_power_fine", "band_power_finest", "local_sd_ratio",
                 "outlier_fraction", "anisotropy", "autocorrelation_lateral", "autocorrelation_axial"):
        assert b[name] == pytest.approx(a[name], rel=1e-9, abs=1e-12), name
    assert b["local_sd_3"] == pytest.approx(0.5 * a["local_sd_3"])


# --- memorisation ----------------------------------------------------------------------------------


def test_memorisation_distance_is_the_rms_of_standardised_thumbnails():
    rng = np.random.default_rng(0)
    a = ndimage.gaussian_filter(rng.random((50, 70)), 3)
    b = ndimage.gaussian_filter(rng.random((40, 30)), 3)
    assert nearest_distances([a], [b, a])[0] == pytest.approx(0.0, abs=1e-7)
    assert nearest_distances([1 - a], [a])[0] == pytest.approx(2.0)
    ta, tb = thumbnails([a, b])
    assert nearest_distances([a], [b])[0] == pytest.approx(math.sqrt(2 * (1 - ncc(ta, tb))))
    assert nearest_distances([np.full((9, 9), 0.5)], [a])[0] == pytest.approx(1.0)  # zeros vs unit-sd map
    assert memorisation_ratio([0.2, 0.4, 0.9], [0.5, 0.8, 1.0]) == pytest.approx(0.5)
    assert memorisation_ratio([0.2], [0.0, 0.0, 1.0]) is None


def test_resize_aligns_pixel_centres_and_keeps_the_range():
    ramp = np.tile(np.arange(10.0), (6, 1))
    # Output pixel j sits at input x = (j + ½)·10/20 − ½; the edges are extended.
    np.testing.assert_allclose(resize_bilinear(ramp, (12, 20))[0], np.clip(np.arange(20) / 2 - 0.25, 0, 9))
    np.testing.assert_allclose(resize_bilinear(np.full((50, 40), 0.3), (32, 32)), 0.3)
    small = resize_bilinear(np.random.default_rng(0).random((200, 150)), (32, 32))
    assert small.min() >= 0 and small.max() <= 1 and small.std() < 0.05  # anti-aliased: noise averages out


# --- CNN on tiny maps ---------------------------------------------------------------------------------


def test_cnn_observer_handles_maps_smaller_than_its_patch():
    rng = np.random.default_rng(0)
    maps = [rng.random((10 + i, 12)) for i in range(6)]
    with torch_threads(1):  # see test_authenticity_observers.one_thread
        probs = CNNObserver(steps=3)(maps[:4], np.array([0, 1, 0, 1]), maps[4:], 0)
    assert probs.shape == (2,) and np.all((probs > 0) & (probs < 1))
    with pytest.raises(ValueError, match="patch"):
        CNNObserver(patch=4)


# --- input checks of the entry point ----------------------------------------------------------------


def _maps(n: int, shape=(20, 30), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random(shape) for _ in range(n)]


@pytest.mark.parametrize("change, message", [
    (lambda k: k.update(synthetic=_maps(4)), r"one synthetic map and one group per real map, got 5 real, 4 synthetic"),
    (lambda k: k.update(groups=["a", "b"]), r"2 groups"),
    (lambda k: k.update(real=_maps(3), synthetic=_maps(3), groups=["a", "b", "c"]), r"at least 4 cases, got 3"),
    (lambda k: k["synthetic"][2].__setitem__((1, 1), np.nan), r"synthetic\[2\]: 1 non-finite pixel"),
    (lambda k: k["real"].__setitem__(1, np.zeros((5, 20))), r"real\[1\]: expected a map of at least 8×8 pixels, got 5×20"),
    (lambda k: k["real"].__setitem__(0, np.zeros((20, 20, 3))), r"real\[0\]: expected a 2-D map"),
    (lambda k: k.update(train=[np.zeros((4, 4))]), r"train\[0\]: expected a map of at least 8×8"),
    (lambda k: k.update(real_emode=[np.zeros((20, 30, 3), np.uint8)] * 5), r"real_emode and synthetic_emode together"),
    (lambda k: k.update(real_emode=[np.zeros((20, 30), np.uint8)] * 5, synthetic_emode=[np.zeros((20, 30, 3), np.uint8)] * 5),
     r"real_emode\[0\]: expected an H×W×3 uint8 E-mode crop"),
    (lambda k: k.update(real_emode=[np.zeros((20, 30, 3), np.uint8)] * 4, synthetic_emode=[np.zeros((20, 30, 3), np.uint8)] * 5),
     r"expected 5 real and 5 synthetic E-modes, got 4 and 5"),
    (lambda k: k.update(folds=1), r"folds must be an integer >= 2, got 1"),
])
def test_bad_input_is_refused_with_its_name(change, message):
    kwargs = {"real": _maps(5), "synthetic": _maps(5, seed=1), "groups": list("abcde"), "cnn": False}
    change(kwargs)
    with pytest.raises(ValueError, match=message) as err:
        authenticity_metrics(kwargs.pop("real"), kwargs.pop("synthetic"), kwargs.pop("groups"), **kwargs)
    assert isinstance(err.value, UserError)  # the CLI prints it on one line


def test_one_patient_leaves_the_tests_undefined_with_a_note():
    res = authenticity_metrics(_maps(4), _maps(4, seed=1), ["p"] * 4, cnn=False)
    assert res["c2st_texture_accuracy"] is None and res["folds"] is None
    assert any("at least 2 patients" in note for note in res["notes"])
    assert math.isfinite(res["fd_texture"])


def _emodes(strain: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """The colour E-mode a scanner shows over a speckled B-mode, cropped to the whole map."""
    rng = np.random.default_rng(seed)
    h, w = strain[0].shape
    return [render_emode(rng.integers(0, 256, (h, w), dtype=np.uint8), s, (0, 0, w, h), colorbar=False) for s in strain]


def test_emode_diagnosis_finds_a_difference_planted_in_the_emodes_only(monkeypatch):
    """Identical strain maps, E-modes blurred on the synthetic side: the strain diagnosis sees
    nothing (d exactly 0), the E-mode diagnosis a loss of local variation far over a pooled sd."""
    from elastogan.eval.authenticity import report
    from elastogan.eval.authenticity.diagnosis import texture_diagnosis
    from elastogan.eval.authenticity.maps import emode_maps
    from elastogan.eval.authenticity.texture import feature_matrix

    strain = _maps(12, (24, 32))
    real_emode = _emodes(strain)
    blurred = [np.round(ndimage.gaussian_filter(e.astype(float), (1.5, 1.5, 0))).astype(np.uint8) for e in real_emode]
    groups = [f"p{i // 2}" for i in range(12)]
    calls = []
    monkeypatch.setattr(report, "feature_matrix", lambda maps, what: calls.append(what) or feature_matrix(maps, what))
    res = authenticity_metrics(strain, [s.copy() for s in strain], groups, real_emode=real_emode,
                               synthetic_emode=blurred, cnn=False)
    assert sorted(calls) == ["real", "real_emode", "synthetic", "synthetic_emode"]  # each set's features once

    emode, strain_diagnosis = res["texture_diagnosis_emode"], res["texture_diagnosis"]
    assert list(emode["features"]) == list(FEATURE_NAMES) == list(res["texture_table_emode"])
    assert all(f["d"] == 0.0 for f in strain_diagnosis["features"].values())
    local_sd = emode["features"]["local_sd_3"]
    assert local_sd["d"] < -5 and local_sd["accuracy_alone"] >= 0.9 and local_sd["sd_ratio"] < 1
    assert emode["features"]["autocorrelation_lateral"]["d"] > 5  # smoother: neighbours alike
    table = res["texture_table_emode"]["local_sd_3"]
    assert table["synthetic_mean"] < table["real_mean"]
    assert res["texture_table"]["local_sd_3"]["synthetic_mean"] == res["texture_table"]["local_sd_3"]["real_mean"]
    # the E-mode diagnosis is texture_diagnosis of the E-mode luminance's features, with the C2ST's folds
    direct = texture_diagnosis(feature_matrix(emode_maps(real_emode, "r")), feature_matrix(emode_maps(blurred, "s")),
                               groups, FEATURE_NAMES, folds=5, seed=0)
    assert emode == direct

    without = authenticity_metrics(strain, strain, groups, cnn=False)
    assert without["texture_diagnosis_emode"] is None and without["texture_table_emode"] is None
    assert without["texture_diagnosis"] is not None
    one_patient = authenticity_metrics(strain, strain, ["p"] * 12, real_emode=real_emode, synthetic_emode=blurred,
                                       cnn=False)
    assert one_patient["texture_diagnosis_emode"] is None and one_patient["texture_table_emode"] is not None


def test_figures_refuse_metrics_without_their_data():
    res = authenticity_metrics(_maps(4), _maps(4, seed=1), list("abcd"), cnn=False)
    assert spectrum_png(res)[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no training maps"):
        memorisation_png(res)
    with pytest.raises(ValueError, match="no spectrum"):
        spectrum_png({})
