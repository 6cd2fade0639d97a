"""Phantom-v2 tissue: a layered breast (:mod:`elastogan.sim.breast`) with a lesion described in the
BI-RADS ultrasound lexicon (:mod:`elastogan.sim.lexicon`).

Conventions are phantom-v1's (:mod:`elastogan.sim.tissue`): moduli relative to fat, echo relative
to glandular tissue, attenuation as the excess over the background in Np/mm. The lesion's
modulus follows its drawn Tsukuba design as in v1 (same design probabilities and modulus
patterns); its outline, echo and attenuation follow its lexicon labels.

Draw order (fixed, so that a seed always gives the same phantom): lexicon labels, design score,
lesion size and place, anatomy (kept clear of the lesion: the subcutaneous fat ends above it and
the pectoralis starts ≥ 2 mm below), outline, echo, posterior feature, calcifications, modulus.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from elastogan.sim.breast import make_breast, smooth_noise, step
from elastogan.sim.lexicon import (LEVELS, add_calcifications, birads_category, draw_lexicon, half_axes,
                                   lesion_echo, margin_width_mm, outline, posterior_attenuation)
from elastogan.sim.tissue import DESIGN_SCORES, Phantom

DEPTH_MM = (9.0, 27.0)  # lesion centre depth, phantom-v1's range (the case's ROI logic expects it)


def _box(mask: np.ndarray, pad: int) -> tuple[slice, slice]:
    """The bounding box of ``mask`` grown by ``pad`` pixels (clipped to the grid)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (slice(max(0, rows[0] - pad), min(mask.shape[0], rows[-1] + pad + 1)),
            slice(max(0, cols[0] - pad), min(mask.shape[1], cols[-1] + pad + 1)))


def _design_modulus(rng: np.random.Generator, modulus: np.ndarray, lesion: np.ndarray, lesion_type: str,
                    tsukuba: object, px: float) -> tuple[np.ndarray, dict]:
    """Paint the lesion's modulus pattern for its design score (phantom-v1's patterns), in place.

    Returns the stiff halo (design 5; empty otherwise) and the moduli used.
    """
    n = modulus.shape[0]
    params: dict = {}
    halo = np.zeros_like(lesion)
    if tsukuba == "cyst":
        k = rng.uniform(0.1, 0.5)
        modulus[lesion] = k
        params.update(lesion_k=round(k, 3))
    elif tsukuba == 1:
        k = rng.uniform(1.0, 1.5)
        modulus[lesion] = k
        params.update(lesion_k=round(k, 3))
    elif tsukuba == 2:
        soft, hard = rng.uniform(0.8, 1.2), rng.uniform(6.0, 12.0)
        frac = rng.uniform(0.3, 0.5)
        r_eq = np.sqrt(lesion.sum() / np.pi)
        sigma_mm = max(1.0, 0.2 * r_eq) * px
        m = smooth_noise(rng, n, n * px, sigma_mm, sigma_mm)
        patches = lesion & (m > np.quantile(m[lesion], 1 - frac))
        modulus[lesion] = soft
        modulus[patches] = hard
        params.update(lesion_k=round(soft, 3), patch_k=round(hard, 3), patch_fraction=round(frac, 3))
    elif tsukuba == 3:
        soft, hard = rng.uniform(0.8, 1.2), rng.uniform(5.0, 10.0)
        core_frac = rng.uniform(0.5, 0.65)
        r_eq = np.sqrt(lesion.sum() / np.pi)
        box = _box(lesion, 1)
        core = np.zeros_like(lesion)
        core[box] = ndimage.distance_transform_edt(lesion[box]) > (1 - core_frac) * r_eq
        modulus[lesion] = soft
        modulus[core] = hard
        params.update(lesion_k=round(soft, 3), core_k=round(hard, 3), core_fraction=round(core_frac, 3))
    else:
        # As in v1: uniformly hard fibroadenomas are the old, hyalinised ones (4-6x fat).
        lo, hi = (4.0, 6.0) if lesion_type == "fibroadenoma" else (5.0, 15.0)
        k = rng.uniform(lo, hi)
        modulus[lesion] = k
        params.update(lesion_k=round(k, 3))
        if tsukuba == 5:
            width = rng.uniform(2.0, 4.0) / px
            box = _box(lesion, int(np.ceil(width)) + 1)
            halo[box] = (ndimage.distance_transform_edt(~lesion[box]) <= width) & ~lesion[box]
            halo_k = max(4.0, rng.uniform(0.4, 0.7) * k)
            modulus[halo] = np.maximum(modulus[halo], halo_k)
            params.update(halo_mm=round(width * px, 3), halo_k=round(halo_k, 3))
    return halo, params


