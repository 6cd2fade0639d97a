"""Study accounts: add a reader or a lead, check a login, throttle guessers, look up a role.

A reader's list of readings is drawn and stored when the reader is added (``reading_order``,
by the study's design: :mod:`~elastogan.app.designs`), so it never depends on library
versions later and resumes exactly after any restart.

A login costs one scrypt check whatever the name: an unknown name is checked against a dummy
hash of the same cost, so the answer's timing does not say which names exist. Wrong passwords
are counted in the database (``login_failures``) per name and per client address; past a limit
within a window (``LoginThrottle``) the login is refused — even with the right password —
until the window has passed or the lead runs ``elastogan study unlock``. Counts survive a
restart.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from elastogan.app import study_db
from elastogan.app.designs import counterbalance_order, reading_list
from elastogan.app.passwords import hash_password, verify_password
from elastogan.app.reading_order import reader_seed
from elastogan.app.study_db import StudyError, short

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_DUMMY: list[str] = []  # the dummy hash an unknown name is checked against (made once)


def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(hash_password("elastogan-no-such-account"))
    return _DUMMY[0]


def add_user(study: str | Path, name: str, password: str, *, role: str = "reader", group: str | None = None) -> int:
    """Add an account; for a reader also store their list of readings.

    Args:
        study: study folder.
        name: login name: letters, digits, ``_.-``, at most 64 characters.
        password: at least ``passwords.MIN_LENGTH`` characters; stored hashed (scrypt).
        role: ``reader`` or ``lead``.
        group: any group name the lead chooses (letters, digits, ``_.-``, at most 32), for the
            statistics per group; readers only.

    Returns:
        The number of readings in the reader's list (0 for a lead).

    Raises:
        StudyError: a bad name, role, group or password, or the name is taken.
    """
    if not _NAME.fullmatch(name):
        raise StudyError(f"reader name {short(name)}: use letters, digits, '_', '.', '-' "
                         "(at most 64, starting with a letter or digit)")
    if role not in study_db.ROLES:
        raise StudyError(f"role {short(role)} is not one of {', '.join(study_db.ROLES)}")
    if group is not None and not study_db.GROUP_PATTERN.fullmatch(group):
        raise StudyError(f"group {short(group)}: use letters, digits, '_', '.', '-' (at most 32, starting with a letter or digit)")
    if group is not None and role != "reader":
        raise StudyError("only readers have a group")
    try:
        hashed = hash_password(password)
    except ValueError as e:
        raise StudyError(str(e)) from None
    study_db.check_study(study)
    with study_db.connect(study) as con:
        study_id = study_db.get_meta(con, "study_id")
        d = study_db.design(con)
        seed = reader_seed(study_id, name)
        rows = con.execute(
            "SELECT c.case_id, r.image, s.image FROM cases c JOIN images r ON r.case_id = c.case_id AND r.kind = 'real'"
            " JOIN images s ON s.case_id = c.case_id AND s.kind = 'synthetic' ORDER BY c.case_id").fetchall()
        if d.name != "both":  # version 1 drew from the case-id order; the new designs counterbalance
            rank = {c: i for i, c in enumerate(counterbalance_order(study_id, [r[0] for r in rows]))}
            rows.sort(key=lambda r: rank[r[0]])
        pairs = [(r, s) for _, r, s in rows]
        try:
            with study_db.transaction(con):
                index = con.execute("SELECT COUNT(*) FROM users WHERE role = 'reader'").fetchone()[0]
                slots = reading_list(d.name, pairs, reader_index=index, seed=seed, repeat=d.repeat) if role == "reader" else []
                con.execute("INSERT INTO users (name, role, grp, password, seed, created) VALUES (?, ?, ?, ?, ?, ?)",
                            (name, role, group, hashed, str(seed), time.time()))
                con.executemany("INSERT INTO reading_order (reader, position, image, session, repeat) VALUES (?, ?, ?, ?, ?)",
                                [(name, i, s.image, s.session, int(s.repeat)) for i, s in enumerate(slots)])
        except sqlite3.IntegrityError:
            raise StudyError(f"there is already an account named {short(name)} in this study") from None
    return len(slots)


def check_login(study: str | Path, name: str, password: str) -> bool:
    """True if ``name`` has an account and ``password`` is its password.

    An unknown name costs the same scrypt check as a known one (against a dummy hash).
    """
    with study_db.connect(study) as con:
        row = study_db.user(con, name)
    stored = row["password"] if row is not None else _dummy_hash()
    ok = verify_password(password, stored)
    return ok and row is not None


def role_of(study: str | Path, name: str | None) -> str | None:
    """The account's role, or None for an unknown (or no) name."""
    if not name:
        return None
    with study_db.connect(study) as con:
        row = study_db.user(con, name)
    return None if row is None else row["role"]


