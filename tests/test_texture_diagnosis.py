"""Why the texture observer separates two sets: one feature's level, or two features' relation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from elastogan.eval.authenticity.c2st import two_sample_test
from elastogan.eval.authenticity.diagnosis import mahalanobis_shift, standardised_difference, texture_diagnosis
from elastogan.eval.authenticity.texture_observer import TextureObserver

NAMES = ("roughness", "homogeneity", "outliers", "spectrum")


def features(n: int = 100, seed: int = 0) -> np.ndarray:
    """Feature vectors with the relation seen on phantom-v2's scanner maps: the rougher a map,
    the less homogeneous (correlation about −0.95); two independent others."""
    rng = np.random.default_rng(seed)
    rough = rng.normal(size=n)
    return np.c_[rough, -0.95 * rough + 0.3 * rng.normal(size=n), rng.normal(size=(n, 2))]


GROUPS = [f"p{i}" for i in range(100)]


def test_standardised_difference_is_cohens_d_with_equal_weights():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, (400, 2)), rng.normal(0, 2, (400, 2)) + [0.0, 3.0]
    d = standardised_difference(a, b)
    assert abs(d[0]) < 0.2 and d[1] == pytest.approx(3.0 / np.sqrt(2.5), abs=0.25)
    assert standardised_difference(np.ones((3, 1)), np.ones((3, 1))).tolist() == [0.0]


def test_mahalanobis_shift_is_the_shift_in_the_pooled_covariance():
    rng = np.random.default_rng(2)
    real = rng.multivariate_normal([0, 0], [[4.0, 0.0], [0.0, 1.0]], size=20000)
    assert mahalanobis_shift(real, real + [2.0, 0.0]) == pytest.approx(1.0, rel=0.03)
    assert mahalanobis_shift(real, real + [0.0, 2.0]) == pytest.approx(2.0, rel=0.03)
    assert mahalanobis_shift(np.ones((5, 2)), np.ones((5, 2))) == 0.0  # constant features: no shift, no error
    # a synthetic set with no spread: the pooled variance is half the real one
    tight = np.zeros((100, 2)) + [2.0, 0.0]
    assert mahalanobis_shift(real, tight) == pytest.approx(2.0 / np.sqrt(2.0), rel=0.03)


def test_a_shifted_feature_is_a_level_problem():
    real, syn = features(), features(seed=7) + [0.0, 0.0, 2.0, 0.0]
    res = texture_diagnosis(real, syn, GROUPS, NAMES, folds=5, seed=0)
    f = res["features"]
    assert f["outliers"]["d"] > 1.5 and f["outliers"]["accuracy_alone"] > 0.8
    assert max(abs(f[k]["d"]) for k in ("roughness", "homogeneity", "spectrum")) < 0.4
    assert "outliers" in res["pair"]["features"]
    # the pair adds little to the feature that tells alone
    assert res["pair"]["mahalanobis"] < 1.5 * abs(f["outliers"]["d"])


def test_a_broken_relation_is_found_in_the_pair_not_in_either_feature():
    # rougher AND more homogeneous by 0.3 sd each: small marginal shifts, but against the
    # relation the real maps keep, so far off it jointly
    real, syn = features(), features(seed=7) + [0.3, 0.3, 0.0, 0.0]
    res = texture_diagnosis(real, syn, GROUPS, NAMES, folds=5, seed=0)
    f = res["features"]
    assert all(abs(v["d"]) < 0.6 and v["accuracy_alone"] < 0.7 for v in f.values())
    assert sorted(res["pair"]["features"]) == ["homogeneity", "roughness"]
    assert res["pair"]["accuracy"] > 0.75  # Φ(≈2 sd off the relation / 2) ≈ 0.84
    assert res["pair"]["mahalanobis"] > 3 * max(abs(f["roughness"]["d"]), abs(f["homogeneity"]["d"]))
    # the held-out accuracy of the observer on all features is about what the shift allows
    full = two_sample_test(list(real), list(syn), GROUPS, GROUPS, TextureObserver(), folds=5, seed=0).accuracy
    assert res["mahalanobis_accuracy"] == pytest.approx(norm.cdf(res["mahalanobis"] / 2))
    assert abs(full - res["mahalanobis_accuracy"]) < 0.1


def test_mismatched_features_are_refused():
    real = features(10)
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        texture_diagnosis(real, real[:, :3], GROUPS[:10], NAMES)
    with pytest.raises(ValueError, match="one group per row"):
        texture_diagnosis(real, real, GROUPS[:5], NAMES)


def test_with_no_more_cases_than_features_the_whole_shift_is_not_measured():
    real = features(5)
    res = texture_diagnosis(real, real + 1.0, GROUPS[:5], NAMES, folds=2)
    assert res["mahalanobis"] is None and res["mahalanobis_accuracy"] is None
    assert res["pair"]["mahalanobis"] is not None  # two features on five cases still have a covariance
