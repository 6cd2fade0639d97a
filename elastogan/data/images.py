"""Reading and writing the arrays of a case (DESIGN §2) in their on-disk formats.

Strain (the mapped E-mode, relative strain 0 = hard … 1 = soft, NaN outside the ROI) is
stored as float32 ``.npy`` or as a 16-bit PNG where ``v = round(s · 65534)`` and 65535 marks
NaN; the PNG round-trips to within 1/65534.

B-modes, E-modes and masks are 8-bit images (``EIGHT_BIT_MODES``); ``read_gray`` and
``read_rgb`` refuse anything else — a 16-bit grey PNG would otherwise be clipped to white —
and ``check_pixels`` tells the manifest validator, from the header alone, whether a file is
one the readers take for its field.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from elastogan.atomic import atomic_write_bytes
from elastogan.errors import InputFileError

STRAIN_PNG_SCALE = 65534
STRAIN_PNG_NAN = 65535

# Ultrasound frames are at most a few thousand pixels a side; anything far larger is a
# decompression bomb or not an ultrasound frame, and is refused before decoding.
MAX_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

# PIL modes of 8-bit images, which convert to grey or RGB without loss of range.
EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr")
# PIL modes of 16-bit grey images (PNG decodes to ``I;16``; Pillow < 10 gave ``I``).
SIXTEEN_BIT_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


@contextlib.contextmanager
def _image_errors(path: Path) -> Iterator[None]:
    """PIL's failures on ``path`` as one-line :class:`InputFileError`."""
    try:
        yield
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except Image.DecompressionBombError:
        raise InputFileError(path, f"image has more than {MAX_PIXELS} pixels; not an ultrasound frame") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputFileError(path, f"not a readable image ({e})") from None


def _open(path: Path) -> Image.Image:
    with _image_errors(path):
        img = Image.open(path)
        img.load()
    return img


def describe_mode(mode: str) -> str:
    """A PIL mode in words, for messages: ``'I;16'`` → ``'16-bit grey (mode I;16)'``."""
    words = {"1": "1-bit", "L": "8-bit grey", "LA": "8-bit grey with alpha", "P": "8-bit palette",
             "RGB": "8-bit RGB", "RGBA": "8-bit RGBA", "I": "32-bit integer", "F": "32-bit float"}
    if mode in SIXTEEN_BIT_GREY_MODES and mode != "I":
        return f"16-bit grey (mode {mode})"
    return f"{words[mode]} (mode {mode})" if mode in words else f"mode {mode}"


def open_image(path: str | Path) -> Image.Image:
    """A PNG/JPEG file decoded in full, or an ``InputFileError`` naming the file."""
    return _open(Path(path))


def _eight_bit(img: Image.Image, path: str | Path) -> Image.Image:
    if img.mode not in EIGHT_BIT_MODES:
        raise InputFileError(path, f"expected an 8-bit image, got {describe_mode(img.mode)}")
    return img


def read_gray(path: str | Path) -> np.ndarray:
    """An 8-bit grey image as H×W uint8 (colour images are converted by luminance)."""
    return np.asarray(_eight_bit(_open(Path(path)), path).convert("L"))


def read_rgb(path: str | Path) -> np.ndarray:
    """An 8-bit grey or colour image as H×W×3 uint8."""
    return np.asarray(_eight_bit(_open(Path(path)), path).convert("RGB"))


def grey16_to_uint8(arr: np.ndarray) -> np.ndarray:
    """16-bit grey (0..65535, PNG's full-range scaling) as uint8: ``round(v / 257)``."""
    return np.rint(np.asarray(arr, dtype=np.float64) / 257.0).astype(np.uint8)


def read_mask(path: str | Path) -> np.ndarray:
    """A 0/255 mask PNG as H×W bool."""
    return read_gray(path) > 127