@dataclass(frozen=True)
class LoginResult:
    """What a login attempt came to: ``ok``, or refused; ``locked`` says why a right password
    was refused (too many wrong ones for this name or from this address)."""

    ok: bool
    locked: bool = False


class LoginThrottle:
    """Wrong passwords counted per name and per client address, in the study database.

    Three limits within the sliding window: a name from one address (``max_per_pair``), one
    address for any names (``max_per_address``: a guesser trying many names), and a name
    from any addresses (``max_per_name``: a guesser spread over many addresses). The
    per-address limit is below the per-name one, so nobody can lock another reader's name from
    one machine: their own address is locked first.

    Args:
        max_per_pair: wrong passwords for one name from one address before that pair is refused.
        max_per_address: wrong passwords from one address before the address is refused.
        max_per_name: wrong passwords for one name from all addresses before the name is refused.
        window_s: the sliding window in seconds; a refusal lasts until enough failures are
            older than that.
        clock: wall-clock seconds (failures are stored with their time and survive restarts).
    """

    def __init__(self, max_per_pair: int = 10, max_per_address: int = 30, max_per_name: int = 50,
                 window_s: float = 600.0, clock=time.time) -> None:
        limits = (max_per_pair, max_per_address, max_per_name)
        if min(limits) < 1 or window_s <= 0:
            raise ValueError(f"expected limits >= 1 and window_s > 0, got {limits} and {window_s}")
        self.max_per_pair, self.max_per_address, self.max_per_name = limits
        self.window_s, self.clock = window_s, clock

    def locked(self, con: sqlite3.Connection, name: str, address: str, now: float) -> bool:
        since = now - self.window_s

        def count(where: str, *args) -> int:
            return con.execute(f"SELECT COUNT(*) FROM login_failures WHERE {where} AND at > ?", (*args, since)).fetchone()[0]

        return (count("name = ? AND address = ?", name, address) >= self.max_per_pair
                or count("address = ?", address) >= self.max_per_address
                or count("name = ?", name) >= self.max_per_name)

    def attempt(self, study: str | Path, name: str, password: str, address: str = "") -> LoginResult:
        """Check a login; a locked name or address is refused after the same password check."""
        name = name[:80]  # longer names exist nowhere; the table stays small
        now = self.clock()
        with study_db.connect(study) as con:
            locked = self.locked(con, name, address, now)
        ok = check_login(study, name, password)  # the same work, locked or not
        if ok and not locked:
            with study_db.connect(study) as con, study_db.transaction(con):
                con.execute("DELETE FROM login_failures WHERE name = ? AND address = ?", (name, address))
            return LoginResult(True)
        if not ok:
            with study_db.connect(study) as con, study_db.transaction(con):
                con.execute("INSERT INTO login_failures (name, address, at) VALUES (?, ?, ?)", (name, address, now))
                con.execute("DELETE FROM login_failures WHERE at < ?", (now - 10 * self.window_s,))
        return LoginResult(False, locked=locked)

    def check(self, study: str | Path, name: str, password: str, address: str = "") -> bool:
        """``attempt(...).ok``."""
        return self.attempt(study, name, password, address).ok


def unlock(study: str | Path, *, name: str | None = None, address: str | None = None) -> int:
    """Forget the wrong passwords of ``name`` and/or ``address`` (both None: all); returns how
    many were forgotten."""
    study_db.check_study(study)
    with study_db.connect(study) as con, study_db.transaction(con):
        if name is None and address is None:
            return con.execute("DELETE FROM login_failures").rowcount
        n = 0
        if name is not None:
            n += con.execute("DELETE FROM login_failures WHERE name = ?", (name,)).rowcount
        if address is not None:
            n += con.execute("DELETE FROM login_failures WHERE address = ?", (address,)).rowcount
        return n
