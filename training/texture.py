"""Train the scanner-texture stage (``elastogan.models.texture``) on top of a frozen generator.

The generator of a checkpoint draws at its own size (128² for the shipped model); the stage
learns, at the frames' full resolution, what the scanner adds to a smooth strain map. Each
step takes ``batch_size`` training frames, draws ``samples`` generator maps of each (the
inference path, ``Predictor.draw_generator``: the same resampling the product applies), cuts
one random window per frame inside its ROI, runs the stage on the window ``samples`` times
with fresh noise and scores the draws against the scanner's map:

- ``crps`` · the fair CRPS of the draws (``losses.crps_samples``): each pixel's spread
  follows that pixel's error;
- ``spectral`` · the phase-free ring (× axial/lateral) power of every draw against the real
  map's (``losses.spectral_loss``): the texture at every scale;
- ``stats`` · the texture observer's kinds of statistic (local sd, gradient energy along and
  across the beam, neighbour correlation, outlier share, homogeneity) of every draw against
  the real window's, in units of their spread over real windows
  (``models.texture_stats``): what neither term above pins down.

The window is cut with a margin of half the stage's receptive field and scored inside it only,
so the zero padding at the window's edge never shapes what is learnt. The result is the
generator's checkpoint plus a ``texture`` entry (config, weights, training config): one file
that ``Predictor``, predict, evaluate, the Preview and the reader study load as before. The
interval calibration of the generator alone no longer holds and is dropped; run
``elastogan calibrate`` on the new file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from elastogan.checkpoint import inference_payload, load_checkpoint, save_checkpoint
from elastogan.data.dataset import load_case_arrays
from elastogan.data.manifest import read_manifest
from elastogan.data.resize import resize_case_arrays
from elastogan.errors import UserError
from elastogan.models import losses, texture_stats
from elastogan.models.texture import ScannerTexture, TextureConfig, build_texture, frame_coordinates
from elastogan.predict import Predictor
from elastogan.typed_config import from_dict, to_dict
from elastogan.training.frame_moments import FrameMoments, FrameRelations, emode_frame_features, frame_features
from elastogan.training.frame_latent import encode_frames, frame_statistics


@dataclass(frozen=True)
class TextureTrainConfig:
    """How the texture stage is trained (``--set train.KEY=VALUE``).

    Args:
        steps: optimiser steps. Default 1500.
        batch_size: frames per step. Default 8.
        samples: draws per frame (K ≥ 2: the CRPS needs a spread). Default 4.
        crop: side of the scored window. Default 64.
        lr: Adam learning rate, decayed linearly to 0 over the last third. Default 1e-3.
        crps: weight of the fair CRPS. Default 100 (the generator's L1 weight: same units).
        crps_pool: score the CRPS on ``crps_pool × crps_pool`` block means of the draws and of
            the real map (masked), not on pixels. Per pixel the cheapest spread is white noise,
            which a reader sees as grain the scanner does not show; on block means only spread
            that is coherent over the block counts, and the fine texture is left to the spectral
            term. Default 1 (pixels).
        spectral: weight of the spectral term. Default 20 (as ``default.yaml``).
        spectral_sectors: 2 scores axial and lateral texture apart. Default 2.
        stats: weight of the texture-statistics term (``texture_stats_loss``; its units are
            the statistics' sd over ``stats_windows`` real windows). Default 30 (0: off; 10
            and 100 did worse in the ablation of docs/training.md).
        stats_batch: weight, inside the stats term, of the statistics' batch means against the
            real windows' (``texture_stats_loss``'s ``batch``: the paired L1 alone leaves every
            draw a little too clean). Default 0.
        stats_score: ``"l1"`` scores each draw's statistics against its window's; ``"l2"`` the
            same squared (to the conditional mean, not the median); ``"crps"`` the draws'
            statistics together (``texture_stats_loss``'s ``score``). Default "l1".
        stats_linear: match the local sds and the mean gradient themselves, not their logs
            (``texture_statistics``'s ``linear``: the observer averages them over the ROI).
            Default False.
        stats_hard: count outliers and strong edges exactly, with the soft count's gradient
            (``texture_statistics``'s ``hard``). Default False.
        windows: ``"inside"`` cuts each scored window inside the ROI as far as it allows and
            scores it inside the margin of half the receptive field; ``"overlap"`` anywhere it
            overlaps the ROI by a quarter, and also scores the margin where the window meets
            the frame's edge (``window_corners``, ``scored_mask``): the ROI's edges and the
            frame's sides, where the scanner's strain is noisiest, are learnt as often as the
            rest. Default "inside".
        stats_whiten: measure the statistics' differences in units of the real windows' joint
            spread (``statistic_whitening``), not each statistic's own sd. Default False.
        stats_energy: weight of an unpaired term: the energy distance between the draws'
            statistics and those of the ``stats_windows`` real windows
            (``texture_stats_energy``), so that the draws' statistics spread from window to
            window and relate to each other as the scanner's, where the paired terms pull
            each draw to its own window's conditional mean. Default 0 (off).
        stats_windows: real training windows that set the statistics' units, drawn once
            before the first step from their own stream (seed + 1), so ``stats = 0`` runs
            draw exactly the windows they drew before the term existed. Default 256.
        hflip: mirror half the windows left-right (the scanner's texture has no side). Default True.
        seed: windows, draws and initial weights. Default 0.
        log_every: steps between log lines in ``metrics.jsonl``. Default 50.
        val_cases: validation frames scored at the end (whole frames, 4 draws). Default 24.
        bank_draws: generator draws made once per training frame before the first step (the
            generator is frozen, so they need not be redrawn: 4 draws of 900 frames at 256²
            take 0.5 GB as float16); each step picks ``samples`` of them. Default 4.
        frame_moments: weight of a term on whole frames (``training/frame_moments.py``): each
            step ``frame_batch`` training frames are drawn whole, as at inference, and the
            running mean of their ROI's texture statistics (the texture observer's kinds) is
            charged its squared Mahalanobis distance from the real frames' mean. The window
            terms see 64² crops one at a time; the observer sees one vector per ROI, and a
            linear observer wins on the shift of their means. Default 0 (off).
        frame_cov: weight of the same frames' covariance against the real frames' (in the units
            that whiten the real frames': ``FrameMoments``): that the draws' texture varies from
            frame to frame as the scans' does. Needs ``frame_moments > 0`` (the same draws).
            Default 0 (off).
        frame_batch: whole frames drawn per step for ``frame_moments``. Default 4.
        frame_momentum: the running mean's momentum (``FrameMoments``). Default 0.96.
        frame_ridge: the ridge of the real frames' covariance in ``FrameMoments``' units, in
            multiples of its diagonal (larger: a shift in the amount of texture costs more).
            Default 0.01.
        frame_relations: weight of a term on the same whole frames (``FrameRelations``): each
            frame's deviation from the relations between features that real frames hold almost
            exactly (the directions a ridge discounts), charged frame by frame. Needs whole
            frames: ``frame_batch`` are drawn when it or ``frame_moments`` is on. Default 0 (off).
        frame_relations_below: the eigenvalue of the real frames' feature correlation under
            which a direction counts as a relation. Default 0.05.
        frame_emode: the frame terms also see each frame's E-mode as a reader sees it (the
            luminance of the colour map blended over the B-mode, ``emode_luminance``): the same
            statistics of it join the strain's. Default false.
        saturation: weight of a term on what each window's draws push outside the display's
            [0, 1] before they are clipped (the mean of ``relu(−x) + relu(x − 1)``, strain units).
            Clipped, such a draw shows a patch of uniform hard (or soft) strain that the scanner
            hardly ever shows — 0.2 % of the ROI at 0 in phantom-v2's scans — and which no texture
            statistic (all centred) sees, and where the clip leaves no gradient for any other term:
            session 19's stage left more than a fifth of the ROI at 0 in one draw in twenty (up
            to 81 %) and more than 30 % of the lesion in one in ten, sending that draw's strain
            ratio to 10–20. Default 0 (off).
    """

    steps: int = 1500
    batch_size: int = 8
    samples: int = 4
    crop: int = 64
    lr: float = 1e-3
    crps: float = 100.0
    spectral: float = 20.0
    spectral_sectors: int = 2
    stats: float = 30.0
    stats_batch: float = 0.0
    stats_score: str = "l1"
    stats_windows: int = 256
    stats_linear: bool = False
    stats_hard: bool = False
    windows: str = "inside"
    stats_whiten: bool = False
    stats_energy: float = 0.0
    hflip: bool = True
    seed: int = 0
    log_every: int = 50
    val_cases: int = 24
    bank_draws: int = 4
    crps_pool: int = 1
    frame_moments: float = 0.0
    frame_cov: float = 0.0
    frame_batch: int = 4
    frame_momentum: float = 0.96
    frame_ridge: float = 0.01
    frame_relations: float = 0.0
    frame_relations_below: float = 0.05
    frame_emode: bool = False
    saturation: float = 0.0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "crop", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        if self.samples < 2:
            raise ValueError(f"train.samples must be at least 2 (the CRPS scores a spread), got {self.samples}")
        if self.crop < 8:
            raise ValueError(f"train.crop must be at least 8, got {self.crop}")
        if self.lr <= 0:
            raise ValueError(f"train.lr must be positive, got {self.lr}")
        if min(self.crps, self.spectral, self.stats) < 0 or self.crps + self.spectral + self.stats == 0:
            raise ValueError("train.crps, train.spectral and train.stats must be >= 0 and not all 0, "
                             f"got {self.crps}, {self.spectral} and {self.stats}")
        if self.stats_score not in ("l1", "l2", "crps"):
            raise ValueError(f"train.stats_score must be 'l1', 'l2' or 'crps', got {self.stats_score!r}")
        if self.stats_batch < 0 or self.stats_energy < 0:
            raise ValueError(f"train.stats_batch and train.stats_energy must be >= 0, got {self.stats_batch} and "
                             f"{self.stats_energy}")
        if self.stats_energy > 0 and self.stats == 0:
            raise ValueError("train.stats_energy needs train.stats > 0 (it is measured in the statistics' units)")
        if self.windows not in ("inside", "overlap"):
            raise ValueError(f"train.windows must be 'inside' or 'overlap', got {self.windows!r}")
        if self.stats_windows < 2:
            raise ValueError(f"train.stats_windows must be at least 2 (a spread), got {self.stats_windows}")
        if self.spectral_sectors not in (1, 2):
            raise ValueError(f"train.spectral_sectors must be 1 or 2, got {self.spectral_sectors}")
        if self.crps_pool < 1 or self.crop % self.crps_pool:
            raise ValueError(f"train.crps_pool must be a positive divisor of train.crop ({self.crop}), got {self.crps_pool}")
        if self.bank_draws < 1:
            raise ValueError(f"train.bank_draws must be at least 1, got {self.bank_draws}")
        if self.frame_moments < 0 or not 0 <= self.frame_momentum < 1:
            raise ValueError(f"train.frame_moments must be >= 0 and train.frame_momentum in [0, 1), got "
                             f"{self.frame_moments} and {self.frame_momentum}")
        if self.frame_cov < 0 or (self.frame_cov > 0 and self.frame_moments == 0):
            raise ValueError(f"train.frame_cov must be >= 0 and needs train.frame_moments > 0, got {self.frame_cov} "
                             f"and {self.frame_moments}")
        if not self.frame_ridge > 0:
            raise ValueError(f"train.frame_ridge must be positive, got {self.frame_ridge}")
        if self.frame_relations < 0 or not 0 < self.frame_relations_below <= 1:
            raise ValueError(f"train.frame_relations must be >= 0 and train.frame_relations_below in (0, 1], got "
                             f"{self.frame_relations} and {self.frame_relations_below}")
        if self.frame_batch < 1:
            raise ValueError(f"train.frame_batch must be at least 1, got {self.frame_batch}")
        if self.saturation < 0:
            raise ValueError(f"train.saturation must be >= 0, got {self.saturation}")
        if self.seed < 0 or self.val_cases < 0:
            raise ValueError("train.seed and train.val_cases must be >= 0")


@dataclass(frozen=True)
class TextureRunConfig:
    """The whole texture run: the stage's architecture and its training."""

    texture: TextureConfig = field(default_factory=TextureConfig)
    train: TextureTrainConfig = field(default_factory=TextureTrainConfig)


@dataclass
class Frames:
    """Frames of one split at the stage's size: uint8 B-modes, strain (NaN outside the ROI), ROI
    boxes, and the colour opacity each E-mode was drawn with (``source.display_alpha``, 0.5 where
    the manifest does not say)."""

    ids: list[str]
    bmode: np.ndarray  # (N, S, S) uint8
    strain: np.ndarray  # (N, S, S) float32, NaN where undefined
    roi: list[tuple[int, int, int, int]]
    alpha: np.ndarray | None = None  # (N,) float32; None: 0.5 for every frame

    def alphas(self, idx) -> np.ndarray:
        """The E-mode opacity of frames ``idx``."""
        return np.full(len(idx), 0.5, np.float32) if self.alpha is None else self.alpha[idx]


def load_frames(manifest: Path, split: str, size: int, *, limit: int | None = None) -> Frames:
    """Every case of ``split`` with a strain map, resized to ``size²`` where it differs (as
    training resizes); raises ``UserError`` when the split has none."""
    cases = [c for c in read_manifest(manifest, check_files=False).split(split) if c.strain]
    if limit is not None:
        cases = cases[:limit]
    if not cases:
        raise UserError(f"{manifest}: no case of split {split!r} has a strain map; the texture stage learns from them")
    ids, bmodes, strains, rois, alphas = [], [], [], [], []
    for case in cases:
        a = load_case_arrays(case)
        if a["bmode"].shape != (size, size):
            a = resize_case_arrays(a, size)
        ids.append(case.id)
        bmodes.append(a["bmode"])
        strains.append(a["strain"].astype(np.float32))
        rois.append(tuple(int(v) for v in a["roi"]))
        alphas.append(float((case.source or {}).get("display_alpha", 0.5)))
    return Frames(ids, np.stack(bmodes), np.stack(strains), rois, np.asarray(alphas, np.float32))


def window_corners(rng: np.random.Generator, roi: tuple[int, int, int, int], size: int, crop: int,
                   margin: int, *, overlap: bool = False, align: int = 1) -> tuple[int, int]:
    """Top-left corner of a ``crop + 2·margin`` window inside a ``size²`` frame whose scored
    ``crop²`` centre lies inside ``roi`` as far as the ROI allows; with ``overlap``, anywhere it
    keeps at least a quarter of the crop inside the ROI along each axis (clipped to the frame),
    so that the ROI's edges are scored as often as its middle. ``align``: the corner is rounded
    down to a multiple of it (a stage with ``texture.scale`` averages the frame over blocks of
    that side: a window's blocks must be the frame's)."""
    side = crop + 2 * margin
    x0, y0, x1, y1 = roi
    corners = []
    for lo, hi in ((y0, y1), (x0, x1)):
        if overlap:
            keep = min(crop // 4, max(hi - lo, 1))
            first, last = lo - crop + keep - margin, hi - keep - margin
            corner = int(rng.integers(first, max(last, first) + 1))
            corners.append(min(max(corner, 0), size - side) // align * align)
            continue
        first = min(max(lo - margin, 0), size - side)
        last = max(min(hi - crop - margin, size - side), first)
        corners.append(int(rng.integers(first, last + 1)) // align * align)
    return corners[0], corners[1]


def scored_mask(corners, flips, size: int, side: int, margin: int) -> torch.Tensor:
    """``(B, 1, side, side)``: where each window is scored — inside its margin, and in the margin
    too on a side where the window meets the frame's edge (there the stage's zero padding is the
    frame's own, as at inference, so the pixels next to the frame's edge are learnt as well)."""
    out = torch.zeros(len(corners), 1, side, side)
    for j, ((y, x), flip) in enumerate(zip(corners, flips)):
        top, bottom = (0 if y == 0 else margin), (side if y == size - side else side - margin)
        left, right = (0 if x == 0 else margin), (side if x == size - side else side - margin)
        out[j, 0, top:bottom, left:right] = 1.0
        if flip:
            out[j] = out[j].flip(-1)
    return out


def generator_bank(predictor: Predictor, bmodes: np.ndarray, draws: int, seed: int, *, batch: int = 32) -> np.ndarray:
    """``draws`` generator maps of every frame, ``(N, draws, S, S)`` float16; draw ``d`` of frame
    ``n`` uses noise seed ``(seed, n, d)``."""
    out = np.empty((len(bmodes), draws, *bmodes.shape[1:]), np.float16)
    jobs = [(n, d) for n in range(len(bmodes)) for d in range(draws)]
    for k in range(0, len(jobs), batch):
        chunk = jobs[k : k + batch]
        seeds = [int(np.random.SeedSequence([seed, n, d]).generate_state(1)[0]) for n, d in chunk]
        maps = predictor.draw_generator(np.stack([bmodes[n] for n, _ in chunk]), seeds)[:, 0].cpu().numpy()
        for (n, d), m in zip(chunk, maps):
            out[n, d] = m
    return out


def pooled(draws: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, size: int
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Masked ``size × size`` block means of ``draws`` ``(K, B, 1, H, W)`` and ``target``, and the
    mask of the blocks that are at least half defined."""
    k = draws.shape[0]
    covered = F.avg_pool2d(mask, size)
    weight = covered.clamp_min(1e-6)
    d = F.avg_pool2d((draws * mask).flatten(0, 1), size).unflatten(0, (k, -1)) / weight
    t = F.avg_pool2d(target * mask, size) / weight
    return d, t, (covered >= 0.5).float()


def score_draws(draws: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, cfg: TextureTrainConfig,
                scale: torch.Tensor | None = None, reference: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The unweighted terms for ``draws`` ``(K, B, 1, H, W)`` against ``target`` ``(B, 1, H, W)``;
    ``scale``: the statistics' units (``stats_scale``), needed when ``cfg.stats > 0``;
    ``reference``: real windows' statistics (``stats_reference``), needed when
    ``cfg.stats_energy > 0``."""
    k = draws.shape[0]
    terms = {}
    if cfg.stats > 0:
        if scale is None:
            raise ValueError("train.stats > 0 needs the statistics' scale")
        if cfg.stats_energy > 0 and reference is None:
            raise ValueError("train.stats_energy > 0 needs the real windows' statistics")
        # computed once for the paired and the unpaired term
        s_draws = texture_stats.draw_statistics(draws, mask, linear=cfg.stats_linear, hard=cfg.stats_hard)
        terms["stats"] = texture_stats.texture_stats_loss(draws, target, mask, scale, batch=cfg.stats_batch,
                                                          score=cfg.stats_score, linear=cfg.stats_linear,
                                                          hard=cfg.stats_hard, statistics=s_draws)
        if cfg.stats_energy > 0:  # needs cfg.stats > 0 (TextureTrainConfig): its units are the statistics'
            terms["stats_energy"] = texture_stats.texture_stats_energy(s_draws, reference, scale)
    if cfg.crps > 0:
        if cfg.crps_pool > 1:
            draws, target, mask = pooled(draws, target, mask, cfg.crps_pool)
        terms["crps"] = losses.crps_samples(draws, target, mask)
    if cfg.spectral > 0:
        rep = (k, 1, 1, 1)
        terms["spectral"] = losses.spectral_loss(draws.flatten(0, 1), target.repeat(rep), mask.repeat(rep),
                                                 sectors=cfg.spectral_sectors)
    return terms


def reference_windows(frames: Frames, cfg: TextureTrainConfig, size: int, margin: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``stats_windows`` real scored windows, cut as training cuts them, from the stream
    ``seed + 1``: strain ``(N, 1, h, w)`` (0 where not scored) and the mask where it is."""
    rng = np.random.default_rng(cfg.seed + 1)
    side = cfg.crop + 2 * margin
    windows = []
    overlap = cfg.windows == "overlap"
    corners = []
    for i in rng.choice(len(frames.ids), size=cfg.stats_windows):
        y, x = window_corners(rng, frames.roi[i], size, cfg.crop, margin, overlap=overlap)
        corners.append((y, x))
        windows.append(frames.strain[i][y : y + side, x : x + side])
    real = torch.from_numpy(np.stack(windows))[:, None]
    if overlap:
        real = torch.where(scored_mask(corners, [False] * len(corners), size, side, margin) > 0, real, torch.nan)
    else:
        real = real[..., margin : side - margin, margin : side - margin]
    mask = torch.isfinite(real).float()
    return torch.nan_to_num(real), mask


def stats_scale(real: torch.Tensor, mask: torch.Tensor, cfg: TextureTrainConfig) -> torch.Tensor:
    """The texture statistics' sd (or whitening matrix, ``stats_whiten``) over the
    ``reference_windows`` ``real``, ``mask``."""
    if cfg.stats_whiten:
        return texture_stats.statistic_whitening(real, mask, linear=cfg.stats_linear)
    return texture_stats.statistic_scale(real, mask, linear=cfg.stats_linear)


def stats_reference(real: torch.Tensor, mask: torch.Tensor, cfg: TextureTrainConfig) -> torch.Tensor:
    """The ``reference_windows``' statistics ``(stats_windows, len(STATISTICS))``, the real
    distribution ``stats_energy`` compares the draws' with."""
    return texture_stats.texture_statistics(real, mask, linear=cfg.stats_linear, hard=cfg.stats_hard).detach()


def cut_windows(frames: Frames, bank: np.ndarray, idx, picks, corners, flips, side: int, device
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step's windows: B-modes ``(B, 1, side, side)`` in [−1, 1], the picked generator draws
    ``(K·B, 1, side, side)`` draw-major, the real strain ``(B, 1, side, side)`` (NaN where
    undefined) and the windows' ``frame_coordinates`` ``(B, 2, side, side)``; frame ``idx[j]`` at
    corner ``corners[j]``, mirrored where ``flips[j]`` (the coordinates are symmetric about the
    centre line, so a mirrored window keeps its own)."""
    b_win, s_win, y_win, c_win = [], [], [], []
    coords = frame_coordinates(frames.bmode.shape[1:])[0]
    for i, pick, (y, x), flip in zip(idx, picks, corners, flips):
        rows, cols = slice(y, y + side), slice(x, x + side)
        b = torch.from_numpy(frames.bmode[i][rows, cols].astype(np.float32) / 127.5 - 1.0)
        r = torch.from_numpy(frames.strain[i][rows, cols])
        s = torch.from_numpy(bank[i, pick][:, rows, cols].astype(np.float32))
        c = coords[:, rows, cols]
        if flip:
            b, r, s, c = b.flip(-1), r.flip(-1), s.flip(-1), c.flip(-1)
        b_win.append(b)
        y_win.append(r)
        s_win.append(s)
        c_win.append(c)
    k = len(picks[0])
    gen = torch.stack(s_win).transpose(0, 1).reshape(k * len(idx), 1, side, side)
    return (torch.stack(b_win)[:, None].to(device), gen.to(device), torch.stack(y_win)[:, None].to(device),
            torch.stack(c_win).to(device))


def train_texture(base: Path, data: Path, out: Path, cfg: TextureRunConfig, *, device: str | None = None,
                  progress: bool = True) -> Path:
    """Train the stage on ``data``'s train split over ``base``'s frozen generator; write
    ``out/texture.pt`` and ``out/metrics.jsonl``; return the checkpoint's path."""
    t, tex = cfg.train, cfg.texture
    predictor = Predictor.from_checkpoint(base, device=device or "cpu")
    predictor.texture = None  # a stage already in ``base`` is replaced, never stacked
    torch.manual_seed(t.seed)
    rng = np.random.default_rng(t.seed)
    frames = load_frames(data, "train", tex.image_size)
    margin = tex.receptive_field // 2
    if t.crop + 2 * margin > tex.image_size:
        raise UserError(f"train.crop {t.crop} plus the stage's margin 2×{margin} exceeds texture.image_size {tex.image_size}")
    if (t.crop + 2 * margin) % tex.scale:
        raise UserError(f"train.crop {t.crop} plus the stage's margin 2×{margin} is not a multiple of texture.scale {tex.scale}")
    bank = generator_bank(predictor, frames.bmode, t.bank_draws, t.seed)
    scale = reference = None
    if t.stats > 0:
        windows_real, windows_mask = reference_windows(frames, t, tex.image_size, margin)
        scale = stats_scale(windows_real, windows_mask, t).to(predictor.device)
        if t.stats_energy > 0:
            reference = stats_reference(windows_real, windows_mask, t).to(predictor.device)
    codes = None
    if tex.frame_latent:
        try:
            encoded = encode_frames(frame_statistics(frames.strain), tex.frame_latent)
        except ValueError as e:
            raise UserError(f"{data}: texture.frame_latent={tex.frame_latent}: {e}") from None
        codes = torch.from_numpy(encoded.codes).to(predictor.device)
    moments = relations = frame_rng = None
    if t.frame_moments > 0 or t.frame_relations > 0:  # its own stream: the windows and draws above stay what they were
        real_features = real_frame_features(frames, emode=t.frame_emode).to(predictor.device)
        if t.frame_moments > 0:
            moments = FrameMoments(real_features, momentum=t.frame_momentum, ridge=t.frame_ridge)
        if t.frame_relations > 0:
            relations = FrameRelations(real_features, below=t.frame_relations_below)
        frame_rng = np.random.default_rng(t.seed + 2)
    stage = build_texture(tex).to(predictor.device)
    opt = torch.optim.Adam(stage.parameters(), lr=t.lr)
    decay_from = t.steps - t.steps // 3
    side = t.crop + 2 * margin
    overlap = t.windows == "overlap"
    out.mkdir(parents=True, exist_ok=True)
    with (out / "metrics.jsonl").open("w") as log:
        if codes is not None:  # what the frame codes hold, for the record
            log.write(json.dumps({"frame_latent_explained": encoded.explained.round(4).tolist(),
                                  "frame_latent_loadings": dict(zip(texture_stats.STATISTICS,
                                                                    encoded.loadings.T.round(3).tolist()))}) + "\n")
        start = time.perf_counter()
        for step in range(1, t.steps + 1):
            for g in opt.param_groups:
                g["lr"] = t.lr * min(1.0, (t.steps - step + 1) / max(1, t.steps - decay_from))
            idx = rng.choice(len(frames.ids), size=t.batch_size, replace=len(frames.ids) < t.batch_size)
            picks = [rng.choice(t.bank_draws, size=t.samples, replace=t.bank_draws < t.samples) for _ in idx]
            windows = [window_corners(rng, frames.roi[i], tex.image_size, t.crop, margin, overlap=overlap, align=tex.scale)
                       for i in idx]
            flips = rng.random(t.batch_size) < 0.5 if t.hflip else np.zeros(t.batch_size, bool)
            bmode, gen, real, coords = cut_windows(frames, bank, idx, picks, windows, flips, side, predictor.device)
            scored = scored_mask(windows, flips, tex.image_size, side, margin).to(predictor.device) if overlap else None
            whole = None if frame_rng is None else whole_frames(frames, bank, frame_rng, t.frame_batch, predictor.device)
            terms, total = fit_step(stage, opt, bmode, gen, real, t, margin, scale, coords, scored, reference=reference,
                                    latent=None if codes is None else codes[torch.as_tensor(idx)], whole=whole,
                                    moments=moments, relations=relations)
            if not torch.isfinite(total):
                raise UserError(f"texture training diverged at step {step} ({ {k: v.item() for k, v in terms.items()} }); "
                                "lower train.lr")
            if step % t.log_every == 0 or step == t.steps:
                line = {"step": step, "seconds": round(time.perf_counter() - start, 1), "total": total.item(),
                        **{k: v.item() for k, v in terms.items()}}
                log.write(json.dumps(line) + "\n")
                log.flush()
                if progress:
                    print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in line.items()), flush=True)
        val = validate(predictor, stage, data, cfg) if t.val_cases else {}
        if val:
            log.write(json.dumps({"step": t.steps, "val": val}) + "\n")
    path = out / "texture.pt"
    save_checkpoint(path, with_texture(load_checkpoint(base), stage, cfg, val))
    return path


def real_frame_features(frames: Frames, *, emode: bool = False) -> torch.Tensor:
    """``frame_features`` of every real frame's strain in its ROI, ``(N, F)`` — with ``emode``,
    followed by those of its E-mode's luminance, ``(N, 2F)`` (``whole_frame_features``); raises
    ``UserError`` naming a frame whose ROI box holds undefined strain."""
    out = []
    for i, (strain, roi) in enumerate(zip(frames.strain, frames.roi)):
        x0, y0, x1, y1 = roi
        if not np.isfinite(strain[y0:y1, x0:x1]).all():
            raise UserError(f"case {frames.ids[i]}: strain undefined inside its ROI box; train.frame_moments needs it whole")
        with torch.no_grad():
            s = torch.from_numpy(np.nan_to_num(strain))[None, None]
            b = torch.from_numpy(frames.bmode[i].astype(np.float32) / 127.5 - 1.0)[None, None]
            out.append(whole_frame_features(s, b, [roi], torch.from_numpy(frames.alphas([i])), emode=emode))
    return torch.cat(out)


def whole_frame_features(strain: torch.Tensor, bmode: torch.Tensor, rois: list, alpha: torch.Tensor, *, emode: bool
                         ) -> torch.Tensor:
    """The frame terms' features of whole frames: ``frame_features`` of the strain, and with
    ``emode`` those of the E-mode's luminance as a reader sees it after them
    (``emode_frame_features``; the E-mode's texture observer looks at that, and the colour map
    shows the same strain texture strongly in one strain range and hardly in another)."""
    features = frame_features(strain, rois)
    if emode:
        features = torch.cat([features, emode_frame_features(strain, bmode, rois, alpha)], 1)
    return features


def whole_frames(frames: Frames, bank: np.ndarray, rng: np.random.Generator, count: int, device
                 ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int, int, int]], torch.Tensor]:
    """``count`` random training frames whole: B-modes ``(B, 1, S, S)`` in
    [−1, 1], one banked generator draw of each, their ROI boxes and E-mode opacities ``(B,)``
    (``train.frame_moments``)."""
    idx = rng.choice(len(frames.ids), size=count)
    picks = rng.integers(bank.shape[1], size=count)
    bmode = torch.from_numpy(frames.bmode[idx].astype(np.float32) / 127.5 - 1.0)[:, None]
    gen = torch.from_numpy(bank[idx, picks].astype(np.float32))[:, None]
    return bmode.to(device), gen.to(device), [frames.roi[i] for i in idx], torch.from_numpy(frames.alphas(idx)).to(device)


def with_texture(ckpt: dict, stage: ScannerTexture, cfg: TextureRunConfig, val: dict) -> dict:
    """The inference payload of ``ckpt`` (a training or exported checkpoint) with the stage added.
    The generator's interval calibration is dropped: it described draws without the stage; the
    fingerprint stays, since the generator's encoder is unchanged."""
    try:
        payload = inference_payload(ckpt, keep=("ood",))
    except KeyError:
        raise UserError("the base checkpoint holds no EMA generator and config") from None
    payload["texture"] = {"config": to_dict(cfg.texture), "train": to_dict(cfg.train),
                          "state": {k: v.detach().cpu() for k, v in stage.state_dict().items()}, "val": val}
    return payload


def fit_step(stage: ScannerTexture, opt: torch.optim.Optimizer, bmode: torch.Tensor, gen: torch.Tensor,
             real: torch.Tensor, cfg: TextureTrainConfig, margin: int, scale: torch.Tensor | None = None,
             coords: torch.Tensor | None = None, scored: torch.Tensor | None = None, *,
             reference: torch.Tensor | None = None, latent: torch.Tensor | None = None,
             whole: tuple[torch.Tensor, torch.Tensor, list, torch.Tensor] | None = None, moments: FrameMoments | None = None,
             relations: FrameRelations | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One Adam step on windows: ``bmode`` ``(B, 1, W, W)`` in [−1, 1], ``gen`` ``(K·B, 1, W, W)``
    generator draws (draw-major), ``real`` ``(B, 1, W, W)`` strain (NaN undefined), scored inside
    ``margin``; ``scale``: the statistics' units when ``cfg.stats > 0``; ``coords``: the windows'
    ``(B, 2, W, W)`` frame coordinates (needed by a stage with ``position``). Returns the
    unweighted terms and the weighted total (no step when not finite). ``scored``: ``(B, 1, W, W)``
    where each window is scored (``scored_mask``); ``None``: inside ``margin``. ``reference``:
    as ``score_draws``. ``latent``: the windows' frames' ``(B, frame_latent)`` codes (needed by a
    stage with ``frame_latent``); every draw of a window gets its frame's. ``whole``: whole frames
    (``whole_frames``) the stage draws as at inference (its own coordinates, codes from the
    prior) for ``moments`` to score (``cfg.frame_moments``, ``cfg.frame_cov``); the running
    mean's distance and spread then join the returned terms as ``frame_distance`` and
    ``frame_spread`` (outside the total); ``relations`` scores the same frames
    (``cfg.frame_relations``; their mean deviation joins as ``frame_relation_shift``)."""
    k = gen.shape[0] // bmode.shape[0]
    stage.train()
    if stage.cfg.position and coords is None:
        raise ValueError("a stage with texture.position needs the windows' frame coordinates")
    if stage.cfg.frame_latent and latent is None:
        raise ValueError("a stage with texture.frame_latent needs the windows' frame codes in training")
    unclipped = stage(bmode.repeat(k, 1, 1, 1), gen, coords=None if coords is None else coords.repeat(k, 1, 1, 1),
                      latent=None if latent is None else latent.repeat(k, 1), clamp=False)
    draws = unclipped.clamp(0.0, 1.0).unflatten(0, (k, bmode.shape[0]))
    if scored is None:
        inner = (slice(margin, real.shape[-2] - margin), slice(margin, real.shape[-1] - margin))
        target, draws = real[..., inner[0], inner[1]], draws[..., inner[0], inner[1]]
    else:
        target = torch.where(scored > 0, real, torch.nan)
    mask = torch.isfinite(target).float()
    terms = score_draws(draws, torch.nan_to_num(target), mask, cfg, scale, reference)
    if cfg.saturation > 0:
        terms["saturation"] = saturation_excess(unclipped)
    if cfg.frame_moments > 0 or cfg.frame_relations > 0:
        if whole is None or (cfg.frame_moments > 0 and moments is None) or (cfg.frame_relations > 0 and relations is None):
            raise ValueError("train.frame_moments or train.frame_relations > 0 needs whole frames and the real "
                             "frames' moments or relations")
        w_bmode, w_gen, w_rois, w_alpha = whole
        features = whole_frame_features(stage(w_bmode, w_gen), w_bmode, w_rois, w_alpha, emode=cfg.frame_emode)
        if cfg.frame_moments > 0:
            terms["frame_moments"], cov = moments.loss(features)
            if cfg.frame_cov > 0:
                terms["frame_cov"] = cov
        if cfg.frame_relations > 0:
            terms["frame_relations"] = relations.loss(features)
    total = sum(getattr(cfg, name) * v for name, v in terms.items())
    if torch.isfinite(total):
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
    if moments is not None and cfg.frame_moments > 0:
        terms["frame_distance"] = torch.tensor(moments.distance())
        terms["frame_spread"] = torch.tensor(moments.spread())
    if relations is not None and cfg.frame_relations > 0:
        terms["frame_relation_shift"] = torch.tensor(relations.shift)
    return terms, total.detach()


def saturation_excess(unclipped: torch.Tensor) -> torch.Tensor:
    """Mean distance of draws outside the display's [0, 1] before clipping (strain units).

    Example:
        >>> saturation_excess(torch.tensor([-0.2, 0.0, 0.5, 1.0, 1.4]))  # (0.2 + 0.4) / 5
        tensor(0.1200)
    """
    return (F.relu(-unclipped) + F.relu(unclipped - 1.0)).mean()


@torch.no_grad()
def validate(predictor: Predictor, stage: ScannerTexture, data: Path, cfg: TextureRunConfig) -> dict:
    """CRPS and NCC on the first ``val_cases`` frames of the val split, whole frames, 4 draws,
    with and without the stage (the generator's draws alone as the peer)."""
    try:
        frames = load_frames(data, "val", cfg.texture.image_size, limit=cfg.train.val_cases)
    except UserError:
        return {}
    stage.eval()
    k = 4
    seeds = [s * 1000 + d for s in range(len(frames.ids)) for d in range(k)]
    gen = predictor.draw_generator(np.repeat(frames.bmode, k, axis=0), seeds)
    bmode = torch.from_numpy(np.repeat(frames.bmode, k, axis=0).astype(np.float32) / 127.5 - 1.0)[:, None]
    textured = stage(bmode.to(gen.device), gen, noise_seeds=seeds)
    real = torch.from_numpy(frames.strain)[:, None].to(gen.device)
    mask = torch.isfinite(real).float()
    real = torch.nan_to_num(real)
    out = {}
    for name, x in (("generator", gen), ("textured", textured)):
        draws = x.unflatten(0, (len(frames.ids), k)).transpose(0, 1)  # (K, N, 1, S, S)
        out[f"crps_{name}"] = float(losses.crps_samples(draws, real, mask))
        out[f"ncc_one_draw_{name}"] = float(losses.ncc(draws[0], real, mask).mean())
        out[f"ncc_mean_{name}"] = float(losses.ncc(draws.mean(0), real, mask).mean())
    return out


def run_config(overrides: list[str]) -> TextureRunConfig:
    """The run's config from ``--set`` overrides (``texture.*``, ``train.*``) over the defaults."""
    from elastogan.training.config import apply_overrides

    return from_dict(TextureRunConfig, apply_overrides(to_dict(TextureRunConfig()), overrides), source="--set")

