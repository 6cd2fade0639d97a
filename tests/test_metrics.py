"""Image metrics: NCC as the reference paper defines it, SSIM, PSNR, MAE, summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from elastogan.eval import metrics
from elastogan.eval.metrics import MetricError


@pytest.fixture
def field():
    rng = np.random.default_rng(0)
    return rng.random((24, 31))  # non-square on purpose


def test_ncc_identities(field):
    assert metrics.ncc(field, field) == pytest.approx(1.0, abs=1e-12)
    assert metrics.ncc(field, -field) == pytest.approx(-1.0, abs=1e-12)
    assert metrics.ncc(field, 3.5 * field + 0.2) == pytest.approx(1.0, abs=1e-12)
    assert metrics.ncc(field, -0.5 * field + 7) == pytest.approx(-1.0, abs=1e-12)


def test_ncc_hand_computed():
    # S = (1, 2, 3, 4), T = (1, 3, 2, 4): deviations (-1.5,-.5,.5,1.5) and (-1.5,.5,-.5,1.5)
    # sum of products 2.25 - .25 - .25 + 2.25 = 4; energies 5 and 5 -> 0.8
    s = np.array([[1.0, 2.0], [3.0, 4.0]])
    t = np.array([[1.0, 3.0], [2.0, 4.0]])
    assert metrics.ncc(s, t) == pytest.approx(0.8, abs=1e-15)


def test_ncc_uses_only_the_mask_and_ignores_nan():
    s = np.array([[1.0, 2.0, 100.0], [3.0, 4.0, np.nan]])
    t = np.array([[1.0, 3.0, -50.0], [2.0, 4.0, 5.0]])
    mask = np.array([[True, True, False], [True, True, True]])  # NaN pixel inside the mask is skipped
    assert metrics.ncc(s, t, mask) == pytest.approx(0.8, abs=1e-15)


def test_ncc_is_symmetric_and_matches_pearson(field):
    other = field + np.random.default_rng(1).normal(scale=0.3, size=field.shape)
    r = np.corrcoef(field.ravel(), other.ravel())[0, 1]
    assert metrics.ncc(field, other) == pytest.approx(r, abs=1e-12)
    assert metrics.ncc(other, field) == pytest.approx(metrics.ncc(field, other), abs=1e-15)


def test_ncc_constant_map_is_a_clear_error(field):
    with pytest.raises(MetricError, match="synthetic map is constant inside the mask"):
        metrics.ncc(field, np.full_like(field, 0.5))
    with pytest.raises(MetricError, match="at least 2 finite pixels"):
        metrics.ncc(field, field, np.zeros(field.shape, dtype=bool))


def test_mask_checks_at_the_door(field):
    with pytest.raises(ValueError, match="one shape"):
        metrics.ncc(field, field[:, :-1])
    with pytest.raises(ValueError, match="boolean mask"):
        metrics.ncc(field, field, np.ones(field.shape))


def test_ssim_identity_and_skimage_agreement(field):
    assert metrics.ssim(field, field) == pytest.approx(1.0, abs=1e-12)
    other = np.clip(field + np.random.default_rng(2).normal(scale=0.1, size=field.shape), 0, 1)
    ours = metrics.ssim_map(field, other)
    _, ref = structural_similarity(field, other, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                   use_sample_covariance=False, full=True)
    r = 5  # window radius: farther from the edge both use the same pixels
    np.testing.assert_allclose(ours[r:-r, r:-r], ref[r:-r, r:-r], rtol=1e-10, atol=1e-12)
    assert metrics.ssim(field, other) < 0.99


def test_ssim_ignores_pixels_outside_the_mask(field):
    other = field.copy()
    mask = np.zeros(field.shape, dtype=bool)
    mask[4:20, 5:25] = True
    other[~mask] = np.random.default_rng(3).random((~mask).sum())  # differences only outside
    assert metrics.ssim(field, other, mask) == pytest.approx(1.0, abs=1e-12)


def test_psnr_and_mae_hand_computed():
    s = np.zeros((2, 2))
    t = np.array([[0.1, -0.1], [0.1, -0.1]])
    assert metrics.mae(s, t) == pytest.approx(0.1, abs=1e-15)
    assert metrics.psnr(s, t) == pytest.approx(20.0, abs=1e-12)  # MSE 0.01, R 1
    assert metrics.psnr(s, s) == math.inf
    assert metrics.psnr(s * 255, t * 255, data_range=255.0) == pytest.approx(20.0, abs=1e-12)


def test_emode_luminance():
    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    y = metrics.emode_luminance(rgb)
    np.testing.assert_allclose(y, [[0.299, 0.587], [0.114, 1.0]], atol=1e-15)
    with pytest.raises(ValueError, match="H×W×3"):
        metrics.emode_luminance(rgb[..., :2])


def test_strain_ratio_error():
    assert metrics.strain_ratio_error(2.0, 2.5) == {"abs": 0.5, "rel": 0.25}
    with pytest.raises(MetricError, match="positive finite real strain ratio"):
        metrics.strain_ratio_error(0.0, 1.0)


def test_summary():
    s = metrics.summary([0.5, 0.7, 0.9])
    assert s == {"mean": pytest.approx(0.7), "sd": pytest.approx(0.2), "median": 0.7, "min": 0.5, "max": 0.9, "n": 3}
    with pytest.raises(MetricError, match="non-finite"):
        metrics.summary([0.5, float("nan")])
    with pytest.raises(MetricError, match="empty"):
        metrics.summary([])


def test_compare_maps_per_mask(field):
    other = field ** 2
    lesion = np.zeros(field.shape, dtype=bool)
    lesion[5:15, 8:20] = True
    res = metrics.compare_maps(field, other, {"roi": None, "lesion": lesion})
    assert set(res) == {"roi", "lesion"} and set(res["roi"]) == {"ncc", "ssim", "psnr", "mae"}
    assert res["lesion"]["ncc"] == pytest.approx(metrics.ncc(field[5:15, 8:20], other[5:15, 8:20]), abs=1e-14)
    assert res["lesion"]["mae"] == pytest.approx(np.abs(field - other)[lesion].mean(), abs=1e-15)
