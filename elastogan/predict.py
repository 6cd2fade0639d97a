"""Inference: a trained checkpoint turns B-mode frames of any size into synthetic elastograms.

``Predictor.from_checkpoint(path)`` rebuilds the generator from the config stored in the
checkpoint (no architecture flags) and loads its EMA weights. ``predict(bmode)`` returns

- the **mapped strain** (H×W float32, 0 hard … 1 soft) from the generator's strain head, and
- the **E-mode** (H×W×3 uint8) drawn from that strain by ``elastogan.display.render_emode``
  with the model's colour map, the same rendering path as every real elastogram the project
  shows. The E-mode head is not used for display: it is a training signal (its L1 and
  adversarial terms, and the consistency term that ties it to the strain head). Rendering
  from the strain head guarantees that the picture and the numbers (strain ratio, NCC) agree,
  and that real and synthetic images differ only in content, never in drawing — which the
  blinded reader study requires.

Frame size: the network sees frames as it was trained. A model trained with
``data.image_size`` N sees every frame resized to N×N (as its training frames were) and its
outputs are resized back; a model trained at native size (``image_size: null``) sees the
frame padded at the bottom and right to a multiple of the generator's divisor (black, like
the border of an ultrasound frame), and its outputs are cropped back. Either way the outputs
have the input's H×W.

**Samples.** A generator with noise inputs (``model.noise``) draws one plausible elastogram per
call. ``predict(…, seed=S)`` is one draw — what a scanner would have shown, and what the reader
study and the Preview show; ``sample(…, samples=K, seed=S)`` draws K, the first of which is that
same draw. Draw ``k`` of seed ``S`` uses the noise seed :func:`noise_seed` ``(S, k)`` whatever the
batch, so the same seed gives the same images on any batch size. A set of cases (evaluate,
calibrate, the reader study, the files of one ``elastogan predict`` run) draws case ``c`` with
:func:`case_seed` ``(S, c)``, so no two cases share their noise. A deterministic generator
(pix2pix, a model trained without noise) gives K equal draws (``stochastic`` is False).

``predict`` returns clean images; ``label_synthetic`` burns the word SYNTHETIC into a copy, which
the ``predict`` command does for every file it writes (the reader study shows images unlabelled,
blinded, from the app's own store).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor, nn

from elastogan.checkpoint import load_checkpoint
from elastogan.display import Box, render_emode
from elastogan.errors import InputFileError, UserError
from elastogan.models.config import ModelConfig
from elastogan.models.registry import build_generator
from elastogan.models.texture import ScannerTexture, TextureConfig, build_texture, texture_seeds
from elastogan.ood import OodFingerprint, image_features, to_network
from elastogan.typed_config import from_dict
from elastogan.uncertainty import IntervalCalibration, SampleSummary, strain_ratio_interval, summarise_samples

SYNTHETIC_LABEL = "SYNTHETIC"


def pad_to_multiple(x: Tensor, divisor: int, value: float = -1.0) -> Tensor:
    """Pad ``(B, C, H, W)`` at the bottom and right so H and W are multiples of ``divisor``."""
    h, w = x.shape[-2:]
    ph, pw = -h % divisor, -w % divisor
    return F.pad(x, (0, pw, 0, ph), value=value) if ph or pw else x


def noise_seed(seed: int, draw: int) -> int:
    """The generator's noise seed for draw ``draw`` of ``seed`` (a 63-bit hash of both)."""
    if seed < 0 or draw < 0:
        raise ValueError(f"seed and draw must be non-negative, got {seed} and {draw}")
    return int(np.random.SeedSequence([seed, draw]).generate_state(2, np.uint32).astype(np.uint64) @ [1 << 31, 1])


