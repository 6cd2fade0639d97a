"""A real browser on the reading designs' own screens: the ``paired-sessions`` washout.

A reader who has answered every session-1 reading signs in and sees that session 1 is complete
and the date and time session 2 opens (last session-1 answer + the washout, in UTC), with no
image on the page, no question to answer and the Save button disabled. The study's clock is the
database: moving the reader's session-1 answers back past the washout (what the days of waiting
would do) and pressing "Reload current image" opens session 2 in the same tab.

Playwright's Python package drives Debian's chromium (``executable_path``); ``playwright
install`` is never run. Skipped, saying why, without chromium (failed with
``ELASTOGAN_REQUIRE_BROWSER=1``, as ``make test`` sets).
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from app_support import CHROMIUM, CHROMIUM_ARGS, N_TEST_CASES, PASSWORD, Server, build, copy_study  # noqa: E402

if not CHROMIUM.is_file() and os.environ.get("ELASTOGAN_REQUIRE_BROWSER") == "1":
    pytest.fail(f"{CHROMIUM} missing, and ELASTOGAN_REQUIRE_BROWSER=1: `make browser` installs it", pytrace=False)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} missing: `make browser` installs it")]

TIMEOUT_MS = 60_000
VIEWPORT = {"width": 1280, "height": 900}
WASHOUT_DAYS = 14
DAY_S = 86400.0


def _answer_session_one(study: Path, reader: str) -> float:
    """Answer every session-1 reading of ``reader`` now (the real clock); returns the last answer's time."""
    from elastogan.app.reading import reader_view, submit_answer

    answered = 0
    while (v := reader_view(study, reader)).opens is None:
        assert v.token is not None, "the reading ended before the washout"
        submit_answer(study, reader, v.token, "real", "3", "4a")
        answered += 1
    assert answered == N_TEST_CASES
    with sqlite3.connect(study / "study.sqlite") as con:
        return con.execute("SELECT MAX(answered) FROM answers WHERE reader = ?", (reader,)).fetchone()[0]


@pytest.fixture(scope="module")
def waiting(tmp_path_factory):
    """A live paired-sessions study (washout 14 days) whose reader r0 has finished session 1."""
    built = build(tmp_path_factory.getbasetemp() / "app")
    tmp = tmp_path_factory.mktemp("paired-browser")
    study = copy_study(built, tmp / "study", readers=1, design="paired-sessions", washout_days=WASHOUT_DAYS)
    last = _answer_session_one(study, "r0")
    server = Server(built.checkpoint, study, tmp).start()
    yield server, last
    server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_a_reader_between_sessions_sees_when_session_two_opens_and_cannot_read(browser, waiting, tmp_path):
    from playwright.sync_api import expect

    server, last = waiting
    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server.url)
    page.get_by_label("username").fill("r0")
    page.get_by_label("password").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    expect(page.get_by_text("Signed in as r0")).to_be_visible()

    opens = dt.datetime.fromtimestamp(last + WASHOUT_DAYS * DAY_S, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    progress = page.locator("#reader-progress")
    expect(progress).to_contain_text(f"Session 1 complete: {N_TEST_CASES} of {2 * N_TEST_CASES} readings answered.")
    expect(progress).to_contain_text(f"Session 2 opens on {opens}")
    # Nothing to read or answer while waiting: no image, no question, Save disabled.
    expect(page.locator(".study-image img")).to_have_count(0)
    for question in ("#judged", "#tsukuba", "#birads"):
        expect(page.locator(question)).to_be_hidden()
    expect(page.locator("#save")).to_be_disabled()
    page.screenshot(path=str(tmp_path / "washout.png"))
    assert (tmp_path / "washout.png").stat().st_size > 10_000

    # The washout passes (the answers are moved back past it) and the same tab reloads the screen.
    with sqlite3.connect(server.study / "study.sqlite") as con:
        con.execute("UPDATE answers SET answered = answered - ?, served = served - ? WHERE reader = 'r0'",
                    ((WASHOUT_DAYS + 1) * DAY_S, (WASHOUT_DAYS + 1) * DAY_S))
    page.get_by_role("button", name="Reload current image").click()
    expect(progress).to_contain_text(f"Image {N_TEST_CASES + 1} of {2 * N_TEST_CASES} · {N_TEST_CASES} answered")
    expect(page.locator(".study-image img")).to_have_count(2)
    expect(page.locator("#judged")).to_be_visible()
    expect(page.locator("#save")).to_be_enabled()
    ctx.close()
