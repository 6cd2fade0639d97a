"""Patient pseudonyms for ingested data, and the key file that keeps them stable across runs.

A pseudonym is ``p`` + 16 hex digits of HMAC-SHA256(key, patient id): the same id under the
same key gives the same pseudonym, and without the key it cannot be reversed or recomputed
from a guessed id. By default ``ingest`` draws a fresh key for each run and never writes it,
so pseudonyms match only within one run. A study exported in parts (this month's scans, then
next month's) needs the same pseudonym for a returning patient and the same split for them in
every part, or the parts cannot be merged (a patient would sit in two splits). ``--key FILE``
keeps the key in a file that the user holds — never inside the data set — and draws each
patient's split from the key too (:func:`keyed_split`), so it depends on that patient alone,
not on who else is in the run.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from elastogan.errors import InputFileError, UserError

KEY_BYTES = 32
_KEY_LINE = re.compile(r"[0-9a-f]{%d}" % (2 * KEY_BYTES))


def pseudonym(patient_id: str, key: bytes) -> str:
    """``p`` + 16 hex digits of HMAC-SHA256(key, patient id).

    Example:
        >>> pseudonym("0012345", bytes(32))
        'pc2dccb0653000abd'
    """
    return "p" + hmac.new(key, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def keyed_split(patient_id: str, key: bytes, seed: int, fractions: dict[str, float]) -> str:
    """A patient's split from the key alone: ``test``, ``val`` or ``train``.

    ``u`` = the first 8 bytes of HMAC-SHA256(key, "split|seed|id") read as a fraction of 2⁶⁴;
    ``test`` when ``u < fractions["test"]``, ``val`` when below ``test + val``, else ``train``.
    The proportions hold on average rather than exactly, which is the price of a split that
    does not change when other patients are added.
    """
    digest = hmac.new(key, f"split|{seed}|{patient_id}".encode("utf-8"), hashlib.sha256).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < fractions["test"]:
        return "test"
    return "val" if u < fractions["test"] + fractions["val"] else "train"


def keyed_case_id(files: list[Path], frame: int, key: bytes) -> str:
    """``c`` + 12 hex digits of HMAC-SHA256(key, the files' SHA-256 digests and the frame).

    Case ids of runs with one key never collide across the parts of a study (``case0001`` of
    each part would), yet say nothing of the files: the same export ingested twice gets the same
    id, which ``manifest merge`` then reports as a duplicate.
    """
    mac = hmac.new(key, f"case|{frame}".encode("utf-8"), hashlib.sha256)
    for f in files:
        digest = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        mac.update(digest.digest())
    return "c" + mac.hexdigest()[:12]


def read_key(path: Path) -> bytes:
    """The key in ``path``: one line of 64 lower-case hex digits.

    Raises:
        InputFileError: the file is unreadable or holds anything else.
    """
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(path, f"cannot read the pseudonym key ({getattr(e, 'strerror', None) or e})") from None
    if not _KEY_LINE.fullmatch(text):
        raise InputFileError(path, f"not a pseudonym key file: expected one line of {2 * KEY_BYTES} hex digits (made by `elastogan ingest --key`)")
    return bytes.fromhex(text)


def key_for_run(path: Path | None, *, inside: dict[str, Path]) -> tuple[bytes, bool]:
    """The key of an ingest run and whether it is new (to be saved with :func:`save_new_key`).

    Args:
        path: the ``--key`` file, or ``None`` for a key of this run only.
        inside: folders the key file must not lie in, by what they are (``--out`` would ship
            the key with the data set it protects; ``--input`` would have it read as an export).

    Raises:
        UserError: the key file lies in one of ``inside``, or a new one could not be written
            where it is asked for.
        InputFileError: an existing key file is unreadable or malformed.
    """
    if path is None:
        return secrets.token_bytes(KEY_BYTES), False
    resolved = path.resolve()
    for what, folder in inside.items():
        if resolved.is_relative_to(folder.resolve()):
            raise UserError(f"--key {path}: lies inside {what} {folder}; keep the key outside the data")
    if path.is_dir():
        raise UserError(f"--key {path}: is a folder; name a key file (made on the first run)")
    if path.exists():
        return read_key(path), False
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK | os.X_OK):
        raise UserError(f"--key {path}: cannot make a new key file there ({path.parent} is not a writable folder)")
    return secrets.token_bytes(KEY_BYTES), True


def save_new_key(path: Path, key: bytes) -> None:
    """Write a new key file readable by its owner only (0600), never replacing one.

    Written to a temporary name and linked into place, so a key file is either whole or absent,
    and one that appeared meanwhile is never overwritten.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(key.hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise UserError(f"--key {path}: a key file appeared there during the run; the new key was not written") from None
    finally:
        tmp.unlink(missing_ok=True)
