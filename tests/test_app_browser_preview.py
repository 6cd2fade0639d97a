"""A real browser on the Preview (issue 14): a non-breast ultrasound DICOM gets the
out-of-distribution banner; two clicks on a phantom's B-mode set the lesion box and give its
strain ratio, EI/B and Tsukuba score (and the explanation layer, when ticked).

The server runs ``elastogan app`` with the shipped model (it carries the phantom-v1
fingerprint), Preview only. Playwright's Python package drives Debian's chromium
(``executable_path``; ``playwright install`` is never run).

``ELASTOGAN_UPDATE_DOCS=1`` also copies the two screenshots to ``docs/preview_ood.png`` and
``docs/preview_box.png`` (the README's pictures).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from app_support import Server  # noqa: E402
from test_app_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, VIEWPORT, screenshot  # noqa: E402

from elastogan.app.preview_trust import click_scale
from elastogan.cli import main
from elastogan.weights import DEFAULT_CHECKPOINT

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} missing: `make browser` installs it")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("preview-server")
    s = Server(DEFAULT_CHECKPOINT, None, tmp).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        ctx = b.new_context(viewport=VIEWPORT)
        pg = ctx.new_page()
        pg.set_default_timeout(TIMEOUT_MS)
        pg.goto(server.url)
        yield pg
        b.close()


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    assert main(["simulate", "--out", str(out), "--n", "1", "--seed", "11", "--simulator", "v2", "--no-progress"]) == 0
    case = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    return out / case["bmode"], out / case["lesion"]


def _upload(page, path: Path) -> None:
    page.locator("#bmode-upload input[type=file]").set_input_files(str(path))


def _click_frame_pixel(page, x: int, y: int, shape: tuple[int, int]) -> None:
    """Click the B-mode frame where its pixel (x, y) is drawn (the picture is scaled to fit)."""
    img = page.locator("#bmode-frame img")
    img.scroll_into_view_if_needed()
    box = img.bounding_box()
    h, w = shape
    s = min(box["width"] / w, box["height"] / h)
    left = box["x"] + (box["width"] - w * s) / 2
    top = box["y"] + (box["height"] - h * s) / 2
    page.mouse.click(left + (x + 0.5) * s, top + (y + 0.5) * s)


def test_a_non_breast_dicom_gets_the_banner(page, tmp_path):
    from playwright.sync_api import expect

    from elastogan.eval.measurements.ood_scores import pydicom_ultrasound_files

    (dicom,) = [f for f in pydicom_ultrasound_files() if f.name == "examples_ybr_color.dcm"]
    _upload(page, dicom)
    page.get_by_role("button", name="Make synthetic elastogram").click()
    banner = page.locator("#ood-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Unlike anything this model was trained on: the synthetic elastogram is not meaningful")
    expect(banner).to_contain_text(re.compile(r"OOD score \d+\.\d \(threshold \d+\.\d\); percentile 100"))
    expect(page.locator("#synthetic-frame img")).to_be_visible()  # the result is still shown (greyed)
    page.wait_for_timeout(500)
    screenshot(page, tmp_path, "preview_ood.png", full_page=True)


def test_two_clicks_on_the_b_mode_give_the_strain_ratio_for_that_box(page, phantom, tmp_path):
    from playwright.sync_api import expect

    bmode_file, lesion_file = phantom
    page.locator("#bmode-upload button[aria-label='Clear'], #bmode-upload button[title='Clear']").first.click()
    _upload(page, bmode_file)
    frame = page.locator("#bmode-frame img")
    expect(frame).to_be_visible()
    shape = np.asarray(Image.open(bmode_file)).shape[:2]
    assert frame.evaluate("img => img.naturalWidth") == shape[1] * click_scale(shape)
    ys, xs = np.nonzero(np.asarray(Image.open(lesion_file)))
    x0, y0, x1, y1 = int(xs.min()) - 2, int(ys.min()) - 2, int(xs.max()) + 2, int(ys.max()) + 2
    message = page.locator("#preview-message")
    page.locator("#explain").get_by_role("checkbox").check()  # and the explanation layer
    _click_frame_pixel(page, x0, y0, shape)
    expect(message).to_contain_text("First corner at x")
    _click_frame_pixel(page, x1, y1, shape)
    field = page.locator("#lesion-box textarea, #lesion-box input").first
    expect(field).to_have_value(re.compile(r"\d+, \d+, \d+, \d+"))
    # the clicked pixels, within the one screen pixel a mouse event rounds to (a frame pixel is < 1 on screen)
    got = [int(v) for v in field.input_value().split(",")]
    assert np.abs(np.array(got) - [x0, y0, x1 + 1, y1 + 1]).max() <= 1, got
    expect(message).to_contain_text(re.compile(r"Strain ratio \(reference / lesion\): synthetic \d+\.\d\d"),
                                    timeout=TIMEOUT_MS)
    expect(message).to_contain_text("EI/B")
    expect(message).to_contain_text("Explanation layer")
    expect(page.locator("#explain-frame img")).to_be_visible()
    expect(message).to_contain_text("Automatic Tsukuba score")
    expect(page.locator("#ood-ok")).to_contain_text("Like the training data")
    expect(page.locator("#ood-banner")).to_have_count(0)
    page.wait_for_timeout(500)
    screenshot(page, tmp_path, "preview_box.png", full_page=True)
