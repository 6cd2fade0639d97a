"""The files the app hands out, each to one user, from a folder only the app can read.

Gradio's own file route serves any file of its cache to anyone logged in, and its cache
(``/tmp/gradio`` by default) is shared by every Gradio app on the host. So whatever carries a
study's content — a reader's images, the lead's export — never goes there: it is written here,
under a random token, into ``FOLDER`` (mode 0700, files 0600), and ``guard.Guard`` serves
``elastogan-file/<token>`` only to the user it was made for. A file is removed when it is no
longer needed: a reader's images when their next screen is made, a download once it has
been fetched, anything after ``ttl_s``, and the whole folder when the app starts and stops.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

URL_PREFIX = "elastogan-file/"  # relative to the page, so a root path (a proxy) still works


@dataclass(frozen=True)
class ServedFile:
    """One file: its owner, where it lies, how it is sent."""

    owner: str
    path: Path
    media_type: str
    download_name: str | None  # None: shown inline (an image); else a download with this name
    once: bool
    group: str
    made: float


def url(token: str) -> str:
    return URL_PREFIX + token


class ServedFiles:
    """Per-user files under ``folder`` (made 0700 and emptied now).

    Args:
        folder: the app's own folder for served files (created; anything in it is removed).
        ttl_s: a file older than this is removed.
        clock: monotonic seconds.
    """

    def __init__(self, folder: str | Path, *, ttl_s: float = 3600.0, clock=time.monotonic) -> None:
        if ttl_s <= 0:
            raise ValueError(f"expected ttl_s > 0, got {ttl_s}")
        self.folder = Path(folder)
        self.ttl_s, self.clock = ttl_s, clock
        self._files: dict[str, ServedFile] = {}
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        """Remove every file (and leftovers of an earlier run); keep the folder, mode 0700."""
        with self._lock:
            self._files.clear()
            if self.folder.exists():
                shutil.rmtree(self.folder)
            self.folder.mkdir(parents=True, mode=0o700)
            os.chmod(self.folder, 0o700)

    def remove_folder(self) -> None:
        with self._lock:
            self._files.clear()
            shutil.rmtree(self.folder, ignore_errors=True)

    def put(self, owner: str, data: bytes, *, media_type: str, download_name: str | None = None,
            once: bool = False, group: str = "") -> str:
        """Write ``data`` for ``owner`` and return its token; ``once``: removed after one download."""
        token = secrets.token_urlsafe(24)
        path = self.folder / token
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        entry = ServedFile(owner, path, media_type, download_name, once, group, self.clock())
        with self._lock:
            self._files[token] = entry
        self.sweep()
        return token

    def get(self, owner: str | None, token: str) -> ServedFile | None:
        """The file if ``owner`` may have it (theirs, present, not expired); else None."""
        with self._lock:
            entry = self._files.get(token)
        if entry is None or owner is None or entry.owner != owner or self.clock() - entry.made > self.ttl_s:
            return None
        return entry if entry.path.is_file() else None

    def taken(self, token: str) -> None:
        """A download was sent: remove a ``once`` file."""
        with self._lock:
            entry = self._files.get(token)
            if entry is None or not entry.once:
                return
            del self._files[token]
        entry.path.unlink(missing_ok=True)

    def drop(self, owner: str, group: str) -> None:
        """Remove ``owner``'s files of ``group`` (e.g. a reader's previous screen)."""
        with self._lock:
            gone = [t for t, e in self._files.items() if e.owner == owner and e.group == group]
            entries = [self._files.pop(t) for t in gone]
        for e in entries:
            e.path.unlink(missing_ok=True)

    def sweep(self) -> None:
        """Remove expired files."""
        now = self.clock()
        with self._lock:
            gone = [t for t, e in self._files.items() if now - e.made > self.ttl_s]
            entries = [self._files.pop(t) for t in gone]
        for e in entries:
            e.path.unlink(missing_ok=True)

    def tokens(self, owner: str | None = None) -> list[str]:
        with self._lock:
            return [t for t, e in self._files.items() if owner is None or e.owner == owner]
