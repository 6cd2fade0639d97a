"""Gallery figure drawn with Pillow: one row per case, real | synthetic | difference.

The difference panel shows ``synthetic − real`` mapped strain inside the ROI on a diverging
scale (blue: the synthetic elastogram is harder there; red: softer; white: equal), over the
grey B-mode; outside the ROI the B-mode alone.
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


@dataclass(frozen=True)
class GalleryRow:
    """One case of the gallery.

    Attributes:
        label: text above the row (case id, its NCC).
        real_emode, synthetic_emode: H×W×3 uint8.
        bmode: H×W uint8, under the difference panel.
        real_strain, synthetic_strain: H×W float mapped strain, NaN outside the ROI.
        roi: ``(x0, y0, x1, y1)``.
    """

    label: str
    real_emode: np.ndarray
    synthetic_emode: np.ndarray
    bmode: np.ndarray
    real_strain: np.ndarray
    synthetic_strain: np.ndarray
    roi: Box


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
    """PNG bytes of the gallery: a header with ``titles``, then one labelled row per case."""
    if not rows:
        raise ValueError("gallery needs at least one case")
    panels = []
    for r in rows:
        diff = difference_rgb(r.bmode, r.real_strain, r.synthetic_strain, r.roi)
        h, w = r.bmode.shape
        size = (max(1, round(w * _PANEL / h)), _PANEL)
        panels.append([Image.fromarray(a).resize(size, Image.Resampling.BILINEAR)
                       for a in (r.real_emode, r.synthetic_emode, diff)])
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
    for title, p in zip(titles, panels[0]):
        draw.text((x, 5), title, fill="black", font=font)
        x += p.width + _GAP
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
