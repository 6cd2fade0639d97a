"""A case resampled to another frame size, the one way training and evaluation both do it.

Training reads frames at ``data.image_size`` (``elastogan.training.data.resized_manifest``);
``elastogan evaluate --size N`` compares at N×N. Both go through :func:`resize_case_arrays`, so a
model is scored on real maps resampled exactly as its training targets were.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def area_resize(x: np.ndarray, size: int) -> np.ndarray:
    """``x`` (H×W) resampled to ``size × size`` by antialiased bilinear interpolation (area-like)."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0, 0].numpy()


def resize_strain(strain: np.ndarray, size: int) -> np.ndarray:
    """A strain map (NaN outside its ROI) resampled to ``size × size`` by normalised convolution.

    ``resize(strain · defined) / resize(defined)``, so the undefined outside never leaks into the
    ROI; a pixel stays defined where at least half its resampled area was, and is clipped to the
    display range [0, 1].
    """
    defined = np.isfinite(strain)
    mask = area_resize(defined, size)
    values = area_resize(np.where(defined, strain, 0.0), size) / np.maximum(mask, 1e-6)
    return np.where(mask >= 0.5, np.clip(values, 0.0, 1.0), np.nan).astype(np.float32)


def resize_box(box: tuple[int, int, int, int], shape: tuple[int, int], size: int) -> tuple[int, int, int, int]:
    """A box ``(x0, y0, x1, y1)`` of an H×W frame scaled to a ``size × size`` one (never empty)."""
    h, w = shape
    x0, y0, x1, y1 = box
    sx, sy = size / w, size / h
    nx0, ny0 = round(x0 * sx), round(y0 * sy)
    return (nx0, ny0, min(size, max(nx0 + 1, round(x1 * sx))), min(size, max(ny0 + 1, round(y1 * sy))))


def resize_case_arrays(a: dict, size: int) -> dict:
    """The arrays of a case (``load_case_arrays``) resized to ``size × size``.

    Images are resampled bilinearly with antialiasing (PIL); the strain by normalised
    convolution (:func:`resize_strain`); the lesion mask is kept where at least half was
    inside; the ROI box is scaled.
    """
    h, w = a["bmode"].shape

    def pil(img: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))

    out = dict(a)
    out["bmode"] = pil(a["bmode"])
    out["emode"] = pil(a["emode"]) if a["emode"] is not None else None
    if a["strain"] is not None:
        out["strain"] = resize_strain(a["strain"], size)
    out["lesion"] = area_resize(a["lesion"], size) >= 0.5 if a["lesion"] is not None else None
    out["roi"] = resize_box(a["roi"], (h, w), size)
    return out
