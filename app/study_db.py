"""The study database: SQLite (WAL), the only place that holds the truth and the answers.

A study folder holds ``study.sqlite``, ``images/`` (opaque-named PNGs) and, while the app
runs, ``served/`` (the app's own files, :mod:`~elastogan.app.served_files`). Gradio never
serves the database or ``images/``.

A reader's list is ``reading_order``: one row per *reading* (position, image, session,
repeat). Readings are answered in order; the current reading is the first unanswered one, and
an answer is accepted only with the token of the view that showed it (``views``), so a reader
can answer nothing but the image on their screen. ``answers`` has ``UNIQUE(reader,
position)``: a second submit of the same reading (a double click, a retry, two tabs) stores
nothing. The staged design stores the B-mode-alone BI-RADS in ``bmode_answers`` before the
elastogram is revealed. Reading time is server side: from the view's ``served`` time to the
answer's ``answered`` time.

Every write is one transaction; connections are opened per call (``connect``), safe across the
server's worker threads; ``busy_timeout`` makes concurrent writers wait for each other.

Schema version 2 (issue 13); a version-1 database is migrated in place, in one transaction,
by ``check_study`` (design ``both``: every image to every reader, as version 1 did).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from elastogan.errors import InputFileError, UserError

DB_NAME = "study.sqlite"
IMAGES_DIR = "images"
SCHEMA_VERSION = 2

ROLES = ("reader", "lead")
# Reading designs. ``both`` is version 1's (every image of every case to every reader, one
# session); new studies choose among the other three.
DESIGNS = ("split", "paired-sessions", "staged", "both")
CREATE_DESIGNS = ("split", "paired-sessions", "staged")
JUDGEMENTS = ("real", "synthetic")
TSUKUBA_CHOICES = ("1", "2", "3", "4", "5", "cyst")
# Tsukuba categories for agreement statistics, least to most suspicious: the cyst pattern
# (blue-green-red) is benign, then 1-5.
TSUKUBA_ORDER = ("cyst", "1", "2", "3", "4", "5")
BIRADS_CHOICES = ("2", "3", "4a", "4b", "4c", "5")
# Stages of a reading: the B-mode alone (staged design only), then with the elastogram.
STAGE_BMODE, STAGE_FULL = 1, 2
GROUP_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_ECHO = 24  # at most this many characters of a user's value go back into a message

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
    grp TEXT,
    password TEXT NOT NULL,
    seed TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reading_order (
    reader TEXT NOT NULL REFERENCES users(name),
    position INTEGER NOT NULL,
    image TEXT NOT NULL REFERENCES images(image),
    session INTEGER NOT NULL DEFAULT 1 CHECK (session IN (1, 2)),
    repeat INTEGER NOT NULL DEFAULT 0 CHECK (repeat IN (0, 1)),
    PRIMARY KEY (reader, position),
    UNIQUE (reader, image, repeat)
);
CREATE TABLE IF NOT EXISTS views (
    reader TEXT NOT NULL,
    position INTEGER NOT NULL,
    stage INTEGER NOT NULL CHECK (stage IN (1, 2)),
    token TEXT NOT NULL UNIQUE,
    served REAL NOT NULL,
    PRIMARY KEY (reader, position, stage),
    FOREIGN KEY (reader, position) REFERENCES reading_order(reader, position)
);
CREATE TABLE IF NOT EXISTS bmode_answers (
    reader TEXT NOT NULL,
    position INTEGER NOT NULL,
    birads TEXT NOT NULL CHECK (birads IN ('2', '3', '4a', '4b', '4c', '5')),
    confidence REAL CHECK (confidence BETWEEN 0 AND 100),
    served REAL,
    answered REAL NOT NULL,
    PRIMARY KEY (reader, position),
    FOREIGN KEY (reader, position) REFERENCES reading_order(reader, position)
);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY,
    reader TEXT NOT NULL REFERENCES users(name),
    position INTEGER NOT NULL,
    image TEXT NOT NULL REFERENCES images(image),
    judged TEXT NOT NULL CHECK (judged IN ('real', 'synthetic')),
    tsukuba TEXT NOT NULL CHECK (tsukuba IN ('1', '2', '3', '4', '5', 'cyst')),
    birads TEXT NOT NULL CHECK (birads IN ('2', '3', '4a', '4b', '4c', '5')),
    confidence REAL CHECK (confidence BETWEEN 0 AND 100),
    served REAL,
    answered REAL NOT NULL,
    UNIQUE (reader, position),
    FOREIGN KEY (reader, position) REFERENCES reading_order(reader, position)
);
CREATE TABLE IF NOT EXISTS login_failures (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_name ON login_failures (name, at);
CREATE INDEX IF NOT EXISTS login_failures_address ON login_failures (address, at);
"""


