"""The texture stage's term on whole frames (``train.frame_moments``, ``training/frame_moments.py``):
its features against the texture observer's own, the running-mean distance's values and
gradient, and a planted learning test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elastogan.eval.authenticity.texture import FEATURE_NAMES, texture_features
from elastogan.models.texture import ScannerTexture, TextureConfig
from elastogan.sim.case import simulate_case
from elastogan.sim.config import SimConfig
from elastogan.sim.plan import make_plan
from elastogan.display import render_emode
from elastogan.eval.metrics import emode_luminance as observer_luminance
from elastogan.training.frame_moments import (FRAME_FEATURES, FrameMoments, FrameRelations, band_shares, emode_frame_features,
                                              emode_luminance, frame_features)
from elastogan.training.texture import Frames, TextureTrainConfig, fit_step, real_frame_features


@pytest.fixture(scope="module")
def cases():
    """A few simulated phantoms (the scanner's strain and E-mode are not drawn by our rules)."""
    cfg = SimConfig(size=64, fem_elements=32)
    return [simulate_case(np.random.SeedSequence(p.tissue_seed), np.random.SeedSequence(p.acquisition_seed), cfg)
            for p in make_plan(4, 11)]


@pytest.fixture(scope="module")
def scans(cases) -> list[np.ndarray]:
    """The simulated scanner's strain inside the ROI of each phantom."""
    out = []
    for c in cases:
        x0, y0, x1, y1 = c.roi
        out.append(c.strain[y0:y1, x0:x1].astype(np.float64))
    return out


def test_emode_luminance_is_the_simulators_emode_as_the_observer_reads_it(cases):
    """The differentiable E-mode luminance reproduces the simulator's E-mode (``display.render_emode``
    with the case's own opacity; without the colour bar, whose SOFT/HARD labels reach into a
    64² frame's ROI) as ``eval.metrics.emode_luminance`` reads it, to 8 bits, and passes a
    gradient to the strain."""
    strain = torch.from_numpy(np.stack([np.nan_to_num(c.strain) for c in cases])).double()[:, None].requires_grad_(True)
    bmode = torch.from_numpy(np.stack([c.bmode for c in cases]).astype(np.float64) / 127.5 - 1.0)[:, None]
    alpha = torch.tensor([c.source["display_alpha"] for c in cases], dtype=torch.float64)
    assert len(set(alpha.tolist())) > 1  # each case its own opacity
    ours = emode_luminance(strain, bmode, alpha=alpha)
    for i, c in enumerate(cases):
        x0, y0, x1, y1 = c.roi
        inside = np.isfinite(c.strain[y0:y1, x0:x1])
        png = render_emode(c.bmode, c.strain, c.roi, alpha=c.source["display_alpha"], colorbar=False)
        diff = np.abs(ours[i, 0].detach().numpy() - observer_luminance(png))[y0:y1, x0:x1][inside]
        assert np.quantile(diff, 0.99) <= 1.0 / 255 and diff.mean() < 0.3 / 255, (diff.max() * 255, diff.mean() * 255)
    features = emode_frame_features(strain, bmode, [c.roi for c in cases], alpha)
    assert features.shape == (len(cases), len(FRAME_FEATURES))
    features[:, FRAME_FEATURES.index("local_sd_3")].sum().backward()
    assert strain.grad.abs().sum() > 0


def test_band_shares_are_the_texture_observers_band_powers(scans):
    bands = [FEATURE_NAMES.index(n) for n in FRAME_FEATURES[-4:]]
    for m in scans + [np.random.default_rng(0).random((20, 33))]:
        ours = band_shares(torch.from_numpy(m)).numpy()
        assert ours.sum() == pytest.approx(1.0, abs=1e-9)
        np.testing.assert_allclose(ours, texture_features(m)[bands], rtol=1e-9, atol=1e-12)


def test_frame_features_follow_the_observers_on_the_scanners_strain(scans):
    """The critic's features are torch's forms (valid windows, not reflected edges): on real
    strain each agrees with the observer's feature of the same name to a few per cent."""
    size = 64
    frames, rois = [], []
    for m in scans:
        f = np.zeros((size, size))
        f[3 : 3 + m.shape[0], 5 : 5 + m.shape[1]] = m
        frames.append(f)
        rois.append((5, 3, 5 + m.shape[1], 3 + m.shape[0]))
    ours = frame_features(torch.from_numpy(np.stack(frames))[:, None], rois).numpy()
    observer = np.stack([texture_features(m) for m in scans])
    pairs = {"local_sd_3": "local_sd_3", "local_sd_7": "local_sd_7", "gradient_mean": "gradient_mean",
             "anisotropy": "anisotropy", "autocorrelation_axial": "autocorrelation_axial",
             "band_power_finest": "band_power_finest"}
    for mine, theirs in pairs.items():
        a, b = ours[:, FRAME_FEATURES.index(mine)], observer[:, FEATURE_NAMES.index(theirs)]
        np.testing.assert_allclose(a, b, rtol=0.1, atol=0.02, err_msg=mine)


def test_frame_features_are_differentiable_and_check_their_input():
    x = torch.rand(2, 1, 24, 24, requires_grad=True)
    f = frame_features(x, [(2, 2, 20, 22), (0, 0, 24, 24)])
    assert f.shape == (2, len(FRAME_FEATURES)) and torch.isfinite(f).all()
    f.sum().backward()
    assert x.grad is not None and x.grad[0, 0, :, :2].abs().sum() == 0  # outside the first ROI: no gradient
    with pytest.raises(ValueError, match="one ROI per frame"):
        frame_features(x, [(0, 0, 24, 24)])


def test_the_running_mean_distance_is_half_the_squared_mahalanobis_shift_with_the_batch_as_its_path():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(20000, 3, generator=g) @ torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    m = FrameMoments(real, momentum=0.5)
    assert m.loss(real[:5000])[0].item() == pytest.approx(0.0, abs=2e-3)
    # a shift of one sd along the third coordinate (independent of the others): Δ = 1/√1.01 (the ridge)
    m = FrameMoments(real, momentum=0.0)
    shifted = (real[:4000] + torch.tensor([0.0, 0.0, 2.0])).requires_grad_(True)
    loss = m.loss(shifted)[0]
    assert m.distance() == pytest.approx(1 / 1.01**0.5, abs=0.03)
    assert loss.item() == pytest.approx(0.5 * m.distance() ** 2, rel=1e-5)
    loss.backward()
    # the gradient of ½‖(x̄ − μ)W‖² in each row: W Wᵀ (x̄ − μ) / B, pointing back along the shift
    grad = shifted.grad.sum(0)
    assert grad[2] > 0 and abs(grad[0]) < 0.05 * grad[2] and abs(grad[1]) < 0.05 * grad[2]
    # with momentum the value is the running mean's, the path the batch's
    m = FrameMoments(real, momentum=0.9)
    m.loss(real[:4000] + torch.tensor([0.0, 0.0, 2.0]))
    batch = real[4000:8000].clone().requires_grad_(True)
    assert m.loss(batch)[0].item() == pytest.approx(0.5 * (0.9 / 1.01**0.5) ** 2, rel=0.1)
    m.loss(batch)[0].backward()
    assert batch.grad.sum(0)[2] > 0
    # a larger ridge charges a shift along the real frames' main direction more (their units move
    # towards each feature's own sd): the first two coordinates are correlated (0.45), the shift
    # along both together is the cheap one
    along = real[:4000] + real.std(0) * torch.tensor([1.0, 1.0, 0.0])
    costs = []
    for ridge in (0.01, 1.0):
        m = FrameMoments(real, momentum=0.0, ridge=ridge)
        costs.append(m.loss(along)[0].item() / m.loss(real[:4000] + real.std(0) * torch.tensor([1.0, -1.0, 0.0]))[0].item())
    assert costs[0] < costs[1] < 1, costs
    with pytest.raises(ValueError, match="ridge"):
        FrameMoments(real, ridge=0.0)
    with pytest.raises(ValueError, match="N > F"):
        FrameMoments(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="expected features"):
        m.loss(torch.zeros(2, 4))


def test_the_covariance_term_charges_a_set_of_draws_that_varies_less_than_the_scans():
    g = torch.Generator().manual_seed(1)
    real = torch.randn(20000, 3, generator=g) @ torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    m = FrameMoments(real, momentum=0.0)
    assert m.loss(real[:10000])[1].item() == pytest.approx(0.0, abs=2e-3) and m.spread() == pytest.approx(1.0, abs=0.02)
    centre = real.mean(0)
    tight = (centre + 0.5 * (real[10000:] - centre)).requires_grad_(True)
    mean_term, cov_term = m.loss(tight)
    assert mean_term.item() == pytest.approx(0.0, abs=2e-3) and m.spread() == pytest.approx(0.5, abs=0.02)
    # whitened, the real covariance is about I (the ridge aside): the tight set's is I/4, so ½‖(1/4 − 1)·I‖² ≈ 3·0.28
    assert cov_term.item() == pytest.approx(0.5 * 3 * 0.75**2, rel=0.05)
    cov_term.backward()
    # its gradient points inwards: stepping against it spreads the draws out
    assert (tight.grad * (tight - centre).detach()).sum() < 0


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_the_whole_frame_term_gives_the_draws_the_texture_the_window_terms_would_not(weight):
    """Planted: whole real frames are a smooth ramp plus noise of sd 0.06, while the windows the
    paired CRPS scores against are the ramp alone — as a window term sees a texture it cannot
    place (its amount varies with what no input shows) — so the CRPS pulls the draws to no
    texture at all. Without the whole-frame term (weight 0) the stage stays smooth; with it,
    its draws take on the whole frames' amount of texture."""
    torch.manual_seed(0)
    size, roi = 32, (4, 4, 28, 28)
    rng = np.random.default_rng(0)
    def ramp(n: int, side: int) -> torch.Tensor:  # the generator's smooth draw (a constant has no texture statistics)
        return torch.linspace(0.4, 0.6, side).expand(n, 1, side, side).clone()

    frames = (ramp(200, size) + 0.06 * torch.from_numpy(rng.normal(size=(200, 1, size, size))).float()).clamp(0, 1)
    stage = ScannerTexture(TextureConfig(image_size=size, channels=8, layers=2, input_noise=False))
    opt = torch.optim.Adam(stage.parameters(), lr=3e-3)
    moments = FrameMoments(frame_features(frames, [roi] * len(frames)), momentum=0.8)
    cfg = TextureTrainConfig(samples=2, crop=16, crps=0.01, spectral=0.0, stats=0.0, frame_moments=weight)
    margin, side, batch = 3, 22, 4
    bmode, gen, windows = torch.zeros(batch, 1, side, side), ramp(2 * batch, side), ramp(batch, side)
    whole = (torch.zeros(4, 1, size, size), ramp(4, size), [roi] * 4, torch.full((4,), 0.5))
    if weight:
        with pytest.raises(ValueError, match="whole frames and the real frames"):
            fit_step(stage, opt, bmode, gen, windows, cfg, margin)
    for _ in range(250):
        terms, _ = fit_step(stage, opt, bmode, gen, windows, cfg, margin, whole=whole, moments=moments)
    assert ({"frame_moments", "frame_distance", "frame_spread"} <= set(terms)) == bool(weight), terms
    stage.eval()
    with torch.no_grad():
        draws = stage(torch.zeros(16, 1, size, size), ramp(16, size), noise_seeds=list(range(16)))
    sd = (draws - ramp(16, size))[..., 4:28, 4:28].std(dim=(-2, -1)).mean().item()
    assert (0.035 < sd < 0.09) if weight else sd < 0.01, sd


def scan_windows(scans, count: int, side: int, seed: int) -> torch.Tensor:
    """``count`` random ``side²`` windows of the scanner's strain, ``(count, 1, side, side)``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        m = scans[rng.integers(len(scans))]
        y, x = rng.integers(m.shape[0] - side + 1), rng.integers(m.shape[1] - side + 1)
        out.append(m[y : y + side, x : x + side])
    return torch.from_numpy(np.stack(out))[:, None]


def test_the_relations_are_where_the_scanners_strain_hardly_varies_and_a_change_in_decorrelation_breaks_them(scans):
    """On windows of the simulated scanner's strain the 3×3 local sd and the gradient hold a
    near-fixed relation (how its strain decorrelates pixel to pixel); held-out windows sit on
    it, while the same windows each mixed half with its 3×3 mean — their decorrelation no longer
    the scanner's — are off it by more than a unit (its sd, floored)."""
    side, roi = 20, [(0, 0, 20, 20)]
    fit = frame_features(scan_windows(scans, 200, side, 0), roi * 200)
    r = FrameRelations(fit)
    # the first direction is the band shares' sum (always 1); the next, the tightest relation
    assert r.directions.shape[1] >= 3
    top = {FRAME_FEATURES[j] for j in r.directions[:, 1].abs().topk(2).indices}
    assert top == {"local_sd_3", "gradient_mean"}, top
    held = scan_windows(scans, 60, side, 1)
    r.loss(frame_features(held, roi * 60))
    real_shift = r.shift
    r.loss(frame_features(smoothed(held), roi * 60))
    assert real_shift < 0.35 and r.shift > 1.0 and r.shift > 4 * real_shift, (real_shift, r.shift)


def smoothed(windows: torch.Tensor) -> torch.Tensor:
    """Each window mixed half with its 3×3 mean (edges replicated)."""
    pooled = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(windows, (1, 1, 1, 1), mode="replicate"), 3, 1)
    return 0.5 * windows + 0.5 * pooled


