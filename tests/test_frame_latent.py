"""The texture stage's frame code (``texture.frame_latent``): the fixed encoder of the real
frames' texture (``elastogan.training.frame_latent``), the stage's use of the code, and a planted
learning test — frames whose amount of texture no input shows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.stats import spearmanr

from elastogan.models.generator import NoiseSource
from elastogan.models.texture import ScannerTexture, TextureConfig
from elastogan.sim.case import simulate_case
from elastogan.sim.config import SimConfig
from elastogan.sim.plan import make_plan
from elastogan.training.frame_latent import encode_frames, frame_statistics
from elastogan.training.texture import TextureTrainConfig, fit_step

BLURS = (0.0, 0.8, 1.6)


@pytest.fixture(scope="module")
def frames() -> tuple[np.ndarray, np.ndarray]:
    """Simulated scanner strain frames (NaN outside the ROI) and copies blurred by ``BLURS``:
    ``(N, H, W)`` frames and ``(N,)`` the blur of each."""
    cfg = SimConfig(size=64, fem_elements=32)
    out, blur = [], []
    for p in make_plan(10, 5):
        c = simulate_case(np.random.SeedSequence(p.tissue_seed), np.random.SeedSequence(p.acquisition_seed), cfg)
        x0, y0, x1, y1 = c.roi
        for sigma in BLURS:
            f = np.full(c.strain.shape, np.nan, np.float32)
            roi = c.strain[y0:y1, x0:x1].astype(np.float64)
            f[y0:y1, x0:x1] = ndimage.gaussian_filter(roi, sigma, mode="nearest") if sigma else roi
            out.append(f)
            blur.append(sigma)
    return np.stack(out), np.array(blur)


def test_the_first_code_ranks_frames_by_how_much_texture_they_show(frames):
    maps, blur = frames
    stats = frame_statistics(maps)
    assert stats.shape == (len(maps), 10) and np.isfinite(stats).all()
    codes = encode_frames(stats, 2)
    first = codes.codes[:, 0]
    # blurring takes texture away: the first code moves one way with it in every case
    per_case = first.reshape(-1, len(BLURS))
    direction = np.sign(per_case[:, -1] - per_case[:, 0])
    assert abs(direction.sum()) == len(per_case), per_case
    assert abs(spearmanr(first, blur).statistic) > 0.8
    assert codes.explained[0] > codes.explained[1] > 0 and codes.explained.sum() <= 1


def test_codes_are_standard_normal_by_rank_and_free_of_units_and_sign_conventions():
    rng = np.random.default_rng(3)
    latent = rng.normal(size=(400, 2))
    stats = np.c_[latent[:, 0], 2 * latent[:, 0] + 0.3 * rng.normal(size=400), latent[:, 1], 0.5 * rng.normal(size=400)]
    a = encode_frames(stats, 2)
    # each column: the normal scores of its ranks, unit sd, symmetric; columns uncorrelated
    assert np.allclose(np.sort(a.codes[:, 0]), np.sort(a.codes[:, 1]), atol=1e-6)
    assert abs(a.codes.mean()) < 1e-6 and np.allclose(a.codes.std(axis=0), 1.0, atol=1e-6)
    assert abs(np.corrcoef(a.codes.T)[0, 1]) < 0.1
    # the first component is the shared latent (it holds two of the four columns)
    assert abs(spearmanr(a.codes[:, 0], latent[:, 0]).statistic) > 0.95
    # statistics in other units, or negated, give the same codes (the sign is pinned to the loadings)
    b = encode_frames(stats * [10.0, 0.1, 3.0, 7.0] + [1.0, -2.0, 0.0, 5.0], 2)
    assert np.allclose(a.codes, b.codes, atol=1e-5)
    c = encode_frames(-stats, 2)
    assert np.allclose(np.abs(np.corrcoef(a.codes[:, 0], c.codes[:, 0])[0, 1]), 1.0, atol=1e-6)
    assert (np.abs(c.loadings).argmax(axis=1) == np.abs(a.loadings).argmax(axis=1)).all()
    assert (c.loadings[np.arange(2), np.abs(c.loadings).argmax(axis=1)] > 0).all()


@pytest.mark.parametrize("shape, dims, match", [((10, 4), 5, "dims"), ((10, 4), 0, "dims"), ((4, 4), 2, "too few"),
                                                ((10,), 1, "expected")])
def test_encoding_mistakes_are_named(shape, dims, match):
    with pytest.raises(ValueError, match=match):
        encode_frames(np.ones(shape), dims)


def test_the_stage_reads_one_code_per_frame_and_draws_it_at_inference():
    torch.manual_seed(0)
    s = ScannerTexture(TextureConfig(image_size=32, channels=6, layers=2, frame_latent=2)).eval()
    assert s.convs[0].in_channels == 2 + 5 + 2
    with torch.no_grad():
        s.out.weight.normal_(0, 0.05)
        b, m = torch.zeros(2, 1, 32, 32), torch.full((2, 1, 32, 32), 0.5)
        one = s(b, m, noise_seeds=[1, 2])
        assert torch.equal(one, s(b, m, noise_seeds=[1, 2]))  # the drawn code is seeded
        assert torch.allclose(one[1:], s(b[1:], m[1:], noise_seeds=[2]), atol=1e-6)  # and independent of the batch
        given = torch.tensor([[2.0, -1.0], [2.0, -1.0]])
        fixed = s(b, m, noise_seeds=[1, 2], latent=given)
        assert not torch.equal(fixed, one)
        assert not torch.equal(fixed, s(b, m, noise_seeds=[1, 2], latent=-given))
        with pytest.raises(ValueError, match="latent"):
            s(b, m, latent=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="frame_latent"):
        TextureConfig(frame_latent=9)


def test_latent_scale_draws_the_code_that_many_times_wider():
    """With no other noise, a stage at ``latent_scale`` 2 draws exactly what the same weights draw
    when handed twice the code its noise source gives at scale 1."""
    torch.manual_seed(0)
    cfg = dict(image_size=32, channels=6, layers=2, frame_latent=2, input_noise=False, noise_init=0.0)
    one = ScannerTexture(TextureConfig(**cfg)).eval()
    two = ScannerTexture(TextureConfig(**cfg, latent_scale=2.0)).eval()
    with torch.no_grad():
        one.out.weight.normal_(0, 0.05)
        two.load_state_dict(one.state_dict())
        b, m = torch.zeros(2, 1, 32, 32), torch.full((2, 1, 32, 32), 0.5)
        src = NoiseSource(2, [5, 6])
        code = torch.cat([src.draw(b[:, :, :1, :1]) for _ in range(2)], dim=1).view(2, 2)
        assert torch.allclose(one(b, m, noise_seeds=[5, 6]), one(b, m, latent=code), atol=1e-6)
        assert torch.allclose(two(b, m, noise_seeds=[5, 6]), one(b, m, latent=2 * code), atol=1e-6)
        assert not torch.allclose(two(b, m, noise_seeds=[5, 6]), one(b, m, latent=code), atol=1e-4)
    with pytest.raises(ValueError, match="latent_scale"):
        TextureConfig(frame_latent=1, latent_scale=0.0)


def test_latent_gain_starts_at_one_and_scales_the_texture_by_exp_a_z():
    torch.manual_seed(0)
    cfg = dict(image_size=32, channels=6, layers=2, frame_latent=2, streaks=True)
    plain = ScannerTexture(TextureConfig(**cfg)).eval()
    gained = ScannerTexture(TextureConfig(**cfg, latent_gain=True)).eval()
    with torch.no_grad():
        plain.out.weight.normal_(0, 0.02)
        plain.streak_gain.bias.fill_(0.01)
        missing = gained.load_state_dict(plain.state_dict(), strict=False).missing_keys
        assert sorted(missing) == ["gain.bias", "gain.weight"]
        b, m = torch.zeros(3, 1, 32, 32), torch.full((3, 1, 32, 32), 0.5)
        # untrained, the gain is 1: the same draws as without it
        assert torch.equal(gained(b, m, noise_seeds=[1, 2, 3]), plain(b, m, noise_seeds=[1, 2, 3]))
        # the code reaches the texture through the gain alone once the first layer ignores it
        gained.convs[0].weight[:, -2:] = 0
        gained.gain.weight.copy_(torch.tensor([[0.5, 0.0], [0.0, -1.0]]))
        z = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        out = gained(b, m, noise_seeds=[4, 4, 4], latent=z) - m
    # residual and streaks: frame 1 has the residual gained by e^0.5, frame 2 the streaks by e^-1;
    # their sum at a pixel is r + s, so frame 1 − frame 0 = (e^0.5 − 1) r and frame 2 − frame 0 = (e^-1 − 1) s
    r = (out[1] - out[0]) / (np.exp(0.5) - 1)
    sk = (out[2] - out[0]) / (np.exp(-1.0) - 1)
    assert torch.allclose(r + sk, out[0], atol=1e-5)
    assert r.abs().max() > 1e-3 and sk.abs().max() > 1e-3
    with pytest.raises(ValueError, match="needs texture.frame_latent"):
        TextureConfig(latent_gain=True)


@pytest.mark.parametrize("gain", [False, True])
def test_training_with_the_codes_teaches_each_code_its_amount_of_texture(gain):
    """Planted: each frame is noisy (sd 0.12) or clean (sd 0.01) at random, and nothing the stage
    sees tells which — but its code does. Trained with the codes, the stage draws noisy maps for
    a noisy frame's code and clean ones for a clean frame's; drawn from the prior, its draws vary
    from frame to frame as the frames do."""
    torch.manual_seed(0)
    s = ScannerTexture(TextureConfig(image_size=32, channels=8, layers=2, frame_latent=1, input_noise=False,
                                     latent_gain=gain))
    opt = torch.optim.Adam(s.parameters(), lr=3e-3)
    cfg = TextureTrainConfig(samples=4, crop=16, crps=100.0, spectral=0.0, stats=0.0)
    margin, side, batch = 3, 22, 8
    bmode, gen = torch.zeros(batch, 1, side, side), torch.full((4 * batch, 1, side, side), 0.5)
    for _ in range(300):
        noisy = torch.rand(batch) < 0.5
        real = 0.5 + torch.where(noisy, 0.12, 0.01).view(-1, 1, 1, 1) * torch.randn(batch, 1, side, side)
        code = torch.where(noisy, 0.8, -0.8).view(-1, 1)  # the normal scores of a 50/50 split
        fit_step(s, opt, bmode, gen, real, cfg, margin, latent=code)
    with pytest.raises(ValueError, match="frame codes"):
        fit_step(s, opt, bmode, gen, real, cfg, margin)
    s.eval()
    inner = (slice(None), 0, slice(margin, -margin), slice(margin, -margin))
    with torch.no_grad():
        sd = {}
        for name, c in (("noisy", 0.8), ("clean", -0.8)):
            d = s(bmode[:1].repeat(32, 1, 1, 1), gen[:32], noise_seeds=list(range(32)), latent=torch.full((32, 1), c))
            sd[name] = d[inner].std(dim=(-2, -1)).mean().item()
        prior = s(bmode[:1].repeat(64, 1, 1, 1), gen[:1].repeat(64, 1, 1, 1), noise_seeds=list(range(64)))
    assert 0.07 < sd["noisy"] < 0.17 and sd["clean"] < 0.04, sd
    per_draw = prior[inner].std(dim=(-2, -1))
    # drawn from N(0, 1), about half the codes lie on either side: some draws noisy, some clean
    assert (per_draw > 0.07).float().mean() > 0.2 and (per_draw < 0.04).float().mean() > 0.2, per_draw
