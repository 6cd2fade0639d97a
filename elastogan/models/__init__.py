"""Generators, discriminators and losses (DESIGN §4).

``build_generator(cfg)`` and ``build_discriminators(cfg)`` turn a ``ModelConfig`` into
networks; ``elastogan.models.losses`` holds the loss terms whose weights ``LossConfig`` sets.
"""

from elastogan.models.baselines import Pix2PixUNet
from elastogan.models.colorize import blend_torch, colorize_torch, roi_mask
from elastogan.models.config import ADV_KINDS, MODEL_NAMES, LossConfig, ModelConfig
from elastogan.models.discriminators import LesionPatchGAN, PatchGAN, crop_boxes
from elastogan.models.generator import TransUNet
from elastogan.models.losses import (
    adversarial_losses,
    consistency_loss,
    hinge_d_loss,
    hinge_g_loss,
    lsgan_d_loss,
    lsgan_g_loss,
    masked_l1,
    ncc,
    ncc_loss,
    ssim_loss,
)
from elastogan.models.registry import (
    DISCRIMINATOR_CHANNELS,
    build_discriminators,
    build_generator,
    discriminator_keys,
)

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
