"""Conditional PatchGAN discriminators, built on MONAI's ``PatchDiscriminator``.

Each discriminator takes the condition and the image concatenated on the channel axis,
B-mode first — ``cat(bmode, emode)`` (4 channels) for D_E, ``cat(bmode, strain)`` (2 channels)
for D_M — and returns a map of raw scores, one per overlapping patch (no sigmoid: the loss
functions in ``elastogan.models.losses`` take logits).

The lesion discriminator (VEUS) looks only at each sample's lesion box: every box is cropped
from its own sample and resized to a fixed side, so a batch may hold boxes of any sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.nets import PatchDiscriminator
from torch import Tensor, nn


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every convolution in ``module``, in place."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Conv2d):
            setattr(module, name, torch.nn.utils.parametrizations.spectral_norm(child))
        else:
            apply_spectral_norm(child)
    return module


class PatchGAN(nn.Module):
    """A conditional PatchGAN (pix2pix's 70×70 discriminator with the defaults).

    MONAI's ``PatchDiscriminator`` returns every intermediate feature map; ``forward`` returns
    only the last one, the patch scores, and ``features`` the others (for feature matching).

    Args:
        in_channels: channels of the concatenated (condition, image) input.
        channels: filters of the first layer, doubled per layer. Default 64.
        num_layers: convolution layers after the first. Default 3.
        norm: a MONAI ``Norm`` name, ``"instance"`` or ``"batch"``. Default ``"instance"``.
        spectral_norm: spectral normalisation of every convolution. Default False.

    Example:
        >>> d = PatchGAN(in_channels=4, channels=8, num_layers=2)
        >>> tuple(d(torch.zeros(2, 4, 32, 48)).shape)
        (2, 1, 6, 10)
    """

    def __init__(self, *, in_channels: int, channels: int = 64, num_layers: int = 3, norm: str = "instance",
                 spectral_norm: bool = False) -> None:
        if in_channels < 1:
            raise ValueError(f"in_channels must be at least 1, got {in_channels}")
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        if norm.lower() not in ("instance", "batch"):
            raise ValueError(f"norm must be 'instance' or 'batch', got {norm!r}")
        super().__init__()
        self.in_channels = in_channels
        self.net = PatchDiscriminator(
            spatial_dims=2,
            channels=channels,
            in_channels=in_channels,
            out_channels=1,
            num_layers_d=num_layers,
            norm=norm.upper(),
        )
        if spectral_norm:
            apply_spectral_norm(self.net)

    def _check(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected (B, {self.in_channels}, H, W), got {tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``(B, in_channels, H, W)`` → patch scores ``(B, 1, h, w)``."""
        self._check(x)
        return self.net(x)[-1]

    def features(self, x: Tensor) -> list[Tensor]:
        """The intermediate feature maps of ``x`` (every layer but the scores)."""
        self._check(x)
        return list(self.net(x)[:-1])


class MultiScalePatchGAN(nn.Module):
    """PatchGANs on the image at full, 1/2, 1/4, … resolution (pix2pixHD, Wang et al. 2018).

    The coarse scales see large structures with the receptive field of the fine one. With one
    scale it is a ``PatchGAN`` (same parameter names, so its checkpoints load either way) and
    returns one score map; with more it returns a list, finest first
    (``elastogan.models.losses.over_scales`` averages a loss over them).

    Args:
        in_channels, channels, num_layers, norm, spectral_norm: as ``PatchGAN``.
        scales: number of scales. Default 1.

    Example:
        >>> d = MultiScalePatchGAN(in_channels=2, channels=8, num_layers=2, scales=2)
        >>> [tuple(s.shape) for s in d(torch.zeros(1, 2, 32, 32))]
        [(1, 1, 6, 6), (1, 1, 2, 2)]
    """

    def __init__(self, *, in_channels: int, scales: int = 1, **kwargs) -> None:
        if scales < 1:
            raise ValueError(f"scales must be at least 1, got {scales}")
        super().__init__()
        self.scales = scales
        self.in_channels = in_channels
        self.net = PatchGAN(in_channels=in_channels, **kwargs).net
        self.coarser = nn.ModuleList(PatchGAN(in_channels=in_channels, **kwargs) for _ in range(scales - 1))

    def _pyramid(self, x: Tensor) -> list[Tensor]:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        out = [x]
        for _ in range(self.scales - 1):
            out.append(F.avg_pool2d(out[-1], 3, stride=2, padding=1, count_include_pad=False))
        return out

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        """Patch scores of ``x`` at each scale: a tensor for one scale, else a list."""
        images = self._pyramid(x)
        scores = [self.net(images[0])[-1]] + [d(im) for d, im in zip(self.coarser, images[1:])]
        return scores[0] if self.scales == 1 else scores

    def features(self, x: Tensor) -> list[Tensor]:
        """Intermediate feature maps of every scale, finest scale first."""
        images = self._pyramid(x)
        feats = list(self.net(images[0])[:-1])
        for d, im in zip(self.coarser, images[1:]):
            feats += d.features(im)
        return feats


def crop_boxes(x: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Crop box ``i`` from sample ``i`` and resize it (bilinear) to ``size × size``.

    Args:
        x: ``(B, C, H, W)``.
        boxes: ``(B, 4)`` integer ``x0, y0, x1, y1`` per sample, end-exclusive; clamped to the
            frame, and at least one pixel wide and high.
        size: output side.

    Returns:
        ``(B, C, size, size)``, differentiable with respect to ``x``.
    """
    if boxes.shape != (x.shape[0], 4):
        raise ValueError(f"expected boxes of shape ({x.shape[0]}, 4), got {tuple(boxes.shape)}")
    h, w = x.shape[-2:]
    crops = []
    for sample, (x0, y0, x1, y1) in zip(x, boxes.tolist()):
        x0, y0 = min(max(x0, 0), w - 1), min(max(y0, 0), h - 1)
        x1, y1 = min(max(x1, x0 + 1), w), min(max(y1, y0 + 1), h)
        crop = sample[None, :, y0:y1, x0:x1]
        crops.append(F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False))
    return torch.cat(crops, dim=0)


class LesionPatchGAN(nn.Module):
    """A PatchGAN on each sample's lesion box (the VEUS tumour discriminator).

    Args:
        in_channels: channels of the concatenated (B-mode, E-mode) input. Default 4.
        crop: side to which every lesion box is resized. Default 64.
        channels, num_layers, norm: as ``PatchGAN``.

    Example:
        >>> d = LesionPatchGAN(in_channels=4, crop=32, channels=8, num_layers=2)
        >>> boxes = torch.tensor([[0, 0, 10, 20], [5, 8, 40, 30]])
        >>> tuple(d(torch.zeros(2, 4, 32, 48), boxes).shape)
        (2, 1, 6, 6)
    """

    def __init__(
        self, *, in_channels: int = 4, crop: int = 64, channels: int = 64, num_layers: int = 3, norm: str = "instance",
        spectral_norm: bool = False,
    ) -> None:
        if crop < 2**num_layers:
            raise ValueError(f"crop must be at least 2**num_layers = {2**num_layers}, got {crop}")
        super().__init__()
        self.crop = crop
        self.patch = PatchGAN(in_channels=in_channels, channels=channels, num_layers=num_layers, norm=norm,
                              spectral_norm=spectral_norm)

    def forward(self, x: Tensor, boxes: Tensor) -> Tensor:
        """``x`` ``(B, C, H, W)``, ``boxes`` ``(B, 4)`` → patch scores on the boxes ``(B, 1, h, w)``."""
        return self.patch(crop_boxes(x, boxes, self.crop))

    def features(self, x: Tensor, boxes: Tensor) -> list[Tensor]:
        """Intermediate feature maps on the boxes."""
        return self.patch.features(crop_boxes(x, boxes, self.crop))
