"""Scatter figure (e.g. strain ratio real vs synthetic) on log axes, drawn with Pillow.

Strain ratios are ratios: a lesion 2× and ½× as stiff as expected are errors of one size, so
both axes are logarithmic, with the identity line dashed.
"""

from __future__ import annotations

import io
import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_SIZE, _MARGIN = 520, 64


def scatter_png(x: Sequence[float], y: Sequence[float], *, title: str = "", xlabel: str = "",
                ylabel: str = "") -> bytes:
    """PNG bytes of ``y`` against ``x`` on log–log axes with the identity line.

    Args:
        x, y: positive finite values, one pair per point.
    """
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape or xs.ndim != 1 or xs.size == 0:
        raise ValueError(f"expected two 1-D lists of one non-zero length, got {xs.shape} and {ys.shape}")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all() and (xs > 0).all() and (ys > 0).all()):
        raise ValueError("log scatter needs positive finite values")
    lx, ly = np.log10(xs), np.log10(ys)
    lo = math.floor(min(lx.min(), ly.min()) * 10) / 10 - 0.05
    hi = math.ceil(max(lx.max(), ly.max()) * 10) / 10 + 0.05
    if hi - lo < 0.6:  # at least 4× from corner to corner, so a few points do not fill it
        mid = (hi + lo) / 2
        lo, hi = mid - 0.3, mid + 0.3
    img = Image.new("RGB", (_SIZE, _SIZE), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    x0, y0, x1, y1 = _MARGIN, 34, _SIZE - 20, _SIZE - _MARGIN + 10

    def px(v: float) -> float:
        return x0 + (v - lo) / (hi - lo) * (x1 - x0)

    def py(v: float) -> float:
        return y1 - (v - lo) / (hi - lo) * (y1 - y0)

    draw.rectangle([x0, y0, x1, y1], outline="black")
    for t in _log_ticks(lo, hi):
        lt = math.log10(t)
        draw.line([px(lt), y0, px(lt), y1], fill=(230, 230, 230))
        draw.line([x0, py(lt), x1, py(lt)], fill=(230, 230, 230))
        draw.text((px(lt) - 8, y1 + 6), f"{t:g}", fill="black", font=font)
        draw.text((x0 - 34, py(lt) - 6), f"{t:g}", fill="black", font=font)
    n = 40
    for k in range(0, n, 2):  # dashed identity line
        a, b = lo + k * (hi - lo) / n, lo + (k + 1) * (hi - lo) / n
        draw.line([px(a), py(a), px(b), py(b)], fill=(150, 150, 150))
    for a, b in zip(lx, ly):
        draw.ellipse([px(a) - 4, py(b) - 4, px(a) + 4, py(b) + 4], fill=(0, 114, 178), outline="black")
    draw.text((x0 + (x1 - x0) // 2 - 3 * len(xlabel), y1 + 24), xlabel, fill="black", font=font)
    draw.text((x0 + (x1 - x0) // 2 - 3 * len(title), 2), title, fill="black", font=font)
    draw.text((x0, 18), ylabel, fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks between 10**lo and 10**hi: 1-1.5-2-3-5-7 within a decade or so, fewer on wide ranges."""
    span = hi - lo
    mantissas = (1, 1.5, 2, 3, 5, 7) if span <= 1.2 else (1, 2, 5) if span <= 3 else (1,)
    ticks = [m * 10.0**e for e in range(math.floor(lo) - 1, math.ceil(hi) + 1) for m in mantissas]
    ticks = [t for t in ticks if lo <= math.log10(t) <= hi]
    return ticks[:: max(1, len(ticks) // 8)]
