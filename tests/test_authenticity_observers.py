"""Authenticity without readers on simulated scanner elastograms (issue 11 §1).

"Real" maps are the phantom simulator's estimated strain (the simulated scanner), cropped to
each case's ROI box, with its patients; nothing here draws maps by the observers' own rules.
The null checks split real patients in halves; the planted difference is a Gaussian blur
(σ = 2 px) of each real map, the smoothing a generator's conditional mean shows; the FEM's
true strain is the smooth map a perfect mean-predictor would give.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from scipy import ndimage

from elastogan.display import render_emode
from elastogan.eval.authenticity.c2st import C2STResult, two_sample_test
from elastogan.eval.authenticity.cnn_observer import CNNObserver
from elastogan.eval.authenticity.figures import memorisation_png, spectrum_png
from elastogan.eval.authenticity.frechet import fd_texture
from elastogan.eval.authenticity.memorisation import memorisation_ratio, nearest_distances, thumbnails
from elastogan.eval.authenticity.report import authenticity_metrics
from elastogan.eval.authenticity.texture import feature_matrix
from elastogan.eval.authenticity.texture_observer import TextureObserver
from elastogan.models.bench import torch_threads
from elastogan.sim.case import simulate_case
from elastogan.sim.config import SimConfig
from elastogan.sim.plan import make_plan

pytestmark = pytest.mark.slow  # ~60 s of CPU: 40 simulated cases and six CNN cross-fits

N_CASES = 40
BLUR_SIGMA = 2.0


@dataclass
class Phantoms:
    strain: list[np.ndarray]  # ROI crops of the scanner's strain
    true_strain: list[np.ndarray]  # ROI crops of the FEM strain
    blurred: list[np.ndarray]  # ROI crops of the blurred scanner strain
    emode: list[np.ndarray]  # ROI crops of the E-mode (h, w, 3) uint8
    blurred_emode: list[np.ndarray]  # the E-mode rendered from the blurred strain
    groups: list[str]


@pytest.fixture(scope="module")
def phantoms() -> Phantoms:
    # 64-pixel frames over 40 mm with a 32-element FEM: ~0.5 s a case; ROIs of ~30–60 px.
    cfg = SimConfig(size=64, fem_elements=32)
    out = Phantoms([], [], [], [], [], [])
    for p in make_plan(N_CASES, 7):
        c = simulate_case(np.random.SeedSequence(p.tissue_seed), np.random.SeedSequence(p.acquisition_seed), cfg)
        x0, y0, x1, y1 = c.roi
        crop = (slice(y0, y1), slice(x0, x1))
        strain = c.strain[crop].astype(np.float64)
        blurred = ndimage.gaussian_filter(strain, BLUR_SIGMA, mode="nearest")
        full = np.full(c.strain.shape, np.nan)
        full[crop] = blurred
        emode_blurred = render_emode(c.bmode, full, c.roi, colormap=cfg.colormap, alpha=c.source["display_alpha"])
        out.strain.append(strain)
        out.true_strain.append(c.true_strain[crop].astype(np.float64))
        out.blurred.append(blurred)
        out.emode.append(c.emode[crop])
        out.blurred_emode.append(emode_blurred[crop])
        out.groups.append(p.patient_id)
    return out


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The CNN's convolutions on 32×32 patches are too small to gain from intra-op threads; on a
    # shared 2-core machine OpenMP's waiting made one C2ST ~9× slower with 2 threads (150 s
    # against 17 s). The library leaves the thread count alone; the tests pin it.
    with torch_threads(1):
        yield


def _halves(groups: list[str], seed: int) -> tuple[list[int], list[int]]:
    """Two sets of cases from disjoint patients, patients in a seeded order, as equal in size as
    whole patients allow."""
    patients = list(np.random.default_rng(seed).permutation(sorted(set(groups))))
    a: list[int] = []
    for pat in patients:
        if len(a) >= len(groups) // 2:
            break
        a += [i for i, g in enumerate(groups) if g == pat]
    return a, [i for i in range(len(groups)) if i not in a]


def _test_halves(samples, groups, observer, seed: int) -> C2STResult:
    a, b = _halves(groups, seed)
    return two_sample_test([samples[i] for i in a], [samples[i] for i in b], [groups[i] for i in a],
                           [groups[i] for i in b], observer, seed=seed)


def _report(name: str, r: C2STResult) -> None:
    print(f"{name}: accuracy {r.accuracy:.3f} CI [{r.ci[0]:.3f}, {r.ci[1]:.3f}] p {r.p:.2g} AUC {r.auc:.3f} (n {r.n})")


# --- null: two halves of one real set ---------------------------------------------------


def test_texture_observer_cannot_tell_two_halves_of_a_real_set_apart(phantoms):
    features = list(feature_matrix(phantoms.strain))
    results = [_test_halves(features, phantoms.groups, TextureObserver(), seed) for seed in range(10)]
    for r in results:
        _report("texture halves", r)
    covered = sum(r.ci[0] <= 0.5 <= r.ci[1] for r in results)
    # Under the null each 95 % CI covers 0.5 with probability ≈ 0.95: 8 of 10 or more.
    assert covered >= 8, [r.accuracy for r in results]
    assert abs(np.mean([r.accuracy for r in results]) - 0.5) < 0.08


def test_cnn_observer_cannot_tell_two_halves_of_a_real_set_apart(phantoms):
    r = _test_halves(phantoms.strain, phantoms.groups, CNNObserver(), seed=0)
    _report("cnn halves", r)
    assert r.ci[0] <= 0.5 <= r.ci[1]


# --- planted difference: blur --------------------------------------------------------------


@pytest.mark.parametrize("observer", ["texture", "cnn"])
def test_observers_find_blurred_copies_of_real_maps(phantoms, observer):
    if observer == "texture":
        a, b, obs = list(feature_matrix(phantoms.strain)), list(feature_matrix(phantoms.blurred)), TextureObserver()
    else:
        a, b, obs = phantoms.strain, phantoms.blurred, CNNObserver()
    r = two_sample_test(a, b, phantoms.groups, phantoms.groups, obs)
    _report(f"{observer} blurred", r)
    assert r.accuracy >= 0.8 and r.p < 0.05 and r.ci[0] > 0.5 and r.auc > 0.85


def test_texture_observer_finds_the_smooth_fem_strain(phantoms):
    # The truth a perfect conditional-mean generator would output: right shapes, no texture.
    r = two_sample_test(list(feature_matrix(phantoms.strain)), list(feature_matrix(phantoms.true_strain)),
                        phantoms.groups, phantoms.groups, TextureObserver())
    _report("texture FEM strain", r)
    assert r.accuracy >= 0.8 and r.p < 0.05


def test_frechet_distance_of_blurred_maps_exceeds_that_of_two_real_halves(phantoms):
    f = feature_matrix(phantoms.strain)
    a, b = _halves(phantoms.groups, 0)
    null = fd_texture(f[a], f[b])
    blurred = fd_texture(f, feature_matrix(phantoms.blurred))
    print(f"FD halves {null:.2f}, FD blurred {blurred:.2f}")
    assert blurred > 5 * null


# --- determinism and folds -------------------------------------------------------------------


def test_same_seed_same_numbers_and_folds_keep_patients_together(phantoms):
    maps, groups = phantoms.strain[:16], phantoms.groups[:16]
    blurred = phantoms.blurred[:16]
    obs = CNNObserver(steps=20)
    state = torch.get_rng_state()
    first = two_sample_test(maps, blurred, groups, groups, obs, folds=3, seed=5)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's torch random state is untouched
    again = two_sample_test(maps, blurred, groups, groups, obs, folds=3, seed=5)
    np.testing.assert_array_equal(first.scores, again.scores)
    np.testing.assert_array_equal(first.fold, again.fold)
    other = two_sample_test(maps, blurred, groups, groups, obs, folds=3, seed=6)
    assert not np.array_equal(first.scores, other.scores)

    assert len(set(groups)) < len(groups)  # some patients have two views
    for res in (first, other):
        both = np.array(groups + groups)  # a case's real and synthetic map, and a patient's views
        for g in set(groups):
            assert len(set(res.fold[both == g].tolist())) == 1, g
    tex = [two_sample_test(list(feature_matrix(maps)), list(feature_matrix(blurred)), groups, groups,
                           TextureObserver(), seed=1) for _ in range(2)]
    np.testing.assert_array_equal(tex[0].scores, tex[1].scores)


# --- memorisation ----------------------------------------------------------------------------


def test_memorisation_ratio_flags_a_generator_that_copies_training_maps(phantoms):
    order = list(np.random.default_rng(3).permutation(sorted(set(phantoms.groups))))
    third = len(order) // 3
    split = {p: "train" if k < third else "test" if k < 2 * third else "other" for k, p in enumerate(order)}
    idx = {s: [i for i, g in enumerate(phantoms.groups) if split[g] == s] for s in ("train", "test", "other")}
    train = [phantoms.strain[i] for i in idx["train"]]
    test = [phantoms.strain[i] for i in idx["test"]]
    real_nn = nearest_distances(test, train)

    # A copying "generator": the training map most like the test case, resized to its ROI
    # and with a little noise (so the copy is not bit-identical).
    t_train, t_test = thumbnails(train), thumbnails(test)
    rng = np.random.default_rng(0)
    copies = []
    for i, m in enumerate(test):
        j = int(np.argmin(((t_train - t_test[i]) ** 2).sum(1)))
        zoom = np.array(m.shape) / np.array(train[j].shape)
        copy = ndimage.zoom(train[j], zoom, order=1, mode="nearest")[: m.shape[0], : m.shape[1]]
        copies.append(np.clip(copy + rng.normal(0, 0.02, copy.shape), 0, 1))
    copied = memorisation_ratio(nearest_distances(copies, train), real_nn)

    # An honest one: real maps of patients in neither set.
    others = [phantoms.strain[i] for i in idx["other"]]
    honest = memorisation_ratio(nearest_distances(others, train), real_nn)
    print(f"memorisation ratio: copying {copied:.3f}, honest {honest:.3f}")
    assert copied < 0.3
    assert 0.7 < honest < 1.4


# --- the entry point --------------------------------------------------------------------------


def test_authenticity_metrics_end_to_end(phantoms):
    n = 16
    res = authenticity_metrics(phantoms.strain[:n], phantoms.blurred[:n], phantoms.groups[:n],
                               real_emode=phantoms.emode[:n], synthetic_emode=phantoms.blurred_emode[:n],
                               train=phantoms.strain[n:], folds=3, seed=0)
    prefixes = [f"c2st_{o}{e}" for e in ("", "_emode") for o in ("texture", "cnn")]
    expected = [f"{p}_{f}" for p in prefixes for f in ("accuracy", "ci", "p", "auc")] + [
        "fd_texture", "memorisation_ratio", "memorisation", "texture_table", "spectrum", "n_cases", "folds", "notes",
        "texture_diagnosis", "texture_table_emode", "texture_diagnosis_emode"]
    assert sorted(res) == sorted(expected)
    assert json.loads(json.dumps(res, allow_nan=False)) == res
    for p in prefixes:
        print(f"{p}: accuracy {res[p + '_accuracy']:.3f} CI {np.round(res[p + '_ci'], 3).tolist()} "
              f"p {res[p + '_p']:.2g} AUC {res[p + '_auc']:.3f}")
    print(f"fd_texture {res['fd_texture']:.2f}, memorisation_ratio {res['memorisation_ratio']:.3f}")
    assert res["n_cases"] == n and res["folds"] == 3 and res["notes"] == []
    assert res["c2st_texture_accuracy"] >= 0.8 and res["c2st_texture_p"] < 0.05
    assert res["c2st_cnn_accuracy"] >= 0.8
    lo, hi = res["c2st_texture_ci"]
    assert lo <= res["c2st_texture_accuracy"] <= hi
    assert len(res["memorisation"]["synthetic"]) == len(res["memorisation"]["real"]) == n
    # Blur takes power out of the high frequencies, not the low ones.
    real, syn = np.array(res["spectrum"]["real"]), np.array(res["spectrum"]["synthetic"])
    assert syn[-1] < 0.01 * real[-1] and syn[0] > 0.5 * real[0]
    table = res["texture_table"]
    assert table["local_sd_3"]["synthetic_mean"] < table["local_sd_3"]["real_mean"]
    # blur is a loss of texture (a level): its local sd has the largest standardised deficit
    features = res["texture_diagnosis"]["features"]
    assert features["local_sd_3"]["d"] < -1 and features["local_sd_3"]["accuracy_alone"] >= 0.8
    # the E-modes rendered from the blurred maps lose their local variation too
    emode_features = res["texture_diagnosis_emode"]["features"]
    assert list(emode_features) == list(table) == list(res["texture_table_emode"])
    assert emode_features["local_sd_3"]["d"] < -1
    assert res["texture_table_emode"]["local_sd_3"]["synthetic_mean"] < res["texture_table_emode"]["local_sd_3"]["real_mean"]
    for png in (spectrum_png(res), memorisation_png(res)):
        assert png[:8] == b"\x89PNG\r\n\x1a\n"

    without = authenticity_metrics(phantoms.strain[:n], phantoms.blurred[:n], phantoms.groups[:n], cnn=False)
    assert without["c2st_cnn_accuracy"] is None and without["c2st_texture_emode_p"] is None
    assert without["memorisation"] is None and without["memorisation_ratio"] is None
    assert without["texture_diagnosis_emode"] is None and without["texture_table_emode"] is None
    assert len(without["notes"]) == 3
    assert without["c2st_texture_accuracy"] == res["c2st_texture_accuracy"]