class StudyError(UserError):
    """A study folder that cannot be used, or a request the study refuses."""


def short(value: object) -> str:
    """``repr`` of at most ``_ECHO`` characters of a user's value, for messages and logs."""
    text = str(value)
    return repr(text[:_ECHO]) + ("…" if len(text) > _ECHO else "")


@dataclass(frozen=True)
class Progress:
    """One reader's progress (readings, repeats included)."""

    reader: str
    group: str | None
    answered: int
    total: int
    last_answer: float | None

    @property
    def done(self) -> bool:
        return self.answered >= self.total


@dataclass(frozen=True)
class Reading:
    """One row of a reader's list."""

    position: int
    image: str
    session: int
    repeat: bool


@dataclass(frozen=True)
class Design:
    """The study's reading design (``meta``): see ``elastogan.app.designs``."""

    name: str
    repeat: float
    washout_days: float


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


def get_meta(con: sqlite3.Connection, key: str, default: str | None = None) -> str:
    row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    if row is None:
        if default is not None:
            return default
        raise StudyError(f"study database has no {key!r} entry")
    return row[0]


def design(con: sqlite3.Connection) -> Design:
    return Design(get_meta(con, "design", "both"), float(get_meta(con, "repeat", "0")),
                  float(get_meta(con, "washout_days", "0")))


def check_design(name: str, repeat: float, washout_days: float) -> None:
    """Raise ``StudyError`` for an unknown design, a repeat fraction outside [0, 1] or a
    negative washout."""
    if name not in DESIGNS:
        raise StudyError(f"design {short(name)} is not one of {', '.join(CREATE_DESIGNS)}")
    if not 0.0 <= repeat <= 1.0:
        raise StudyError(f"--repeat is the fraction of readings shown again, from 0 to 1; got {repeat}")
    if not 0.0 <= washout_days <= 365.0:
        raise StudyError(f"--washout-days must be from 0 to 365, got {washout_days}")
    if washout_days and name != "paired-sessions":
        raise StudyError(f"--washout-days is for --design paired-sessions (the design is {name})")


def set_design(con: sqlite3.Connection, name: str, repeat: float = 0.0, washout_days: float = 0.0) -> None:
    """Record the design (before any reader is added: their lists follow it)."""
    check_design(name, repeat, washout_days)
    if con.execute("SELECT 1 FROM users WHERE role = 'reader'").fetchone() is not None:
        raise StudyError("the design cannot change once readers have their lists")
    con.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [("design", name), ("repeat", repr(float(repeat))), ("washout_days", repr(float(washout_days)))])


# ------------------------------------------------------------------------------ migration

