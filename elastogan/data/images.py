"""Reading and writing the arrays of a case (DESIGN §2) in their on-disk formats.

Strain (the mapped E-mode, relative strain 0 = hard … 1 = soft, NaN outside the ROI) is
stored as float32 ``.npy`` or as a 16-bit PNG where ``v = round(s · 65534)`` and 65535 marks
NaN; the PNG round-trips to within 1/65534.
"""

from __future__ import annotations

import contextlib
import io
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


def read_gray(path: str | Path) -> np.ndarray:
    """An 8-bit grey image as H×W uint8 (colour images are converted by luminance)."""
    img = _open(Path(path))
    if img.mode not in ("L", "P", "RGB", "RGBA", "LA"):
        raise InputFileError(path, f"expected an 8-bit grey or RGB image, got mode {img.mode}")
    return np.asarray(img.convert("L"))


def read_rgb(path: str | Path) -> np.ndarray:
    """An RGB image as H×W×3 uint8."""
    img = _open(Path(path))
    return np.asarray(img.convert("RGB"))


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
    arr = np.asarray(img)
    if arr.ndim != 2 or arr.dtype not in (np.uint16, np.int32):
        raise InputFileError(path, f"expected a 16-bit grey strain PNG, got mode {img.mode}")
    arr = arr.astype(np.int64)
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


def image_shape(path: str | Path) -> tuple[int, ...]:
    """Shape of an image or ``.npy`` file without decoding its pixels: (H, W) or (H, W, C)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise InputFileError(path, "file not found") from None
        except (OSError, ValueError) as e:
            raise InputFileError(path, f"not a readable .npy array ({e})") from None
        return tuple(arr.shape)
    with _image_errors(path), Image.open(path) as img:
        w, h = img.size
        bands = len(img.getbands())
    return (h, w) if bands == 1 else (h, w, bands)
