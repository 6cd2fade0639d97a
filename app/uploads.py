"""Uploaded files, checked at the door: size, pixel count, format (PNG, JPEG, DICOM by content).

The app's limits are tighter than the library's (``elastogan.data.images.MAX_PIXELS``): a
browser upload is one ultrasound frame, and the server must stay responsive for everyone else.
Every refusal is an ``UploadError`` whose message is shown in the page as it is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from elastogan.errors import UserError

MAX_UPLOAD_BYTES = 32 * 1024 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096


class UploadError(UserError):
    """An upload the app refuses; its message is for the person who uploaded it."""


def load_upload(path: str | Path | None, what: str, *, max_bytes: int = MAX_UPLOAD_BYTES,
                max_pixels: int = MAX_UPLOAD_PIXELS) -> np.ndarray:
    """One uploaded frame as H×W×3 uint8 RGB (a DICOM is cropped to its first image region).

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
    name = path.name
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
        loaded = load_image(path)
    except InputFileError as e:
        raise UploadError(f"The {what} file {name} cannot be used: {e.problem}") from None
    rgb = loaded.rgb
    regions = [r for r in loaded.regions if r.is_image]
    if regions:
        rgb = regions[0].crop(rgb)
    h, w = rgb.shape[:2]
    if h * w > max_pixels:
        raise UploadError(f"The {what} image {name} has {h}×{w} pixels; the limit is {max_pixels:,} pixels.")
    if min(h, w) < 16:
        raise UploadError(f"The {what} image {name} is only {h}×{w} pixels; expected an ultrasound frame.")
    return np.ascontiguousarray(rgb)