_V1_TO_V2 = """
CREATE TABLE users_v2 (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('reader', 'lead')),
    grp TEXT,
    password TEXT NOT NULL,
    seed TEXT NOT NULL,
    created REAL NOT NULL
);
INSERT INTO users_v2 SELECT name, role, grp, password, seed, created FROM users;
CREATE TABLE reading_order_v2 (
    reader TEXT NOT NULL REFERENCES users(name),
    position INTEGER NOT NULL,
    image TEXT NOT NULL REFERENCES images(image),
    session INTEGER NOT NULL DEFAULT 1 CHECK (session IN (1, 2)),
    repeat INTEGER NOT NULL DEFAULT 0 CHECK (repeat IN (0, 1)),
    PRIMARY KEY (reader, position),
    UNIQUE (reader, image, repeat)
);
INSERT INTO reading_order_v2 (reader, position, image) SELECT reader, position, image FROM reading_order;
CREATE TABLE answers_v2 (
    id INTEGER PRIMARY KEY,
    reader TEXT NOT NULL REFERENCES users(name),
    position INTEGER NOT NULL,
    image TEXT NOT NULL REFERENCES images(image),
    judged TEXT NOT NULL CHECK (judged IN ('real', 'synthetic')),
    tsukuba TEXT NOT NULL CHECK (tsukuba IN ('1', '2', '3', '4', '5', 'cyst')),
    birads TEXT NOT NULL CHECK (birads IN ('2', '3', '4a', '4b', '4c', '5')),
    confidence REAL CHECK (confidence BETWEEN 0 AND 100),
    served REAL,
    answered REAL NOT NULL,
    UNIQUE (reader, position),
    FOREIGN KEY (reader, position) REFERENCES reading_order(reader, position)
);
INSERT INTO answers_v2 (id, reader, position, image, judged, tsukuba, birads, answered)
    SELECT a.id, a.reader, o.position, a.image, a.judged, a.tsukuba, a.birads, a.answered
    FROM answers a JOIN reading_order o ON o.reader = a.reader AND o.image = a.image;
DROP TABLE answers;
DROP TABLE reading_order;
DROP TABLE users;
ALTER TABLE users_v2 RENAME TO users;
ALTER TABLE reading_order_v2 RENAME TO reading_order;
ALTER TABLE answers_v2 RENAME TO answers;
"""


def _migrate_v1(con: sqlite3.Connection) -> None:
    """Version 1 → 2 in one transaction: free group names, readings with session and repeat,
    answers by reading, and the new tables. Every answer is kept."""
    con.execute("PRAGMA foreign_keys=OFF")  # tables are rebuilt under their references
    try:
        with transaction(con):
            n = con.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
            for statement in _V1_TO_V2.split(";"):
                if statement.strip():
                    con.execute(statement)
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    con.execute(statement)
            if con.execute("SELECT COUNT(*) FROM answers").fetchone()[0] != n:
                raise StudyError("migration to schema version 2 would lose answers; the database is left as it was")
            bad = con.execute("PRAGMA foreign_key_check").fetchall()
            if bad:
                raise StudyError(f"migration to schema version 2 found broken references ({len(bad)}); nothing changed")
            con.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                            [("schema_version", str(SCHEMA_VERSION)), ("design", "both"), ("repeat", "0.0"),
                             ("washout_days", "0.0"), ("migrated_from", "1")])
    finally:
        con.execute("PRAGMA foreign_keys=ON")


def check_study(study: str | Path) -> None:
    """Raise ``StudyError`` unless ``study`` is a complete study; a version-1 database is
    migrated to version 2 first."""
    with connect(study) as con:
        try:
            version = int(get_meta(con, "schema_version"))
        except sqlite3.DatabaseError as e:
            raise InputFileError(db_path(study), f"not a study database ({e})") from None
        if version == 1:
            _migrate_v1(con)
            version = SCHEMA_VERSION
        if version != SCHEMA_VERSION:
            raise StudyError(f"{study}: study schema version {version}, this code reads {SCHEMA_VERSION}")
        if get_meta(con, "complete") != "1":
            raise StudyError(f"{study}: the study was not created completely; run `elastogan study create` again")


# ------------------------------------------------------------------------------ users


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
        raise StudyError(f"no reader {short(reader)} in this study")
    grp, total, answered, last = row
    return Progress(reader, grp, answered, total, last)


def all_progress(con: sqlite3.Connection) -> list[Progress]:
    names = [r[0] for r in con.execute("SELECT name FROM users WHERE role = 'reader' ORDER BY created, name")]
    return [progress(con, n) for n in names]


# ------------------------------------------------------------------------------ reading


def next_reading(con: sqlite3.Connection, reader: str) -> Reading | None:
    """The reader's first unanswered reading, or None when their list is done."""
    row = con.execute(
        "SELECT o.position, o.image, o.session, o.repeat FROM reading_order o"
        " LEFT JOIN answers a ON a.reader = o.reader AND a.position = o.position"
        " WHERE o.reader = ? AND a.id IS NULL ORDER BY o.position LIMIT 1",
        (reader,),
    ).fetchone()
    return None if row is None else Reading(row[0], row[1], row[2], bool(row[3]))