def test_the_relations_term_brings_frames_back_onto_the_relation(scans):
    """Its gradient, followed, moves smoothed windows back towards the scanner's relation."""
    side, roi = 20, [(0, 0, 20, 20)]
    r = FrameRelations(frame_features(scan_windows(scans, 200, side, 0), roi * 200))
    held = scan_windows(scans, 16, side, 1)
    x = smoothed(held).float().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=2e-3)
    start = r.loss(frame_features(x, roi * 16)).item()
    for _ in range(60):
        loss = r.loss(frame_features(x, roi * 16))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert r.loss(frame_features(x, roi * 16)).item() < 0.3 * start


def test_fit_step_charges_the_relations_on_the_whole_frames():
    torch.manual_seed(0)
    size, roi = 32, (4, 4, 28, 28)
    frames = (0.5 + 0.05 * torch.randn(60, 1, size, size)).clamp(0, 1)
    relations = FrameRelations(frame_features(frames, [roi] * 60))
    stage = ScannerTexture(TextureConfig(image_size=size, channels=8, layers=2, input_noise=False))
    opt = torch.optim.Adam(stage.parameters(), lr=1e-3)
    cfg = TextureTrainConfig(samples=2, crop=16, crps=1.0, spectral=0.0, stats=0.0, frame_relations=1.0)
    bmode, gen, windows = torch.zeros(2, 1, 22, 22), torch.full((4, 1, 22, 22), 0.5), torch.full((2, 1, 22, 22), 0.5)
    with pytest.raises(ValueError, match="whole frames"):
        fit_step(stage, opt, bmode, gen, windows, cfg, 3)
    whole = (torch.zeros(4, 1, size, size), torch.full((4, 1, size, size), 0.5), [roi] * 4, torch.full((4,), 0.5))
    terms, total = fit_step(stage, opt, bmode, gen, windows, cfg, 3, whole=whole, relations=relations)
    assert {"frame_relations", "frame_relation_shift"} <= set(terms) and "frame_moments" not in terms
    assert total.item() == pytest.approx(terms["crps"].item() + terms["frame_relations"].item(), rel=1e-5)


