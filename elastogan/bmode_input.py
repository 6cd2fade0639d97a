"""B-mode input for inference: which files a user named, and the one B-mode loader.

Every place that turns a user's file into the grey frame the generator sees goes through
``load_bmode`` (or ``bmode_of`` on an image already loaded): ``elastogan predict``, the app's
Preview upload, ``elastogan study create`` and ``elastogan evaluate``. So a file gives the same
B-mode, pixel for pixel, whichever door it comes through.

The rules:

- the format comes from the content (``elastogan.data.loaders``): PNG, JPEG, ``.npy`` or DICOM,
  with or without an extension;
- only an image panel reaches the network, never the burned-in text around it (names, dates,
  hospital). A DICOM that declares image regions (``SequenceOfUltrasoundRegions``) gives its
  B-mode region — the *least colourful* one, so that a dual display (B-mode | E-mode, in
  either order) gives its grey panel. A file without regions (a PNG or JPEG screenshot, a
  DICOM without regions) gives the B-mode panel the panel finder sees
  (``elastogan.data.panels``: twin panels of a dual display, else the largest picture), and
  the whole frame when nothing but background lies outside that panel (a plain B-mode image);
- colour becomes grey by ITU-R 601 luminance (``rgb_to_grey``), exact for grey pixels; whether
  the panel *is* grey is for the caller to check (``BmodeInput.colour_fraction``: ``predict``
  refuses a colour Doppler or elastography panel unless asked);
- a grey panel must have ultrasound speckle (``speckle_problem``): a ramp, bars, a checkerboard,
  colour bars or a blank frame is refused by ``read_bmode_input`` (``predict``'s reader), not
  turned into an "elastogram";
- every refusal is an ``InputFileError`` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from scipy import ndimage

from elastogan.data.loaders import LoadedImage, load_image, rgb_to_grey, sniff_format
from elastogan.data.panels import colour_fraction, crop, find_blocks, find_twins, outside_mask, screen_background
from elastogan.errors import InputFileError, UserError

Box = tuple[int, int, int, int]

# Smallest frame the generator accepts (``elastogan.predict.check_frame`` says the same).
MIN_SIDE = 2
# A B-mode panel with more coloured pixels than this is a colour image (Doppler, an
# elastogram), not a grey B-mode: markers and calipers colour less (``panels.colour_fraction``).
MAX_BMODE_COLOUR = 0.02
SCREEN_CONTENT_LEVEL = 12  # farther than this from the screen's background colours is content
MAX_SCREEN_CONTENT = 0.5  # outside a screen's panels at most this share is content (text, markers)
# Speckle (``speckle_problem``), measured on every real ultrasound file of pydicom and
# pydicom-data (also scaled ×1.5 and ×2, and as JPEG 50), phantom B-modes and 66 test patterns
# (tests/test_bmode_input_patterns.py): real B-modes have texture ≥ 0.42 and peak share ≤ 0.49;
# patterns have texture ≤ 0.2 unless their peak share is ≥ 0.76.
SPECKLE_LEVEL = 2.0  # grey levels: the smaller structure-tensor eigenvalue must pass this squared
SPECKLE_MIN_TEXTURE = 0.25  # share of the non-dark picture with 2-D fine texture
SPECKLE_MAX_PEAK = 0.65  # share of the fine detail's power in the strongest 0.5 % of frequencies
SPECKLE_MIN_SIDE = 32  # smaller frames are too small to judge
DARK_LEVEL = 16  # a local mean at or below this is background or anechoic fluid, not judged


def colourfulness(rgb: np.ndarray) -> float:
    """Mean channel spread (max − min) of H×W×3 uint8: 0 for a grey B-mode, large for colour."""
    return float((rgb.max(axis=-1).astype(np.int16) - rgb.min(axis=-1)).mean())


def _texture(grey: np.ndarray, sigma: float = 1.5) -> float:
    """Share of the non-dark pixels whose local structure tensor has a smaller eigenvalue above
    ``SPECKLE_LEVEL²``: texture in two directions at once. Speckle has it everywhere; a ramp has
    none, and bars or an edge have it in one direction only (one eigenvalue)."""
    g = grey.astype(np.float32)
    gy, gx = ndimage.sobel(g, 0, mode="nearest") / 8, ndimage.sobel(g, 1, mode="nearest") / 8
    jxx, jyy, jxy = (ndimage.gaussian_filter(a, sigma) for a in (gx * gx, gy * gy, gx * gy))
    smaller = (jxx + jyy) / 2 - np.sqrt(((jxx - jyy) / 2) ** 2 + jxy**2)
    content = ndimage.uniform_filter(g, 5) > DARK_LEVEL
    return float((smaller[content] > SPECKLE_LEVEL**2).mean()) if content.any() else 0.0


def speckle_stats(grey: np.ndarray) -> tuple[float, float]:
    """``(texture, peak)`` of an H×W grey picture.

    ``texture``: ``_texture`` at full and half resolution, the larger (a screenshot scaled up
    with interpolation has its speckle at half resolution). ``peak``: share of the fine detail's
    power (the picture minus a Gaussian blur, σ = 2 px) in the strongest 0.5 % of its 2-D
    Fourier coefficients: a checkerboard's or a bar pattern's detail sits on a few harmonics,
    speckle's is broadband.
    """
    h2, w2 = grey.shape[0] // 2 * 2, grey.shape[1] // 2 * 2
    half = grey[:h2, :w2].astype(np.float32).reshape(h2 // 2, 2, w2 // 2, 2).mean(axis=(1, 3))
    texture = max(_texture(grey), _texture(half))
    g = grey.astype(np.float32)
    power = np.abs(np.fft.rfft2(g - ndimage.gaussian_filter(g, 2.0, mode="nearest"))) ** 2
    power[0, 0] = 0.0
    ranked = np.sort(power.ravel())[::-1]
    total = float(ranked.sum())
    peak = float(ranked[: max(1, ranked.size // 200)].sum() / total) if total > 0 else 1.0
    return texture, peak


def speckle_problem(grey: np.ndarray) -> str | None:
    """Why an H×W grey picture is not a B-mode (no ultrasound speckle), or None.

    Frames under ``SPECKLE_MIN_SIDE`` pixels are not judged.
    """
    if min(grey.shape) < SPECKLE_MIN_SIDE:
        return None
    texture, peak = speckle_stats(grey)
    if texture >= SPECKLE_MIN_TEXTURE and peak <= SPECKLE_MAX_PEAK:
        return None
    return (f"no ultrasound speckle, so not a B-mode: a test pattern (ramp, bars, checkerboard, colour bars) or "
            f"a blank frame? ({texture:.0%} of the picture has fine texture in two directions, a B-mode "
            f"≥ {SPECKLE_MIN_TEXTURE:.0%}; {peak:.0%} of its fine detail lies on a few spatial frequencies, "
            f"a B-mode ≤ {SPECKLE_MAX_PEAK:.0%})")


def panel_boxes(image: LoadedImage) -> list[Box]:
    """The image panels of a frame: its DICOM image regions, else the panels found in the
    picture (``elastogan.data.panels``), else the whole frame."""
    regions = [r.box for r in image.regions if r.is_image]
    if regions:
        return regions
    h, w = image.rgb.shape[:2]
    twins = find_twins(image.rgb)
    boxes = list(twins) if twins is not None else find_blocks(image.rgb, 2, split_wide=False)
    if not boxes or not _content_outside(image.rgb, boxes):
        return [(0, 0, w, h)]  # a plain picture: nothing to cut away
    return boxes


def _content_outside(rgb: np.ndarray, boxes: list[Box]) -> bool:
    """True if ``boxes`` lie on a screen with something else on it (text, markers): outside
    them the screen is mostly its background, yet not all of it. Outside a box cut from a
    plain picture there is more picture (mostly not background): that is no screen."""
    outside = outside_mask(rgb.shape[:2], boxes)
    if not outside.any():
        return False
    content = np.ones(rgb.shape[:2], bool)
    for colour in screen_background(rgb):
        content &= np.abs(rgb.astype(np.int16) - colour).max(axis=-1) > SCREEN_CONTENT_LEVEL
    share = float(content[outside].mean())
    return 0.0 < share <= MAX_SCREEN_CONTENT


def image_panels(image: LoadedImage) -> list[np.ndarray]:
    """The image panels of a frame as RGB crops (``panel_boxes``)."""
    return [crop(image.rgb, b) for b in panel_boxes(image)]


def bmode_box(image: LoadedImage) -> Box:
    """The box of the least colourful image panel (the B-mode of a dual display)."""
    return min(panel_boxes(image), key=lambda b: colourfulness(crop(image.rgb, b)))


def bmode_panel(image: LoadedImage) -> np.ndarray:
    """H×W×3 uint8: the least colourful image panel (the B-mode of a dual display)."""
    return crop(image.rgb, bmode_box(image))


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


@dataclass(frozen=True)
class BmodeInput:
    """One frame of a user's file, ready for the generator.

    Attributes:
        path: the file.
        bmode: h×w uint8, the B-mode panel (``bmode_of``).
        box: where the panel lies in the frame, ``(x0, y0, x1, y1)`` end-exclusive.
        frame_shape: ``(H, W)`` of the whole frame.
        frame: the frame's index; ``n_frames`` how many the file holds.
        colour_fraction: share of the panel's pixels that are coloured.
    """

    path: Path
    bmode: np.ndarray
    box: Box
    frame_shape: tuple[int, int]
    frame: int
    n_frames: int
    colour_fraction: float


def read_bmode_input(path: str | Path, *, frame: int = 0) -> BmodeInput:
    """Frame ``frame`` of a file as a ``BmodeInput`` (see the module rules).

    Raises:
        InputFileError: naming the file (as ``load_bmode``), and a grey panel without speckle
            (``speckle_problem``: a test pattern or a blank frame). A colour panel is left to
            the caller (``colour_fraction``).
    """
    image = load_image(path, frame=frame)
    box = bmode_box(image)
    bmode = bmode_of(image)
    colour = colour_fraction(crop(image.rgb, box))
    n_frames = int(image.source.get("n_frames", 1))
    if colour <= MAX_BMODE_COLOUR and (problem := speckle_problem(bmode)) is not None:
        raise InputFileError(path, f"frame {frame}: {problem}" if n_frames > 1 else problem)
    return BmodeInput(Path(path), bmode, box, image.rgb.shape[:2], frame, n_frames, colour)


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
