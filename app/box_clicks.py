"""The lesion box drawn by two clicks on the B-mode.

The page shows the B-mode ``preview_trust.click_scale``× its size; Gradio's ``Image.select``
event gives the clicked pixel of that picture (``SelectData.index`` = ``[x, y]``, or None off
the picture). The first click sets a corner, the second the opposite corner; the box holds both
clicked pixels (end-exclusive: ``x1 = max x + 1``) and is written to the lesion-box field as the
four numbers a user could have typed.
"""

from __future__ import annotations

from dataclasses import dataclass

from elastogan.display import Box

MIN_SIDE = 3  # pixels: the strain ratio needs at least 9 lesion pixels


@dataclass(frozen=True)
class Click:
    """What a click did: the corner waiting for its opposite (None once a box is made), the box
    (None until the second click), and a line for the page."""

    pending: tuple[int, int] | None
    box: Box | None
    message: str


def frame_pixel(index, scale: int, shape: tuple[int, int]) -> tuple[int, int] | None:
    """The B-mode pixel ``(x, y)`` under a click on its picture shown ``scale``×, or None when
    the click is not on the picture (``index`` None, malformed, or outside the frame)."""
    try:
        x, y = (int(v) for v in index)
    except (TypeError, ValueError):
        return None
    x, y = x // scale, y // scale
    h, w = shape
    return (x, y) if 0 <= x < w and 0 <= y < h else None


def click(pending: tuple[int, int] | None, pixel: tuple[int, int] | None) -> Click:
    """The box after a click on ``pixel`` with ``pending`` the first corner (None: this click is
    the first)."""
    if pixel is None:
        return Click(pending, None, "Click on the B-mode picture itself to set the lesion box.")
    if pending is None:
        return Click(pixel, None, f"First corner at x {pixel[0]}, y {pixel[1]}: now click the opposite corner of "
                                  "the lesion.")
    (xa, ya), (xb, yb) = pending, pixel
    box = (min(xa, xb), min(ya, yb), max(xa, xb) + 1, max(ya, yb) + 1)
    if box[2] - box[0] < MIN_SIDE or box[3] - box[1] < MIN_SIDE:
        return Click(None, None, f"The box from x {xa}, y {ya} to x {xb}, y {yb} is under {MIN_SIDE} pixels on a side: "
                                 "click two opposite corners of the lesion.")
    return Click(None, box, f"Lesion box {box_text(box)} (x0, y0, x1, y1 in pixels).")


def box_text(box: Box) -> str:
    """The lesion-box field's text for ``box``."""
    return ", ".join(str(int(v)) for v in box)
