"""Breast tissue and lesion model: stiffness, echogenicity and attenuation maps.

Maps live on a regular property grid over the imaged field (``y`` = depth, down). Moduli are
relative to fat (fat = 1). Echogenicity is a backscatter amplitude relative to
fibroglandular tissue (= 1). Attenuation is the *excess* over the background in Np/mm
(the scanner's time-gain compensation removes the background's): a positive excess behind a
carcinoma shadows, a negative one behind a cyst enhances.

Lesions are drawn from a *design* Tsukuba pattern (DESIGN §3): the modulus pattern asked for,
which becomes the case's label.

===========  =========================================================================
design       modulus pattern
===========  =========================================================================
1            lesion ≈ background (k 1.0–1.5)
2            mosaic: soft lesion with scattered hard patches (k 6–12)
3            hard core (k 5–10), soft rim
4            uniformly hard lesion, normal surroundings
5            hard lesion and a stiff desmoplastic halo (≥ 4× fat, 0.4–0.7 of the
             lesion's modulus), isoechoic
cyst         fluid (k 0.1–0.5), anechoic, posterior enhancement
===========  =========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

# Design Tsukuba score by lesion class (probabilities).
DESIGN_SCORES: dict[str, dict[object, float]] = {
    "cyst": {"cyst": 1.0},
    "fibroadenoma": {1: 0.35, 2: 0.35, 3: 0.15, 4: 0.15},
    "carcinoma": {3: 0.1, 4: 0.3, 5: 0.6},
}
PATHOLOGY = {"cyst": "benign", "fibroadenoma": "benign", "carcinoma": "malignant"}


@dataclass
class Phantom:
    """Property maps of one phantom on an n×n grid over ``field_mm`` × ``field_mm``."""

    modulus: np.ndarray  # (n, n) relative Young's modulus (fat = 1)
    echo: np.ndarray  # (n, n) backscatter amplitude
    attenuation: np.ndarray  # (n, n) excess attenuation, Np/mm
    lesion: np.ndarray  # (n, n) bool, the B-mode boundary
    halo: np.ndarray  # (n, n) bool, stiff halo (design 5)
    field_mm: float
    lesion_type: str
    tsukuba: object
    params: dict = field(default_factory=dict)
    layers: np.ndarray | None = None  # (n, n) int8 anatomy codes of elastogan.sim.breast (phantom-v2 only)

    @property
    def pixel_mm(self) -> float:
        return self.field_mm / self.modulus.shape[0]


def _smooth_field(rng: np.random.Generator, n: int, sigma_px: float) -> np.ndarray:
    """A zero-mean, unit-sd Gaussian random field smoothed over ``sigma_px``."""
    f = ndimage.gaussian_filter(rng.standard_normal((n, n)), sigma_px, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-12)


def _shape_mask(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, cx: float, cy: float,
    a: float, b: float, angle: float, irregular: float, spicules: int,
) -> np.ndarray:
    """A lesion outline: an ellipse whose radius is perturbed by harmonics and spicules.

    ``irregular`` scales random low-order harmonics (lobulation, angular margins);
    ``spicules`` narrow radial spikes (the spiculated margin of carcinoma).
    """
    dx, dy = x - cx, y - cy
    ca, sa = np.cos(angle), np.sin(angle)
    u = (dx * ca + dy * sa) / a
    v = (-dx * sa + dy * ca) / b
    rho = np.hypot(u, v)
    theta = np.arctan2(v, u)
    radius = np.ones_like(theta)
    for k in range(2, 7):
        amp = irregular * rng.uniform(0, 1) / k
        radius += amp * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    for _ in range(spicules):
        t0 = rng.uniform(-np.pi, np.pi)
        width = rng.uniform(0.04, 0.09)
        d = np.angle(np.exp(1j * (theta - t0)))
        radius += rng.uniform(0.3, 0.7) * np.exp(-0.5 * (d / width) ** 2)
    return rho <= radius


def make_phantom(rng: np.random.Generator, n: int, field_mm: float, lesion_type: str) -> Phantom:
    """Draw one breast phantom with a lesion of ``lesion_type`` on an n×n grid."""
    if lesion_type not in DESIGN_SCORES:
        raise ValueError(f"unknown lesion type {lesion_type!r}; expected one of {sorted(DESIGN_SCORES)}")
    px = field_mm / n
    y, x = (np.mgrid[0:n, 0:n] + 0.5) * px  # mm, y = depth
    params: dict = {}

    # Layers: skin, subcutaneous fat, mammary (fibroglandular) zone, retromammary fat, muscle.
    skin = rng.uniform(1.5, 2.0)
    subcut = skin + rng.uniform(2.0, 6.0) + 0.8 * np.sin(2 * np.pi * x / rng.uniform(25, 60) + rng.uniform(0, 6))
    has_muscle = rng.random() < 0.6
    muscle_top = rng.uniform(32.0, 37.0) if has_muscle else field_mm + 1
    muscle = y >= muscle_top + 1.0 * np.sin(2 * np.pi * x / rng.uniform(30, 80) + rng.uniform(0, 6))
    mammary = (y > subcut) & (y < muscle_top - rng.uniform(1.0, 3.0))
    glandular_fraction = rng.uniform(0.3, 0.6)
    g = _smooth_field(rng, n, rng.uniform(1.5, 3.0) / px)
    gland = mammary & (g > np.quantile(g, 1 - glandular_fraction))
    params.update(skin_mm=round(skin, 3), glandular_fraction=round(glandular_fraction, 3), muscle=bool(has_muscle))

    fat_k = 1.0 + 0.05 * _smooth_field(rng, n, 4.0 / px)
    modulus = fat_k.copy()
    gland_k = rng.uniform(1.5, 3.0)
    modulus[gland] = gland_k
    skin_k = rng.uniform(5.0, 15.0)
    modulus[y < skin] = skin_k
    modulus[muscle] = rng.uniform(3.0, 6.0)
    params.update(gland_k=round(gland_k, 3), skin_k=round(skin_k, 3))

    echo = np.full((n, n), 0.5) * (1 + 0.08 * _smooth_field(rng, n, 3.0 / px))
    echo[gland] = 1.0
    echo[y < skin] = 1.3
    striation = 0.6 + 0.25 * np.sin(2 * np.pi * (y + 2 * np.sin(x / 9)) / rng.uniform(1.2, 2.0))
    echo[muscle] = striation[muscle]
    # Cooper's ligaments: thin bright arcs from the skin through the subcutaneous fat.
    for _ in range(rng.integers(0, 4)):
        x0 = rng.uniform(0, field_mm)
        curve = x0 + rng.uniform(-6, 6) * (y / field_mm) ** 2 + rng.uniform(-3, 3) * y / field_mm
        lig = (np.abs(x - curve) < rng.uniform(0.15, 0.3)) & (y > skin) & (y < subcut + 1.5)
        echo[lig] = 1.5
        modulus[lig] = np.maximum(modulus[lig], 2.0)
    attenuation = np.zeros((n, n))

    # The lesion.
    scores = DESIGN_SCORES[lesion_type]
    keys = list(scores)
    tsukuba = keys[rng.choice(len(keys), p=np.array(list(scores.values())))]
    cx = rng.uniform(12.0, field_mm - 12.0)
    if lesion_type == "cyst":
        a = rng.uniform(2.5, 6.0)
        b = a * rng.uniform(0.6, 1.0)
        irregular, spicules = 0.0, 0
    elif lesion_type == "fibroadenoma":
        a = rng.uniform(4.0, 9.0)
        b = a / rng.uniform(1.2, 2.0)  # oval, wider than tall (parallel orientation)
        irregular, spicules = rng.uniform(0.0, 0.3), 0
    else:
        a = rng.uniform(3.5, 8.0)
        b = a * rng.uniform(0.7, 1.2)  # sometimes taller than wide
        irregular, spicules = rng.uniform(0.2, 0.5), int(rng.integers(0, 9))
    cy = rng.uniform(max(subcut.max() + b + 1.0, 9.0), min(muscle_top - b - 3.0, 27.0))
    angle = rng.uniform(-0.3, 0.3)
    lesion = _shape_mask(rng, x, y, cx, cy, a, b, angle, irregular, spicules)
    lesion = ndimage.binary_fill_holes(lesion)
    labels, count = ndimage.label(lesion)
    if count > 1:  # keep the body, drop detached islands
        sizes = ndimage.sum(lesion, labels, range(1, count + 1))
        lesion = labels == (1 + int(np.argmax(sizes)))
    params.update(center_mm=[round(cx, 3), round(cy, 3)], axes_mm=[round(a, 3), round(b, 3)],
                  angle_rad=round(angle, 3), irregular=round(irregular, 3), spicules=spicules)

    r_eq = np.sqrt(lesion.sum() / np.pi)  # equivalent radius, px
    inside_dist = ndimage.distance_transform_edt(lesion)
    halo = np.zeros_like(lesion)
    if tsukuba == "cyst":
        k = rng.uniform(0.1, 0.5)
        modulus[lesion] = k
        echo[lesion] = 0.01
        attenuation[lesion] = -rng.uniform(0.03, 0.05)
        params.update(lesion_k=round(k, 3))
    elif tsukuba == 1:
        k = rng.uniform(1.0, 1.5)
        modulus[lesion] = k
        params.update(lesion_k=round(k, 3))
    elif tsukuba == 2:
        soft, hard = rng.uniform(0.8, 1.2), rng.uniform(6.0, 12.0)
        frac = rng.uniform(0.3, 0.5)
        m = _smooth_field(rng, n, max(1.0, 0.2 * r_eq))
        patches = lesion & (m > np.quantile(m[lesion], 1 - frac))
        modulus[lesion] = soft
        modulus[patches] = hard
        params.update(lesion_k=round(soft, 3), patch_k=round(hard, 3), patch_fraction=round(frac, 3))
    elif tsukuba == 3:
        soft, hard = rng.uniform(0.8, 1.2), rng.uniform(5.0, 10.0)
        core_frac = rng.uniform(0.5, 0.65)
        core = inside_dist > (1 - core_frac) * r_eq
        modulus[lesion] = soft
        modulus[core] = hard
        params.update(lesion_k=round(soft, 3), core_k=round(hard, 3), core_fraction=round(core_frac, 3))
    else:
        # Uniformly hard fibroadenomas are the old, hyalinised ones: stiffer than the usual
        # 1.5-4x, else the strain contrast would not read as hard.
        lo, hi = (4.0, 6.0) if lesion_type == "fibroadenoma" else (5.0, 15.0)
        k = rng.uniform(lo, hi)
        modulus[lesion] = k
        params.update(lesion_k=round(k, 3))
        if tsukuba == 5:
            width = rng.uniform(2.0, 4.0) / px
            halo = (ndimage.distance_transform_edt(~lesion) <= width) & ~lesion
            # A halo of 2-5x fat reads as soft next to glandular tissue (1.5-3x) and a 10x
            # tumour; the infiltrated surroundings of a Tsukuba-5 lesion must be nearly as hard
            # as the tumour itself for the strain image to show "no strain around it".
            halo_k = max(4.0, rng.uniform(0.4, 0.7) * k)
            modulus[halo] = np.maximum(modulus[halo], halo_k)
            params.update(halo_mm=round(width * px, 3), halo_k=round(halo_k, 3))
    if lesion_type == "fibroadenoma":
        echo[lesion] = rng.uniform(0.3, 0.5)
        attenuation[lesion] = -rng.uniform(0.0, 0.02)
    elif lesion_type == "carcinoma":
        echo[lesion] = rng.uniform(0.2, 0.3)
        attenuation[lesion] = rng.uniform(0.03, 0.08)
    return Phantom(
        modulus=modulus, echo=echo, attenuation=attenuation, lesion=lesion, halo=halo,
        field_mm=field_mm, lesion_type=lesion_type, tsukuba=tsukuba, params=params,
    )
