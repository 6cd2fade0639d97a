"""Lesions described in the BI-RADS ultrasound lexicon: label draws, outlines, echo, posterior features.

A lesion of a pathology class gets lexicon labels drawn from a joint distribution whose
per-class marginals follow published frequencies; then its outline, echo and attenuation are
made to show those labels, and a BI-RADS assessment category is derived from the labels alone.

Per-class marginals (fractions; sources and what had to be assumed: ``docs/phantom_v2_sources.md``).
H = Hong et al. 2005 (AJR 184:1260; 141 malignant and 262 benign solid masses: counts derived
from the abstract's PPVs/NPVs); S = Stavros et al. 1995 (Radiology 196:123; frequency of a
finding among malignant = its sensitivity, among benign = 1 − specificity); A = assumed.

==================  ==========================  =========================  =========================
feature             fibroadenoma                carcinoma                  source
==================  ==========================  =========================  =========================
shape               oval .74 round .02          oval .26 round .02         H (round among benign
                    irregular .24               irregular .72              assumed .02, not 0)
orientation         parallel .87 not .13        parallel .47 not .53       H
margin              circumscribed .61           circumscribed .13          H (circ., spic.);
                    indistinct .19 microlob.    indistinct .33 microlob.   split of the rest A,
                    .11 angular .08 spic. .01   .18 angular .22 spic. .14  ordered as in S
echo pattern        hyperechoic .03 iso .20     hyperechoic .00 iso .05    A; hypoechoic among
                    hypo .65 heterog. .08       hypo .80 heterog. .12      malignant ≥ S's 69 %
                    complex .04                 complex .03                "marked hypoechogenicity"
posterior           enhancement .37 none .55    enhancement .10 none .40   S: shadowing 49 % of
                    combined .03 shadowing .05  combined .08 shadowing .42 malignant, 5 % benign
calcifications      .04                         .27                        S
==================  ==========================  =========================  =========================

Cysts (A, after the lexicon's definitions): simple .75 (anechoic, circumscribed, oval/round,
enhancement .85), complicated .17 (homogeneous low-level echoes, labelled hypoechoic),
complex cystic and solid .08.

The features of one lesion are not independent (an irregular mass is seldom circumscribed):
each feature is the quantile of a latent ``√ρ·s + √(1−ρ)·ε_j`` with ``s`` shared by the lesion
(a Gaussian copula), so every marginal stays as tabled and ρ sets how strongly the suspicious
features travel together. ρ is not published; :data:`LATENT_CORRELATION` is chosen so that the
rule below gives a label-only AUC inside the published range for B-mode BI-RADS (see
:func:`label_auc`).

BI-RADS category rule (labels alone, in the spirit of ACR BI-RADS 5th ed.): a simple cyst (anechoic,
circumscribed, oval or round, no shadowing) → "2", whatever its orientation. Otherwise one point each for
an irregular shape, a not-parallel orientation, a not-circumscribed margin (two if spiculated),
posterior shadowing or a combined pattern, calcifications, and a complex cystic and solid echo
pattern. 0 points → "2" if anechoic (a simple cyst) or hyperechoic, else "3"; 1 → "4a";
2 → "4b"; 3 → "4c"; 4 or more → "5".
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.special import ndtr

from elastogan.sim.breast import bump, smooth_noise, step

SHAPES = ("oval", "round", "irregular")
ORIENTATIONS = ("parallel", "not parallel")
MARGINS = ("circumscribed", "indistinct", "microlobulated", "angular", "spiculated")
ECHO_PATTERNS = ("anechoic", "hyperechoic", "isoechoic", "hypoechoic", "heterogeneous", "complex cystic and solid")
POSTERIOR = ("enhancement", "none", "combined", "shadowing")
# Levels of each feature in order of rising suspicion (the copula's latent order).
LEVELS: dict[str, tuple] = {
    "shape": SHAPES,
    "orientation": ORIENTATIONS,
    "margin": MARGINS,
    "echo_pattern": ECHO_PATTERNS,
    "posterior": POSTERIOR,
    "calcifications": (False, True),
}
CATEGORIES = ("2", "3", "4a", "4b", "4c", "5")

LEXICON_FREQ: dict[str, dict[str, dict]] = {
    "fibroadenoma": {
        "shape": {"oval": 0.74, "round": 0.02, "irregular": 0.24},
        "orientation": {"parallel": 0.87, "not parallel": 0.13},
        "margin": {"circumscribed": 0.61, "indistinct": 0.19, "microlobulated": 0.11, "angular": 0.08,
                   "spiculated": 0.01},
        "echo_pattern": {"hyperechoic": 0.03, "isoechoic": 0.20, "hypoechoic": 0.65, "heterogeneous": 0.08,
                         "complex cystic and solid": 0.04},
        "posterior": {"enhancement": 0.37, "none": 0.55, "combined": 0.03, "shadowing": 0.05},
        "calcifications": {False: 0.96, True: 0.04},
    },
    "carcinoma": {
        "shape": {"oval": 0.26, "round": 0.02, "irregular": 0.72},
        "orientation": {"parallel": 0.47, "not parallel": 0.53},
        "margin": {"circumscribed": 0.13, "indistinct": 0.33, "microlobulated": 0.18, "angular": 0.22,
                   "spiculated": 0.14},
        "echo_pattern": {"isoechoic": 0.05, "hypoechoic": 0.80, "heterogeneous": 0.12,
                         "complex cystic and solid": 0.03},
        "posterior": {"enhancement": 0.10, "none": 0.40, "combined": 0.08, "shadowing": 0.42},
        "calcifications": {False: 0.73, True: 0.27},
    },
    "cyst:simple": {
        "shape": {"oval": 0.7, "round": 0.3},
        "orientation": {"parallel": 0.9, "not parallel": 0.1},
        "margin": {"circumscribed": 1.0},
        "echo_pattern": {"anechoic": 1.0},
        "posterior": {"enhancement": 0.85, "none": 0.15},
        "calcifications": {False: 1.0},
    },
    "cyst:complicated": {
        "shape": {"oval": 0.7, "round": 0.3},
        "orientation": {"parallel": 0.9, "not parallel": 0.1},
        "margin": {"circumscribed": 0.85, "indistinct": 0.15},
        "echo_pattern": {"hypoechoic": 1.0},
        "posterior": {"enhancement": 0.6, "none": 0.4},
        "calcifications": {False: 1.0},
    },
    "cyst:complex": {
        "shape": {"oval": 0.6, "round": 0.15, "irregular": 0.25},
        "orientation": {"parallel": 0.85, "not parallel": 0.15},
        "margin": {"circumscribed": 0.5, "indistinct": 0.3, "microlobulated": 0.2},
        "echo_pattern": {"complex cystic and solid": 1.0},
        "posterior": {"enhancement": 0.6, "none": 0.4},
        "calcifications": {False: 1.0},
    },
}
CYST_KINDS = {"simple": 0.75, "complicated": 0.17, "complex": 0.08}
LATENT_CORRELATION = 0.45
# Half the largest diameter (mm) by class: phantom-v1's ranges, so lesion areas stay comparable.
HALF_SIZE_MM = {"cyst": (2.5, 6.0), "fibroadenoma": (4.0, 9.0), "carcinoma": (3.5, 8.0)}
CLASS_MIX = {"cyst": 0.2, "fibroadenoma": 0.4, "carcinoma": 0.4}
B_MODE_AUC_RANGE = (0.74, 0.94)  # published B-mode BI-RADS AUCs, 0.743-0.935 (docs/phantom_v2_sources.md §5)


def _cumulative(table: dict, feature: str) -> np.ndarray:
    p = np.array([table[feature].get(level, 0.0) for level in LEVELS[feature]], dtype=np.float64)
    return np.cumsum(p) / p.sum()


def _draw_indices(rng: np.random.Generator, table: dict, size: int, rho: float) -> dict[str, np.ndarray]:
    """Level indices of every feature for ``size`` lesions of one table, by the Gaussian copula."""
    shared = rng.standard_normal(size)
    out = {}
    for feature in LEVELS:
        u = ndtr(np.sqrt(rho) * shared + np.sqrt(1 - rho) * rng.standard_normal(size))
        level = np.searchsorted(_cumulative(table, feature), u, side="right")
        out[feature] = np.minimum(level, len(LEVELS[feature]) - 1)  # u = 1.0 exactly
    return out


def draw_label_indices(rng: np.random.Generator, lesion_type: str, size: int,
                       rho: float = LATENT_CORRELATION) -> dict[str, np.ndarray]:
    """Lexicon level indices (into :data:`LEVELS`) of ``size`` lesions of ``lesion_type``.

    Cysts are first split into simple / complicated / complex (:data:`CYST_KINDS`); the key
    ``"cyst_kind"`` then holds the kind's index (0 for solid lesions).
    """
    if lesion_type not in HALF_SIZE_MM:
        raise ValueError(f"unknown lesion type {lesion_type!r}; expected one of {sorted(HALF_SIZE_MM)}")
    if size < 1:
        raise ValueError(f"expected at least one lesion, got size={size}")
    if lesion_type != "cyst":
        out = _draw_indices(rng, LEXICON_FREQ[lesion_type], size, rho)
        out["cyst_kind"] = np.zeros(size, dtype=np.int64)
        return out
    kinds = list(CYST_KINDS)
    kind = rng.choice(len(kinds), size=size, p=np.array(list(CYST_KINDS.values())))
    out = {feature: np.zeros(size, dtype=np.int64) for feature in LEVELS}
    for k, name in enumerate(kinds):
        sel = kind == k
        if sel.any():
            drawn = _draw_indices(rng, LEXICON_FREQ[f"cyst:{name}"], int(sel.sum()), rho)
            for feature in LEVELS:
                out[feature][sel] = drawn[feature]
    out["cyst_kind"] = kind
    return out


def category_indices(idx: dict[str, np.ndarray]) -> np.ndarray:
    """BI-RADS category indices (into :data:`CATEGORIES`) by the module's points rule."""
    margin_points = np.array([0, 1, 1, 1, 2])
    points = ((idx["shape"] == SHAPES.index("irregular")).astype(int)
              + (idx["orientation"] == ORIENTATIONS.index("not parallel"))
              + margin_points[idx["margin"]]
              + (idx["posterior"] >= POSTERIOR.index("combined"))
              + (idx["calcifications"] == 1)
              + (idx["echo_pattern"] == ECHO_PATTERNS.index("complex cystic and solid")))
    benign_echo = idx["echo_pattern"] <= ECHO_PATTERNS.index("hyperechoic")
    simple_cyst = ((idx["echo_pattern"] == ECHO_PATTERNS.index("anechoic")) & (idx["margin"] == 0)
                   & (idx["shape"] <= SHAPES.index("round")) & (idx["posterior"] <= POSTERIOR.index("none")))
    category = np.where(points == 0, np.where(benign_echo, 0, 1), np.minimum(points + 1, 5))
    return np.where(simple_cyst, 0, category)


