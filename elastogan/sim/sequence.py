"""A freehand compression sequence, tracked and compounded as a strain scanner does (phantom-v2).

Axis legend: ``F`` frames, ``P = F − 1`` consecutive pairs, ``L`` scan lines, ``Z`` RF samples,
``S`` display pixels per side, ``N`` tracking windows per line.

The FEM is linear, so one solve at unit strain serves every frame: frame k's scatterers sit at
their rest positions moved by ``c_k · u_unit`` (``c_k`` the cumulative compression of the hand)
and by the probe's own descent ``c_k · depth`` (the transducer frame: the probe stays at z = 0),
as :func:`elastogan.sim.case._compressed` places v1's post frame. On top of that, like a hand:

- **varying increments**: pair k compresses by ``Δ_k = applied_strain · U(increment)``, and
  with probability ``reversal_probability`` releases instead (never below the rest state);
- **lateral slip**: the probe wanders laterally by a Gaussian random walk of
  ``lateral_jitter_mm`` per frame;
- **elevational motion**: a fraction ``elevational_decorrelation · |Δ_k| / 1 %`` of the
  scatterers leaves the slice at frame k and is replaced by new ones (same echogenicity, new
  random sign), so the correlation of consecutive frames drops by about that fraction;
- **electronic noise** independent in every frame at the echo SNR of frame 0.

Each pair is tracked by :mod:`elastogan.sim.tracking`, its strain and quality registered onto
the display grid of frame 0 (the B-mode shown, which is undeformed like the labels), then
compounded and gated by :mod:`elastogan.sim.compound`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
from scipy import ndimage

from elastogan.sim.compound import compound
from elastogan.sim.fem import Displacement
from elastogan.sim.tracking import prepare_frame, strain_and_quality, track_frames
from elastogan.sim.ultrasound import Grid, Transducer, band_limited_noise, bmode_image, echo_lines

# Accepted values of each ScannerSettings field (inclusive; for a (low, high) range, both ends).
SCANNER_LIMITS: dict[str, tuple[float, float]] = {
    "n_frames": (2, 16),
    "increment": (0.1, 3.0),
    "reversal_probability": (0.0, 0.5),
    "lateral_jitter_mm": (0.0, 0.5),
    "elevational_decorrelation": (0.0, 0.5),
    "search": (1, 32),
    "guidance_passes": (0, 10),
    "quality_power": (0.0, 8.0),
    "persistence_width": (0.01, 10.0),
    "quality_gate": (0.0, 1.0),
    "fill_sigma_mm": (0.05, 10.0),
    "fill_min_support": (0.0, 1.0),
    "median_px": (1, 9),
}


@dataclass(frozen=True)
class ScannerSettings:
    """How the simulated scanner acquires and forms strain (checked against ``SCANNER_LIMITS``).

    Args:
        n_frames: RF frames in the freehand sequence (``n_frames − 1`` tracked pairs).
        increment: per-pair compression increment as a multiple of the case's applied strain,
            a ``(low, high)`` range drawn per pair.
        reversal_probability: chance that a pair (after the first) is a release.
        lateral_jitter_mm: σ of the probe's lateral slip per frame (random walk).
        elevational_decorrelation: fraction of scatterers replaced per 1 % of a pair's compression
            increment (out-of-plane motion grows with the hand's motion).
        search: fine-search lags each side of the coarse prediction, in RF samples (≥ half an
            RF period: 4 covers f0 ≥ 5 MHz at 40 MHz sampling).
        guidance_passes: quality-guidance sweeps of the tracker (0: none).
        quality_power: exponent of the quality weight in the composite.
        persistence_width: σ of the persistence weight, in normalised strain.
        quality_gate: composite quality below which a pixel is gated.
        fill_sigma_mm: σ of the neighbourhood that fills gated pixels.
        fill_min_support: least trusted share of that neighbourhood for a fill.
        median_px: side of the final median filter on the composite (1: none; v1 uses 3).
    """

    n_frames: int = 4
    increment: tuple[float, float] = (0.5, 1.0)
    reversal_probability: float = 0.15
    lateral_jitter_mm: float = 0.02
    elevational_decorrelation: float = 0.02
    search: int = 4
    guidance_passes: int = 3
    quality_power: float = 2.0
    persistence_width: float = 0.35
    quality_gate: float = 0.5
    fill_sigma_mm: float = 1.0
    fill_min_support: float = 0.3
    median_px: int = 3

    def __post_init__(self) -> None:
        for f in fields(self):
            lo, hi = SCANNER_LIMITS[f.name]
            v = getattr(self, f.name)
            if f.type in ("int", int):
                if not (isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi):
                    raise ValueError(f"{f.name} must be an integer in [{lo:g}, {hi:g}], got {v!r}")
            elif f.type in ("float", float):
                if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi):
                    raise ValueError(f"{f.name} must be a number in [{lo:g}, {hi:g}], got {v!r}")
            elif not (isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)
                      and lo <= v[0] <= v[1] <= hi):
                raise ValueError(f"{f.name} must be a (low, high) range with low <= high, both in [{lo:g}, {hi:g}], got {v!r}")
        if self.median_px % 2 == 0:
            raise ValueError(f"median_px must be odd, got {self.median_px}")


@dataclass
class ScanSequence:
    """What :func:`scan_sequence` returns."""

    bmode_frames: np.ndarray  # (F, S, S) uint8, every frame's B-mode (cine)
    strain_frames: np.ndarray  # (P, S, S) float32 per-pair strain on frame 0's display grid, compressive positive
    quality: np.ndarray  # (S, S) float32 in [0, 1], the composite's displacement quality
    strain: np.ndarray  # (S, S) float32 composite strain, gated and filled (compound.py)
    shown_frame: int  # the frame whose B-mode is the case's B-mode
    info: dict  # JSON-serialisable acquisition record


def unit_displacement(disp: Displacement, applied_strain: float) -> Displacement:
    """The displacement per unit applied strain (the FEM is linear: solve once, scale per frame)."""
    if not applied_strain > 0:
        raise ValueError(f"applied_strain must be positive, got {applied_strain}")
    return Displacement(ux=disp.ux / applied_strain, uy=disp.uy / applied_strain, hx=disp.hx, hy=disp.hy)


def scatterer_depth_mm(field_mm: float, applied_strain: float, settings: ScannerSettings) -> float:
    """Depth to draw scatterers to, so that tissue moving up into view never leaves a gap at the
    bottom of any frame: the field divided by one minus the largest possible cumulative
    compression, plus 1 mm."""
    most = (settings.n_frames - 1) * settings.increment[1] * applied_strain
    if most >= 0.5:
        raise ValueError(f"the sequence could compress by {most:.2f}; lower n_frames, increment or applied_strain")
    return field_mm / (1.0 - most) + 1.0


def _at(fields_: tuple[np.ndarray, ...], x_mm: np.ndarray, z_mm: np.ndarray, hx: float, hy: float) -> list[np.ndarray]:
    """Bilinear interpolation of nodal fields (nodes every ``hx`` × ``hy`` mm, one grid) at points,
    edges clamped — ``ndimage.map_coordinates(order=1, mode="nearest")`` with the weights shared."""
    ny, nx = fields_[0].shape
    zi = np.clip(z_mm / hy, 0.0, ny - 1.0)
    xi = np.clip(x_mm / hx, 0.0, nx - 1.0)
    z0 = np.minimum(zi.astype(np.int64), ny - 2)
    x0 = np.minimum(xi.astype(np.int64), nx - 2)
    fz, fx = zi - z0, xi - x0
    i = z0 * nx + x0
    w = ((1 - fz) * (1 - fx), (1 - fz) * fx, fz * (1 - fx), fz * fx)
    out = []
    for f in fields_:
        v = f.ravel()
        out.append(w[0] * v[i] + w[1] * v[i + 1] + w[2] * v[i + nx] + w[3] * v[i + nx + 1])
    return out


def draw_hand(rng: np.random.Generator, applied_strain: float, settings: ScannerSettings) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative compression ``c`` (F,) from ``c_0 = 0`` and lateral probe offset ``j`` (F,) in mm."""
    n = settings.n_frames
    c = np.zeros(n)
    for k in range(1, n):
        step = applied_strain * rng.uniform(*settings.increment)
        release = k > 1 and rng.random() < settings.reversal_probability and c[k - 1] - step >= 0.0
        c[k] = c[k - 1] + (-step if release else step)
    j = np.concatenate([[0.0], np.cumsum(rng.normal(0.0, settings.lateral_jitter_mm, n - 1))]) if n > 1 else np.zeros(1)
    return c, j


def scan_sequence(x_mm: np.ndarray, z_mm: np.ndarray, amp: np.ndarray, unit: Displacement, applied_strain: float,
                  tx: Transducer, grid: Grid, settings: ScannerSettings, rng: np.random.Generator, *, size: int,
                  field_mm: float, dynamic_range_db: float, window_mm: float = 1.5, step_mm: float = 0.3,
                  lsq_points: int = 9) -> ScanSequence:
    """Acquire a freehand sequence of the scatterers and form the scanner's composite strain.

    Args:
        x_mm, z_mm, amp: scatterers at rest (lateral, depth, signed amplitude), as v1 draws them,
            down to :func:`scatterer_depth_mm` (tissue below the field moves into view).
        unit: FEM displacement per unit applied strain (:func:`unit_displacement`), mm per 1.
        applied_strain: the case's compression; pair increments are drawn around it.
        tx, grid: transducer and baseband grid (``grid.n_lines == size``).
        settings: scanner settings.
        rng: the acquisition stream (hand motion, out-of-plane scatterers, noise).
        size: display pixels per side.
        field_mm: imaged width and depth.
        dynamic_range_db: B-mode log compression.
        window_mm, step_mm, lsq_points: correlation window, its step along each line, and the
            displacement estimates per least-squares strain fit — the simulator's
            ``ncc_window_mm``, ``ncc_step_mm`` and ``lsq_points``, one setting for v1 and v2.

    Returns:
        :class:`ScanSequence`; frame 0 is at rest, so ``shown_frame = 0`` aligns with the
        phantom's labels.
    """
    if not (x_mm.shape == z_mm.shape == amp.shape and x_mm.ndim == 1):
        raise ValueError(f"expected scatterer arrays of one 1-D shape, got {x_mm.shape}, {z_mm.shape}, {amp.shape}")
    if grid.n_lines != size:
        raise ValueError(f"the baseband grid must have one line per display column: {grid.n_lines} lines for size {size}")
    if not 0 < applied_strain < 0.5:
        raise ValueError(f"applied_strain must be in (0, 0.5), got {applied_strain}")
    s = settings
    n_f = s.n_frames
    c, j = draw_hand(rng, applied_strain, s)
    ux, uy = _at((unit.ux, unit.uy), x_mm, z_mm, unit.hx, unit.hy)
    uy = uy - field_mm  # the probe descends with the compression
    noise = band_limited_noise((grid.n_lines, grid.nz), tx, grid, rng)
    roll = max(1, grid.n_lines // n_f)  # frame k's noise: the field rolled by k·roll lines (independent per line)
    if not 0 < step_mm <= window_mm:
        raise ValueError(f"step_mm ({step_mm}) must be positive and not exceed window_mm ({window_mm})")
    window = int(round(window_mm / tx.dz_mm))
    step = int(round(step_mm / tx.dz_mm))
    phase = 2.0 * tx.k0 * tx.dz_mm
    max_inc = float(np.max(np.abs(np.diff(c)))) if n_f > 1 else 0.0
    max_lag = int(np.ceil(1.2 * max_inc * grid.nz + 2.0 * s.lateral_jitter_mm / tx.dz_mm)) + 8
    frame_kw = dict(phase_per_sample=phase, max_lag=max_lag, window=window, search=s.search)

    amp_k = amp.copy()
    noise_sd = 0.0
    bmodes, frames = [], []
    for k in range(n_f):
        if k and s.elevational_decorrelation > 0:
            out = rng.random(len(amp_k)) < min(1.0, s.elevational_decorrelation * abs(c[k] - c[k - 1]) / 0.01)
            amp_k[out] = np.abs(amp_k[out]) * rng.choice(np.array([-1.0, 1.0]), size=int(out.sum()))
        echo = echo_lines(x_mm + c[k] * ux - j[k], z_mm + c[k] * uy, amp_k, tx, grid)  # (L, Z)
        if k == 0:
            noise_sd = float(np.sqrt(np.mean(np.abs(echo) ** 2) / 10 ** (tx.snr_db / 10)))
        iq = echo + np.float32(noise_sd) * np.roll(noise, k * roll, axis=0)
        bmodes.append(bmode_image(iq.T, size, dynamic_range_db))
        frames.append(prepare_frame(iq, **frame_kw))

    # Display pixels' rest positions and where the tissue there sits in each pair's pre frame.
    px = field_mm / size
    pos = (np.arange(size) + 0.5) * px
    zz, xx = np.meshgrid(pos, pos, indexing="ij")
    ux_px, uy_px = (v.reshape(size, size) for v in _at((unit.ux, unit.uy), xx.ravel(), zz.ravel(), unit.hx, unit.hy))
    uy_px = uy_px - field_mm
    strains, qualities, pair_info = [], [], []
    period = 2.0 * np.pi / phase
    for k in range(1, n_f):
        tr = track_frames(frames[k - 1], frames[k], period=period, window=window, step=step, max_lag=max_lag,
                          search=s.search, guidance_passes=s.guidance_passes)
        strain, quality = strain_and_quality(tr, step, lsq_points)  # (N, L)
        sign = 1.0 if c[k] >= c[k - 1] else -1.0  # a release stretches: flip to compressive positive
        z_pre = (zz + c[k - 1] * uy_px) / tx.dz_mm - 0.5  # samples
        x_pre = (xx + c[k - 1] * ux_px - j[k - 1]) / grid.dx_mm - 0.5  # lines
        coords = np.stack([np.interp(z_pre, tr.centers, np.arange(len(tr.centers))), x_pre])
        strains.append(sign * ndimage.map_coordinates(strain, coords, order=1, mode="nearest"))
        qualities.append(ndimage.map_coordinates(quality, coords, order=1, mode="nearest"))
        pair_info.append({"increment": round(float(c[k] - c[k - 1]), 6), "mean_peak_ncc": round(float(tr.quality.mean()), 4),
                          "repaired": round(tr.repaired, 4)})
    strain_frames = np.stack(strains).astype(np.float32)  # (P, S, S)
    comp = compound(strain_frames, np.stack(qualities), quality_power=s.quality_power,
                    persistence_width=s.persistence_width, gate=s.quality_gate, fill_sigma_px=s.fill_sigma_mm / px,
                    min_support=s.fill_min_support)
    shown = comp.strain
    if s.median_px > 1:
        shown = ndimage.median_filter(shown, size=s.median_px, mode="nearest")
    for p, scale, share in zip(pair_info, comp.scales, comp.pair_weights):
        p["robust_mean_strain"] = round(float(scale), 6)
        p["weight_share"] = round(float(share), 4)
    info = {
        "n_frames": n_f,
        "cumulative_compression": [round(float(v), 6) for v in c],
        "lateral_offset_mm": [round(float(v), 4) for v in j],
        "pairs": pair_info,
        "mean_quality": round(float(comp.quality.mean()), 4),
        "gated_fraction": round(float(comp.gated.mean()), 4),
        "max_lag_samples": max_lag,
    }
    return ScanSequence(bmode_frames=np.stack(bmodes), strain_frames=strain_frames, quality=comp.quality,
                        strain=shown.astype(np.float32), shown_frame=0, info=info)
