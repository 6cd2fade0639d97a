"""Histogram figure (e.g. per-case NCC) drawn with Pillow."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_W, _H, _MARGIN = 640, 420, 60


def histogram_png(
    values: Sequence[float] | np.ndarray,
    *,
    bins: int = 20,
    value_range: tuple[float, float] = (0.0, 1.0),
    title: str = "",
    xlabel: str = "",
    marker: float | None = None,
    marker_label: str = "",
) -> bytes:
    """PNG bytes of a histogram of ``values`` over ``value_range``.

    Args:
        bins: number of equal-width bins.
        marker: optional x position of a dashed vertical line (e.g. the reference paper's mean).
        marker_label: text beside the marker.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError("histogram needs at least one value, all finite")
    lo, hi = value_range
    if not hi > lo or bins < 1:
        raise ValueError(f"expected value_range lo < hi and bins ≥ 1, got {value_range}, {bins}")
    counts, edges = np.histogram(np.clip(x, lo, hi), bins=bins, range=(lo, hi))
    img = Image.new("RGB", (_W, _H), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    x0, y0, x1, y1 = _MARGIN, 30, _W - 20, _H - 50
    top = max(int(counts.max()), 1)

    def px(v: float) -> float:
        return x0 + (v - lo) / (hi - lo) * (x1 - x0)

    def py(c: float) -> float:
        return y1 - c / top * (y1 - y0)

    for c, a, b in zip(counts, edges[:-1], edges[1:]):
        if c:
            draw.rectangle([px(a) + 1, py(c), px(b) - 1, y1], fill=(0, 114, 178))
    draw.line([x0, y1, x1, y1], fill="black")
    draw.line([x0, y0, x0, y1], fill="black")
    for k in range(6):
        v = lo + k * (hi - lo) / 5
        draw.text((px(v) - 10, y1 + 6), f"{v:.1f}", fill="black", font=font)
    for c in sorted({0, top // 2, top}):
        draw.text((x0 - 30, py(c) - 6), str(c), fill="black", font=font)
    if marker is not None and lo <= marker <= hi:
        for k in range(0, int(y1 - y0), 8):
            draw.line([px(marker), y0 + k, px(marker), min(y0 + k + 4, y1)], fill=(213, 94, 0), width=2)
        draw.text((px(marker) + 4, y0), marker_label, fill=(213, 94, 0), font=font)
    draw.text((x0 + (x1 - x0) // 2 - 3 * len(xlabel), y1 + 24), xlabel, fill="black", font=font)
    draw.text((x0 + (x1 - x0) // 2 - 3 * len(title), 8), title, fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
