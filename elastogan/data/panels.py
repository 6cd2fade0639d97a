"""Where the pictures are on a scanner screen: the image panels, and the text strips around them.

A screen export (DICOM, PNG, JPEG) holds one or two ultrasound pictures surrounded by burned-in
text: patient name, date, hospital, settings. Only the pictures may leave ingestion or reach
the generator, so everything here answers one question: which boxes hold image content.

In order of trust:

1. **DICOM ultrasound regions** (``SequenceOfUltrasoundRegions``) with a 2-D image format:
   the scanner says where its pictures are (``elastogan.data.dicom`` clips a box that overruns
   the frame by one pixel and names the ones it drops).
2. **Twin panels**: a strain display shows one frame twice, the plain B-mode and the B-mode
   under the elastogram, so the screen repeats itself at a horizontal shift. The shift whose
   textured pixels equal their partner far more often than at other shifts (low-contrast
   speckle matches by chance at every shift) gives both boxes exactly, whether the panels
   touch or stand apart, through JPEG noise and whatever is drawn over either panel (the ROI,
   calipers, markers: they only lower the count). A line without texture ends a panel, so
   text a few pixels away stays out.
3. **Image blocks**: dense content that is not the screen's background (black, or the colour
   filling the screen's edges, e.g. a navy header). A 5×5 density filter keeps speckle and
   drops thin text strokes; a block is then cut to its longest run of lines with content and
   its edge lines flat along themselves (a header bar touching the panel) are dropped. Used
   for screens whose panels do not repeat (a single panel with the elastogram drawn over it,
   a thumbnail beside a main image, two different frames).

Axes: ``h``/``w`` screen height and width; boxes are ``(x0, y0, x1, y1)`` end-exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from elastogan.data.colormap_inversion import saturation
from elastogan.data.loaders import LoadedImage

Box = tuple[int, int, int, int]

MIN_PANEL_FRACTION = 0.02  # an image panel covers at least this share of the screen
TEXTURE_STEP = 2  # a change between neighbours bigger than this is texture, not noise
MIN_TEXTURE_FRACTION = 0.25  # an image panel changes at least this often between neighbours
FOREGROUND_LEVEL = 12  # farther than this (any channel) from a background colour is screen content
BACKGROUND_EDGE_SHARE = 0.3  # a colour filling this share of a screen edge is background
COLOURED_LEVEL = 20  # saturation (max - min channel) that counts as colour
TWIN_TEXTURE_STEP = 6  # grey levels: JPEG ringing beside burned-in text stays below, speckle does not
TWIN_TOLERANCE = 16  # grey levels: twin pixels differ by less (JPEG noise at quality >= 85)
TWIN_PEAK = 1.5  # the twins' shift matches at least this many times the rate of the best tenth of shifts
TWIN_MIN_SHARE = 0.3  # twins: at least this share of a panel's textured pixels equal their partner's
TWIN_LINE_SHARE = 0.02  # a panel's row or column has at least this share of the best line's twin pixels …
TWIN_LINE_RATIO = 0.2  # … and at least this share of its textured pixels are twins
TWIN_SMOOTH = 9  # lines: the neighbourhood a line's share of twin pixels is judged on
TWIN_GAP = 32  # lines: a run of weaker lines this long inside a panel does not split it
TWIN_FLAT = 0.0  # a line with no more textured pixels than this share is background, no panel's
TWIN_FLAT_LINES = 2  # … in a run of at least this many lines
FLAT_EDGE = 0.02  # a block's edge line with less texture along itself than this share is no picture
TWIN_MIN_SIDE = 32  # pixels: narrower twins are repeated toolbar icons, not pictures


@dataclass(frozen=True)
class ScreenPanels:
    """The image panels of one screen.

    Attributes:
        boxes: panel boxes in screen coordinates, left to right.
        found_by: ``"dicom regions"``, ``"twin panels"``, ``"image"`` or the last two
            ``"… within dicom region"`` (one region around a whole dual display).
    """

    boxes: tuple[Box, ...]
    found_by: str

    @property
    def twins(self) -> bool:
        """True if the panels were found as one frame shown twice (so equal outside overlays)."""
        return self.found_by.startswith("twin")


def crop(arr: np.ndarray, box: Box) -> np.ndarray:
    """``arr[y0:y1, x0:x1]``."""
    x0, y0, x1, y1 = box
    return arr[y0:y1, x0:x1]


def colour_fraction(rgb: np.ndarray) -> float:
    """Share of pixels whose channels spread by at least ``COLOURED_LEVEL`` (0 for a grey image)."""
    return float((saturation(rgb) >= COLOURED_LEVEL).mean())


def _texture(rgb: np.ndarray, step: int = TWIN_TEXTURE_STEP) -> np.ndarray:
    """H×W bool: the pixel differs by more than noise from both its neighbours in a row, or
    both in a column. Speckle does; the background beside a panel's edge does not (it
    differs from the panel on one side only), nor does a flat strip or a plain line of text."""
    g = rgb.astype(np.int16).max(axis=-1)
    dx = np.abs(np.diff(g, axis=1)) > step  # (h, w-1): x vs x+1
    dy = np.abs(np.diff(g, axis=0)) > step  # (h-1, w): y vs y+1
    out = np.zeros(g.shape, bool)
    out[:, 1:-1] |= dx[:, :-1] & dx[:, 1:]
    out[1:-1, :] |= dy[:-1, :] & dy[1:, :]
    return out


def find_twins(rgb: np.ndarray) -> tuple[Box, Box] | None:
    """Two side-by-side panels showing one frame: ``(left, right)``, or None.

    For every horizontal shift ``d`` from a quarter to three quarters of the width, count the
    textured pixels equal (within ``TWIN_TOLERANCE``) to the pixel ``d`` to their right. A
    screen whose two panels show one frame has one shift that stands far above the rest. The
    left box is where the equal pixels are dense (rows and columns with at least
    ``TWIN_LINE_SHARE`` of them, holes inside filled), the right box the same shifted by ``d``.

    Returns:
        ``(left_box, right_box)`` with equal sizes, or None if the screen does not repeat.
    """
    from scipy import ndimage

    h, w = rgb.shape[:2]
    grey = rgb.astype(np.int16).max(axis=-1)
    textured = _texture(rgb)
    rows = slice(0, h, 2)  # every other row finds the shift as well, at half the cost
    g, t = grey[rows], textured[rows]
    shifts = np.arange(max(TWIN_MIN_SIDE, w // 4), 3 * w // 4 + 1)
    if len(shifts) == 0:
        return None
    # Equal pixels per overlapping pixel: wider shifts overlap less.
    rates = np.array([(t[:, : w - d] & (np.abs(g[:, : w - d] - g[:, d:]) < TWIN_TOLERANCE)).mean() for d in shifts])
    d = int(shifts[int(np.argmax(rates))])
    # Low-contrast speckle matches within the tolerance by chance at every shift; a frame shown
    # twice stands far above that chance level at one shift.
    if rates.max() <= 0 or rates.max() < TWIN_PEAK * np.percentile(rates, 90):
        return None
    equal = textured[:, : w - d] & textured[:, d:] & (np.abs(grey[:, : w - d] - grey[:, d:]) < TWIN_TOLERANCE)
    tex = textured[:, : w - d]
    x0, y0, x1, y1 = 0, 0, w - d, h
    for _ in range(2):  # columns within the rows found, rows within those columns, again
        cols = _span(equal[y0:y1].mean(axis=0), tex[y0:y1].mean(axis=0))
        if cols is None:
            return None
        x0, x1 = cols[0], min(cols[1], cols[0] + d)  # the two panels never overlap
        rws = _span(equal[:, x0:x1].mean(axis=1), tex[:, x0:x1].mean(axis=1))
        if rws is None:
            return None
        y0, y1 = rws
    if x1 - x0 < TWIN_MIN_SIDE or y1 - y0 < TWIN_MIN_SIDE:
        return None
    if float(equal[y0:y1, x0:x1].mean()) < TWIN_MIN_SHARE * float(textured[y0:y1, x0:x1].mean()):
        return None  # a few repeated lines (a toolbar, a grid), not a repeated picture
    if (x1 - x0) * (y1 - y0) < MIN_PANEL_FRACTION * h * w:
        return None
    return (x0, y0, x1, y1), (x0 + d, y0, x1 + d, y1)


def _span(share: np.ndarray, texture: np.ndarray) -> tuple[int, int] | None:
    """The longest run of lines (rows or columns) with at least ``TWIN_LINE_SHARE`` of the
    best line's share of twin pixels: ``(start, stop)`` or None.

    A run bridges up to ``TWIN_GAP`` weaker lines (an anechoic band, the ROI where the E-mode
    differs) but never a line without texture: the strip between a panel and a line of
    burned-in text ends the panel, however close the text.
    """
    from scipy import ndimage

    if share.max() <= 0:
        return None
    # Lines are judged on their neighbourhood (a few chance matches in a line of text are not a
    # panel), then the run is tightened to lines that hold twin pixels themselves.
    smooth = ndimage.uniform_filter1d(share, TWIN_SMOOTH, mode="constant")
    smooth_texture = ndimage.uniform_filter1d(texture, TWIN_SMOOTH, mode="constant")
    # In a panel a good part of the texture repeats in the twin; in a line of text, by chance.
    ratio = smooth / np.maximum(smooth_texture, 1e-9)
    good = (smooth >= TWIN_LINE_SHARE * smooth.max()) & (ratio >= TWIN_LINE_RATIO)
    # A separating strip is a few flat lines; one flat line inside a panel is a smooth
    # (anechoic, or JPEG-smoothed) band.
    flat = _runs_of_at_least(texture <= TWIN_FLAT, TWIN_FLAT_LINES)
    best: tuple[int, int] | None = None
    start = last = None
    for i in range(len(share)):
        if flat[i] or (last is not None and i - last > TWIN_GAP):
            start = last = None
        if good[i] and not flat[i]:
            start = i if start is None else start
            last = i
            if best is None or last + 1 - start > best[1] - best[0]:
                best = (start, last + 1)
    if best is None:
        return None
    raw = np.flatnonzero(share[best[0] : best[1]] >= TWIN_LINE_SHARE * share.max())
    if len(raw) == 0:
        return None
    return best[0] + int(raw[0]), best[0] + int(raw[-1]) + 1


def _runs_of_at_least(mask: np.ndarray, n: int) -> np.ndarray:
    """``mask`` with its runs of True shorter than ``n`` set to False (1-D)."""
    out = np.zeros_like(mask)
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        if stop - start >= n:
            out[start:stop] = True
    return out


def _refine_box(fg: np.ndarray, box: Box, *, grow: float = 0.3, shrink: float = 0.02, max_grow: int = 4) -> Box:
    """Snap a rough box to the content's edges: grow over dense lines, drop empty ones."""
    h, w = fg.shape
    x0, y0, x1, y1 = box

    def col(x: int) -> float:
        return float(fg[y0:y1, x].mean())

    def row(y: int) -> float:
        return float(fg[y, x0:x1].mean())

    for _ in range(max_grow):
        changed = False
        if x0 > 0 and col(x0 - 1) >= grow:
            x0 -= 1
            changed = True
        if x1 < w and col(x1) >= grow:
            x1 += 1
            changed = True
        if y0 > 0 and row(y0 - 1) >= grow:
            y0 -= 1
            changed = True
        if y1 < h and row(y1) >= grow:
            y1 += 1
            changed = True
        if not changed:
            break
    while x1 - x0 > 1 and col(x0) < shrink:
        x0 += 1
    while x1 - x0 > 1 and col(x1 - 1) < shrink:
        x1 -= 1
    while y1 - y0 > 1 and row(y0) < shrink:
        y0 += 1
    while y1 - y0 > 1 and row(y1 - 1) < shrink:
        y1 -= 1
    return (x0, y0, x1, y1)


