"""Differentiable texture statistics (``elastogan.models.texture_stats``) against the texture
observer's own features, on the simulated scanner's strain, the smooth FEM strain under it and
blurred copies; and the loss the texture stage learns them from."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.stats import spearmanr

from elastogan.eval.authenticity.texture import FEATURE_NAMES, texture_features
from elastogan.models.texture_stats import STATISTICS, statistic_scale, texture_statistics, texture_stats_loss
from elastogan.sim.case import simulate_case
from elastogan.sim.config import SimConfig
from elastogan.sim.plan import make_plan
from elastogan.training.texture import TextureTrainConfig, fit_step
from elastogan.models.texture import ScannerTexture, TextureConfig

N_CASES = 8


@pytest.fixture(scope="module")
def maps() -> dict[str, list[np.ndarray]]:
    """ROI crops of the scanner's strain, the FEM strain and the scanner's strain blurred."""
    cfg = SimConfig(size=64, fem_elements=32)
    out = {"scanner": [], "fem": [], "blurred": []}
    for p in make_plan(N_CASES, 3):
        c = simulate_case(np.random.SeedSequence(p.tissue_seed), np.random.SeedSequence(p.acquisition_seed), cfg)
        x0, y0, x1, y1 = c.roi
        s = c.strain[y0:y1, x0:x1].astype(np.float64)
        out["scanner"].append(s)
        out["fem"].append(c.true_strain[y0:y1, x0:x1].astype(np.float64))
        out["blurred"].append(ndimage.gaussian_filter(s, 1.5, mode="nearest"))
    return out


def _stats(m: np.ndarray) -> dict[str, float]:
    x = torch.from_numpy(m).float()[None, None]
    return dict(zip(STATISTICS, texture_statistics(x, torch.ones_like(x))[0].tolist()))


def test_statistics_rank_maps_as_the_observer_features_do(maps):
    every = [m for kind in maps.values() for m in kind]
    ours = [_stats(m) for m in every]
    theirs = [dict(zip(FEATURE_NAMES, texture_features(m))) for m in every]
    pairs = {"log_local_sd_3": "local_sd_3", "log_local_sd_7": "local_sd_7", "outlier_fraction": "outlier_fraction",
             "autocorrelation_lateral": "autocorrelation_lateral", "autocorrelation_axial": "autocorrelation_axial",
             "homogeneity": "glcm_homogeneity", "local_sd_ratio": "local_sd_ratio", "anisotropy": "anisotropy",
             "log_gradient_mean": "gradient_mean", "strong_edge_fraction": "strong_edge_fraction"}
    for mine, observer in pairs.items():
        rho = spearmanr([o[mine] for o in ours], [t[observer] for t in theirs]).statistic
        assert rho > 0.9, (mine, observer, rho)


def test_the_scanner_has_outliers_the_smooth_maps_lack(maps):
    # the observer's reading: the scanner ~2 % outliers, the FEM strain and a blur far fewer
    share = {k: np.median([_stats(m)["outlier_fraction"] for m in v]) for k, v in maps.items()}
    assert share["scanner"] > 2 * max(share["fem"], share["blurred"]), share


def test_values_outside_the_mask_are_ignored(maps):
    m = maps["scanner"][0]
    x = torch.from_numpy(m).float()[None, None]
    mask = torch.zeros_like(x)
    mask[..., 2:-3, 1:-2] = 1
    garbage = x.where(mask > 0, torch.rand_like(x) * 50)
    assert torch.allclose(texture_statistics(x, mask), texture_statistics(garbage, mask), atol=1e-5)
    with pytest.raises(ValueError, match="one shape"):
        texture_statistics(x, mask[..., 1:])
    with pytest.raises(ValueError, match="at least 7"):
        texture_statistics(x[..., :6, :6], mask[..., :6, :6])


def test_the_loss_teaches_a_smooth_map_the_scanner_texture(maps):
    # Gradient descent on the loss alone, from the FEM strain towards the scanner's statistics
    # (not its pixels): the outlier share and the pixel-scale roughness move to the scanner's.
    target = torch.from_numpy(np.stack([m[:24, :24] for m in maps["scanner"]])).float()[:, None]
    start = torch.from_numpy(np.stack([m[:24, :24] for m in maps["fem"]])).float()[:, None]
    mask = torch.ones_like(target)
    scale = statistic_scale(target, mask)
    torch.manual_seed(0)
    residual = (0.01 * torch.randn_like(start)).requires_grad_()
    opt = torch.optim.Adam([residual], lr=3e-3)
    first = None
    for _ in range(300):
        loss = texture_stats_loss((start + residual)[None], target, mask, scale)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first
    got = texture_statistics((start + residual).detach(), mask)
    want, was = texture_statistics(target, mask), texture_statistics(start, mask)
    for name in ("outlier_fraction", "log_local_sd_3", "homogeneity"):
        i = STATISTICS.index(name)
        assert (got[:, i] - want[:, i]).abs().mean() < 0.3 * (was[:, i] - want[:, i]).abs().mean(), name


def test_a_training_step_with_the_statistics_term():
    torch.manual_seed(0)
    cfg = TextureTrainConfig(stats=5.0, crps=100.0, spectral=20.0, samples=2)
    stage = ScannerTexture(TextureConfig(image_size=32, channels=4, layers=2))
    opt = torch.optim.Adam(stage.parameters(), lr=1e-3)
    bmode, real = torch.rand(2, 1, 24, 24) * 2 - 1, torch.rand(2, 1, 24, 24)
    gen = torch.full((4, 1, 24, 24), 0.5)
    with pytest.raises(ValueError, match="scale"):
        fit_step(stage, opt, bmode, gen, real, cfg, 2)
    terms, total = fit_step(stage, opt, bmode, gen, real, cfg, 2, torch.ones(len(STATISTICS)))
    assert set(terms) == {"crps", "spectral", "stats"} and terms["stats"].item() > 0
    assert total.item() == pytest.approx(sum(getattr(cfg, k) * v.item() for k, v in terms.items()), rel=1e-5)
    with pytest.raises(ValueError, match="train.stats"):
        TextureTrainConfig(stats=-1.0)
    with pytest.raises(ValueError, match="stats_windows"):
        TextureTrainConfig(stats_windows=1)


def test_the_batch_term_scores_a_shift_of_the_means_not_the_pairing(maps):
    target = torch.from_numpy(np.stack([m[:24, :24] for m in maps["scanner"]])).float()[:, None]
    mask = torch.ones_like(target)
    scale = statistic_scale(target, mask)
    swapped = target.roll(1, dims=0)[None]  # the same windows, each against another's statistics
    paired = texture_stats_loss(swapped, target, mask, scale).item()
    assert paired > 0.1
    assert texture_stats_loss(swapped, target, mask, scale, batch=1.0).item() == pytest.approx(paired, abs=1e-5)
    smooth = torch.from_numpy(np.stack([m[:24, :24] for m in maps["blurred"]])).float()[None, :, None]
    assert (texture_stats_loss(smooth, target, mask, scale, batch=1.0).item()
            > texture_stats_loss(smooth, target, mask, scale).item() + 0.5)


def test_the_crps_score_of_equal_draws_is_the_l1_and_rewards_a_true_spread(maps):
    target = torch.from_numpy(np.stack([m[:24, :24] for m in maps["scanner"]])).float()[:, None]
    mask = torch.ones_like(target)
    scale = statistic_scale(target, mask)
    smooth = torch.from_numpy(np.stack([m[:24, :24] for m in maps["blurred"]])).float()[:, None]
    same = smooth.expand(3, -1, -1, -1, -1)
    assert texture_stats_loss(same, target, mask, scale, score="crps").item() == pytest.approx(
        texture_stats_loss(same, target, mask, scale).item(), rel=1e-5)
    # draws that are other real windows: a spread like the target's own; scored better by the
    # CRPS than by the per-draw L1, which charges every draw its full distance
    others = torch.stack([target.roll(k, dims=0) for k in (1, 2, 3, 4)])
    assert (texture_stats_loss(others, target, mask, scale, score="crps").item()
            < 0.75 * texture_stats_loss(others, target, mask, scale).item())
    with pytest.raises(ValueError, match="score"):
        texture_stats_loss(same, target, mask, scale, score="l3")


def _grain(seed: int, amplitude: float) -> torch.Tensor:
    """A 48² map of smooth Gaussian grain (sd ``0.02 × amplitude``) about 0.5."""
    n = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal((48, 48)), 1.0)
    return torch.from_numpy(0.5 + 0.02 * amplitude * n / n.std()).float()[None, None]


def test_the_squared_score_pulls_to_the_windows_mean_statistics_the_l1_to_their_median():
    # Windows whose texture is right-skewed, as the scanner's is from case to case: four quiet,
    # one eight times as rough. Draws of one roughness a are scored against all five; the best a
    # of the L1 is the median window's (1), that of the squared error the mean of the log-scale
    # statistics (local sd, gradient: 8^(1/5) = 1.52), which is what a linear observer compares.
    amplitudes = (1, 1, 1, 1, 8)
    target = torch.cat([_grain(i, a) for i, a in enumerate(amplitudes)])
    mask, unit = torch.ones_like(target), torch.ones(len(STATISTICS))
    grid = np.exp(np.linspace(np.log(0.5), np.log(8), 61))
    best = {}
    for score in ("l1", "l2"):
        loss = [texture_stats_loss(torch.cat([_grain(100 + i, a) for i in range(5)])[None], target, mask, unit,
                                   score=score).item() for a in grid]
        best[score] = grid[int(np.argmin(loss))]
    assert best["l1"] == pytest.approx(1.0, rel=0.1)
    assert best["l2"] == pytest.approx(8 ** 0.2, rel=0.1)
    # the batch term is squared with the squared score: a mean shift of z costs z² per statistic
    draws = torch.cat([_grain(100 + i, 2.0) for i in range(5)])[None]
    z = (texture_statistics(draws[0], mask).mean(0) - texture_statistics(target, mask).mean(0))
    paired = texture_stats_loss(draws, target, mask, unit, score="l2")
    assert (texture_stats_loss(draws, target, mask, unit, score="l2", batch=1.0) - paired).item() == pytest.approx(
        z.square().mean().item(), rel=1e-4)


def test_the_linear_form_is_the_log_forms_exponential_and_hard_counts_keep_the_soft_gradient(maps):
    x = torch.from_numpy(np.stack([m[:24, :24] for m in maps["scanner"]])).float()[:, None]
    mask = torch.ones_like(x)
    log, lin = texture_statistics(x, mask), texture_statistics(x, mask, linear=True)
    for name in ("log_local_sd_3", "log_local_sd_7", "log_gradient_mean"):
        i = STATISTICS.index(name)
        torch.testing.assert_close(lin[:, i], log[:, i].exp(), rtol=1e-5, atol=1e-7)
    rest = [i for i, n in enumerate(STATISTICS) if not n.startswith("log_")]
    torch.testing.assert_close(lin[:, rest], log[:, rest])
    # hard counts: whole pixels (the observer's count), with the soft count's gradient
    x.requires_grad_(True)
    i = STATISTICS.index("outlier_fraction")
    soft = texture_statistics(x, mask)[:, i]
    hard = texture_statistics(x, mask, hard=True)[:, i]
    pixels = (24 - 4) ** 2  # valid 5×5 median windows of a 24² map
    counts = hard.detach().numpy() * pixels
    assert np.allclose(counts, counts.round(), atol=1e-3) and counts.max() > 0
    assert not torch.allclose(hard, soft)
    g_soft, = torch.autograd.grad(soft.sum(), x)
    g_hard, = torch.autograd.grad(hard.sum(), x)
    torch.testing.assert_close(g_hard, g_soft)


def _windows(maps, n: int, side: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        m = maps["scanner"][rng.integers(len(maps["scanner"]))]
        y, x = rng.integers(0, m.shape[0] - side + 1), rng.integers(0, m.shape[1] - side + 1)
        out.append(m[y : y + side, x : x + side])
    return torch.from_numpy(np.stack(out)).float()[:, None]


def test_whitened_differences_have_the_real_windows_joint_spread(maps):
    from elastogan.models.texture_stats import statistic_whitening

    fit, held = _windows(maps, 400, 16, 0), _windows(maps, 400, 16, 1)
    w = statistic_whitening(fit, torch.ones_like(fit))
    s = texture_statistics(held, torch.ones_like(held))
    z = ((s - s.mean(0)) @ w).double()
    cov = torch.cov(z.T)
    raw = torch.corrcoef(s.double().T)
    off = ~torch.eye(len(STATISTICS), dtype=torch.bool)
    corr = cov / cov.diagonal().sqrt().outer(cov.diagonal().sqrt())
    # the statistics of real windows are strongly correlated; in joint units, on other windows
    # of the same maps, hardly
    assert raw[off].abs().max() > 0.7 and corr[off].abs().mean() < 0.4 * raw[off].abs().mean()
    # unit variance, except along nearly collinear directions, which the 1 % ridge shrinks
    assert (cov.diagonal() < 1.5).all() and ((cov.diagonal() > 0.5).sum() >= 7)
    # rougher real windows are less homogeneous: a draw as much rougher but as much *more*
    # homogeneous breaks that relation and costs more in joint units, though not per statistic
    rough = s[:, STATISTICS.index("log_local_sd_3")]
    along = s[rough > rough.quantile(0.75)].mean(0) - s[rough < rough.quantile(0.25)].mean(0)
    j = STATISTICS.index("homogeneity")
    assert along[j] < 0
    across = along.clone()
    across[j] = -along[j]
    assert ((across / s.std(0)).norm() - (along / s.std(0)).norm()).abs() < 1e-4  # equal per statistic
    assert (across @ w).norm() > 1.5 * (along @ w).norm()


def test_energy_distance_sees_the_spread_and_the_relation_a_mean_does_not():
    from elastogan.models.texture_stats import energy_distance

    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 2, generator=g)
    y = torch.randn(400, 2, generator=g)
    assert energy_distance(x, x).item() == pytest.approx(0.0, abs=1e-5)
    same = energy_distance(x, y).item()  # two samples of one distribution: sampling noise only
    # the 1-D closed form between N(0, 1) and N(δ, 1): 2·E|Z√2 + δ| − 2·E|Z√2| (Székely & Rizzo 2013)
    from scipy.stats import norm

    d, s = 1.0, 2 ** 0.5
    folded = s * np.sqrt(2 / np.pi) * np.exp(-(d / s) ** 2 / 2) + d * (1 - 2 * norm.cdf(-d / s))
    closed = 2 * folded - 2 * s * np.sqrt(2 / np.pi)
    big = torch.randn(3000, 1, generator=g)
    assert energy_distance(big, torch.randn(3000, 1, generator=g) + d).item() == pytest.approx(closed, rel=0.1)
    tight = 0.4 * y  # same mean, a third of the spread: what the stage's draws did
    related = torch.stack([y[:, 0], -y[:, 0] * 0.9 + 0.2 * y[:, 1]], 1)  # same marginals' scale, a relation
    assert energy_distance(x, tight).item() > 4 * same and energy_distance(x, related).item() > 4 * same
    assert (tight.mean(0) - x.mean(0)).abs().max() < 0.15  # a batch-mean term would not see it


def test_the_energy_term_pulls_too_alike_draws_apart():
    # Draws whose amount of texture barely varies against real windows whose amount varies a
    # lot: gradient descent on the energy term alone spreads the draws' amounts out.
    from elastogan.models.texture_stats import draw_statistics, texture_stats_energy

    g = torch.Generator().manual_seed(1)
    base = torch.randn(16, 1, 24, 24, generator=g)
    amounts = torch.linspace(0.005, 0.05, 16).view(16, 1, 1, 1)
    real = 0.5 + amounts * base
    mask = torch.ones_like(real)
    reference = texture_statistics(real, mask)
    scale = statistic_scale(real, mask)
    log_amp = torch.full((16, 1, 1, 1), float(np.log(0.02)), requires_grad=True)
    noise = torch.randn(16, 1, 24, 24, generator=g)
    opt = torch.optim.Adam([log_amp], lr=0.05)
    for _ in range(150):
        draws = (0.5 + log_amp.exp() * noise)[None]
        loss = texture_stats_energy(draw_statistics(draws, mask), reference, scale)
        opt.zero_grad()
        loss.backward()
        opt.step()
    spread = log_amp.detach().exp().flatten()
    assert spread.max() / spread.min() > 3, spread  # real: 10×
    cfg = TextureTrainConfig(stats=5.0, stats_energy=1.0, samples=2)
    stage = ScannerTexture(TextureConfig(image_size=32, channels=4, layers=2))
    opt = torch.optim.Adam(stage.parameters(), lr=1e-3)
    bmode, win = torch.rand(2, 1, 24, 24) * 2 - 1, torch.rand(2, 1, 24, 24)
    gen = torch.full((4, 1, 24, 24), 0.5)
    with pytest.raises(ValueError, match="real windows' statistics"):
        fit_step(stage, opt, bmode, gen, win, cfg, 2, torch.ones(len(STATISTICS)))
    terms, total = fit_step(stage, opt, bmode, gen, win, cfg, 2, torch.ones(len(STATISTICS)), reference=reference)
    assert terms["stats_energy"].item() > 0
    assert total.item() == pytest.approx(sum(getattr(cfg, k) * v.item() for k, v in terms.items()), rel=1e-5)
    with pytest.raises(ValueError, match="stats_energy"):
        TextureTrainConfig(stats_energy=-1.0)
    with pytest.raises(ValueError, match="needs train.stats"):
        TextureTrainConfig(stats=0.0, stats_energy=1.0)
