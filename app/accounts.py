"""Study accounts: add a reader or a lead, check a login, look up a role.

A reader's reading order is drawn and stored when the reader is added (``reading_order``),
so it never depends on library versions later and resumes exactly after any restart.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path

from elastogan.app import study_db
from elastogan.app.passwords import hash_password, verify_password
from elastogan.app.reading_order import reader_seed, reading_order
from elastogan.app.study_db import StudyError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def add_user(study: str | Path, name: str, password: str, *, role: str = "reader", group: str | None = None) -> int:
    """Add an account; for a reader also store their reading order.

    Args:
        study: study folder.
        name: login name: letters, digits, ``_.-``, at most 64 characters.
        password: at least ``passwords.MIN_LENGTH`` characters; stored hashed (scrypt).
        role: ``reader`` or ``lead``.
        group: ``junior`` or ``senior`` (readers; for the authenticity statistics per group).

    Returns:
        The number of images in the reader's list (0 for a lead).

    Raises:
        StudyError: a bad name, role, group or password, or the name is taken.
    """
    if not _NAME.fullmatch(name):
        raise StudyError(f"reader name {name!r}: use letters, digits, '_', '.', '-' (at most 64, starting with a letter or digit)")
    if role not in study_db.ROLES:
        raise StudyError(f"role {role!r} is not one of {', '.join(study_db.ROLES)}")
    if group is not None and group not in study_db.GROUPS:
        raise StudyError(f"group {group!r} is not one of {', '.join(study_db.GROUPS)}")
    try:
        hashed = hash_password(password)
    except ValueError as e:
        raise StudyError(str(e)) from None
    study_db.check_study(study)
    with study_db.connect(study) as con:
        study_id = study_db.get_meta(con, "study_id")
        seed = reader_seed(study_id, name)
        pairs = [tuple(r) for r in con.execute(
            "SELECT r.image, s.image FROM cases c JOIN images r ON r.case_id = c.case_id AND r.kind = 'real'"
            " JOIN images s ON s.case_id = c.case_id AND s.kind = 'synthetic' ORDER BY c.case_id")]
        order = reading_order(pairs, seed) if role == "reader" else []
        try:
            with study_db.transaction(con):
                con.execute("INSERT INTO users (name, role, grp, password, seed, created) VALUES (?, ?, ?, ?, ?, ?)",
                            (name, role, group, hashed, str(seed), time.time()))
                con.executemany("INSERT INTO reading_order (reader, position, image) VALUES (?, ?, ?)",
                                [(name, i, img) for i, img in enumerate(order)])
        except sqlite3.IntegrityError:
            raise StudyError(f"there is already an account named {name!r} in this study") from None
    return len(order)


def check_login(study: str | Path, name: str, password: str) -> bool:
    """True if ``name`` has an account and ``password`` is its password."""
    with study_db.connect(study) as con:
        row = study_db.user(con, name)
    return row is not None and verify_password(password, row["password"])


def role_of(study: str | Path, name: str | None) -> str | None:
    """The account's role, or None for an unknown (or no) name."""
    if not name:
        return None
    with study_db.connect(study) as con:
        row = study_db.user(con, name)
    return None if row is None else row["role"]


class LoginThrottle:
    """Refuse a name for a while after too many wrong passwords (slows a guesser to a crawl).

    Args:
        max_failures: wrong passwords allowed for one name within ``window_s``.
        window_s: the sliding window, in seconds; the name is refused until its oldest failure
            in the window is that old.
    """

    def __init__(self, max_failures: int = 10, window_s: float = 600.0, clock=time.monotonic) -> None:
        if max_failures < 1 or window_s <= 0:
            raise ValueError(f"expected max_failures >= 1 and window_s > 0, got {max_failures} and {window_s}")
        self.max_failures, self.window_s, self.clock = max_failures, window_s, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, name: str, now: float) -> deque[float]:
        q = self._failures.setdefault(name, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def check(self, study: str | Path, name: str, password: str) -> bool:
        """``check_login`` unless ``name`` is locked out; records wrong passwords."""
        with self._lock:
            if len(self._recent(name, self.clock())) >= self.max_failures:
                return False
        ok = check_login(study, name, password)
        if not ok:
            with self._lock:
                self._recent(name, self.clock()).append(self.clock())
        return ok
