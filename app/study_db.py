"""The study database: SQLite (WAL), the only place that holds the truth and the answers.

A study folder holds ``study.sqlite`` and ``images/`` (opaque-named PNGs). The app never
serves the folder: image handlers read a PNG by its id and hand the pixels to the page, so
neither the database nor a file name is reachable over HTTP.

Every write is one transaction. ``answers`` has ``UNIQUE(reader, image)``: a second submit of
the same image (a double click, a retry after a lost connection, two tabs) stores nothing, so
each answer is stored exactly once. Connections are opened per call (``connect``), which is
safe across the server's worker threads; ``busy_timeout`` makes concurrent writers wait for
each other instead of failing.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from elastogan.errors import InputFileError, UserError

DB_NAME = "study.sqlite"
IMAGES_DIR = "images"
SCHEMA_VERSION = 1

ROLES = ("reader", "lead")
GROUPS = ("junior", "senior")
JUDGEMENTS = ("real", "synthetic")
TSUKUBA_CHOICES = ("1", "2", "3", "4", "5", "cyst")
# Tsukuba categories for agreement statistics, least to most suspicious: the cyst pattern
# (blue-green-red) is benign, then 1-5.
TSUKUBA_ORDER = ("cyst", "1", "2", "3", "4", "5")
BIRADS_CHOICES = ("2", "3", "4a", "4b", "4c", "5")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY,
    malignant INTEGER NOT NULL CHECK (malignant IN (0, 1)),
    bmode TEXT NOT NULL UNIQUE,
    ncc REAL,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    image TEXT PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES cases(case_id),
    kind TEXT NOT NULL CHECK (kind IN ('real', 'synthetic')),
    UNIQUE (case_id, kind)
);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('reader', 'lead')),
    grp TEXT CHECK (grp IN ('junior', 'senior')),
    password TEXT NOT NULL,
    seed TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reading_order (
    reader TEXT NOT NULL REFERENCES users(name),
    position INTEGER NOT NULL,
    image TEXT NOT NULL REFERENCES images(image),
    PRIMARY KEY (reader, position),
    UNIQUE (reader, image)
);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY,
    reader TEXT NOT NULL REFERENCES users(name),
    image TEXT NOT NULL REFERENCES images(image),
    judged TEXT NOT NULL CHECK (judged IN ('real', 'synthetic')),
    tsukuba TEXT NOT NULL CHECK (tsukuba IN ('1', '2', '3', '4', '5', 'cyst')),
    birads TEXT NOT NULL CHECK (birads IN ('2', '3', '4a', '4b', '4c', '5')),
    answered REAL NOT NULL,
    UNIQUE (reader, image)
);
"""


class StudyError(UserError):
    """A study folder that cannot be used, or a request the study refuses."""


@dataclass(frozen=True)
class Progress:
    """One reader's progress."""

    reader: str
    group: str | None
    answered: int
    total: int
    last_answer: float | None

    @property
    def done(self) -> bool:
        return self.answered >= self.total


def db_path(study: str | Path) -> Path:
    return Path(study) / DB_NAME


@contextlib.contextmanager
def connect(study: str | Path, *, create: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection to the study's database, closed on exit.

    Args:
        study: the study folder.
        create: create the database (and folder) if missing; otherwise it must exist.

    Raises:
        StudyError: no study database in ``study``.
    """
    path = db_path(study)
    if not create and not path.is_file():
        raise StudyError(f"{study}: not a study folder (no {DB_NAME}; make one with `elastogan study create`)")
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in `transaction`).
    con = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")  # an acknowledged answer survives a power cut
        con.execute("PRAGMA foreign_keys=ON")
        con.execute("PRAGMA busy_timeout=30000")
        yield con
    finally:
        con.close()


@contextlib.contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error): takes the write lock up front."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def init_schema(con: sqlite3.Connection) -> None:
    con.executescript(SCHEMA)


def get_meta(con: sqlite3.Connection, key: str) -> str:
    row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    if row is None:
        raise StudyError(f"study database has no {key!r} entry")
    return row[0]


def check_study(study: str | Path) -> None:
    """Raise ``StudyError`` unless ``study`` is a complete study of this schema version."""
    with connect(study) as con:
        try:
            version = int(get_meta(con, "schema_version"))
        except sqlite3.DatabaseError as e:
            raise InputFileError(db_path(study), f"not a study database ({e})") from None
        if version != SCHEMA_VERSION:
            raise StudyError(f"{study}: study schema version {version}, this code reads {SCHEMA_VERSION}")
        if get_meta(con, "complete") != "1":
            raise StudyError(f"{study}: the study was not created completely; run `elastogan study create` again")


def user(con: sqlite3.Connection, name: str) -> sqlite3.Row | None:
    con.row_factory = sqlite3.Row
    try:
        return con.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
    finally:
        con.row_factory = None


def progress(con: sqlite3.Connection, reader: str) -> Progress:
    row = con.execute(
        "SELECT u.grp, (SELECT COUNT(*) FROM reading_order o WHERE o.reader = u.name),"
        " (SELECT COUNT(*) FROM answers a WHERE a.reader = u.name),"
        " (SELECT MAX(answered) FROM answers a WHERE a.reader = u.name)"
        " FROM users u WHERE u.name = ?",
        (reader,),
    ).fetchone()
    if row is None:
        raise StudyError(f"no reader {reader!r} in this study")
    grp, total, answered, last = row
    return Progress(reader, grp, answered, total, last)


def all_progress(con: sqlite3.Connection) -> list[Progress]:
    names = [r[0] for r in con.execute("SELECT name FROM users WHERE role = 'reader' ORDER BY created, name")]
    return [progress(con, n) for n in names]


def next_image(con: sqlite3.Connection, reader: str) -> tuple[int, str] | None:
    """``(position, image)`` of the reader's first unanswered image, or None when done."""
    return con.execute(
        "SELECT o.position, o.image FROM reading_order o"
        " LEFT JOIN answers a ON a.reader = o.reader AND a.image = o.image"
        " WHERE o.reader = ? AND a.id IS NULL ORDER BY o.position LIMIT 1",
        (reader,),
    ).fetchone()


def store_answer(con: sqlite3.Connection, reader: str, image: str, judged: str, tsukuba: str, birads: str) -> bool:
    """Store one answer in its own transaction; False if this reader had already answered it.

    Raises:
        StudyError: the image is not in this reader's reading list, or a value is not one of
            the choices.
    """
    for name, value, allowed in (("judgement", judged, JUDGEMENTS), ("Tsukuba score", tsukuba, TSUKUBA_CHOICES),
                                 ("BI-RADS category", birads, BIRADS_CHOICES)):
        if value not in allowed:
            raise StudyError(f"{name} {value!r} is not one of {', '.join(allowed)}")
    with transaction(con):
        listed = con.execute("SELECT 1 FROM reading_order WHERE reader = ? AND image = ?", (reader, image)).fetchone()
        if listed is None:
            raise StudyError("that image is not in your reading list")
        cur = con.execute(
            "INSERT INTO answers (reader, image, judged, tsukuba, birads, answered) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (reader, image) DO NOTHING",
            (reader, image, judged, tsukuba, birads, time.time()),
        )
        return cur.rowcount == 1
