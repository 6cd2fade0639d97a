"""The Tsukuba rule scorer on constructed patterns, and against the simulator's design labels."""

import numpy as np
import pytest
from scipy import ndimage

from elastogan.sim.case import fem_modulus, to_pixels
from elastogan.sim.fem import solve_compression
from elastogan.sim.strain import relative_strain
from elastogan.sim.tissue import make_phantom
from elastogan.tsukuba import score_tsukuba, strain_ratio

N = 128
Y, X = np.mgrid[0:N, 0:N]
R = np.hypot(X - 64, Y - 64)
LESION = R < 20
ROI = (8, 8, 120, 120)


def _map(values):
    s = np.full((N, N), 1.0)
    for mask, v in values:
        s[mask] = v
    return s


def test_uniform_lesion_like_background_scores_1():
    assert score_tsukuba(_map([]), LESION, roi=ROI) == 1


def test_mosaic_scores_2():
    rng = np.random.default_rng(0)
    field = ndimage.gaussian_filter(rng.standard_normal((N, N)), 3)
    patches = field > np.quantile(field[LESION], 0.6)  # 40 % of the lesion in hard patches
    assert score_tsukuba(_map([(LESION & patches, 0.2)]), LESION, roi=ROI) == 2


def test_hard_core_soft_rim_scores_3():
    assert score_tsukuba(_map([(R < 12, 0.2)]), LESION, roi=ROI) == 3


def test_scattered_hard_core_fragments_are_not_a_rim_pattern():
    # Hardness rising towards the edge is a mosaic, not a hard core with a soft rim.
    ring_hard = LESION & (R > 14)
    assert score_tsukuba(_map([(ring_hard, 0.2)]), LESION, roi=ROI) == 2


def test_uniformly_hard_lesion_scores_4():
    assert score_tsukuba(_map([(LESION, 0.2)]), LESION, roi=ROI) == 4


def test_hard_lesion_with_hard_surroundings_scores_5():
    assert score_tsukuba(_map([(R < 28, 0.2)]), LESION, roi=ROI) == 5


def test_anechoic_soft_lesion_is_the_cyst_pattern():
    bmode = np.where(LESION, 10, 150).astype(np.uint8)
    assert score_tsukuba(_map([(LESION, 1.8)]), LESION, roi=ROI, bmode=bmode) == "cyst"
    # The same soft lesion with tissue echoes is not a cyst.
    assert score_tsukuba(_map([(LESION, 1.8)]), LESION, roi=ROI, bmode=np.full((N, N), 150, np.uint8)) == 1


def test_strain_ratio_of_a_known_map():
    s = _map([(LESION, 0.25)])
    assert strain_ratio(s, LESION, ROI) == pytest.approx(4.0, rel=1e-9)


def test_a_reference_shown_fully_hard_has_no_ratio_and_says_so():
    """A draw clamped at the display's floor around the lesion (strain 0 in reference and lesion)
    once crashed ``evaluate`` with a ZeroDivisionError; now it is a named ValueError, which the
    evaluation records as a missing ratio."""
    with pytest.raises(ValueError, match="reference tissue beside the lesion shows no strain"):
        strain_ratio(np.zeros((N, N)), LESION, ROI)
    s = _map([(LESION, 0.0)])  # a lesion shown fully hard beside soft tissue: large and finite
    assert np.isfinite(strain_ratio(s, LESION, ROI)) and strain_ratio(s, LESION, ROI) >= 999


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="one shape"):
        score_tsukuba(np.ones((4, 4)), np.ones((5, 5), bool))
    with pytest.raises(ValueError, match="at least 9"):
        score_tsukuba(np.ones((8, 8)), np.zeros((8, 8), bool))


def test_rule_scorer_recovers_design_scores_from_true_fem_strain():
    # The simulator's labels are designs (the modulus pattern asked for); the rule scorer,
    # reading the true FEM strain as a radiologist reads an elastogram, must agree for the
    # large majority of lesions.
    rng = np.random.default_rng(2024)
    field_mm, n_fem, size = 40.0, 64, 128
    agree, total = 0, 0
    for lesion_type in ["cyst", "fibroadenoma", "carcinoma"] * 8:
        ph = make_phantom(rng, n_fem * 4, field_mm, lesion_type)
        d = solve_compression(fem_modulus(ph, 4), width=field_mm, depth=field_mm, applied_strain=0.01)
        strain = to_pixels(-d.axial_strain(), field_mm, size)
        lesion = to_pixels(ph.lesion.astype(float), field_mm, size) > 0.5
        echo = to_pixels(ph.echo, field_mm, size)
        roi_mask = np.zeros((size, size), bool)
        roi_mask[12:120, 4:116] = True
        rel = relative_strain(strain, roi_mask)
        # Noise-free B-mode: the echogenicity log-compressed over 55 dB as the scanner does.
        bmode = 255 * np.clip(1 + 20 * np.log10(np.maximum(echo, 1e-6) / (10 * np.median(echo))) / 55, 0, 1)
        score = score_tsukuba(rel, lesion, roi=(4, 12, 116, 120), bmode=bmode.astype(np.uint8))
        agree += score == ph.tsukuba
        total += 1
    assert agree / total >= 0.8, f"rule scorer agreed on {agree}/{total} lesions"
