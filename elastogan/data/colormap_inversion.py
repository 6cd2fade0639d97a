"""Colour-map inversion: the scanner's E-mode back to mapped strain (DESIGN §2).

Inside the ROI a scanner draws ``E = (1 - α)·B + α·C(s)`` (``elastogan.display.blend``): the
map colour ``C`` of relative strain ``s`` (0 hard … 1 soft) blended over the grey B-mode
``B``. Inverting it takes three steps:

1. **The map**: a named vendor map (``elastogan.colormaps``) or the image's own colour bar
   (``find_colorbar`` + ``colorbar_lut``). Polarity is never guessed: a named map carries it,
   and a bar is read with its soft end where the caller says (the top, as scanners label it).
2. **Remove the blend**: with the B-mode known (dual display, or a separate B-mode file),
   ``C = (E - (1 - α)·B) / α``. Without it, a colour map is still invertible because the
   grey B-mode only adds a grey vector: the chroma of ``E`` (its part orthogonal to grey) is
   ``α`` times the chroma of ``C(s)``. For a colour map the opacity ``α``, when not given, is
   the one that makes the ROI's pixels fit the map best (a 1-D search with a sharp minimum).
   A grey map has neither chroma nor a sharp minimum (any larger α also leaves greys): its
   ``α`` comes from the speckle instead (``estimate_grey_alpha``: strain is smooth at the
   speckle's scale, so the speckle that shows through the elastogram is ``(1 - α)·B``'s), and
   a blended grey map needs the B-mode.
3. **Nearest map entry** per pixel (a k-d tree over a fine LUT); pixels whose residual, in
   E-mode units, exceeds ``tolerance`` are reported as poorly matched (ROI outlines, text,
   markers, another map than the one named, lossy compression).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from elastogan.colormaps import get_colormap

Box = tuple[int, int, int, int]  # x0, y0, x1, y1, end-exclusive

LUT_SIZE = 1024  # strain resolution of the inversion: 1/1023 of the display range
DEFAULT_TOLERANCE = 12 / 255  # residual (RGB distance, 0..1 units) above which a pixel matched poorly
ALPHA_MIN = 0.05  # smallest colour opacity considered when α is fitted
ALPHA_STEPS = (0.05, 0.01, 0.001)  # coarse-to-fine grids of the α fit
ALPHA_FIT_PIXELS = 3000  # ROI pixels used to fit α (a seeded subsample)
GREY_CHROMA = 0.02  # a LUT whose chroma never exceeds this is a grey map
GREY_ALPHA_CALM = 70  # grey-map α: pixels below this percentile of edge strength are used
BAR_DARK_END = 24  # grey level: a bar end this dark (or this close to white) can merge with the background
BAR_SHARED_ROWS = 0.9  # neighbouring bar columns share at least this share of their rows
MIN_SPECKLE_VARIANCE = 1.0  # grey levels²: less high-pass B-mode variance than this is no speckle

# Orthonormal basis of the plane orthogonal to grey (1, 1, 1): the chroma plane.
_CHROMA = np.array([[1.0, -1.0, 0.0], [1.0, 1.0, -2.0]]) / np.array([[np.sqrt(2.0)], [np.sqrt(6.0)]])


@dataclass(frozen=True)
class Inversion:
    """The result of ``invert_emode``.

    Attributes:
        strain: H×W float32 relative strain (0 hard … 1 soft), NaN outside the ROI.
        poor_match: H×W bool, pixels of the ROI whose colour fitted the map poorly.
        poor_fraction: share of ROI pixels that matched poorly.
        alpha: the colour opacity used (given or fitted).
        bmode_source: ``"given"`` (B-mode known), ``"estimated"`` (from the chroma) or
            ``"not needed (opaque)"`` (``alpha=1``).
    """

    strain: np.ndarray
    poor_match: np.ndarray
    poor_fraction: float
    alpha: float
    bmode_source: str


def resolve_lut(colormap: str | np.ndarray, n: int = LUT_SIZE) -> np.ndarray:
    """A ``(n, 3)`` float LUT (row ``i`` = colour of strain ``i/(n-1)``) from a name or a LUT."""
    if isinstance(colormap, str):
        return get_colormap(colormap).lut(n).astype(np.float64)
    lut = np.asarray(colormap, dtype=np.float64)
    if lut.ndim != 2 or lut.shape[1] != 3 or len(lut) < 2:
        raise ValueError(f"expected a colour map name or an (n, 3) LUT, got shape {lut.shape}")
    if len(lut) == n:
        return lut
    s_old = np.linspace(0.0, 1.0, len(lut))
    s_new = np.linspace(0.0, 1.0, n)
    return np.stack([np.interp(s_new, s_old, lut[:, c]) for c in range(3)], axis=1)


def is_grey_lut(lut: np.ndarray) -> bool:
    """True if the map has (almost) no chroma: its colours are greys."""
    return float(np.abs(lut @ _CHROMA.T).max()) < GREY_CHROMA


def invert_emode(
    emode: np.ndarray,
    roi: Box,
    colormap: str | np.ndarray,
    *,
    bmode: np.ndarray | None = None,
    alpha: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Inversion:
    """Mapped strain of an E-mode image inside ``roi``.

    Args:
        emode: H×W×3 uint8 E-mode.
        roi: ``(x0, y0, x1, y1)`` end-exclusive elastography box.
        colormap: a name from ``elastogan.colormaps.COLORMAPS`` or an ``(n, 3)`` LUT in 0..1
            (row 0 = hardest), e.g. from ``colorbar_lut``.
        bmode: H×W uint8 grey B-mode under the E-mode, if known; otherwise it is estimated
            (colour maps only).
        alpha: colour opacity if known; otherwise fitted (colour maps) or estimated from the
            speckle showing through (grey maps, which then need the B-mode).
        tolerance: residual (RGB distance in 0..1 units, E-mode scale) above which a pixel
            counts as poorly matched.

    Returns:
        An ``Inversion``.

    Example:
        >>> import numpy as np
        >>> from elastogan.display import render_emode
        >>> b = np.full((32, 32), 90, np.uint8); s = np.tile(np.linspace(0, 1, 32), (32, 1))
        >>> e = render_emode(b, s, (4, 4, 28, 28), alpha=0.5, colorbar=False)
        >>> inv = invert_emode(e, (4, 4, 28, 28), "hitachi", bmode=b)
        >>> float(np.nanmax(np.abs(inv.strain - s)[4:28, 4:28])) < 0.02, round(inv.alpha, 2)
        (True, 0.5)
    """
    from scipy.spatial import cKDTree

    if emode.ndim != 3 or emode.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 E-mode, got shape {emode.shape}")
    h, w = emode.shape[:2]
    x0, y0, x1, y1 = roi
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"ROI {roi} is not inside the {h}×{w} E-mode")
    if bmode is not None and bmode.shape != (h, w):
        raise ValueError(f"expected an H×W B-mode of the E-mode's size {h}×{w}, got {bmode.shape}")
    if alpha is not None and not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if tolerance <= 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance}")
    lut = resolve_lut(colormap)
    grey_map = is_grey_lut(lut)
    if grey_map and bmode is None and alpha != 1.0:
        raise ValueError(
            "a grey colour map cannot be told apart from the grey B-mode under it without the "
            "B-mode: give the B-mode (dual display or pairs), or alpha=1 if the elastogram is opaque"
        )
    if grey_map and alpha is None:
        alpha = estimate_grey_alpha(emode, bmode, roi)

    e = emode[y0:y1, x0:x1].reshape(-1, 3).astype(np.float64) / 255.0  # (n, 3)
    if bmode is not None:
        b = np.repeat(bmode[y0:y1, x0:x1].reshape(-1, 1).astype(np.float64) / 255.0, 3, axis=1)
        bmode_source = "given"
    elif alpha == 1.0:
        b, bmode_source = np.zeros_like(e), "not needed (opaque)"  # E = C: nothing to remove
    else:
        b, bmode_source = None, "estimated"
    rng = np.random.default_rng(0)
    fit = rng.choice(len(e), size=min(len(e), ALPHA_FIT_PIXELS), replace=False)

    if b is not None:
        tree = cKDTree(lut)

        def residual(a: float, idx: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
            c = (e[idx] - (1.0 - a) * b[idx]) / a
            d, k = tree.query(c)
            return d * a, k  # distance in E-mode units
    else:
        chroma_lut = lut @ _CHROMA.T  # (n_lut, 2)
        tree = cKDTree(chroma_lut)
        e_chroma = e @ _CHROMA.T

        def residual(a: float, idx: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
            d, k = tree.query(e_chroma[idx] / a)
            d = d * a
            if a < 1.0:
                # The grey left after removing α·C is (1 - α)·B: it must be a grey in 0..1.
                grey = (e[idx] - a * lut[k]).mean(axis=1) / (1.0 - a)
                d = d + np.clip(-grey, 0, None) + np.clip(grey - 1.0, 0, None)
            return d, k

    if alpha is None:
        alpha = _fit_alpha(lambda a: residual(a, fit)[0], tolerance)
    dist, k = residual(alpha, slice(None))

    strain = np.full((h, w), np.nan, dtype=np.float32)
    strain[y0:y1, x0:x1] = (k / (len(lut) - 1)).reshape(y1 - y0, x1 - x0)
    poor = np.zeros((h, w), dtype=bool)
    poor[y0:y1, x0:x1] = (dist > tolerance).reshape(y1 - y0, x1 - x0)
    return Inversion(
        strain=strain,
        poor_match=poor,
        poor_fraction=float(poor[y0:y1, x0:x1].mean()),
        alpha=alpha,
        bmode_source=bmode_source,
    )


def bmode_under_roi(emode: np.ndarray, roi: Box, strain: np.ndarray, colormap: str | np.ndarray, alpha: float) -> np.ndarray:
    """The grey B-mode under an inverted E-mode: ``B = (E - α·C(s)) / (1 - α)`` inside ``roi``.

    Outside the ROI the E-mode is the B-mode (its luminance). The three channels each give
    ``B``; their mean is taken, rounded and clipped to 0..255.

    Args:
        emode: H×W×3 uint8.
        roi: the inverted box.
        strain: H×W strain from ``invert_emode`` (finite inside ``roi``).
        colormap: the map it was inverted with (name or LUT).
        alpha: the opacity it was inverted with.

    Returns:
        H×W uint8.

    Raises:
        ValueError: ``alpha`` is 1: an opaque elastogram hides the B-mode under it.
    """
    if alpha >= 1.0:
        raise ValueError("the elastogram is opaque: the B-mode under its ROI is hidden and there is no B-mode panel beside it")
    lut = resolve_lut(colormap)
    grey = emode.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    x0, y0, x1, y1 = roi
    k = np.rint(np.clip(strain[y0:y1, x0:x1], 0.0, 1.0) * (len(lut) - 1)).astype(np.int64)
    e = emode[y0:y1, x0:x1].astype(np.float64) / 255.0
    grey[y0:y1, x0:x1] = 255.0 * ((e - alpha * lut[k]) / (1.0 - alpha)).mean(axis=-1)
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def estimate_grey_alpha(emode: np.ndarray, bmode: np.ndarray, roi: Box) -> float:
    """The opacity of a grey elastogram, from the B-mode speckle that shows through it.

    Inside the ROI ``E = (1 - α)·B + α·C``. Strain, and so ``C``, is smooth at the scale of
    speckle, so in a 3×3 high-pass ``E_hp ≈ (1 - α)·B_hp``: the least-squares slope of
    ``E_hp`` on ``B_hp`` is ``1 - α``. Pixels near edges of the smoothed E-mode or B-mode (a
    lesion boundary, where strain and echo change together) are left out: there the strain
    is not smooth and would bias the slope.

    Args:
        emode: H×W×3 uint8 E-mode drawn with a grey map.
        bmode: H×W uint8 B-mode under it.
        roi: ``(x0, y0, x1, y1)``.

    Returns:
        α in ``[ALPHA_MIN, 1]``, rounded to 0.001 (1 for an opaque elastogram).

    Raises:
        ValueError: the B-mode under the ROI has no speckle to read α from.
    """
    from scipy import ndimage

    x0, y0, x1, y1 = roi
    e = emode[y0:y1, x0:x1].astype(np.float64).mean(axis=-1)
    b = bmode[y0:y1, x0:x1].astype(np.float64)
    inner = (slice(1, -1), slice(1, -1))  # the 3×3 mean is exact away from the border
    e_hp = (e - ndimage.uniform_filter(e, 3))[inner]
    b_hp = (b - ndimage.uniform_filter(b, 3))[inner]
    e_edge = ndimage.gaussian_gradient_magnitude(ndimage.gaussian_filter(e, 1.5), 1.0)[inner]
    b_edge = ndimage.gaussian_gradient_magnitude(b, 2.0)[inner]
    calm = (e_edge < np.percentile(e_edge, GREY_ALPHA_CALM)) & (b_edge < np.percentile(b_edge, GREY_ALPHA_CALM))
    denom = float((b_hp[calm] ** 2).sum())
    if denom < MIN_SPECKLE_VARIANCE * max(1, int(calm.sum())):
        raise ValueError("the B-mode under the ROI has no speckle, so a grey map's opacity cannot be read from it: give alpha")
    slope = float((e_hp[calm] * b_hp[calm]).sum()) / denom
    return round(float(np.clip(1.0 - slope, ALPHA_MIN, 1.0)), 3)


def _fit_alpha(residual: Callable[[float], np.ndarray], tolerance: float) -> float:
    """The opacity with the smallest mean (clipped) residual, by grids of steps 0.05, 0.01, 0.001.

    Only for colour maps: their residual has a single sharp minimum at the true α. A grey map
    has none (every α above the true one also leaves greys), so its α must be given.
    """

    def score(a: float) -> float:
        return float(np.minimum(residual(a), 4 * tolerance).mean())

    lo, hi, best = ALPHA_MIN, 1.0, 1.0
    for step in ALPHA_STEPS:
        grid = np.round(np.arange(lo, hi + step / 2, step), 3)
        best = float(grid[int(np.argmin([score(float(a)) for a in grid]))])
        lo, hi = max(ALPHA_MIN, best - step), min(1.0, best + step)
    return best


def saturation(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel ``max - min`` over R, G, B (uint8 H×W): 0 for greys."""
    return (rgb.max(axis=-1).astype(np.int16) - rgb.min(axis=-1)).astype(np.uint8)