def is_textured(rgb: np.ndarray) -> bool:
    """Speckle changes from pixel to pixel; a header band or a flat menu does not."""
    step = np.abs(np.diff(rgb.astype(np.int16), axis=1)).max(axis=-1) > TEXTURE_STEP
    return float(step.mean()) >= MIN_TEXTURE_FRACTION


def screen_background(rgb: np.ndarray) -> list[np.ndarray]:
    """The screen's background colours: black, and the commonest colour of each outer edge
    (a navy header strip, a grey frame), each as an int16 RGB triple."""
    edges = (rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1])
    colours = [np.zeros(3, np.int16)]
    for edge in edges:
        values, counts = np.unique(edge.reshape(-1, 3), axis=0, return_counts=True)
        mode = values[int(np.argmax(counts))].astype(np.int16)
        if counts.max() >= BACKGROUND_EDGE_SHARE * len(edge) and not any((np.abs(mode - c) <= FOREGROUND_LEVEL).all() for c in colours):
            colours.append(mode)
    return colours


def find_blocks(rgb: np.ndarray, n: int, *, split_wide: bool = True) -> list[Box]:
    """The ``n`` largest blocks of image content on a screen, left to right.

    Two panels that touch are one block; when two are asked for and only one block twice as
    wide as tall is found, it is cut in the middle unless ``split_wide`` is False
    (``find_twins`` finds touching panels exactly when they show one frame).

    Returns:
        up to ``n`` boxes; fewer if the screen holds fewer.
    """
    from scipy import ndimage

    h, w = rgb.shape[:2]
    fg = np.ones((h, w), bool)
    for colour in screen_background(rgb):
        fg &= np.abs(rgb.astype(np.int16) - colour).max(axis=-1) > FOREGROUND_LEVEL
    # Speckle, or colour that is not the screen's (an elastogram over an anechoic area is
    # smooth, yet content).
    content = _texture(rgb) | (fg & (saturation(rgb) >= COLOURED_LEVEL))
    dense = ndimage.uniform_filter(fg.astype(np.float32), size=5) > 0.5
    dense = ndimage.binary_fill_holes(dense)
    labels, count = ndimage.label(dense)
    if count == 0:
        return []
    sizes = ndimage.sum_labels(dense, labels, index=np.arange(1, count + 1))
    slices = ndimage.find_objects(labels)
    boxes: list[Box] = []
    for i in np.argsort(sizes)[::-1]:
        if sizes[i] < MIN_PANEL_FRACTION * h * w or len(boxes) == n:
            break
        box = _refine_box(fg, (slices[i][1].start, slices[i][0].start, slices[i][1].stop, slices[i][0].stop))
        box = _tighten(content, box)
        box = _drop_flat_edges(rgb, box) if box is not None else None
        if box is not None and is_textured(crop(rgb, box)):
            boxes.append(box)
    if split_wide and n == 2 and len(boxes) == 1:
        x0, y0, x1, y1 = boxes[0]
        if x1 - x0 >= 1.6 * (y1 - y0):
            half = (x1 - x0) // 2
            boxes = [(x0, y0, x0 + half, y1), (x0 + half, y0, x0 + 2 * half, y1)]
    return sorted(boxes, key=lambda b: b[0])


