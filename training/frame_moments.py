"""Whole frames' texture statistics for the texture stage, and terms that match them to the
real frames': their mean and covariance (``train.frame_moments``, ``train.frame_cov``), the
relations between them that real frames hold almost exactly (``train.frame_relations``), of
the strain and, with ``train.frame_emode``, of the E-mode as a reader sees it.

The texture stage is scored window by window (64² crops) against the scanner's window at the
same place. The texture observer of ``elastogan evaluate`` looks at something else: one vector
of statistics per whole ROI and a linear rule over all of them. A linear rule between two sets
of vectors with a common covariance Σ reaches Φ(Δ/2), where Δ is the Mahalanobis distance of
their mean shift in Σ; after session 17 the shift was Δ ≈ 4 (the observer 0.9–0.98) while each
window term was met, and the shift lay in relations between statistics (strong-edge share
against outlier share 1.55 sd apart, each alone within 0.72 sd; docs/training.md). Session 16
measured the lever directly: moving each feature's mean onto the scanner's took the observer
from 0.975 to 0.365.

So each step a few whole training frames are drawn through the stage as at inference, their
ROI statistics computed differentiably (``frame_features``: the ten
``texture_stats.STATISTICS`` in the observer's forms — local sds and gradient linear, outliers
and strong edges counted exactly — and the observer's four radial band-power shares), and the
stage is charged half the squared Mahalanobis distance between the draws' *running* mean and
the real training frames' mean (``FrameMoments``): four frames a step are too few to estimate
a mean of fourteen numbers, so an exponential average over the last steps carries the level
and the step's frames carry the gradient (the running mean's value, the batch's path).

The feature set is hand-chosen and of the texture observer's family: a stage that meets this
term has moved those statistics' means onto the scanner's, which the texture observer's figure
then shows largely by construction. The CNN observer, the E-mode observer and the Fréchet
distance (on other features) are the independent checks.

Axis legend: ``B`` frames, ``F`` features (``FRAME_FEATURES``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from elastogan.colormaps import get_colormap
from elastogan.eval.metrics import LUMA_601  # the observer's weights of the E-mode's channels
from elastogan.models import texture_stats

# The observer's radial bands (cycles/pixel; ``eval/authenticity/texture.py``'s BANDS): the
# last runs to the spectrum's corners.
BANDS = ((0.0, 1 / 16), (1 / 16, 1 / 8), (1 / 8, 1 / 4), (1 / 4, float("inf")))
# the local sds and the gradient are taken linear, as the observer takes them: no "log_"
FRAME_FEATURES = tuple(n.removeprefix("log_") for n in texture_stats.STATISTICS) + (
    "band_power_coarse", "band_power_medium", "band_power_fine", "band_power_finest")


def band_shares(m: Tensor) -> Tensor:
    """Share of one map's Hann-windowed power in each of ``BANDS``, ``(len(BANDS),)``.

    ``m`` ``(h, w)``: the periodogram of ``eval.authenticity.spectrum.periodogram`` (the window's
    weighted mean removed), summed over the frequencies whose radius falls in each band and
    divided by the total.

    Example:
        >>> y, x = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
        >>> band_shares(torch.cos(2 * torch.pi * 0.3 * x)).argmax().item()  # 0.3 cycles/pixel
        3
    """
    if m.ndim != 2 or min(m.shape) < 2:
        raise ValueError(f"expected a 2-D map of at least 2×2, got {tuple(m.shape)}")
    h, w = m.shape
    win = torch.outer(torch.hann_window(h, periodic=False, dtype=m.dtype, device=m.device),
                      torch.hann_window(w, periodic=False, dtype=m.dtype, device=m.device))
    centred = m - (win * m).sum() / win.sum()
    power = torch.fft.fft2(win * centred).abs().square()
    fy = torch.fft.fftfreq(h, device=m.device, dtype=m.dtype)
    fx = torch.fft.fftfreq(w, device=m.device, dtype=m.dtype)
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    total = power.sum() + texture_stats.EPS
    return torch.stack([power[(radius >= lo) & (radius < hi)].sum() / total for lo, hi in BANDS])


def frame_features(strain: Tensor, rois: list[tuple[int, int, int, int]]) -> Tensor:
    """``FRAME_FEATURES`` of each frame's strain inside its ROI box, ``(B, F)``, differentiable.

    Args:
        strain: ``(B, 1, H, W)`` mapped strain in [0, 1], finite.
        rois: ``(x0, y0, x1, y1)`` per frame (the manifest's ROI box, exclusive ends), each at
            least ``MEDIAN_WINDOW + 2`` pixels a side.
    """
    if strain.ndim != 4 or strain.shape[1] != 1 or len(rois) != strain.shape[0]:
        raise ValueError(f"expected strain (B, 1, H, W) and one ROI per frame, got {tuple(strain.shape)} "
                         f"and {len(rois)} ROIs")
    out = []
    for m, (x0, y0, x1, y1) in zip(strain, rois):
        crop = m[:, y0:y1, x0:x1][None]  # (1, 1, h, w)
        # the observer's forms: local sds and gradient as they are, outliers and edges counted
        stats = texture_stats.texture_statistics(crop, torch.ones_like(crop), linear=True, hard=True)[0]
        out.append(torch.cat([stats, band_shares(crop[0, 0])]))
    return torch.stack(out)


def emode_luminance(strain: Tensor, bmode: Tensor, *, colormap: str = "hitachi", alpha: float | Tensor = 0.5) -> Tensor:
    """The luminance of the E-mode a reader sees inside the ROI, differentiable in ``strain``:
    ``elastogan.display.render_emode``'s blend ``(1 − α)·B + α·C(strain)`` of the grey B-mode and
    the colour map, rounded to 8 bits per channel as the PNG is (straight through: the rounded
    value, the unrounded gradient), then ``LUMA_601``; in [0, 1].

    Args:
        strain: ``(B, 1, H, W)`` mapped strain (clipped to [0, 1] as the display clips it).
        bmode: ``(B, 1, H, W)`` grey B-mode in [−1, 1] (``uint8 / 127.5 − 1``).
        alpha: the colour's opacity, one for all frames or ``(B,)`` (the simulator draws each
            case with its own, ``source.display_alpha``; ``evaluate`` draws the synthetic
            E-mode with the same).

    The texture observer of the E-mode looks at this map, not at the strain: the Hitachi map's
    luminance rises from blue to yellow and falls to red, so the same strain texture shows
    strongly in soft tissue, barely where the map is green, and the B-mode's speckle shows
    through everywhere.

    Example:
        >>> s = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3)
        >>> emode_luminance(s, torch.full_like(s, -1.0), alpha=1.0).flatten().mul(255).round().tolist()  # blue, green, red
        [29.0, 129.0, 76.0]
    """
    anchors = get_colormap(colormap).anchors
    pos = torch.tensor([a[0] for a in anchors], dtype=strain.dtype, device=strain.device)
    rgb = torch.tensor([a[1] for a in anchors], dtype=strain.dtype, device=strain.device) / 255.0  # (A, 3)
    s = strain.clamp(0.0, 1.0)
    seg = torch.bucketize(s.detach(), pos[1:-1], right=True)  # anchor interval of each pixel
    t = ((s - pos[seg]) / (pos[seg + 1] - pos[seg]))[..., None]
    colour = rgb[seg] + t * (rgb[seg + 1] - rgb[seg])  # (B, 1, H, W, 3)
    if isinstance(alpha, Tensor):
        alpha = alpha.to(strain.dtype).view(-1, 1, 1, 1, 1)
    blended = (1 - alpha) * ((bmode + 1) / 2)[..., None] + alpha * colour
    rounded = blended + (torch.round(blended * 255) / 255 - blended).detach()
    return rounded @ torch.tensor(LUMA_601, dtype=strain.dtype, device=strain.device)


def emode_frame_features(strain: Tensor, bmode: Tensor, rois: list[tuple[int, int, int, int]], alpha: float | Tensor = 0.5,
                         *, colormap: str = "hitachi") -> Tensor:
    """``FRAME_FEATURES`` of each frame's E-mode luminance (``emode_luminance``) inside its ROI,
    ``(B, F)``: what the E-mode texture observer of ``evaluate`` measures."""
    return frame_features(emode_luminance(strain, bmode, colormap=colormap, alpha=alpha), rois)


class FrameMoments:
    """Running moments of drawn frames' features against the real frames'.

    Features are taken in whitened units, ``z = f W`` with ``W`` the whitening of the real
    frames' covariance ridged by ``ridge`` times its diagonal (``texture_stats.whitening``; at
    the default 1 %, as ``statistic_whitening``, real ``z`` have about unit covariance). Each
    ``loss(features)`` call updates the running mean and second moment of the draws' ``z``
    (``m ← β·m + (1 − β)·batch``) and returns

    - ``mean``: ``½‖m̃ − μ‖²``, half the squared Mahalanobis distance of the draws' mean from
      the real frames' ``μ`` — what a linear observer between the two sets reaches Φ(Δ/2) on;
    - ``cov``: ``½‖C̃ − C‖²_F``, the draws' covariance ``C̃ = S̃ − m̃ m̃ᵀ`` against the real
      frames' ``C`` (≈ I): a set of draws that varies less from frame to frame than scans do
      is a tight cloud an observer cuts off from a broad one;

    with ``m̃``, ``S̃`` the running moments in value and the batch's in gradient
    (straight-through): four frames a step are too few to estimate fourteen means, let alone
    their covariance. The first call sets the running moments to the batch's.

    Args:
        real: ``(N, F)`` features of real frames, N > F.
        momentum: ``β``. Default 0.96 (about the last 25 steps weigh).
        ridge: ``r``. Whitened, the real frames vary most along the amount of texture, so a
            shift along it costs least; a larger ridge moves the units towards each feature's
            own sd, where a level costs what a relation does (session 18: at 1 % the stage
            met the term by drawing cleaner maps). Default 0.01.

    Example:
        >>> real = torch.randn(200, 3, generator=torch.Generator().manual_seed(0))
        >>> m = FrameMoments(real)
        >>> [round(v.item(), 6) for v in m.loss(real)], m.loss(real + real.std(0))[0].item() > 0
        ([0.0, 0.0], True)
    """

    def __init__(self, real: Tensor, *, momentum: float = 0.96, ridge: float = 0.01) -> None:
        if real.ndim != 2 or real.shape[0] <= real.shape[1]:
            raise ValueError(f"expected real features (N, F) with N > F, got {tuple(real.shape)}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.whiten = texture_stats.whitening(real, ridge).to(real.dtype)
        z = real.detach() @ self.whiten
        self.mean = z.mean(0)
        self.cov = (z - self.mean).T @ (z - self.mean) / len(z)
        self.momentum = momentum
        self.running: tuple[Tensor, Tensor] | None = None

    def loss(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, cov)`` terms of the running moments, with gradient through ``features`` ``(B, F)``."""
        if features.ndim != 2 or features.shape[1] != self.mean.shape[0]:
            raise ValueError(f"expected features (B, {self.mean.shape[0]}), got {tuple(features.shape)}")
        z = features @ self.whiten  # (B, F)
        batch = (z.mean(0), z.T @ z / len(z))
        old = tuple(b.detach() for b in batch) if self.running is None else self.running
        self.running = tuple(self.momentum * o + (1 - self.momentum) * b.detach() for o, b in zip(old, batch))
        m, second = (r + b - b.detach() for r, b in zip(self.running, batch))
        cov = second - torch.outer(m, m)
        return 0.5 * (m - self.mean).square().sum(), 0.5 * (cov - self.cov).square().sum()

    def distance(self) -> float:
        """The running mean's Mahalanobis distance from the real frames' mean (Δ; NaN before
        the first call)."""
        if self.running is None:
            return float("nan")
        return float((self.running[0] - self.mean).norm())

    def spread(self) -> float:
        """The draws' running sd over the real frames' in whitened units, the root of the ratio
        of the covariances' traces (1: as varied as the scans; NaN before the first call)."""
        if self.running is None:
            return float("nan")
        m, second = self.running
        return float(((second - torch.outer(m, m)).trace() / self.cov.trace()).clamp_min(0).sqrt())


