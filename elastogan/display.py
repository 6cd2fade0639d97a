"""The scanner's strain display: colour-mapped strain blended over the B-mode in a ROI box,
with a colour bar labelled SOFT (top) and HARD (bottom) in the right margin.

One rendering path for every elastogram the project shows or writes (simulated, synthetic,
study images), so real and synthetic images cannot differ by how they were drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from elastogan.colormaps import get_colormap

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, end-exclusive


@dataclass(frozen=True)
class DisplayLayout:
    """Where the ROI box may go and where the colour bar is drawn, for an H×W frame."""

    height: int
    width: int

    @property
    def colorbar(self) -> Box:
        """The colour bar's box: a narrow strip in the right margin, 20 %–80 % of the height."""
        w = max(3, self.width // 40)
        x1 = self.width - max(2, self.width // 64)
        return (x1 - w, int(0.2 * self.height), x1, int(0.8 * self.height))

    @property
    def max_roi_x1(self) -> int:
        """ROI boxes end left of the colour bar and its labels."""
        return self.colorbar[0] - max(4, self.width // 32)


def blend(bmode: np.ndarray, color: np.ndarray, alpha: float, roi: Box) -> np.ndarray:
    """E-mode pixels: ``(1 - alpha) * B + alpha * C`` inside ``roi``, grey B-mode outside.

    Args:
        bmode: H×W uint8 grey B-mode.
        color: H×W×3 float RGB in 0..1 (only the ROI part is used).
        alpha: colour opacity in (0, 1].
        roi: ``(x0, y0, x1, y1)``, end-exclusive.

    Returns:
        H×W×3 uint8.
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    grey = np.repeat(bmode.astype(np.float32)[..., None] / 255.0, 3, axis=-1)
    out = grey.copy()
    x0, y0, x1, y1 = roi
    out[y0:y1, x0:x1] = (1.0 - alpha) * grey[y0:y1, x0:x1] + alpha * color[y0:y1, x0:x1]
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def _draw_labels(img: Image.Image, fill: int | tuple[int, int, int]) -> None:
    """SOFT above the colour bar and HARD below it, right-aligned at the frame's edge."""
    w, h = img.size
    _, by0, _, by1 = DisplayLayout(h, w).colorbar
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=max(6, h // 32))
    for text, y in (("SOFT", by0 - 2), ("HARD", by1 + 2)):
        anchor = "rb" if text == "SOFT" else "rt"
        draw.text((w - 1, y), text, fill=fill, font=font, anchor=anchor)


def draw_colorbar(rgb: np.ndarray, colormap: str) -> np.ndarray:
    """Draw the colour bar (soft at the top) and its SOFT/HARD labels on a copy of ``rgb``."""
    h, w = rgb.shape[:2]
    bx0, by0, bx1, by1 = DisplayLayout(h, w).colorbar
    out = rgb.copy()
    ramp = np.linspace(1.0, 0.0, by1 - by0, dtype=np.float32)  # top = soft
    bar = get_colormap(colormap).colorize(ramp)
    out[by0:by1, bx0:bx1] = np.rint(bar[:, None, :] * 255).astype(np.uint8)
    img = Image.fromarray(out)
    _draw_labels(img, (255, 255, 255))
    return np.asarray(img)


def colorbar_mask(height: int, width: int) -> np.ndarray:
    """H×W bool: the pixels ``draw_colorbar`` draws on (the bar and its SOFT/HARD labels).

    On small frames the labels reach left of ``DisplayLayout.max_roi_x1``, so whatever looks for
    the elastography box in a rendered E-mode must ignore these pixels, not just the bar's box.
    """
    img = Image.new("L", (width, height), 0)
    _draw_labels(img, 255)
    mask = np.asarray(img) > 0
    bx0, by0, bx1, by1 = DisplayLayout(height, width).colorbar
    mask[by0:by1, bx0:bx1] = True
    return mask


def render_emode(
    bmode: np.ndarray,
    strain: np.ndarray,
    roi: Box,
    *,
    colormap: str = "hitachi",
    alpha: float = 0.5,
    colorbar: bool = True,
) -> np.ndarray:
    """The colour E-mode a scanner shows for ``bmode`` and relative ``strain`` (0 hard, 1 soft).

    Args:
        bmode: H×W uint8.
        strain: H×W float, NaN allowed outside the ROI.
        roi: ``(x0, y0, x1, y1)`` inside the frame.
        colormap: a name from ``elastogan.colormaps.COLORMAPS``.
        alpha: colour opacity.
        colorbar: draw the SOFT/HARD colour bar in the right margin.

    Returns:
        H×W×3 uint8 RGB.
    """
    if bmode.ndim != 2 or strain.shape != bmode.shape:
        raise ValueError(f"expected H×W B-mode and strain of one shape, got {bmode.shape} and {strain.shape}")
    x0, y0, x1, y1 = roi
    h, w = bmode.shape
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"ROI {roi} is not inside a {h}×{w} frame")
    color = get_colormap(colormap).colorize(strain)
    out = blend(bmode, color, alpha, roi)
    return draw_colorbar(out, colormap) if colorbar else out
