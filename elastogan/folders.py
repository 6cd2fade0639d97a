"""Output folders: refuse a path that is (or lies under) a file, before any work.

``simulate``, ``ingest``, ``train`` and ``predict`` write into a folder the user names
(``--out``). A name that is an existing file, or that lies under one, cannot become a folder;
neither can one in a place the user may not write. These are the user's mistakes, so they are ``UserError``s naming the path,
raised before anything is simulated or read.
"""

from __future__ import annotations

import os
from pathlib import Path

from elastogan.errors import UserError


def check_folder_path(path: str | os.PathLike) -> Path:
    """``path`` as a ``Path``, if it is a folder or could become one.

    Raises:
        UserError: ``path`` is a file, or a folder above it is a file.
    """
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "is a file" if existing == path else f"lies under {existing}, which is a file"
        raise UserError(f"{path}: {where}, not a folder")
    return path


def make_folder(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` (and the folders above it) unless it exists; return it.

    Raises:
        UserError: ``path`` or a folder above it is a file, or the folder cannot be created
            or written to (permissions, a read-only file system).
    """
    path = check_folder_path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{path}: cannot create the folder ({e.strerror or e})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{path}: cannot write into the folder (permission denied)")
    return path


def check_out_option(path: str | os.PathLike) -> Path:
    """``check_folder_path`` for a command's ``--out``, the message naming the option."""
    try:
        return check_folder_path(path)
    except UserError as e:
        raise UserError(f"--out {e}; choose another --out") from None
