"""Gallery figure drawn with Pillow: one row per case, real | synthetic | difference
(| explanation, with ``evaluate --explain``).

The difference panel shows ``synthetic − real`` mapped strain inside the ROI on a diverging
scale (blue: the synthetic elastogram is harder there; red: softer; white: equal), over the
grey B-mode; outside the ROI the B-mode alone.

The explanation panel (:func:`explanation_rgb`) shows the integrated-gradients map of the mean
predicted strain in the lesion box (``elastogan.explain``) over the grey B-mode: orange pixels
make the box look harder, teal ones softer; colours no strain scale of the project uses, so
the map is never read as an elastogram.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from elastogan.display import Box

_PANEL = 192  # panel height in pixels
_HEADER, _LABEL, _GAP = 22, 16, 6
DIFF_RANGE = 0.5  # |synthetic − real| at full colour
HARDER, SOFTER = np.array([0.93, 0.46, 0.0]), np.array([0.0, 0.66, 0.70])  # orange, teal
IG_QUANTILE = 0.99  # |IG| at full colour: a few extreme pixels must not wash out the rest
IG_OPACITY = 0.85
EXPLANATION_TITLE = "integrated gradients (orange harder, teal softer)"


@dataclass(frozen=True)
class GalleryRow:
    """One case of the gallery.

    Attributes:
        label: text above the row (case id, its NCC).
        real_emode, synthetic_emode: H×W×3 uint8.
        bmode: H×W uint8, under the difference panel.
        real_strain, synthetic_strain: H×W float mapped strain, NaN outside the ROI.
        roi: ``(x0, y0, x1, y1)``.
        explanation: H×W×3 uint8 explanation panel (:func:`explanation_rgb`), or None.
    """

    label: str
    real_emode: np.ndarray
    synthetic_emode: np.ndarray
    bmode: np.ndarray
    real_strain: np.ndarray
    synthetic_strain: np.ndarray
    roi: Box
    explanation: np.ndarray | None = None


def explanation_rgb(bmode: np.ndarray, attribution: np.ndarray, box: Box | None = None,
                    quantile: float = IG_QUANTILE) -> np.ndarray:
    """H×W×3 uint8: an attribution map over the grey B-mode, orange where it is negative (the
    pixel makes the explained strain lower: harder), teal where positive (softer), opacity
    growing with ``|attribution|`` up to its ``quantile``; the explained box outlined in white.

    Example:
        >>> b = np.full((4, 4), 100, np.uint8); a = np.zeros((4, 4)); a[0, 0], a[3, 3] = -1.0, 1.0
        >>> rgb = explanation_rgb(b, a, quantile=1.0)
        >>> rgb[0, 0].tolist(), rgb[3, 3].tolist(), rgb[1, 1].tolist()
        ([217, 115, 15], [15, 158, 167], [100, 100, 100])
    """
    a = np.asarray(attribution, dtype=np.float64)
    if a.shape != bmode.shape:
        raise ValueError(f"expected an attribution map of the B-mode's size {bmode.shape}, got {a.shape}")
    if not 0 < quantile <= 1:
        raise ValueError(f"expected a quantile in (0, 1], got {quantile}")
    grey = np.repeat(bmode.astype(np.float64)[..., None] / 255.0, 3, axis=-1)
    scale = float(np.quantile(np.abs(a), quantile)) if a.size else 0.0
    weight = np.clip(np.abs(a) / scale, 0, 1)[..., None] * IG_OPACITY if scale > 0 else np.zeros((*a.shape, 1))
    colour = np.where((a < 0)[..., None], HARDER, SOFTER)
    out = np.clip(np.rint(((1 - weight) * grey + weight * colour) * 255), 0, 255).astype(np.uint8)
    if box is not None:
        x0, y0, x1, y1 = box
        out[y0, x0:x1] = out[y1 - 1, x0:x1] = 255
        out[y0:y1, x0] = out[y0:y1, x1 - 1] = 255
    return out


def difference_rgb(bmode: np.ndarray, real: np.ndarray, synthetic: np.ndarray, roi: Box,
                   value_range: float = DIFF_RANGE) -> np.ndarray:
    """H×W×3 uint8: ``synthetic − real`` strain on a blue–white–red scale inside ``roi``.

    Pixels where either map is NaN keep the grey B-mode.
    """
    if not value_range > 0:
        raise ValueError(f"expected value_range > 0, got {value_range}")
    grey = np.repeat(bmode.astype(np.float64)[..., None] / 255.0, 3, axis=-1)
    d = np.clip((synthetic.astype(np.float64) - real) / value_range, -1.0, 1.0)
    # blue (−1) → white (0) → red (+1)
    pos, neg = np.clip(d, 0, 1)[..., None], np.clip(-d, 0, 1)[..., None]
    white = np.ones(3)
    colour = white - pos * (white - np.array([0.84, 0.19, 0.15])) - neg * (white - np.array([0.13, 0.40, 0.67]))
    inside = np.zeros(bmode.shape, bool)
    x0, y0, x1, y1 = roi
    inside[y0:y1, x0:x1] = True
    inside &= np.isfinite(d)
    out = np.where(inside[..., None], colour, grey)
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def gallery_png(rows: Sequence[GalleryRow], *,
                titles: Sequence[str] = ("real", "synthetic", f"synthetic - real strain (+/-{DIFF_RANGE:g})")) -> bytes:
    """PNG bytes of the gallery: a header with ``titles``, then one labelled row per case; a
    fourth panel, titled ``EXPLANATION_TITLE``, for the rows that have an explanation."""
    if not rows:
        raise ValueError("gallery needs at least one case")
    panels = []
    for r in rows:
        diff = difference_rgb(r.bmode, r.real_strain, r.synthetic_strain, r.roi)
        h, w = r.bmode.shape
        size = (max(1, round(w * _PANEL / h)), _PANEL)
        shown = (r.real_emode, r.synthetic_emode, diff) + ((r.explanation,) if r.explanation is not None else ())
        panels.append([Image.fromarray(a).resize(size, Image.Resampling.BILINEAR) for a in shown])
    if any(r.explanation is not None for r in rows):
        titles = (*titles, EXPLANATION_TITLE)
    width = max(sum(p.width for p in row) + _GAP * (len(row) + 1) for row in panels)
    height = _HEADER + len(rows) * (_LABEL + _PANEL + _GAP)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    y = _HEADER
    for r, row in zip(rows, panels):
        draw.text((_GAP, y + 2), r.label, fill="black", font=font)
        x = _GAP
        for p in row:
            img.paste(p, (x, y + _LABEL))
            x += p.width + _GAP
        y += _LABEL + _PANEL + _GAP
    x = _GAP
    for title, p in zip(titles, max(panels, key=len)):
        draw.text((x, 5), title, fill="black", font=font)
        x += p.width + _GAP
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
