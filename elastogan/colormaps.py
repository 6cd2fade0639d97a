"""Named strain colour maps, as elastography scanners draw them.

Strain is *relative* strain on the display scale: 0 = hardest, 1 = softest (DESIGN §2).
Vendors disagree on polarity (Hitachi: red soft, blue hard; Siemens grey: white soft; some
systems black soft), so a colour map is always named, never guessed.

A map is a list of anchor colours at strain positions, linearly interpolated into a lookup
table (LUT). The same LUT serves both directions: ``colorize`` (strain → RGB) here, and the
inversion (RGB → strain) in ``elastogan.data.colormap_inversion``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from elastogan.errors import UserError


@dataclass(frozen=True)
class Colormap:
    """A strain colour map.

    Args:
        name: registry name, e.g. ``"hitachi"``.
        anchors: ``(strain, (r, g, b))`` pairs, strain ascending from 0 (hard) to 1 (soft),
            colours in 0..255.
        description: one line for ``--help`` and the docs.
    """

    name: str
    anchors: tuple[tuple[float, tuple[int, int, int]], ...]
    description: str

    def lut(self, n: int = 256) -> np.ndarray:
        """``(n, 3)`` float32 RGB in 0..1; row ``i`` is the colour of strain ``i / (n - 1)``."""
        pos = np.array([a[0] for a in self.anchors], dtype=np.float64)
        rgb = np.array([a[1] for a in self.anchors], dtype=np.float64) / 255.0
        s = np.linspace(0.0, 1.0, n)
        out = np.stack([np.interp(s, pos, rgb[:, c]) for c in range(3)], axis=1)
        return out.astype(np.float32)

    def colorize(self, strain: np.ndarray) -> np.ndarray:
        """Map strain (any shape, 0..1, NaN allowed) to RGB float32 in 0..1, shape ``(..., 3)``.

        Values are clipped to the display range as a scanner does; NaN becomes black.
        """
        lut = self.lut(1024)
        s = np.asarray(strain, dtype=np.float32)
        nan = ~np.isfinite(s)
        idx = np.rint(np.clip(np.where(nan, 0.0, s), 0.0, 1.0) * 1023).astype(np.int64)
        out = lut[idx]
        out[nan] = 0.0
        return out


COLORMAPS: dict[str, Colormap] = {
    m.name: m
    for m in (
        Colormap(
            "hitachi",
            (
                (0.0, (0, 0, 255)),
                (0.25, (0, 150, 255)),
                (0.5, (0, 220, 0)),
                (0.75, (255, 230, 0)),
                (1.0, (255, 0, 0)),
            ),
            "Hitachi/Fujifilm RGB strain map: blue = hard, green = average, red = soft",
        ),
        Colormap(
            "grey-white-soft",
            ((0.0, (0, 0, 0)), (1.0, (255, 255, 255))),
            "grey strain map (Siemens style): white = soft, black = hard",
        ),
        Colormap(
            "grey-black-soft",
            ((0.0, (255, 255, 255)), (1.0, (0, 0, 0))),
            "grey strain map, inverted polarity: black = soft, white = hard",
        ),
    )
}

DEFAULT_COLORMAP = "hitachi"


def get_colormap(name: str) -> Colormap:
    """The named map; a ``UserError`` listing the known names if there is none."""
    try:
        return COLORMAPS[name]
    except KeyError:
        known = ", ".join(sorted(COLORMAPS))
        raise UserError(f"unknown colour map {name!r}; known maps: {known}") from None
