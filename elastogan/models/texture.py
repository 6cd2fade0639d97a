"""The scanner-texture stage: a generator's strain drawn at the resolution the reader sees.

A strain scanner's elastogram carries texture no B-mode determines exactly: speckle
decorrelation, peak-hopping outliers, streaks along the beam, gating where tracking fails.
Its *amount* is not random, though: it follows the echo (dark, anechoic and shadowed tissue
track badly), the depth and the strain itself. The TransUNet works at 128² and can only
draw a smooth map there — scaled up to the frame it has no power above a quarter of the
sampling rate, where the scanner's texture lives (docs/training.md, "Resolution matters").

``ScannerTexture`` is a small, fully convolutional network at the frame's resolution
(``TextureConfig.image_size``, the training frames' size). It sees the full-resolution B-mode
(its speckle is what tells where tracking fails), the generator's draw scaled up to that size,
and noise maps; it adds a residual to the draw. It is trained *after* the generator, which
stays frozen (``elastogan train-texture``), with a proper scoring rule on several draws (the
fair CRPS: ``elastogan.models.losses.crps_samples``) so each pixel's spread follows that
pixel's error, and the phase-free spectral term so the draws carry the scanner's texture at
every scale — not a blur of it.

Noise comes from ``NoiseSource`` with its own seeds (``texture_seeds``): draw ``k`` of seed
``S`` is reproducible and independent of the batch, as for the generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from elastogan.models.generator import NoiseInjection, NoiseSource

# dilations of the 3×3 layers: with the 3×3 output layer the receptive field is 1 + 2·(Σd + 1)
# pixels (31 for the default 6 layers),
# a few speckle cells at 256² — wide enough to see an echo-poor patch, cheap at full size.
DILATIONS = (1, 2, 4, 4, 2, 1)

# Tracking-error streaks: spikes where a Gaussian exceeds a threshold in magnitude
# (TextureConfig.streak_threshold; STREAK_THRESHOLD by default, 1.2 % of the pixels), scaled to
# unit variance, convolved with a learnt STREAK_KERNEL (axial × lateral) kernel that starts as a
# vertical line of unit energy.
STREAK_THRESHOLD, STREAK_KERNEL = 2.5, (9, 3)
# The smoothing gate's blur (TextureConfig.smooth_gate): a Gaussian of this sd in pixels, cut at
# ±4 pixels (inside every stage's receptive field).
SMOOTH_SIGMA, SMOOTH_RADIUS = 1.5, 4


def streak_density(threshold: float) -> float:
    """P(|N(0, 1)| > threshold): the share of pixels that carry a spike.

    Example:
        >>> round(streak_density(STREAK_THRESHOLD), 6)
        0.012419
    """
    return math.erfc(threshold / math.sqrt(2.0))


@dataclass(frozen=True)
class TextureConfig:
    """Architecture of the texture stage.

    Args:
        image_size: side of the square frames the stage works at (the training data's frame
            size; ``Predictor`` resizes the generator's draw and the B-mode to it). Default 256.
        channels: width of every layer. Default 12: with the statistics term the 12-channel
            stage fooled the observers as well as the 24-channel one at a third of the cost
            (docs/training.md, "The scanner-texture stage").
        layers: 3×3 convolutions, dilated as ``DILATIONS`` (at most 6). Default 6.
        noise_init: initial per-channel noise strength. Default 0.5.
        input_noise: give the first layer noise maps of several kinds besides the per-layer
            Gaussian injections (``INPUT_NOISE``): heavy-tailed and sparse ones, from which a
            scanner's isolated outliers are easy to make, and coarse ones, from which an error
            that spans a lesion is. Default True.
        frame_noise: one more input map, one noise value per draw (the whole frame's "scan
            quality"). Default False.
        frame_latent: this many more input maps, each one value per frame: a code for how much
            and what kind of texture the whole scan shows. In training it is the real frame's
            own texture, encoded (``elastogan.training.frame_latent``: the observer's statistics
            over the ROI, their principal components, each mapped to N(0, 1) by rank); at
            inference it is drawn from N(0, I), the codes' distribution over the training
            frames. The scanner's amount of texture varies from scan to scan with what no
            B-mode frame shows (the applied compression, the sequence's increments and slips,
            the noise), and a stage scored window by window against its own real window learns
            the conditional mean of it unless something tells it which scan it is drawing.
            Given the code, the paired terms teach the stage what each code looks like; drawn
            from its distribution, the draws vary from scan to scan as scans do. Measured with
            each case's own draw, a plain ``frame_noise`` input widened the spread as much
            (docs/training.md, "Session 17"). Default 0 (off).
        latent_scale: at inference draw the codes from N(0, latent_scale² I). A stage trained
            on window-sized crops answers its code more weakly than the whole frames it was
            encoded from vary (docs/training.md, "Session 17": the stage's ROI texture moved
            about a third as far as the code asked); a scale above 1 widens the draws' spread
            from scan to scan to the scanner's, at the price of codes beyond the training
            range. Set after training, as a calibration; it changes no weight. Default 1.
        latent_gain: let the code also scale the stage's texture directly: the residual and the
            streaks' amplitude are multiplied by ``exp(a·z)`` per frame (``a`` learnt, starting at
            zero). The code's first component is the amount of texture; through the first
            layer alone the stage learnt to answer it about a third as strongly as the frames
            vary, and a gain is the one path that turns it into amplitude without passing
            six nonlinear layers. Needs ``frame_latent``. Default False.
        streaks: add tracking-error streaks (``STREAK_THRESHOLD``, ``STREAK_KERNEL``): sparse heavy-tailed spikes drawn out
            along the beam by a learnt kernel, at an amplitude the network sets per pixel from
            what it sees. A scanner's strain outliers come in short axial runs (phantom-v2:
            a neighbour one pixel along the beam is an outlier too in 62 % of cases, across it
            in 44 %), the trace of a displacement peak-hop through the least-squares strain fit;
            stacked 3×3 layers turn sparse noise into round blobs instead. Default False.
        smooth_gate: let the stage smooth the generator's draw where it sees fit: a gate map
            ``g`` (from the same features as the residual; starts at zero) blends the draw with
            its Gaussian blur (``SMOOTH_SIGMA``), ``strain + g·(blur(strain) − strain)``, before
            the residual and the streaks are added. The scanner's strain between its outliers is
            smoother than the generator's draw (phantom-v2: median neighbour step 0.008 in the
            5×5-median-filtered scanner strain against 0.011 in the draw); a stage that can only
            add texture cannot remove the draw's middling steps. Default False.
        streak_threshold: the streaks' spikes are where a Gaussian exceeds it in magnitude
            (2.5: 1.2 % of the pixels; 3.0: 0.27 %; 3.5: 0.047 %). Sparser spikes make the same
            roughness out of fewer, larger steps — the scanner's way. Default ``STREAK_THRESHOLD``.
        position: give the first layer where each pixel lies in the frame (``frame_coordinates``:
            depth, and distance from the probe's centre line). The scanner's strain is noisier
            towards the sides of the field, where the tissue slides sideways under compression
            and the echoes decorrelate (phantom-v2: outliers about 1 % of the pixels on the
            frame's centre line, 11 % at its sides, wherever the ROI lies), and at mid-depth; a
            fully convolutional stage cannot know where it is. Default False.
        scale: run the convolutions on the frame averaged over ``scale × scale`` blocks and scale
            their residual (and the streaks' gain) back up bilinearly; only the streaks' spikes
            stay at full resolution. The scanner's strain is a smooth map with sparse large
            steps; a full-resolution stack of 3×3 layers draws many middling ones instead
            (docs/training.md, "Session 15"), and costs ``scale²`` times more. Frames and
            training windows must be multiples of ``scale``. Default 1.
        out_filter: side of a learnt linear filter (odd, ≥ 3; 0: none) through which the
            stage's texture — everything it adds to the generator's draw, streaks included —
            passes at the frame's full resolution, starting as the identity. How the scanner's
            strain decorrelates from one pixel to the next (its 3×3 local sd against its
            gradient and its 7×7 sd) is fixed in real scans to about 1 % of the features' spread
            (session 19), and a stage with ``scale`` draws its residual on blocks and scales it
            up bilinearly, which fixes that relation too, at another value; the filter lets
            training set it. Default 0.
    """

    image_size: int = 256
    channels: int = 12
    layers: int = 6
    noise_init: float = 0.5
    input_noise: bool = True
    frame_noise: bool = False
    frame_latent: int = 0
    latent_scale: float = 1.0
    latent_gain: bool = False
    streaks: bool = False
    position: bool = False
    scale: int = 1
    streak_threshold: float = STREAK_THRESHOLD
    smooth_gate: bool = False
    out_filter: int = 0

    def __post_init__(self) -> None:
        if self.image_size < 8:
            raise ValueError(f"texture.image_size must be at least 8, got {self.image_size}")
        if self.channels < 1:
            raise ValueError(f"texture.channels must be at least 1, got {self.channels}")
        if not 1 <= self.layers <= len(DILATIONS):
            raise ValueError(f"texture.layers must be 1–{len(DILATIONS)}, got {self.layers}")
        if not 0 <= self.frame_latent <= 8:
            raise ValueError(f"texture.frame_latent must be 0–8, got {self.frame_latent}")
        if not 0 < self.latent_scale <= 10:
            raise ValueError(f"texture.latent_scale must be in (0, 10], got {self.latent_scale}")
        if self.latent_gain and not self.frame_latent:
            raise ValueError("texture.latent_gain needs texture.frame_latent >= 1 (a code to scale by)")
        if self.noise_init < 0:
            raise ValueError(f"texture.noise_init must be >= 0, got {self.noise_init}")
        if not 0 < self.streak_threshold <= 5:
            raise ValueError(f"texture.streak_threshold must be in (0, 5], got {self.streak_threshold}")
        if self.scale < 1 or self.image_size % self.scale:
            raise ValueError(f"texture.scale must be a positive divisor of texture.image_size {self.image_size}, "
                             f"got {self.scale}")
        if self.out_filter and (self.out_filter < 3 or self.out_filter % 2 == 0 or self.out_filter > 15):
            raise ValueError(f"texture.out_filter must be 0 or an odd side from 3 to 15, got {self.out_filter}")

    @property
    def receptive_field(self) -> int:
        """Side in full-resolution pixels of the input window one output pixel depends on (with
        ``scale``, rounded up so that its half is whole blocks: training windows then are too)."""
        half = sum(DILATIONS[: self.layers]) + 1  # the output layer is 3×3 too
        k = self.scale
        if k > 1:
            # a block reads ``k`` pixels per block of its window; scaling up bilinearly mixes two
            # neighbouring blocks, whose centres lie up to 1.5 blocks from an output pixel
            half = -(-(k * half + (3 * k - 1) // 2) // k) * k
        if self.out_filter:  # at full resolution, after the blocks; windows stay whole blocks
            half = -(-(half + self.out_filter // 2) // k) * k
        return 2 * half + 1


# The first layer's extra noise maps: (kind, downsampling). A scanner's strain is a smooth field
# with sparse spikes (tracking outliers: 4 % of the pixels on phantom-v2 against 0.9 % for a
# stage fed Gaussian noise alone) and errors that span a lesion; Gaussian per-pixel noise makes
# neither easily through a 31-pixel receptive field.
INPUT_NOISE = (("gaussian", 1), ("cubed", 1), ("sparse", 1), ("gaussian", 8), ("gaussian", 32))


def input_noise_maps(source: NoiseSource, like: Tensor) -> Tensor:
    """``(B, len(INPUT_NOISE), H, W)`` noise maps of ``INPUT_NOISE``'s kinds, each of unit
    variance: Gaussian; cubed Gaussian / √15 (kurtosis 36); Gaussian kept where a second
    Gaussian exceeds 2 in magnitude (4.6 % of the pixels), / √0.046; coarse Gaussian drawn at
    1/8 and 1/32 of the size and scaled up bilinearly."""
    h, w = like.shape[-2:]
    maps = []
    for kind, down in INPUT_NOISE:
        small = like[..., : max(1, -(-h // down)), : max(1, -(-w // down))]
        n = source.draw(small)
        if kind == "cubed":
            n = n.pow(3) / 15**0.5
        elif kind == "sparse":
            n = n * (source.draw(small).abs() > 2.0) / 0.0455**0.5
        if down > 1:
            n = F.interpolate(n, size=(h, w), mode="bilinear", align_corners=False)
        maps.append(n)
    return torch.cat(maps, dim=1)


def frame_coordinates(size: tuple[int, int], *, device: torch.device | str | None = None) -> Tensor:
    """``(1, 2, H, W)`` position maps of an H×W frame in [−1, 1]: depth (−1 at the probe) and the
    distance from the frame's vertical centre line (−1 on it, 1 at either side): symmetric, so a
    mirrored frame has the same maps."""
    h, w = size
    depth = torch.linspace(-1.0, 1.0, h, device=device).view(1, 1, h, 1).expand(1, 1, h, w)
    side = torch.linspace(-1.0, 1.0, w, device=device).abs().mul(2).sub(1).view(1, 1, 1, w).expand(1, 1, h, w)
    return torch.cat([depth, side], dim=1)


def texture_seeds(seeds: Sequence[int]) -> list[int]:
    """The texture stage's noise seed for each generator noise seed (a 63-bit hash), so that its
    noise never repeats the generator's."""
    return [int(np.random.SeedSequence([int(s), 0x7E7]).generate_state(2, np.uint32).astype(np.uint64) @ [1 << 31, 1])
            for s in seeds]


class ScannerTexture(nn.Module):
    """``strain + r(bmode, strain, noise)``, clamped to [0, 1], at the frame's resolution.

    The last layer starts at zero, so an untrained stage returns the generator's draw.

    Example:
        >>> t = ScannerTexture(TextureConfig(image_size=32, channels=4, layers=2))
        >>> s = torch.full((2, 1, 32, 32), 0.5)
        >>> bool(torch.equal(t(torch.zeros(2, 1, 32, 32), s, noise_seeds=[1, 2]), s))
        True
    """

    stochastic = True

    def __init__(self, cfg: TextureConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        dil = DILATIONS[: cfg.layers]
        first = (2 + (len(INPUT_NOISE) if cfg.input_noise else 0) + int(cfg.frame_noise) + cfg.frame_latent
                 + 2 * int(cfg.position))
        self.convs = nn.ModuleList(
            nn.Conv2d(first if i == 0 else c, c, 3, padding=d, dilation=d) for i, d in enumerate(dil))
        self.noise = nn.ModuleList(NoiseInjection(c, cfg.noise_init) for _ in dil)
        self.out = nn.Conv2d(c, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        if cfg.out_filter:  # starts as the identity: the stage's texture passes unchanged
            self.out_filter = nn.Conv2d(1, 1, cfg.out_filter, bias=False)
            with torch.no_grad():
                self.out_filter.weight.zero_()
                self.out_filter.weight[0, 0, cfg.out_filter // 2, cfg.out_filter // 2] = 1.0
        if cfg.latent_gain:  # log-gains of the residual and of the streaks per frame; start at 1
            self.gain = nn.Linear(cfg.frame_latent, 2)
            nn.init.zeros_(self.gain.weight)
            nn.init.zeros_(self.gain.bias)
        if cfg.streaks:
            kh, kw = STREAK_KERNEL
            kernel = torch.zeros(1, 1, kh, kw)
            kernel[..., kw // 2] = kh**-0.5
            self.streak_kernel = nn.Parameter(kernel)
            self.streak_gain = nn.Conv2d(c, 1, 3, padding=1)  # amplitude per pixel; starts at zero
            nn.init.zeros_(self.streak_gain.weight)
            nn.init.zeros_(self.streak_gain.bias)
        if cfg.smooth_gate:
            self.smooth_gain = nn.Conv2d(c, 1, 3, padding=1)  # how much to smooth; starts at zero
            nn.init.zeros_(self.smooth_gain.weight)
            nn.init.zeros_(self.smooth_gain.bias)
            taps = torch.arange(-SMOOTH_RADIUS, SMOOTH_RADIUS + 1, dtype=torch.float32)
            kernel = torch.exp(-0.5 * (taps / SMOOTH_SIGMA) ** 2)
            self.register_buffer("smooth_kernel", (kernel / kernel.sum()).view(1, 1, 1, -1), persistent=False)

    def forward(self, bmode: Tensor, strain: Tensor, *, noise_seeds: Sequence[int] | None = None,
                coords: Tensor | None = None, latent: Tensor | None = None, clamp: bool = True) -> Tensor:
        """``bmode`` ``(B, 1, H, W)`` in [−1, 1] and ``strain`` ``(B, 1, H, W)`` in [0, 1] → a draw
        ``(B, 1, H, W)`` in [0, 1]. ``noise_seeds``: one per sample (``texture_seeds``) for a
        reproducible draw; ``None`` draws from torch's global generator (training). ``coords``:
        with ``cfg.position``, the ``(B, 2, H, W)`` ``frame_coordinates`` of a window cut from a
        frame (training); ``None``: the input is a whole frame. ``latent``: with
        ``cfg.frame_latent``, the ``(B, frame_latent)`` codes of the real frames (training);
        ``None``: drawn from N(0, latent_scale² I) by the draw's noise source. ``clamp``: False
        returns the draw before it is clipped to the display's [0, 1] (training charges what
        falls outside: ``TextureTrainConfig.saturation``)."""
        if bmode.shape != strain.shape or bmode.ndim != 4 or bmode.shape[1] != 1:
            raise ValueError(f"expected bmode and strain of one shape (B, 1, H, W), got {tuple(bmode.shape)} and {tuple(strain.shape)}")
        k = self.cfg.scale
        if bmode.shape[-2] % k or bmode.shape[-1] % k:
            raise ValueError(f"expected a frame whose sides are multiples of texture.scale {k}, got {tuple(bmode.shape[-2:])}")
        source = NoiseSource(bmode.shape[0], noise_seeds)
        if self.cfg.position:
            if coords is None:
                coords = frame_coordinates(bmode.shape[-2:], device=bmode.device).expand(bmode.shape[0], -1, -1, -1)
            elif coords.shape != (bmode.shape[0], 2, *bmode.shape[-2:]):
                raise ValueError(f"expected coords {(bmode.shape[0], 2, *bmode.shape[-2:])}, got {tuple(coords.shape)}")
        x = torch.cat([bmode, strain * 2 - 1] + ([coords.to(bmode.dtype)] if self.cfg.position else []), dim=1)
        if k > 1:
            x = F.avg_pool2d(x, k)
        inputs = [x[:, :2]]
        if self.cfg.input_noise:
            inputs.append(input_noise_maps(source, x[:, :1]))
        if self.cfg.frame_noise:  # drawn after the maps above: their draws stay what they were
            inputs.append(source.draw(x[:, :1, :1, :1]).expand_as(x[:, :1]))
        d = self.cfg.frame_latent
        if d:  # drawn after the maps above: their draws stay what they were
            if latent is None:
                latent = self.cfg.latent_scale * torch.cat([source.draw(x[:, :1, :1, :1]) for _ in range(d)], dim=1)
            elif latent.shape != (bmode.shape[0], d):
                raise ValueError(f"expected latent {(bmode.shape[0], d)}, got {tuple(latent.shape)}")
            inputs.append(latent.to(x.dtype).view(-1, d, 1, 1).expand(-1, -1, *x.shape[-2:]))
        if self.cfg.position:
            inputs.append(x[:, 2:])
        x = torch.cat(inputs, dim=1)
        for conv, noise in zip(self.convs, self.noise):
            x = F.gelu(noise(conv(x), source))
        # per frame, the residual's and the streaks' gain; none without latent_gain (no extra pass)
        gain = torch.exp(self.gain(latent.to(x.dtype).reshape(-1, d))).view(-1, 2, 1, 1) if self.cfg.latent_gain else None
        residual = self._full(self.out(x), bmode)
        out = strain + (residual if gain is None else gain[:, :1] * residual)
        if self.cfg.smooth_gate:
            out = out + self._full(self.smooth_gain(x), bmode) * (self._blur(strain) - strain)
        if self.cfg.streaks:  # drawn last: the draws above stay what they were
            t = self.cfg.streak_threshold
            spikes = source.draw(bmode) * (source.draw(bmode).abs() > t) / streak_density(t) ** 0.5
            kh, kw = STREAK_KERNEL
            amplitude = self._full(self.streak_gain(x), bmode)
            if gain is not None:
                amplitude = gain[:, 1:] * amplitude
            out = out + amplitude * F.conv2d(spikes, self.streak_kernel, padding=(kh // 2, kw // 2))
        if self.cfg.out_filter:
            r = self.cfg.out_filter // 2
            out = strain + self.out_filter(F.pad(out - strain, (r, r, r, r), mode="replicate"))
        return out.clamp(0.0, 1.0) if clamp else out

    def _blur(self, m: Tensor) -> Tensor:
        """``m`` blurred by the separable ``SMOOTH_SIGMA`` Gaussian, edges replicated (a window's
        edge then looks like more of the same, not like zero strain)."""
        r = SMOOTH_RADIUS
        m = F.conv2d(F.pad(m, (r, r, 0, 0), mode="replicate"), self.smooth_kernel)
        return F.conv2d(F.pad(m, (0, 0, r, r), mode="replicate"), self.smooth_kernel.transpose(-1, -2))

    def _full(self, coarse: Tensor, like: Tensor) -> Tensor:
        """``coarse`` at ``like``'s size (bilinear; the identity when ``cfg.scale`` is 1)."""
        if self.cfg.scale == 1:
            return coarse
        return F.interpolate(coarse, size=like.shape[-2:], mode="bilinear", align_corners=False)


def build_texture(cfg: TextureConfig) -> ScannerTexture:
    """The texture stage of ``cfg`` (for symmetry with ``build_generator``)."""
    return ScannerTexture(cfg)
