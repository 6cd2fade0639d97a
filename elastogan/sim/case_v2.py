"""One phantom-v2 case: layered breast with a lexicon lesion → FEM → a freehand compression
sequence scanned and tracked as a strain scanner does → B-mode, composite strain, E-mode, labels.

The differences from v1 (``elastogan.sim.case``), which stays byte for byte as it was:

- the tissue is ``elastogan.sim.tissue_v2.make_phantom_v2``: skin, fat lobules and septa,
  Cooper's ligaments, a layered fibroglandular zone of BI-RADS composition a–d, retromammary
  fat, pectoralis, sometimes a rib; the lesion drawn from the BI-RADS ultrasound lexicon;
- the strain is ``elastogan.sim.sequence.scan_sequence``: several RF frames of a freehand
  compression (one FEM solve: linear elasticity scales with the compression), tracked with
  a quality measure, compounded by quality and persistence and gated — not one pre/post pair;
- the case also carries the sequence as a cine, the composite's quality map, the lexicon
  labels and the BI-RADS category the labels imply.

The draws of the tissue stream and the acquisition stream are separate, as in v1, so a
re-scan (``retest``) images the same phantom and scatterers with another sequence.
"""

from __future__ import annotations

import numpy as np

from elastogan.display import render_emode
from elastogan.sim.case import (SimulatedCase, draw_lesion_type, draw_roi, draw_transducer, fem_modulus,
                                scan_source, scatterer_amplitudes, to_pixels)
from elastogan.sim.config import SimConfig
from elastogan.sim.fem import solve_compression
from elastogan.sim.sequence import ScanSequence, scan_sequence, scatterer_depth_mm, unit_displacement
from elastogan.sim.strain import relative_strain
from elastogan.sim.tissue import PATHOLOGY
from elastogan.sim.tissue_v2 import make_phantom_v2
from elastogan.sim.ultrasound import Grid, draw_scatterers
from elastogan.tsukuba import score_tsukuba, strain_ratio


def _relative_frames(frames: np.ndarray, roi_mask: np.ndarray) -> np.ndarray:
    """Each frame pair's strain through the display normalisation, as float16 (the cine)."""
    out = np.full(frames.shape, np.nan, np.float16)
    for k, f in enumerate(frames):
        if np.isfinite(f[roi_mask]).all() and float(np.mean(f[roi_mask])) > 0:
            out[k] = relative_strain(f, roi_mask).astype(np.float16)
    return out


