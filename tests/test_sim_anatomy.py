"""Phantom-v2 anatomy: each layer where ``layers`` says, with the documented echo/modulus order."""

import hashlib
import json
import time

import numpy as np
import pytest

from elastogan.sim import breast
from elastogan.sim.breast import (MAMMARY, PECTORALIS, RETROMAMMARY_FAT, RIB, SEPTA, SKIN, SUBCUTANEOUS_FAT,
                                  make_breast, smooth_noise)
from elastogan.sim.tissue import make_phantom
from elastogan.sim.tissue_v2 import make_phantom_v2

TYPES = ("cyst", "fibroadenoma", "carcinoma")


def _gain(attenuation: np.ndarray, px: float) -> np.ndarray:
    """The case's two-way excess-attenuation gain down each column (elastogan.sim.case)."""
    return np.exp(-2.0 * np.cumsum(attenuation, axis=0) * px)


@pytest.mark.parametrize("seed", range(6))
def test_layers_follow_each_other_from_skin_to_chest_wall(seed):
    a = make_breast(np.random.default_rng(seed), 160, 50.0)
    order = np.where(a.layers == SEPTA, SUBCUTANEOUS_FAT, a.layers)
    order = np.where(order == RIB, PECTORALIS, order)
    assert (np.diff(order.astype(int), axis=0) >= 0).all(), "a layer appears above the one it lies under"
    present = set(np.unique(a.layers).tolist())
    assert {SKIN, SUBCUTANEOUS_FAT, SEPTA, MAMMARY, RETROMAMMARY_FAT, PECTORALIS} <= present
    # Skin is 1.5-2 mm thick, as its parameter says.
    skin_rows = (a.layers == SKIN).sum(axis=0) * 50.0 / 160
    assert np.all(np.abs(skin_rows - a.params["skin_mm"]) < 0.5)


def test_echo_and_modulus_follow_the_documented_order():
    for seed in range(4):
        a = make_breast(np.random.default_rng(seed), 256, 40.0, composition="d")
        e, k = a.echo, a.modulus
        fat, septa, skin = a.layers == SUBCUTANEOUS_FAT, a.layers == SEPTA, a.layers == SKIN
        gland = (a.gland > 0.9) & (a.layers == MAMMARY)
        pect = a.layers == PECTORALIS
        assert e[septa].mean() > 1.5 * e[fat].mean()  # echogenic septa between hypoechoic fat lobules
        assert e[skin].mean() > 1.5 * e[fat].mean()
        assert e[gland].mean() > 1.5 * e[fat].mean()
        assert np.median(k[fat]) == pytest.approx(1.0, abs=0.1)  # fat = 1 by convention
        lo, hi = breast.MODULUS["gland"]
        assert lo * 0.85 < np.median(k[gland]) < hi * 1.15
        lo, hi = breast.MODULUS["pectoralis"]
        assert lo * 0.85 < np.median(k[pect]) < hi * 1.15
        assert np.median(k[skin]) > 4.0
        assert np.median(k[septa]) > 1.5


def test_mammary_zone_is_horizontally_layered_and_soft_edged():
    a = make_breast(np.random.default_rng(7), 384, 40.0, composition="c")
    g = a.gland
    zone = a.layers == MAMMARY
    gy, gx = np.gradient(g)
    # Sheets wider than tall: the glandular share changes faster along depth than laterally.
    assert np.abs(gy[zone]).mean() > 1.5 * np.abs(gx[zone]).mean()
    # No thresholded blobs: the glandular share never jumps from fat to gland between neighbours.
    assert np.abs(gy[zone]).max() < 0.5 and np.abs(gx[zone]).max() < 0.5
    assert ((g[zone] > 0.05) & (g[zone] < 0.95)).mean() > 0.1


