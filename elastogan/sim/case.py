"""One simulated case: phantom → FEM → pre/post RF → B-mode, estimated strain, E-mode, labels.

Everything a case holds is a function of its seeds (one for the patient's tissue, one for the
acquisition, and optionally one for a re-scan of the same phantom), so any case can be
regenerated exactly, on any machine, in any order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from elastogan.display import DisplayLayout, render_emode
from elastogan.sim.config import SimConfig
from elastogan.sim.fem import Displacement, solve_compression
from elastogan.sim.strain import StrainEstimate, estimate_strain, relative_strain, to_display_grid
from elastogan.sim.tissue import PATHOLOGY, Phantom, make_phantom
from elastogan.sim.ultrasound import (Grid, Transducer, add_noise, baseband_frame, bmode_image, draw_scatterers, echo_frame,
                                      rf_from_baseband)
from elastogan.tsukuba import score_tsukuba, strain_ratio


@dataclass
class SimulatedCase:
    """Arrays and labels of one case, in the data model's units (DESIGN §2)."""

    bmode: np.ndarray  # (S, S) uint8
    emode: np.ndarray  # (S, S, 3) uint8
    strain: np.ndarray  # (S, S) float32 relative strain, NaN outside the ROI
    true_strain: np.ndarray  # (S, S) float32 relative FEM strain, NaN outside the ROI
    lesion: np.ndarray  # (S, S) bool
    roi: tuple[int, int, int, int]
    lesion_type: str
    pathology: str
    tsukuba: object
    strain_ratio: float
    source: dict = field(default_factory=dict)
    retest_strain: np.ndarray | None = None  # (S, S) float32 relative strain of a re-scan, NaN outside the ROI
    # Simulator v2 only (None in v1): the freehand sequence as a cine, the composite's quality,
    # and the BI-RADS labels of the lesion and the breast.
    cine_bmode: np.ndarray | None = None  # (F, S, S) uint8, every frame's B-mode
    cine_strain: np.ndarray | None = None  # (F-1, S, S) float16 relative strain of each frame pair, NaN outside the ROI
    quality: np.ndarray | None = None  # (S, S) float32 displacement quality of the composite, in [0, 1]
    birads: str | None = None  # assessment category from the lexicon labels alone (elastogan.sim.lexicon)
    labels: dict | None = None  # {"lexicon": {...}, "composition": "a".."d", ...}


def draw_lesion_type(rng: np.random.Generator, cfg: SimConfig) -> str:
    names = list(cfg.class_mix)
    return names[rng.choice(len(names), p=np.array([cfg.class_mix[k] for k in names]))]


def draw_transducer(rng: np.random.Generator, cfg: SimConfig) -> Transducer:
    lo, hi = cfg.lateral_sigma_mm
    focus_sigma = rng.uniform(lo, lo + 0.4 * (hi - lo))
    return Transducer(
        f0_mhz=rng.uniform(*cfg.f0_mhz),
        bandwidth=rng.uniform(*cfg.bandwidth),
        sigma_focus_mm=focus_sigma,
        sigma_edge_mm=rng.uniform(max(focus_sigma, lo + 0.5 * (hi - lo)), hi),
        focus_mm=rng.uniform(0.3, 0.6) * cfg.field_mm,
        snr_db=rng.uniform(*cfg.snr_db),
        sound_speed=cfg.sound_speed,
        sampling_mhz=cfg.sampling_mhz,
    )


def fem_modulus(phantom: Phantom, factor: int) -> np.ndarray:
    """Element moduli: the property grid averaged over each element's block."""
    n = phantom.modulus.shape[0] // factor
    return phantom.modulus[: n * factor, : n * factor].reshape(n, factor, n, factor).mean(axis=(1, 3))


def node_values(values: np.ndarray, x_mm: np.ndarray, z_mm: np.ndarray, h: float) -> np.ndarray:
    """Bilinear interpolation of nodal values (nodes at multiples of ``h`` mm) at points."""
    return ndimage.map_coordinates(values, np.stack([z_mm / h, x_mm / h]), order=1, mode="nearest")


def to_pixels(values: np.ndarray, field_mm: float, size: int, *, order: int = 1) -> np.ndarray:
    """Resample a cell-centred map over the field onto the size×size display grid."""
    n = values.shape[0]
    pos = (np.arange(size) + 0.5) * n / size - 0.5
    coords = np.stack(np.meshgrid(pos, pos, indexing="ij"))
    return ndimage.map_coordinates(values.astype(np.float64), coords, order=order, mode="nearest")