def _tighten(content: np.ndarray, box: Box) -> Box | None:
    """``box`` cut to its longest run of rows and columns holding ``content`` (H×W bool of the
    screen): a strip of burned-in text touching a panel joins its block, but a line without
    content separates the two."""
    x0, y0, _, _ = box
    c = crop(content, box).astype(np.float64)
    cols = _span(c.mean(axis=0), c.mean(axis=0))
    if cols is None:
        return None
    share = c[:, cols[0] : cols[1]].mean(axis=1)
    rows = _span(share, share)
    if rows is None:
        return None
    return (x0 + cols[0], y0 + rows[0], x0 + cols[1], y0 + rows[1])


def _drop_flat_edges(rgb: np.ndarray, box: Box) -> Box | None:
    """``box`` without edge rows (columns) that change too little along themselves to be
    picture: the border of a header strip or a bar of it touching the panel's top edge is
    flat along the row, speckle is not."""
    x0, y0, x1, y1 = box
    g = rgb.astype(np.int16).max(axis=-1)

    def along(line: np.ndarray) -> float:
        d = np.abs(np.diff(line)) > TWIN_TEXTURE_STEP
        return float((d[:-1] & d[1:]).mean()) if len(d) > 1 else 0.0

    while y1 - y0 > 1 and along(g[y0, x0:x1]) < FLAT_EDGE:
        y0 += 1
    while y1 - y0 > 1 and along(g[y1 - 1, x0:x1]) < FLAT_EDGE:
        y1 -= 1
    while x1 - x0 > 1 and along(g[y0:y1, x0]) < FLAT_EDGE:
        x0 += 1
    while x1 - x0 > 1 and along(g[y0:y1, x1 - 1]) < FLAT_EDGE:
        x1 -= 1
    return (x0, y0, x1, y1) if x1 - x0 > 1 and y1 - y0 > 1 else None


