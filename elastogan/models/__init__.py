"""Generators, discriminators and losses (DESIGN §4).

``build_generator(cfg)`` and ``build_discriminators(cfg)`` turn a ``ModelConfig`` into
networks; ``elastogan.models.losses`` holds the loss terms whose weights ``LossConfig`` sets.

Names are loaded on first use (PEP 562): ``elastogan.models.config`` holds plain dataclasses,
and command-line parsers that need only it must not pay for importing torch and MONAI.
"""

import importlib

_WHERE = {
    "Pix2PixUNet": "baselines",
    "blend_torch": "colorize", "colorize_torch": "colorize", "roi_mask": "colorize",
    "ADV_KINDS": "config", "MODEL_NAMES": "config", "LossConfig": "config", "ModelConfig": "config",
    "LesionPatchGAN": "discriminators", "PatchGAN": "discriminators", "crop_boxes": "discriminators",
    "TransUNet": "generator",
    **{name: "losses" for name in (
        "adversarial_losses", "consistency_loss", "hinge_d_loss", "hinge_g_loss", "lsgan_d_loss",
        "lsgan_g_loss", "masked_l1", "ncc", "ncc_loss", "ssim_loss")},
    **{name: "registry" for name in (
        "DISCRIMINATOR_CHANNELS", "build_discriminators", "build_generator", "discriminator_keys")},
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"elastogan.models.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'elastogan.models' has no attribute {name!r}")


__all__ = [
    "ADV_KINDS",
    "DISCRIMINATOR_CHANNELS",
    "MODEL_NAMES",
    "LesionPatchGAN",
    "LossConfig",
    "ModelConfig",
    "PatchGAN",
    "Pix2PixUNet",
    "TransUNet",
    "adversarial_losses",
    "blend_torch",
    "build_discriminators",
    "build_generator",
    "colorize_torch",
    "consistency_loss",
    "crop_boxes",
    "discriminator_keys",
    "hinge_d_loss",
    "hinge_g_loss",
    "lsgan_d_loss",
    "lsgan_g_loss",
    "masked_l1",
    "ncc",
    "ncc_loss",
    "roi_mask",
    "ssim_loss",
]
