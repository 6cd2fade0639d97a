"""Figures of the authenticity metrics, drawn with Pillow like the other eval figures.

Both take the dict of :func:`~elastogan.eval.authenticity.report.authenticity_metrics`.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Okabe & Ito (2008) colour-blind-safe pair: real blue, synthetic vermilion (as in roc_figure).
_REAL, _SYNTHETIC = (0, 114, 178), (213, 94, 0)
_W, _H, _MARGIN = 640, 420, 70


def spectrum_png(metrics: dict) -> bytes:
    """PNG bytes: radially averaged power spectrum of the real and the synthetic set, log power.

    Raises:
        ValueError: ``metrics["spectrum"]`` missing or malformed.
    """
    spec = metrics.get("spectrum")
    if not isinstance(spec, dict) or not {"frequency", "real", "synthetic"} <= spec.keys():
        raise ValueError("metrics has no spectrum (expected {'frequency', 'real', 'synthetic'})")
    f = np.asarray(spec["frequency"], np.float64)
    curves = {"real": np.asarray(spec["real"], np.float64), "synthetic": np.asarray(spec["synthetic"], np.float64)}
    if f.ndim != 1 or f.size < 2 or any(c.shape != f.shape for c in curves.values()):
        raise ValueError(f"spectrum: expected frequency, real and synthetic of one length ≥ 2, got "
                         f"{f.shape}, {curves['real'].shape}, {curves['synthetic'].shape}")
    positive = np.concatenate([c[c > 0] for c in curves.values()])
    if positive.size == 0:
        raise ValueError("spectrum: no positive power to draw (constant maps only)")
    # Power of a constant map is 0; drawn at the floor of the axis rather than dropped.
    lo, hi = math.floor(np.log10(positive.min())), math.ceil(np.log10(positive.max()))
    hi = max(hi, lo + 1)
    img, draw, font, (x0, y0, x1, y1) = _canvas()

    def px(v: float) -> float:
        return x0 + v / 0.5 * (x1 - x0)

    def py(p: float) -> float:
        return y1 - (np.log10(max(p, 10.0**lo)) - lo) / (hi - lo) * (y1 - y0)

    step = max(1, (hi - lo) // 6)
    for e in range(lo, hi + 1, step):
        draw.line([x0, py(10.0**e), x1, py(10.0**e)], fill=(230, 230, 230))
        draw.text((x0 - 46, py(10.0**e) - 6), f"1e{e}", fill="black", font=font)
    for k in range(6):
        v = k * 0.1
        draw.text((px(v) - 10, y1 + 6), f"{v:.1f}", fill="black", font=font)
    for i, (name, colour) in enumerate((("real", _REAL), ("synthetic", _SYNTHETIC))):
        draw.line([(px(a), py(b)) for a, b in zip(f, curves[name])], fill=colour, width=2)
        draw.line([x1 - 110, y0 + 12 + 16 * i, x1 - 90, y0 + 12 + 16 * i], fill=colour, width=3)
        draw.text((x1 - 85, y0 + 6 + 16 * i), name, fill="black", font=font)
    draw.rectangle([x0, y0, x1, y1], outline="black")
    _labels(draw, font, (x0, y0, x1, y1), "Radially averaged power spectrum (mean over maps)",
            "spatial frequency (cycles/pixel)", "power")
    return _png(img)


def memorisation_png(metrics: dict) -> bytes:
    """PNG bytes: each test case's nearest-training-map distance, synthetic and real rows,
    medians marked, the memorisation ratio in the title.

    Raises:
        ValueError: the metrics have no memorisation distances (no training maps were given).
    """
    mem = metrics.get("memorisation")
    if not isinstance(mem, dict) or not mem.get("synthetic") or not mem.get("real"):
        raise ValueError("metrics has no memorisation distances (authenticity_metrics was given no training maps)")
    rows = {"synthetic": np.asarray(mem["synthetic"], np.float64), "real": np.asarray(mem["real"], np.float64)}
    if not all(np.isfinite(v).all() for v in rows.values()):
        raise ValueError("memorisation distances must be finite")
    top = max(1.5, float(max(v.max() for v in rows.values())) * 1.05)  # √2: unrelated maps
    img, draw, font, (x0, y0, x1, y1) = _canvas()

    def px(v: float) -> float:
        return x0 + v / top * (x1 - x0)

    for k in range(7):
        v = k * top / 6
        draw.line([px(v), y0, px(v), y1], fill=(230, 230, 230))
        draw.text((px(v) - 10, y1 + 6), f"{v:.2f}", fill="black", font=font)
    rng = np.random.default_rng(0)  # vertical jitter only, so equal distances stay visible
    for i, (name, colour) in enumerate((("synthetic", _SYNTHETIC), ("real", _REAL))):
        yc = y0 + (i + 0.5) * (y1 - y0) / 2
        for v in rows[name]:
            dy = rng.uniform(-30, 30)
            draw.ellipse([px(v) - 3, yc + dy - 3, px(v) + 3, yc + dy + 3], fill=colour)
        med = float(np.median(rows[name]))
        draw.line([px(med), yc - 45, px(med), yc + 45], fill="black", width=2)
        draw.text((px(med) + 4, yc - 58), f"median {med:.3f}", fill="black", font=font)
        draw.text((x0 - 64, yc - 6), name, fill="black", font=font)
    draw.rectangle([x0, y0, x1, y1], outline="black")
    ratio = metrics.get("memorisation_ratio")
    title = "Distance to the nearest training map" + (f" (ratio {ratio:.2f})" if ratio is not None else "")
    _labels(draw, font, (x0, y0, x1, y1), title, "RMS difference of standardised 32x32 maps = sqrt(2(1 - NCC))", "")
    return _png(img)


def _canvas() -> tuple[Image.Image, ImageDraw.ImageDraw, ImageFont.ImageFont, tuple[int, int, int, int]]:
    img = Image.new("RGB", (_W, _H), "white")
    return img, ImageDraw.Draw(img), ImageFont.load_default(), (_MARGIN, 36, _W - 20, _H - 50)


def _labels(draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont, box: tuple[int, int, int, int],
            title: str, xlabel: str, ylabel: str) -> None:
    x0, y0, x1, y1 = box
    draw.text((x0 + (x1 - x0) // 2 - 3 * len(title), 8), title, fill="black", font=font)
    draw.text((x0 + (x1 - x0) // 2 - 3 * len(xlabel), y1 + 24), xlabel, fill="black", font=font)
    if ylabel:
        draw.text((8, y0 - 20), ylabel, fill="black", font=font)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
