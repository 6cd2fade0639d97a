"""Load a user's image file — PNG, JPEG, ``.npy`` or DICOM — recognised by its content.

File names from scanner exports are unreliable (DICOM often has no extension, ``.dcm`` may be
a JPEG), so the format comes from the first bytes: the PNG signature, the JPEG SOI marker, the
NumPy magic string, or the ``DICM`` marker at offset 128. Every file becomes H×W×3 uint8 RGB
(grey images have three equal channels) with whatever geometry the format carries; a 16-bit
grey PNG is scaled by its bit depth (``round(v / 257)``), as DICOM pixels are by their
``BitsStored``.

Every refusal is an ``InputFileError`` naming the file and the problem: empty, not an image,
truncated, too large to be an ultrasound frame (``images.MAX_PIXELS``, checked before any
pixels are decoded), a DICOM that is not an ultrasound.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from elastogan.data.dicom import UltrasoundRegion, has_dicom_marker, read_dicom
from elastogan.data.images import (
    EIGHT_BIT_MODES,
    MAX_PIXELS,
    SIXTEEN_BIT_GREY_MODES,
    describe_mode,
    grey16_to_uint8,
    image_shape,
    open_image,
)
from elastogan.errors import InputFileError

FORMATS = ("png", "jpeg", "npy", "dicom")

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_NPY_MAGIC = b"\x93NUMPY"


@dataclass
class LoadedImage:
    """One frame of a user's file.

    Attributes:
        path: the file.
        rgb: H×W×3 uint8.
        format: one of ``FORMATS``.
        regions: DICOM ultrasound regions inside the frame (empty for other formats).
        pixel_spacing_mm: ``(dy, dx)`` from the first image region that has one, else None.
        patient_id: DICOM ``PatientID`` (None for other formats).
        source: provenance without identifiers.
        warnings: notes for the user (e.g. DICOM regions that do not fit the frame).
    """

    path: Path
    rgb: np.ndarray
    format: str
    regions: tuple[UltrasoundRegion, ...] = ()
    pixel_spacing_mm: tuple[float, float] | None = None
    patient_id: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def is_grey(self) -> bool:
        """True if every pixel has equal R, G and B."""
        return bool((self.rgb[..., 0] == self.rgb[..., 1]).all() and (self.rgb[..., 1] == self.rgb[..., 2]).all())

    @property
    def grey(self) -> np.ndarray:
        """H×W uint8 luminance (ITU-R 601, as PIL's ``L``); exact for grey images."""
        return rgb_to_grey(self.rgb)


def rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luminance of H×W×3 uint8 RGB as uint8; grey pixels map to themselves."""
    r, g, b = (rgb[..., c].astype(np.int32) for c in range(3))
    return ((r * 299 + g * 587 + b * 114 + 500) // 1000).astype(np.uint8)


def sniff_format(path: str | Path) -> str:
    """The file's format from its first bytes: one of ``FORMATS``.

    Raises:
        InputFileError: missing, empty, or none of the supported formats.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except IsADirectoryError:
        raise InputFileError(path, "is a folder, not an image file") from None
    except OSError as e:
        raise InputFileError(path, f"cannot read file ({e.strerror or e})") from None
    if not head:
        raise InputFileError(path, "empty file")
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if has_dicom_marker(path):
        return "dicom"
    raise InputFileError(path, "not a supported image (expected PNG, JPEG, .npy or DICOM)")


def _load_npy(path: Path) -> np.ndarray:
    try:
        # The header alone gives the shape: check it before reading any pixel.
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, _ = read_header(f)
    except (OSError, ValueError, EOFError) as e:
        raise InputFileError(path, f"not a readable .npy array ({e})") from None
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (3, 4)):
        raise InputFileError(path, f"expected an H×W or H×W×3 array, got shape {shape}")
    if shape[0] * shape[1] > MAX_PIXELS:
        raise InputFileError(path, f"array of {shape[0]}×{shape[1]} pixels exceeds {MAX_PIXELS}; not an ultrasound frame")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise InputFileError(path, f"not a readable .npy array ({e})") from None
    a = arr[..., :3] if arr.ndim == 3 else arr
    if a.dtype == np.uint8:
        out = a
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all() or a.min() < 0.0 or a.max() > 1.0:
            raise InputFileError(path, "float image arrays must hold finite values in 0..1")
        out = np.rint(a * 255.0).astype(np.uint8)
    else:
        raise InputFileError(path, f"expected uint8 or float (0..1) pixels, got {a.dtype}")
    return np.repeat(out[..., None], 3, axis=-1) if out.ndim == 2 else np.ascontiguousarray(out)


def _picture_rgb(path: Path) -> np.ndarray:
    """A PNG or JPEG as H×W×3 uint8: 8-bit images as they are, 16-bit grey scaled to 8 bits."""
    img = open_image(path)
    if img.mode in SIXTEEN_BIT_GREY_MODES:
        grey = grey16_to_uint8(np.asarray(img))
        return np.repeat(grey[..., None], 3, axis=-1)
    if img.mode not in EIGHT_BIT_MODES:
        raise InputFileError(path, f"unsupported pixel format {describe_mode(img.mode)}; expected 8-bit grey or colour, or 16-bit grey")
    return np.asarray(img.convert("RGB"))


def load_image(path: str | Path, *, frame: int = 0) -> LoadedImage:
    """Load one frame of a PNG, JPEG, ``.npy`` or DICOM file as RGB.

    Args:
        path: the file; its format is read from its content, not its name.
        frame: DICOM frame index (only that frame is decoded); other formats have one frame.

    Returns:
        A ``LoadedImage``.

    Raises:
        InputFileError: naming the file and the problem.
    """
    path = Path(path)
    fmt = sniff_format(path)
    if fmt == "dicom":
        d = read_dicom(path, frame=frame)
        spacing = next((r.spacing_mm for r in d.image_regions if r.spacing_mm), None)
        return LoadedImage(path, d.rgb, fmt, d.regions, spacing, d.patient_id, d.source, list(d.warnings))
    if frame != 0:
        raise InputFileError(path, f"frame {frame} asked for, but a {fmt.upper()} file has one frame")
    if fmt == "npy":
        rgb = _load_npy(path)
    else:
        # image_shape opens lazily: the size is checked before any pixel is decoded (PIL
        # only warns between MAX_PIXELS and twice that; the check below refuses).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            shape = image_shape(path)
        if shape[0] * shape[1] > MAX_PIXELS:
            raise InputFileError(path, f"image of {shape[0]}×{shape[1]} pixels exceeds {MAX_PIXELS}; not an ultrasound frame")
        rgb = _picture_rgb(path)
    h, w = rgb.shape[:2]
    return LoadedImage(path, rgb, fmt, source={"format": fmt, "rows": h, "columns": w})