def birads_category(lexicon: dict) -> str:
    """The BI-RADS assessment category ("2".."5") of one lesion's lexicon labels (module rule).

    Example:
        >>> birads_category({"shape": "irregular", "orientation": "not parallel", "margin": "spiculated",
        ...                  "echo_pattern": "hypoechoic", "posterior": "shadowing", "calcifications": True})
        '5'
        >>> birads_category({"shape": "oval", "orientation": "parallel", "margin": "circumscribed",
        ...                  "echo_pattern": "anechoic", "posterior": "enhancement", "calcifications": False})
        '2'
    """
    try:
        idx = {feature: np.array([LEVELS[feature].index(lexicon[feature])]) for feature in LEVELS}
    except (KeyError, ValueError) as err:
        raise ValueError(f"expected lexicon labels for {list(LEVELS)} from {LEVELS}, got {lexicon!r}") from err
    return CATEGORIES[int(category_indices(idx)[0])]


def draw_lexicon(rng: np.random.Generator, lesion_type: str) -> tuple[dict, str]:
    """One lesion's lexicon labels (JSON-ready, without size and depth) and, for cysts, its kind."""
    idx = draw_label_indices(rng, lesion_type, 1)
    labels = {feature: LEVELS[feature][int(idx[feature][0])] for feature in LEVELS}
    labels["calcifications"] = bool(labels["calcifications"])
    kind = list(CYST_KINDS)[int(idx["cyst_kind"][0])] if lesion_type == "cyst" else "solid"
    return labels, kind


