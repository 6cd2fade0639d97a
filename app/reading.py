"""The reader and lead handlers, as plain functions of (study, user, inputs).

Whatever a reader can receive comes out of ``reader_view``: the current image's opaque id, its
B-mode and elastogram pixels (arrays, never the study's files: the page encodes them itself,
with no metadata, the elastogram by :func:`~elastogan.app.reader_png.fixed_size_png`), and the
reader's own progress. Nothing in it depends on which kind the image is except its pixels.
The role is checked here, server side, on every call: hiding a tab in the page is no access
control.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from elastogan.app import study_db
from elastogan.app.accounts import role_of
from elastogan.app.study_db import StudyError


@dataclass(frozen=True)
class ReaderView:
    """One screen of the reading.

    Attributes:
        image: opaque id of the image on screen (None when the reading is complete).
        bmode: H×W×3 uint8 grey B-mode of that image's case.
        elastogram: H×W×3 uint8, the image to judge.
        position: 1-based position of that image in the reader's list.
        answered: images answered so far; ``total``: in the list.
        message: a line for the page.
    """

    image: str | None
    bmode: np.ndarray | None
    elastogram: np.ndarray | None
    position: int
    answered: int
    total: int
    message: str

    @property
    def progress_text(self) -> str:
        if self.image is None:
            return f"Reading complete: {self.answered} of {self.total} images answered. Thank you."
        return f"Image {self.position} of {self.total} · {self.answered} answered"


def _pixels(study: Path, image_id: str) -> np.ndarray:
    """An image's pixels as H×W×3 uint8 (never the file: its bytes, name and chunks stay here)."""
    with Image.open(study / study_db.IMAGES_DIR / f"{image_id}.png") as img:
        return np.asarray(img.convert("RGB")).copy()


def require_role(study: str | Path, user: str | None, role: str) -> str:
    """``user`` if it has ``role`` in the study; else ``StudyError``."""
    if role_of(study, user) != role:
        raise StudyError(f"this account is not a study {role}")
    return user  # type: ignore[return-value]


def reader_view(study: str | Path, user: str | None, message: str = "") -> ReaderView:
    """The reader's current screen: their first unanswered image, or the end of the reading."""
    study = Path(study)
    reader = require_role(study, user, "reader")
    with study_db.connect(study) as con:
        nxt = study_db.next_image(con, reader)
        prog = study_db.progress(con, reader)
        bmode_id = None
        if nxt is not None:
            bmode_id = con.execute("SELECT c.bmode FROM images i JOIN cases c ON c.case_id = i.case_id WHERE i.image = ?",
                                   (nxt[1],)).fetchone()[0]
    if nxt is None:
        return ReaderView(None, None, None, prog.total, prog.answered, prog.total, message)
    position, image = nxt
    return ReaderView(image, _pixels(study, bmode_id), _pixels(study, image), position + 1, prog.answered,
                      prog.total, message)


def submit_answer(study: str | Path, user: str | None, image: str | None, judged: str | None,
                  tsukuba: str | None, birads: str | None) -> ReaderView:
    """Store the answer for ``image`` at once (exactly once) and return the next screen.

    A missing choice returns the same screen with a message; a second answer for an image
    already answered stores nothing and moves on.
    """
    study = Path(study)
    reader = require_role(study, user, "reader")
    missing = [n for n, v in (("real or synthetic", judged), ("Tsukuba score", tsukuba), ("BI-RADS category", birads)) if not v]
    if not image:
        return reader_view(study, reader, "Nothing to answer: the page was out of date and has been refreshed.")
    if missing:
        return reader_view(study, reader, f"Please choose: {', '.join(missing)}.")
    with study_db.connect(study) as con:
        stored = study_db.store_answer(con, reader, str(image), str(judged), str(tsukuba), str(birads))
    return reader_view(study, reader, "Saved." if stored else "That image was already answered; here is the next one.")


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


def lead_export_zip(study: str | Path, user: str | None, out_dir: str | Path) -> Path:
    """The four CSVs of ``elastogan study export`` in one zip, for a lead."""
    from elastogan.app.study_export import export_tables

    require_role(study, user, "lead")
    out = Path(out_dir) / "elastogan_study_export.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in export_tables(study).items():
            z.writestr(name, text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buf.getvalue())
    return out
