"""Differentiable texture statistics of strain windows, and a loss that matches them.

The texture observer of ``elastogan evaluate`` (``eval/authenticity/texture.py``) tells the
scanner's strain from a synthetic one by a handful of named statistics: how much a map varies
within 3×3 and 7×7 windows, its lateral and axial gradient energy (the scanner's streaks run
along the beam), how alike neighbouring pixels are, and how many pixels jump away from their
neighbourhood (tracking outliers). A CRPS per pixel and a phase-free spectrum leave several of
them free: a stage trained on those two alone made maps rougher than the scanner's at the
pixel scale, with a sixth of its outliers and streaks along the beam two thirds as strong
(docs/training.md, "The scanner-texture stage").

``texture_statistics`` computes the observer's statistics with operations torch can
differentiate (sigmoids for the outlier and strong-edge counts, the continuous form of the GLCM
homogeneity), on masked windows; ``texture_stats_loss`` scores each draw's statistics against those of the
real window at the same place (the texture a scanner shows follows the echo, the depth and the
strain, so the paired window is the right target), each statistic in units of its spread over
real windows (``statistic_scale``): the logistic observer standardises its features the same
way, so every statistic counts as much as it can betray.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from elastogan.models.losses import crps_samples

STATISTICS = ("log_local_sd_3", "log_local_sd_7", "local_sd_ratio", "log_gradient_mean", "strong_edge_fraction",
              "anisotropy", "autocorrelation_lateral", "autocorrelation_axial", "outlier_fraction", "homogeneity")
# As the observer: an outlier departs from the 5×5 median by more than 3 robust sd of the
# neighbour steps; homogeneity is 1/(1 + |step|) with the step in 16ths of the display range.
OUTLIER_SD, MAD_TO_SD, MEDIAN_WINDOW, LEVELS = 3.0, 1.4826, 5, 16
# A strong edge: a central-difference gradient above a tenth of the display range per pixel.
STRONG_EDGE = 0.1
# Sharpness of the soft counts (outliers, strong edges): 10 % above the threshold counts 0.73.
SHARPNESS = 10.0
EPS = 1e-8


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Per-map mean of ``x`` ``(B, 1, H, W)`` over ``mask`` → ``(B,)``."""
    return (x * mask).sum((1, 2, 3)) / mask.sum((1, 2, 3)).clamp_min(1.0)


def _inside(mask: Tensor, k: int) -> Tensor:
    """Mask of the ``k × k`` windows (valid positions) that lie wholly inside ``mask``."""
    return (F.avg_pool2d(mask, k, stride=1) > 1 - 1e-6).float()