def label_auc(n: int, seed: int) -> dict:
    """Diagnostic accuracy of the BI-RADS rule on lexicon labels alone (no imaging).

    Draws ``n`` lesions with the class mix cyst 0.2 / fibroadenoma 0.4 / carcinoma 0.4, labels
    them from :data:`LEXICON_FREQ`, and scores malignancy (carcinoma) by the rule's category.

    Returns:
        ``auc`` with its DeLong ``se`` and 95 % ``ci``; ``sensitivity`` and ``specificity`` with
        "4a or higher" as positive; ``n``, ``n_malignant``; ``categories``: counts per class.
    """
    # The statistics live in elastogan.eval; imported here only, so the simulator itself never
    # depends on the evaluation package.
    from elastogan.eval.reader_stats.roc import auc_ci, delong

    if n < 10:
        raise ValueError(f"expected at least 10 lesions, got n={n}")
    rng = np.random.default_rng(seed)
    names = list(CLASS_MIX)
    cls = rng.choice(len(names), size=n, p=np.array(list(CLASS_MIX.values())))
    cat = np.zeros(n, dtype=np.int64)
    counts = {}
    for k, name in enumerate(names):
        sel = cls == k
        cat[sel] = category_indices(draw_label_indices(rng, name, max(1, int(sel.sum()))))[: int(sel.sum())]
        counts[name] = {c: int((cat[sel] == i).sum()) for i, c in enumerate(CATEGORIES)}
    truth = (cls == names.index("carcinoma")).astype(int)
    d = delong(cat.astype(np.float64), truth)
    auc, se = float(d.auc[0]), float(d.se[0])
    positive = cat >= CATEGORIES.index("4a")
    return {
        "auc": auc,
        "se": se,
        "ci": list(auc_ci(auc, se)),
        "sensitivity": float(positive[truth == 1].mean()),
        "specificity": float((~positive[truth == 0]).mean()),
        "n": n,
        "n_malignant": int(truth.sum()),
        "categories": counts,
    }


