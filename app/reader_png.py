"""The PNG a reader's browser receives: its length says nothing of its kind; its size is legible.

A compressed PNG's length follows its content: a synthetic elastogram, smoother than an
estimated real strain map, compresses better, and the byte count alone would tell the two
apart (in the test study every synthetic PNG was smaller than the real one of its case).
So the elastogram a reader is served is stored uncompressed (zlib level 0: deflate's stored
blocks), with no ancillary chunk: its bytes are a function of the pixels alone and its length
a function of the frame size alone, the same for every image of the study.

Study frames are small (128² or 256² for the simulated data): ``display_pixels`` scales each
image (B-mode and elastogram alike) up by the smallest whole factor that makes it at least
``DISPLAY_WIDTH`` pixels across, by pixel replication (nearest neighbour: no filter invents
detail, and the colour bar's SOFT/HARD letters grow with it).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

DISPLAY_WIDTH = 512  # pixels across a study image on a reader's screen, at least


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


def display_pixels(rgb: np.ndarray, min_width: int = DISPLAY_WIDTH) -> np.ndarray:
    """``rgb`` (H×W×3) scaled up by the smallest whole factor k with k·W ≥ ``min_width``
    (pixel replication); unchanged when it is that wide already.

    Example:
        >>> display_pixels(np.zeros((128, 128, 3), np.uint8)).shape
        (512, 512, 3)
        >>> display_pixels(np.zeros((256, 300, 3), np.uint8)).shape
        (512, 600, 3)
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 image, got {rgb.shape}")
    k = max(1, -(-min_width // rgb.shape[1]))
    return rgb if k == 1 else np.repeat(np.repeat(rgb, k, axis=0), k, axis=1)
