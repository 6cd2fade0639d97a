"""Colour-map inversion by round trip: colourise strain, blend it over a B-mode as the scanner
does (``render_emode``), invert — error under 2 % of the display range inside the ROI."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from elastogan.colormaps import COLORMAPS, get_colormap
from elastogan.data.colormap_inversion import (
    colorbar_lut,
    detect_roi,
    find_colorbar,
    invert_emode,
    estimate_grey_alpha,
    lut_distance,
)
from elastogan.display import DisplayLayout, render_emode
from scanner_screens import bmode_image, standard_roi, strain_image

H, W = 120, 160
ROI = standard_roi(H, W)
TOLERANCE = 0.02  # of the display range (strain 0..1)


@pytest.fixture(scope="module")
def scene():
    return bmode_image(H, W, seed=3), strain_image(H, W, seed=3)


def roi_error(strain: np.ndarray, truth: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = ROI
    return np.abs(strain - truth)[y0:y1, x0:x1]


def test_strain_covers_the_display_range(scene):
    _, strain = scene
    x0, y0, x1, y1 = ROI
    s = strain[y0:y1, x0:x1]
    assert s.min() == 0.0 and s.max() == 1.0  # clipped at both ends, as scanners display


@pytest.mark.parametrize("colormap", sorted(COLORMAPS))
@pytest.mark.parametrize("alpha", [0.4, 0.6, 1.0])
def test_round_trip_named_map_with_the_bmode(scene, colormap, alpha):
    bmode, strain = scene
    emode = render_emode(bmode, strain, ROI, colormap=colormap, alpha=alpha)
    # The opacity is not given: fitted for a colour map, read from the speckle for a grey one.
    inv = invert_emode(emode, ROI, colormap, bmode=bmode)
    err = roi_error(inv.strain, strain)
    assert err.max() < TOLERANCE, f"max error {err.max():.4f}"
    assert inv.alpha == pytest.approx(alpha, abs=0.005)
    assert inv.poor_fraction == 0.0 and inv.bmode_source == "given"
    x0, y0, x1, y1 = ROI
    outside = np.ones((H, W), bool)
    outside[y0:y1, x0:x1] = False
    assert np.isnan(inv.strain[outside]).all() and not np.isnan(inv.strain[~outside]).any()


@pytest.mark.parametrize("alpha", [0.4, 0.55, 0.8])
def test_round_trip_colour_map_estimating_the_bmode(scene, alpha):
    """Without the B-mode: the grey it adds has no chroma, so the colour map still inverts."""
    bmode, strain = scene
    emode = render_emode(bmode, strain, ROI, colormap="hitachi", alpha=alpha)
    inv = invert_emode(emode, ROI, "hitachi")
    assert roi_error(inv.strain, strain).max() < TOLERANCE
    assert inv.alpha == pytest.approx(alpha, abs=0.005) and inv.bmode_source == "estimated"


@pytest.mark.parametrize("colormap", sorted(COLORMAPS))
def test_round_trip_map_read_from_the_colour_bar(scene, colormap):
    bmode, strain = scene
    alpha = 0.5
    emode = render_emode(bmode, strain, ROI, colormap=colormap, alpha=alpha)
    bar = find_colorbar(emode, exclude=ROI)
    assert bar == DisplayLayout(H, W).colorbar
    lut = colorbar_lut(emode, bar, soft_at="top")
    assert lut_distance(lut, get_colormap(colormap).lut()) < 0.01
    inv = invert_emode(emode, ROI, lut, bmode=bmode)
    err = roi_error(inv.strain, strain)
    assert err.max() < TOLERANCE, f"max error {err.max():.4f}"
    assert inv.poor_fraction == 0.0


def test_bar_polarity_is_the_callers_not_a_guess(scene):
    bmode, strain = scene
    emode = render_emode(bmode, strain, ROI, colormap="hitachi")
    bar = find_colorbar(emode, exclude=ROI)
    top = colorbar_lut(emode, bar, soft_at="top")
    bottom = colorbar_lut(emode, bar, soft_at="bottom")
    np.testing.assert_allclose(bottom, top[::-1])
    assert lut_distance(top, get_colormap("hitachi").lut()) < 0.01
    assert lut_distance(bottom, get_colormap("hitachi").lut()) > 0.3


def test_no_colour_bar_in_a_plain_bmode_or_a_smooth_opaque_roi(scene):
    bmode, strain = scene
    grey = np.repeat(bmode[..., None], 3, axis=-1)
    assert find_colorbar(grey) is None
    # Opaque grey strain, smooth from column to column, and no bar drawn: nothing found.
    emode = render_emode(bmode, strain, ROI, colormap="grey-white-soft", alpha=1.0, colorbar=False)
    assert find_colorbar(emode) is None


@pytest.mark.parametrize("colormap", ["grey-white-soft", "grey-black-soft"])
def test_grey_opacity_from_the_speckle_showing_through(colormap):
    """Across sizes and scenes the speckle gives α to within 0.005 (strain error < 1 %)."""
    for h, w, seed in ((96, 128, 0), (96, 128, 4), (120, 160, 5)):
        bmode, strain = bmode_image(h, w, seed), strain_image(h, w, seed)
        roi = standard_roi(h, w)
        for alpha in (0.3, 0.7, 1.0):
            emode = render_emode(bmode, strain, roi, colormap=colormap, alpha=alpha)
            assert estimate_grey_alpha(emode, bmode, roi) == pytest.approx(alpha, abs=0.005)
    flat = np.full((h, w), 100, np.uint8)  # nothing shows through a flat B-mode
    with pytest.raises(ValueError, match="no speckle"):
        estimate_grey_alpha(render_emode(flat, strain, roi, colormap=colormap, alpha=0.5), flat, roi)


def test_poor_matches_are_reported(scene):
    bmode, strain = scene
    emode = render_emode(bmode, strain, ROI, colormap="hitachi", alpha=0.5)
    # A scanner draws a white ROI outline and a caliper cross over the colours.
    img = Image.fromarray(emode)
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = ROI
    draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=(255, 255, 255))
    draw.line((60, 40, 70, 40), fill=(255, 255, 255))
    marked = np.asarray(img)
    inv = invert_emode(marked, ROI, "hitachi", bmode=bmode, alpha=0.5)
    changed = (marked != emode).any(axis=-1)[y0:y1, x0:x1]
    assert inv.poor_match[y0:y1, x0:x1][changed].mean() > 0.9
    assert inv.poor_fraction == pytest.approx(changed.mean(), abs=0.01)
    assert roi_error(inv.strain, strain)[~changed].max() < TOLERANCE
    # The wrong map: a Hitachi elastogram read as a grey map matches almost nowhere.
    wrong = invert_emode(emode, ROI, "grey-white-soft", bmode=bmode, alpha=0.5)
    assert wrong.poor_fraction > 0.5


def test_roi_detection(scene):
    bmode, strain = scene
    colour = render_emode(bmode, strain, ROI, colormap="hitachi", alpha=0.4)
    assert detect_roi(colour) == ROI  # by saturation; the colour bar is a smaller block
    grey = render_emode(bmode, strain, ROI, colormap="grey-black-soft", alpha=1.0)
    assert detect_roi(grey, bmode=bmode) == ROI  # by difference from the B-mode
    assert detect_roi(np.repeat(bmode[..., None], 3, axis=-1)) is None


def test_grey_maps_need_the_bmode_unless_opaque(scene):
    bmode, strain = scene
    emode = render_emode(bmode, strain, ROI, colormap="grey-white-soft", alpha=0.5)
    with pytest.raises(ValueError, match="without the B-mode"):
        invert_emode(emode, ROI, "grey-white-soft")
    with pytest.raises(ValueError, match="without the B-mode"):
        invert_emode(emode, ROI, "grey-white-soft", alpha=0.5)
    opaque = render_emode(bmode, strain, ROI, colormap="grey-white-soft", alpha=1.0)
    inv = invert_emode(opaque, ROI, "grey-white-soft", alpha=1.0)
    assert roi_error(inv.strain, strain).max() < TOLERANCE


def test_bad_arguments(scene):
    bmode, strain = scene
    emode = render_emode(bmode, strain, ROI)
    with pytest.raises(ValueError, match="not inside"):
        invert_emode(emode, (0, 0, W + 1, 10), "hitachi")
    with pytest.raises(ValueError, match="alpha must be in"):
        invert_emode(emode, ROI, "hitachi", alpha=1.5)
    with pytest.raises(ValueError, match="B-mode of the E-mode's size"):
        invert_emode(emode, ROI, "hitachi", bmode=bmode[:10])
    with pytest.raises(ValueError, match=r"an \(n, 3\) LUT"):
        invert_emode(emode, ROI, np.zeros((5, 4)))
    from elastogan.errors import UserError

    with pytest.raises(UserError, match="unknown colour map 'jet'"):
        invert_emode(emode, ROI, "jet")


def test_docstring_examples():
    import doctest

    import elastogan.data.colormap_inversion
    import elastogan.data.dicom

    for module in (elastogan.data.colormap_inversion, elastogan.data.dicom):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
