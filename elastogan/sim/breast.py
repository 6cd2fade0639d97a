"""Layered breast anatomy for phantom-v2: skin to rib, with soft, anatomically shaped boundaries.

Maps live on the n×n property grid over the imaged field (``y`` = depth, down; mm), in the units
of :mod:`elastogan.sim.tissue`: modulus relative to fat, echo relative to glandular tissue,
attenuation as the excess over the background in Np/mm.

From the skin down (layer codes of :attr:`Anatomy.layers`):

====  ======================  ==============================================================
code  layer                   appearance (echo rel. gland; modulus rel. fat; sources in
                              ``docs/phantom_v2_sources.md``)
====  ======================  ==============================================================
0     skin                    1.5–2 mm echogenic band (echo 1.2–1.5; modulus 5–15)
1     subcutaneous fat        lobules of fat (echo 0.45–0.6; modulus ≈ 1)
2     septa / Cooper's        thin echogenic walls between the fat lobules and curvilinear
      ligaments               ligaments from the crests of the glandular zone to the skin
                              (echo 1.0–1.3; modulus 2–5)
3     mammary zone            horizontally layered, heterogeneous glandular tissue (echo
                              0.85–1.15, modulus 1.5–3) interleaved with fat; its glandular
                              share follows the BI-RADS composition a–d
4     retromammary fat        a thin fat layer above the pectoral fascia
5     pectoralis              muscle with fibre striation along depth (period 1–2 mm),
                              and the chest-wall muscle below it
6     rib                     an oval with a bright anterior cortex and strong excess
                              attenuation: the acoustic shadow below it
====  ======================  ==============================================================

Random fields are built on a coarse lattice and spread onto the grid by separable Gaussian
weight matrices (``W_y · C · W_xᵀ``), so that a field of correlation length σ costs a few
matrix products whatever the grid, and boundaries follow smooth curves, not thresholded noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SKIN = 0
SUBCUTANEOUS_FAT = 1
SEPTA = 2
MAMMARY = 3
RETROMAMMARY_FAT = 4
PECTORALIS = 5
RIB = 6
LAYER_NAMES = {SKIN: "skin", SUBCUTANEOUS_FAT: "subcutaneous fat", SEPTA: "septa/Cooper's ligament",
               MAMMARY: "fibroglandular (mammary) zone", RETROMAMMARY_FAT: "retromammary fat",
               PECTORALIS: "pectoralis", RIB: "rib"}

# BI-RADS breast composition (ACR BI-RADS Atlas 5th ed.: about 10 % / 40 % / 40 % / 10 % of women)
# and the glandular share of the mammary zone that each stands for.
COMPOSITION_FREQ = {"a": 0.10, "b": 0.40, "c": 0.40, "d": 0.10}
GLANDULAR_SHARE = {"a": (0.05, 0.25), "b": (0.25, 0.50), "c": (0.50, 0.75), "d": (0.75, 0.95)}
# Subcutaneous fat thickness (mm) by composition: fatty breasts carry more of it.
SUBCUTANEOUS_MM = {"a": (5.0, 9.0), "b": (3.5, 7.0), "c": (2.5, 5.5), "d": (2.0, 4.0)}

# Moduli relative to fat (ranges and sources in docs/phantom_v2_sources.md).
MODULUS = {
    "skin": (5.0, 15.0),
    "septa": (2.0, 5.0),
    "gland": (1.5, 3.0),
    "pectoralis": (3.0, 6.0),
    # Cortical bone is ~10⁴× fat; capped so that the FEM stays well conditioned: nothing under
    # a rib is imaged anyway, and 20–40× already makes it rigid next to the breast.
    "rib": (20.0, 40.0),
}
RIB_PROBABILITY = 0.3  # a rib is drawn below the pectoralis; about 2/3 of them reach into a 40 mm field


@dataclass
class Anatomy:
    """Property maps of a breast without a lesion, and the surfaces that bound its layers."""

    layers: np.ndarray  # (n, n) int8 layer codes (module constants)
    modulus: np.ndarray  # (n, n) relative to fat
    echo: np.ndarray  # (n, n) relative to glandular tissue
    attenuation: np.ndarray  # (n, n) excess Np/mm
    gland: np.ndarray  # (n, n) glandular share in [0, 1] (0 outside the mammary zone)
    fat_echo: float
    params: dict = field(default_factory=dict)


def smooth_noise(rng: np.random.Generator, n: int, field_mm: float, sigma_y_mm: float, sigma_x_mm: float) -> np.ndarray:
    """A zero-mean, unit-variance Gaussian random field with correlation lengths σ_y, σ_x (mm) on n×n.

    White noise on a lattice of spacing σ (with a 3σ margin, so nothing wraps) is spread by
    Gaussian kernels of width σ: ``F = W_y · C · W_xᵀ``, divided by its exact pointwise standard
    deviation. At spacing σ the lattice ripple of the variance is ~2·exp(−π²) ≈ 10⁻⁴. Float32.
    """
    px = field_mm / n
    pos = (np.arange(n) + 0.5) * px

    def weights(sigma: float) -> np.ndarray:
        spacing = max(sigma, px)
        margin = int(np.ceil(3 * sigma / spacing)) + 1
        centres = (np.arange(int(np.ceil(field_mm / spacing)) + 2 * margin + 1) - margin) * spacing
        w = np.exp(-0.5 * ((pos[:, None] - centres[None, :]) / sigma) ** 2).astype(np.float32)
        return w / np.sqrt((w * w).sum(axis=1, keepdims=True))  # unit variance per row

    wy, wx = weights(sigma_y_mm), weights(sigma_x_mm)
    c = rng.standard_normal((wy.shape[1], wx.shape[1])).astype(np.float32)
    if wy.shape[1] <= wx.shape[1]:
        return (wy @ c) @ wx.T  # (n, my)(my, mx) → (n, mx)(mx, n)
    return wy @ (c @ wx.T)


def _curve(rng: np.random.Generator, x: np.ndarray, amp_mm: float, period_mm: tuple[float, float]) -> np.ndarray:
    """A slow lateral undulation of a layer surface: two sines of random period and phase (mm)."""
    out = np.zeros_like(x)
    for share in (0.7, 0.3):
        out += share * amp_mm * np.sin(2 * np.pi * x / rng.uniform(*period_mm) + rng.uniform(0, 2 * np.pi))
    return out


def _r(v: float) -> float:
    """A JSON-friendly rounded float (numpy scalars become Python floats)."""
    return round(float(v), 3)


def step(d: np.ndarray, width: float) -> np.ndarray:
    """A soft step from 0 (d ≪ 0) to 1 (d ≫ 0) over ``width``: the C¹ smoothstep of d/width + ½.

    Polynomial rather than a logistic: ten times cheaper on a 384² grid, and exactly 0 or 1
    beyond ±width/2, which keeps layers from leaking into each other.
    """
    t = d / width
    t += 0.5
    np.clip(t, 0.0, 1.0, out=t)
    return t * t * (3.0 - 2.0 * t)


def bump(d: np.ndarray, half_width: float) -> np.ndarray:
    """A smooth band ``(1 − (d/h)²)²`` of half-width h, zero beyond (a cheap Gaussian look-alike)."""
    q = np.clip(1.0 - (d / half_width) ** 2, 0.0, 1.0)
    return q * q


def make_breast(
    rng: np.random.Generator, n: int, field_mm: float, *, clear_mm: tuple[float, float] | None = None,
    composition: str | None = None,
) -> Anatomy:
    """Draw a layered breast on an n×n grid over ``field_mm`` × ``field_mm``.

    Args:
        rng: random stream (all draws come from it, in a fixed order).
        n: grid points per side.
        field_mm: lateral and axial extent.
        clear_mm: (top, bottom) depths of a lesion that must sit in the mammary zone: the
            subcutaneous fat ends above ``top`` (where it can) and the pectoralis starts at least
            2 mm below ``bottom``.
        composition: force the BI-RADS composition ("a".."d"); drawn from
            :data:`COMPOSITION_FREQ` when ``None`` (the draw is made either way).

    Returns:
        The anatomy; ``params`` holds the composition, the drawn glandular share of the mammary
        zone and the measured ``glandular_fraction`` of its pixels, layer thicknesses (mm; the
        mammary zone's is its mean), moduli and echoes, and the rib's place when one is drawn.
    """
    if n < 8:
        raise ValueError(f"expected a grid of at least 8 points per side, got n={n}")
    if field_mm <= 0:
        raise ValueError(f"expected a positive field_mm, got {field_mm}")
    if composition is not None and composition not in COMPOSITION_FREQ:
        raise ValueError(f"unknown composition {composition!r}; expected one of {sorted(COMPOSITION_FREQ)}")
    px = field_mm / n
    pos = ((np.arange(n) + 0.5) * px).astype(np.float32)  # float32 maps: half the memory traffic
    y = pos[:, None]  # (n, 1) depth, mm
    xs = pos  # (n,) lateral, mm

    keys = list(COMPOSITION_FREQ)
    drawn = keys[rng.choice(len(keys), p=np.array(list(COMPOSITION_FREQ.values())))]
    comp = composition or drawn

    # Depths of the layer surfaces (mm), each a function of x.
    skin_mm = rng.uniform(1.5, 2.0)
    subcut_mm = rng.uniform(*SUBCUTANEOUS_MM[comp])
    retro_mm = rng.uniform(1.0, 3.5)
    pect_top_mm = rng.uniform(26.0, 34.0)
    pect_mm = rng.uniform(3.0, 7.0)
    has_rib = bool(rng.random() < RIB_PROBABILITY)
    if clear_mm is not None:
        top, bottom = clear_mm
        subcut_mm = float(np.clip(subcut_mm, 1.0, max(1.0, top - 1.0 - skin_mm)))
        pect_top_mm = max(pect_top_mm, bottom + retro_mm + 2.0)
    skin_b = skin_mm + 0.05 * _curve(rng, xs, 1.0, (20, 50))
    # The mammary zone rises in crests toward the skin where Cooper's ligaments attach.
    n_lig = int(rng.integers(2, 6))
    lig_x = np.sort(rng.uniform(0.05, 0.95, n_lig)) * field_mm
    crest_h = rng.uniform(0.5, 1.0, n_lig) * min(subcut_mm * 0.6, 3.0)
    crest_w = rng.uniform(1.5, 3.5, n_lig)
    crests = (crest_h[:, None] * np.exp(-0.5 * ((xs[None, :] - lig_x[:, None]) / crest_w[:, None]) ** 2)).max(axis=0)
    gland_top = skin_b + subcut_mm + _curve(rng, xs, 0.8, (15, 40)) - crests
    gland_top = np.maximum(gland_top, skin_b + 0.6)
    pect_top = pect_top_mm + _curve(rng, xs, 1.0, (30, 80))
    retro_top = pect_top - retro_mm - np.abs(_curve(rng, xs, 0.5, (10, 25)))
    pect_bottom = pect_top + pect_mm
    skin_b, gland_top, retro_top, pect_top, pect_bottom = (
        s.astype(np.float32) for s in (skin_b, gland_top, retro_top, pect_top, pect_bottom))

    # Zone weights: nested soft steps, so they sum to one and each boundary is soft (0.4–0.8 mm).
    width = rng.uniform(0.4, 0.8)
    below_skin = step(y - skin_b, width)
    below_gtop = step(y - gland_top, 2 * width)
    below_retro = step(y - retro_top, 2 * width)
    below_pect = step(y - pect_top, width)
    w_skin = 1 - below_skin
    w_sub = below_skin * (1 - below_gtop)
    w_mam = below_skin * below_gtop * (1 - below_retro)
    w_retro = below_skin * below_gtop * below_retro * (1 - below_pect)
    w_pect = below_skin * below_gtop * below_retro * below_pect

    # Subcutaneous fat (rows down to the deepest point of the mammary zone's top): lobules walled
    # by septa, the zero set of an anisotropic random field (lobules wider than tall), and Cooper's
    # ligaments, thin curved bands from each crest of the mammary zone up to the skin.
    sub = slice(0, min(n, int(np.ceil((gland_top.max() + width) / px)) + 1))
    ys = y[sub]
    lob = smooth_noise(rng, n, field_mm, rng.uniform(1.0, 1.6), rng.uniform(2.5, 4.0))[sub]
    gy, gx = np.gradient(lob, px)
    septa_w = rng.uniform(0.08, 0.14)
    septa = bump(lob / (np.sqrt(gy * gy + gx * gx) * septa_w + 1e-9), 2.5)
    lig = np.zeros_like(lob)
    for k in range(n_lig):
        top_x = lig_x[k] + rng.uniform(-5.0, 5.0)
        bend = rng.uniform(-2.0, 2.0)
        ix = min(n - 1, int(lig_x[k] / px))
        reach = max(gland_top[ix] + 0.5 - skin_b[ix], 0.5)
        t = np.clip((ys - skin_b[ix]) / reach, 0.0, 1.0)  # 0 at the skin → 1 at the crest
        centre = top_x + (lig_x[k] - top_x) * t + bend * t * (1 - t)
        slope = np.hypot(1.0, (lig_x[k] - top_x) / reach)
        band = bump(pos[None, :] - centre, 2.5 * rng.uniform(0.08, 0.14) * slope)
        lig = np.maximum(lig, band * step(gland_top[ix] + 0.5 - ys, width))
    fibrous = np.zeros((n, n), np.float32)
    fibrous[sub] = np.maximum(septa * w_sub[sub], lig * below_skin[sub])

    # Mammary zone: glandular tissue in horizontal sheets, densest mid-zone.
    g = (smooth_noise(rng, n, field_mm, rng.uniform(0.6, 1.2), rng.uniform(3.0, 6.0))
         + 0.4 * smooth_noise(rng, n, field_mm, rng.uniform(0.2, 0.35), rng.uniform(1.0, 2.0)))
    depth_in_zone = np.clip((y - gland_top) / np.maximum(retro_top - gland_top, 1.0), 0.0, 1.0)
    g = g + 3.2 * depth_in_zone * (1 - depth_in_zone)
    zone = w_mam > 0.5
    share = rng.uniform(*GLANDULAR_SHARE[comp])
    thr = np.quantile(g[zone], 1 - share) if zone.any() else 0.0
    gland = step(g - thr, 1.0) * w_mam

    # Pectoralis: fibres nearly parallel to the chest wall → periodic striation along depth.
    period = rng.uniform(1.0, 2.0)
    fibre_slope = rng.uniform(-0.08, 0.08)
    wave_period = rng.uniform(8.0, 20.0)
    deep = slice(max(0, int((pect_top.min() - width) / px)), n)
    wave = 0.3 * np.sin(2 * np.pi * pos / wave_period)
    # Fibres are neither perfectly straight nor equally bright: a smooth random phase (a quarter
    # period) and amplitude along them.
    jitter = smooth_noise(rng, n, field_mm, 1.0, 4.0)[deep]
    strength = smooth_noise(rng, n, field_mm, 0.8, 5.0)[deep]
    striation = np.zeros((n, n), np.float32)
    phase = (y[deep] - fibre_slope * pos[None, :] - wave[None, :]) / period + 0.25 * jitter
    striation[deep] = np.cos(2 * np.pi * phase) * (0.75 + 0.25 * np.clip(strength, -1, 1))

    fat_echo = rng.uniform(0.45, 0.6)
    fat_noise = smooth_noise(rng, n, field_mm, 1.5, 3.0)
    echoes = {"skin": rng.uniform(1.2, 1.5), "septa": rng.uniform(1.0, 1.3), "gland": rng.uniform(0.85, 1.15),
              "muscle": rng.uniform(0.45, 0.6), "striation": rng.uniform(0.35, 0.5),
              "rib_cortex": rng.uniform(1.8, 2.5)}
    moduli = {name: rng.uniform(*lim) for name, lim in MODULUS.items()}

    fat = fat_echo * (1 + 0.06 * fat_noise)
    echo = (w_skin * echoes["skin"]
            + (w_sub + w_mam + w_retro) * fat
            + gland * (echoes["gland"] * (1 + 0.03 * g.clip(-3, 3)) - fat)
            + w_pect * echoes["muscle"] * (1 + echoes["striation"] * striation))
    echo = echo * (1 - fibrous) + fibrous * echoes["septa"]
    echo = np.maximum(echo, bump(y - pect_top, 0.4) * echoes["septa"])  # the pectoral fascia
    log_k = (w_skin * np.log(moduli["skin"]) + w_pect * np.log(moduli["pectoralis"])
             + gland * np.log(moduli["gland"]) + fibrous * np.log(moduli["septa"]))
    modulus = np.exp(log_k) * (1 + 0.05 * fat_noise)  # ±5 % texture everywhere
    attenuation = np.zeros((n, n), np.float32)

    depth_rank = ((y >= skin_b).astype(np.int8) + (y >= gland_top) + (y >= retro_top) + (y >= pect_top)).astype(np.intp)
    layers = np.array([SKIN, SUBCUTANEOUS_FAT, MAMMARY, RETROMAMMARY_FAT, PECTORALIS], dtype=np.int8)[depth_rank]
    layers[(layers == SUBCUTANEOUS_FAT) & (fibrous > 0.5)] = SEPTA

    rib_params: dict = {"rib": False}
    if has_rib:
        rib_w, rib_h = rng.uniform(10.0, 16.0), rng.uniform(5.0, 8.0)
        rcx = rng.uniform(0.2, 0.8) * field_mm
        rcy = pect_bottom[min(n - 1, int(rcx / px))] + rng.uniform(0.5, 2.0) + rib_h / 2
        rib_att = rng.uniform(0.8, 1.2)
        rows = slice(max(0, int((rcy - rib_h / 2 - 1) / px)), min(n, int(np.ceil((rcy + rib_h / 2 + 1) / px))))
        cols = slice(max(0, int((rcx - rib_w / 2 - 1) / px)), min(n, int(np.ceil((rcx + rib_w / 2 + 1) / px))))
        if rows.start < rows.stop and cols.start < cols.stop:
            rho = np.hypot((pos[None, cols] - rcx) / (rib_w / 2), (y[rows] - rcy) / (rib_h / 2))
            inside = step((1 - rho) * rib_h / 2, width)
            # The anterior surface: a bright curve along the upper half of the outline.
            cortex = bump((1 - rho) * rib_h / 2 - 0.3, 0.5) * (y[rows] < rcy)
            e, k = echo[rows, cols], modulus[rows, cols]
            echo[rows, cols] = e * (1 - inside) + inside * 0.2 + cortex * echoes["rib_cortex"]
            modulus[rows, cols] = k * (1 - inside) + inside * moduli["rib"]
            # Bone reflects and absorbs almost everything: ≈1 Np/mm excess over its first millimetres.
            attenuation[rows, cols] = rib_att * inside
            block = layers[rows, cols]
            block[inside > 0.5] = RIB
        in_field = bool((layers == RIB).any())
        rib_params = {"rib": in_field, "rib_center_mm": [_r(rcx), _r(rcy)], "rib_axes_mm": [_r(rib_w), _r(rib_h)],
                      "rib_attenuation": _r(rib_att)}

    params = {
        "composition": comp,
        "glandular_share": _r(share),
        "skin_mm": _r(skin_mm),
        "subcutaneous_fat_mm": _r(subcut_mm),
        "mammary_zone_mm": _r(np.mean(retro_top - gland_top)),
        "glandular_fraction": _r(gland[layers == MAMMARY].mean()) if (layers == MAMMARY).any() else 0.0,
        "retromammary_fat_mm": _r(retro_mm),
        "pectoralis_top_mm": _r(pect_top_mm),
        "pectoralis_mm": _r(pect_mm),
        "cooper_ligaments": n_lig,
        "striation_period_mm": _r(period),
        "moduli": {k: _r(v) for k, v in moduli.items()},
        "echoes": {"fat": _r(fat_echo), **{k: _r(v) for k, v in echoes.items()}},
        **rib_params,
    }
    return Anatomy(layers=layers, modulus=modulus.astype(np.float64), echo=echo.astype(np.float64),
                   attenuation=attenuation.astype(np.float64), gland=gland,
                   fat_echo=fat_echo, params=params)