class FrameRelations:
    """Per-frame deviation from the relations the real frames' features hold almost exactly
    (``train.frame_relations``).

    Some combinations of the frame features hardly vary over real scans: the 3×3 local sd
    against the gradient and the 7×7 local sd (how the scanner's strain decorrelates from one
    pixel to the next), the GLCM homogeneity against the strong-edge share. In the real frames'
    correlation matrix they are the eigen-directions of smallest variance (session 19: below
    0.03 of a feature's variance). A linear observer weighs a shift along them by one over
    their sd, so a shift too small to see in any one feature decides it — and a ridge, which
    ``FrameMoments`` needs so that the amount of texture costs, discounts exactly them. Here
    they are charged on every frame, not on a running mean: real frames all sit at the same
    place along them, so each drawn frame should too, and one frame is a sample.

    Features are standardised by the real frames' mean and sd; ``directions`` are the
    eigenvectors of their correlation with eigenvalue below ``below`` (each deviation divided by
    the root of its eigenvalue, floored at ``floor`` so a direction that never varies — the
    four band shares sum to 1 — is not divided by zero). ``loss`` returns half the mean over
    frames of the squared whitened deviations from the real frames' mean projection.

    Args:
        real: ``(N, F)`` features of real frames, N > F.
        below: eigenvalue (of the correlation matrix: a feature's own variance is 1) under
            which a direction counts as a relation. Default 0.05.
        floor: the smallest variance a direction is divided by. Default 1e-3.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a = torch.randn(300, 1, generator=g)
        >>> real = torch.cat([a, a + 0.01 * torch.randn(300, 1, generator=g), torch.randn(300, 1, generator=g)], 1)
        >>> r = FrameRelations(real)
        >>> r.directions.shape[1]  # the second feature is the first, within 1 %
        1
        >>> round(r.loss(real).item(), 3), round(r.loss(real + torch.tensor([0.1, 0.1, 0.0])).item(), 3)  # both moved: free
        (0.036, 0.036)
        >>> round(r.loss(real + torch.tensor([0.1, 0.0, 0.0])).item(), 1)  # one moved: the relation broken
        2.9
    """

    def __init__(self, real: Tensor, *, below: float = 0.05, floor: float = 1e-3) -> None:
        if real.ndim != 2 or real.shape[0] <= real.shape[1]:
            raise ValueError(f"expected real features (N, F) with N > F, got {tuple(real.shape)}")
        if not 0 < below <= 1 or not floor > 0:
            raise ValueError(f"below must be in (0, 1] and floor positive, got {below} and {floor}")
        r = real.detach().double()
        self.centre, self.scale = r.mean(0), r.std(0).clamp_min(1e-12)
        values, vectors = torch.linalg.eigh(torch.corrcoef(r.T))
        keep = values < below
        self.variances = values[keep].clamp_min(floor)
        self.directions = vectors[:, keep]  # (F, R)
        self.target = ((r - self.centre) / self.scale @ self.directions).mean(0)
        self.shift = float("nan")

    def deviations(self, features: Tensor) -> Tensor:
        """``(B, R)`` whitened deviations of each frame from the real frames along the relations."""
        if features.ndim != 2 or features.shape[1] != self.centre.shape[0]:
            raise ValueError(f"expected features (B, {self.centre.shape[0]}), got {tuple(features.shape)}")
        z = (features - self.centre.to(features.dtype)) / self.scale.to(features.dtype)
        return (z @ self.directions.to(features.dtype) - self.target.to(features.dtype)) / self.variances.sqrt().to(features.dtype)

    def loss(self, features: Tensor) -> Tensor:
        """Half the mean squared whitened deviation over the frames ``(B, F)``, differentiable;
        ``shift`` keeps the norm of the frames' mean deviation (for the log)."""
        d = self.deviations(features)
        self.shift = float(d.detach().mean(0).norm())
        return 0.5 * d.square().sum(1).mean()
