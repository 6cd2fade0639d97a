"""The scanner-texture stage: the fair CRPS, the stage's contract, its training and its checkpoint."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import norm

from elastogan.checkpoint import export_for_inference, load_checkpoint, save_checkpoint
from elastogan.cli import main
from elastogan.models import losses
from elastogan.models.config import ModelConfig
from elastogan.models.registry import build_generator
from elastogan.models.texture import ScannerTexture, TextureConfig, frame_coordinates, texture_seeds
from elastogan.predict import Predictor
from elastogan.training.texture import Frames, TextureTrainConfig, cut_windows, fit_step, scored_mask, window_corners
from elastogan.typed_config import to_dict

sys.path.insert(0, str(Path(__file__).parent))
from tiny_manifest import make_manifest  # noqa: E402

SMALL = dict(base_channels=4, max_channels=16, num_levels=2, embed_dim=16, transformer_depth=1, num_heads=2, norm_groups=2)


def gaussian_crps(mu: float, sigma: float, y: float) -> float:
    """Closed form for N(mu, sigma²) (Gneiting & Raftery 2007, eq. 21)."""
    z = (y - mu) / sigma
    return sigma * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / math.sqrt(math.pi))


@pytest.mark.parametrize("k", [2, 8])
@pytest.mark.parametrize("y", [0.0, 0.7])
def test_fair_crps_of_gaussian_draws_matches_the_closed_form(k, y):
    # the fair estimator is unbiased at any K, so even K = 2 lands on the closed form
    g = torch.Generator().manual_seed(k)
    draws = 0.3 + 0.5 * torch.randn(k, 1, 1, 200, 200, generator=g)
    got = losses.crps_samples(draws, torch.full((1, 1, 200, 200), y)).item()
    assert got == pytest.approx(gaussian_crps(0.3, 0.5, y), rel=0.02)


def test_crps_of_equal_draws_is_the_mae_and_the_mask_is_honoured():
    pred = torch.rand(1, 2, 1, 8, 8)
    draws = pred.expand(3, 2, 1, 8, 8)
    target = torch.rand(2, 1, 8, 8)
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    assert losses.crps_samples(draws, target, mask).item() == pytest.approx(
        losses.masked_l1(pred[0], target, mask).item(), abs=1e-6)
    with pytest.raises(ValueError, match="at least 2 draws"):
        losses.crps_samples(draws[:1], target)
    with pytest.raises(ValueError, match="expected draws"):
        losses.crps_samples(draws, target[:1])


def test_crps_prefers_the_true_spread_to_a_point_or_a_wider_one():
    # properness: draws from the target's own distribution score best
    g = torch.Generator().manual_seed(0)
    y = 0.2 * torch.randn(1, 1, 100, 100, generator=g)
    scores = {s: losses.crps_samples(s * torch.randn(4, 1, 1, 100, 100, generator=g), y).item() for s in (0.0, 0.2, 0.6)}
    assert scores[0.2] < scores[0.0] and scores[0.2] < scores[0.6]


def stage(**kw) -> ScannerTexture:
    torch.manual_seed(0)
    return ScannerTexture(TextureConfig(**{"image_size": 32, "channels": 6, "layers": 3, **kw})).eval()


def test_an_untrained_stage_returns_the_generator_draw():
    s = stage()
    strain = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(s(torch.rand(2, 1, 32, 32) * 2 - 1, strain, noise_seeds=[1, 2]), strain)


@pytest.mark.parametrize("frame_noise, streaks, smooth_gate", [(False, False, False), (True, False, False),
                                                                (False, True, False), (False, False, True)])
def test_stage_draws_are_seeded_batch_independent_and_local(frame_noise, streaks, smooth_gate):
    s = stage(frame_noise=frame_noise, streaks=streaks, smooth_gate=smooth_gate)
    assert s.convs[0].in_channels == 2 + 5 + frame_noise
    with torch.no_grad():
        s.out.weight.normal_(0, 0.1)  # a trained-looking last layer
        if streaks:
            s.streak_gain.weight.normal_(0, 0.1)
        if smooth_gate:
            s.smooth_gain.weight.normal_(0, 0.1)
        b, m = torch.rand(1, 1, 32, 32) * 2 - 1, torch.rand(1, 1, 32, 32)
        a1, a2 = s(b, m, noise_seeds=[5]), s(b, m, noise_seeds=[5])
        other = s(b, m, noise_seeds=[6])
        batch = s(b.repeat(2, 1, 1, 1), m.repeat(2, 1, 1, 1), noise_seeds=[6, 5])
        assert torch.equal(a1, a2) and (a1 - other).abs().max() > 1e-3
        torch.testing.assert_close(batch[1:], a1, rtol=0, atol=1e-6)
        # an input pixel moves only outputs within half the receptive field
        b2 = b.clone()
        b2[..., 16, 16] = -b2[..., 16, 16] + 0.5
        moved = (s(b2, m, noise_seeds=[5]) - a1).abs()[0, 0] > 0
        ys, xs = np.nonzero(moved.numpy())
        half = s.cfg.receptive_field // 2
        assert len(ys) > 0 and np.abs(ys - 16).max() <= half and np.abs(xs - 16).max() <= half
        m2 = m.clone()  # and so does a pixel of the generator's draw
        m2[..., 16, 16] = 1 - m2[..., 16, 16]
        ys, xs = np.nonzero(((s(b, m2, noise_seeds=[5]) - a1).abs()[0, 0] > 0).numpy())
        assert len(ys) > 0 and np.abs(ys - 16).max() <= half and np.abs(xs - 16).max() <= half
    assert texture_seeds([5]) != [5] and texture_seeds([5]) == texture_seeds([5])


def test_frame_noise_sets_a_draws_amount_of_texture():
    # The frame-wide input is one value per draw: with the first layer reading only it, the
    # residual is the same at every pixel of a draw and differs between draws.
    s = stage(frame_noise=True, layers=1)
    with torch.no_grad():
        s.convs[0].weight.zero_()
        s.convs[0].weight[:, -1, 1, 1] = 1.0
        s.noise[0].strength.zero_()
        s.out.weight.zero_()
        s.out.weight[0, :, 1, 1] = 0.05
        m = torch.full((2, 1, 32, 32), 0.5)
        d = s(torch.zeros(2, 1, 32, 32), m, noise_seeds=[1, 2]) - m
    inner = d[..., 2:-2, 2:-2]  # away from the zero padding
    assert inner[0].std() < 1e-6 and inner[1].std() < 1e-6 and (inner[0].mean() - inner[1].mean()).abs() > 1e-4


def test_streaks_are_sparse_runs_along_the_beam_at_the_amplitude_the_network_sets():
    # With the gain a constant and nothing else, the residual is the streak noise itself: sparse
    # spikes (1.2 % of the pixels) drawn out by the initial kernel, a vertical line of 9 pixels.
    s = stage(streaks=True)
    with torch.no_grad():
        m = torch.full((1, 1, 128, 128), 0.5)
        assert torch.equal(s(torch.zeros_like(m), m, noise_seeds=[3]), m)  # the gain starts at zero
        s.streak_gain.bias.fill_(0.01)
        d = (s(torch.zeros_like(m), m, noise_seeds=[3]) - m)[0, 0, 8:-8, 8:-8].numpy()
    moved = np.abs(d) > 1e-6
    assert 0.05 < moved.mean() < 0.2  # about 1.2 % × 9 pixels
    c = d - d.mean()
    axial = (c[1:] * c[:-1]).sum() / (c * c).sum()
    lateral = (c[:, 1:] * c[:, :-1]).sum() / (c * c).sum()
    assert axial > 0.8 and abs(lateral) < 0.1, (axial, lateral)
    # a higher threshold: fewer spikes (P(|N| > 3) / P(|N| > 2.5) = 0.22), each larger, the
    # residual's variance the same
    sparse = stage(streaks=True, streak_threshold=3.0)
    with torch.no_grad():
        sparse.streak_gain.bias.fill_(0.01)
        d3 = (sparse(torch.zeros_like(m), m, noise_seeds=[3]) - m)[0, 0, 8:-8, 8:-8].numpy()
    ratio = (np.abs(d3) > 1e-6).mean() / moved.mean()
    assert 0.12 < ratio < 0.35 and 0.5 < d3.var() / d.var() < 2.0, (ratio, d3.var() / d.var())
    assert np.abs(d3).max() > 1.5 * np.abs(d).max()
    # the kernel is learnt: a gradient reaches it once the gain is not zero
    m.requires_grad_(False)
    s.zero_grad()
    s(torch.zeros_like(m), m, noise_seeds=[3]).square().sum().backward()
    assert s.streak_kernel.grad.abs().sum() > 0


def test_the_smoothing_gate_blends_the_draw_with_its_gaussian_blur():
    # Gate 0 (as trained stages start): the draw itself. Gate 1 everywhere: scipy's Gaussian
    # blur of the draw (sd SMOOTH_SIGMA, cut at SMOOTH_RADIUS, edges replicated). Gate −1 in
    # one half: that half sharpened, away from the blur.
    from scipy import ndimage

    from elastogan.models.texture import SMOOTH_RADIUS, SMOOTH_SIGMA

    s = stage(smooth_gate=True, layers=2)
    m = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    b = torch.zeros_like(m)
    with torch.no_grad():
        assert torch.equal(s(b, m, noise_seeds=[1]), m)
        s.smooth_gain.bias.fill_(1.0)
        blurred = s(b, m, noise_seeds=[1])[0, 0].numpy()
    want = ndimage.gaussian_filter(m[0, 0].numpy().astype(np.float64), SMOOTH_SIGMA, mode="nearest",
                                   truncate=SMOOTH_RADIUS / SMOOTH_SIGMA)
    np.testing.assert_allclose(blurred, want, atol=1e-5)
    assert blurred.std() < 0.5 * m.std().item()  # white noise loses most of its variance
    s.smooth_gain.bias.grad = None
    out = s(b, m, noise_seeds=[1])
    out.sum().backward()
    assert s.smooth_gain.bias.grad is not None and s.smooth_gain.bias.grad.abs() > 0  # the gate is learnt


def test_frame_coordinates_are_depth_and_distance_from_the_centre_line():
    c = frame_coordinates((5, 9))[0]
    assert c.shape == (2, 5, 9)
    assert torch.equal(c[0, :, 0], torch.linspace(-1, 1, 5)) and torch.equal(c[0, 2], torch.zeros(9))
    assert c[1, 0, 4] == -1 and c[1, 0, 0] == c[1, 0, 8] == 1
    assert torch.equal(c[1], c[1].flip(-1))  # a mirrored frame keeps its own maps


def test_a_stage_that_knows_its_position_sees_in_a_training_window_what_it_sees_in_the_frame():
    # The stage learns on windows cut from frames with their coordinates and runs on whole
    # frames computing its own: inside the window's margin the two agree exactly, mirrored
    # windows included. Noise off, so that the two runs can be compared.
    s = stage(position=True, input_noise=False)
    assert s.convs[0].in_channels == 2 + 2
    with torch.no_grad():
        s.out.weight.normal_(0, 0.1)
        for n in s.noise:
            n.strength.zero_()
    size, side, margin = 64, 40, s.cfg.receptive_field // 2
    rng = np.random.default_rng(0)
    frames = Frames(ids=["a"], bmode=rng.integers(0, 256, (1, size, size), dtype=np.uint8),
                    strain=rng.random((1, size, size)).astype(np.float32), roi=[(0, 0, size, size)])
    bank = rng.random((1, 1, size, size)).astype(np.float16)
    inner = (..., slice(margin, side - margin), slice(margin, side - margin))
    with torch.no_grad():
        for flip in (False, True):
            b, g, _, c = cut_windows(frames, bank, [0], [[0]], [(10, 20)], [flip], side, "cpu")
            full_b = torch.from_numpy(frames.bmode[0].astype(np.float32) / 127.5 - 1)[None, None]
            full_g = torch.from_numpy(bank[0, :1].astype(np.float32))[None]
            x0 = 20
            if flip:  # the mirrored window is the window of the mirrored frame at the mirrored place
                full_b, full_g, x0 = full_b.flip(-1), full_g.flip(-1), size - 20 - side
            whole = s(full_b, full_g)[..., 10:10 + side, x0:x0 + side]
            torch.testing.assert_close(s(b, g, coords=c)[inner], whole[inner])
            torch.testing.assert_close(c[0], frame_coordinates((size, size))[0, :, 10:10 + side, x0:x0 + side])
        # the same input elsewhere in the frame gives another output
        out = s(torch.zeros(1, 1, 32, 96), torch.full((1, 1, 32, 96), 0.5))[0, 0]
    assert (out[16, 20] - out[16, 48]).abs() > 1e-4


@pytest.mark.parametrize("scale", [2, 4])
def test_a_coarse_stage_is_local_and_sees_in_an_aligned_window_what_it_sees_in_the_frame(scale):
    # texture.scale runs the stack on block means; the receptive field (rounded up to whole
    # blocks) still bounds what an input pixel moves, and a window cut at a multiple of the
    # block (window_corners' align) agrees with the whole frame inside its margin.
    s = stage(position=True, streaks=True, layers=3, scale=scale)
    rf = s.cfg.receptive_field
    margin = rf // 2
    assert margin % scale == 0 and rf > stage(layers=3).cfg.receptive_field * scale
    with torch.no_grad():
        s.out.weight.normal_(0, 0.1)
        s.streak_gain.weight.normal_(0, 0.1)
        size, crop = 128, 16
        side = crop + 2 * margin
        rng = np.random.default_rng(1)
        frames = Frames(ids=["a"], bmode=rng.integers(0, 256, (1, size, size), dtype=np.uint8),
                        strain=rng.random((1, size, size)).astype(np.float32), roi=[(0, 0, size, size)])
        bank = rng.random((1, 1, size, size)).astype(np.float16)
        full_b = torch.from_numpy(frames.bmode[0].astype(np.float32) / 127.5 - 1)[None, None]
        full_g = torch.from_numpy(bank[0, :1].astype(np.float32))[None]
        for dy in range(scale):  # every phase of a pixel within its block
            b2 = full_b.clone()
            b2[..., 64 + dy, 64 + dy] += 0.7
            moved = (s(b2, full_g, noise_seeds=[1]) - s(full_b, full_g, noise_seeds=[1])).abs()[0, 0] > 0
            ys, xs = np.nonzero(moved.numpy())
            assert len(ys) > 0 and np.abs(ys - 64 - dy).max() <= margin and np.abs(xs - 64 - dy).max() <= margin
    clean = stage(position=True, input_noise=False, layers=3, scale=scale)  # no noise: a window and its frame compare
    with torch.no_grad():
        clean.out.weight.normal_(0, 0.1)
        for n in clean.noise:
            n.strength.zero_()
        y, x = window_corners(rng, (3, 5, 120, 110), size, crop, margin, align=scale)
        assert y % scale == 0 and x % scale == 0
        inner = (..., slice(margin, side - margin), slice(margin, side - margin))
        b, g, _, c = cut_windows(frames, bank, [0], [[0]], [(y, x)], [False], side, "cpu")
        whole = clean(full_b, full_g)[..., y:y + side, x:x + side]
        torch.testing.assert_close(clean(b, g, coords=c)[inner], whole[inner])
        # the dense residual is smooth at the block's scale (only the streaks draw single
        # pixels); the same weights on the full-resolution frame are not
        m = torch.full((1, 1, size, size), 0.5)
        fine = stage(position=True, input_noise=False, layers=3)
        fine.load_state_dict(clean.state_dict())
        lag = []
        for st in (clean, fine):
            r = (st(full_b, m) - m)[0, 0, margin:-margin, margin:-margin].numpy()
            r = r - r.mean()
            lag.append((r[1:] * r[:-1]).sum() / (r * r).sum())
        assert lag[0] > 0.6 > lag[1], lag
    with pytest.raises(ValueError, match="multiples of texture.scale"):
        s(torch.zeros(1, 1, 30, 30 + 1), torch.zeros(1, 1, 30, 30 + 1))


@pytest.mark.parametrize("scale", [1, 2])
def test_the_output_filter_starts_as_the_identity_is_local_and_sets_how_neighbouring_pixels_correlate(scale):
    # texture.out_filter: a learnt filter of the stage's texture at full resolution
    s = stage(streaks=True, layers=3, scale=scale, out_filter=5)
    plain = stage(streaks=True, layers=3, scale=scale)
    assert s.cfg.receptive_field > plain.cfg.receptive_field and (s.cfg.receptive_field // 2) % scale == 0
    size = 64
    rng = np.random.default_rng(2)
    b = torch.from_numpy(rng.random((1, 1, size, size)).astype(np.float32) * 2 - 1)
    m = torch.from_numpy(rng.random((1, 1, size, size)).astype(np.float32))
    with torch.no_grad():
        s.out.weight.normal_(0, 0.1)
        s.streak_gain.weight.normal_(0, 0.1)
        plain.load_state_dict({k: v for k, v in s.state_dict().items() if not k.startswith("out_filter")})
        torch.testing.assert_close(s(b, m, noise_seeds=[3]), plain(b, m, noise_seeds=[3]), rtol=0, atol=1e-6)
        s.out_filter.weight.normal_(0, 0.2)
        b2 = b.clone()
        b2[..., 32, 32] += 0.7  # an input pixel moves only outputs within half the receptive field
        ys, xs = np.nonzero(((s(b2, m, noise_seeds=[3]) - s(b, m, noise_seeds=[3])).abs()[0, 0] > 0).numpy())
        half = s.cfg.receptive_field // 2
        assert len(ys) > 0 and np.abs(ys - 32).max() <= half and np.abs(xs - 32).max() <= half
        flat = torch.full((1, 1, size, size), 0.5)
        lag = []
        for box in (False, True):
            s.out_filter.weight.zero_()
            if box:
                s.out_filter.weight[0, 0, 1:4, 1:4] = 1 / 9  # a 3×3 mean: neighbours alike
            else:
                s.out_filter.weight[0, 0, 2, 2] = 1.0  # the identity
            r = (s(b, flat, noise_seeds=[3]) - flat)[0, 0, 8:-8, 8:-8].numpy()
            r = r - r.mean()
            lag.append((r[:, 1:] * r[:, :-1]).sum() / (r * r).sum())
        assert lag[1] > lag[0] + 0.2, lag
    with pytest.raises(ValueError, match="out_filter"):
        TextureConfig(out_filter=4)


@pytest.mark.parametrize("bad, match", [(dict(layers=0), "layers"), (dict(layers=7), "layers"), (dict(channels=0), "channels"),
                                        (dict(image_size=4), "image_size"), (dict(noise_init=-1.0), "noise_init"),
                                        (dict(scale=0), "scale"), (dict(image_size=256, scale=3), "divisor"),
                                        (dict(streak_threshold=0.0), "streak_threshold")])
def test_texture_config_is_checked(bad, match):
    with pytest.raises(ValueError, match=match):
        TextureConfig(**bad)


@pytest.mark.parametrize("bad, match", [(dict(samples=1), "samples"), (dict(crop=4), "crop"), (dict(lr=0.0), "lr"),
                                        (dict(crps=0.0, spectral=0.0, stats=0.0), "not all 0"), (dict(bank_draws=0), "bank_draws")])
def test_texture_training_config_is_checked(bad, match):
    with pytest.raises(ValueError, match=match):
        TextureTrainConfig(**bad)


def test_windows_lie_in_the_frame_and_score_inside_the_roi():
    rng = np.random.default_rng(0)
    for _ in range(300):
        size, crop, margin = 64, 16, 5
        x0, y0 = rng.integers(0, 40, 2)
        roi = (int(x0), int(y0), int(x0 + rng.integers(crop, 64 - x0 + 1)), int(y0 + rng.integers(crop, 64 - y0 + 1)))
        y, x = window_corners(rng, roi, size, crop, margin)
        assert 0 <= y <= size - crop - 2 * margin and 0 <= x <= size - crop - 2 * margin
        # the scored centre stays inside the ROI wherever the frame leaves room for the margin
        if roi[1] >= margin and roi[3] <= size - margin:
            assert roi[1] <= y + margin and y + margin + crop <= roi[3]
        if roi[0] >= margin and roi[2] <= size - margin:
            assert roi[0] <= x + margin and x + margin + crop <= roi[2]


def test_overlapping_windows_score_every_roi_pixel_and_the_frame_edges_too():
    # With train.windows=overlap every pixel of the ROI is scored, those at its edges and at
    # the frame's sides (where the scanner's strain is noisiest) included; with the old
    # sampling the frame's outer margin is never scored.
    rng = np.random.default_rng(0)
    size, crop, margin = 64, 16, 5
    side = crop + 2 * margin
    roi = (0, 10, 64, 50)
    counts = {False: np.zeros((size, size)), True: np.zeros((size, size))}
    for overlap in (False, True):
        for _ in range(2000):
            y, x = window_corners(rng, roi, size, crop, margin, overlap=overlap)
            assert 0 <= y <= size - side and 0 <= x <= size - side
            mask = scored_mask([(y, x)], [False], size, side, margin)[0, 0].numpy() if overlap else \
                np.pad(np.ones((crop, crop)), margin)
            inside = mask[max(roi[1] - y, 0): roi[3] - y, max(roi[0] - x, 0): roi[2] - x]
            assert inside.sum() >= (crop // 4) ** 2 or not overlap  # a quarter of the crop per axis
            counts[overlap][y : y + side, x : x + side] += mask
    in_roi = counts[True][roi[1] : roi[3], roi[0] : roi[2]]
    assert in_roi.min() > 0 and counts[False][roi[1] : roi[3], :margin].max() == 0
    # a window at the frame's edge scores its margin on that side only; mirrored, the other way
    m = scored_mask([(0, 7)], [False], size, side, margin)[0, 0]
    assert m[:margin, margin:-margin].all() and not m[-margin:].any() and not m[:, :margin].any()
    m = scored_mask([(7, size - side)], [True], size, side, margin)[0, 0]
    assert m[margin:-margin, :margin].all() and not m[margin:-margin, -margin:].any()


def test_a_step_on_a_scored_mask_of_the_inner_window_scores_as_the_old_step():
    # The per-pixel CRPS and the statistics see only scored pixels: the same on the full window
    # with the inner part scored as on the inner part cut out. The spectral term is computed on
    # the window it is given (another frequency grid), so it differs, finitely.
    torch.manual_seed(0)
    b = torch.rand(2, 1, 30, 30) * 2 - 1
    gen = torch.rand(4, 1, 30, 30)
    real = torch.rand(2, 1, 30, 30)
    cfg = TextureTrainConfig(samples=2)
    terms = []
    for scored in (None, torch.nn.functional.pad(torch.ones(2, 1, 20, 20), (5, 5, 5, 5))):
        s = stage()
        torch.manual_seed(1)
        terms.append(fit_step(s, torch.optim.Adam(s.parameters(), lr=1e-3), b, gen, real, cfg, 5, torch.ones(10),
                              scored=scored)[0])
    for name in ("crps", "stats"):
        torch.testing.assert_close(terms[0][name], terms[1][name])
    assert torch.isfinite(terms[1]["spectral"])


def test_training_learns_a_spread_that_follows_the_echo():
    """Planted: the scanner's map is noisy (sd 0.12) under dark B-mode and clean (sd 0.01) under
    bright B-mode. The CRPS must teach the stage draws whose spread follows the echo — what an
    L1 on each draw, or a fixed noise strength, cannot do."""
    torch.manual_seed(0)
    s = ScannerTexture(TextureConfig(image_size=32, channels=8, layers=2, noise_init=0.5))
    opt = torch.optim.Adam(s.parameters(), lr=3e-3)
    cfg = TextureTrainConfig(samples=4, crop=16, crps=100.0, spectral=0.0, stats=0.0)
    margin, side, batch = 3, 22, 8
    dark = torch.zeros(1, 1, side, side, dtype=torch.bool)
    dark[..., :, : side // 2] = True
    bmode = torch.where(dark, -0.8, 0.6).expand(batch, 1, side, side)
    gen = torch.full((4 * batch, 1, side, side), 0.5)
    for _ in range(250):
        real = 0.5 + torch.where(dark, 0.12, 0.01) * torch.randn(batch, 1, side, side)
        fit_step(s, opt, bmode, gen, real, cfg, margin)
    s.eval()
    with torch.no_grad():
        draws = s(bmode[:1].repeat(64, 1, 1, 1), torch.full((64, 1, side, side), 0.5), noise_seeds=list(range(64)))
    sd = draws.std(0)[0, margin:-margin, margin:-margin]
    inner_dark = dark[0, 0, margin:-margin, margin:-margin]
    sd_dark, sd_bright = sd[inner_dark].mean().item(), sd[~inner_dark].mean().item()
    assert 0.07 < sd_dark < 0.17, sd_dark
    assert sd_bright < 0.04, sd_bright
    assert draws.mean(0)[0, margin:-margin, margin:-margin].sub(0.5).abs().mean().item() < 0.03


def test_the_saturation_term_takes_back_what_a_draw_pushes_below_the_display_s_range():
    """Planted: hard tissue (strain 0.02 ± 0.01, as the scanner shows a stiff lesion) under a
    stage whose residual starts 0.3 too low. Clipped at 0, the whole draw is a patch of uniform
    hard strain, and the clip leaves those pixels no gradient in the CRPS: trained on the CRPS
    alone the patch stays. The term on what lies outside [0, 1] before the clip brings it back
    (then the CRPS fits the rest), and costs nothing on a draw inside the range."""
    from elastogan.training.texture import saturation_excess

    side, margin, batch = 22, 3, 8
    bmode = torch.zeros(batch, 1, side, side)
    gen = torch.full((4 * batch, 1, side, side), 0.02)

    def trained(weight: float) -> float:
        torch.manual_seed(0)
        s = ScannerTexture(TextureConfig(image_size=32, channels=8, layers=2, noise_init=0.1))
        with torch.no_grad():
            s.out.bias.fill_(-0.3)
        opt = torch.optim.Adam(s.parameters(), lr=3e-3)
        cfg = TextureTrainConfig(samples=4, crop=16, crps=100.0, spectral=0.0, stats=0.0, saturation=weight)
        for _ in range(60):
            real = (0.02 + 0.01 * torch.randn(batch, 1, side, side)).clamp(0.0, 1.0)
            terms, _ = fit_step(s, opt, bmode, gen, real, cfg, margin)
            assert ("saturation" in terms) == (weight > 0)
        s.eval()
        with torch.no_grad():
            raw = s(bmode, gen[:batch], noise_seeds=list(range(batch)), clamp=False)
            assert torch.equal(s(bmode, gen[:batch], noise_seeds=list(range(batch))), raw.clamp(0.0, 1.0))
        return float((raw < 0).float().mean())

    without, with_term = trained(0.0), trained(100.0)
    assert without > 0.95, without  # no gradient through the clip: the patch stays
    assert with_term < 0.5, with_term
    assert saturation_excess(torch.tensor([0.0, 0.3, 1.0])).item() == 0.0
    with pytest.raises(ValueError, match="saturation"):
        TextureTrainConfig(saturation=-1.0)


def base_checkpoint(path: Path, *, noise: bool = True) -> Path:
    cfg = ModelConfig(**SMALL, noise=noise, noise_init=0.5)
    torch.manual_seed(0)
    g = build_generator(cfg)
    save_checkpoint(path, {"kind": "inference", "config": {"model": to_dict(cfg), "data": {"image_size": None}},
                           "step": 7, "generator_ema": g.state_dict(), "best_ncc": None,
                           "uncertainty": {"level": 0.9, "samples": 4, "pixel_scale": 2.0, "ratio_scale": None,
                                           "cases": 10, "ratio_cases": 0, "coverage_before": 0.5, "source": {}}})
    return path


def test_train_texture_command_writes_a_checkpoint_the_product_loads(tmp_path, capsys):
    data = make_manifest(tmp_path / "data", size=(32, 32), splits={"train": 4, "val": 2})
    base = base_checkpoint(tmp_path / "base.pt")
    sets = ["texture.image_size=32", "texture.channels=4", "texture.layers=2", "train.steps=3", "train.crop=12",
            "train.batch_size=2", "train.val_cases=2", "train.bank_draws=2", "train.log_every=1"]
    argv = ["train-texture", "--checkpoint", str(base), "--data", str(data), "--out", str(tmp_path / "run"), "--no-progress"]
    assert main([*argv, *[a for s in sets for a in ("--set", s)]]) == 0
    assert "elastogan calibrate" in capsys.readouterr().out
    path = tmp_path / "run" / "texture.pt"
    ckpt = load_checkpoint(path)
    assert ckpt["texture"]["config"]["channels"] == 4 and ckpt["texture"]["train"]["steps"] == 3
    assert "uncertainty" not in ckpt  # the generator's calibration described draws without the stage
    assert set(ckpt["texture"]["val"]) >= {"crps_generator", "crps_textured", "ncc_mean_textured"}
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4  # three steps and the validation

    p = Predictor.from_checkpoint(path, device="cpu")
    assert p.texture is not None and p.stochastic
    bmode = np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8)
    with torch.no_grad():
        p.texture.out.weight.normal_(0, 0.2)  # three steps barely move it: make the stage visible
    a = p.sample(bmode, samples=3, seed=4)
    assert np.array_equal(a, p.sample(bmode, samples=3, seed=4))
    np.testing.assert_allclose(a[0], p.predict(bmode, seed=4)[1], rtol=0, atol=1e-5)  # float rounding of batching
    assert np.abs(a[0] - a[1]).max() > 1e-3
    assert np.abs(a[0] - p.draw_generator(bmode[None], [p_seed(4)])[0, 0].numpy()).max() > 1e-3
    # another frame size: resized to the stage's side and back
    big = np.random.default_rng(1).integers(0, 255, (40, 48), dtype=np.uint8)
    emode, strain = p.predict(big)
    assert strain.shape == (40, 48) and emode.shape == (40, 48, 3) and 0 <= strain.min() and strain.max() <= 1

    exported = export_for_inference(path, tmp_path / "shipped.pt")
    assert "texture" in exported
    assert Predictor.from_checkpoint(tmp_path / "shipped.pt", device="cpu").texture is not None

    # every switch of session 15 at once: position, streaks, squared linear statistics with hard
    # counts, windows that overlap the ROI and score the frame's edges
    new = ["texture.position=true", "texture.streaks=true", "train.stats_score=l2", "train.stats_linear=true",
           "train.stats_hard=true", "train.windows=overlap", "train.stats_energy=1"]
    argv[argv.index("--out") + 1] = str(tmp_path / "run2")
    assert main([*argv, *[a for s in sets + new for a in ("--set", s)]]) == 0
    logged = json.loads((tmp_path / "run2" / "metrics.jsonl").read_text().splitlines()[0])
    assert logged["stats_energy"] > 0  # the unpaired term is trained and logged
    p = Predictor.from_checkpoint(tmp_path / "run2" / "texture.pt", device="cpu")
    assert p.texture.cfg.position and p.texture.cfg.streaks
    a = p.sample(bmode, samples=2, seed=4)
    assert np.array_equal(a, p.sample(bmode, samples=2, seed=4)) and np.isfinite(a).all()

    # a coarse stage (texture.scale=2) trains on block-aligned windows and runs in the product,
    # on frames of the stage's size and of another
    argv[argv.index("--out") + 1] = str(tmp_path / "run3")
    # (with a frame code: the training frames' codes are logged first, the product draws its own)
    extra = ["texture.scale=2", "texture.frame_latent=1"]
    assert main([*argv, *[a for s in sets + new[:2] + extra for a in ("--set", s)]]) == 0
    codes = json.loads((tmp_path / "run3" / "metrics.jsonl").read_text().splitlines()[0])
    assert len(codes["frame_latent_explained"]) == 1 and 0 < codes["frame_latent_explained"][0] <= 1
    p = Predictor.from_checkpoint(tmp_path / "run3" / "texture.pt", device="cpu")
    assert p.texture.cfg.scale == 2 and p.texture.cfg.frame_latent == 1
    a = p.sample(bmode, samples=2, seed=4)
    assert np.array_equal(a, p.sample(bmode, samples=2, seed=4)) and np.isfinite(a).all()
    assert np.isfinite(p.predict(big)[1]).all()


def p_seed(seed: int) -> int:
    from elastogan.predict import noise_seed

    return noise_seed(seed, 0)


def test_train_texture_mistakes_are_one_line_and_write_nothing(tmp_path, capsys):
    data = make_manifest(tmp_path / "data", size=(32, 32), splits={"train": 2, "val": 1})
    base = base_checkpoint(tmp_path / "base.pt")
    run = tmp_path / "run"
    cases = [
        (["--checkpoint", str(base), "--set", "train.samples=1"], "train.samples must be at least 2"),
        (["--checkpoint", str(base), "--set", "texture.colour=3"], "unknown key 'texture.colour'"),
        (["--checkpoint", str(tmp_path / "missing.pt")], "missing.pt"),
        (["--checkpoint", str(base), "--set", "texture.image_size=32", "--set", "train.crop=30"], "exceeds texture.image_size"),
        (["--checkpoint", str(base), "--set", "texture.image_size=32", "--set", "texture.layers=2", "--set", "texture.scale=2",
          "--set", "train.crop=11"], "not a multiple of texture.scale 2"),
        (["--checkpoint", str(base), "--set", "texture.image_size=32", "--set", "texture.scale=3"], "positive divisor"),
        (["--checkpoint", str(base), "--set", "texture.image_size=32", "--set", "texture.layers=2", "--set", "train.crop=12",
          "--set", "texture.frame_latent=1"], "2 frames are too few to encode 1 dimensions"),
    ]
    for extra, message in cases:
        code = main(["train-texture", "--data", str(data), "--out", str(run), *extra])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, (extra, err)
        assert not (run / "texture.pt").exists()


def test_bench_model_times_the_generator_with_its_texture_stage(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "model", "--models", "transunet-noise", "transunet-noise-texture", "--size", "256",
                 "--repeats", "1", "--warmup", "0", "--json", str(out)]) == 0
    rows = {r["model"]: r for r in json.loads(out.read_text())}
    stage_params = sum(p.numel() for p in ScannerTexture(TextureConfig()).parameters())
    assert rows["transunet-noise-texture"]["generator_params"] == rows["transunet-noise"]["generator_params"] + stage_params
    # the stage's convolutions at 256²: 3×3 kernels, 2 + 5 input maps → c, five c → c, c → 1
    c, k = TextureConfig().channels, 2 + 5
    gflops = 2 * 256 * 256 * 9 * (k * c + 5 * c * c + c) / 1e9
    extra = rows["transunet-noise-texture"]["gflops"] - rows["transunet-noise"]["gflops"]
    assert extra == pytest.approx(gflops, abs=0.02)
    # the coarse stage: its convolutions (2 + 5 + 2 position maps in, the streaks' gain out) at
    # 128², only the streaks' kernel at 256²
    assert main(["bench", "model", "--models", "transunet-noise", "transunet-noise-texture-coarse2", "--size", "256",
                 "--repeats", "1", "--warmup", "0", "--json", str(out)]) == 0
    rows = {r["model"]: r for r in json.loads(out.read_text())}
    coarse = 2 * 128 * 128 * 9 * ((k + 2) * c + 5 * c * c + 2 * c) / 1e9 + 2 * 256 * 256 * 9 * 3 / 1e9
    extra_coarse = rows["transunet-noise-texture-coarse2"]["gflops"] - rows["transunet-noise"]["gflops"]
    assert extra_coarse == pytest.approx(coarse, abs=0.02) and extra_coarse < 0.35 * extra


def test_pooled_crps_scores_masked_block_means():
    from elastogan.training.texture import pooled

    g = torch.Generator().manual_seed(0)
    draws, target = torch.rand(3, 2, 1, 8, 8, generator=g), torch.rand(2, 1, 8, 8, generator=g)
    mask = torch.ones(2, 1, 8, 8)
    mask[..., :4, :] = 0  # the top blocks undefined
    mask[..., 4, 0] = 0  # one pixel of a lower block undefined: its mean is over the other 15
    d, t, m = pooled(draws, target, mask, 4)
    assert d.shape == (3, 2, 1, 2, 2) and m[..., 0, :].sum() == 0 and m[..., 1, :].min() == 1
    keep = mask[0, 0, 4:, :4].bool()
    assert d[1, 0, 0, 1, 0].item() == pytest.approx(draws[1, 0, 0, 4:, :4][keep].mean().item(), abs=1e-6)
    assert t[0, 0, 1, 0].item() == pytest.approx(target[0, 0, 4:, :4][keep].mean().item(), abs=1e-6)
    with pytest.raises(ValueError, match="crps_pool"):
        TextureTrainConfig(crop=64, crps_pool=5)
