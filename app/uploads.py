"""Uploaded files, checked at the door: size, pixel count, format (PNG, JPEG, DICOM by content).

The app's limits are tighter than the library's (``elastogan.data.images.MAX_PIXELS``): a
browser upload is one ultrasound frame, and the server must stay responsive for everyone else.
Every refusal is an ``UploadError`` whose message is shown in the page as it is.

Which part of a file is the B-mode is not decided here: ``load_bmode_upload`` applies the
library's one rule (``elastogan.bmode_input``), the same as ``elastogan predict``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from elastogan.errors import UserError

if TYPE_CHECKING:
    from elastogan.data.loaders import LoadedImage

MAX_UPLOAD_BYTES = 32 * 1024 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096


class UploadError(UserError):
    """An upload the app refuses; its message is for the person who uploaded it."""


def open_upload(path: str | Path | None, what: str, *, max_bytes: int = MAX_UPLOAD_BYTES,
                max_pixels: int = MAX_UPLOAD_PIXELS) -> LoadedImage:
    """One uploaded file, checked and decoded (its first frame).

    Args:
        path: the uploaded file (any name: the format is read from the content).
        what: how the page calls this upload ("B-mode", "real E-mode"), for messages.
        max_bytes: largest file accepted.
        max_pixels: largest frame accepted (checked before decoding where the format allows).

    Raises:
        UploadError: no file, too big, not PNG/JPEG/DICOM, unreadable, or too many pixels.
    """
    from elastogan.data.images import image_shape
    from elastogan.data.loaders import load_image, sniff_format
    from elastogan.errors import InputFileError

    if path is None:
        raise UploadError(f"No {what} uploaded.")
    path = Path(path)
    name = _short_name(path)  # messages quote at most 40 characters of a name
    try:
        size = path.stat().st_size
    except OSError:
        raise UploadError(f"The {what} upload ({name}) could not be read; please upload it again.") from None
    if size > max_bytes:
        raise UploadError(f"The {what} file {name} is {size / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB.")
    try:
        fmt = sniff_format(path)
        if fmt == "npy":
            raise UploadError(f"The {what} file {name} is a NumPy array; upload a PNG, JPEG or DICOM image.")
        if fmt in ("png", "jpeg"):
            h, w = image_shape(path)[:2]
            if h * w > max_pixels:
                raise UploadError(f"The {what} image {name} has {h}×{w} pixels; the limit is {max_pixels:,} pixels.")
        return load_image(path)
    except InputFileError as e:
        raise UploadError(f"The {what} file {name} cannot be used: {e.problem}") from None


def _short_name(path: Path) -> str:
    return path.name if len(path.name) <= 40 else path.name[:40] + "…"


def _check_frame(frame: np.ndarray, what: str, name: str, max_pixels: int) -> np.ndarray:
    h, w = frame.shape[:2]
    if h * w > max_pixels:
        raise UploadError(f"The {what} image {name} has {h}×{w} pixels; the limit is {max_pixels:,} pixels.")
    if min(h, w) < 16:
        raise UploadError(f"The {what} image {name} is only {h}×{w} pixels; expected an ultrasound frame.")
    return np.ascontiguousarray(frame)


def load_bmode_upload(path: str | Path | None, *, max_bytes: int = MAX_UPLOAD_BYTES,
                      max_pixels: int = MAX_UPLOAD_PIXELS) -> np.ndarray:
    """An uploaded B-mode as H×W uint8, by the library's one B-mode rule
    (``elastogan.bmode_input.bmode_of``: a DICOM gives its least colourful image region).

    Raises:
        UploadError: as ``open_upload``, or a frame under 16 pixels a side.
    """
    from elastogan.bmode_input import bmode_of
    from elastogan.errors import InputFileError

    image = open_upload(path, "B-mode", max_bytes=max_bytes, max_pixels=max_pixels)
    try:
        bmode = bmode_of(image)
    except InputFileError as e:
        raise UploadError(f"The B-mode file {_short_name(image.path)} cannot be used: {e.problem}") from None
    return _check_frame(bmode, "B-mode", _short_name(image.path), max_pixels)


def load_upload(path: str | Path | None, what: str, *, max_bytes: int = MAX_UPLOAD_BYTES,
                max_pixels: int = MAX_UPLOAD_PIXELS) -> np.ndarray:
    """One uploaded colour frame as H×W×3 uint8 RGB; a DICOM gives its most colourful image
    region (``elastogan.bmode_input.emode_panel``: the elastogram of a dual display).

    Args and raises as ``open_upload`` (and a frame under 16 pixels a side is refused).
    """
    from elastogan.bmode_input import emode_panel

    image = open_upload(path, what, max_bytes=max_bytes, max_pixels=max_pixels)
    return _check_frame(emode_panel(image), what, _short_name(image.path), max_pixels)
