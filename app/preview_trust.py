"""How far to trust what the Preview shows (issue 14): the out-of-distribution banner, the
greyed result, the lesion box drawn on the images, the explanation layer and the measurements
a radiologist reads (strain ratio, EI/B, automatic Tsukuba score).

Plain functions of arrays; :mod:`elastogan.app.preview` calls them and the page only shows
their results. The lesion the Preview measures is the **ellipse inscribed in the lesion box**:
a reader draws the box around the lesion, and the ellipse is the closest shape a box alone
gives (the strain ratio keeps using the whole box, as before).
"""

from __future__ import annotations

import html
from collections import Counter
from typing import Any

import numpy as np

from elastogan.display import Box

BOX_COLOUR = (255, 221, 0)  # a scanner's measurement yellow: not a colour of the strain maps' scales
GREY_KEEP = 0.25  # share of the colour an out-of-distribution result keeps
GREY_DIM = 0.55  # share of its contrast it keeps (the rest goes to a light grey)
DIM_TO = 170.0
# The B-mode is shown (and clicked) at an integer multiple of its size with at least this many
# pixels on its long side: the browser maps a click through the displayed picture's own pixels
# and does not scale it up, so a picture never shown larger than it is gives exact coordinates.
CLICK_PIXELS = 1024
# Quantile of |IG| drawn at full colour: a few extreme pixels must not wash out the rest.
IG_SCALE_QUANTILE = 0.99
IG_STEPS = 32


# ---------------------------------------------------------------- out of distribution

def ood_html(ood: dict[str, Any] | None, threshold: float | None) -> str:
    """The Preview's line on the training data: a banner (out of distribution), a quiet line
    (in distribution), or a note that the model has no fingerprint (``ood`` None)."""
    if ood is None:
        return ('<div class="ood-none" id="ood-none">This model carries no out-of-distribution fingerprint '
                "(<code>elastogan fingerprint</code> adds one): nothing here says whether this image is like "
                "its training data.</div>")
    score, pct = float(ood["score"]), float(ood["percentile"])
    # percentile: the share of validation images scoring at or below this one (elastogan.ood)
    numbers = f"OOD score {score:.1f} (threshold {threshold:.1f}); percentile {pct:.0f} among the validation images"
    if ood["in_distribution"]:
        return f'<div class="ood-ok" id="ood-ok">Like the training data: {html.escape(numbers)}.</div>'
    return ('<div class="ood-banner" id="ood-banner" role="alert">⚠️ <strong>Unlike anything this model was '
            "trained on: the synthetic elastogram is not meaningful.</strong> "
            f"{html.escape(numbers)}. The result is shown greyed.</div>")