def make_phantom_v2(rng: np.random.Generator, n: int, field_mm: float, lesion_type: str, *,
                    lexicon: dict | None = None, composition: str | None = None) -> Phantom:
    """Draw one phantom-v2 breast with a lesion of ``lesion_type`` on an n×n grid.

    Args:
        rng: random stream.
        n: property grid points per side.
        field_mm: lateral and axial extent (mm).
        lesion_type: "cyst", "fibroadenoma" or "carcinoma".
        lexicon: force some lexicon labels (e.g. ``{"posterior": "shadowing"}``); the rest are
            drawn. The draws are made either way, so forcing changes nothing else.
        composition: force the BI-RADS breast composition ("a".."d").

    Returns:
        The phantom, with ``layers`` (anatomy codes of :mod:`elastogan.sim.breast`) and
        ``params``: the anatomy's (``composition``, layer thicknesses, moduli, echoes, rib), and
        ``lexicon`` (shape, orientation, margin, echo_pattern, posterior, calcifications,
        size_mm, depth_mm), ``birads`` (the rule's category from the labels), ``cyst_kind``,
        and the lesion's geometry, echo, attenuation and moduli.
    """
    if lesion_type not in DESIGN_SCORES:
        raise ValueError(f"unknown lesion type {lesion_type!r}; expected one of {sorted(DESIGN_SCORES)}")
    if n < 16:
        raise ValueError(f"expected a grid of at least 16 points per side, got n={n}")
    if field_mm < 30.0:
        raise ValueError(
            f"expected field_mm ≥ 30 (lesions sit {DEPTH_MM[0]:g}–{DEPTH_MM[1]:g} mm deep), got {field_mm}")
    labels, cyst_kind = draw_lexicon(rng, lesion_type)
    for key, value in (lexicon or {}).items():
        if key not in LEVELS or value not in LEVELS[key]:
            raise ValueError(
                f"cannot force lexicon {key}={value!r}; expected a key of {list(LEVELS)} and one of its levels")
        labels[key] = bool(value) if key == "calcifications" else value
    scores = DESIGN_SCORES[lesion_type]
    keys = list(scores)
    tsukuba = keys[rng.choice(len(keys), p=np.array(list(scores.values())))]

    half_w, half_h = half_axes(rng, lesion_type, labels)
    angle = rng.uniform(-0.25, 0.25)
    cx = rng.uniform(12.0, field_mm - 12.0)
    # Deep enough that an irregular outline stays under the skin and subcutaneous fat.
    cy = rng.uniform(max(DEPTH_MM[0], 1.3 * half_h + 3.5), DEPTH_MM[1])
    anatomy = make_breast(rng, n, field_mm, clear_mm=(cy - half_h, cy + half_h), composition=composition)
    modulus, echo, attenuation = anatomy.modulus, anatomy.echo, anatomy.attenuation

    px = field_mm / n
    pos = (np.arange(n) + 0.5) * px
    x, y = pos[None, :], pos[:, None]
    lesion, sd = outline(rng, pos, cx, cy, half_w, half_h, angle, labels["shape"], labels["margin"])
    under_skin = y >= anatomy.params["skin_mm"] + 0.5  # a spicule may reach the fat, never the skin
    lesion &= under_skin
    edge = margin_width_mm(rng, labels["margin"])
    inside = np.maximum(step(-sd, edge), lesion * 0.5) * under_skin  # thin spicules keep half the lesion's echo

    level, echo_params = lesion_echo(rng, labels["echo_pattern"], lesion, field_mm, anatomy.fat_echo)
    echo[:] = echo * (1 - inside) + inside * level
    att, post_params = posterior_attenuation(rng, inside, x, cx, half_w, 2.0 * half_h, labels["posterior"])
    attenuation += att
    foci = add_calcifications(rng, echo, sd, px) if labels["calcifications"] else []
    halo, k_params = _design_modulus(rng, modulus, lesion, lesion_type, tsukuba, px)

    labels["size_mm"] = round(2.0 * max(half_w, half_h), 3)
    labels["depth_mm"] = round(cy, 3)
    params = {
        **anatomy.params,
        "lexicon": labels,
        "birads": birads_category(labels),
        "cyst_kind": cyst_kind,
        "center_mm": [round(cx, 3), round(cy, 3)],
        "half_axes_mm": [round(half_w, 3), round(half_h, 3)],
        "angle_rad": round(angle, 3),
        "margin_width_mm": round(edge, 3),
        "calcification_foci_mm": foci,
        **echo_params,
        **post_params,
        **k_params,
    }
    return Phantom(modulus=modulus, echo=echo, attenuation=attenuation, lesion=lesion, halo=halo, field_mm=field_mm,
                   lesion_type=lesion_type, tsukuba=tsukuba, params=params, layers=anatomy.layers)
