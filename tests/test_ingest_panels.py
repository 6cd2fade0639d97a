"""The panel finder (``elastogan.data.panels``) on its own: exact boxes where a screen repeats a
frame, no panels where a picture merely looks alike at some shift, text kept out."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from elastogan.data.colormap_inversion import find_colorbar
from elastogan.data.panels import find_blocks, find_twins, screen_background
from scanner_screens import ALOKA_PANELS, REAL_BAR, bmode_image, dual_screen, real_dual_screen


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


@pytest.mark.parametrize("emode_left", [False, True])
@pytest.mark.parametrize("size", [(64, 80), (96, 128), (144, 192)])
def test_twin_panels_are_found_exactly_on_lossless_screens(emode_left, size):
    s = dual_screen(h=size[0], w=size[1], seed=size[0], emode_left=emode_left)
    boxes = sorted([s.bmode_box, s.emode_box])
    assert list(find_twins(s.rgb)) == boxes


@pytest.mark.parametrize("gap", [0, 12])
def test_the_real_screens_panels_touching_or_apart(gap):
    """Aloka: the panels touch (x 336) in the real file; their top rows and the last columns
    of the left panel are black in both, so the found boxes may end a few lines short."""
    s = real_dual_screen(gap=gap)
    left, right = find_twins(s.rgb)
    (lx0, ly0, lx1, ly1), (rx0, _, rx1, _) = ALOKA_PANELS
    assert left[0] == lx0 and left[1] == ly0 and left[3] == ly1 and lx1 - 10 <= left[2] <= lx1
    assert right[0] - left[0] == rx0 + gap - lx0  # the shift between the two is exact


def test_jpeg_moves_a_twin_box_by_a_pixel_at_most():
    s = dual_screen(h=144, w=192, seed=11)
    left, right = find_twins(jpeg(s.rgb, 95))
    assert all(abs(a - b) <= 1 for a, b in zip(left, s.bmode_box))
    assert right[0] - left[0] == s.emode_box[0] - s.bmode_box[0]


@pytest.mark.parametrize("kind", ["speckle", "low contrast", "one panel on a screen"])
def test_no_twins_where_nothing_repeats(kind):
    b = bmode_image(96, 240, 3)
    if kind == "low contrast":  # matches within the tolerance by chance at every shift
        b = (b // 8 + 100).astype(np.uint8)
    rgb = np.repeat(b[..., None], 3, axis=-1)
    if kind == "one panel on a screen":
        screen = np.zeros((140, 320, 3), np.uint8)
        screen[20:116, 40:280] = rgb
        rgb = screen
    assert find_twins(rgb) is None


def test_blocks_keep_a_touching_header_out_and_the_screen_background_is_read_from_its_edges():
    """The Aloka screen's navy header touches its panels; a line without texture ends them."""
    s = real_dual_screen()
    bg = [tuple(c) for c in screen_background(s.rgb)]
    assert bg == [(0, 0, 0), (40, 45, 65)]
    rgb = s.rgb.copy()
    x0, y0, x1, y1 = ALOKA_PANELS[0]
    rgb[y0:y1, x0:x1] = 0  # the elastogram's panel alone on the screen
    (block,) = find_blocks(rgb, 2)
    rx0, ry0, rx1, ry1 = ALOKA_PANELS[1]
    assert ry0 - 1 <= block[1] and block[3] <= ry1 and rx0 <= block[0] and block[2] <= rx1
    assert not s.text_mask[block[1] : block[3], block[0] : block[2]].any()


@pytest.mark.parametrize("colormap", ["grey-white-soft", "grey-black-soft", "hitachi"])
def test_a_bar_whose_end_merges_with_dark_fluid_is_found_whole(colormap):
    s = real_dual_screen(colormap=colormap)
    assert find_colorbar(s.emode, exclude=s.roi) == REAL_BAR


@pytest.mark.parametrize("quality", [60, 75, 85])
def test_lossy_panels_stay_clear_of_text_a_few_lines_away(quality):
    """Text ends four lines above the panels: JPEG ringing may widen a box into those lines,
    never onto a line of text."""
    s = dual_screen(h=144, w=192, seed=2)
    boxes = find_twins(jpeg(s.rgb, quality))
    assert boxes is not None
    for (x0, y0, x1, y1), truth in zip(boxes, sorted([s.bmode_box, s.emode_box])):
        assert not s.text_mask[y0:y1, x0:x1].any()
        assert x0 == truth[0] and x1 == truth[2] and truth[1] - 4 <= y0 <= truth[1] and truth[3] <= y1 <= truth[3] + 4


@pytest.mark.parametrize("quality", [60, 75, 90])
def test_the_real_screens_jpeg_panels_hold_no_text(quality):
    s = real_dual_screen()
    for x0, y0, x1, y1 in find_twins(jpeg(s.rgb, quality)):
        assert not s.text_mask[y0:y1, x0:x1].any()