def half_axes(rng: np.random.Generator, lesion_type: str, labels: dict) -> tuple[float, float]:
    """Lateral and axial half-axes (mm) that show the labelled shape and orientation.

    Parallel lesions are wider than tall, not-parallel ones taller than wide; round ones
    nearly isotropic. The larger half-axis is drawn from phantom-v1's range for the class.
    """
    a = rng.uniform(*HALF_SIZE_MM[lesion_type])
    ratio = {"oval": (1.25, 2.0), "round": (1.03, 1.1), "irregular": (1.15, 1.6)}[labels["shape"]]
    r = rng.uniform(*ratio)
    return (a, a / r) if labels["orientation"] == "parallel" else (a / r, a)


def outline(
    rng: np.random.Generator, pos: np.ndarray, cx: float, cy: float, half_w: float, half_h: float, angle: float,
    shape: str, margin: str,
) -> tuple[np.ndarray, np.ndarray]:
    """A lesion outline showing its shape and margin labels, as a star-shaped radius r(θ).

    oval/round: an ellipse with at most gentle lobulation; irregular: low-order harmonics of
    amplitude 0.15–0.3. Margins: circumscribed adds nothing; indistinct a fine roughness (its
    blur is in the echo, see :func:`margin_width_mm`); angular 3–6 sharp corners (triangular
    bumps of r); microlobulated 10–18 small scallops; spiculated 8–16 thin radial spikes
    (0.5–1.0 radii long, tapering to a point).

    Args:
        pos: (n,) pixel-centre coordinates of the square grid, mm (lateral = axial).

    Returns:
        ``mask`` (n, n) bool, the B-mode boundary, one connected piece; ``sd`` (n, n), mm: an
        approximate signed distance to the outline (negative inside), computed in a box around
        the lesion and 10³ outside it.
    """
    n = pos.size
    px = float(pos[1] - pos[0])
    reach = {"irregular": 1.6}.get(shape, 1.1) + {"spiculated": 1.0, "angular": 0.3}.get(margin, 0.1)
    half_box = max(half_w, half_h) * reach + 3.0  # mm: the outline plus the widest blurred edge
    rows = slice(max(0, int((cy - half_box) / px)), min(n, int(np.ceil((cy + half_box) / px)) + 1))
    cols = slice(max(0, int((cx - half_box) / px)), min(n, int(np.ceil((cx + half_box) / px)) + 1))
    dx, dy = pos[None, cols] - cx, pos[rows, None] - cy
    ca, sa = np.cos(angle), np.sin(angle)
    u = (dx * ca + dy * sa) / half_w
    v = (-dx * sa + dy * ca) / half_h
    rho = np.hypot(u, v)
    theta = np.arctan2(v, u)
    radius = np.ones_like(theta)
    if shape == "irregular":
        for k in range(2, 6):
            radius += rng.uniform(0.15, 0.3) / (k - 1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    else:
        for k in (2, 3):
            radius += rng.uniform(0.0, 0.04) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))

    def wrapped(t0: float) -> np.ndarray:
        return np.abs((theta - t0 + np.pi) % (2 * np.pi) - np.pi)

    if margin == "indistinct":
        k = int(rng.integers(6, 11))
        radius += 0.04 * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    elif margin == "angular":
        for t0 in rng.uniform(-np.pi, np.pi, int(rng.integers(3, 7))):
            radius += rng.uniform(0.15, 0.3) * np.clip(1 - wrapped(t0) / rng.uniform(0.25, 0.45), 0, None)
    elif margin == "microlobulated":
        k = int(rng.integers(10, 19))
        radius += rng.uniform(0.06, 0.1) * (np.abs(np.cos(0.5 * k * theta + rng.uniform(0, np.pi))) - 0.64)
    elif margin == "spiculated":
        for t0 in rng.uniform(-np.pi, np.pi, int(rng.integers(8, 17))):
            radius += rng.uniform(0.5, 1.0) * np.clip(1 - wrapped(t0) / rng.uniform(0.025, 0.05), 0, None)
    box = rho <= radius
    labels, count = ndimage.label(box)
    if count > 1:  # a spike's pixelated tip can come loose: keep the body
        sizes = ndimage.sum(box, labels, range(1, count + 1))
        box = labels == (1 + int(np.argmax(sizes)))
    mask = np.zeros((n, n), dtype=bool)
    mask[rows, cols] = box
    sd = np.full((n, n), 1e3)
    sd[rows, cols] = (rho - radius) * np.sqrt(half_w * half_h)
    return mask, sd


