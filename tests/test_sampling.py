"""A generator that samples: noise inputs, seeded draws, moment reconstruction, realism switches."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from elastogan.models import losses
from elastogan.models.config import LossConfig, ModelConfig
from elastogan.models.discriminators import MultiScalePatchGAN, PatchGAN
from elastogan.models.generator import TransUNet
from elastogan.models.registry import build_discriminators, build_generator
from elastogan.predict import Predictor, noise_seed
from elastogan.training.config import CONFIG_DIR, load_config
from elastogan.training.trainer import build_nets, generator_terms, repeat_batch, train
from elastogan.uncertainty import sd_png, strain_ratio_interval, summarise_samples

sys.path.insert(0, str(Path(__file__).parent))
from tiny_manifest import make_manifest  # noqa: E402

SMALL = dict(base_channels=4, max_channels=16, num_levels=2, embed_dim=16, transformer_depth=1, num_heads=2, norm_groups=2)


def noisy_generator(**kw) -> TransUNet:
    torch.manual_seed(0)
    return TransUNet(**SMALL, noise=True, noise_init=0.5, **kw).eval()


def test_noise_seeds_make_draws_reproducible_and_independent_of_the_batch():
    g = noisy_generator()
    x = torch.rand(1, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        a = g(x, noise_seeds=[7])["strain"]
        b = g(x, noise_seeds=[7])["strain"]
        c = g(x, noise_seeds=[8])["strain"]
        batch = g(x.repeat(3, 1, 1, 1), noise_seeds=[1, 7, 8])["strain"]
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3  # another seed, another draw
    torch.testing.assert_close(batch[1:2], a, rtol=0, atol=1e-6)  # draw of seed 7, whatever its batch
    torch.testing.assert_close(batch[2:3], c, rtol=0, atol=1e-6)


def test_a_generator_without_noise_ignores_seeds():
    torch.manual_seed(0)
    g = TransUNet(**SMALL).eval()
    x = torch.rand(2, 1, 16, 16)
    assert g.stochastic is False and g.noise is None
    with torch.no_grad():
        assert torch.equal(g(x, noise_seeds=[1, 2])["strain"], g(x)["strain"])
    p2p = build_generator(ModelConfig(name="pix2pix", unet_channels=4, unet_levels=5)).eval()
    x = torch.rand(2, 1, 32, 32)
    assert p2p.stochastic is False
    with torch.no_grad():
        assert torch.equal(p2p(x, noise_seeds=[1, 2])["strain"], p2p(x)["strain"])


def test_noise_strength_zero_is_the_deterministic_network():
    g = noisy_generator()
    with torch.no_grad():
        for inj in g.noise:
            inj.strength.zero_()
        x = torch.rand(1, 1, 16, 16)
        assert torch.equal(g(x, noise_seeds=[1])["strain"], g(x, noise_seeds=[2])["strain"])


def test_generator_checks_the_seed_count():
    g = noisy_generator()
    with pytest.raises(ValueError, match="one noise seed per batch element"):
        g(torch.zeros(2, 1, 16, 16), noise_seeds=[1])


def predictor(noise: bool) -> Predictor:
    cfg = ModelConfig(**SMALL, noise=noise, noise_init=0.5)
    torch.manual_seed(0)
    return Predictor(build_generator(cfg), cfg, input_size=None, device="cpu")


def test_predictor_samples_first_draw_is_predict_and_seeds_reproduce():
    p = predictor(noise=True)
    rng = np.random.default_rng(0)
    bmode = rng.integers(0, 256, (20, 24), dtype=np.uint8)
    roi = (2, 3, 20, 18)
    draws = p.sample(bmode, samples=5, seed=3, roi=roi, batch_size=2)
    assert draws.shape == (5, 20, 24) and p.stochastic
    _, one = p.predict(bmode, roi=roi, seed=3)
    np.testing.assert_allclose(draws[0], one, rtol=0, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(draws, p.sample(bmode, samples=5, seed=3, roi=roi, batch_size=2))
    # another batching: the same draws up to float rounding of batched convolutions
    np.testing.assert_allclose(draws, p.sample(bmode, samples=5, seed=3, roi=roi, batch_size=5), rtol=0, atol=1e-5)
    assert np.isnan(draws[:, 0, 0]).all() and np.isfinite(draws[:, 3:18, 2:20]).all()
    inside = draws[:, 3:18, 2:20]
    assert inside.std(axis=0).mean() > 1e-3  # the draws differ
    other = p.sample(bmode, samples=2, seed=4, roi=roi)
    assert np.abs(other[0] - draws[0])[3:18, 2:20].max() > 1e-3


def test_a_deterministic_model_gives_equal_draws_and_zero_sd():
    p = predictor(noise=False)
    bmode = np.random.default_rng(1).integers(0, 256, (16, 16), dtype=np.uint8)
    draws = p.sample(bmode, samples=3, seed=0)
    assert not p.stochastic
    assert np.array_equal(draws[0], draws[2])
    assert float(summarise_samples(draws).sd.max()) == 0.0


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_sample_count_is_checked(bad):
    with pytest.raises(ValueError, match="samples must be a positive integer"):
        predictor(noise=True).sample(np.zeros((16, 16), np.uint8), samples=bad)


def test_negative_seed_is_refused():
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        predictor(noise=True).predict(np.zeros((16, 16), np.uint8), seed=-1)


def test_noise_seed_hash_separates_seeds_and_draws():
    seeds = {noise_seed(s, k) for s in range(20) for k in range(20)}
    assert len(seeds) == 400
    assert noise_seed(3, 1) == noise_seed(3, 1)


# ---- training: moment reconstruction, the realism switches ----------------------------------


def test_reconstruction_terms_score_the_mean_of_the_draws():
    """With K draws, L1 is taken on their mean (so noise that averages out costs nothing)."""
    cfg = load_config(CONFIG_DIR / "tiny.yaml", [
        "loss.recon_samples=2", "loss.l1_emode=0", "loss.ncc_strain=0", "loss.adv_emode=0", "loss.adv_strain=0",
    ])
    nets = build_nets(cfg, torch.device("cpu"))
    target = torch.full((1, 1, 4, 4), 0.5)
    batch = repeat_batch({"bmode": torch.zeros(1, 1, 4, 4), "strain": target, "strain_mask": torch.ones(1, 1, 4, 4),
                          "emode": torch.zeros(1, 3, 4, 4)}, 2)
    out = {"strain": torch.cat([torch.full((1, 1, 4, 4), 0.2), torch.full((1, 1, 4, 4), 0.8)]),
           "emode": torch.zeros(2, 3, 4, 4)}
    terms = generator_terms(cfg, nets, batch, out, lut=torch.zeros(2, 3))
    assert terms["l1_strain"].item() == pytest.approx(0.0, abs=1e-7)  # mean 0.5 = target
    cfg1 = load_config(CONFIG_DIR / "tiny.yaml", ["loss.l1_emode=0", "loss.ncc_strain=0", "loss.adv_emode=0", "loss.adv_strain=0"])
    one = generator_terms(cfg1, nets, batch, out, lut=torch.zeros(2, 3))  # K = 1: each draw on its own
    assert one["l1_strain"].item() == pytest.approx(0.3, abs=1e-6)


def test_spectral_loss_is_phase_free_and_sees_blur():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 32, 32)
    shifted = torch.roll(x, shifts=(5, 9), dims=(-2, -1))  # same texture, other speckle positions
    assert losses.spectral_loss(shifted, x).item() == pytest.approx(0.0, abs=1e-5)
    assert losses.spectral_loss(x + 0.7, x).item() == pytest.approx(0.0, abs=1e-6)
    kernel = torch.ones(1, 1, 5, 5) / 25
    blurred = torch.nn.functional.conv2d(x, kernel, padding=2)
    assert losses.spectral_loss(blurred, x).item() > 1.0  # fine texture gone: log power far below
    # a pure sinusoid puts its power in the ring of its frequency (8 cycles over 32 px: 0.25)
    yy = torch.arange(32.0)[:, None].expand(32, 32)
    ring = losses.band_power(torch.sin(2 * torch.pi * 0.25 * yy)[None, None], bands=8)[0, 0]
    assert int(ring.argmax()) == 4 and ring[4] > 0.99 * ring.sum()


def test_feature_matching_and_scale_averaging_exact_values():
    a = [torch.zeros(1, 2, 2, 2), torch.ones(1, 1, 1, 1)]
    b = [torch.ones(1, 2, 2, 2), torch.ones(1, 1, 1, 1)]
    assert losses.feature_matching_loss(a, b).item() == pytest.approx(0.5)
    real = [torch.ones(1, 1, 2, 2), torch.full((1, 1, 1, 1), 0.0)]
    fake = [torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 1, 1)]
    # scale 1: ½(0 + 0) = 0; scale 2: ½((0 − 1)² + 0) = 0.5 → mean 0.25
    assert losses.over_scales(losses.lsgan_d_loss, real, fake).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="equally long"):
        losses.feature_matching_loss(a, b[:1])


def test_multiscale_discriminator_with_one_scale_keeps_patchgan_parameter_names():
    torch.manual_seed(0)
    single = PatchGAN(in_channels=2, channels=4, num_layers=2)
    multi = MultiScalePatchGAN(in_channels=2, channels=4, num_layers=2, scales=1)
    assert list(single.state_dict()) == list(multi.state_dict())
    multi.load_state_dict(single.state_dict())
    x = torch.rand(1, 2, 64, 64)
    assert torch.equal(single(x), multi(x))
    three = MultiScalePatchGAN(in_channels=2, channels=4, num_layers=2, scales=3)
    assert [tuple(s.shape[-2:]) for s in three(x)] == [(14, 14), (6, 6), (2, 2)]
    assert len(three.features(x)) == 3 * len(single.features(x))


def test_spectral_norm_bounds_each_convolution():
    torch.manual_seed(0)
    ds = build_discriminators(ModelConfig(disc_channels=4, disc_layers=2, disc_spectral_norm=True))
    convs = [m for m in ds.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    for _ in range(20):  # power iterations converge in training mode
        for d in ds.values():
            d(torch.rand(1, d.in_channels, 32, 32))
    w = convs[0].weight.detach().reshape(convs[0].weight.shape[0], -1)
    assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("bad, match", [
    (dict(name="pix2pix", noise=True), "model.noise is a TransUNet option"),
    (dict(noise_init=-0.1), "noise_init"),
    (dict(disc_scales=0), "disc_scales"),
])
def test_model_config_checks_the_new_switches(bad, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**bad)


@pytest.mark.parametrize("bad", [0, 1.5, True])
def test_loss_config_checks_recon_samples(bad):
    with pytest.raises(ValueError, match="recon_samples"):
        LossConfig(recon_samples=bad)


def test_training_with_every_realism_switch_runs_and_learns_to_sample(tmp_path):
    data = make_manifest(tmp_path / "data")
    cfg = load_config(CONFIG_DIR / "tiny.yaml", [
        "model.base_channels=4", "model.max_channels=16", "model.num_levels=2", "model.embed_dim=16",
        "model.transformer_depth=1", "model.num_heads=2", "model.norm_groups=2", "model.disc_channels=4",
        "model.disc_layers=1", "model.noise=true", "model.disc_scales=2", "model.disc_spectral_norm=true",
        "model.lesion_discriminator=true", "model.lesion_crop=16", "loss.adv_lesion=1.0",
        "loss.recon_samples=2", "loss.feature_matching=10", "loss.spectral=1", "loss.consistency=1",
        "optim.batch_size=2", "optim.steps=3", "data.image_size=32", "data.workers=0",
        "run.log_every=1", "run.val_every=3", "run.ckpt_every=3", "run.samples=1",
    ])
    last = train(cfg, data=data, out=tmp_path / "run", progress=False)
    import json
    rec = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    terms = {k for r in rec for k in r}
    assert {"spectral", "feature_matching", "adv_lesion", "adv_strain", "d_strain"} <= terms
    assert all(np.isfinite(v) for r in rec for v in r.values() if isinstance(v, float))
    p = Predictor.from_checkpoint(last, device="cpu")
    assert p.stochastic
    draws = p.sample(np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8), samples=3)
    assert draws.std(axis=0).mean() > 0


# ---- uncertainty summaries ------------------------------------------------------------------


def test_summaries_of_gaussian_draws_match_their_moments():
    rng = np.random.default_rng(0)
    draws = 0.5 + 0.1 * rng.standard_normal((4000, 3, 3))
    s = summarise_samples(draws, level=0.9)
    assert np.allclose(s.mean, 0.5, atol=0.01) and np.allclose(s.sd, 0.1, atol=0.005)
    assert np.allclose(s.hi - s.lo, 2 * 1.6449 * 0.1, atol=0.01)  # the normal 90 % interval
    with pytest.raises(ValueError, match="level"):
        summarise_samples(draws, level=1.0)
    with pytest.raises(ValueError, match="K×H×W"):
        summarise_samples(draws[0])


def test_strain_ratio_interval_and_sd_picture():
    lesion = np.zeros((40, 40), bool)
    lesion[15:25, 15:25] = True
    maps = np.stack([np.where(lesion, v, 1.0) for v in (0.5, 0.4, 0.25)])
    r = strain_ratio_interval(maps, lesion, (0, 0, 40, 40), level=0.9)
    assert r["samples"] == pytest.approx([2.0, 2.5, 4.0])
    assert r["lo"] < 2.5 < r["hi"] and r["value"] == pytest.approx(1 / ((0.5 + 0.4 + 0.25) / 3))
    pic = sd_png(np.full((64, 64), 0.1), (8, 8, 48, 56))
    assert pic.shape == (64, 64, 3) and pic.dtype == np.uint8
    inside = pic[30, 30].astype(int)
    assert inside[0] == inside[2] and inside[1] < inside[0]  # magenta: no hue of a strain colour map
    assert pic[60, 2].tolist() == [0, 0, 0]  # outside the ROI


@pytest.mark.parametrize("module", ["elastogan.uncertainty", "elastogan.models.losses", "elastogan.models.discriminators",
                                    "elastogan.training.texture"])
def test_docstring_examples_of_the_sampling_modules(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_spectral_sectors_tell_axial_from_lateral_texture():
    yy = torch.arange(32.0)[:, None].expand(32, 32)
    axial = torch.sin(2 * torch.pi * 0.25 * yy)[None, None]  # varies with depth
    lateral = axial.transpose(-1, -2)
    rings = losses.band_power(axial, bands=8, sectors=2)[0, 0]
    assert int(rings.argmax()) == 4  # ring 4 of the axial half
    assert int(losses.band_power(lateral, bands=8, sectors=2)[0, 0].argmax()) == 8 + 4  # lateral half
    # rings alone barely tell a map from its transpose (only the half-plane of the real FFT
    # differs between the axes); sectors do
    assert losses.spectral_loss(lateral, axial).item() < 0.1
    assert losses.spectral_loss(lateral, axial, sectors=2).item() > 1.0
    with pytest.raises(ValueError, match="sectors"):
        losses.band_power(axial, sectors=3)
