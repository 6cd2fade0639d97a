"""Loss terms, as pure functions of tensors; the weights come from ``LossConfig``.

Discriminator outputs are raw scores (logits), any shape. Masks are ``(B, 1, H, W)`` with 1
where a pixel counts (``strain_mask`` of the dataset: inside the ROI) and broadcast over
channels. Every term returns a scalar, the mean over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from elastogan.models.colorize import blend_torch, colorize_torch

EPS = 1e-8  # keeps divisions finite for empty masks and constant images


def lsgan_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """Least-squares GAN discriminator loss (Mao et al. 2017, as pix2pix uses it).

    ``L_D = ½ [ mean((D(real) − 1)²) + mean(D(fake)²) ]``; 0 for a perfect discriminator
    (``D(real) = 1``, ``D(fake) = 0``).
    """
    return 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean())


def lsgan_g_loss(fake: Tensor) -> Tensor:
    """Least-squares GAN generator loss: ``L_G = mean((D(fake) − 1)²)``."""
    return (fake - 1).pow(2).mean()


def hinge_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """Hinge discriminator loss (Lim & Ye 2017; SAGAN).

    ``L_D = mean(relu(1 − D(real))) + mean(relu(1 + D(fake)))``; 0 once ``D(real) ≥ 1`` and
    ``D(fake) ≤ −1``, 2 when D outputs 0 everywhere.
    """
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_g_loss(fake: Tensor) -> Tensor:
    """Hinge generator loss: ``L_G = −mean(D(fake))``."""
    return -fake.mean()


def adversarial_losses(kind: str) -> tuple:
    """``(d_loss, g_loss)`` for ``kind`` ``"lsgan"`` or ``"hinge"`` (``LossConfig.adv``)."""
    if kind == "lsgan":
        return lsgan_d_loss, lsgan_g_loss
    if kind == "hinge":
        return hinge_d_loss, hinge_g_loss
    raise ValueError(f"adversarial loss must be 'lsgan' or 'hinge', got {kind!r}")


def masked_l1(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean absolute error over the masked pixels.

    ``L = Σ m |p − t| / (C · Σ m)`` over all samples, channels ``C`` and pixels; the plain
    mean when ``mask`` is ``None``; 0 for an empty mask.

    Args:
        pred, target: ``(B, C, H, W)``.
        mask: ``(B, 1, H, W)`` in {0, 1}, or ``None``.
    """
    if pred.shape != target.shape:
        raise ValueError(f"expected pred and target of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    err = (pred - target).abs()
    if mask is None:
        return err.mean()
    return (err * mask).sum() / (pred.shape[1] * mask.sum()).clamp_min(EPS)


def ncc(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Zero-mean normalised cross-correlation per sample over the mask, shape ``(B,)``.

    With ``x̄ = Σ m x / Σ m``:
    ``NCC = Σ m (p − p̄)(t − t̄) / sqrt(Σ m (p − p̄)² · Σ m (t − t̄)²)`` (DESIGN §5, the
    reference paper's Fig. 5), summed over channels and pixels. 0 when either side is
    constant on the mask.
    """
    if pred.shape != target.shape:
        raise ValueError(f"expected pred and target of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if mask is None:
        mask = torch.ones_like(pred[:, :1])
    mask = mask.expand_as(pred)
    dims = tuple(range(1, pred.ndim))
    count = mask.sum(dims, keepdim=True).clamp_min(EPS)
    p = (pred - (pred * mask).sum(dims, keepdim=True) / count) * mask
    t = (target - (target * mask).sum(dims, keepdim=True) / count) * mask
    return (p * t).sum(dims) / ((p * p).sum(dims) * (t * t).sum(dims)).sqrt().clamp_min(EPS)


def ncc_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """``L = mean_b (1 − NCC_b)`` (see ``ncc``): 0 for ``pred = target``, 2 for ``pred = −target``.

    Example:
        >>> x = torch.rand(2, 1, 8, 8)
        >>> round(ncc_loss(x, x).item(), 6), round(ncc_loss(-x, x).item(), 6)
        (0.0, 2.0)
    """
    return (1 - ncc(pred, target, mask)).mean()


def _gaussian_window(size: int, sigma: float, channels: int, like: Tensor) -> Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-coords.pow(2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_loss(
    pred: Tensor,
    target: Tensor,
    mask: Tensor | None = None,
    *,
    data_range: float = 1.0,
    window: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    """``1 − SSIM`` (Wang et al. 2004) with a Gaussian window, averaged over the mask.

    ``SSIM = (2 μ_p μ_t + C1)(2 σ_pt + C2) / ((μ_p² + μ_t² + C1)(σ_p² + σ_t² + C2))`` with local
    Gaussian-weighted moments, ``C1 = (k1 L)²``, ``C2 = (k2 L)²`` and ``L = data_range``;
    0 for ``pred = target``. Windows are zero-padded at the border.

    Args:
        pred, target: ``(B, C, H, W)``.
        mask: ``(B, 1, H, W)`` weights of the SSIM map, or ``None`` for the plain mean.
        data_range: value range ``L`` of the images (1 for strain in [0, 1]). Default 1.0.
        window: Gaussian window side (odd). Default 11.
        sigma: Gaussian window σ in pixels. Default 1.5.
        k1, k2: stabilising constants. Defaults 0.01, 0.03.
    """
    if pred.shape != target.shape:
        raise ValueError(f"expected pred and target of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if window % 2 == 0:
        raise ValueError(f"window must be odd, got {window}")
    c = pred.shape[1]
    kernel = _gaussian_window(window, sigma, c, pred)

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, kernel, padding=window // 2, groups=c)

    mu_p, mu_t = blur(pred), blur(target)
    var_p = blur(pred * pred) - mu_p.pow(2)
    var_t = blur(target * target) - mu_t.pow(2)
    cov = blur(pred * target) - mu_p * mu_t
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p.pow(2) + mu_t.pow(2) + c1) * (var_p + var_t + c2))
    if mask is None:
        return 1 - ssim_map.mean()
    mask = mask.expand_as(ssim_map)
    return 1 - (ssim_map * mask).sum() / mask.sum().clamp_min(EPS)


def consistency_loss(
    strain_pred: Tensor,
    emode_pred: Tensor,
    bmode: Tensor,
    alpha: Tensor | float,
    roi: Tensor,
    lut: Tensor,
) -> Tensor:
    """The E-mode head must be what the scanner would draw from the strain head.

    ``L = mean |blend(B, colorize(s), α, roi) − E|`` with ``colorize`` = ``colorize_torch``
    (linear interpolation in ``lut``) and ``blend`` = ``blend_torch`` (``(1 − α) B + α C``
    inside the ROI, B-mode outside), all in [-1, 1]. Gradients reach both heads.

    Args:
        strain_pred: ``(B, 1, H, W)`` in [0, 1].
        emode_pred: ``(B, 3, H, W)`` in [-1, 1].
        bmode: ``(B, 1, H, W)`` in [-1, 1] (the input).
        alpha: colour opacity, float or ``(B,)`` (the dataset's ``alpha``).
        roi: ``(B, 4)`` ROI boxes (the dataset's ``roi``).
        lut: ``(N, 3)`` RGB in [0, 1] of the data's colour map.
    """
    rendered = blend_torch(bmode, colorize_torch(strain_pred, lut), alpha, roi)
    return masked_l1(rendered, emode_pred)


def over_scales(loss, *scores: Tensor | list[Tensor]) -> Tensor:
    """``loss`` averaged over the scales of a multi-scale discriminator.

    Each of ``scores`` is one score map (a single-scale discriminator) or a list with one map
    per scale (``MultiScalePatchGAN``); ``loss`` takes one map of each.

    Example:
        >>> real, fake = [torch.ones(1, 1, 2, 2)] * 2, [torch.zeros(1, 1, 2, 2)] * 2
        >>> over_scales(lsgan_d_loss, real, fake).item()
        0.0
    """
    if not isinstance(scores[0], (list, tuple)):
        return loss(*scores)
    per_scale = list(zip(*scores))
    return sum(loss(*s) for s in per_scale) / len(per_scale)


def feature_matching_loss(fake: list[Tensor], real: list[Tensor]) -> Tensor:
    """pix2pixHD's feature matching: ``L = mean_l mean |F_l(fake) − F_l(real)|``.

    ``fake`` and ``real`` are a discriminator's intermediate feature maps (``features``) of the
    generated and the real image; the real ones carry no gradient. 0 when they are equal.
    """
    if len(fake) != len(real) or not fake:
        raise ValueError(f"expected two equally long, non-empty lists of feature maps, got {len(fake)} and {len(real)}")
    return sum((f - r.detach()).abs().mean() for f, r in zip(fake, real)) / len(fake)


def band_power(x: Tensor, mask: Tensor | None = None, bands: int = 16, sectors: int = 1) -> Tensor:
    """Radially averaged power spectrum of ``m · (x − x̄)`` in ``bands`` rings, ``(B, C, sectors · bands)``.

    ``x̄`` is the mean over the mask; the power is ``|FFT2|²`` (orthonormal), averaged over the
    frequencies whose radius ``√(f_y² + f_x²)`` (cycles per pixel) falls in each of ``bands``
    equal rings from 0 to 0.5; the corners beyond 0.5 join the last ring, the mean (DC) is left
    out. Removing the mean inside the mask and zeroing outside it makes the spectrum describe
    the texture within the ROI; the ROI's own edges are the same for a generated and a real
    map of one case, so they cancel in ``spectral_loss``.

    ``sectors`` 2 splits every ring into its axial half (``|f_y| ≥ |f_x|``: texture that varies
    with depth, such as a scanner's tracking streaks) and its lateral half, ring by ring.
    """
    if bands < 1:
        raise ValueError(f"bands must be at least 1, got {bands}")
    if sectors not in (1, 2):
        raise ValueError(f"sectors must be 1 or 2, got {sectors}")
    if mask is None:
        mask = torch.ones_like(x[:, :1])
    mask = mask.expand_as(x)
    dims = (-2, -1)
    mean = (x * mask).sum(dims, keepdim=True) / mask.sum(dims, keepdim=True).clamp_min(EPS)
    power = torch.fft.rfft2(((x - mean) * mask).float(), norm="ortho").abs().pow(2)  # (b, c, h, w//2+1)
    h, w = x.shape[-2:]
    fy = torch.fft.fftfreq(h, device=x.device)[:, None]
    fx = torch.fft.rfftfreq(w, device=x.device)[None, :]
    radius = (fy.pow(2) + fx.pow(2)).sqrt()
    ring = (radius / 0.5 * bands).long().clamp(max=bands - 1)  # (h, w//2+1)
    if sectors == 2:
        ring = ring + bands * (fy.abs() < fx.abs()).long()  # lateral halves after the axial ones
    ring = torch.where(radius > 0, ring, torch.full_like(ring, -1))  # DC in no ring
    onehot = torch.stack([(ring == k).float() for k in range(sectors * bands)])  # (sectors·bands, h, w//2+1)
    counts = onehot.sum(dims).clamp_min(1.0)
    return torch.einsum("bchw,khw->bck", power, onehot) / counts


def spectral_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None, *, bands: int = 16,
                  sectors: int = 1, eps: float = 1e-6) -> Tensor:
    """``L = mean_k |log(P_k(p) + ε) − log(P_k(t) + ε)|`` over the rings (and sectors) of ``band_power``.

    Phase-free and averaged over each ring: two maps with the same texture energy at every
    spatial scale score 0 even where their speckle differs, so a *sample* with the scanner's
    texture is not pushed towards the smooth conditional mean, as L1 pushes it. On the log
    scale a map that lacks the fine texture (power 10³× below the scanner's in the outer
    rings) costs as much as one with the wrong coarse structure. 0 for ``pred = target``;
    unchanged by a constant offset inside the mask.

    Example:
        >>> x = torch.rand(2, 1, 16, 16)
        >>> spectral_loss(x, x).item(), round(spectral_loss(x + 0.3, x).item(), 5)
        (0.0, 0.0)
    """
    if pred.shape != target.shape:
        raise ValueError(f"expected pred and target of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    return (torch.log(band_power(pred, mask, bands, sectors) + eps)
            - torch.log(band_power(target, mask, bands, sectors) + eps)).abs().mean()


def crps_samples(draws: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Fair continuous ranked probability score of ``K`` draws per pixel, mean over the mask.

    ``CRPS = (1/K) Σ_k |X_k − y| − 1/(2K(K−1)) Σ_{j≠k} |X_j − X_k|`` (Gneiting & Raftery
    2007's energy form; the ``K(K−1)`` denominator is Ferro 2014's *fair* estimator, unbiased
    for the CRPS of the distribution the draws come from). A proper scoring rule: its expected
    value is lowest when the draws follow the target's conditional distribution, so it rewards
    a spread that matches each pixel's error — wide where the target is noisy, narrow where it
    is predictable — where an L1 on every draw pulls them all to the median. For ``K`` equal
    draws it is their mean absolute error.

    Args:
        draws: ``(K, B, C, H, W)``, ``K ≥ 2``.
        target: ``(B, C, H, W)``.
        mask: ``(B, 1, H, W)`` in {0, 1}, or ``None``.

    Example:
        >>> draws = torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1, 1)
        >>> [round(crps_samples(draws, torch.full((1, 1, 1, 1), y)).item(), 3) for y in (0.0, 2.0)]
        [0.0, 1.0]
    """
    if draws.ndim != 5 or draws.shape[1:] != target.shape:
        raise ValueError(f"expected draws (K, *target.shape), got {tuple(draws.shape)} for target {tuple(target.shape)}")
    k = draws.shape[0]
    if k < 2:
        raise ValueError(f"the fair CRPS needs at least 2 draws, got {k}")
    skill = (draws - target).abs().mean(0)
    spread = sum((draws[i] - draws[j]).abs() for i in range(k) for j in range(i + 1, k)) / (k * (k - 1))
    score = skill - spread  # Σ_{j≠k} counts each pair twice: 2·Σ_{i<j} / (2K(K−1))
    if mask is None:
        return score.mean()
    return (score * mask).sum() / (target.shape[1] * mask.sum()).clamp_min(EPS)
