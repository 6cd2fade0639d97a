"""A real browser on the live app: Playwright's Python package driving Debian's chromium.

A reader logs in, answers three images (seeing them ≥ 400 px across, the "answers are final"
line and the confirmation), reloads and resumes; "Log out" stays in its tab, and a stale tab
keeps the answer and asks to sign in again; a locked name is told so on the login page; the
lead previews an upload (B-mode and real E-mode; the SYNTHETIC download, no Share button),
sees the reader's progress and downloads the export. A screenshot
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
import sqlite3
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


def sign_in(browser, url: str, name: str, page=None):
    """Sign ``name`` in (in a new context, or on ``page``, which shows the login form)."""
    from playwright.sync_api import expect

    if page is None:
        ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        page = ctx.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
    page.get_by_label("username").fill(name)
    page.get_by_label("password").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    expect(page.get_by_text(f"Signed in as {name}")).to_be_visible()
    return page


def choose(page, judged: str, tsukuba: str, birads: str) -> None:
    page.locator("#judged").get_by_label(judged, exact=True).check()
    page.locator("#tsukuba").get_by_label(tsukuba, exact=True).check()
    page.locator("#birads").get_by_label(birads, exact=True).check()


SAVE = "Save answer and show next image"


def test_reader_answers_three_images_reloads_and_resumes(browser, server, tmp_path):
    from playwright.sync_api import expect

    page = sign_in(browser, server.url, "r3")
    progress = page.locator("#reader-progress")
    expect(progress).to_contain_text(f"Image 1 of {N_TEST_CASES} · 0 answered")
    assert page.get_by_role("tab").all_inner_texts() == ["Reader study"]  # no Preview for readers
    expect(page.get_by_text("Answers are final: once saved, an answer cannot be changed.")).to_be_visible()
    expect(page.locator("#bar-legend")).to_contain_text("SOFT at the top, HARD at the bottom")
    # The images at display size: at least 400 px across (128² frames scaled ×4, pixel replication).
    for frame in ("#reader-bmode img", "#reader-elastogram img"):
        expect(page.locator(frame)).to_be_visible()
        box = page.locator(frame).bounding_box()
        assert box["width"] >= 400 and box["height"] >= 400, (frame, box)
        assert page.locator(frame).evaluate("img => img.naturalWidth") == 512
    for k in range(3):
        choose(page, "Synthetic" if k % 2 else "Real", str(k + 2), ("3", "4a", "4b")[k])
        page.locator("#confidence input").fill(str(10 * (k + 1)))
        page.get_by_role("button", name=SAVE).click()
        expect(progress).to_contain_text(f"{k + 1} answered")
        expect(page.locator("#reader-message")).to_contain_text("Saved (final)")  # the visible confirmation
    # An incomplete answer is refused in the page, stores nothing and keeps what was chosen.
    real = page.locator("#judged").get_by_label("Real", exact=True)
    real.check()
    page.get_by_role("button", name=SAVE).click()
    expect(page.locator("#reader-message")).to_contain_text("Please choose: Tsukuba score, BI-RADS category")
    expect(real).to_be_checked()
    expect(progress).to_contain_text("3 answered")
    page.reload()
    expect(progress).to_contain_text(f"Image 4 of {N_TEST_CASES} · 3 answered")
    expect(page.locator(".study-image img")).to_have_count(2)
    page.wait_for_timeout(300)
    screenshot(page, tmp_path, "app_reader.png")
    page.context.close()


def test_logout_in_the_same_tab_and_a_stale_tab_keeps_the_answer(browser, server):
    from playwright.sync_api import expect

    page = sign_in(browser, server.url, "r0")
    progress = page.locator("#reader-progress")
    expect(progress).to_contain_text("0 answered")
    other = page.context.new_page()  # a second tab of the same browser, signed in by the same cookie
    other.set_default_timeout(TIMEOUT_MS)
    other.goto(server.url)
    expect(other.get_by_text("Signed in as r0")).to_be_visible()
    other.get_by_role("button", name="Log out").click()
    expect(other.get_by_label("username")).to_be_visible()  # the login form, in the same tab
    assert len(page.context.pages) == 2
    # The first tab is stale now: Save says so and keeps the answer.
    choose(page, "Synthetic", "4", "4c")
    page.get_by_role("button", name=SAVE).click()
    expect(page.locator("#reader-message")).to_contain_text("Your session has ended")
    expect(page.locator("#reader-message")).to_contain_text("sign in again")
    expect(progress).to_contain_text("0 answered")
    # Signing in again fills the kept answer in for the same image; Save stores it.
    page.reload()
    sign_in(browser, server.url, "r0", page=page)
    expect(page.locator("#reader-message")).to_contain_text("filled in")
    expect(page.locator("#judged").get_by_label("Synthetic", exact=True)).to_be_checked()
    expect(page.locator("#tsukuba").get_by_label("4", exact=True)).to_be_checked()
    expect(page.locator("#birads").get_by_label("4c", exact=True)).to_be_checked()
    page.get_by_role("button", name=SAVE).click()
    expect(progress).to_contain_text("1 answered")
    with sqlite3.connect(server.study / "study.sqlite") as con:
        assert con.execute("SELECT judged, tsukuba, birads FROM answers WHERE reader = 'r0'").fetchall() == [
            ("synthetic", "4", "4c")]
    page.context.close()


def test_a_locked_name_is_told_so_on_the_login_page(browser, server):
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server.url)
    for k in range(11):
        page.get_by_label("username").fill("ghost")
        page.get_by_label("password").fill("wrong-password")
        with page.expect_response(lambda r: r.url.rstrip("/").endswith("/login")) as response:
            page.get_by_role("button", name="Login").click()
        assert response.value.status == (400 if k < 10 else 200), k
        if k < 10:
            expect(page.get_by_text("Incorrect Credentials")).to_be_visible()
    expect(page.get_by_text("is locked after too many wrong passwords")).to_be_visible()
    expect(page.get_by_text("elastogan study unlock")).to_be_visible()
    ctx.close()


def test_lead_previews_an_upload_sees_progress_and_downloads_the_export(browser, server, tmp_path):
    from playwright.sync_api import expect

    manifest = build(server.study.parent.parent).manifest
    case = json.loads(manifest.read_text().splitlines()[-1])
    page = sign_in(browser, server.url, LEAD)
    expect(page.get_by_role("tab", name="Study lead")).to_be_visible()  # the page has rendered its tabs
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
    expect(page.locator("#slider-caption")).to_contain_text("SYNTHETIC")
    assert page.get_by_role("button", name=re.compile("share", re.I)).count() == 0  # no Share button anywhere
    # The synthetic panel's own download saves the labelled file, named SYNTHETIC.
    synth = page.locator("#synthetic-frame")
    synth.hover()
    with page.expect_download() as download:
        synth.get_by_role("button", name=re.compile("download", re.I)).first.click()
    assert "SYNTHETIC" in download.value.suggested_filename
    assert "SYNTHETIC" in Image.open(download.value.path()).info["Description"]
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
    assert download.value.suggested_filename == "elastogan_study_export.zip"
    data = Path(download.value.path()).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert sorted(z.namelist()) == ["answers.csv", "per_case.csv", "ratings.csv", "ratings_confidence.csv",
                                        "readings.csv", "scores.csv"]
        answers = z.read("answers.csv").decode().splitlines()
    assert len([a for a in answers if a.startswith("r3,")]) == 3
    page.wait_for_timeout(300)
    screenshot(page, tmp_path, "app_lead.png", full_page=True)
    page.context.close()
