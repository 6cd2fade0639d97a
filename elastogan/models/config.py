"""Typed configuration of the models and of the loss weights.

These dataclasses are the truth (STYLE habit 3): YAML only sets their values, and the resolved
values are saved with every run and inside every checkpoint, so ``build_generator(cfg)``
rebuilds the exact network without flags. Every size knob and every loss weight lives here;
code paths carry no literal weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from elastogan.colormaps import COLORMAPS

MODEL_NAMES: tuple[str, ...] = ("transunet", "pix2pix", "l1unet")
ADV_KINDS: tuple[str, ...] = ("lsgan", "hinge")


@dataclass
class ModelConfig:
    """Which generator and discriminators to build, and their sizes.

    Args:
        name: registry key: ``"transunet"`` (the reference system's Transformer-UNet with two
            discriminators), ``"pix2pix"`` (the VEUS baseline: 8-level pix2pix U-Net, one
            discriminator on the E-mode) or ``"l1unet"`` (the same U-Net trained with L1 only:
            no discriminators). Default ``"transunet"``.
        base_channels: TransUNet width at full resolution; level ``i`` (1/2^i) has
            ``min(base_channels * 2**i, max_channels)`` channels. Default 16.
        max_channels: cap on the TransUNet convolution width. Default 256.
        num_levels: TransUNet stride-2 stages before the tokens. Default 4 (tokens at 1/16
            with ``patch_size`` 1).
        patch_size: side of the square patches cut from the deepest feature map into tokens.
            The generator's divisor is ``2**num_levels * patch_size``. Default 1.
        embed_dim: transformer width. Default 256.
        transformer_depth: transformer blocks. Default 6.
        num_heads: attention heads; must divide ``embed_dim``. Default 8.
        mlp_ratio: hidden width of the transformer MLP over ``embed_dim``. Default 4.0.
        dropout: dropout in the transformer (attention and MLP). Default 0.0.
        norm_groups: GroupNorm groups in the TransUNet convolutions (batch-size independent,
            so training with one image per GPU behaves as with many). Default 8.
        noise: TransUNet draws samples: per-pixel noise with a learned per-channel strength
            at every decoder level (StyleGAN). Train it with ``loss.recon_samples`` > 1, or the
            reconstruction terms teach it to ignore the noise. Default False.
        noise_init: initial noise strength. Default 0.1.
        unet_channels: pix2pix/l1unet filters in the outermost layer (``ngf``). Default 64.
        unet_levels: pix2pix/l1unet down-samplings (``num_downs``); 8 is ``unet_256``, whose
            divisor is 256. Default 8.
        unet_dropout: dropout in the three innermost pix2pix decoder levels (pix2pix's noise).
            Default 0.5.
        disc_channels: PatchGAN filters in the first layer, doubled per layer. Default 64.
        disc_layers: PatchGAN convolution layers after the first (3 gives the 70×70 PatchGAN).
            Default 3.
        disc_norm: PatchGAN normalisation, a MONAI ``Norm`` name (``"instance"``,
            ``"batch"``). Default ``"instance"``.
        disc_scales: image scales each discriminator judges (pix2pixHD's multi-scale
            discriminator: full, 1/2, 1/4, … resolution, one PatchGAN each). Default 1.
        disc_spectral_norm: spectral normalisation of every discriminator convolution
            (Miyato et al. 2018). Default False.
        lesion_discriminator: add the VEUS discriminator on the lesion box (``transunet``
            or ``pix2pix``; ``pix2pix`` with it is the VEUS design). Default False.
        lesion_crop: side in pixels to which each lesion box is resized for that
            discriminator. Default 64.
        colormap: the colour map the E-mode head learns (a name in
            ``elastogan.colormaps.COLORMAPS``), used by the consistency loss and to draw
            the E-mode from the strain head. Default ``"hitachi"``.

    Example:
        >>> cfg = ModelConfig(name="pix2pix", unet_levels=5)
        >>> cfg.name, cfg.unet_levels
        ('pix2pix', 5)
    """

    name: str = "transunet"
    # TransUNet
    base_channels: int = 16
    max_channels: int = 256
    num_levels: int = 4
    patch_size: int = 1
    embed_dim: int = 256
    transformer_depth: int = 6
    num_heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    norm_groups: int = 8
    noise: bool = False
    noise_init: float = 0.1
    # pix2pix / l1unet U-Net
    unet_channels: int = 64
    unet_levels: int = 8
    unet_dropout: float = 0.5
    # discriminators
    disc_channels: int = 64
    disc_layers: int = 3
    disc_norm: str = "instance"
    disc_scales: int = 1
    disc_spectral_norm: bool = False
    lesion_discriminator: bool = False
    lesion_crop: int = 64
    # display
    colormap: str = "hitachi"

    def __post_init__(self) -> None:
        if self.name not in MODEL_NAMES:
            raise ValueError(f"model.name must be one of {', '.join(MODEL_NAMES)}, got {self.name!r}")
        for field in ("base_channels", "max_channels", "num_levels", "patch_size", "embed_dim",
                      "num_heads", "norm_groups", "unet_channels",
                      "unet_levels", "disc_channels", "disc_layers", "disc_scales", "lesion_crop"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"model.{field} must be a positive integer, got {value!r}")
        if not isinstance(self.transformer_depth, int) or self.transformer_depth < 0:
            raise ValueError(f"model.transformer_depth must be a non-negative integer, got {self.transformer_depth!r}")
        for field in ("dropout", "unet_dropout"):
            value = getattr(self, field)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"model.{field} must be in [0, 1), got {value!r}")
        if self.mlp_ratio <= 0:
            raise ValueError(f"model.mlp_ratio must be positive, got {self.mlp_ratio!r}")
        if not self.noise_init >= 0:
            raise ValueError(f"model.noise_init must be >= 0, got {self.noise_init!r}")
        if self.noise and self.name != "transunet":
            raise ValueError(f"model.noise is a TransUNet option; model.name {self.name!r} has no noise inputs")
        if self.colormap not in COLORMAPS:
            raise ValueError(f"model.colormap must be one of {', '.join(sorted(COLORMAPS))}, got {self.colormap!r}")
        if self.lesion_discriminator and self.name == "l1unet":
            raise ValueError("model.lesion_discriminator needs a GAN; model.name 'l1unet' has no discriminators")


@dataclass
class LossConfig:
    """Generator-loss weights and the adversarial formulation (see ``elastogan.models.losses``).

    A weight of 0 switches its term off (and the training loop skips computing it).

    Args:
        adv: adversarial formulation, ``"lsgan"`` or ``"hinge"``. Default ``"lsgan"``.
        l1_emode: L1 on the E-mode head. Default 100.0 (pix2pix's λ).
        l1_strain: L1 on the strain head, inside the ROI. Default 100.0.
        ncc_strain: 1 − NCC on the strain head, inside the ROI. Default 10.0.
        ssim: 1 − SSIM on the strain head. Default 0.0.
        consistency: colourising the strain head must give the E-mode head. Default 0.0.
        adv_emode: adversarial weight from D_E (B-mode, E-mode). Default 1.0.
        adv_strain: adversarial weight from D_M (B-mode, mapped strain). Default 1.0.
        adv_lesion: adversarial weight from the lesion-box discriminator. Default 0.0.
        feature_matching: L1 between the discriminators' intermediate features of real and
            generated images (pix2pixHD). Default 0.0.
        spectral: L1 between the log radially averaged power spectra of the generated and the
            real strain in the ROI (``losses.spectral_loss``) — phase-free, so it asks for the
            scanner's texture energy at each scale without asking for its exact speckle.
            Default 0.0.
        spectral_sectors: 1 compares rings; 2 compares the axial and the lateral half of every
            ring apart, so the anisotropy of the scanner's texture (axial tracking streaks)
            counts too. Default 1.
        recon_samples: samples ``K`` drawn per B-mode at each step. With ``K`` > 1 the
            reconstruction terms (L1, NCC, SSIM) score the *mean* of the K samples and the
            adversarial, spectral and consistency terms score every sample: the mean must be
            right, each sample must look real (moment reconstruction, Lee et al. 2019,
            "Harmonizing maximum likelihood with GANs"). Default 1 (every term on the one draw).

    Example:
        >>> LossConfig(adv="hinge").adv
        'hinge'
    """

    adv: str = "lsgan"
    l1_emode: float = 100.0
    l1_strain: float = 100.0
    ncc_strain: float = 10.0
    ssim: float = 0.0
    consistency: float = 0.0
    adv_emode: float = 1.0
    adv_strain: float = 1.0
    adv_lesion: float = 0.0
    feature_matching: float = 0.0
    spectral: float = 0.0
    spectral_sectors: int = 1
    recon_samples: int = 1

    def __post_init__(self) -> None:
        if self.adv not in ADV_KINDS:
            raise ValueError(f"loss.adv must be one of {', '.join(ADV_KINDS)}, got {self.adv!r}")
        for field in ("l1_emode", "l1_strain", "ncc_strain", "ssim", "consistency",
                      "adv_emode", "adv_strain", "adv_lesion", "feature_matching", "spectral"):
            value = getattr(self, field)
            if not value >= 0.0:
                raise ValueError(f"loss.{field} must be a non-negative weight, got {value!r}")
        if self.spectral_sectors not in (1, 2):
            raise ValueError(f"loss.spectral_sectors must be 1 or 2, got {self.spectral_sectors!r}")
        if isinstance(self.recon_samples, bool) or not isinstance(self.recon_samples, int) or self.recon_samples < 1:
            raise ValueError(f"loss.recon_samples must be a positive integer, got {self.recon_samples!r}")
