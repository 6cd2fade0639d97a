"""Baseline generator: the pix2pix U-Net (Isola et al. 2017, ``unet_256``), as VEUS used it.

Both baselines of DESIGN §4 use this network: ``pix2pix`` trains it with one discriminator on
the E-mode, ``l1unet`` with the L1 terms only. Its last transposed convolution gives four
channels instead of three — RGB E-mode (tanh) and mapped strain (sigmoid) — so the baselines
run through the same training, prediction and evaluation code as the TransUNet; nothing else
differs from pix2pix's ``UnetGenerator`` (batch norm, 4×4 stride-2 convolutions, LeakyReLU
down / ReLU up, dropout 0.5 in the inner decoder levels).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from elastogan.models.generator import check_divisible, heads_output

_OUT_CHANNELS = 4  # 3 E-mode + 1 strain
_MAX_MULT = 8  # pix2pix caps the width at 8 × ngf
_PLAIN_LEVELS = 4  # the outer levels without dropout whose width grows ngf → 8·ngf


class UNetLevel(nn.Module):
    """One level of the pix2pix U-Net: down, the inner levels, up, and the skip concatenation.

    Args:
        outer: channels entering (and, concatenated with the skip, leaving) this level.
        inner: channels after this level's down-sampling.
        inner_level: the next level down, or ``None`` for the innermost.
        outermost: the first level, which takes the image and gives the outputs (no skip).
        in_channels: image channels (outermost only).
        out_channels: output channels (outermost only).
        dropout: dropout after the up-sampling (pix2pix uses 0.5 on the inner levels).
    """

    def __init__(
        self,
        *,
        outer: int,
        inner: int,
        inner_level: UNetLevel | None,
        outermost: bool = False,
        in_channels: int | None = None,
        out_channels: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        innermost = inner_level is None
        down_in = in_channels if outermost else outer
        up_in = inner if innermost else 2 * inner
        # pix2pix's in-place LeakyReLU also activates the tensor its skip concatenates; the
        # activation is applied before the split here to keep that behaviour explicitly.
        self.act = nn.Identity() if outermost else nn.LeakyReLU(0.2)
        down = [nn.Conv2d(down_in, inner, 4, stride=2, padding=1, bias=False)]
        if not (outermost or innermost):
            down.append(nn.BatchNorm2d(inner))
        if outermost:
            up = [nn.ReLU(), nn.ConvTranspose2d(up_in, out_channels, 4, stride=2, padding=1)]
        else:
            up = [
                nn.ReLU(),
                nn.ConvTranspose2d(up_in, outer, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(outer),
            ]
            if dropout > 0:
                up.append(nn.Dropout(dropout))
        middle = [] if innermost else [inner_level]
        self.model = nn.Sequential(*down, *middle, *up)

    def forward(self, x: Tensor) -> Tensor:
        if self.outermost:
            return self.model(x)
        x = self.act(x)
        return torch.cat([x, self.model(x)], dim=1)


class Pix2PixUNet(nn.Module):
    """The pix2pix U-Net generator with an E-mode head and a mapped-strain head.

    Args:
        channels: filters of the outermost level (``ngf``). Default 64.
        levels: down-samplings (``num_downs``), at least 5; 8 is ``unet_256`` (54 M
            parameters, 1×1 bottleneck at 256²). Default 8.
        dropout: dropout in the ``levels - 5`` inner decoder levels. Default 0.5.

    Attributes:
        divisor: ``2**levels``; H and W must be multiples of it.

    Example:
        >>> g = Pix2PixUNet(channels=8, levels=5)
        >>> out = g(torch.zeros(2, 1, 32, 64))
        >>> tuple(out["emode"].shape), tuple(out["strain"].shape)
        ((2, 3, 32, 64), (2, 1, 32, 64))
    """

    def __init__(self, *, channels: int = 64, levels: int = 8, dropout: float = 0.5) -> None:
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        if levels < _PLAIN_LEVELS + 1:
            raise ValueError(f"levels must be at least {_PLAIN_LEVELS + 1}, got {levels}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        super().__init__()
        self.divisor = 2**levels
        self.stochastic = False
        top = channels * _MAX_MULT
        level = UNetLevel(outer=top, inner=top, inner_level=None)
        for _ in range(levels - _PLAIN_LEVELS - 1):
            level = UNetLevel(outer=top, inner=top, inner_level=level, dropout=dropout)
        for mult in (4, 2, 1):
            level = UNetLevel(outer=channels * mult, inner=channels * mult * 2, inner_level=level)
        self.net = UNetLevel(
            outer=channels, inner=channels, inner_level=level, outermost=True, in_channels=1,
            out_channels=_OUT_CHANNELS,
        )

    def encoder_features(self, bmode: Tensor) -> list[Tensor]:
        """Every level's down-sampled map, fine → coarse, ending with the innermost code
        ``(B, 8·channels, H/divisor, W/divisor)`` (the decoder is not run). ``elastogan.ood``
        pools them into the fingerprint of the training data. ``bmode`` as for ``forward``.
        """
        check_divisible(bmode, self.divisor)
        x, level, maps = bmode, self.net, []
        while True:
            x = level.act(x)
            layers = list(level.model)
            inner = next((m for m in layers if isinstance(m, UNetLevel)), None)
            # the down-sampling is what precedes the inner level (conv [+ norm]); the innermost
            # level's is its first layer alone
            for layer in layers[: layers.index(inner)] if inner is not None else layers[:1]:
                x = layer(x)
            maps.append(x)
            if inner is None:
                return maps
            level = inner

    def forward(self, bmode: Tensor, *, noise_seeds=None) -> dict[str, Tensor]:
        """``bmode`` ``(B, 1, H, W)`` in [-1, 1] → ``emode`` ``(B, 3, H, W)``, ``strain`` ``(B, 1, H, W)``.

        ``noise_seeds`` is accepted for the generator contract and ignored: in eval mode this
        U-Net is deterministic (its dropout, pix2pix's only noise, is off).
        """
        check_divisible(bmode, self.divisor)
        out = self.net(bmode)
        return heads_output(out[:, :3], out[:, 3:])
