"""BI-RADS lexicon lesions: label frequencies, each label visible in the maps, the category rule and
the label-only diagnostic accuracy."""

import numpy as np
import pytest
from scipy import ndimage, stats
from scipy.spatial import ConvexHull

from elastogan.sim import lexicon
from elastogan.sim.lexicon import (CATEGORIES, CYST_KINDS, LEVELS, LEXICON_FREQ, birads_category, category_indices,
                                   draw_label_indices, draw_lexicon, label_auc)
from elastogan.sim.tissue import make_phantom
from elastogan.sim.tissue_v2 import make_phantom_v2

FIELD, N = 50.0, 250  # a deeper field than the default, so that there is tissue under every lesion
PX = FIELD / N
TYPES = ("cyst", "fibroadenoma", "carcinoma")


def _phantom(seed, lesion_type="carcinoma", n=N, field=FIELD, **forced):
    return make_phantom_v2(np.random.default_rng(seed), n, field, lesion_type, lexicon=forced)


def _below_and_beside(p, *, side=None):
    """Mean gain-weighted echo 1–6 mm under the lesion's middle third and at the same depth beside it.

    The gain is the case's: echo × exp(−2·cumsum(attenuation)·px) down each column.
    ``side`` = "left"/"right" takes only that half of the columns under the lesion.
    """
    seen = p.echo * np.exp(-2.0 * np.cumsum(p.attenuation, axis=0) * PX)
    ys, xs = np.nonzero(p.lesion)
    x0, x1, bottom = xs.min(), xs.max(), ys.max()
    w = x1 - x0
    rows = slice(bottom + int(1 / PX), bottom + int(6 / PX))
    mid = (x0 + x1) // 2
    if side is None:
        under = slice(x0 + w // 3, x1 - w // 3)
    else:
        under = slice(x0 + w // 8, mid - w // 8) if side == "left" else slice(mid + w // 8, x1 - w // 8)
    gap, far = int(2 / PX), int(8 / PX)
    beside = np.r_[max(0, x0 - gap - far):max(0, x0 - gap), min(N, x1 + gap):min(N, x1 + gap + far)]
    return seen[rows, under].mean(), seen[rows][:, beside].mean()


def _solidity(mask):
    pts = np.argwhere(mask)
    return mask.sum() / ConvexHull(pts).volume


# --- frequencies ------------------------------------------------------------------------------

@pytest.mark.parametrize("lesion_type", ["fibroadenoma", "carcinoma"])
def test_solid_label_frequencies_match_the_declared_table(lesion_type):
    idx = draw_label_indices(np.random.default_rng(0), lesion_type, 20000)
    for feature, levels in LEVELS.items():
        expected = np.array([LEXICON_FREQ[lesion_type][feature].get(v, 0.0) for v in levels])
        observed = np.bincount(idx[feature], minlength=len(levels))
        keep = expected > 0
        assert observed[~keep].sum() == 0, f"{feature}: a level with frequency 0 was drawn"
        chi2 = stats.chisquare(observed[keep], expected[keep] / expected[keep].sum() * observed.sum())
        assert chi2.pvalue > 1e-3, (feature, observed / observed.sum(), expected)


def test_cyst_label_frequencies_are_the_kinds_mixture():
    idx = draw_label_indices(np.random.default_rng(1), "cyst", 20000)
    kinds = np.bincount(idx["cyst_kind"], minlength=3) / 20000
    assert np.allclose(kinds, list(CYST_KINDS.values()), atol=0.015)
    for feature, levels in LEVELS.items():
        expected = sum(w * np.array([LEXICON_FREQ[f"cyst:{k}"][feature].get(v, 0.0) for v in levels])
                       for k, w in CYST_KINDS.items())
        observed = np.bincount(idx[feature], minlength=len(levels)) / 20000
        assert np.allclose(observed, expected, atol=0.015), feature


def test_single_draws_of_a_phantom_follow_the_same_table():
    rng = np.random.default_rng(2)
    draws = [draw_lexicon(rng, "carcinoma")[0] for _ in range(3000)]
    for feature in ("shape", "margin", "posterior"):
        share = np.mean([d[feature] == LEVELS[feature][-1] for d in draws])
        p = LEXICON_FREQ["carcinoma"][feature][LEVELS[feature][-1]]
        assert abs(share - p) < 4 * np.sqrt(p * (1 - p) / 3000), feature


# --- the category rule and the diagnosis ------------------------------------------------------

def test_category_rule_examples():
    cyst = dict(shape="round", orientation="not parallel", margin="circumscribed", echo_pattern="anechoic",
                posterior="enhancement", calcifications=False)
    assert birads_category(cyst) == "2"
    fa = dict(cyst, shape="oval", orientation="parallel", echo_pattern="hypoechoic", posterior="none")
    assert birads_category(fa) == "3"
    assert birads_category(dict(fa, margin="microlobulated")) == "4a"
    assert birads_category(dict(fa, margin="spiculated")) == "4b"
    assert birads_category(dict(fa, margin="spiculated", posterior="shadowing")) == "4c"
    assert birads_category(dict(fa, shape="irregular", margin="spiculated", posterior="shadowing")) == "5"
    with pytest.raises(ValueError, match="lexicon labels"):
        birads_category(dict(fa, margin="fuzzy"))


def test_every_simple_cyst_is_category_2():
    idx = draw_label_indices(np.random.default_rng(3), "cyst", 5000)
    cat = category_indices(idx)
    assert (cat[idx["cyst_kind"] == 0] == 0).all()


def test_label_only_auc_lies_in_the_published_b_mode_range():
    r = label_auc(4000, seed=0)
    lo, hi = lexicon.B_MODE_AUC_RANGE
    assert lo <= r["auc"] <= hi, r
    assert r["ci"][0] < r["auc"] < r["ci"][1] and r["ci"][1] - r["ci"][0] < 0.05
    # Clinically B-mode BI-RADS is sensitive but not specific at the 4a biopsy threshold.
    assert r["sensitivity"] >= 0.9 and r["specificity"] <= 0.75, r
    assert sum(sum(c.values()) for c in r["categories"].values()) == 4000
    assert r["n_malignant"] == pytest.approx(0.4 * 4000, abs=120)


def test_phantom_birads_is_the_rule_applied_to_its_labels():
    for seed in range(9):
        p = _phantom(seed, TYPES[seed % 3], n=64)
        lex = p.params["lexicon"]
        assert set(lex) == {"shape", "orientation", "margin", "echo_pattern", "posterior", "calcifications",
                            "size_mm", "depth_mm"}
        assert p.params["birads"] == birads_category(lex) and p.params["birads"] in CATEGORIES


# --- each label shows in the maps -------------------------------------------------------------

def test_posterior_shadowing_darkens_and_enhancement_brightens_below_the_lesion():
    ratios = {}
    for feature in ("shadowing", "enhancement", "none"):
        r = []
        for seed in range(8):
            p = _phantom(seed, "carcinoma", posterior=feature, echo_pattern="hypoechoic")
            below, beside = _below_and_beside(p)
            r.append(below / beside)
        ratios[feature] = np.median(r)
    assert ratios["shadowing"] < 0.75, ratios
    assert ratios["enhancement"] > 1.2, ratios
    assert 0.8 < ratios["none"] < 1.25, ratios


def test_combined_posterior_pattern_shadows_one_side_and_enhances_the_other():
    diffs = []
    for seed in range(8):
        p = _phantom(seed, "fibroadenoma", posterior="combined", shape="oval", orientation="parallel")
        left, _ = _below_and_beside(p, side="left")
        right, _ = _below_and_beside(p, side="right")
        shadow_right = p.params["combined_shadow_side"] == "right"
        diffs.append((left - right) if shadow_right else (right - left))
    assert np.median(diffs) > 0.1 and np.mean(np.array(diffs) > 0) >= 0.75, diffs


def test_spiculated_outline_is_far_less_solid_than_a_circumscribed_one():
    sol = {m: [_solidity(_phantom(s, "carcinoma", margin=m).lesion) for s in range(8)]
           for m in ("circumscribed", "angular", "microlobulated", "spiculated")}
    assert min(sol["circumscribed"]) > 0.9
    assert max(sol["spiculated"]) < min(sol["circumscribed"]) and np.median(sol["spiculated"]) < 0.8, sol
    assert np.median(sol["angular"]) < np.median(sol["circumscribed"])
    assert np.median(sol["microlobulated"]) < np.median(sol["circumscribed"])


def test_spicules_are_thin_radial_spikes():
    # Opening with a 1 mm disc removes thin spikes but not the body: a spiculated mask loses
    # far more area than a circumscribed one.
    disc = np.hypot(*np.mgrid[-3:4, -3:4]) <= 1.0 / PX / 2 + 0.5
    lost = {}
    for m in ("circumscribed", "spiculated"):
        lost[m] = np.median([1 - ndimage.binary_opening(p.lesion, disc).sum() / p.lesion.sum()
                             for p in (_phantom(s, "carcinoma", margin=m, shape="oval") for s in range(6))])
    assert lost["spiculated"] > 3 * lost["circumscribed"] and lost["spiculated"] > 0.04, lost


@pytest.mark.parametrize("orientation", ["parallel", "not parallel"])
def test_orientation_is_wider_or_taller(orientation):
    taller = []
    for seed in range(12):
        p = _phantom(seed, TYPES[1 + seed % 2], orientation=orientation, shape="oval", margin="circumscribed")
        ys, xs = np.nonzero(p.lesion)
        taller.append(ys.std() > xs.std())
    assert np.mean(taller) == (1.0 if orientation == "not parallel" else 0.0)


def test_indistinct_margin_blurs_the_echo_boundary():
    def edge_steepness(p):
        # Echo gradient across the boundary (mm⁻¹), relative to the lesion/background contrast.
        gy, gx = np.gradient(p.echo, PX)
        boundary = p.lesion & ~ndimage.binary_erosion(p.lesion)
        ring = (ndimage.binary_dilation(p.lesion, iterations=int(3 / PX))
                & ~ndimage.binary_dilation(p.lesion, iterations=int(1 / PX)))
        contrast = p.echo[ring].mean() - p.echo[ndimage.binary_erosion(p.lesion, iterations=int(1 / PX))].mean()
        return np.median(np.hypot(gy, gx)[boundary]) / contrast

    def steepness(margin):
        return [edge_steepness(_phantom(s, "fibroadenoma", margin=margin, echo_pattern="hypoechoic", shape="oval"))
                for s in range(6)]

    sharp, blurred = steepness("circumscribed"), steepness("indistinct")
    assert np.median(blurred) < 0.4 * np.median(sharp), (sharp, blurred)


def test_calcifications_are_bright_foci_inside_the_lesion():
    for seed in range(6):
        for calc in (True, False):
            p = _phantom(seed, "carcinoma", calcifications=calc)
            peaks = (p.echo == ndimage.maximum_filter(p.echo, size=5)) & (p.echo > 2.5) & p.lesion
            count = ndimage.label(peaks)[1]
            if calc:
                # 3-8 foci; neighbours closer than 1 mm read as one.
                assert 3 <= count <= len(p.params["calcification_foci_mm"]) <= 8, count
            else:
                assert count == 0


def test_echo_patterns_against_fat():
    def inner(p):
        return p.echo[ndimage.binary_erosion(p.lesion, iterations=int(1.5 / PX))]

    for seed in range(4):
        fat = _phantom(seed, "fibroadenoma").params["echoes"]["fat"]
        got = {pat: inner(_phantom(seed, "fibroadenoma", echo_pattern=pat, margin="circumscribed",
                                   calcifications=False))
               for pat in LEVELS["echo_pattern"]}
        assert got["anechoic"].max() < 0.05
        assert got["hypoechoic"].mean() < 0.7 * fat
        assert got["isoechoic"].mean() == pytest.approx(fat, rel=0.15)
        assert got["hyperechoic"].mean() > 1.8 * fat
        def cv(v):
            return v.std() / v.mean()

        assert cv(got["heterogeneous"]) > 3 * cv(got["hypoechoic"])
        # Fluid and solid parts (the solid ones often sit at the wall: look at the whole mask).
        p = _phantom(seed, "fibroadenoma", echo_pattern="complex cystic and solid", margin="circumscribed",
                     calcifications=False)
        cx = p.echo[p.lesion]
        assert (cx < 0.05).mean() > 0.2 and (cx > 0.4).mean() > 0.2
        assert (cx > 0.4).mean() == pytest.approx(p.params["solid_share"], abs=0.15)


def test_simple_cysts_look_like_simple_cysts():
    for seed in range(12):
        p = _phantom(seed, "cyst", n=128)
        lex = p.params["lexicon"]
        assert p.tsukuba == "cyst" and np.all(p.modulus[p.lesion] <= 0.5)
        if p.params["cyst_kind"] == "simple":
            assert lex["echo_pattern"] == "anechoic" and lex["margin"] == "circumscribed"
            assert lex["shape"] in ("oval", "round") and p.params["birads"] == "2"


def test_lesions_keep_v1_depths_and_areas():
    for t in TYPES:
        v1, v2 = [], []
        for seed in range(30):
            p = make_phantom_v2(np.random.default_rng(seed), 96, 40.0, t)
            assert 9.0 <= p.params["lexicon"]["depth_mm"] <= 27.0
            ys, _ = np.nonzero(p.lesion)
            assert ys.min() * 40.0 / 96 > p.params["skin_mm"]  # below the skin
            v2.append(p.lesion.sum())
            v1.append(make_phantom(np.random.default_rng(seed), 96, 40.0, t).lesion.sum())
        assert 0.6 < np.median(v2) / np.median(v1) < 1.6, (t, np.median(v1), np.median(v2))


def test_lesion_modulus_follows_the_design_score_as_in_v1():
    for seed in range(12):
        p = make_phantom_v2(np.random.default_rng(seed), 128, 40.0, "carcinoma")
        assert p.tsukuba in (3, 4, 5)
        if p.tsukuba in (4, 5):
            assert np.median(p.modulus[p.lesion]) >= 5.0
        if p.tsukuba == 5:
            assert p.halo.any() and np.median(p.modulus[p.halo]) >= 4.0
