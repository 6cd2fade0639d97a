"""Build the generator and the discriminators a ``ModelConfig`` names.

==============  ======================  ==================================================
``cfg.name``    generator               discriminators (``nn.ModuleDict`` keys)
==============  ======================  ==================================================
``transunet``   ``TransUNet``           ``emode`` (D_E), ``strain`` (D_M), [``lesion``]
``pix2pix``     ``Pix2PixUNet``         ``emode``, [``lesion``]
``l1unet``      ``Pix2PixUNet``         none (an empty ``ModuleDict``)
==============  ======================  ==================================================

Discriminator inputs (B-mode first on the channel axis):

- ``emode``:  ``D(cat(bmode, emode))``, 4 channels.
- ``strain``: ``D(cat(bmode, strain))``, 2 channels.
- ``lesion``: ``D(cat(bmode, emode), lesion_box)``, 4 channels, one box per sample.
"""

from __future__ import annotations

from torch import nn

from elastogan.models.baselines import Pix2PixUNet
from elastogan.models.config import MODEL_NAMES, ModelConfig
from elastogan.models.discriminators import LesionPatchGAN, MultiScalePatchGAN
from elastogan.models.generator import TransUNet

DISCRIMINATOR_CHANNELS: dict[str, int] = {"emode": 1 + 3, "strain": 1 + 1, "lesion": 1 + 3}


def build_generator(cfg: ModelConfig) -> nn.Module:
    """The generator of ``cfg.name``, sized by ``cfg``.

    Example:
        >>> g = build_generator(ModelConfig(name="l1unet", unet_channels=8, unet_levels=5))
        >>> g.divisor
        32
    """
    if cfg.name == "transunet":
        return TransUNet(
            base_channels=cfg.base_channels,
            max_channels=cfg.max_channels,
            num_levels=cfg.num_levels,
            patch_size=cfg.patch_size,
            embed_dim=cfg.embed_dim,
            transformer_depth=cfg.transformer_depth,
            num_heads=cfg.num_heads,
            mlp_ratio=cfg.mlp_ratio,
            dropout=cfg.dropout,
            norm_groups=cfg.norm_groups,
            noise=cfg.noise,
            noise_init=cfg.noise_init,
        )
    if cfg.name in ("pix2pix", "l1unet"):
        return Pix2PixUNet(channels=cfg.unet_channels, levels=cfg.unet_levels, dropout=cfg.unet_dropout)
    raise ValueError(f"model.name must be one of {', '.join(MODEL_NAMES)}, got {cfg.name!r}")


def discriminator_keys(cfg: ModelConfig) -> tuple[str, ...]:
    """The keys ``build_discriminators(cfg)`` returns, in order."""
    if cfg.name == "l1unet":
        return ()
    keys = ("emode", "strain") if cfg.name == "transunet" else ("emode",)
    return keys + (("lesion",) if cfg.lesion_discriminator else ())


def build_discriminators(cfg: ModelConfig) -> nn.ModuleDict:
    """The discriminators of ``cfg.name`` (see the module docstring for keys and inputs).

    Example:
        >>> ds = build_discriminators(ModelConfig(disc_channels=8))
        >>> list(ds)
        ['emode', 'strain']
    """
    if cfg.name not in MODEL_NAMES:
        raise ValueError(f"model.name must be one of {', '.join(MODEL_NAMES)}, got {cfg.name!r}")
    common = {"channels": cfg.disc_channels, "num_layers": cfg.disc_layers, "norm": cfg.disc_norm,
              "spectral_norm": cfg.disc_spectral_norm}
    out = nn.ModuleDict()
    for key in discriminator_keys(cfg):
        if key == "lesion":
            out[key] = LesionPatchGAN(in_channels=DISCRIMINATOR_CHANNELS[key], crop=cfg.lesion_crop, **common)
        else:
            out[key] = MultiScalePatchGAN(in_channels=DISCRIMINATOR_CHANNELS[key], scales=cfg.disc_scales, **common)
    return out
