"""The PNG a reader's browser receives for an elastogram: its length says nothing of its kind.

A compressed PNG's length follows its content: a synthetic elastogram, smoother than an
estimated real strain map, compresses better, and the byte count alone would tell the two
apart (in the test study every synthetic PNG was smaller than the real one of its case).
So the elastogram a reader is served is stored uncompressed (zlib level 0: deflate's stored
blocks), with no ancillary chunk: its bytes are a function of the pixels alone and its length
a function of the frame size alone, the same for every image of the study.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from elastogan.atomic import atomic_write_bytes

NAME = "image.png"  # every served elastogram has this name (Gradio puts it in the URL)


def fixed_size_png(rgb: np.ndarray) -> bytes:
    """Uncompressed PNG bytes of an H×W×3 uint8 image: IHDR, IDAT, IEND only.

    Example:
        >>> a, b = np.zeros((8, 8, 3), np.uint8), np.random.default_rng(0).integers(0, 256, (8, 8, 3), np.uint8)
        >>> len(fixed_size_png(a)) == len(fixed_size_png(b))
        True
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 image, got {rgb.dtype} {rgb.shape}")
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=0, optimize=False)
    return buf.getvalue()


def reader_png(rgb: np.ndarray, folder: str | Path) -> Path:
    """Write ``fixed_size_png(rgb)`` as ``folder/<content hash>/image.png`` (once) and return it.

    Named by content, so showing an image again (a reload) reuses its file.
    """
    data = fixed_size_png(rgb)
    path = Path(folder) / hashlib.sha256(data).hexdigest()[:32] / NAME
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    return path
