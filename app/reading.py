"""The reader and lead handlers, as plain functions of (study, user, inputs).

Whatever a reader can receive comes out of ``reader_view``: the current view's token (random,
per reader and reading: it names nothing), the B-mode and elastogram pixels (arrays, never the
study's files: the page writes them itself, each under its own random URL), and the reader's
own progress. Nothing in it depends on which kind the image is except its pixels. An answer
is stored only with the token of the reader's current view. The role is checked here, server
side, on every call: hiding a tab in the page is no access control.

Designs (``elastogan.app.designs``): ``staged`` shows a reading twice — the B-mode alone
(BI-RADS only), then with the elastogram; ``paired-sessions`` opens session 2 only after the
washout has passed since the reader's last session-1 answer. ``now`` (seconds since the epoch)
is the clock: tests pass their own.
"""

from __future__ import annotations

import datetime as dt
import io
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from elastogan.app import study_db
from elastogan.app.accounts import role_of
from elastogan.app.study_db import STAGE_BMODE, STAGE_FULL, StudyError

FINAL = "Answers are final: once saved, an answer cannot be changed."


@dataclass(frozen=True)
class ReaderView:
    """One screen of the reading.

    Attributes:
        token: the view's token (None when nothing is to be answered now).
        bmode: H×W×3 uint8 grey B-mode of the reading's case.
        elastogram: H×W×3 uint8, the image to judge (None at the B-mode-alone stage).
        stage: ``STAGE_BMODE`` (B-mode alone: BI-RADS only) or ``STAGE_FULL``.
        position: 1-based position of the reading in the reader's list.
        answered: readings answered so far; ``total``: in the list.
        message: a line for the page.
        opens: when session 2 opens (seconds since the epoch), while the reader waits for it.
    """

    token: str | None
    bmode: np.ndarray | None
    elastogram: np.ndarray | None
    stage: int
    position: int
    answered: int
    total: int
    message: str
    opens: float | None = None

    @property
    def image(self) -> str | None:
        """The token of the view on screen (the page calls it the image)."""
        return self.token

    @property
    def progress_text(self) -> str:
        if self.opens is not None:
            when = dt.datetime.fromtimestamp(self.opens, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            return (f"Session 1 complete: {self.answered} of {self.total} readings answered. "
                    f"Session 2 opens on {when} (the washout between the two sessions).")
        if self.token is None:
            return f"Reading complete: {self.answered} of {self.total} images answered. Thank you."
        stage = " · step 1 of 2: B-mode alone" if self.stage == STAGE_BMODE else ""
        return f"Image {self.position} of {self.total} · {self.answered} answered{stage}"


def _pixels(study: Path, image_id: str) -> np.ndarray:
    """An image's pixels as H×W×3 uint8 (never the file: its bytes, name and chunks stay here)."""
    with Image.open(study / study_db.IMAGES_DIR / f"{image_id}.png") as img:
        return np.asarray(img.convert("RGB")).copy()


def require_role(study: str | Path, user: str | None, role: str) -> str:
    """``user`` if it has ``role`` in the study; else ``StudyError``."""
    if role_of(study, user) != role:
        raise StudyError(f"this account is not a study {role}")
    return user  # type: ignore[return-value]


def _session_opens(con, reader: str, washout_days: float) -> float | None:
    last = con.execute("SELECT MAX(a.answered) FROM answers a JOIN reading_order o"
                       " ON o.reader = a.reader AND o.position = a.position WHERE a.reader = ? AND o.session = 1",
                       (reader,)).fetchone()[0]
    return None if last is None else last + washout_days * 86400.0


def reader_view(study: str | Path, user: str | None, message: str = "", *, now: float | None = None) -> ReaderView:
    """The reader's current screen: their first unanswered reading, the washout, or the end."""
    study = Path(study)
    now = time.time() if now is None else now
    reader = require_role(study, user, "reader")
    with study_db.connect(study) as con:
        d = study_db.design(con)
        reading = study_db.next_reading(con, reader)
        prog = study_db.progress(con, reader)
        if reading is None:
            return ReaderView(None, None, None, STAGE_FULL, prog.total, prog.answered, prog.total, message)
        if reading.session == 2 and d.washout_days > 0:
            opens = _session_opens(con, reader, d.washout_days)
            if opens is not None and now < opens:
                return ReaderView(None, None, None, STAGE_FULL, reading.position + 1, prog.answered, prog.total,
                                  message, opens=opens)
        staged_first = d.name == "staged" and study_db.bmode_answer(con, reader, reading.position) is None
        stage = STAGE_BMODE if staged_first else STAGE_FULL
        token, _ = study_db.view(con, reader, reading.position, stage, now)
        bmode_id = con.execute("SELECT c.bmode FROM images i JOIN cases c ON c.case_id = i.case_id WHERE i.image = ?",
                               (reading.image,)).fetchone()[0]
    elastogram = None if stage == STAGE_BMODE else _pixels(study, reading.image)
    return ReaderView(token, _pixels(study, bmode_id), elastogram, stage, reading.position + 1, prog.answered,
                      prog.total, message)


def submit_answer(study: str | Path, user: str | None, token: str | None, judged: str | None,
                  tsukuba: str | None, birads: str | None, confidence: float | None = None, *,
                  now: float | None = None) -> ReaderView:
    """Store the answer for the view ``token`` at once (exactly once) and return the next screen.

    At the B-mode-alone stage only ``birads`` (and ``confidence``) count. A missing choice
    returns the same screen with a message; a second answer for a reading already answered
    stores nothing and moves on.

    Raises:
        StudyError: ``token`` is not the view on this reader's screen, or a value is not one of
            the choices.
    """
    study = Path(study)
    reader = require_role(study, user, "reader")
    if not token:
        return reader_view(study, reader, "Nothing to answer: the page was out of date and has been refreshed.", now=now)
    with study_db.connect(study) as con:
        found = study_db.view_of_token(con, reader, str(token))
    if found is None:
        raise StudyError("that is not the image on your screen")
    stage = found[1]
    asked = (("BI-RADS category", birads),) if stage == STAGE_BMODE else (
        ("real or synthetic", judged), ("Tsukuba score", tsukuba), ("BI-RADS category", birads))
    missing = [n for n, v in asked if not v]
    if missing:
        return reader_view(study, reader, f"Please choose: {', '.join(missing)}.", now=now)
    with study_db.connect(study) as con:
        if stage == STAGE_BMODE:
            stored = study_db.store_bmode_answer(con, reader, str(token), birads, confidence, now=now)
            saved = "Saved (final): BI-RADS on the B-mode alone. Now the elastogram: answer again with it."
        else:
            stored = study_db.store_answer(con, reader, str(token), judged, tsukuba, birads, confidence, now=now)
            saved = "Saved (final): your answer is stored. Here is the next image."
    return reader_view(study, reader, saved if stored else "That image was already answered; here is the next one.",
                       now=now)


def lead_progress(study: str | Path, user: str | None) -> list[list]:
    """Rows ``[reader, group, answered, total, percent, last answer (UTC)]`` for a lead."""
    require_role(study, user, "lead")
    with study_db.connect(study) as con:
        rows = study_db.all_progress(con)
    out = []
    for p in rows:
        last = "" if p.last_answer is None else dt.datetime.fromtimestamp(p.last_answer, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        out.append([p.reader, p.group or "", p.answered, p.total, round(100 * p.answered / max(p.total, 1), 1), last])
    return out


def lead_export_zip(study: str | Path, user: str | None) -> bytes:
    """The files of ``elastogan study export`` in one zip (bytes: it is handed out by the app
    itself, never through Gradio's cache), for a lead."""
    from elastogan.app.study_export import export_tables

    require_role(study, user, "lead")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in export_tables(study).items():
            z.writestr(name, text)
    return buf.getvalue()