def test_with_frame_emode_the_terms_see_the_strain_and_the_emode(cases):
    """``real_frame_features(emode=True)`` gives each real frame the strain's features then its
    E-mode's (at the case's opacity); ``fit_step`` scores the drawn frames the same way."""
    frames = Frames(ids=[f"c{i}" for i in range(len(cases))], bmode=np.stack([c.bmode for c in cases]),
                    strain=np.stack([c.strain for c in cases]).astype(np.float32), roi=[c.roi for c in cases],
                    alpha=np.array([c.source["display_alpha"] for c in cases], np.float32))
    strain_only, both = real_frame_features(frames), real_frame_features(frames, emode=True)
    f = len(FRAME_FEATURES)
    assert both.shape == (len(cases), 2 * f) and torch.equal(both[:, :f], strain_only)
    c = cases[0]
    emode = emode_frame_features(torch.from_numpy(np.nan_to_num(c.strain))[None, None],
                                 torch.from_numpy(c.bmode.astype(np.float32) / 127.5 - 1.0)[None, None], [c.roi],
                                 torch.tensor([c.source["display_alpha"]]))
    torch.testing.assert_close(both[0, f:], emode[0].to(both.dtype))
    torch.manual_seed(0)
    size = 64
    stage = ScannerTexture(TextureConfig(image_size=size, channels=8, layers=2, input_noise=False))
    opt = torch.optim.Adam(stage.parameters(), lr=1e-3)
    bmode, gen, windows = torch.zeros(2, 1, 22, 22), torch.full((4, 1, 22, 22), 0.5), torch.full((2, 1, 22, 22), 0.5)
    whole = (torch.from_numpy(frames.bmode.astype(np.float32) / 127.5 - 1.0)[:, None],
             torch.from_numpy(np.nan_to_num(frames.strain, nan=0.5))[:, None], frames.roi, torch.from_numpy(frames.alpha))
    for emode_on, real in ((True, both), (False, both)):
        cfg = TextureTrainConfig(samples=2, crop=16, crps=1.0, spectral=0.0, stats=0.0, frame_moments=1.0, frame_emode=emode_on)
        moments = FrameMoments(real.repeat(8, 1) + 1e-3 * torch.randn(8 * len(cases), 2 * f, dtype=real.dtype))
        if emode_on:
            terms, _ = fit_step(stage, opt, bmode, gen, windows, cfg, 3, whole=whole, moments=moments)
            assert torch.isfinite(terms["frame_moments"])
        else:  # moments of strain and E-mode against the strain's alone: a clear error, not a silent mix
            with pytest.raises(ValueError, match="expected features"):
                fit_step(stage, opt, bmode, gen, windows, cfg, 3, whole=whole, moments=moments)


def test_the_terms_settings_are_checked():
    with pytest.raises(ValueError, match="below"):
        FrameRelations(torch.randn(50, 3), below=0.0)
    for bad in ({"frame_moments": -1.0}, {"frame_momentum": 1.0}, {"frame_ridge": 0.0}, {"frame_batch": 0}, {"frame_cov": 1.0},
                {"frame_moments": 1.0, "frame_cov": -1.0}, {"frame_relations": -1.0}, {"frame_relations_below": 0.0}):
        with pytest.raises(ValueError, match="train\\."):
            TextureTrainConfig(**bad)