def margin_width_mm(rng: np.random.Generator, margin: str) -> float:
    """Width (mm) of the echo transition at the boundary: sharp unless indistinct."""
    return rng.uniform(1.5, 3.0) if margin == "indistinct" else rng.uniform(0.1, 0.2)


def lesion_echo(
    rng: np.random.Generator, pattern: str, lesion: np.ndarray, field_mm: float, fat_echo: float,
) -> tuple[np.ndarray | float, dict]:
    """Backscatter of the lesion's inside (relative to glandular tissue = 1) for an echo pattern.

    BI-RADS grades echogenicity against fat: anechoic 0.01; hypoechoic 0.15–0.3 (below fat);
    isoechoic ≈ fat; hyperechoic 1.1–1.4 (as glandular tissue); heterogeneous a mottled mix
    around 0.3; complex cystic and solid an anechoic fluid with solid parts (0.5–0.8) that take
    30–60 % of the ``lesion`` mask (n, n).
    """
    n = lesion.shape[0]
    if pattern == "anechoic":
        return 0.01, {}
    if pattern == "hypoechoic":
        level = rng.uniform(0.15, 0.3)
        return level, {"lesion_echo": round(level, 3)}
    if pattern == "isoechoic":
        level = fat_echo * rng.uniform(0.95, 1.1)
        return level, {"lesion_echo": round(level, 3)}
    if pattern == "hyperechoic":
        level = rng.uniform(1.1, 1.4)
        return level, {"lesion_echo": round(level, 3)}
    if pattern == "heterogeneous":
        level = rng.uniform(0.25, 0.4)
        tex = smooth_noise(rng, n, field_mm, 0.5, 0.5)
        return np.clip(level * (1 + 0.6 * tex), 0.03, None), {"lesion_echo": round(level, 3)}
    if pattern == "complex cystic and solid":
        solid_share, solid = rng.uniform(0.3, 0.6), rng.uniform(0.5, 0.8)
        tex = smooth_noise(rng, n, field_mm, 1.2, 1.2)
        parts = step(tex - float(np.quantile(tex[lesion], 1 - solid_share)), 0.4)
        return 0.01 + (solid - 0.01) * parts, {"solid_share": round(solid_share, 3), "lesion_echo": round(solid, 3)}
    raise ValueError(f"unknown echo pattern {pattern!r}; expected one of {ECHO_PATTERNS}")


