"""A real browser on the live app: Playwright's Python package driving Debian's chromium.

A reader logs in, answers three images, reloads and resumes; the lead previews an upload
(B-mode and real E-mode), sees the reader's progress and downloads the export. A screenshot
of each tab is taken into the test's temporary folder and checked (a PNG of the page's size
with something drawn on it).

``ELASTOGAN_UPDATE_DOCS=1`` also copies the screenshots to ``docs/app_reader.png``,
``docs/app_preview.png`` and ``docs/app_lead.png`` (the README's pictures), e.g.
``ELASTOGAN_UPDATE_DOCS=1 pytest tests/test_app_browser.py``; without it a test run leaves the
tracked files alone.

``make test`` installs chromium (``make browser``) and sets ``ELASTOGAN_REQUIRE_BROWSER=1``, so
there a missing chromium fails these tests instead of skipping them; a bare ``pytest`` on a
machine without chromium skips them, saying why. ``playwright install`` is never run.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from app_support import CHROMIUM, CHROMIUM_ARGS, LEAD, N_TEST_CASES, PASSWORD, REPO, build, shared_server  # noqa: E402

if not CHROMIUM.is_file() and os.environ.get("ELASTOGAN_REQUIRE_BROWSER") == "1":
    pytest.fail(f"{CHROMIUM} missing, and ELASTOGAN_REQUIRE_BROWSER=1: `make browser` installs it", pytrace=False)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} missing: `make browser` installs it")]

DOCS = REPO / "docs"
UPDATE_DOCS = os.environ.get("ELASTOGAN_UPDATE_DOCS") == "1"
TIMEOUT_MS = 60_000
VIEWPORT = {"width": 1280, "height": 900}


def screenshot(page, folder: Path, name: str, *, full_page: bool = False) -> Path:
    """Take ``name`` into ``folder``, check it, and copy it to docs/ with ELASTOGAN_UPDATE_DOCS=1."""
    path = folder / name
    page.screenshot(path=str(path), full_page=full_page)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, (name, len(data))
    with Image.open(path) as im:
        w, h = im.size
        assert w == VIEWPORT["width"] and (h == VIEWPORT["height"] if not full_page else h >= VIEWPORT["height"])
        assert len(im.convert("RGB").getcolors(1 << 24)) > 50  # a page, not a blank canvas
    if UPDATE_DOCS:
        shutil.copyfile(path, DOCS / name)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    return shared_server(tmp_path_factory.getbasetemp() / "app")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def sign_in(browser, url: str, name: str):
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.get_by_label("username").fill(name)
    page.get_by_label("password").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    expect(page.get_by_text(f"Signed in as {name}")).to_be_visible()
    return page


def test_reader_answers_three_images_reloads_and_resumes(browser, server, tmp_path):
    from playwright.sync_api import expect

    page = sign_in(browser, server.url, "r3")
    progress = page.locator("#reader-progress")
    expect(progress).to_contain_text(f"Image 1 of {2 * N_TEST_CASES} · 0 answered")
    assert page.get_by_role("tab").all_inner_texts() == ["Reader study"]  # no Preview for readers
    for k in range(3):
        page.locator("#judged").get_by_label("Synthetic" if k % 2 else "Real", exact=True).check()
        page.locator("#tsukuba").get_by_label(str(k + 2), exact=True).check()
        page.locator("#birads").get_by_label(("3", "4a", "4b")[k], exact=True).check()
        page.get_by_role("button", name="Save answer and show next image").click()
        expect(progress).to_contain_text(f"{k + 1} answered")
        expect(page.locator("#reader-message")).to_contain_text("Saved.")
    # An incomplete answer is refused in the page, stores nothing and keeps what was chosen.
    real = page.locator("#judged").get_by_label("Real", exact=True)
    real.check()
    page.get_by_role("button", name="Save answer and show next image").click()
    expect(page.locator("#reader-message")).to_contain_text("Please choose: Tsukuba score, BI-RADS category")
    expect(real).to_be_checked()
    expect(progress).to_contain_text("3 answered")
    page.reload()
    expect(progress).to_contain_text(f"Image 4 of {2 * N_TEST_CASES} · 3 answered")
    expect(page.locator(".frame img")).to_have_count(2)
    page.wait_for_timeout(300)
    screenshot(page, tmp_path, "app_reader.png")
    page.context.close()


def test_lead_previews_an_upload_sees_progress_and_downloads_the_export(browser, server, tmp_path):
    from playwright.sync_api import expect

    manifest = build(server.study.parent.parent).manifest
    case = json.loads(manifest.read_text().splitlines()[-1])
    page = sign_in(browser, server.url, LEAD)
    assert page.get_by_role("tab").all_inner_texts() == ["Preview", "Study lead"]
    # Preview: a B-mode and its real E-mode, a lesion box.
    page.get_by_role("tab", name="Preview").click()
    page.locator("#bmode-upload input[type=file]").set_input_files(str(manifest.parent / case["bmode"]))
    page.locator("#real-upload input[type=file]").set_input_files(str(manifest.parent / case["emode"]))
    ys, xs = np.nonzero(np.asarray(Image.open(manifest.parent / case["lesion"])))
    page.locator("#lesion-box textarea, #lesion-box input").first.fill(f"{xs.min()}, {ys.min()}, {xs.max() + 1}, {ys.max() + 1}")
    page.get_by_role("button", name="Make synthetic elastogram").click()
    message = page.locator("#preview-message")
    expect(message).to_contain_text("Strain ratio")
    expect(message).to_contain_text("NCC real vs synthetic")
    for ext in ("png", "dcm"):
        expect(page.get_by_role("cell", name=re.compile(rf"_SYNTHETIC_emode\s*\.{ext}"))).to_be_visible()
    page.wait_for_timeout(500)
    screenshot(page, tmp_path, "app_preview.png", full_page=True)
    # A non-image upload gets a message in the page; the page keeps working.
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    page.locator("#real-upload button[aria-label='Clear'], #real-upload button[title='Clear']").first.click()
    page.locator("#bmode-upload button[aria-label='Clear'], #bmode-upload button[title='Clear']").first.click()
    page.locator("#bmode-upload input[type=file]").set_input_files(str(junk))
    page.get_by_role("button", name="Make synthetic elastogram").click()
    expect(message).to_contain_text("cannot be used")
    # Study lead: progress and the export download.
    page.get_by_role("tab", name="Study lead").click()
    page.get_by_role("button", name="Refresh progress").click()
    expect(page.locator("#progress-table")).to_contain_text("r3")
    page.get_by_role("button", name="Export answers").click()
    link = page.locator("#export-file a").first
    expect(link).to_be_visible()
    with page.expect_download() as download:
        link.click()
    data = Path(download.value.path()).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert sorted(z.namelist()) == ["answers.csv", "per_case.csv", "ratings.csv", "scores.csv"]
        answers = z.read("answers.csv").decode().splitlines()
    assert len([a for a in answers if a.startswith("r3,")]) == 3
    page.wait_for_timeout(300)
    screenshot(page, tmp_path, "app_lead.png", full_page=True)
    page.context.close()
