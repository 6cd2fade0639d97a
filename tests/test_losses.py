"""Loss terms on known inputs, and the torch display against the numpy one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elastogan.colormaps import COLORMAPS, get_colormap
from elastogan.display import blend
from elastogan.models import (
    LossConfig,
    adversarial_losses,
    blend_torch,
    colorize_torch,
    consistency_loss,
    hinge_d_loss,
    hinge_g_loss,
    lsgan_d_loss,
    lsgan_g_loss,
    masked_l1,
    ncc,
    ncc_loss,
    roi_mask,
    ssim_loss,
)


def test_lsgan_values():
    ones, zeros = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    assert lsgan_d_loss(ones, zeros).item() == 0.0  # perfect discriminator
    assert lsgan_d_loss(zeros, ones).item() == 1.0  # ½ (1 + 1)
    assert lsgan_d_loss(torch.full((3,), 0.5), torch.full((3,), 0.5)).item() == 0.25
    assert lsgan_g_loss(ones).item() == 0.0
    assert lsgan_g_loss(zeros).item() == 1.0
    assert lsgan_g_loss(torch.tensor([0.0, 2.0, 3.0])).item() == pytest.approx((1 + 1 + 4) / 3)


def test_hinge_values():
    assert hinge_d_loss(torch.full((5,), 1.5), torch.full((5,), -2.0)).item() == 0.0
    assert hinge_d_loss(torch.zeros(5), torch.zeros(5)).item() == 2.0
    assert hinge_d_loss(torch.tensor([0.5, 2.0]), torch.tensor([0.0, -1.0])).item() == pytest.approx(0.25 + 0.5)
    assert hinge_g_loss(torch.tensor([1.0, 3.0])).item() == -2.0


def test_adversarial_losses_by_name():
    assert adversarial_losses("lsgan") == (lsgan_d_loss, lsgan_g_loss)
    assert adversarial_losses("hinge") == (hinge_d_loss, hinge_g_loss)
    with pytest.raises(ValueError, match="'lsgan' or 'hinge', got 'wgan'"):
        adversarial_losses("wgan")


def test_masked_l1_values():
    pred = torch.zeros(1, 3, 2, 2)
    target = torch.ones(1, 3, 2, 2)
    target[..., 0, 0] = 5.0
    mask = torch.zeros(1, 1, 2, 2)
    mask[..., 1, :] = 1
    assert masked_l1(pred, target, mask).item() == 1.0  # the 5s lie outside the mask
    assert masked_l1(pred, target).item() == pytest.approx((3 * 5 + 9 * 1) / 12)
    assert masked_l1(pred, target, torch.zeros(1, 1, 2, 2)).item() == 0.0  # empty mask
    with pytest.raises(ValueError, match="one shape"):
        masked_l1(pred, target[:, :1])


def test_ncc_identities():
    torch.manual_seed(0)
    x = torch.rand(3, 1, 16, 12)
    assert ncc_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert ncc_loss(-x, x).item() == pytest.approx(2.0, abs=1e-6)
    # Affine changes with a positive gain keep NCC at 1.
    assert ncc(3 * x + 7, x) == pytest.approx(torch.ones(3), abs=1e-5)
    # A constant prediction has no correlation.
    assert ncc_loss(torch.full_like(x, 0.3), x).item() == pytest.approx(1.0)


def test_ncc_only_counts_the_mask_and_averages_per_sample():
    torch.manual_seed(0)
    target = torch.rand(2, 1, 8, 8)
    pred = target.clone()
    pred[0, :, :, 4:] = torch.rand(8, 4)  # garbage outside the mask of sample 0
    pred[1] = -target[1]
    mask = torch.ones(2, 1, 8, 8)
    mask[0, :, :, 4:] = 0
    per_sample = ncc(pred, target, mask)
    assert per_sample.tolist() == pytest.approx([1.0, -1.0], abs=1e-5)
    assert ncc_loss(pred, target, mask).item() == pytest.approx((0.0 + 2.0) / 2, abs=1e-5)


def test_ncc_matches_numpy_formula():
    rng = np.random.default_rng(1)
    s, t = rng.random((10, 10)), rng.random((10, 10))
    ref = ((s - s.mean()) * (t - t.mean())).sum() / np.sqrt(((s - s.mean()) ** 2).sum() * ((t - t.mean()) ** 2).sum())
    got = ncc(torch.tensor(s)[None, None], torch.tensor(t)[None, None]).item()
    assert got == pytest.approx(ref, abs=1e-12)


def test_ssim_values():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 24, 24)
    assert ssim_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    worse = ssim_loss(x, torch.rand(2, 1, 24, 24)).item()
    assert 0.5 < worse < 1.5
    # Two constant images a, b: SSIM = (2ab + C1) / (a² + b² + C1) everywhere (zero padding
    # aside, so compare the centre via a mask).
    a = torch.full((1, 1, 24, 24), 0.2, dtype=torch.float64)
    b = torch.full((1, 1, 24, 24), 0.6, dtype=torch.float64)
    mask = torch.zeros(1, 1, 24, 24, dtype=torch.float64)
    mask[..., 6:18, 6:18] = 1
    c1 = 0.01**2
    assert ssim_loss(a, b, mask).item() == pytest.approx(1 - (2 * 0.2 * 0.6 + c1) / (0.04 + 0.36 + c1), rel=1e-9)
    with pytest.raises(ValueError, match="window must be odd"):
        ssim_loss(x, x, window=4)


def test_ssim_matches_skimage_inside_the_valid_interior():
    """Away from the zero padding (5 px for the 11-px window) the SSIM map is skimage's, so the
    masked mean equals its mean SSIM over the interior and its map averaged over any mask there."""
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(3)
    p = rng.random((40, 52))
    t = np.clip(p + rng.normal(0, 0.2, p.shape), 0, 1)  # correlated, so SSIM is far from 0 and 1
    _, ref_map = structural_similarity(p, t, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       data_range=1.0, full=True)
    interior = np.zeros(p.shape, bool)
    interior[5:-5, 5:-5] = True
    lesion = interior & (rng.random(p.shape) < 0.3)
    tp, tt = (torch.tensor(a)[None, None] for a in (p, t))
    for mask in (interior, lesion):
        got = 1 - ssim_loss(tp, tt, torch.tensor(mask, dtype=torch.float64)[None, None], data_range=1.0).item()
        assert got == pytest.approx(ref_map[mask].mean(), abs=1e-6)
    assert 0.2 < ref_map[interior].mean() < 0.9
    # skimage's own mean SSIM is the mean over that interior
    mssim = structural_similarity(p, t, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
    assert 1 - ssim_loss(tp, tt, torch.tensor(interior, dtype=torch.float64)[None, None]).item() == pytest.approx(mssim, abs=1e-6)
    # data_range scales C1 and C2: images on 0..255 with data_range 255 score as on 0..1
    mssim255 = structural_similarity(255 * p, 255 * t, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255.0)
    got255 = 1 - ssim_loss(255 * tp, 255 * tt, torch.tensor(interior, dtype=torch.float64)[None, None], data_range=255.0).item()
    assert got255 == pytest.approx(mssim255, abs=1e-6) and mssim255 == pytest.approx(mssim, abs=1e-9)


def test_colorize_torch_interpolates_the_lut():
    lut = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.5, 0.0], [1.0, 1.0, 1.0]])
    s = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0, 1.5, -1.0]).reshape(1, 1, 1, 7)
    rgb = colorize_torch(s, lut)[0, :, 0].T
    expected = [[0, 0, 0], [0.5, 0.25, 0], [1, 0.5, 0], [1, 0.75, 0.5], [1, 1, 1], [1, 1, 1], [0, 0, 0]]
    assert torch.allclose(rgb, torch.tensor(expected, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"\(N ≥ 2, 3\)"):
        colorize_torch(s, lut[:1])
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        colorize_torch(s[0], lut)


@pytest.mark.parametrize("name", sorted(COLORMAPS))
def test_torch_display_matches_numpy_display(name):
    """colorize_torch + blend_torch reproduce Colormap.colorize + display.blend to 8-bit rounding."""
    rng = np.random.default_rng(0)
    h, w = 20, 30
    bmode = rng.integers(0, 256, (h, w), dtype=np.uint8)
    strain = rng.random((h, w)).astype(np.float32)
    rois, alphas = [(3, 2, 25, 17), (0, 0, 30, 20)], [0.4, 0.6]
    cmap = get_colormap(name)
    ref = np.stack([blend(bmode, cmap.colorize(strain), a, r) for a, r in zip(alphas, rois)]).astype(np.float64)

    b = torch.tensor(bmode, dtype=torch.float64)[None, None].expand(2, 1, h, w) / 255 * 2 - 1
    s = torch.tensor(strain, dtype=torch.float64)[None, None].expand(2, 1, h, w)
    out = blend_torch(b, colorize_torch(s, cmap.lut()), torch.tensor(alphas), torch.tensor(rois))
    got = ((out + 1) / 2 * 255).permute(0, 2, 3, 1).numpy()
    # 0.5 from numpy's rounding to uint8; the rest from its nearest-row lookup in a 1024-row
    # LUT, at most α·255·slope/2046 = 0.3 for α = 0.6 on Hitachi's steepest segments (slope 4).
    assert np.abs(got - ref).max() <= 0.5 + 0.3 + 1e-6
    # Outside the ROI both are the grey B-mode exactly.
    outside = ~roi_mask(torch.tensor(rois), h, w)[:, 0].bool().numpy()
    assert np.abs(got[outside] - ref[outside]).max() < 1e-9


def test_roi_mask_boxes_are_end_exclusive_per_sample():
    m = roi_mask(torch.tensor([[1, 2, 3, 4], [0, 0, 5, 1]]), 5, 5)
    assert m.shape == (2, 1, 5, 5)
    assert m[0, 0].nonzero().tolist() == [[2, 1], [2, 2], [3, 1], [3, 2]]
    assert m[1, 0].sum() == 5 and m[1, 0, 0].sum() == 5


def test_consistency_loss_is_zero_for_a_consistent_pair_and_reaches_both_heads():
    torch.manual_seed(0)
    lut = torch.tensor(get_colormap("hitachi").lut())
    bmode = torch.rand(2, 1, 16, 16) * 2 - 1
    strain = torch.rand(2, 1, 16, 16)
    alpha, roi = torch.tensor([0.5, 0.4]), torch.tensor([[2, 2, 12, 14], [0, 4, 16, 16]])
    emode = blend_torch(bmode, colorize_torch(strain, lut), alpha, roi)
    assert consistency_loss(strain, emode, bmode, alpha, roi, lut).item() == pytest.approx(0.0, abs=1e-7)

    strain_p = torch.rand(2, 1, 16, 16, requires_grad=True)
    emode_p = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_()
    loss = consistency_loss(strain_p, emode_p, bmode, alpha, roi, lut)
    assert loss.item() > 0
    loss.backward()
    assert strain_p.grad.abs().sum() > 0 and emode_p.grad.abs().sum() > 0
    # Strain outside the ROI is not displayed, so it gets no gradient.
    assert strain_p.grad[0, 0, 0, 0] == 0


@pytest.mark.parametrize(
    "kw, message",
    [(dict(adv="wgan"), "loss.adv must be one of lsgan, hinge, got 'wgan'"), (dict(l1_strain=-1.0), "loss.l1_strain")],
)
def test_loss_config_bad_values(kw, message):
    with pytest.raises(ValueError, match=message):
        LossConfig(**kw)