def test_composition_a_to_d_raises_the_glandular_fraction():
    fractions = []
    for comp in "abcd":
        per_seed = []
        for seed in range(6):
            a = make_breast(np.random.default_rng(seed), 160, 40.0, composition=comp)
            breast_tissue = np.isin(a.layers, (SUBCUTANEOUS_FAT, SEPTA, MAMMARY, RETROMAMMARY_FAT))
            per_seed.append(a.gland[breast_tissue].mean())
            assert a.params["composition"] == comp
        fractions.append(per_seed)
    means = np.mean(fractions, axis=1)
    assert np.all(np.diff(means) > 0.05), means
    assert np.all(np.diff(np.array(fractions), axis=0) > 0), "same seed, denser composition, less glandular"


def test_composition_is_drawn_with_the_declared_frequencies():
    comps = [make_breast(np.random.default_rng(s), 32, 40.0).params["composition"] for s in range(1000)]
    for c, p in breast.COMPOSITION_FREQ.items():
        share = comps.count(c) / len(comps)
        assert abs(share - p) < 4 * np.sqrt(p * (1 - p) / len(comps)), (c, share, p)


def test_pectoralis_shows_fibre_striation_at_its_period():
    for seed in range(4):
        a = make_breast(np.random.default_rng(seed), 480, 50.0)
        px = 50.0 / 480
        period = a.params["striation_period_mm"]
        spectra = []
        for col in range(0, 480, 8):
            rows = np.flatnonzero(a.layers[:, col] == PECTORALIS)
            rows = rows[(rows > rows.min() + 6)]  # below the bright fascia
            profile = a.echo[rows[: int(8 / px)], col]
            if profile.size < int(3 / px):
                continue
            profile = (profile - profile.mean()) * np.hanning(profile.size)
            spectra.append(np.abs(np.fft.rfft(profile, 2048)) ** 2)
        power = np.mean(spectra, axis=0)
        freq = np.fft.rfftfreq(2048, px)  # cycles/mm
        band = freq > 0.2
        peak = freq[band][np.argmax(power[band])]
        assert 1 / peak == pytest.approx(period, rel=0.15)
        assert power[band].max() > 10 * np.median(power[band])


def test_a_rib_lies_below_the_pectoralis_and_shadows_what_is_under_it():
    found = 0
    for seed in range(200):
        a = make_breast(np.random.default_rng(seed), 250, 50.0)
        if not a.params["rib"]:
            continue
        px = 50.0 / 250
        rcx, rcy = a.params["rib_center_mm"]
        rw, rh = a.params["rib_axes_mm"]
        if rcy + rh / 2 + 4 > 50.0:
            continue
        found += 1
        rib_rows = np.flatnonzero((a.layers == RIB).any(axis=1))
        pect_rows = np.flatnonzero((a.layers == PECTORALIS).any(axis=1))
        assert rib_rows.min() > pect_rows.min()  # ribs lie deep, under the pectoralis
        seen = a.echo * _gain(a.attenuation, px)
        rows = slice(int((rcy + rh / 2 + 0.5) / px), int((rcy + rh / 2 + 3.5) / px))
        under = slice(int((rcx - rw / 4) / px), int((rcx + rw / 4) / px))
        side = np.r_[0:max(1, int((rcx - rw / 2 - 2) / px)), min(249, int((rcx + rw / 2 + 2) / px)):250]
        assert seen[rows, under].mean() < 0.1 * seen[rows][:, side].mean()
        cortex = a.echo[(a.layers == RIB)].max()
        assert cortex > 1.5  # the bright anterior cortex
        if found == 3:
            break
    assert found == 3


def test_a_rib_is_in_view_in_15_to_25_percent_of_phantoms():
    ribs = [make_phantom_v2(np.random.default_rng(s), 48, 40.0, TYPES[s % 3]).params["rib"] for s in range(600)]
    assert 0.15 <= np.mean(ribs) <= 0.25