def simulate_case_v2(tissue_seed: np.random.SeedSequence, acquisition_seed: np.random.SeedSequence, cfg: SimConfig,
                     *, retest: np.random.SeedSequence | None = None) -> SimulatedCase:
    """Simulate one phantom-v2 case from its two seeds (see the module docstring).

    Args:
        tissue_seed: the patient's tissue (breast, lesion and its lexicon labels).
        acquisition_seed: the scan (compression sequence, boundary, transducer, scatterers,
            noise, dynamic range, ROI, opacity).
        cfg: simulator settings, ``cfg.simulator == "v2"``; the sequence's settings are
            ``cfg.scanner``.
        retest: also re-scan the same phantom (same tissue, scatterers, probe, boundary,
            ROI and display; another sequence and noise), drawn from this seed.
    """
    if cfg.simulator != "v2":
        raise ValueError(f"simulate_case_v2 needs simulator 'v2', got {cfg.simulator!r}")
    t_rng = np.random.default_rng(tissue_seed)
    a_rng = np.random.default_rng(acquisition_seed)
    lesion_type = draw_lesion_type(t_rng, cfg)
    n_prop = cfg.fem_elements * cfg.property_factor
    phantom = make_phantom_v2(t_rng, n_prop, cfg.field_mm, lesion_type)
    modulus = fem_modulus(phantom, cfg.property_factor)

    applied = a_rng.uniform(*cfg.applied_strain)
    top = "slip" if a_rng.random() < 0.5 else "bonded"
    # Linear elasticity: every frame of the sequence is this solution scaled (tested in
    # tests/test_sim_scanner.py), so one solve serves the whole sequence and its re-scan.
    disp = solve_compression(modulus, width=cfg.field_mm, depth=cfg.field_mm, applied_strain=applied, nu=cfg.nu, top=top,
                             symmetric=True)
    unit = unit_displacement(disp, applied)

    tx = draw_transducer(a_rng, cfg)
    grid = Grid.for_field(tx, cfg.field_mm, cfg.size)
    settings = cfg.scanner
    depth = scatterer_depth_mm(cfg.field_mm, max(applied, cfg.applied_strain[1]), settings)  # room for a re-scan too
    x, z, sign = draw_scatterers(a_rng, cfg.field_mm, depth, cfg.scatterers_per_mm2)
    amp = scatterer_amplitudes(phantom, x, z, sign)
    dr = a_rng.uniform(*cfg.dynamic_range_db)
    tracking = dict(size=cfg.size, field_mm=cfg.field_mm, dynamic_range_db=dr, window_mm=cfg.ncc_window_mm,
                    step_mm=cfg.ncc_step_mm, lsq_points=cfg.lsq_points)
    # The sequence has its own stream: the ROI and display draws below do not depend on how
    # many numbers the sequence used.
    seq_rng = np.random.default_rng(a_rng.integers(2**63))
    seq: ScanSequence = scan_sequence(x, z, amp, unit, applied, tx, grid, settings, seq_rng, **tracking)
    bmode = seq.bmode_frames[seq.shown_frame]
    true_px = to_pixels(-disp.axial_strain(), cfg.field_mm, cfg.size)
    lesion_px = to_pixels(phantom.lesion.astype(np.float64), cfg.field_mm, cfg.size) > 0.5

    roi = draw_roi(a_rng, lesion_px, cfg)
    roi_mask = np.zeros((cfg.size, cfg.size), bool)
    roi_mask[roi[1]:roi[3], roi[0]:roi[2]] = True
    strain = relative_strain(seq.strain, roi_mask)
    true_strain = relative_strain(true_px, roi_mask)
    alpha = float(a_rng.uniform(*cfg.alpha))
    emode = render_emode(bmode, strain, roi, colormap=cfg.colormap, alpha=alpha)

    ratio_est = strain_ratio(strain, lesion_px, roi)
    ratio_true = strain_ratio(true_strain, lesion_px, roi)
    rule_true = score_tsukuba(true_strain, lesion_px, roi=roi, bmode=bmode)
    params = dict(phantom.params)
    lexicon = params.pop("lexicon")
    birads = params.pop("birads")
    composition = params.pop("composition")
    source = {
        "simulator": "elastogan.sim",
        "simulator_version": "v2",
        "lesion_params": params,
        "applied_strain": round(applied, 5),
        "top_boundary": top,
        **scan_source(tx, dr, alpha),
        "n_scatterers": len(x),
        "scanner": seq.info,
        "strain_ratio_true": round(ratio_true, 4),
        "tsukuba_rule_true_strain": rule_true,
    }
    retest_strain = None
    if retest is not None:
        r_rng = np.random.default_rng(retest)
        applied_r = r_rng.uniform(*cfg.applied_strain)
        seq_r = scan_sequence(x, z, amp, unit, applied_r, tx, grid, settings, r_rng, **tracking)
        retest_strain = relative_strain(seq_r.strain, roi_mask)
        source["retest_applied_strain"] = round(applied_r, 5)
        source["retest_scanner"] = seq_r.info
    return SimulatedCase(
        bmode=bmode, emode=emode, strain=strain, true_strain=true_strain, lesion=lesion_px, roi=roi,
        lesion_type=lesion_type, pathology=PATHOLOGY[lesion_type], tsukuba=phantom.tsukuba,
        strain_ratio=round(ratio_est, 4), source=source, retest_strain=retest_strain,
        cine_bmode=seq.bmode_frames, cine_strain=_relative_frames(seq.strain_frames, roi_mask),
        quality=seq.quality.astype(np.float32), birads=birads,
        labels={"lexicon": lexicon, "composition": composition},
    )