def scatterer_amplitudes(phantom: Phantom, x: np.ndarray, z: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """Each scatterer's signed echo amplitude: the phantom's backscatter where it lies, times the
    two-way excess attenuation accumulated from the probe down its column (time-gain
    compensation removes the background's): shadows behind carcinoma, enhancement behind cysts."""
    n = phantom.modulus.shape[0]
    px = phantom.pixel_mm
    iz = np.clip((z / px).astype(int), 0, n - 1)
    ix = np.clip((x / px).astype(int), 0, n - 1)
    gain = np.exp(-2.0 * np.cumsum(phantom.attenuation, axis=0) * px)
    return sign * phantom.echo[iz, ix] * gain[iz, ix]


def scan_source(tx: Transducer, dynamic_range_db: float, alpha: float) -> dict:
    """The probe and display settings of a scan, as the manifest's ``source`` records them."""
    return {
        "f0_mhz": round(tx.f0_mhz, 3),
        "bandwidth": round(tx.bandwidth, 3),
        "lateral_sigma_mm": [round(tx.sigma_focus_mm, 4), round(tx.sigma_edge_mm, 4)],
        "focus_mm": round(tx.focus_mm, 2),
        "snr_db": round(tx.snr_db, 2),
        "dynamic_range_db": round(dynamic_range_db, 2),
        "display_alpha": round(alpha, 4),
    }


def draw_roi(rng: np.random.Generator, lesion: np.ndarray, cfg: SimConfig) -> tuple[int, int, int, int]:
    """An elastography box around the lesion with 1–2 lesion widths of tissue on each side,
    inside the frame and left of the colour bar, from below the skin to above the bottom."""
    size = cfg.size
    ys, xs = np.nonzero(lesion)
    px_mm = cfg.field_mm / size
    max_x1 = DisplayLayout(size, size).max_roi_x1
    lw = xs.max() - xs.min() + 1
    x0 = int(max(0, xs.min() - rng.uniform(0.8, 1.5) * lw))
    x1 = int(min(max_x1, xs.max() + 1 + rng.uniform(0.8, 1.5) * lw))
    y0 = int(round(rng.uniform(2.5, 4.0) / px_mm))
    y1 = int(min(size - round(1.5 / px_mm), max(ys.max() + 1 + round(6 / px_mm), round(rng.uniform(28, 36) / px_mm))))
    return x0, y0, x1, y1


def _compressed(x: np.ndarray, z: np.ndarray, disp: Displacement, applied: float, field_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Scatterer positions after the compression ``disp`` (transducer frame: the probe stays at z = 0)."""
    h = disp.hx
    return x + node_values(disp.ux, x, z, h), z + node_values(disp.uy, x, z, h) - applied * field_mm


def _acquire(pre_echo: np.ndarray, x_post: np.ndarray, z_post: np.ndarray, amp: np.ndarray, tx: Transducer,
             grid: Grid, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One scan: the pre-compression frame (``pre_echo`` plus noise) and the post-compression
    frame at the same noise level, both frames' noise drawn from ``rng``."""
    pre = add_noise(pre_echo, tx, grid, rng)
    clean_power = float(np.mean(np.abs(pre) ** 2)) / (1 + 10 ** (-tx.snr_db / 10))
    post = baseband_frame(x_post, z_post, amp, tx, grid, rng, noise_power=clean_power / 10 ** (tx.snr_db / 10))
    return pre, post


def _estimate(pre: np.ndarray, post: np.ndarray, tx: Transducer, grid: Grid, cfg: SimConfig) -> tuple[StrainEstimate, np.ndarray]:
    """The scanner's strain estimate of one scan and that estimate on the display grid."""
    window = int(round(cfg.ncc_window_mm / tx.dz_mm))
    step = int(round(cfg.ncc_step_mm / tx.dz_mm))
    est = estimate_strain(rf_from_baseband(pre, tx, grid), rf_from_baseband(post, tx, grid),
                          window=window, step=step, lsq_points=cfg.lsq_points)
    return est, to_display_grid(est.strain, est.centers, tx.dz_mm, cfg.size, cfg.field_mm)


def simulate_case(tissue_seed: np.random.SeedSequence, acquisition_seed: np.random.SeedSequence, cfg: SimConfig,
                  *, retest: np.random.SeedSequence | None = None) -> SimulatedCase:
    """Simulate one case from its two seeds (DESIGN §3).

    Args:
        tissue_seed: the patient's tissue (phantom, lesion).
        acquisition_seed: the scan (compression, boundary, transducer, scatterers, noise,
            dynamic range, ROI, opacity).
        cfg: simulator settings.
        retest: also re-scan the same phantom: the same tissue, scatterers, transducer,
            boundary, ROI and display, another compression drawn from ``cfg.applied_strain`` and
            independent electronic noise in both frames, all drawn from this seed. The scanner's
            test–retest agreement is the ceiling of a realistic synthetic sample (issue 11).
            The first scan is computed exactly as without ``retest`` (no draw of the acquisition
            stream moves); the re-scan costs a second FEM solve, one RF frame and one strain
            estimate.

    Returns:
        The case; ``retest_strain`` is the re-scan's relative strain (``None`` without ``retest``).
    """
    t_rng = np.random.default_rng(tissue_seed)
    a_rng = np.random.default_rng(acquisition_seed)
    lesion_type = draw_lesion_type(t_rng, cfg)
    n_prop = cfg.fem_elements * cfg.property_factor
    phantom = make_phantom(t_rng, n_prop, cfg.field_mm, lesion_type)
    modulus = fem_modulus(phantom, cfg.property_factor)

    # Mechanics: quasi-static compression from the transducer.
    applied = a_rng.uniform(*cfg.applied_strain)
    top = "slip" if a_rng.random() < 0.5 else "bonded"

    def compress(strain: float) -> Displacement:
        return solve_compression(modulus, width=cfg.field_mm, depth=cfg.field_mm, applied_strain=strain, nu=cfg.nu, top=top)

    disp = compress(applied)

    # Scatterers, moved by the FEM displacement (transducer frame: the probe is at z = 0).
    tx = draw_transducer(a_rng, cfg)
    grid = Grid.for_field(tx, cfg.field_mm, cfg.size)
    extra = 1.2 * applied * cfg.field_mm + 1.0  # tissue below the field that moves into view
    x, z, sign = draw_scatterers(a_rng, cfg.field_mm, cfg.field_mm + extra, cfg.scatterers_per_mm2)
    n_sc = len(x)
    amp = scatterer_amplitudes(phantom, x, z, sign)

    pre_echo = echo_frame(x, z, amp, tx, grid)
    pre, post = _acquire(pre_echo, *_compressed(x, z, disp, applied, cfg.field_mm), amp, tx, grid, a_rng)
    dr = a_rng.uniform(*cfg.dynamic_range_db)
    bmode = bmode_image(pre, cfg.size, dr)

    # Strain as the scanner estimates it, and the truth from the FEM.
    est, est_px = _estimate(pre, post, tx, grid, cfg)
    true_px = to_pixels(-disp.axial_strain(), cfg.field_mm, cfg.size)
    lesion_px = to_pixels(phantom.lesion.astype(np.float64), cfg.field_mm, cfg.size) > 0.5

    roi = draw_roi(a_rng, lesion_px, cfg)
    roi_mask = np.zeros((cfg.size, cfg.size), bool)
    roi_mask[roi[1]:roi[3], roi[0]:roi[2]] = True
    strain = relative_strain(est_px, roi_mask)
    true_strain = relative_strain(true_px, roi_mask)
    alpha = float(a_rng.uniform(*cfg.alpha))
    emode = render_emode(bmode, strain, roi, colormap=cfg.colormap, alpha=alpha)

    ratio_est = strain_ratio(strain, lesion_px, roi)
    ratio_true = strain_ratio(true_strain, lesion_px, roi)
    rule_true = score_tsukuba(true_strain, lesion_px, roi=roi, bmode=bmode)
    source = {
        "simulator": "elastogan.sim",
        "lesion_params": phantom.params,
        "applied_strain": round(applied, 5),
        "top_boundary": top,
        **scan_source(tx, dr, alpha),
        "n_scatterers": n_sc,
        "mean_peak_ncc": round(float(np.mean(est.correlation)), 4),
        "strain_ratio_true": round(ratio_true, 4),
        "tsukuba_rule_true_strain": rule_true,
    }
    retest_strain = None
    if retest is not None:
        r_rng = np.random.default_rng(retest)
        applied_r = r_rng.uniform(*cfg.applied_strain)
        disp_r = compress(applied_r)
        pre_r, post_r = _acquire(pre_echo, *_compressed(x, z, disp_r, applied_r, cfg.field_mm), amp, tx, grid, r_rng)
        est_r, est_r_px = _estimate(pre_r, post_r, tx, grid, cfg)
        retest_strain = relative_strain(est_r_px, roi_mask)
        source["retest_applied_strain"] = round(applied_r, 5)
        source["retest_mean_peak_ncc"] = round(float(np.mean(est_r.correlation)), 4)
    return SimulatedCase(
        bmode=bmode, emode=emode, strain=strain, true_strain=true_strain, lesion=lesion_px, roi=roi,
        lesion_type=lesion_type, pathology=PATHOLOGY[lesion_type], tsukuba=phantom.tsukuba,
        strain_ratio=round(ratio_est, 4), source=source, retest_strain=retest_strain,
    )