def greyed(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` desaturated (keeps ``GREY_KEEP`` of its colour) and dimmed towards a light grey:
    the result of an image unlike the training data, still visible but not to be read."""
    x = rgb.astype(np.float64)
    lum = x @ np.array([0.299, 0.587, 0.114])
    x = GREY_KEEP * x + (1 - GREY_KEEP) * lum[..., None]
    x = GREY_DIM * x + (1 - GREY_DIM) * DIM_TO
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- the box on the images

def click_scale(shape: tuple[int, int]) -> int:
    """The integer factor the clickable B-mode is shown at (see ``CLICK_PIXELS``)."""
    return max(1, -(-CLICK_PIXELS // max(shape)))


def draw_box(rgb: np.ndarray, box: Box | None, *, scale: int = 1, corner: tuple[int, int] | None = None) -> np.ndarray:
    """``rgb`` (H×W×3 uint8) scaled ``scale``× (pixel replication) with the lesion box outlined
    and, while a box is being drawn, a cross at its first ``corner`` (both in the frame's pixels)."""
    out = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1) if scale > 1 else rgb.copy()
    h, w = out.shape[:2]
    t = max(1, scale // 2, min(h, w) // 200)  # line width: visible at any zoom
    if box is not None:
        x0, y0, x1, y1 = (v * scale for v in box)
        x1, y1 = min(x1, w), min(y1, h)
        out[y0 : min(y0 + t, y1), x0:x1] = BOX_COLOUR
        out[max(y1 - t, y0) : y1, x0:x1] = BOX_COLOUR
        out[y0:y1, x0 : min(x0 + t, x1)] = BOX_COLOUR
        out[y0:y1, max(x1 - t, x0) : x1] = BOX_COLOUR
    if corner is not None:
        cx, cy = corner[0] * scale + scale // 2, corner[1] * scale + scale // 2
        arm = max(3 * t, 4)
        out[max(cy - t // 2, 0) : cy + t - t // 2, max(cx - arm, 0) : cx + arm + 1] = BOX_COLOUR
        out[max(cy - arm, 0) : cy + arm + 1, max(cx - t // 2, 0) : cx + t - t // 2] = BOX_COLOUR
    return out


def ellipse_in_box(shape: tuple[int, int], box: Box) -> np.ndarray:
    """H×W bool: the ellipse inscribed in ``box`` (end-exclusive), the lesion the Preview measures."""
    x0, y0, x1, y1 = box
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    cx, cy, rx, ry = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0


# ---------------------------------------------------------------- measurements

def measure(strain: np.ndarray, lesion: np.ndarray, roi: Box | None, bmode: np.ndarray) -> dict[str, Any]:
    """EI/B and the automatic Tsukuba score of ``lesion`` on one strain map: ``{"ei_b": …,
    "tsukuba": …}``, ``None`` (with ``"notes"``) where it cannot be measured."""
    from elastogan.measurements import ei_b_ratio
    from elastogan.tsukuba import score_tsukuba

    out: dict[str, Any] = {"ei_b": None, "tsukuba": None, "notes": []}
    try:
        out["ei_b"] = ei_b_ratio(strain, lesion, roi)["ratio"]
    except ValueError as e:
        out["notes"].append(f"EI/B: {e}")
    try:
        out["tsukuba"] = score_tsukuba(strain, lesion, roi=roi, bmode=bmode)
    except ValueError as e:
        out["notes"].append(f"Tsukuba: {e}")
    return out


def measure_draws(strains: np.ndarray, lesion: np.ndarray, roi: Box, bmode: np.ndarray, level: float) -> dict[str, Any]:
    """EI/B and the Tsukuba score over K draws of the generator: EI/B's central ``level``
    interval and each score's count."""
    found = [measure(s, lesion, roi, bmode) for s in strains]
    ei_b = np.array([m["ei_b"] for m in found if m["ei_b"] is not None], dtype=np.float64)
    scores = Counter(str(m["tsukuba"]) for m in found if m["tsukuba"] is not None)
    tail = (1 - level) / 2
    return {"samples": len(strains), "level": level,
            "ei_b": None if ei_b.size == 0 else {"lo": float(np.quantile(ei_b, tail)),
                                                 "hi": float(np.quantile(ei_b, 1 - tail)), "n": int(ei_b.size)},
            "tsukuba": dict(scores.most_common())}


# ---------------------------------------------------------------- explanation layer

def explanation(predictor, bmode: np.ndarray, box: Box, *, seed: int = 0, steps: int = IG_STEPS) -> dict[str, Any]:
    """Integrated gradients of the mean predicted strain in ``box`` (``elastogan.explain``),
    drawn over the B-mode, with Adebayo et al.'s edge check: ``{"rgb", "edge_correlation",
    "value", "baseline_value", "completeness_gap", "box", "steps"}``."""
    from elastogan.eval.gallery_figure import explanation_rgb
    from elastogan.explain import edge_correlation, integrated_gradients
    from elastogan.predict import label_synthetic

    e = integrated_gradients(predictor, bmode, box, steps=steps, seed=seed)
    rgb = label_synthetic(explanation_rgb(bmode, e.attribution, box), "IG MAP")
    return {"rgb": rgb, "attribution": e.attribution, "edge_correlation": edge_correlation(e.attribution, bmode),
            "value": e.value, "baseline_value": e.baseline_value, "completeness_gap": e.completeness_gap,
            "box": e.box, "steps": e.steps}