# Two-way gain under the middle of the lesion that each posterior feature aims at.
POSTERIOR_GAIN = {"shadowing": (0.25, 0.6), "enhancement": (1.3, 1.9), "none": (0.95, 1.05)}


def posterior_attenuation(
    rng: np.random.Generator, inside: np.ndarray, x: np.ndarray, cx: float, half_w: float, thickness_mm: float,
    posterior: str,
) -> tuple[np.ndarray, dict]:
    """Excess attenuation (Np/mm) inside the lesion that makes its posterior feature.

    The feature is drawn as the two-way gain G it leaves under the lesion's middle
    (:data:`POSTERIOR_GAIN`: shadowing 0.25–0.6, enhancement 1.3–1.9, none 0.95–1.05), and the
    coefficient is ``−ln G / (2·thickness)``, so thin and thick lesions show alike. Combined:
    shadowing on one side of a vertical split through the lesion, enhancement on the other.
    """
    def coefficient(feature: str) -> float:
        return float(-np.log(rng.uniform(*POSTERIOR_GAIN[feature])) / (2.0 * thickness_mm))

    if posterior in POSTERIOR_GAIN:
        a = coefficient(posterior)
        return a * inside, {"posterior_np_per_mm": round(a, 4)}
    if posterior == "combined":
        shadow, enhance = coefficient("shadowing"), coefficient("enhancement")
        split = cx + rng.uniform(-0.3, 0.3) * half_w
        side = 1.0 if rng.random() < 0.5 else -1.0  # +1: shadow on the right of the split
        right = step(side * (x - split), 0.5)
        return inside * (shadow * right + enhance * (1 - right)), {
            "posterior_np_per_mm": [round(shadow, 4), round(enhance, 4)], "combined_split_mm": round(split, 3),
            "combined_shadow_side": "right" if side > 0 else "left"}
    raise ValueError(f"unknown posterior feature {posterior!r}; expected one of {POSTERIOR}")


def add_calcifications(rng: np.random.Generator, echo: np.ndarray, sd: np.ndarray, px: float) -> list[list[float]]:
    """Paint 3–8 echogenic foci (0.15–0.3 mm, 3–5× glandular echo) well inside the lesion, in place.

    Returns the foci's (x, y) positions in mm.
    """
    candidates = np.flatnonzero(sd.ravel() < -0.6)
    if candidates.size == 0:
        candidates = np.flatnonzero(sd.ravel() < 0)
    count = int(rng.integers(3, 9))
    picks = rng.choice(candidates, size=min(count, candidates.size), replace=False)
    n = echo.shape[1]
    foci = []
    for flat in picks:
        iy, ix = divmod(int(flat), n)
        radius, peak = rng.uniform(0.15, 0.3), rng.uniform(3.0, 5.0)
        h = int(np.ceil(radius / px)) + 1
        rows = slice(max(0, iy - h), min(echo.shape[0], iy + h + 1))
        cols = slice(max(0, ix - h), min(n, ix + h + 1))
        yy = (np.arange(rows.start, rows.stop)[:, None] - iy) * px
        xx = (np.arange(cols.start, cols.stop)[None, :] - ix) * px
        echo[rows, cols] = np.maximum(echo[rows, cols], peak * bump(np.hypot(xx, yy), radius))
        foci.append([round((ix + 0.5) * px, 3), round((iy + 0.5) * px, 3)])
    return foci
