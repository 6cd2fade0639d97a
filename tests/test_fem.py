"""The FEM solver against closed-form mechanics."""

import numpy as np
import pytest

from elastogan.sim.fem import reference_stiffness, solve_compression


def _inclusion(n: int, k: float, radius_frac: float = 0.1):
    y, x = np.mgrid[0:n, 0:n] + 0.5
    r2 = (x - n / 2) ** 2 + (y - n / 2) ** 2
    return np.where(r2 < (radius_frac * n) ** 2, k, 1.0), r2


@pytest.mark.parametrize("k", [2.0, 4.0, 8.0])
def test_inclusion_strain_ratio_matches_eshelby(k):
    # A circular inclusion k times stiffer than an incompressible plane-strain background
    # takes 2/(1+k) of the far-field strain: background/inclusion ratio (1+k)/2.
    n = 96
    modulus, r2 = _inclusion(n, k)
    d = solve_compression(modulus, width=40.0, depth=40.0, applied_strain=0.01, nu=0.495, top="slip")
    strain = -d.axial_strain()
    core = r2 < (0.06 * n) ** 2
    ratio = 0.01 / strain[core].mean()
    assert ratio == pytest.approx((1 + k) / 2, rel=0.05)


def test_homogeneous_block_has_uniform_applied_strain():
    d = solve_compression(np.ones((32, 32)), width=40.0, depth=40.0, applied_strain=0.012, top="slip")
    strain = -d.axial_strain()
    np.testing.assert_allclose(strain, 0.012, rtol=1e-6)
    # Plane strain and nu = 0.495: lateral expansion = nu/(1-nu) of the axial compression.
    assert d.lateral_strain().mean() == pytest.approx(0.012 * 0.495 / 0.505, rel=1e-3)


def test_no_volumetric_locking_near_incompressibility():
    # With full integration the soft background would be over-stiffened; SRI keeps the
    # result for nu = 0.4999 close to nu = 0.495.
    modulus, r2 = _inclusion(48, 4.0, 0.15)
    a = -solve_compression(modulus, width=40, depth=40, applied_strain=0.01, nu=0.495).axial_strain()
    b = -solve_compression(modulus, width=40, depth=40, applied_strain=0.01, nu=0.4999).axial_strain()
    assert np.abs(a - b).max() < 0.05 * 0.01


def test_reference_stiffness_is_symmetric_with_rigid_body_modes():
    k = reference_stiffness(0.495, 0.4, 0.4)
    np.testing.assert_allclose(k, k.T, atol=1e-10)
    eig = np.linalg.eigvalsh(k)
    # Exactly three zero-energy modes (two translations, one rotation): no hourglass modes.
    assert int(np.sum(np.abs(eig) < 1e-8 * eig.max())) == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"modulus": np.ones((1, 5))}, "at least 2×2"),
        ({"modulus": -np.ones((4, 4))}, "positive"),
        ({"nu": 0.5}, "Poisson"),
        ({"applied_strain": 0.0}, "applied strain"),
        ({"top": "glued"}, "top must be"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    args = dict(modulus=np.ones((4, 4)), width=10.0, depth=10.0, applied_strain=0.01)
    args.update(kwargs)
    modulus = args.pop("modulus")
    with pytest.raises(ValueError, match=message):
        solve_compression(modulus, **args)


@pytest.mark.parametrize("top", ["slip", "bonded"])
def test_symmetric_factorisation_equals_the_general_solve(top):
    # Simulator v2 factorises in SuperLU's symmetric mode; the stiffness matrix is SPD, so the
    # answer must be the general solve's to rounding, on a stiff-inclusion phantom with a rib-like 30x block.
    rng = np.random.default_rng(4)
    modulus = 1.0 + rng.random((40, 40))
    modulus[10:18, 12:20] = 8.0
    modulus[32:36, 5:30] = 30.0
    a = solve_compression(modulus, width=40, depth=40, applied_strain=0.01, top=top)
    b = solve_compression(modulus, width=40, depth=40, applied_strain=0.01, top=top, symmetric=True)
    scale = np.abs(a.uy).max()
    assert np.abs(a.uy - b.uy).max() < 1e-10 * scale and np.abs(a.ux - b.ux).max() < 1e-10 * scale
