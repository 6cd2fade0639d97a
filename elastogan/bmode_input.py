"""B-mode input for inference: which files a user named, and the one B-mode loader.

Every place that turns a user's file into the grey frame the generator sees goes through
``load_bmode`` (or ``bmode_of`` on an image already loaded): ``elastogan predict``, the app's
Preview upload, ``elastogan study create`` and ``elastogan evaluate``. So a file gives the same
B-mode, pixel for pixel, whichever door it comes through.

The rules:

- the format comes from the content (``elastogan.data.loaders``): PNG, JPEG, ``.npy`` or DICOM,
  with or without an extension;
- a DICOM that declares image regions (``SequenceOfUltrasoundRegions``) gives only the B-mode
  region — the *least colourful* one, so that a dual display (B-mode | E-mode, in either order)
  gives its grey panel and the burned-in text around the panels never reaches the network;
- colour becomes grey by ITU-R 601 luminance (``rgb_to_grey``), exact for grey pixels;
- every refusal is an ``InputFileError`` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from elastogan.data.loaders import LoadedImage, load_image, rgb_to_grey, sniff_format
from elastogan.errors import InputFileError, UserError

# Smallest frame the generator accepts (``elastogan.predict.check_frame`` says the same).
MIN_SIDE = 2


def colourfulness(rgb: np.ndarray) -> float:
    """Mean channel spread (max − min) of H×W×3 uint8: 0 for a grey B-mode, large for colour."""
    return float((rgb.max(axis=-1).astype(np.int16) - rgb.min(axis=-1)).mean())


def image_panels(image: LoadedImage) -> list[np.ndarray]:
    """The image regions of a DICOM frame (RGB crops), or the whole frame when it declares none."""
    regions = [r for r in image.regions if r.is_image]
    return [r.crop(image.rgb) for r in regions] if regions else [image.rgb]


def bmode_panel(image: LoadedImage) -> np.ndarray:
    """H×W×3 uint8: the least colourful image panel (the B-mode of a dual display)."""
    return min(image_panels(image), key=colourfulness)


def emode_panel(image: LoadedImage) -> np.ndarray:
    """H×W×3 uint8: the most colourful image panel (the elastogram of a dual display)."""
    return max(image_panels(image), key=colourfulness)


def bmode_of(image: LoadedImage) -> np.ndarray:
    """The H×W uint8 B-mode of a loaded file: ``bmode_panel`` in luminance.

    Raises:
        InputFileError: the panel is smaller than 2×2 pixels.
    """
    bmode = np.ascontiguousarray(rgb_to_grey(bmode_panel(image)))
    if min(bmode.shape) < MIN_SIDE:
        raise InputFileError(image.path, f"a {bmode.shape[0]}×{bmode.shape[1]} frame is too small (at least 2×2)")
    return bmode


def load_bmode(path: str | Path) -> np.ndarray:
    """The B-mode of a PNG, JPEG, ``.npy`` or DICOM file as H×W uint8 (see the module rules).

    Args:
        path: the file; its format is read from its content.

    Returns:
        The grey frame, of the B-mode panel's size (the file's size when it has no DICOM regions).

    Raises:
        InputFileError: naming the file: missing, not a supported image, unreadable, too large,
            a DICOM that is not an ultrasound, or a frame under 2×2 pixels.

    Example:
        >>> load_bmode("exports/US0001")  # doctest: +SKIP
        array([[12, 14, ...]], dtype=uint8)
    """
    return bmode_of(load_image(path))


def collect_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """The files named, plus the image and DICOM files found (one level) in the folders named.

    Inside a folder a file counts when its content is PNG, JPEG, ``.npy`` or DICOM (scanner
    exports often have no extension); other files are skipped, in name order. A file named
    explicitly is kept as it is: loading it fails with a message naming it if it is none of those.

    Raises:
        InputFileError: a path that does not exist, or a folder with no such file.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = []
            for p in sorted(path.iterdir()):
                if not p.is_file():
                    continue
                try:
                    sniff_format(p)
                except InputFileError:
                    continue
                found.append(p)
            if not found:
                raise InputFileError(path, "folder holds no PNG, JPEG, .npy or DICOM files")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise InputFileError(path, "no such file or folder")
    return files


def check_unique_stems(files: Iterable[Path]) -> None:
    """Refuse two inputs whose outputs would share a name (``NAME_SYNTHETIC_…``).

    Raises:
        UserError: naming both files.
    """
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise UserError(f"two inputs share the name {f.stem!r} ({stems[f.stem]} and {f}); outputs would overwrite each other")
        stems[f.stem] = f