def read_strain(path: str | Path) -> np.ndarray:
    """Mapped strain as H×W float32 (NaN outside the ROI) from ``.npy`` or 16-bit PNG."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise InputFileError(path, "file not found") from None
        except (OSError, ValueError) as e:
            raise InputFileError(path, f"not a readable .npy array ({e})") from None
        if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating):
            raise InputFileError(path, f"expected an H×W float strain array, got {arr.dtype} {arr.shape}")
        return arr.astype(np.float32, copy=False)
    img = _open(path)
    if img.mode not in SIXTEEN_BIT_GREY_MODES:
        raise InputFileError(path, f"expected a 16-bit grey strain PNG, got {describe_mode(img.mode)}")
    arr = np.asarray(img).astype(np.int64)
    out = (arr / STRAIN_PNG_SCALE).astype(np.float32)
    out[arr == STRAIN_PNG_NAN] = np.nan
    return out


def encode_png(arr: np.ndarray) -> bytes:
    """PNG bytes of a uint8 grey/RGB or uint16 grey array."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def write_png(path: str | Path, arr: np.ndarray) -> None:
    """Write uint8 (H×W or H×W×3) or uint16 (H×W) as PNG, atomically."""
    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_png takes uint8 or uint16, got {arr.dtype}")
    atomic_write_bytes(path, encode_png(arr))


def strain_to_png16(strain: np.ndarray) -> np.ndarray:
    """Encode relative strain as uint16 (65535 = NaN)."""
    s = np.asarray(strain, dtype=np.float64)
    nan = ~np.isfinite(s)
    v = np.rint(np.clip(np.where(nan, 0.0, s), 0.0, 1.0) * STRAIN_PNG_SCALE).astype(np.uint16)
    v[nan] = STRAIN_PNG_NAN
    return v


def write_strain(path: str | Path, strain: np.ndarray) -> None:
    """Write strain as ``.npy`` float32 or 16-bit PNG, chosen by the suffix, atomically."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        buf = io.BytesIO()
        np.save(buf, np.asarray(strain, dtype=np.float32), allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue())
    else:
        write_png(path, strain_to_png16(strain))


@dataclass(frozen=True)
class PixelInfo:
    """What a file's header says: shape (H, W) or (H, W, C), and a PIL mode or NumPy dtype."""

    shape: tuple[int, ...]
    kind: str  # a PIL mode ("L", "I;16", …) or, for .npy, a dtype name ("float32", …)
    is_npy: bool


def pixel_info(path: str | Path) -> PixelInfo:
    """Shape and pixel format of an image or ``.npy`` file from its header (no pixel decoded).

    A ``.npy`` file shorter than its header promises (truncated) is refused here too.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise InputFileError(path, "file not found") from None
        except IsADirectoryError:
            raise InputFileError(path, "is a folder, not a file") from None
        except (OSError, ValueError, EOFError) as e:
            if "mmap length" in str(e):  # numpy's words for a file shorter than its header says
                raise InputFileError(path, "truncated .npy array (shorter than its header says)") from None
            raise InputFileError(path, f"not a readable .npy array ({e})") from None
        return PixelInfo(tuple(arr.shape), arr.dtype.name, True)
    with _image_errors(path), Image.open(path) as img:
        w, h = img.size
        bands = len(img.getbands())
        mode = img.mode
    return PixelInfo((h, w) if bands == 1 else (h, w, bands), mode, False)


def image_shape(path: str | Path) -> tuple[int, ...]:
    """Shape of an image or ``.npy`` file without decoding its pixels: (H, W) or (H, W, C)."""
    return pixel_info(path).shape


def check_pixels(info: PixelInfo, role: str) -> str | None:
    """Why ``read_gray`` (``role`` ``"grey"``), ``read_rgb`` (``"rgb"``) or ``read_strain``
    (``"strain"``) would refuse a file with this header, or ``None`` if it would not."""
    if role == "strain":
        if info.is_npy:
            ok = np.issubdtype(np.dtype(info.kind), np.floating) and len(info.shape) == 2
            return None if ok else f"expected an H×W float strain array, got {info.kind} {info.shape}"
        if info.kind not in SIXTEEN_BIT_GREY_MODES:
            return f"expected a 16-bit grey strain PNG, got {describe_mode(info.kind)}"
        return None
    if info.is_npy:
        return f"expected an 8-bit {'grey' if role == 'grey' else 'RGB'} PNG or JPEG, got a .npy array"
    if info.kind not in EIGHT_BIT_MODES:
        return f"expected an 8-bit {'grey' if role == 'grey' else 'RGB'} image, got {describe_mode(info.kind)}"
    return None


def decode_fully(path: str | Path) -> None:
    """Read every pixel of an image or ``.npy`` file: finds truncated and corrupt files.

    Raises:
        InputFileError: naming the file and what is wrong with it.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise InputFileError(path, f"not a readable .npy array ({e})") from None
        return
    with _open(path):
        pass