def _offset(boxes: list[Box] | tuple[Box, ...], x: int, y: int) -> tuple[Box, ...]:
    return tuple((a + x, b + y, c + x, d + y) for a, b, c, d in boxes)


def picture_panels(rgb: np.ndarray, n: int) -> ScreenPanels:
    """Up to ``n`` (1 or 2) panels of a screen without regions: twins first, then blocks."""
    if n == 2:
        twins = find_twins(rgb)
        if twins is not None:
            return ScreenPanels(twins, "twin panels")
    return ScreenPanels(tuple(find_blocks(rgb, n)), "image")


def screen_panels(img: LoadedImage, n: int) -> ScreenPanels:
    """Up to ``n`` image panels of a loaded screen, in screen coordinates, left to right.

    DICOM image regions when the file declares at least ``n`` (the largest ``n``); the panels
    inside a single region that holds a whole dual display; otherwise ``picture_panels``.
    """
    regions = sorted((r for r in img.regions if r.is_image), key=lambda r: -(r.box[2] - r.box[0]) * (r.box[3] - r.box[1]))
    if len(regions) >= n:
        return ScreenPanels(tuple(sorted((r.box for r in regions[:n]), key=lambda b: b[0])), "dicom regions")
    if len(regions) == 1:
        x0, y0, _, _ = regions[0].box
        inner = picture_panels(crop(img.rgb, regions[0].box), n)
        return ScreenPanels(_offset(inner.boxes, x0, y0), f"{inner.found_by} within dicom region")
    return picture_panels(img.rgb, n)


def outside_mask(shape: tuple[int, int], boxes: tuple[Box, ...] | list[Box]) -> np.ndarray:
    """H×W bool: the pixels of the screen in none of ``boxes`` (where its text strips are)."""
    out = np.ones(shape, bool)
    for x0, y0, x1, y1 in boxes:
        out[y0:y1, x0:x1] = False
    return out
