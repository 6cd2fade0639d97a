"""The scanner's E-mode drawing."""

import numpy as np
import pytest

from elastogan.colormaps import COLORMAPS, get_colormap
from elastogan.display import DisplayLayout, blend, render_emode
from elastogan.errors import UserError


def test_blend_is_exact_inside_and_grey_outside():
    rng = np.random.default_rng(0)
    b = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    c = rng.uniform(0, 1, (20, 30, 3)).astype(np.float32)
    out = blend(b, c, 0.4, (5, 3, 25, 15))
    inside = 0.6 * b[3:15, 5:25, None] / 255 + 0.4 * c[3:15, 5:25]
    # Within one grey level (float32 arithmetic in the renderer).
    np.testing.assert_allclose(out[3:15, 5:25], inside * 255, atol=0.51)
    np.testing.assert_array_equal(out[0], np.repeat(b[0, :, None], 3, axis=1))


def test_hitachi_polarity_and_colour_bar():
    cmap = get_colormap("hitachi")
    soft, hard = cmap.colorize(np.array([1.0, 0.0]))
    assert soft[0] > 0.9 and soft[2] < 0.1  # red = soft
    assert hard[2] > 0.9 and hard[0] < 0.1  # blue = hard
    b = np.full((128, 128), 100, np.uint8)
    img = render_emode(b, np.full((128, 128), 0.5, np.float32), (10, 10, 80, 100))
    x0, y0, x1, y1 = DisplayLayout(128, 128).colorbar
    top, bottom = img[y0 + 1, (x0 + x1) // 2], img[y1 - 2, (x0 + x1) // 2]
    assert top[0] > 200 and top[2] < 50 and bottom[2] > 200 and bottom[0] < 50
    assert DisplayLayout(128, 128).max_roi_x1 < x0


def test_every_named_map_is_monotone_in_luminance_or_hue_ends_differ():
    for cmap in COLORMAPS.values():
        lut = cmap.lut(64)
        assert not np.allclose(lut[0], lut[-1])


def test_unknown_map_and_bad_roi():
    with pytest.raises(UserError, match="known maps"):
        get_colormap("jet")
    with pytest.raises(ValueError, match="not inside"):
        render_emode(np.zeros((10, 10), np.uint8), np.zeros((10, 10)), (0, 0, 11, 5))


@pytest.mark.parametrize("shape", [(64, 64), (128, 128), (300, 417)])
def test_colorbar_mask_is_exactly_where_the_bar_and_its_labels_are_drawn(shape):
    from elastogan.display import colorbar_mask, draw_colorbar

    black, white = np.zeros((*shape, 3), np.uint8), np.full((*shape, 3), 255, np.uint8)
    drawn = (draw_colorbar(black, "hitachi") != black).any(-1) | (draw_colorbar(white, "hitachi") != white).any(-1)
    mask = colorbar_mask(*shape)
    np.testing.assert_array_equal(mask, drawn)
    if shape[0] == shape[1]:  # square frames: the labels reach into the ROI's range, hence the mask
        assert mask[:, : DisplayLayout(*shape).max_roi_x1].any()