def find_colorbar(
    rgb: np.ndarray,
    *,
    exclude: Box | None = None,
    row_tolerance: int = 4,
    step_tolerance: int = 48,
    min_span: float = 0.5,
    end_noise: int = 0,
) -> Box | None:
    """Find a colour bar: a narrow vertical strip, constant along each row, that ramps.

    Each row of a bar is one colour across its width (at least 3 columns), consecutive rows
    change smoothly, and from end to end the colour changes a lot. Speckle fails the first
    test, text the second, a plain background the third.

    Args:
        rgb: H×W×3 uint8 image.
        exclude: a box to ignore (the ROI, where smooth strain could look like a bar).
        row_tolerance: largest channel difference between neighbours in a row of the bar.
        step_tolerance: largest channel change from one row of the bar to the next.
        min_span: smallest RGB distance (0..1 units) between the bar's two ends.
        end_noise: grey levels of coding noise (0 lossless; a few for JPEG): a black or white
            end of the bar is the innermost row this close to the extreme.

    Returns:
        ``(x0, y0, x1, y1)`` end-exclusive, or None if there is no bar.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 image, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    img = rgb.astype(np.int16)
    min_len = max(16, h // 8)
    same_row = (np.abs(np.diff(img, axis=1)).max(axis=-1) <= row_tolerance)  # (h, w-1)
    band = same_row[:, :-1] & same_row[:, 1:]  # columns x, x+1, x+2 equal: (h, w-2)
    smooth = np.abs(np.diff(img, axis=0)).max(axis=-1) <= step_tolerance  # (h-1, w)
    if exclude is not None:
        ex0, ey0, ex1, ey1 = exclude
        band[max(0, ey0):ey1, max(0, ex0 - 2):ex1] = False

    varies = (img.max(axis=0) - img.min(axis=0)).max(axis=-1)[: w - 2] >= 255 * min_span / np.sqrt(3)
    runs: dict[int, tuple[int, int]] = {}
    for x in np.flatnonzero((band.sum(axis=0) >= min_len) & varies):
        ok = band[:, x]
        link = ok[:-1] & ok[1:] & smooth[:, x]  # rows y and y+1 in one run
        starts = np.flatnonzero(ok & ~np.concatenate(([False], link)))
        ends = np.flatnonzero(ok & ~np.concatenate((link, [False]))) + 1  # exclusive
        best: tuple[int, int] | None = None
        for start, end in zip(starts, ends):
            if end - start < min_len:
                continue
            seg = img[start:end, x]
            lo, hi = _trim_constant_ends(seg)
            if hi - lo < min_len:
                continue
            span = np.linalg.norm((seg[lo] - seg[hi - 1]) / 255.0)
            if span >= min_span and (best is None or hi - lo > best[1] - best[0]):
                best = (int(start + lo), int(start + hi))
        if best is not None:
            runs[int(x)] = best

    # Group neighbouring columns whose runs share most of their rows, on the rows they share:
    # text or markers touching one end of a bar (or its dark end fading into a dark
    # background) move that end by a few rows in some columns only.
    groups: list[tuple[int, int, tuple[int, int]]] = []
    for x in sorted(runs):
        if groups and groups[-1][1] == x - 1:
            (a0, a1), (b0, b1) = groups[-1][2], runs[x]
            shared = (max(a0, b0), min(a1, b1))
            if shared[1] - shared[0] >= BAR_SHARED_ROWS * max(a1 - a0, b1 - b0):
                groups[-1] = (groups[-1][0], x, shared)
                continue
        groups.append((x, x, runs[x]))

    def has_edges(xa: int, xb: int, ya: int, yb: int) -> bool:
        # A bar stands out from what is beside it on most rows (smooth strain does not).
        for x_out, x_in in ((xa - 1, xa), (xb + 3, xb + 2)):
            if 0 <= x_out < w:
                step = np.abs(img[ya:yb, x_out] - img[ya:yb, x_in]).max(axis=-1)
                if (step > 3 * row_tolerance).mean() < 0.5:
                    return False
        return True

    # A start column x covers x..x+2; a bar is at least three times taller than wide.
    bars = [g for g in groups if g[2][1] - g[2][0] >= 3 * (g[1] - g[0] + 3) and has_edges(g[0], g[1], *g[2])]
    if not bars:
        return None
    xa, xb, (ya, yb) = max(bars, key=lambda g: (g[1] - g[0] + 3) * (g[2][1] - g[2][0]))
    lum = np.median(img[ya:yb, xa : xb + 3].astype(np.float64) @ np.array([0.299, 0.587, 0.114]), axis=1)
    lo, hi = _trim_background_ends(lum, end_noise)
    return (int(xa), int(ya + lo), int(xb) + 3, int(ya + hi))


def _trim_background_ends(lum: np.ndarray, end_noise: int) -> tuple[int, int]:
    """Rows ``lo:hi`` of a bar's luminance profile without the background it ran into.

    A black (or white) end of a bar on a dark (or light) background does not stand out: the
    bar's run goes on into the background's faint speckle. A bar's black end is its darkest
    row, so rows past the profile's minimum (maximum) near that end are background. Only the
    outer half of the bar is searched, and only when the extreme is black (white) enough to
    merge with a background at all.
    """
    n = len(lum)
    lo, hi = 0, n
    half = max(1, n // 2)
    for dark in (True, False):
        sign = 1.0 if dark else -1.0  # search the minimum of sign·lum
        tail, head = sign * lum[n - half :], sign * lum[:half]
        end = BAR_DARK_END if dark else -(255 - BAR_DARK_END)
        if tail.min() <= end:
            # The innermost row within noise of the extreme: lossy coding leaves the bar's end
            # and the background beside it a few levels apart, either way.
            i = n - half + int(np.flatnonzero(tail <= tail.min() + end_noise)[0])
            hi = min(hi, i + 1)
        if head.min() <= end:
            j = int(np.flatnonzero(head <= head.min() + end_noise)[-1])
            lo = max(lo, j)
    return (lo, hi) if hi - lo >= 2 else (0, n)


def _trim_constant_ends(seg: np.ndarray) -> tuple[int, int]:
    """Rows ``lo:hi`` of a bar profile without the flat runs at its ends.

    Where a bar's end colour equals the background (a black hard end on a black screen),
    the run goes on into the background; a ramp is never flat, so the flat part is not bar.
    """
    diff = np.abs(np.diff(seg.astype(np.int16), axis=0)).max(axis=-1) > 0
    changing = np.flatnonzero(diff)
    if len(changing) == 0:
        return 0, 0
    return int(changing[0]), int(changing[-1]) + 2


def colorbar_lut(rgb: np.ndarray, box: Box, *, soft_at: str = "top", n: int = LUT_SIZE) -> np.ndarray:
    """The colour map drawn in a colour bar, as an ``(n, 3)`` LUT in 0..1 (row 0 = hardest).

    Each bar row is the median colour across the bar's width; rows are evenly spaced in
    strain from one end to the other and interpolated linearly between them.

    Args:
        rgb: H×W×3 uint8 image holding the bar.
        box: the bar, e.g. from ``find_colorbar``.
        soft_at: ``"top"`` (scanners label the top SOFT) or ``"bottom"``.
        n: LUT size.
    """
    if soft_at not in ("top", "bottom"):
        raise ValueError(f"soft_at must be 'top' or 'bottom', got {soft_at!r}")
    x0, y0, x1, y1 = box
    if y1 - y0 < 2 or x1 <= x0:
        raise ValueError(f"colour bar box {box} is too small")
    profile = np.median(rgb[y0:y1, x0:x1].astype(np.float64), axis=1) / 255.0  # (rows, 3), top first
    if soft_at == "top":
        profile = profile[::-1]
    return resolve_lut(profile, n)


def lut_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean RGB distance (0..1 units) between two LUTs sampled at the same strains."""
    a, b = resolve_lut(a, 256), resolve_lut(b, 256)
    return float(np.linalg.norm(a - b, axis=1).mean())


