"""Bland–Altman agreement of two measurements of the same cases, and its figure (Pillow)."""

from __future__ import annotations

import io
import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import stats

_PANEL_W, _H, _MARGIN = 460, 380, 56


def bland_altman(reference: Sequence[float], compared: Sequence[float], level: float = 0.95) -> dict:
    """Bias and limits of agreement of ``compared`` against ``reference`` (Bland & Altman 1986).

    ``d = compared − reference``; bias ``d̄``; limits ``d̄ ± z·s_d`` with ``s_d`` the sample SD
    (n − 1) and ``z`` the normal quantile of ``level`` (1.96 for 95 %); the bias's ``level``
    confidence interval ``d̄ ± t_{n−1}·s_d/√n``.

    Returns:
        ``n``, ``bias``, ``sd``, ``loa`` ``[lower, upper]``, ``bias_ci``, ``mean_reference``.

    Raises:
        ValueError: lengths differ, fewer than 2 pairs, or non-finite values.

    Example (Bland & Altman, Lancet 1986;i:307, Table 1: 17 peak flows, Wright − mini Wright,
    mean difference −2.1, SD 38.8 l/min; the paper's limits −79.7 to 75.5 use 2 SD, 1.96 SD give
    −78.1 to 73.9):

        >>> wright = [494, 395, 516, 434, 476, 557, 413, 442, 650, 433, 417, 656, 267, 478, 178, 423, 427]
        >>> mini = [512, 430, 520, 428, 500, 600, 364, 380, 658, 445, 432, 626, 260, 477, 259, 350, 451]
        >>> r = bland_altman(mini, wright)
        >>> round(r["bias"], 1), round(r["sd"], 1), [round(v, 1) for v in r["loa"]]
        (-2.1, 38.8, [-78.1, 73.9])
    """
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(compared, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"expected two 1-D measurement lists of one length, got {a.shape} and {b.shape}")
    if a.size < 2:
        raise ValueError(f"Bland–Altman needs at least 2 pairs, got {a.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("Bland–Altman: measurements must be finite")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    d = b - a
    bias, sd = float(d.mean()), float(d.std(ddof=1))
    z = float(stats.norm.ppf(0.5 + level / 2))
    t = float(stats.t.ppf(0.5 + level / 2, d.size - 1))
    half = t * sd / math.sqrt(d.size)
    return {"n": int(d.size), "bias": bias, "sd": sd, "loa": [bias - z * sd, bias + z * sd],
            "bias_ci": [bias - half, bias + half], "mean_reference": float(a.mean())}


def bland_altman_png(panels: Sequence[tuple[str, Sequence[float], Sequence[float]]]) -> bytes:
    """PNG bytes: one Bland–Altman plot per ``(title, reference, compared)``, side by side.

    x: the mean of the two measurements; y: compared − reference; solid line the bias, dashed
    the 95 % limits of agreement.
    """
    if not panels:
        raise ValueError("expected at least one panel")
    img = Image.new("RGB", (_PANEL_W * len(panels), _H), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    for k, (title, ref, cmp) in enumerate(panels):
        res = bland_altman(ref, cmp)
        a, b = np.asarray(ref, dtype=np.float64), np.asarray(cmp, dtype=np.float64)
        x, y = (a + b) / 2, b - a
        ox = k * _PANEL_W
        x0, y0, x1, y1 = ox + _MARGIN, 30, ox + _PANEL_W - 16, _H - 46
        xlo, xhi = float(x.min()), float(x.max())
        ylo = min(float(y.min()), res["loa"][0])
        yhi = max(float(y.max()), res["loa"][1])
        xpad, ypad = (xhi - xlo) * 0.05 or 1.0, (yhi - ylo) * 0.08 or 1.0
        xlo, xhi, ylo, yhi = xlo - xpad, xhi + xpad, ylo - ypad, yhi + ypad

        def px(v: float) -> float:
            return x0 + (v - xlo) / (xhi - xlo) * (x1 - x0)

        def py(v: float) -> float:
            return y1 - (v - ylo) / (yhi - ylo) * (y1 - y0)

        draw.rectangle([x0, y0, x1, y1], outline="black")
        for u, v in zip(x, y):
            draw.ellipse([px(u) - 3, py(v) - 3, px(u) + 3, py(v) + 3], outline=(0, 114, 178))
        draw.line([x0, py(res["bias"]), x1, py(res["bias"])], fill=(0, 0, 0), width=2)
        draw.text((x1 - 110, py(res["bias"]) - 13), f"bias {res['bias']:.3g}", fill="black", font=font)
        for lim in res["loa"]:
            for s in range(int(x0), int(x1), 10):
                draw.line([s, py(lim), min(s + 5, x1), py(lim)], fill=(213, 94, 0), width=2)
            draw.text((x1 - 110, py(lim) - 13), f"{lim:.3g}", fill=(213, 94, 0), font=font)
        if ylo < 0 < yhi:
            draw.line([x0, py(0), x1, py(0)], fill=(200, 200, 200))
        for v in (xlo + xpad, xhi - xpad):
            draw.text((px(v) - 12, y1 + 6), f"{v:.3g}", fill="black", font=font)
        for v in (ylo + ypad, yhi - ypad):
            draw.text((ox + 4, py(v) - 6), f"{v:.3g}", fill="black", font=font)
        draw.text((x0, y1 + 24), "mean of real and synthetic", fill="black", font=font)
        draw.text((x0, 8), f"{title}: synthetic - real (n={res['n']})", fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