def case_seed(seed: int, case: str) -> int:
    """The draw seed of case ``case`` in a set of cases drawn with ``seed`` (a 63-bit hash of both).

    Cases drawn with one seed share their noise maps, and a texture stage's frame-wide draws
    (``texture.frame_noise``, ``texture.frame_latent``) come out the same in every case: the set
    then varies from case to case less than scans do, and carries a fingerprint no scanner's
    scans share. ``evaluate``, ``calibrate`` and the reader study give each case its own draw
    this way; it stays reproducible from ``seed`` and the case id alone.

    Example:
        >>> case_seed(0, "a") == case_seed(0, "a") != case_seed(0, "b")
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    words = np.frombuffer(hashlib.sha256(str(case).encode("utf-8")).digest()[:16], np.uint32)
    a, b = (int(v) for v in np.random.SeedSequence([seed, *words.tolist()]).generate_state(2, np.uint32))
    return ((a << 31) + b) & ((1 << 63) - 1)  # exact in Python integers; the mask keeps it < 2⁶³


def label_synthetic(rgb: np.ndarray, text: str = SYNTHETIC_LABEL) -> np.ndarray:
    """A copy of ``rgb`` (H×W×3 uint8) with ``text`` burned into the top-left corner.

    White letters on a black box, about 1/16 of the frame height, so the label survives
    cropping of the colour bar and any later re-encoding.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 image, got {rgb.dtype} {rgb.shape}")
    h, w = rgb.shape[:2]
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=max(8, min(h // 16, w // 8)))
    margin = max(1, h // 100)
    x0, y0, x1, y1 = draw.textbbox((margin, margin), text, font=font)
    draw.rectangle((x0 - margin, y0 - margin, x1 + margin, y1 + margin), fill=(0, 0, 0))
    draw.text((margin, margin), text, fill=(255, 255, 255), font=font)
    return np.asarray(img)


def check_frame(bmode: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``bmode`` is an H×W uint8 frame of at least 2×2 pixels."""
    if not isinstance(bmode, np.ndarray) or bmode.ndim != 2 or bmode.dtype != np.uint8:
        got = f"{bmode.dtype} {bmode.shape}" if isinstance(bmode, np.ndarray) else type(bmode).__name__
        raise ValueError(f"expected an H×W uint8 B-mode, got {got}")
    if min(bmode.shape) < 2:
        raise ValueError(f"a {bmode.shape[0]}×{bmode.shape[1]} frame is too small (at least 2×2)")


def check_roi(roi: Box, shape: tuple[int, int]) -> None:
    """Raise ``ValueError`` unless ``roi`` (end-exclusive) is a non-empty box inside an H×W ``shape``."""
    h, w = shape
    if not (0 <= roi[0] < roi[2] <= w and 0 <= roi[1] < roi[3] <= h):
        raise ValueError(f"ROI {tuple(roi)} is not inside the {h}×{w} frame")



def same_shape_batches(frames: Sequence[np.ndarray], batch_size: int) -> Iterator[list[int]]:
    """Indices of ``frames`` in batches of at most ``batch_size`` frames of one shape (so each
    batch stacks), in first-seen order of the shapes."""
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, f in enumerate(frames):
        by_shape.setdefault(f.shape, []).append(i)
    for idx in by_shape.values():
        for k in range(0, len(idx), batch_size):
            yield idx[k : k + batch_size]

class Predictor:
    """A trained generator ready for frames of any size.

    Args:
        generator: the network (EMA weights), contract of ``elastogan.models.registry``.
        model: the ``ModelConfig`` that built it (colour map, name).
        input_size: side the frames are resized to (the training ``data.image_size``), or
            ``None`` to pad to the divisor instead.
        device: where the generator runs.
        step: optimiser steps the weights were trained for (for provenance).

    Example:
        >>> p = Predictor.from_checkpoint("runs/tiny/checkpoints/best.pt")  # doctest: +SKIP
        >>> emode, strain = p.predict(bmode_uint8)  # doctest: +SKIP
    """

    def __init__(self, generator: nn.Module, model: ModelConfig, *, input_size: int | None,
                 device: str | torch.device = "cpu", step: int = 0,
                 calibration: IntervalCalibration | None = None, fingerprint: OodFingerprint | None = None,
                 texture: ScannerTexture | None = None) -> None:
        divisor = int(generator.divisor)
        if input_size is not None and input_size % divisor:
            raise ValueError(f"input_size {input_size} is not a multiple of the generator's divisor {divisor}")
        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval()
        self.model = model
        self.divisor = divisor
        self.input_size = input_size
        self.step = step
        self.texture = texture.to(self.device).eval() if texture is not None else None
        self.stochastic = bool(getattr(generator, "stochastic", False)) or texture is not None
        self.calibration = calibration
        self.fingerprint = fingerprint

    @property
    def interval_scale(self) -> float:
        """The conformal factor of the per-pixel interval (``elastogan calibrate``); 1 uncalibrated."""
        return self.calibration.pixel_scale if self.calibration is not None else 1.0

    @property
    def ratio_scale(self) -> float:
        """The conformal factor of the strain ratio's interval; 1 when not fitted."""
        c = self.calibration
        return c.ratio_scale if c is not None and c.ratio_scale is not None else 1.0

    def summarise(self, strains: np.ndarray) -> SampleSummary:
        """Mean, sd and the interval of K draws (``sample``), widened by the fitted factor at the
        calibrated level (90 % when uncalibrated)."""
        level = self.calibration.level if self.calibration is not None else 0.9
        return summarise_samples(strains, level=level, scale=self.interval_scale)

    def ratio_interval(self, strains: np.ndarray, lesion: np.ndarray, roi: Box | None) -> dict:
        """The strain ratio of K draws with its interval, widened by the fitted factor."""
        level = self.calibration.level if self.calibration is not None else 0.9
        return strain_ratio_interval(strains, lesion, roi, level=level, scale=self.ratio_scale)

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: str | torch.device | None = None) -> Predictor:
        """Load the EMA generator of a training checkpoint (no flags needed).

        Args:
            path: a ``.pt`` written by ``elastogan train``.
            device: ``"cpu"``, ``"cuda"``…; default CUDA when available.

        Raises:
            InputFileError: not a checkpoint, another format version, or a config this code
                cannot build.
        """
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        ckpt = load_checkpoint(path)
        try:
            config = ckpt["config"]
            model = from_dict(ModelConfig, config["model"], path="model", source=str(path))
            input_size = config.get("data", {}).get("image_size")
            generator = build_generator(model)
            generator.load_state_dict(ckpt["generator_ema"])
            calibration = IntervalCalibration.from_dict(ckpt["uncertainty"]) if "uncertainty" in ckpt else None
            fingerprint = OodFingerprint.from_dict(ckpt["ood"]) if "ood" in ckpt else None
            texture = None
            if "texture" in ckpt:
                texture = build_texture(from_dict(TextureConfig, ckpt["texture"]["config"], path="texture.config",
                                                  source=str(path)))
                texture.load_state_dict(ckpt["texture"]["state"])
        except UserError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise InputFileError(path, f"checkpoint does not hold a generator this code can build ({type(e).__name__}: {e})") from None
        return cls(generator, model, input_size=input_size, device=device, step=int(ckpt.get("step", 0)),
                   calibration=calibration, fingerprint=fingerprint, texture=texture)

    def ood_score(self, bmode: np.ndarray) -> dict | None:
        """How unlike the training data ``bmode`` (H×W uint8) is, by the checkpoint's fingerprint
        (``elastogan.ood``): ``{"score", "percentile", "in_distribution"}`` — the Mahalanobis
        distance of its encoder features, its percentile among the validation split's scores,
        and whether it is at or below the threshold — or ``None`` when the checkpoint has no
        fingerprint (``elastogan fingerprint`` adds one)."""
        check_frame(bmode)
        if self.fingerprint is None:
            return None
        return self.fingerprint.assess(image_features(self, [bmode]))[0]

    def generator_strain(self, x: Tensor, seeds: Sequence[int]) -> Tensor:
        """The generator's strain for B-modes ``x`` ``(B, 1, H, W)`` in [−1, 1], ``(B, 1, H, W)`` at
        their size (resized or cropped back from the network's input), unclamped and
        differentiable (``elastogan.explain`` takes gradients through it); ``seeds``: the noise
        seed of each frame."""
        h, w = x.shape[-2:]
        strain = self.generator(to_network(x, input_size=self.input_size, divisor=self.divisor),
                                noise_seeds=list(seeds))["strain"].float()
        return _resized(strain, (h, w)) if self.input_size is not None else strain[..., :h, :w]

    def _tensor(self, bmodes: np.ndarray) -> Tensor:
        """``(B, H, W)`` uint8 → ``(B, 1, H, W)`` float32 in [−1, 1] on the device."""
        return torch.from_numpy(bmodes).to(self.device, torch.float32)[:, None] / 127.5 - 1.0

    @torch.no_grad()
    def draw_generator(self, bmodes: np.ndarray, seeds: Sequence[int]) -> Tensor:
        """The generator alone: ``(B, H, W)`` uint8 → strain ``(B, 1, H, W)`` float32 tensor in
        [0, 1] at the frame size; ``seeds``: the noise seed of each frame."""
        return self.generator_strain(self._tensor(bmodes), seeds).clamp(0.0, 1.0)

    @torch.no_grad()
    def _forward(self, bmodes: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
        """``(B, H, W)`` uint8 → strain ``(B, H, W)`` float32 (network in, network size out);
        ``seeds``: the noise seed of each frame.

        With a texture stage (``elastogan train-texture``) the generator's draw and the B-mode
        are brought to the stage's frame size, the stage adds the scanner's texture there, and the
        result is brought back to H×W (no resampling at all for frames of that size)."""
        x = self._tensor(bmodes)
        strain = self.generator_strain(x, seeds).clamp(0.0, 1.0)
        if self.texture is not None:
            h, w = x.shape[-2:]
            side = self.texture.cfg.image_size
            strain = self.texture(_resized(x, (side, side)), _resized(strain, (side, side)),
                                  noise_seeds=texture_seeds(seeds))
            strain = _resized(strain, (h, w))
        return strain[:, 0].clamp(0.0, 1.0).cpu().numpy().astype(np.float32)

    def predict(self, bmode: np.ndarray, *, roi: Box | None = None, alpha: float = 0.5, colorbar: bool = True,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Synthetic E-mode and mapped strain for one B-mode frame: one draw.

        Args:
            bmode: H×W uint8 grey B-mode, any size.
            roi: elastography box ``(x0, y0, x1, y1)``; the strain is NaN outside it and the
                colour is drawn inside it. ``None``: the whole frame.
            alpha: colour opacity of the E-mode.
            colorbar: draw the SOFT/HARD colour bar.
            seed: which draw (non-negative); ignored by a deterministic generator.

        Returns:
            ``(emode, strain)``: H×W×3 uint8 (unlabelled; see ``label_synthetic``) and H×W
            float32.
        """
        return self.predict_many([bmode], roi=roi, alpha=alpha, colorbar=colorbar, seed=seed)[0]

    def sample(self, bmode: np.ndarray, *, samples: int, seed: int = 0, roi: Box | None = None,
               batch_size: int = 8) -> np.ndarray:
        """``samples`` draws of the mapped strain for one frame, ``(K, H, W)`` float32.

        Draw 0 is ``predict(bmode, roi=roi, seed=seed)``'s strain; NaN outside ``roi``.
        ``elastogan.uncertainty.summarise_samples`` turns them into mean, sd and intervals.
        """
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be a positive integer, got {samples!r}")
        self._check_inputs([bmode], roi, batch_size, seed)
        seeds = [noise_seed(seed, k) for k in range(samples)]
        strains = []
        for k in range(0, samples, batch_size):
            chunk = seeds[k : k + batch_size]
            strains.append(self._forward(np.stack([bmode] * len(chunk)), chunk))
        out = np.concatenate(strains)
        if roi is not None:
            out[:, ~_box_mask(bmode.shape, roi)] = np.nan
        return out

    @staticmethod
    def _check_inputs(bmodes: Sequence[np.ndarray], roi: Box | None, batch_size: int, seed: int | Sequence[int]) -> None:
        for i, b in enumerate(bmodes):
            try:
                check_frame(b)
                if roi is not None:
                    check_roi(roi, b.shape)
            except ValueError as e:
                raise ValueError(f"frame {i}: {e}") from None
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        for one in (seed if isinstance(seed, Sequence) else [seed]):
            if isinstance(one, bool) or not isinstance(one, (int, np.integer)) or one < 0:
                raise ValueError(f"seed must be a non-negative integer, got {one!r}")

    def predict_many(self, bmodes: Sequence[np.ndarray], *, batch_size: int = 8, roi: Box | None = None,
                     alpha: float = 0.5, colorbar: bool = True, seed: int | Sequence[int] = 0
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``predict`` for many frames, batched (frames of one size share a batch); draw ``seed`` of
        each, or with one seed per frame (e.g. ``case_seed``), frame ``i``'s draw ``seed[i]``."""
        seeds = [seed] * len(bmodes) if isinstance(seed, (int, np.integer)) else list(seed)
        if len(seeds) != len(bmodes):
            raise ValueError(f"expected one seed per frame, got {len(seeds)} seeds for {len(bmodes)} frames")
        self._check_inputs(bmodes, roi, batch_size, seeds)
        frame_seeds = [noise_seed(s, 0) for s in seeds]
        strains: list[np.ndarray | None] = [None] * len(bmodes)
        for chunk in same_shape_batches(bmodes, batch_size):
            for i, s in zip(chunk, self._forward(np.stack([bmodes[i] for i in chunk]), [frame_seeds[i] for i in chunk])):
                strains[i] = s
        out = []
        for b, s in zip(bmodes, strains):
            h, w = b.shape
            box = roi or (0, 0, w, h)
            if roi is not None:
                s = np.where(_box_mask((h, w), box), s, np.nan).astype(np.float32)
            emode = render_emode(b, s, box, colormap=self.model.colormap, alpha=alpha, colorbar=colorbar)
            out.append((emode, s))
        return out


def _resized(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``x`` ``(B, C, H, W)`` at ``size`` (antialiased bilinear, as ``to_network``); itself when already so."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def _box_mask(shape: tuple[int, int], box: Box) -> np.ndarray:
    inside = np.zeros(shape, bool)
    inside[box[1] : box[3], box[0] : box[2]] = True
    return inside
