"""Ultrasound physics: speckle statistics, pulse, phase, strain estimation."""

import numpy as np
import pytest

from elastogan.sim.strain import estimate_strain, lsq_strain, relative_strain
from elastogan.sim.ultrasound import Grid, Transducer, baseband_frame, bmode_image, draw_scatterers, rf_from_baseband

TX = Transducer(f0_mhz=7.5, bandwidth=0.6, sigma_focus_mm=0.15, sigma_edge_mm=0.15, focus_mm=10.0, snr_db=60.0)


def _scatterers(rng, width, depth, density=100.0):
    return draw_scatterers(rng, width, depth, density)


@pytest.mark.parametrize("f0, bandwidth, sigma", [(6.0, 0.5, 0.22), (7.5, 0.6, 0.15), (10.0, 0.8, 0.12)])
def test_homogeneous_envelope_has_rayleigh_statistics(f0, bandwidth, sigma):
    # Fully developed speckle: the envelope is Rayleigh distributed, mean/sd = sqrt(pi/(4-pi))
    # = 1.913, across the simulator's whole range of probes.
    tx = Transducer(f0_mhz=f0, bandwidth=bandwidth, sigma_focus_mm=sigma, sigma_edge_mm=sigma, focus_mm=10.0, snr_db=60.0)
    rng = np.random.default_rng(0)
    grid = Grid.for_field(tx, 20.0, 128)
    x, z, a = _scatterers(rng, 20.0, 20.0)
    env = np.abs(baseband_frame(x, z, a, tx, grid, rng))
    inner = env[100:-100, 10:-10]  # away from the zero-padded edges
    assert inner.mean() / inner.std() == pytest.approx(np.sqrt(np.pi / (4 - np.pi)), rel=0.04)


def test_axial_pulse_width_follows_bandwidth():
    # sigma_z = c / (4 pi sigma_f) with sigma_f = B f0 / (2 sqrt(2 ln 2)).
    sigma_f = 0.6 * 7.5e6 / (2 * np.sqrt(2 * np.log(2)))
    assert TX.sigma_axial_mm == pytest.approx(1540e3 / (4 * np.pi * sigma_f), rel=1e-9)
    grid = Grid.for_field(TX, 10.0, 16)
    rng = np.random.default_rng(1)
    bb = baseband_frame(np.array([5.0 + grid.dx_mm / 2]), np.array([5.0]), np.array([1.0]), TX, grid, rng, noise_power=0.0)
    env = np.abs(bb[:, 8])
    z = grid.z_mm
    measured = np.sqrt(np.sum(env * (z - 5.0) ** 2) / np.sum(env))
    assert measured == pytest.approx(TX.sigma_axial_mm, rel=0.05)


def test_scatterer_shift_appears_as_exact_phase():
    # Moving a scatterer by d changes the echo phase by -2 k0 d: the motion that strain
    # imaging measures is encoded below the sample spacing.
    grid = Grid.for_field(TX, 10.0, 8)
    rng = np.random.default_rng(2)
    x = np.array([5.0])
    d = 0.003  # 3 µm, a sixth of a sample
    a = baseband_frame(x, np.array([5.0]), np.array([1.0]), TX, grid, rng)
    b = baseband_frame(x, np.array([5.0 + d]), np.array([1.0]), TX, grid, rng)
    k = int(np.argmax(np.abs(a[:, 4])))
    dphi = np.angle(b[k, 4] / a[k, 4])
    assert dphi == pytest.approx(-2 * TX.k0 * d, rel=0.05)


def test_uniform_compression_is_estimated_like_a_scanner():
    # A homogeneous block compressed by 1 %: scatterers move towards the probe by strain·z.
    rng = np.random.default_rng(3)
    grid = Grid.for_field(TX, 20.0, 32)
    x, z, a = _scatterers(rng, 20.0, 21.0)
    strain = 0.01
    pre = baseband_frame(x, z, a, TX, grid, rng)
    post = baseband_frame(x, z * (1 - strain), a, TX, grid, rng, noise_power=np.mean(np.abs(pre) ** 2) * 1e-6)
    window, step = int(round(1.5 / grid.dz_mm)), int(round(0.3 / grid.dz_mm))
    est = estimate_strain(rf_from_baseband(pre, TX, grid), rf_from_baseband(post, TX, grid), window=window, step=step, lsq_points=9)
    inner = est.strain[10:-10, 4:-4]
    assert np.median(inner) == pytest.approx(strain, rel=0.05)
    assert np.median(est.correlation) > 0.9


def test_lsq_strain_of_a_linear_ramp_is_exact():
    disp = -0.2 * np.arange(50)[:, None] * np.ones((1, 3))
    # Away from the ends (where the fit window is clipped) the slope is exact.
    np.testing.assert_allclose(lsq_strain(disp, step=10, points=9)[4:-4], 0.02, rtol=1e-12)


def test_relative_strain_normalises_to_the_roi_mean():
    s = np.full((10, 10), 0.01)
    s[2:4, 2:4] = 0.002
    roi = np.zeros((10, 10), bool)
    roi[1:9, 1:9] = True
    rel = relative_strain(s, roi)
    assert np.isnan(rel[0, 0]) and np.isfinite(rel[5, 5])
    assert np.nanmean(rel[roi]) == pytest.approx(0.5, abs=0.01)


def test_bmode_puts_anechoic_regions_near_black():
    rng = np.random.default_rng(4)
    grid = Grid.for_field(TX, 20.0, 64)
    x, z, a = _scatterers(rng, 20.0, 20.0)
    a[(np.abs(x - 10) < 3) & (np.abs(z - 10) < 3)] = 0.0  # a fluid-filled hole
    img = bmode_image(baseband_frame(x, z, a, TX, grid, rng), 64, 55.0)
    hole = img[28:36, 28:36].mean()
    tissue = img[5:15, 5:20].mean()
    assert hole < 0.3 * tissue