def _local_sd(x: Tensor, mask: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Standard deviation in every ``k × k`` window and where the window lies inside ``mask``."""
    mean = F.avg_pool2d(x, k, stride=1)
    var = (F.avg_pool2d(x * x, k, stride=1) - mean * mean).clamp_min(0.0)
    return torch.sqrt(var + EPS), _inside(mask, k)


def _median_residual(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``x`` minus its ``MEDIAN_WINDOW²`` median (valid windows only) and where that is defined."""
    k, h, w = MEDIAN_WINDOW, x.shape[-2] - MEDIAN_WINDOW + 1, x.shape[-1] - MEDIAN_WINDOW + 1
    patches = F.unfold(x, k)  # (B, k², h·w)
    median = patches.median(dim=1).values.view(-1, 1, h, w)
    centre = x[..., k // 2 : k // 2 + h, k // 2 : k // 2 + w]
    return centre - median, _inside(mask, k)


def texture_statistics(x: Tensor, mask: Tensor, *, linear: bool = False, hard: bool = False) -> Tensor:
    """The ``STATISTICS`` of each map, ``(B, len(STATISTICS))``.

    Args:
        x: ``(B, 1, H, W)`` strain windows (finite; values outside the mask are ignored), at
            least ``MEDIAN_WINDOW + 2`` pixels a side.
        mask: ``(B, 1, H, W)`` in {0, 1}: where ``x`` is defined.
        linear: the local sds and the mean gradient as they are, not their logs. The observer
            averages them over a whole ROI, i.e. over many windows: a loss that matches each
            window's *log* matches their geometric mean, which lies below the arithmetic one
            the observer sees by as much as the windows differ (measured: every window's log
            local sd within 3 % of the scanner's, the ROI's local sd 12 % below it).
        hard: count outliers and strong edges as the observer does (a pixel is one or is
            not), with the soft count's gradient (straight-through). A soft count is cheapest
            to raise with residuals just below the threshold, which the observer never counts.

    Example:
        >>> x = torch.linspace(0, 1, 16).repeat(1, 1, 16, 1)  # a lateral ramp: no axial change
        >>> s = dict(zip(STATISTICS, texture_statistics(x, torch.ones_like(x))[0].tolist()))
        >>> round(s["anisotropy"], 3), round(s["outlier_fraction"], 3)
        (1.0, 0.0)
    """
    if x.ndim != 4 or x.shape[1] != 1 or mask.shape != x.shape:
        raise ValueError(f"expected x and mask of one shape (B, 1, H, W), got {tuple(x.shape)} and {tuple(mask.shape)}")
    if min(x.shape[-2:]) < MEDIAN_WINDOW + 2:
        raise ValueError(f"windows must be at least {MEDIAN_WINDOW + 2} pixels a side, got {tuple(x.shape[-2:])}")
    x = x * mask
    level = (lambda v: v) if linear else (lambda v: torch.log(v + EPS))
    stats, sds = [], []
    for k in (3, 7):
        sd, inside = _local_sd(x, mask, k)
        sds.append(_masked_mean(sd, inside))
        stats.append(level(sds[-1]))
    stats.append(sds[0] / (sds[1] + EPS))

    # Gradients as ``np.gradient`` takes them inside the map (central differences): their
    # energy peaks at a quarter of the sampling rate, so grain at the Nyquist frequency cannot
    # pass for the scanner's streaks, as it could with neighbour steps.
    inner = mask[..., 1:-1, 1:-1]
    gx = (x[..., 1:-1, 2:] - x[..., 1:-1, :-2]) / 2
    gy = (x[..., 2:, 1:-1] - x[..., :-2, 1:-1]) / 2
    both = inner * mask[..., 1:-1, 2:] * mask[..., 1:-1, :-2] * mask[..., 2:, 1:-1] * mask[..., :-2, 1:-1]
    magnitude = torch.sqrt(gx * gx + gy * gy + EPS)
    stats.append(level(_masked_mean(magnitude, both)))
    stats.append(_masked_mean(_count(magnitude / STRONG_EDGE, hard), both))
    ex, ey = _masked_mean(gx * gx, both), _masked_mean(gy * gy, both)
    stats.append((ex - ey) / (ex + ey + EPS))

    dx, mx = x[..., :, 1:] - x[..., :, :-1], mask[..., :, 1:] * mask[..., :, :-1]
    dy, my = x[..., 1:, :] - x[..., :-1, :], mask[..., 1:, :] * mask[..., :-1, :]

    # Lag-1 autocorrelation as the observer computes it: Σ c_a·c_b over neighbour pairs / Σ c².
    c = (x - _masked_mean(x, mask).view(-1, 1, 1, 1)) * mask
    energy = (c * c).sum((1, 2, 3)) + EPS
    stats += [(c[..., :, 1:] * c[..., :, :-1]).sum((1, 2, 3)) / energy,
              (c[..., 1:, :] * c[..., :-1, :]).sum((1, 2, 3)) / energy]

    residual, inside = _median_residual(x, mask)
    steps = torch.cat([dx.abs().flatten(1).where(mx.flatten(1) > 0, torch.nan),
                       dy.abs().flatten(1).where(my.flatten(1) > 0, torch.nan)], dim=1)
    # The threshold scales the count; it is not what the stage should learn to move.
    threshold = (OUTLIER_SD * MAD_TO_SD * steps.nanmedian(dim=1).values).detach().clamp_min(EPS).view(-1, 1, 1, 1)
    stats.append(_masked_mean(_count(residual.abs() / threshold, hard), inside))

    homogeneity = (_masked_mean(1 / (1 + LEVELS * dx.abs()), mx) + _masked_mean(1 / (1 + LEVELS * dy.abs()), my)) / 2
    stats.append(homogeneity)
    return torch.stack(stats, dim=1)


def _count(ratio: Tensor, hard: bool) -> Tensor:
    """1 where ``ratio`` exceeds 1, softly (a sigmoid) or, with ``hard``, exactly with the
    sigmoid's gradient."""
    soft = torch.sigmoid(SHARPNESS * (ratio - 1))
    return soft + ((ratio > 1).float() - soft).detach() if hard else soft


def statistic_scale(real: Tensor, mask: Tensor, *, linear: bool = False) -> Tensor:
    """Standard deviation of each statistic over real windows, ``(len(STATISTICS),)``: the unit
    ``texture_stats_loss`` measures differences in (1e-3 where a statistic does not vary, 1e-5
    for the linear local sds and gradient, a few 1e-3 on the scanner's strain)."""
    floor = torch.full((len(STATISTICS),), 1e-3)
    if linear:
        floor[[STATISTICS.index(n) for n in ("log_local_sd_3", "log_local_sd_7", "log_gradient_mean")]] = 1e-5
    return torch.maximum(texture_statistics(real, mask, linear=linear).std(dim=0), floor.to(real.device)).detach()


def statistic_whitening(real: Tensor, mask: Tensor, *, linear: bool = False) -> Tensor:
    """``(len(STATISTICS), len(STATISTICS))`` matrix ``W`` with ``Δ @ W`` of unit covariance over
    real windows (``L⁻ᵀ`` for the Cholesky factor ``L`` of their covariance, ridged by 1 % of its
    diagonal): differences in units of the real windows' joint spread. The statistics of real
    windows are strongly correlated (rougher windows are less homogeneous); a draw that matches
    each statistic's mean but not their relation lies off the real windows' manifold, where a
    linear observer separates it easily (session-15 stage: gradient and homogeneity within half
    an sd each, the two together 0.865), and only the joint units charge for it."""
    return whitening(texture_statistics(real, mask, linear=linear)).float()


def whitening(samples: Tensor, ridge: float = 0.01) -> Tensor:
    """``(F, F)`` matrix ``W`` that whitens the rows of ``samples`` ``(N, F)``: ``L⁻ᵀ`` for the
    Cholesky factor ``L`` of their covariance ridged by ``ridge`` times its diagonal, so that
    ``(x − y) @ W`` is a difference in units of their joint spread (float64, detached)."""
    if not ridge > 0:
        raise ValueError(f"ridge must be positive, got {ridge}")
    s = samples.detach().double()
    cov = torch.cov(s.T)
    cov = cov + ridge * torch.diag(cov.diagonal().clamp_min(1e-12))
    eye = torch.eye(s.shape[1], dtype=torch.float64, device=s.device)
    return torch.linalg.solve_triangular(torch.linalg.cholesky(cov), eye, upper=False).T


def _standardised(diff: Tensor, scale: Tensor) -> Tensor:
    """``diff`` in units of ``scale``: per-statistic sds ``(S,)`` or a whitening matrix ``(S, S)``."""
    return diff @ scale if scale.ndim == 2 else diff / scale


def draw_statistics(draws: Tensor, mask: Tensor, *, linear: bool = False, hard: bool = False) -> Tensor:
    """``texture_statistics`` of every draw ``(K, B, 1, H, W)`` in its window's ``mask``
    ``(B, 1, H, W)``: ``(K, B, len(STATISTICS))``."""
    k = draws.shape[0]
    return texture_statistics(draws.flatten(0, 1), mask.repeat(k, 1, 1, 1), linear=linear,
                              hard=hard).unflatten(0, (k, -1))


def texture_stats_loss(draws: Tensor, target: Tensor, mask: Tensor, scale: Tensor, *, batch: float = 0.0,
                       score: str = "l1", linear: bool = False, hard: bool = False,
                       statistics: Tensor | None = None) -> Tensor:
    """``mean |s(draw) − s(target)| / scale`` over draws, windows and statistics (squared with
    ``score="l2"``), plus ``batch ×`` the same for the statistics' means over the batch.

    The paired term pulls each draw's statistics to those of its real window, but an L1 pulls
    to the conditional *median*: for a right-skewed statistic (the outlier and strong-edge
    shares, the local sd) that is below the mean, and every draw comes out a little too clean.
    A linear observer sees exactly such a shift of the means: on the session-14 stage, moving
    each of its features' means onto the scanner's took the texture observer from 0.975 to
    0.365 (docs/training.md). The squared error pulls to the conditional *mean*, which is what
    the observer compares; the batch term scores the means directly.

    Args:
        draws: ``(K, B, 1, H, W)``.
        target: ``(B, 1, H, W)``, finite (0 outside ``mask``).
        mask: ``(B, 1, H, W)`` in {0, 1}; the draws are scored where the target is defined.
        scale: ``(len(STATISTICS),)`` from ``statistic_scale``, or a whitening matrix from
            ``statistic_whitening``.
        batch: weight of the batch-mean term (0: paired only).
        score: ``"l1"`` scores each draw's statistics apart; ``"l2"`` the same squared (the
            batch term too); ``"crps"`` scores the K draws'
            statistics together with the fair CRPS (``losses.crps_samples``), a proper score
            that is lowest when their spread matches the real window's uncertainty, so draws
            may differ in how much texture they carry, as scans of one breast do.
        linear, hard: as ``texture_statistics`` (``scale`` must come from the same form).
        statistics: the draws' ``draw_statistics`` when the caller has them already.

    Example:
        >>> t = torch.rand(2, 1, 16, 16)
        >>> texture_stats_loss(t.expand(3, -1, -1, -1, -1), t, torch.ones_like(t), torch.ones(len(STATISTICS))).item()
        0.0
    """
    if draws.ndim != 5 or draws.shape[1:] != target.shape:
        raise ValueError(f"expected draws (K, *target.shape), got {tuple(draws.shape)} for target {tuple(target.shape)}")
    s_draws = draw_statistics(draws, mask, linear=linear, hard=hard) if statistics is None else statistics
    s_real = texture_statistics(target, mask, linear=linear, hard=hard)
    if score == "crps":
        loss = crps_samples(_standardised(s_draws, scale)[..., None, None], _standardised(s_real, scale)[..., None, None])
    elif score in ("l1", "l2"):
        loss = _error(_standardised(s_draws - s_real, scale), score).mean()
    else:
        raise ValueError(f"score must be 'l1', 'l2' or 'crps', got {score!r}")
    if batch > 0:
        loss = loss + batch * _error(_standardised(s_draws.mean((0, 1)) - s_real.mean(0), scale), score).mean()
    return loss


def energy_distance(x: Tensor, y: Tensor) -> Tensor:
    """Energy distance (Székely & Rizzo 2013) between the samples ``x`` ``(n, d)`` and ``y``
    ``(m, d)``: ``2·E‖x − y‖ − E‖x − x′‖ − E‖y − y′‖`` (V-statistics, so 0 for equal sets and
    never negative), zero only when the two distributions are equal — spread and relations
    between the coordinates included, not only the means.

    Example:
        >>> a = torch.tensor([[0.0], [2.0]])
        >>> round(energy_distance(a, a).item(), 4), round(energy_distance(a, a + 1).item(), 4)
        (0.0, 1.0)
    """
    return 2 * _pairwise(x, y).mean() - _pairwise(x, x).mean() - _pairwise(y, y).mean()


def _pairwise(a: Tensor, b: Tensor) -> Tensor:
    # the Euclidean distance with a tiny floor under the root: its gradient at 0 (a draw against
    # itself) is then 0, not NaN
    return ((a[:, None, :] - b[None, :, :]).square().sum(-1) + 1e-12).sqrt()


def texture_stats_energy(statistics: Tensor, reference: Tensor, scale: Tensor) -> Tensor:
    """Energy distance between the draws' statistics and real windows' (``reference``), in the
    units of ``scale``: an unpaired term that asks the draws' statistics to be distributed as
    the real windows' — as spread out from window to window and as related to each other —
    where the paired terms of ``texture_stats_loss`` pull each draw to its own window's
    conditional mean (session 16: the draws' texture varied from case to case at 0.3–0.6 of
    the scanner's).

    Args:
        statistics: the draws' ``draw_statistics`` ``(..., len(STATISTICS))``.
        reference: ``(N, len(STATISTICS))`` statistics of real windows (the same form).
        scale: as ``texture_stats_loss``.
    """
    return energy_distance(_standardised(statistics.flatten(0, -2), scale), _standardised(reference, scale))


def _error(z: Tensor, score: str) -> Tensor:
    """``z²`` for the squared error, ``|z|`` otherwise."""
    return z.square() if score == "l2" else z.abs()