def view(con: sqlite3.Connection, reader: str, position: int, stage: int, now: float) -> tuple[str, float]:
    """``(token, served)`` of the reader's view of a reading at a stage: made on its first
    showing (its time is when the image was first served); a reload shows the same view."""
    row = con.execute("SELECT token, served FROM views WHERE reader = ? AND position = ? AND stage = ?",
                      (reader, position, stage)).fetchone()
    if row is not None:
        return row[0], row[1]
    token = secrets.token_hex(16)
    with transaction(con):
        con.execute("INSERT OR IGNORE INTO views (reader, position, stage, token, served) VALUES (?, ?, ?, ?, ?)",
                    (reader, position, stage, token, now))
        row = con.execute("SELECT token, served FROM views WHERE reader = ? AND position = ? AND stage = ?",
                          (reader, position, stage)).fetchone()
    return row[0], row[1]


def view_of_token(con: sqlite3.Connection, reader: str, token: str) -> tuple[int, int, float] | None:
    """``(position, stage, served)`` of this reader's view with ``token``, or None."""
    return con.execute("SELECT position, stage, served FROM views WHERE reader = ? AND token = ?",
                       (reader, token)).fetchone()


def bmode_answer(con: sqlite3.Connection, reader: str, position: int) -> str | None:
    row = con.execute("SELECT birads FROM bmode_answers WHERE reader = ? AND position = ?", (reader, position)).fetchone()
    return None if row is None else row[0]


def _choice(what: str, value: object, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise StudyError(f"{what} {short(value)} is not one of {', '.join(allowed)}")
    return value


def check_confidence(value: object) -> float | None:
    """An optional confidence: None (not given) or a number from 0 to 100."""
    if value is None or value == "":
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and 0.0 <= float(value) <= 100.0:
        return float(value)
    raise StudyError(f"confidence {short(value)} is not a number from 0 to 100")


def store_answer(con: sqlite3.Connection, reader: str, token: str, judged: str, tsukuba: str, birads: str,
                 confidence: float | None = None, *, now: float | None = None) -> bool:
    """Store the answer of the reading on the reader's screen; False if it was already answered.

    Args:
        token: the view's token (``view``): the answer is for the image that view showed.

    Raises:
        StudyError: the token is not of this reader's current (or just answered) reading, or a
            value is not one of the choices.
    """
    judged = _choice("judgement", judged, JUDGEMENTS)
    tsukuba = _choice("Tsukuba score", tsukuba, TSUKUBA_CHOICES)
    birads = _choice("BI-RADS category", birads, BIRADS_CHOICES)
    confidence = check_confidence(confidence)
    with transaction(con):
        found = view_of_token(con, reader, str(token))
        if found is None or found[1] != STAGE_FULL:
            raise StudyError("that is not the image on your screen")
        position, _, served = found
        if con.execute("SELECT 1 FROM answers WHERE reader = ? AND position = ?", (reader, position)).fetchone():
            return False
        current = next_reading(con, reader)
        if current is None or current.position != position:
            raise StudyError("that is not the image on your screen")
        cur = con.execute(
            "INSERT INTO answers (reader, position, image, judged, tsukuba, birads, confidence, served, answered)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (reader, position) DO NOTHING",
            (reader, position, current.image, judged, tsukuba, birads, confidence, served,
             time.time() if now is None else now),
        )
        return cur.rowcount == 1


def store_bmode_answer(con: sqlite3.Connection, reader: str, token: str, birads: str,
                       confidence: float | None = None, *, now: float | None = None) -> bool:
    """Store the staged design's first answer (BI-RADS on the B-mode alone); False if stored already."""
    birads = _choice("BI-RADS category", birads, BIRADS_CHOICES)
    confidence = check_confidence(confidence)
    with transaction(con):
        found = view_of_token(con, reader, str(token))
        if found is None or found[1] != STAGE_BMODE:
            raise StudyError("that is not the image on your screen")
        position, _, served = found
        current = next_reading(con, reader)
        if current is None or current.position != position:
            raise StudyError("that is not the image on your screen")
        cur = con.execute(
            "INSERT INTO bmode_answers (reader, position, birads, confidence, served, answered) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (reader, position) DO NOTHING",
            (reader, position, birads, confidence, served, time.time() if now is None else now),
        )
        return cur.rowcount == 1