def detect_roi(
    emode: np.ndarray,
    *,
    bmode: np.ndarray | None = None,
    ignore: np.ndarray | None = None,
    min_saturation: int = 20,
    min_difference: int = 3,
) -> Box | None:
    """The elastography box of an E-mode: the largest coloured region.

    With the B-mode known, "coloured" means "differs from the B-mode" (works for grey maps
    too); without it, "saturated" (colour maps only).

    Args:
        emode: H×W×3 uint8.
        bmode: H×W uint8 B-mode under it, if known.
        ignore: H×W bool, pixels that are never the box (the colour bar and its labels:
            ``elastogan.display.colorbar_mask``).
        min_saturation: ``max - min`` channel value that counts as coloured.
        min_difference: channel difference from the B-mode that counts as coloured.

    Returns:
        ``(x0, y0, x1, y1)`` end-exclusive, or None if nothing is coloured.
    """
    from scipy import ndimage

    if bmode is not None:
        diff = np.abs(emode.astype(np.int16) - bmode[..., None].astype(np.int16)).max(axis=-1)
        mask = diff >= min_difference
    else:
        mask = saturation(emode) >= min_saturation
    if ignore is not None:
        mask &= ~ignore
    # Close small gaps (pixels where the map colour happens to equal the B-mode).
    mask = ndimage.binary_closing(mask, structure=np.ones((3, 3), bool), border_value=0) | mask
    labels, n = ndimage.label(mask)
    if n == 0:
        return None
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    best = int(np.argmax(sizes)) + 1
    sl = ndimage.find_objects(labels)[best - 1]
    return (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
