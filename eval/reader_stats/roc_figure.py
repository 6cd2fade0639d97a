"""ROC curve figure drawn with Pillow (no plotting library needed)."""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Colour-blind-safe palette (Okabe & Ito 2008), one colour per modality.
_PALETTE = ((0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167), (230, 159, 0), (86, 180, 233))
_SIZE, _MARGIN = 640, 70


def roc_png(curves: Mapping[str, Sequence[tuple[str, np.ndarray, np.ndarray, float]]], title: str = "ROC") -> bytes:
    """PNG bytes of ROC curves.

    Args:
        curves: per modality, a list of ``(reader, fpr, tpr, auc)``; each modality one colour,
            each reader one line.
        title: text above the plot.
    """
    if not curves:
        raise ValueError("no ROC curves to draw")
    img = Image.new("RGB", (_SIZE, _SIZE), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    x0, y0, x1, y1 = _MARGIN, _MARGIN // 2 + 10, _SIZE - 20, _SIZE - _MARGIN
    span_x, span_y = x1 - x0, y1 - y0

    def xy(fpr: float, tpr: float) -> tuple[float, float]:
        return x0 + fpr * span_x, y1 - tpr * span_y

    draw.rectangle([x0, y0, x1, y1], outline="black")
    for k in range(6):
        v = k / 5
        gx, _ = xy(v, 0)
        _, gy = xy(0, v)
        draw.line([gx, y0, gx, y1], fill=(225, 225, 225))
        draw.line([x0, gy, x1, gy], fill=(225, 225, 225))
        draw.text((gx - 8, y1 + 6), f"{v:.1f}", fill="black", font=font)
        draw.text((x0 - 28, gy - 6), f"{v:.1f}", fill="black", font=font)
    for k in range(20):  # dashed chance line
        a, b = k / 20, (k + 0.5) / 20
        draw.line([xy(a, a), xy(b, b)], fill=(150, 150, 150))
    draw.text((x0 + span_x // 2 - 80, y1 + 24), "1 - specificity (false-positive rate)", fill="black", font=font)
    draw.text((8, y0 - 22), "sensitivity (true-positive rate)", fill="black", font=font)
    draw.text((x0 + span_x // 2 - 3 * len(title), 6), title, fill="black", font=font)
    legend_y = y1 - 14 * sum(len(v) for v in curves.values()) - 10
    for i, (modality, lines) in enumerate(curves.items()):
        colour = _PALETTE[i % len(_PALETTE)]
        for reader, fpr, tpr, auc in lines:
            pts = [xy(float(f), float(t)) for f, t in zip(fpr, tpr)]
            draw.line(pts, fill=colour, width=2)
            draw.line([x1 - 230, legend_y + 6, x1 - 210, legend_y + 6], fill=colour, width=3)
            draw.text((x1 - 205, legend_y), f"{modality} / {reader}: AUC {auc:.3f}", fill="black", font=font)
            legend_y += 14
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