def test_smooth_noise_has_unit_variance_and_its_correlation_length():
    f = smooth_noise(np.random.default_rng(0), 400, 40.0, 0.5, 2.0)
    assert f.dtype == np.float32
    assert abs(f.mean()) < 0.2 and f.std() == pytest.approx(1.0, abs=0.2)
    # A Gaussian kernel of width σ gives a correlation exp(−d²/4σ²): at d = 2σ it is e⁻¹.
    lag_y, lag_x = int(1.0 / 0.1), int(4.0 / 0.1)
    cy = np.mean(f[:-lag_y] * f[lag_y:]) / f.var()
    cx = np.mean(f[:, :-lag_x] * f[:, lag_x:]) / f.var()
    assert cy == pytest.approx(np.exp(-1), abs=0.1) and cx == pytest.approx(np.exp(-1), abs=0.15)


def test_phantom_v2_carries_layers_and_json_labels():
    p = make_phantom_v2(np.random.default_rng(3), 96, 40.0, "carcinoma")
    assert p.layers.shape == (96, 96) and p.layers.dtype == np.int8
    assert set(np.unique(p.layers)) <= set(breast.LAYER_NAMES)
    json.dumps(p.params)
    for key in ("composition", "skin_mm", "subcutaneous_fat_mm", "retromammary_fat_mm", "pectoralis_top_mm",
                "pectoralis_mm", "moduli", "lexicon", "birads", "rib"):
        assert key in p.params


def test_same_seed_same_phantom():
    for t in TYPES:
        p, q = (make_phantom_v2(np.random.default_rng(11), 128, 40.0, t) for _ in range(2))
        for name in ("modulus", "echo", "attenuation", "lesion", "halo", "layers"):
            assert np.array_equal(getattr(p, name), getattr(q, name))
        assert p.params == q.params


# Digests of the maps rounded to float32. The float64 bytes depend on numpy's vector path:
# with AVX-512 (X86_V4) its exp/log differ from AVX2's in the last bit, and the modulus map
# with them. Rounded to float32 the three maps hash alike on every path (checked with
# NPY_DISABLE_CPU_FEATURES="X86_V4" and "X86_V3 X86_V4"), and on AVX2 the float64 bytes still
# give the digests pinned before v2 existed (fec1919e…, b7be4435…, 67ea87c0…).
@pytest.mark.parametrize(("seed", "lesion_type", "digest"), [
    (0, "cyst", "8433546417b93396"), (1, "fibroadenoma", "92edaf1ad6a41df0"), (2, "carcinoma", "3b63782cc588a49a")])
def test_phantom_v1_is_unchanged(seed, lesion_type, digest):
    p = make_phantom(np.random.default_rng(seed), 96, 40.0, lesion_type)
    h = hashlib.sha256()
    for a in (p.modulus, p.echo, p.attenuation, p.lesion, p.halo):
        a = np.asarray(a)
        h.update(np.ascontiguousarray(a.astype(np.float32) if a.dtype.kind == "f" else a).tobytes())
    assert h.hexdigest()[:16] == digest
    assert p.layers is None


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="lesion type"):
        make_phantom_v2(np.random.default_rng(0), 96, 40.0, "lipoma")
    with pytest.raises(ValueError, match="field_mm"):
        make_phantom_v2(np.random.default_rng(0), 96, 20.0, "cyst")
    with pytest.raises(ValueError, match="composition"):
        make_breast(np.random.default_rng(0), 96, 40.0, composition="e")
    with pytest.raises(ValueError, match="force lexicon"):
        make_phantom_v2(np.random.default_rng(0), 96, 40.0, "cyst", lexicon={"margin": "wavy"})


def test_make_phantom_v2_is_fast_at_the_default_grid():
    # CPU time of this process, so that other jobs on a shared machine do not count.
    times = []
    for seed in range(20):
        t0 = time.process_time()
        make_phantom_v2(np.random.default_rng(seed), 384, 40.0, TYPES[seed % 3])
        times.append(time.process_time() - t0)
    assert np.median(times) < 0.1, f"median {np.median(times):.3f} s"
